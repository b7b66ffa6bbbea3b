"""`kshark-py record` when things go wrong (root + tracefs, real recordings, real full file systems, real signals).

A full output disk keeps the recorded pages and `record --recover` finishes the file; a full temp dir gives a
non-zero status and a per-CPU loss summary; an instance left by a SIGKILLed recorder is removed by the next
`record` (never one of a live recorder); SIGINT/SIGTERM stop the recorded command, or say that it still runs.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kshark_py.capture import leftovers, spool
from kshark_py.loaders.tracedat import open_trace
from tests.support.capture import ROOT, report_both, require_recording, tmpfs

LOAD = "for i in $(seq 40); do ls -R /usr/lib >/dev/null; done"
"""A burst of syscalls and scheduling (a few seconds)."""


def record_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "kshark_py.cli", "record", *args]


def env_for(tmpdir: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(tmpdir))


def run_record(tmpdir: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(record_cmd(*args), capture_output=True, text=True, env=env_for(tmpdir),
                          timeout=timeout, cwd=ROOT)


def our_instances(tracefs: Path, pid: int) -> list[Path]:
    return [p for p in (tracefs / "instances").iterdir() if leftovers.instance_pid(p.name) == pid]


def event_lines(report: str) -> int:
    return sum(1 for ln in report.splitlines() if ln.startswith(" ") and ": " in ln)


def wait_for(cond, timeout: float = 30.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def tracefs():
    return require_recording()


def test_full_output_disk_keeps_the_pages_and_recover_writes_them(tracefs, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with tmpfs(tmp_path / "full", "300k") as full:
        out = full / "trace.dat"
        out.write_bytes(b"an older recording")  # survives: the new file replaces it only once complete
        r = run_record(tmp, "-o", str(out), "-e", "sched", "--file-version", "6", "--", "sh", "-c",
                       "for i in $(seq 30); do ls / >/dev/null; done; sleep 0.3")
        assert r.returncode == 2, r.stderr
        kept = spool.find_spools(tmp)
        assert len(kept) == 1, r.stderr
        d = kept[0].path
        # one line that names the file, how much was written, and where the recording is and how to finish it
        line = [ln for ln in r.stderr.splitlines() if "cannot write" in ln]
        assert len(line) == 1, r.stderr
        assert f"cannot write {out}: No space left on device" in line[0]
        assert re.search(r"\(\d[\d,]* bytes written, the incomplete file was removed\)", line[0])
        assert f"is kept in {d}" in line[0] and f"kshark-py record --recover {d}" in line[0]
        assert "Traceback" not in r.stderr
        assert out.read_bytes() == b"an older recording"
        assert [p.name for p in full.iterdir()] == ["trace.dat"]  # no truncated file that readers open as 0 events
    assert kept[0].size > 0 and (d / "cpu0").exists() and (d / spool.STATE_FILE).exists()
    assert kept[0].state == "stopped" and kept[0].output == str(out)
    rec = run_record(tmp, "--recover", str(d), "-o", str(tmp_path / "recovered.dat"))
    assert rec.returncode == 0, rec.stderr
    m = re.search(r"wrote \S+: ([\d,]+) pages, ([\d,]+) events, read back complete", rec.stderr)
    assert m, rec.stderr
    events = int(m.group(2).replace(",", ""))
    tc, ks = report_both(tmp_path / "recovered.dat")
    assert tc.splitlines() == ks.splitlines()
    assert event_lines(tc) == events > 0
    with open_trace(tmp_path / "recovered.dat") as tf:
        assert tf.version == 6  # as the recording asked (--recover keeps it unless told otherwise)
    assert "sched_switch" in tc
    assert not d.exists()  # recovered: the raw data is gone, the file holds it


def test_recover_refuses_an_existing_output_and_a_non_spool(tracefs, tmp_path):
    r = run_record(tmp_path, "--recover", str(tmp_path))
    assert r.returncode == 2 and "not a kshark-py recording folder" in r.stderr, r.stderr
    r = run_record(tmp_path, "--recover", str(tmp_path), "-e", "sched")
    assert r.returncode == 2 and "--recover takes only" in r.stderr


def test_full_temp_dir_exits_non_zero_with_a_loss_summary(tracefs, tmp_path):
    # room for the metadata (kallsyms, the formats of these events) and about 1 MiB of pages
    kallsyms = len(Path("/proc/kallsyms").read_bytes())
    size = (kallsyms + 2_500_000) // 1024
    with tmpfs(tmp_path / "tmp", f"{size}k") as tmp:
        out = tmp_path / "trace.dat"
        r = run_record(tmp, "-o", str(out), "-e", "sched", "-e", "irq", "-e", "syscalls", "--", "sh", "-c", LOAD)
        leftover = spool.find_spools(tmp)
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr
    summary = [ln for ln in r.stderr.splitlines() if ln.startswith("kshark-py record: ")]
    m = re.match(r"kshark-py record: data lost: ([\d,]+) events on (\d) CPU\(s\); (\S+) holds the rest", summary[0])
    assert m, r.stderr
    assert m.group(3) == str(out)
    cpus = [ln for ln in summary[1:] if re.match(r"kshark-py record: CPU\d+: ", ln)]
    assert len(cpus) == int(m.group(2)) >= 1
    assert any(re.search(r"[\d,]+ pages \([\d,]+ events\) not saved: No space left on device in "
                         rf"{re.escape(str(tmp))}/kshark-rec-\d+-\S+ \(the temp dir", ln) for ln in cpus), r.stderr
    lost = sum(int(x.replace(",", "")) for ln in cpus for x in re.findall(r"([\d,]+) events", ln))
    assert lost == int(m.group(1).replace(",", "")) > 0
    assert not leftover  # the file was written from what was saved: nothing kept
    tc, ks = report_both(out)  # what fitted is a complete, readable file
    assert tc.splitlines() == ks.splitlines() and event_lines(tc) > 0


def _instance_of(tracefs: Path, pid: int, timeout: float = 30.0) -> Path:
    wait_for(lambda: our_instances(tracefs, pid), timeout, f"the instance of process {pid}")
    inst = our_instances(tracefs, pid)[0]
    wait_for(lambda: (inst / "tracing_on").read_text().strip() == "1", timeout, "tracing on")
    return inst


def test_sigkill_leftovers_are_cleaned_by_the_next_record_but_never_a_live_one(tracefs, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = env_for(tmp)
    killed = subprocess.Popen(record_cmd("-o", str(tmp_path / "killed.dat"), "-e", "sched"), env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    live = subprocess.Popen(record_cmd("-o", str(tmp_path / "live.dat"), "-e", "sched"), env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        dead_inst = _instance_of(tracefs, killed.pid)
        live_inst = _instance_of(tracefs, live.pid)
        time.sleep(0.5)  # some pages in the spool
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        assert dead_inst.is_dir() and (dead_inst / "tracing_on").read_text().strip() == "1"  # still recording

        r = run_record(tmp, "-o", str(tmp_path / "next.dat"), "-e", "sched", "-d", "0.5")
        assert r.returncode in (0, 3), r.stderr
        lines = r.stderr.splitlines()
        assert (f"kshark-py record: removed tracefs instance {dead_inst.name} of process {killed.pid}, which no "
                "longer runs (still recording)") in lines, (
            r.stderr, "another kshark-py record starting at the same moment may have removed it first: rerun")
        assert not dead_inst.exists()
        # the live recorder is untouched, and still recording
        assert live_inst.is_dir() and (live_inst / "tracing_on").read_text().strip() == "1"
        assert not any(live_inst.name in ln for ln in lines)
        # the killed one's raw pages are listed with their size and the command that finishes them
        spools = [s for s in spool.find_spools(tmp) if s.pid == killed.pid]
        assert len(spools) == 1
        d = spools[0].path
        listed = [ln for ln in lines if str(d) in ln]
        assert len(listed) == 1 and f"of process {killed.pid}, which no longer runs" in listed[0]
        assert f"kshark-py record --recover {d} writes its trace.dat" in listed[0]
        assert re.search(r": [\d.,]+ (MB|bytes) of raw pages", listed[0])
        assert not any(f"kshark-rec-{live.pid}-" in ln for ln in lines)

        live.send_signal(signal.SIGINT)
        assert live.wait(60) in (0, 3), live.stderr.read() if live.stderr else ""
        assert (tmp_path / "live.dat").exists()
        assert not our_instances(tracefs, live.pid)

        rec = run_record(tmp, "--recover", str(d))  # to the file it was meant for
        assert rec.returncode == 0, rec.stderr
        tc, ks = report_both(tmp_path / "killed.dat")
        assert tc.splitlines() == ks.splitlines() and event_lines(tc) > 0
    finally:
        for p in (killed, live):
            if p.poll() is None:
                p.kill()
                p.wait(10)
        for p in (killed, live):
            for inst in our_instances(tracefs, p.pid):
                leftovers.remove_instance(leftovers.StaleInstance(inst, p.pid, False))


def test_an_instance_of_a_running_process_is_not_stale(tracefs):
    inst = tracefs / "instances" / f"kshark-py-{os.getpid()}-beef"
    os.mkdir(inst)
    try:
        assert inst.name not in [s.name for s in leftovers.stale_instances(tracefs)]
        assert leftovers.remove_instance(leftovers.StaleInstance(inst, os.getpid(), False)) == \
            f"process {os.getpid()} runs"
        assert inst.is_dir()
    finally:
        os.rmdir(inst)


def _recording_with_command(tmp_path: Path, script: str) -> tuple[subprocess.Popen, int, Path, Path]:
    """(recorder, the command's pid, output, stderr file): stderr goes to a file, since a command that outlives
    the recorder keeps a pipe open."""
    out = tmp_path / "trace.dat"
    pidfile = tmp_path / "cmd.pid"
    errfile = tmp_path / "stderr.txt"
    with open(errfile, "w") as err:
        p = subprocess.Popen(record_cmd("-o", str(out), "-e", "sched", "--", "sh", "-c",
                                        f"echo $$ > {pidfile}; {script}"),
                             env=env_for(tmp_path), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 30, "the command")
    return p, int(pidfile.read_text()), out, errfile


def _alive(pid: int) -> bool:
    return spool.pid_running(pid)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_recorded_command_and_writes_the_trace(tracefs, tmp_path, sig):
    p, cmd, out, errfile = _recording_with_command(tmp_path, "exec sleep 120")
    try:
        _instance_of(tracefs, p.pid)
        time.sleep(0.5)
        p.send_signal(sig)
        rc = p.wait(60)
        err = errfile.read_text()
        assert rc == 0, err
        wait_for(lambda: not _alive(cmd), 5, "the command to end")  # stopped, as a terminal's Ctrl-C would
        assert f"wrote {out}" in err and "still runs" not in err
        tc, ks = report_both(out)
        assert tc.splitlines() == ks.splitlines() and event_lines(tc) > 0
        assert not our_instances(tracefs, p.pid)
    finally:
        if p.poll() is None:
            p.kill()
        with contextlib.suppress(ProcessLookupError):
            os.kill(cmd, signal.SIGKILL)


def test_a_command_that_ignores_the_signal_is_named_as_still_running(tracefs, tmp_path):
    p, cmd, out, errfile = _recording_with_command(tmp_path, "trap '' INT TERM; while :; do sleep 0.2; done")
    try:
        _instance_of(tracefs, p.pid)
        p.send_signal(signal.SIGTERM)
        rc = p.wait(60)
        err = errfile.read_text()
        assert rc == 0, err
        assert re.search(rf"SIGTERM received: sh -c .* \(pid {cmd}\) did not exit within 5 s of SIGTERM: it still "
                         r"runs; writing the trace recorded so far", err), err
        assert _alive(cmd)
        tc, ks = report_both(out)
        assert tc.splitlines() == ks.splitlines() and event_lines(tc) > 0
    finally:
        if p.poll() is None:
            p.kill()
        with contextlib.suppress(ProcessLookupError):
            os.kill(cmd, signal.SIGKILL)


def test_capture_panel_lists_leftovers_and_removes_the_instances(tracefs, tmp_path, monkeypatch, qtbot):
    pytest.importorskip("pytestqt")
    import tempfile

    from PySide6 import QtCore

    from kshark_py.ui import capturepanel

    monkeypatch.setattr(capturepanel, "capture_settings", lambda: QtCore.QSettings(
        str(tmp_path / "settings.ini"), QtCore.QSettings.Format.IniFormat))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the panel looks for raw pages left behind
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = tracefs / "instances" / f"kshark-py-{gone.pid}-dead"
    live = tracefs / "instances" / f"kshark-py-{os.getpid()}-beef"
    os.mkdir(dead)
    (dead / "tracing_on").write_text("1")
    os.mkdir(live)
    raw = tmp_path / f"kshark-rec-{gone.pid}-abcdefgh"
    raw.mkdir()
    (raw / "cpu0").write_bytes(bytes(8192))
    try:
        d = capturepanel.CaptureDialog(None, open_result=False)
        qtbot.addWidget(d)
        d.output_dir.setText(str(tmp_path))
        d.run_preflight()
        text = d.checks.toPlainText()
        assert (f"Leftover tracefs instance {dead.name} of process {gone.pid}, which no longer runs (still "
                "recording): remove it") in text
        assert live.name not in text
        assert f"Leftover recording: {raw}: 8,192 bytes of raw pages of process {gone.pid}" in text
        assert not d.cleanup_btn.isHidden()
        assert d.record_btn.isEnabled()  # a warning, not a reason to refuse recording
        qtbot.mouseClick(d.cleanup_btn, QtCore.Qt.MouseButton.LeftButton)
        assert not dead.exists() and live.is_dir()
        assert re.match(r"Removed \d+ leftover tracefs instance\(s\)\.", d.status.text())
        assert dead.name not in d.checks.toPlainText()
        assert str(raw) in d.checks.toPlainText()  # raw pages are the user's to recover or delete
    finally:
        for p in (dead, live):
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(p)


def test_instance_names_carry_the_pid_of_their_process():
    from kshark_py.capture.rawevents import TempInstance  # noqa: F401 - names below follow its pattern
    from kshark_py.capture.tracefs import instance_name

    assert leftovers.instance_pid(instance_name(4321)) == 4321
    assert leftovers.instance_pid("kshark-py-vsock-pid-77-1-abcdef") == 77
    assert leftovers.instance_pid("kshark-py-map-vcpus-5-12-0a0b0c") == 5
    assert leftovers.instance_pid("kshark-py-sync-9-3-ffffff") == 9
    for other in ("kshark-py-ks", "kshark-py", "trace-cmd-1234", "kshark-py-x-y", "clock_synch-0"):
        assert leftovers.instance_pid(other) is None


def test_a_file_sink_on_a_full_disk_accounts_for_every_byte(tmp_path):
    from kshark_py.capture.sinks import FileSink

    ps = 4096
    data = os.urandom(ps * 64)
    with tmpfs(tmp_path / "small", "64k") as small:
        sink = FileSink(small / "cpu0")
        with pytest.raises(OSError, match="No space left"):
            for k in range(0, len(data), 3 * ps + 100):  # writes that end inside pages
                sink.write(data[k:k + 3 * ps + 100])
        done = k
        torn = sink.cut_to_pages(ps)
        kept = (small / "cpu0").read_bytes()
        assert len(kept) % ps == 0 and kept == data[:len(kept)]
        assert kept + torn + sink.unwritten == data[:done + len(data[done:done + 3 * ps + 100])]
        sink.close()


def _panel(qtbot, tmp_path, monkeypatch, out_dir: Path):
    from PySide6 import QtCore

    from kshark_py.ui import capturepanel

    monkeypatch.setattr(capturepanel, "capture_settings", lambda: QtCore.QSettings(
        str(tmp_path / "settings.ini"), QtCore.QSettings.Format.IniFormat))
    d = capturepanel.CaptureDialog(None, open_result=False)
    qtbot.addWidget(d)
    d.output_dir.setText(str(out_dir))
    return d


def test_capture_panel_shows_what_a_full_temp_dir_lost(tracefs, tmp_path, monkeypatch, qtbot):
    pytest.importorskip("pytestqt")
    import tempfile

    kallsyms = len(Path("/proc/kallsyms").read_bytes())
    with tmpfs(tmp_path / "tmp", f"{(kallsyms + 2_500_000) // 1024}k") as tmp:
        monkeypatch.setattr(tempfile, "tempdir", str(tmp))
        d = _panel(qtbot, tmp_path, monkeypatch, tmp_path)
        for ev in ("sched:sched_switch", "sched:sched_wakeup", "raw_syscalls:sys_enter", "raw_syscalls:sys_exit"):
            d.set_event(ev)
        d.command.setText(f"sh -c '{LOAD}'")
        assert d.start_recording()
        qtbot.waitUntil(lambda: d.recording is None, timeout=120000)
    status = d.status.text()
    assert re.search(r"^Wrote trace\.dat in .*; events lost on \d host CPU\(s\) \(see above\)\.$", status), status
    lost_cells = [d.stats.item(i, 4).text() for i in range(d.stats.rowCount()) if d.stats.item(i, 0).text() == "host"]
    assert any(c not in ("0", "") for c in lost_cells), lost_cells  # the counters showed it too
    shown = d.checks.toPlainText()
    assert re.search(r"Host CPU\d+: [\d,]+ pages \([\d,]+ events\) not saved: No space left on device", shown), shown
    assert "#c62828" in d.status.styleSheet() or "#ef6c00" in d.status.styleSheet()
    out = d.result_files[0]
    tc, ks = report_both(out)
    assert tc.splitlines() == ks.splitlines() and event_lines(tc) > 0


def test_capture_panel_names_the_kept_recording_when_the_output_disk_is_full(tracefs, tmp_path, monkeypatch,
                                                                            qtbot):
    pytest.importorskip("pytestqt")
    import tempfile

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    with tmpfs(tmp_path / "full", "400k") as full:
        d = _panel(qtbot, tmp_path, monkeypatch, full)
        d.set_event("sched:sched_switch")
        d.command.setText("sh -c 'for i in $(seq 30); do ls / >/dev/null; done; sleep 0.3'")
        assert d.start_recording()
        qtbot.waitUntil(lambda: d.recording is None, timeout=60000)
        status = d.status.text()
    kept = spool.find_spools(tmp)
    assert len(kept) == 1
    assert status.startswith("Recording failed: cannot write ") and "No space left on device" in status, status
    assert (f"the recording is kept in {kept[0].path}: kshark-py record --recover {kept[0].path} writes its "
            "trace.dat") in status
    rec = run_record(tmp, "--recover", str(kept[0].path), "-o", str(tmp_path / "panel.dat"))
    assert rec.returncode == 0, rec.stderr
    tc, ks = report_both(tmp_path / "panel.dat")
    assert tc.splitlines() == ks.splitlines() and event_lines(tc) > 0


def test_a_temp_dir_too_full_for_the_metadata_refuses_to_start(tracefs, tmp_path):
    with tmpfs(tmp_path / "tmp", "1m") as tmp:
        before = {p.name for p in (tracefs / "instances").iterdir()}
        r = run_record(tmp, "-o", str(tmp_path / "trace.dat"), "-e", "sched", "-d", "5")
        assert r.returncode == 2, r.stderr
        assert re.search(rf"^kshark-py record: cannot save the recording's metadata in {re.escape(str(tmp))}/"
                         r"kshark-rec-\d+-\S+: No space left on device \(the temp dir for raw pages: TMPDIR\)$",
                         r.stderr, re.M), r.stderr
        assert "Traceback" not in r.stderr
        assert not list(tmp.iterdir())  # nothing left in it
        assert not (tmp_path / "trace.dat").exists()
        assert not [n for n in {p.name for p in (tracefs / "instances").iterdir()} - before
                    if leftovers.instance_pid(n) is not None and not spool.pid_running(leftovers.instance_pid(n))]
