"""Shared test fixtures: where the real trace corpus lives (../shared/traces beside the repo), a machine that
can record."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import pytest

from tests.support.capture import TC_NS, instances, require_recording
from tests.support.corpus import TRACES

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# The load cache of module- and session-scoped fixtures (built before any test's own folder below):
# a folder of this run's, never the user's ~/.cache.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="kshark-py-test-cache-")

pytest_plugins = ["tests.livegui"]  # display, live: the app as a process on Xvfb


@pytest.fixture(autouse=True)
def _own_cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own ``$XDG_CACHE_HOME`` (the load cache lives there): no test reads or
    writes the user's ~/.cache, and no test sees another's cache entries.  Subprocesses inherit it."""
    d = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(d))
    monkeypatch.setenv("KSHARK_PY_NO_CACHE", "")  # on; and what --no-cache sets in-process is undone after
    return d


@pytest.fixture(scope="session")
def traces() -> Path:
    if not TRACES.is_dir():
        pytest.fail(f"trace corpus not found at {TRACES} (the repo must sit beside shared/)")
    return TRACES


@pytest.fixture
def env_ok():
    """A machine that can record (root, tracefs, trace-cmd): its tracefs; no instance may be left behind."""
    tracefs = require_recording()
    if not TC_NS.exists():
        pytest.fail(f"{TC_NS} missing")
    before = instances(tracefs)
    yield tracefs
    # trace-cmd's host leaves its clock_synch-0 instance behind: its recorders, forked after the time sync
    # opened trace_marker_raw there, still hold it when the host removes it (EBUSY).  Not ours: clean it.
    for name in instances(tracefs) - before:
        if name.startswith("clock_synch-"):
            with contextlib.suppress(OSError):
                (tracefs / "instances" / name).rmdir()
    assert instances(tracefs) == before, "tracefs instance left behind"
