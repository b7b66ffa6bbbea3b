"""A guest's recording survives a full output disk: its data is kept and ``record --recover`` finishes its file.

A real recording (our agent over TCP, the host recording too) into a real small file system, filled up after
the stop and before the files are written, so the guest's file cannot be completed and the host's cannot
be written: nothing may be lost.  Then space is freed and ``kshark-py record --recover`` writes both files,
which trace-cmd 3.1.6 reads as we do, and which pair as a host and its guest.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from kshark_py.capture import guestspool, spool
from kshark_py.capture.eventspec import EventSpec
from kshark_py.capture.session import GuestConfig, HostSession
from kshark_py.capture.writer import inspect_v7
from kshark_py.loaders.tracedat import open_trace
from kshark_py.model.session import Session

from .support.capture import ROOT, our_agent, our_cli, report_both, tmpfs


def fill(path: Path) -> None:
    """Write ``path`` until its file system is full."""
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    with contextlib.suppress(OSError), open(path, "ab", buffering=0) as f:
        while True:
            f.write(b"\0" * 512)


def test_full_disk_keeps_the_guest_and_recover_finishes_it(env_ok, tmp_path, monkeypatch):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))  # the host's spool goes there, off the full disk
    with our_agent(tmp_path) as ag, tmpfs(tmp_path / "out", "16m") as out:
        sw = EventSpec.parse("sched:sched_switch")
        session = HostSession(out / "trace.dat", [sw], [GuestConfig(f"g@127.0.0.1:{ag.port}", specs=[sw])])
        session.start()
        proc = subprocess.run(["sh", "-c", "for i in $(seq 20); do ls / >/dev/null; sleep 0.02; done"])
        assert proc.returncode == 0
        time.sleep(0.3)
        session.stop()
        g = session.guests[0]
        received = sum(r.bytes for r in g.receivers)
        assert received > 0
        fill(out / "filler")
        with pytest.raises(spool.OutputError, match="No space left on device"):
            session.write()  # the guest's file cannot be completed, then the host's cannot be written
        host_kept = session.close()
        ag.proc.wait(timeout=30)
        assert g.kept is not None and session.kept_guests == ["g"]
        assert f"kshark-py record --recover {g.kept}" in g.error and "No space left on device" in g.error
        assert not (out / "trace-g.dat").exists()  # no file that readers would open as zero events
        assert not (out / "trace.dat").exists()
        names = {p.name for p in g.kept.iterdir()}
        assert {guestspool.HEAD, guestspool.RECIPE, "cpu0"} <= names
        assert sum(p.stat().st_size for p in g.kept.glob("cpu*")) == received
        inspect_v7(g.kept / guestspool.HEAD)  # the head is the agent's file again (cut back, DONE restored)
        doc = guestspool.read_recipe(g.kept)  # noted in place on the full disk
        assert doc["kept"] and g.tsync is not None  # its TIME_SHIFT: in the head (appended) or in the recipe
        assert host_kept is not None and host_kept.parent == tmp
        (out / "filler").unlink()
        env = dict(os.environ, TMPDIR=str(tmp), PYTHONPATH=str(ROOT))
        r = subprocess.run(our_cli("record", "--recover", str(g.kept)), capture_output=True, text=True, env=env,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        assert "(guest g)" in r.stderr and "read back complete" in r.stderr
        assert not g.kept.exists()
        r = subprocess.run(our_cli("record", "--recover", str(host_kept)), capture_output=True, text=True, env=env,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        tc, ks = report_both(out / "trace-g.dat")
        assert tc.splitlines() == ks.splitlines() and "sched_switch" in tc
        pair = Session.from_files([open_trace(out / "trace.dat"), open_trace(out / "trace-g.dat")])
        assert [st.name for st in pair.streams] == ["host", "g"]  # the host file names it: they pair
        assert pair.streams[1].buffer.events.num_rows > 0
        assert pair.guests[0].synced  # its TIME_SHIFT kept and written: on the host clock


def test_a_killed_recording_leaves_the_guest_folder_and_recover_finishes_it(env_ok, tmp_path):
    """SIGKILL while recording a guest: its pages stay in its folder and the agent's file (no data yet) beside
    the output; the next ``record`` lists the folder, and ``--recover`` writes the guest's file from both."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp), PYTHONPATH=str(ROOT))
    sw = "sched:sched_switch"
    with our_agent(tmp_path) as ag:
        p = subprocess.Popen(our_cli("record", "-o", str(out / "trace.dat"), "-e", sw, "-A", f"g@127.0.0.1:{ag.port}",
                                     "-e", sw), env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            end = time.monotonic() + 60
            while not any(f.stat().st_size for f in out.glob(f"{guestspool.GUEST_PREFIX}g-*/cpu*")):
                assert p.poll() is None and time.monotonic() < end, p.stderr.read() if p.poll() is not None else ""
                subprocess.run(["ls", "-R", "/usr/lib"], stdout=subprocess.DEVNULL)
            time.sleep(0.3)
        finally:
            p.kill()
            p.wait(10)
            p.stderr.close()
    [folder] = out.glob(f"{guestspool.GUEST_PREFIX}g-*")
    assert (out / "trace-g.dat").exists() and not (folder / guestspool.HEAD).exists()
    r = subprocess.run(our_cli("record", "-o", str(out / "next.dat"), "-e", sw, "-d", "0.3"), env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode in (0, 3), r.stderr
    listed = [ln for ln in r.stderr.splitlines() if str(folder) in ln]
    assert len(listed) == 1 and f"kshark-py record --recover {folder} writes it" in listed[0], r.stderr
    assert "guest g's recording" in listed[0]
    r = subprocess.run(our_cli("record", "--recover", str(folder)), env=env, cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert not folder.exists()
    tc, ks = report_both(out / "trace-g.dat")
    assert tc.splitlines() == ks.splitlines() and "sched_switch" in tc
