"""The capture panel offscreen: event tree from tracefs, search, preflight findings, a real recording.

Needs root and tracefs (as in CI); the recording is a short local one started from the dialog, whose
file our reader must open.  A PNG of the dialog is written for a visual check.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from PySide6 import QtCore  # noqa: E402

from kshark_py.capture.recorder import find_tracefs  # noqa: E402
from kshark_py.loaders.tracedat import open_trace  # noqa: E402
from kshark_py.ui.capturepanel import CaptureDialog  # noqa: E402

from .test_capture_interop import free_port  # noqa: E402
from .test_capture_record import instances, ours, require_recording  # noqa: E402


@pytest.fixture
def dialog(qtbot, tmp_path):
    require_recording()
    d = CaptureDialog(None, open_result=False)
    d.output_dir.setText(str(tmp_path))
    qtbot.addWidget(d)
    return d


def test_event_tree_lists_tracefs_events_and_search_filters(dialog):
    avail = (find_tracefs() / "available_events").read_text().split()
    items = dialog.event_items()
    assert "sched:sched_switch" in items
    assert set(items) == set(avail)
    dialog.search.setText("sched_sw")
    shown = dialog.visible_events()
    assert shown and all("sched_sw" in n for n in shown)
    assert "sched:sched_switch" in shown
    dialog.search.setText("")
    assert len(dialog.visible_events()) == len(items)


def test_preflight_flags_missing_event_and_unreachable_guest(dialog):
    from kshark_py.capture.control import preflight
    from kshark_py.capture.recorder import EventSpec
    from kshark_py.capture.session import GuestConfig

    checks = preflight([EventSpec.parse("sched:no_such_event")], [GuestConfig(f"g@127.0.0.1:{free_port()}")])
    errors = [c.message for c in checks if c.level == "error"]
    assert any("sched:no_such_event does not exist" in m for m in errors), errors
    assert any("Guest g: agent not reachable" in m for m in errors), errors
    assert any("ptp" in c.message for c in checks)
    # the same through the dialog: the Record button is disabled and the text says why
    dialog.add_guest("g", "TCP", f"127.0.0.1:{free_port()}")
    dialog.run_preflight()
    assert not dialog.record_btn.isEnabled()
    assert "agent not reachable" in dialog.checks.toPlainText()
    assert "Trace clock" in dialog.checks.toPlainText()


def test_recording_from_the_dialog(dialog, qtbot, tmp_path):
    tracefs = find_tracefs()
    before = instances(tracefs)
    dialog.set_event("sched:sched_switch")
    dialog.set_event("sched:sched_wakeup", filt="pid > 0")
    dialog.command.setText("sh -c 'for i in 1 2 3; do ls / >/dev/null; sleep 0.05; done'")
    dialog.resize(1100, 720)
    dialog.show()
    assert dialog.start_recording()
    qtbot.waitUntil(lambda: dialog.stats.rowCount() >= os.cpu_count(), timeout=10000)
    dialog.grab().save(str(tmp_path / "capture-panel-recording.png"))
    qtbot.waitUntil(lambda: dialog.recording is None, timeout=30000)
    assert dialog.result_files == [tmp_path / "trace.dat"], dialog.status.text()
    tf = open_trace(tmp_path / "trace.dat")
    assert tf.buffers[0].events.num_rows > 0
    rep = ours("report", "-i", str(tmp_path / "trace.dat"))
    assert rep.returncode == 0, rep.stderr
    kinds = set(re.findall(r"\]\s+\d+\.\d+:\s+(\w+):", rep.stdout))
    assert "sched_switch" in kinds and kinds <= {"sched_switch", "sched_wakeup"}, kinds
    assert "Wrote" in dialog.status.text()
    assert instances(tracefs) == before
    if os.environ.get("KSHARK_SHOTS"):
        Path(os.environ["KSHARK_SHOTS"]).mkdir(parents=True, exist_ok=True)
        dialog.grab().save(os.path.join(os.environ["KSHARK_SHOTS"], "capture-panel.png"))


def test_stop_button_ends_a_recording_without_duration(dialog, qtbot):
    dialog.set_event("sched:sched_switch")
    assert dialog.start_recording()
    qtbot.wait(300)
    t0 = time.monotonic()
    qtbot.mouseClick(dialog.stop_btn, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.recording is None, timeout=30000)
    assert time.monotonic() - t0 < 20
    assert dialog.result_files and dialog.result_files[0].is_file()


def _guest_rows(dialog, name: str) -> dict[str, tuple[str, str]]:
    """CPU column -> (Events, Lost) text of the stats rows of guest ``name``."""
    out = {}
    for i in range(dialog.stats.rowCount()):
        cells = [dialog.stats.item(i, j).text() if dialog.stats.item(i, j) else "" for j in range(5)]
        if cells[0] == name:
            out[cells[1]] = (cells[3], cells[4])
    return out


def test_guest_event_counts_while_recording(dialog, qtbot, tmp_path):
    """With our agent over TCP, the guest's rows show events counted from its pages while still recording."""
    from .test_capture_interop import our_cli, start, stop, wait_listening

    port = free_port()
    agent = start(our_cli("agent", "-N", "127.0.0.1", "-p", str(port), "--once"), tmp_path)
    try:
        wait_listening(port, agent)
        dialog.set_event("sched:sched_switch")
        dialog.add_guest("g", "TCP", f"127.0.0.1:{port}")
        dialog.tsync.setValue(-1)
        dialog.command.setText("sh -c 'for i in $(seq 100); do ls / >/dev/null; sleep 0.05; done'")
        dialog.resize(1100, 720)
        dialog.show()
        assert dialog.start_recording(), dialog.checks.toPlainText()

        def counted_live() -> bool:
            rec = dialog.recording
            rows = _guest_rows(dialog, "g")
            return (rec is not None and rec.state == "recording"
                    and any(ev not in ("", "—") and int(ev.replace(",", "")) > 0 for ev, _ in rows.values()))

        qtbot.waitUntil(counted_live, timeout=20000)
        rows = _guest_rows(dialog, "g")
        assert "0" in rows and ("all" in rows) == (len(rows) > 2), rows
        if os.environ.get("KSHARK_SHOTS"):
            Path(os.environ["KSHARK_SHOTS"]).mkdir(parents=True, exist_ok=True)
            dialog.grab().save(os.path.join(os.environ["KSHARK_SHOTS"], "capture-panel-guest.png"))
        dialog.stop_recording()
        qtbot.waitUntil(lambda: dialog.recording is None, timeout=60000)
        agent.wait(timeout=30)
    finally:
        stop(agent)
    assert dialog.result_files == [tmp_path / "trace.dat", tmp_path / "trace-g.dat"], dialog.status.text()
    # the table's last state: the final counts, equal to what the reader finds in the guest file
    buf = open_trace(tmp_path / "trace-g.dat").buffers[0]
    rows = _guest_rows(dialog, "g")
    for st in buf.stats:
        assert rows[str(st.cpu)][0] == f"{st.events:,}", (rows, st)
