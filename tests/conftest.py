"""Shared test fixtures: where the real trace corpus lives (../shared/traces beside the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

pytest_plugins = ["tests.livegui"]  # display, live: the app as a process on Xvfb

TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces"


@pytest.fixture(scope="session")
def traces() -> Path:
    if not TRACES.is_dir():
        pytest.fail(f"trace corpus not found at {TRACES} (the repo must sit beside shared/)")
    return TRACES
