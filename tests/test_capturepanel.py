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

from kshark_py.capture.tracefs import find_tracefs  # noqa: E402
from kshark_py.loaders.tracedat import open_trace  # noqa: E402
from kshark_py.ui import capturepanel  # noqa: E402
from kshark_py.ui.capturepanel import CaptureDialog  # noqa: E402

from .support.capture import free_port, instances, ours, require_recording  # noqa: E402


@pytest.fixture(autouse=True)
def settings_file(tmp_path, monkeypatch):
    """Every dialog of these tests keeps its choices in a temporary INI file, never in the user's ~."""
    path = tmp_path / "settings" / "kshark-py.ini"
    monkeypatch.setattr(capturepanel, "capture_settings",
                        lambda: QtCore.QSettings(str(path), QtCore.QSettings.Format.IniFormat))
    return path


@pytest.fixture
def dialog(qtbot, tmp_path):
    require_recording()
    d = CaptureDialog(None, open_result=False)
    d.output_dir.setText(str(tmp_path))
    d.run_preflight()
    qtbot.addWidget(d)
    return d


def recorded_dir(dialog) -> Path:
    """The folder the dialog's last recording went into (a new kshark-YYYYmmdd-HHMMSS per recording)."""
    d = dialog.recording_dir
    assert d is not None and re.fullmatch(r"kshark-\d{8}-\d{6}(-\d+)?", d.name), d
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
    from kshark_py.capture.eventspec import EventSpec
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
    out = recorded_dir(dialog)
    assert out.parent == tmp_path
    assert dialog.result_files == [out / "trace.dat"], dialog.status.text()
    tf = open_trace(out / "trace.dat")
    assert tf.buffers[0].events.num_rows > 0
    rep = ours("report", "-i", str(out / "trace.dat"))
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
    from .support.capture import our_cli, start, stop, wait_listening

    port = free_port()
    agent = start(our_cli("agent", "-N", "127.0.0.1", "-p", str(port), "--once"), tmp_path)
    try:
        wait_listening(port, agent)
        dialog.max_stat_rows = 1000  # every CPU's row, whatever this machine's CPU count
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
    out = recorded_dir(dialog)
    assert dialog.result_files == [out / "trace.dat", out / "trace-g.dat"], dialog.status.text()
    # the table's last state: the final counts, equal to what the reader finds in the guest file
    buf = open_trace(out / "trace-g.dat").buffers[0]
    rows = _guest_rows(dialog, "g")
    for st in buf.stats:
        assert rows[str(st.cpu)][0] == f"{st.events:,}", (rows, st)


# --- issue 9: the capture dialog tried end to end -------------------------------------------------------------
ORIGINAL_SETTINGS = capturepanel.capture_settings


def event_names(path: Path) -> set[str]:
    """The names of the events a trace file holds (loads it with our reader)."""
    import pyarrow.compute as pc

    tf = open_trace(path)
    buf = tf.buffers[0]
    ids = set(pc.unique(buf.events["event_id"]).to_pylist())
    return {f.name for f in tf.formats if f.id in ids}


def test_each_guest_gets_its_own_events(dialog):
    """As trace-cmd's ``-e sched:sched_switch -A g1 -e irq -A g2 -e all -A g3``: the Events column of a guest row
    is that guest's; an empty one means the host's ticked events."""
    from kshark_py.capture.session import HostSession

    dialog.set_event("sched:sched_switch")
    dialog.add_guest("g1", "TCP", "127.0.0.1:5000", "irq")
    dialog.add_guest("g2", "vsock", "3", "all")
    dialog.add_guest("g3", "TCP", "127.0.0.1:5001", "sched:sched_wakeup, sched:sched_waking")
    dialog.add_guest("g4", "TCP", "127.0.0.1:5002", "")
    cfgs = {g.name: [capturepanel.spec_text(s) for s in g.specs] for g in dialog.guest_configs()}
    assert cfgs == {"g1": ["irq"], "g2": ["all"], "g3": ["sched:sched_wakeup", "sched:sched_waking"],
                    "g4": ["sched:sched_switch"]}
    s = HostSession(dialog.output_dir.text() + "/x.dat", dialog.record_specs(), dialog.guest_configs())
    try:
        assert [g.args("local") for g in s.guests] == [
            ("-C", "local", "-e", "irq"), ("-C", "local", "-e", "all"),
            ("-C", "local", "-e", "sched:sched_wakeup", "-e", "sched:sched_waking"),
            ("-C", "local", "-e", "sched:sched_switch")]
    finally:
        s.close()
    dialog.run_preflight()
    text = dialog.checks.toPlainText()
    assert "g1 (irq), g2 (all), g3 (sched:sched_wakeup sched:sched_waking), g4 (sched:sched_switch)" in text
    assert "used twice" not in text
    dialog.add_guest("g1", "vsock", "4", "all")  # the same name twice would write trace-g1.dat twice
    dialog.run_preflight()
    assert "Guest name g1 is used twice" in dialog.checks.toPlainText()
    assert not dialog.record_btn.isEnabled()


def test_transport_column_decides_how_to_connect(dialog):
    """A vsock row connects over vsock only (a TCP address there is an error, not a TCP connection), a TCP row
    over TCP only; the preflight says what is wrong with the address and Record stays off."""
    import socket

    from kshark_py.capture.session import GuestConfig, HostSession
    from kshark_py.capture.transport import Address

    dialog.set_event("sched:sched_switch")
    with socket.socket() as listener:  # something listens: the old code called this vsock row "answering"
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        dialog.add_guest("v", "vsock", f"127.0.0.1:{port}")
        dialog.run_preflight()
        text = dialog.checks.toPlainText()
        assert "Guest v: bad address" in text and "vsock address is CID[:PORT]" in text, text
        assert "an agent answers" not in text
        assert not dialog.record_btn.isEnabled()
        with pytest.raises(ValueError, match="vsock address"):
            dialog.guest_configs()[0].address()
        with pytest.raises(ValueError, match="vsock address"):
            HostSession("x.dat", [], [GuestConfig(f"v@127.0.0.1:{port}", specs=dialog.specs(), transport="vsock")])
        # the same address on a TCP row is fine
        dialog.guests.cellWidget(0, 1).setCurrentText("TCP")
        dialog.run_preflight()
        assert "Guest v: an agent answers" in dialog.checks.toPlainText()
        assert dialog.record_btn.isEnabled()
    assert dialog.guest_configs()[0].address() == ("v", Address("tcp", "127.0.0.1", port))
    # a CID on a TCP row is an error; on a vsock row it is a vsock address with the default port
    dialog.guests.item(0, 2).setText("3")
    dialog.run_preflight()
    assert "a TCP address is HOST:PORT" in dialog.checks.toPlainText()
    assert not dialog.record_btn.isEnabled()
    dialog.guests.cellWidget(0, 1).setCurrentText("vsock")
    assert dialog.guest_configs()[0].address() == ("v", Address("vsock", 3, 823))
    assert dialog.guest_configs()[0].transport == "vsock" and not dialog.guest_configs()[0].use_fifos
    # FIFO: data over FIFOs (required), control over the address, whichever kind it is
    dialog.guests.cellWidget(0, 1).setCurrentText("FIFO")
    dialog.guests.item(0, 2).setText("127.0.0.1:9")
    g = dialog.guest_configs()[0]
    assert g.use_fifos and g.fifos_required and g.transport is None
    assert g.address()[1].family == "tcp"
    dialog.run_preflight()
    assert "FIFO transport chosen but /var/lib/trace-cmd/virt/v/" in dialog.checks.toPlainText()


def test_preflight_follows_every_change(dialog, qtbot, tmp_path):
    """No Check press: the findings and the Record button follow each change, and come back once it is fixed."""
    assert dialog.record_btn.isEnabled()
    dialog.output_dir.setText(str(tmp_path / "missing"))
    qtbot.waitUntil(lambda: "does not exist" in dialog.checks.toPlainText(), timeout=5000)
    assert not dialog.record_btn.isEnabled()
    dialog.output_dir.setText(str(tmp_path))
    qtbot.waitUntil(lambda: "does not exist" not in dialog.checks.toPlainText(), timeout=5000)
    qtbot.waitUntil(dialog.record_btn.isEnabled, timeout=5000)
    dialog.set_event("sched:sched_switch")
    qtbot.waitUntil(lambda: "Will record 1 event(s)" in dialog.checks.toPlainText(), timeout=5000)
    dialog.add_guest("g", "TCP", f"127.0.0.1:{free_port()}")
    qtbot.waitUntil(lambda: "agent not reachable" in dialog.checks.toPlainText(), timeout=5000)
    assert not dialog.record_btn.isEnabled()
    dialog.guests.setCurrentCell(0, 0)
    dialog._remove_guest()
    qtbot.waitUntil(dialog.record_btn.isEnabled, timeout=5000)
    assert "agent not reachable" not in dialog.checks.toPlainText()
    dialog.command.setText("sleep 1")
    qtbot.waitUntil(lambda: "while running “sleep 1”" in dialog.checks.toPlainText(), timeout=5000)


class FailingAgent:
    """An agent that answers TRACE_REQ (TRACE_RESP, or NOT_SUPP) and then hangs up, as trace-cmd's agent does
    when it cannot enable ftrace in the guest (it dies after TRACE_RESP, before any metadata)."""

    def __init__(self, reply: str) -> None:
        import socket
        import threading

        self.reply = reply
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        from kshark_py.capture import msg as M

        conn, _ = self.sock.accept()
        with conn:
            c = M.Connection()
            while (m := c.next_message()) is M.NEED_DATA:
                c.feed(conn.recv(4096))
            assert isinstance(m, M.TraceReq)
            if self.reply == "hangs_up":  # as our agent when the guest lacks an event: no TRACE_RESP
                return
            if self.reply == "not_supp":
                conn.sendall(M.encode(M.NotSupp()))
            else:
                conn.sendall(M.encode(M.TraceResp(0, 4096, 1234, "", 0, (1,))))
            time.sleep(0.2)

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)


@pytest.mark.parametrize("reply", ["dies", "not_supp", "hangs_up"])
def test_failing_agent_keeps_the_host_data(qtbot, tmp_path, reply):
    """The guest is dropped with the reason its agent gave (or how it failed); the host's file is written,
    announced and loads; no partial guest file is left; the dialog stays open to show what happened."""
    require_recording()
    d = CaptureDialog(None)
    qtbot.addWidget(d)
    d.output_dir.setText(str(tmp_path))
    d.set_event("sched:sched_switch")
    d.duration.setValue(1.0)
    d.tsync.setValue(-1)
    agent = FailingAgent(reply)
    try:
        d.add_guest("bad", "TCP", f"127.0.0.1:{agent.port}")
        d.show()
        with qtbot.waitSignal(d.filesRecorded, timeout=30000) as got:
            assert d.start_recording(), d.checks.toPlainText()
    finally:
        agent.close()
    qtbot.waitUntil(lambda: d.recording is None, timeout=10000)
    out = recorded_dir(d)
    assert got.args == [[str(out / "trace.dat")]]
    assert sorted(p.name for p in out.iterdir()) == ["trace.dat"]
    assert open_trace(out / "trace.dat").buffers[0].events.num_rows > 0
    assert d.status.text() == f"Wrote trace.dat in {out}; 1 guest(s) not recorded or cut short (see above)."
    status = d.checks.toPlainText()
    assert f"Wrote {out / 'trace.dat'}" in status, status
    if reply == "dies":
        assert "guest bad: its agent accepted the request, then closed the connection without sending its trace " \
               "metadata" in status and "ftrace" in status, status
    elif reply == "not_supp":
        assert "guest bad: its agent refused the request (NOT_SUPP" in status, status
    else:
        assert "guest bad: its agent closed the connection without answering the request" in status, status
    assert "peer closed the connection" not in status
    assert d.isVisible()  # not closed: the user reads why the guest is missing


def test_host_only_2s_of_sched_events_announced_and_loadable(qtbot, tmp_path):
    """Record 2 s of sched events from the dialog, host only: filesRecorded gets a file that loads; a second
    recording goes into its own new folder, never beside the first one's files (or an older guest file)."""
    require_recording()
    (tmp_path / "trace-old.dat").write_bytes(b"not ours")  # an older recording's guest file in the folder
    folders = []
    for _ in range(2):
        d = CaptureDialog(None)  # the second one starts with the first one's choices (settings)
        qtbot.addWidget(d)
        if not folders:
            d.output_dir.setText(str(tmp_path))
            d.set_event("sched:sched_switch")
            d.set_event("sched:sched_wakeup")
            d.duration.setValue(2.0)
        assert d.output_dir.text() == str(tmp_path) and d.duration.value() == 2.0
        d.show()
        t0 = time.monotonic()
        with qtbot.waitSignal(d.filesRecorded, timeout=30000) as got:
            assert d.start_recording(), d.checks.toPlainText()
        assert time.monotonic() - t0 >= 2.0
        out = recorded_dir(d)
        assert out.parent == tmp_path and out not in folders
        folders.append(out)
        (host,) = got.args[0]
        assert Path(host) == out / "trace.dat"
        assert open_trace(host).buffers[0].events.num_rows > 0
        assert event_names(Path(host)) <= {"sched_switch", "sched_wakeup"} and "sched_switch" in event_names(Path(host))
        qtbot.waitUntil(lambda d=d: not d.isVisible(), timeout=5000)  # accepted: the app opens the files
    for f in folders:
        assert sorted(p.name for p in f.iterdir()) == ["trace.dat"]
    assert (tmp_path / "trace-old.dat").read_bytes() == b"not ours"


def test_host_and_our_agent_2s_each_with_its_events(qtbot, tmp_path):
    """Host + our agent over TCP on 127.0.0.1, 2 s: both files announced and loadable; the host recorded its
    ticked event, the guest the events of its row; every source's counter rows are in view."""
    from .support.capture import our_agent

    require_recording()
    d = CaptureDialog(None)
    qtbot.addWidget(d)
    d.output_dir.setText(str(tmp_path))
    d.set_event("sched:sched_switch")
    d.duration.setValue(2.0)
    with our_agent(tmp_path) as ag:
        d.add_guest("g", "TCP", f"127.0.0.1:{ag.port}", "sched:sched_wakeup sched:sched_waking")
        d.show()
        with qtbot.waitSignal(d.filesRecorded, timeout=60000) as got:
            assert d.start_recording(), d.checks.toPlainText()
        qtbot.waitUntil(lambda: d.recording is None, timeout=10000)
    out = recorded_dir(d)
    assert got.args[0] == [str(out / "trace.dat"), str(out / "trace-g.dat")]
    host, guest = (Path(p) for p in got.args[0])
    assert event_names(host) == {"sched_switch"}
    assert event_names(guest) and event_names(guest) <= {"sched_wakeup", "sched_waking"}, event_names(guest)
    # every row of the counters (host CPUs + total, guest CPUs + total) is inside the visible part of the table
    from kshark_py.capture.control import CpuProgress

    n = d.stats.rowCount()  # guest and host are this machine: as many CPUs each
    assert n == len(capturepanel.stat_rows([CpuProgress(w, i, 0, 0, 0) for w in ("host", "g")
                                            for i in range(os.cpu_count() or 1)])), n
    view = d.stats.viewport().rect()
    for i in range(n):
        assert view.contains(d.stats.visualItemRect(d.stats.item(i, 0))), (i, n, view)
    assert {d.stats.item(i, 0).text() for i in range(n)} == {"host", "g"}


def test_many_cpus_collapse_to_one_row_per_source():
    """A 16-CPU host and a 2-CPU guest: the host shrinks to its total, so the guest is not pushed out of view;
    a second 16-CPU guest shrinks too."""
    from kshark_py.capture.control import CpuProgress

    cpus = [CpuProgress("host", i, 10, 1, 0) for i in range(16)] + [CpuProgress("g", i, 5, 2, 1) for i in range(2)]
    rows = capturepanel.stat_rows(cpus)
    assert [(c.where, c.cpu, c.bytes, c.events, c.lost, total) for c, total in rows] == [
        ("host", -1, 160, 16, 0, True), ("g", 0, 5, 2, 1, False), ("g", 1, 5, 2, 1, False), ("g", -1, 10, 4, 2, True)]
    big = cpus + [CpuProgress("h", i, 1, 1, 0) for i in range(16)]
    assert [(c.where, total) for c, total in capturepanel.stat_rows(big)] == [
        ("host", True), ("g", False), ("g", False), ("g", True), ("h", True)]
    few = capturepanel.stat_rows(cpus[:2] + cpus[16:])
    assert [(c.where, c.cpu, total) for c, total in few] == [
        ("host", 0, False), ("host", 1, False), ("host", -1, True), ("g", 0, False), ("g", 1, False), ("g", -1, True)]


def test_dialog_remembers_its_choices(qtbot, tmp_path, settings_file):
    """Events (and filters), guests, folder, duration, command...: kept in QSettings (organization kshark-py),
    here a temporary file, and restored by the next dialog."""
    d = CaptureDialog(None, open_result=False)
    qtbot.addWidget(d)
    d.set_event("sched:sched_switch")
    d.set_event("sched:sched_wakeup", filt="pid > 0")
    d.add_guest("g1", "TCP", "127.0.0.1:7000", "irq")
    d.add_guest("g2", "FIFO", "3", "")
    d.output_dir.setText(str(tmp_path))
    d.duration.setValue(2.5)
    d.command.setText("sleep 1")
    d.tsync.setValue(-1)
    d.reject()
    assert settings_file.is_file()
    d2 = CaptureDialog(None, open_result=False)
    qtbot.addWidget(d2)
    checked = {n: it.text(1) for n, it in d2.event_items().items()
               if it.checkState(0) == QtCore.Qt.CheckState.Checked}
    assert checked == {"sched:sched_switch": "", "sched:sched_wakeup": "pid > 0"}
    assert d2.guest_rows() == [("g1", "TCP", "127.0.0.1:7000", "irq"), ("g2", "FIFO", "3", "")]
    assert (d2.output_dir.text(), d2.duration.value(), d2.command.text(), d2.tsync.value()) == (
        str(tmp_path), 2.5, "sleep 1", -1)
    # the real location: organization "kshark-py", an INI file of the user scope (not touched here)
    real = ORIGINAL_SETTINGS()
    assert real.organizationName() == "kshark-py" and real.format() == QtCore.QSettings.Format.IniFormat


def test_preflight_escapes_command_names_and_paths(dialog, tmp_path):
    """What the user typed is shown as typed, never interpreted as HTML."""
    odd = tmp_path / "a<b>dir&x"
    odd.mkdir()
    dialog.output_dir.setText(str(odd))
    dialog.command.setText("sh -c 'echo <i>x</i> && true'")
    dialog.add_guest("<u>g</u>", "TCP", "127.0.0.1:1", "<s>irq&amp;")
    dialog.run_preflight()
    text = dialog.checks.toPlainText()
    assert "“sh -c 'echo <i>x</i> && true'”" in text, text
    assert "<u>g</u> (<s>irq&amp;)" in text, text
    assert str(odd / "kshark-YYYYmmdd-HHMMSS" / "trace.dat") in text, text
    assert "Guest <u>g</u>:" in text


def test_trace_cmd_agent_counts_are_explained(qtbot, tmp_path, env_ok):
    """trace-cmd's agent sends a guest CPU's pages only when its ring buffer is half full (the guest's
    buffer_percent) or at Stop: the dialog says so while recording, and the final counts match the file."""
    from .support.capture import TC_NS, start, stop, wait_listening

    port = free_port()
    agent = start(["sh", str(TC_NS), "agent", "-N", "127.0.0.1", "-p", str(port)], tmp_path)
    try:
        wait_listening(port, agent)
        d = CaptureDialog(None, open_result=False)
        qtbot.addWidget(d)
        d.max_stat_rows = 1000  # every CPU's row, whatever this machine's CPU count
        d.output_dir.setText(str(tmp_path))
        d.set_event("sched:sched_switch")
        d.add_guest("tc", "TCP", f"127.0.0.1:{port}", "sched:sched_process_exec")
        d.tsync.setValue(-1)
        d.command.setText("sh -c 'for i in $(seq 30); do /bin/true; sleep 0.05; done'")
        d.show()
        assert d.start_recording(), d.checks.toPlainText()
        qtbot.waitUntil(lambda: d.note.isVisible(), timeout=20000)
        assert d.recording is not None and d.recording.state == "recording"
        note = d.note.text()
        assert note.startswith("Guest tc: trace-cmd's agent sends a CPU's pages only once") and "buffer_percent" in note
        qtbot.waitUntil(lambda: d.recording is None, timeout=60000)
    finally:
        stop(agent)
    out = recorded_dir(d)
    assert d.result_files == [out / "trace.dat", out / "trace-tc.dat"], d.status.text()
    buf = open_trace(out / "trace-tc.dat").buffers[0]
    assert buf.events.num_rows >= 30  # the execs above, all sent at Stop
    rows = _guest_rows(d, "tc")
    for st in buf.stats:
        assert rows[str(st.cpu)][0] == f"{st.events:,}", (rows, st)


def test_return_means_record_not_another_button(dialog):
    """Return in the dialog presses Record (the default button), whichever button last had the focus."""
    from PySide6 import QtWidgets

    buttons = {b.text(): b for b in dialog.findChildren(QtWidgets.QPushButton)}
    assert buttons["Record"].isDefault()
    assert [t for t, b in buttons.items() if b.autoDefault()] == ["Record"], buttons
