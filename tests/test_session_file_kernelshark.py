"""Session files against KernelShark 2.2.1 itself (Debian's ``kernelshark``), on Xvfb.

A session exported by kshark-py (host + unsynchronized guest with a time offset, some CPU rows
hidden, a task row, a VCPU pair, a filter, two markers) is opened with ``kernelshark -s``: it must
stay alive and draw the trace (checked on a screenshot).  Then KernelShark's own File > Sessions >
Export Session (driven with xdotool) writes the session back, the file must hold what we wrote for
every key both programs have, and kshark-py, importing KernelShark's file, must show the same rows,
range, markers, filters and offset as the window that exported it.

KernelShark run as root stops at a warning dialog, so it runs as an unprivileged user (created here
with ``useradd``, which needs root: CI runs as root).  Needs the Debian packages ``kernelshark``,
``xvfb``, ``xdotool``, ``imagemagick`` and ``passwd`` (useradd) and ``util-linux`` (runuser).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QImage

from kshark_py.model.loading import load_session
from kshark_py.model.sessionfile import EntryRows, load_session_file, save_session
from kshark_py.ui.app import build_window
from tests.livegui import Display, need

KS_USER = "kshark-py-ks"
VM_MAP = {"vmguest": {0: 16748, 1: 16749}}


@pytest.fixture(scope="module")
def ks_user() -> str:
    need("kernelshark")
    need("runuser")
    try:
        pwd.getpwnam(KS_USER)
    except KeyError:
        if os.geteuid() != 0:
            pytest.fail(f"user {KS_USER} does not exist and only root can create it (useradd)")
        subprocess.run(["useradd", "-m", KS_USER], check=True, capture_output=True, timeout=30)
    return KS_USER


@pytest.fixture
def shared(traces: Path) -> Iterator[Path]:
    """A folder the unprivileged user reads and writes, with its own copy of the vm/ pair."""
    d = Path(tempfile.mkdtemp(prefix="kshark-py-ks-"))
    os.chmod(d, 0o777)
    for name in ("trace.dat", "trace-vmguest.dat"):
        shutil.copy2(traces / "vm" / name, d / name)
        os.chmod(d / name, 0o644)
    yield d
    shutil.rmtree(d, ignore_errors=True)


class KernelShark:
    """``kernelshark -s SESSION`` as the unprivileged user on a display."""

    def __init__(self, display: Display, user: str, session: Path) -> None:
        self.d = display
        self.log = session.with_suffix(".kernelshark.log")
        env = {"DISPLAY": display.name, "HOME": pwd.getpwnam(user).pw_dir, "PATH": os.environ.get("PATH", ""),
               "LANG": "C.UTF-8"}
        self._logf = open(self.log, "w")
        self.proc = subprocess.Popen(["runuser", "-u", user, "--", "kernelshark", "-s", str(session)], env=env,
                                     cwd=str(session.parent), stdout=self._logf, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def output(self) -> str:
        self._logf.flush()
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def window(self, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.alive(), f"kernelshark exited with {self.proc.returncode}:\n{self.output()}"
            wid = self.d.xdo("search", "--name", "^Kernel Shark$").split()
            if wid:
                return wid[0]
            time.sleep(0.3)
        pytest.fail(f"no KernelShark window after {timeout} s:\n{self.output()}")

    def export_session(self, wid: str, out: Path, attempts: int = 3) -> dict:
        """File > Sessions > Export Session, typed into its file dialog."""
        geo = self.d.xdo("getwindowgeometry", wid)
        x, y = (int(v) for v in geo.split("Position:")[1].split()[0].split(","))
        for _ in range(attempts):
            self.d.xdo("mousemove", str(x + 20), str(y + 10), "click", "1")
            time.sleep(0.7)
            self.d.xdo("key", "Down", "Down", "Down", "Right")  # Open, Append, Sessions >
            time.sleep(0.5)
            self.d.xdo("key", "Down", "Down", "Return")  # Restore Last, Import, Export
            time.sleep(1.5)
            self.d.xdo("type", "--delay", "10", str(out))
            self.d.xdo("key", "Return")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if out.exists() and out.stat().st_size:
                    time.sleep(0.3)
                    return json.loads(out.read_text())
                time.sleep(0.2)
            self.d.xdo("key", "Escape", "Escape")
        pytest.fail(f"KernelShark wrote no session to {out}:\n{self.output()}")

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._logf.close()


def colourful_pixels(png: Path) -> int:
    """Pixels of strongly saturated colour: KernelShark's plots (task colours); an empty window
    has only the green marker button."""
    im = QImage(str(png)).convertToFormat(QImage.Format.Format_RGB32)
    a = np.frombuffer(im.constBits(), np.uint8).reshape(im.height(), im.width(), 4)[:, :, :3].astype(np.int16)
    return int(((a.max(2) - a.min(2)) > 80).sum())


def _first_ts(st) -> int:
    return int(st.buffer.events.column("ts")[0].as_py())


def test_session_round_trips_through_kernelshark(qtbot, display, ks_user, shared):
    paths = [str(shared / "trace.dat"), str(shared / "trace-vmguest.dat")]
    w = build_window(load_session(paths, VM_MAP), paths, VM_MAP)
    qtbot.addWidget(w)
    w.resize(1400, 900)
    host, guest = w.session.streams
    h0, g0 = _first_ts(host), _first_ts(guest)
    w.set_time_offset(guest.index, h0 - g0)  # the vm/ guest has no time sync
    w.model.set_visible_cpus(guest.index, [1])
    w.model.set_visible_pairs([("vmguest", 0)])
    w.add_task_row(host.index, 18636)
    sw = host.trace.formats.find("sched_switch").id
    w.filters.set(host.index, "event", "hide", [sw])
    rows = EntryRows(w.session)
    a, b = rows.time_of(5000), rows.time_of(90000)
    w.set_marker("A", a)
    w.set_marker("B", b)
    w.timeline.set_range(h0, h0 + 3_000_000_000)
    ours = shared / "ours.json"
    save_session(w.session_state(), ours)
    os.chmod(ours, 0o644)
    mine = json.loads(ours.read_text())

    ks = KernelShark(display, ks_user, ours)
    try:
        wid = ks.window()
        time.sleep(4)  # the session loads in a thread behind a progress bar
        assert ks.alive(), f"KernelShark died loading our session:\n{ks.output()}"
        shot = display.screenshot(shared / "kernelshark.png")
        assert colourful_pixels(shot) > 20000, f"KernelShark drew no trace (see {shot}):\n{ks.output()}"
        theirs = ks.export_session(wid, shared / "from-kernelshark.json")
        assert ks.alive()
    finally:
        ks.stop()

    # every key both programs have: KernelShark read it as we meant it and wrote it back
    for k in ("data", "CPUPlots", "TaskPlots", "calib. array"):
        assert [s.get(k) for s in theirs["data streams"]] == [s.get(k) for s in mine["data streams"]], k
    for s_ks, s_us in zip(theirs["data streams"], mine["data streams"], strict=True):
        assert {k: v for k, v in s_ks["filters"].items()} == s_us["filters"]
    assert theirs["ComboPlots"] == mine["ComboPlots"] == [[[1, 10, 0], [0, 5, 16748]]]
    for m in ("markA", "markB"):
        assert theirs["Markers"][m] == {"isSet": True, "row": mine["Markers"][m]["row"]}
    r0, r1 = theirs["Model"]["range"]
    assert abs(r0 - h0) < 3e6 and abs(r1 - (h0 + 3_000_000_000)) < 3e6  # KernelShark rounds to its bins
    assert theirs["MainWindow"] == [1400, 900]

    # and kshark-py shows KernelShark's file as the window that made it
    st = load_session_file(shared / "from-kernelshark.json")
    w2 = build_window(load_session(st.files, st.vcpu_map), st.files, st.vcpu_map, st)
    qtbot.addWidget(w2)
    assert w2.session.time_offsets == {guest.index: h0 - g0}
    assert [r.label for r in w2.model.rows] == [r.label for r in w.model.rows]
    assert w2.filters.get(host.index, "event", "hide") == frozenset({sw})
    assert w2.markers.times == {"A": a, "B": b}
    t0, t1 = w2.timeline.view_range()
    assert (t0, t1) == (r0, r1)


def test_session_of_a_file_with_instances_loads_in_kernelshark(qtbot, display, ks_user, shared, traces):
    """A file with a second buffer (``record -B``): KernelShark 2.2.1 cannot reopen a buffer from
    a session and then crashes on the markers; our export lists only the top buffer for it, and the
    marker lands on the same event."""
    path = shared / "host-instances.dat"
    shutil.copy2(traces / "host-instances.dat", path)
    os.chmod(path, 0o644)
    w = build_window(load_session([str(path)]), [str(path)])
    qtbot.addWidget(w)
    w.resize(1400, 900)
    t = int(w.session.streams[0].buffer.events.column("ts")[20000].as_py())
    w.set_marker("A", t)
    ours = shared / "inst.json"
    save_session(w.session_state(), ours)
    os.chmod(ours, 0o644)
    mine = json.loads(ours.read_text())
    ks = KernelShark(display, ks_user, ours)
    try:
        wid = ks.window()
        time.sleep(4)
        assert ks.alive(), f"KernelShark died loading our session:\n{ks.output()}"
        assert "Failed to import" not in ks.output(), ks.output()
        shot = display.screenshot(shared / "kernelshark-inst.png")
        assert colourful_pixels(shot) > 20000, f"KernelShark drew no trace (see {shot}):\n{ks.output()}"
        theirs = ks.export_session(wid, shared / "inst-from-kernelshark.json")
    finally:
        ks.stop()
    assert [s["data"] for s in theirs["data streams"]] == [s["data"] for s in mine["data streams"]]
    assert theirs["Markers"]["markA"] == {"isSet": True, "row": mine["Markers"]["markA"]["row"]}
    st = load_session_file(shared / "inst-from-kernelshark.json")
    w2 = build_window(load_session(st.files), st.files, None, st)
    qtbot.addWidget(w2)
    assert w2.markers.times["A"] == t
