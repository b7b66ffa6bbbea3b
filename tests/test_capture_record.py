"""Real recordings (root + tracefs): our trace.dat is read identically by trace-cmd report and by ours."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from kshark_py.capture.eventspec import EventSpec, missing_events
from kshark_py.capture.recorder import Recorder
from kshark_py.capture.tracefs import RecordError, cpu_count_online
from kshark_py.capture.writer import CpuData, TraceWriter, inspect_v7
from kshark_py.loaders.tracedat import open_trace

from .support.capture import instances, report_both, require_recording


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    tracefs = require_recording()
    before = instances(tracefs)
    out = tmp_path_factory.mktemp("rec")
    rec = Recorder([EventSpec.parse("sched"), EventSpec.parse("sched:sched_switch", "prev_pid != 0")],
                     buffer_kb=2048)
    try:
        rec.start()
        assert rec.instance.path.is_dir()
        subprocess.run(["sh", "-c", "for i in 1 2 3; do ls / >/dev/null; sleep 0.05; done"], check=True)
        rec.stop()
        rec.write_file(out / "v7.dat")
        rec.write_file(out / "v6.dat", version=6)
        rec.write_file(out / "v7none.dat", compression=None)
        lost = rec.lost
    finally:
        rec.close()
        rec.cleanup_files()
    assert instances(tracefs) == before, "instance left behind"
    assert not (tracefs / "instances" / rec.instance.name).exists()
    return out, lost


@pytest.mark.parametrize("name", ["v7.dat", "v6.dat", "v7none.dat"])
def test_trace_cmd_and_ours_agree(recorded, name):
    out, lost = recorded
    tc, ks = report_both(out / name)
    assert "sched_process_fork" in tc and "sched_switch" in tc
    assert tc.splitlines() == ks.splitlines()
    assert lost == [0] * len(lost)


def test_file_contents(recorded):
    out, _ = recorded
    tf = open_trace(out / "v7.dat")
    m = tf.meta
    assert m.trace_id is not None and m.cpu_count == cpu_count_online()
    assert len(m.cpustats) == m.cpu_count and m.cpustats[0].startswith("CPU: 0\n")
    assert m.trace_clock == "local"
    ev = tf.buffers[0].events
    assert ev.num_rows > 0
    assert ("sched", "sched_switch") in set(tf.formats.by_name)
    st = inspect_v7(out / "v7.dat")
    assert st.compression == "zstd" and st.cpu_count == m.cpu_count
    # the sched_switch filter worked: no switch away from the idle task
    tc = subprocess.run(["trace-cmd", "report", "-i", str(out / "v7.dat")], capture_output=True, text=True)
    assert not [ln for ln in tc.stdout.splitlines() if "sched_switch:" in ln and "swapper/" in ln.split(":")[0]]


def test_filter_and_dump(recorded):
    out, _ = recorded
    d = subprocess.run(["trace-cmd", "dump", "--summary", "-i", str(out / "v7.dat")], capture_output=True, text=True)
    assert d.returncode == 0
    assert '[buffer "", "local" clock' in d.stderr + d.stdout


def test_bad_event_and_cleanup():
    tracefs = require_recording()
    before = instances(tracefs)
    with pytest.raises(RecordError, match="not found"):
        Recorder([EventSpec.parse("nosuchsystem:nosuchevent")])
    assert missing_events(tracefs, [EventSpec.parse("sched:nope"), EventSpec.parse("sched")]) == ["sched:nope"]
    assert instances(tracefs) == before


def test_writer_without_data(tmp_path):
    """A CPU with no pages is omitted from BUFFER (v7) / has size 0 (v6), as trace-cmd writes it."""
    from kshark_py.capture.writer import Metadata

    meta = Metadata(header_page=b"", header_event=b"", ftrace_formats=[], event_formats=[])
    for v in (6, 7):
        p = tmp_path / f"e{v}.dat"
        empty = tmp_path / "empty"
        empty.write_bytes(b"")
        with open(p, "w+b") as f:
            w = TraceWriter(f, version=v)
            w.write_initial_header()
            w.write_metadata(meta)
            w.add_standard_options(meta, 1)
            w.set_cpu_count(2)
            w.write_buffer("", "local", [CpuData(0, empty), CpuData(1, empty)])
            w.finish()
        tf = open_trace(p)
        assert tf.meta.trace_id == 1
        assert tf.buffers[0].events.num_rows == 0


def test_instance_removal_is_not_cut_short_by_a_signal():
    """A Ctrl-C/SIGTERM that lands while an instance is being removed waits for the removal (an
    agent stopped while cleaning up left its instance behind, 1 run in 8)."""
    import signal
    import threading
    import time

    from kshark_py.capture.tracefs import signals_deferred

    stop = threading.Event()
    other = threading.Thread(target=stop.wait)  # a second thread, as a recording agent has
    other.start()
    done = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with signals_deferred():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)  # the handler would run here
                done.append("cleanup finished")
    finally:
        stop.set()
        other.join()
    assert done == ["cleanup finished"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_inspect_v7_refuses_a_damaged_guest_file(traces, tmp_path):
    """A guest's file is the peer's bytes: a cut or damaged one is a WriterError, never a traceback."""
    from kshark_py.capture.writer import WriterError

    data = (traces / "vm-tsync" / "trace-vmguest.dat").read_bytes()
    assert inspect_v7(traces / "vm-tsync" / "trace-vmguest.dat").page_size == 4096
    comp = data.index(b"zstd\0") if b"zstd\0" in data[:64] else data.index(b"none\0")
    cases = {
        "compression name not text": data[:comp] + b"\xff\xfe" + data[comp + 2:],
        "cut in the header": data[:comp + 2],
        "cut before the first options offset": data[:comp + 12],
    }
    for _what, body in cases.items():
        p = tmp_path / "g.dat"
        p.write_bytes(body)
        with pytest.raises(WriterError, match="g.dat"):
            inspect_v7(p)


def test_append_to_a_real_guest_file_chains_a_new_options_section(traces, tmp_path):
    """The host's way of completing a guest file, on trace-cmd's own file: the reader finds where the
    chain ends, the new section is chained there, and both readers see the appended option."""
    from kshark_py.capture.writer import append_to_v7
    from kshark_py.loaders.layout import OptionId

    p = tmp_path / "guest.dat"
    shutil.copyfile(traces / "vm-tsync" / "trace-vmguest.dat", p)
    before = open_trace(p)
    n_sections, events = len(before.options_sections), before.buffers[0].events.num_rows
    before.close()
    st = inspect_v7(p)
    assert st.long_size == 8 and st.compression == "zstd" and st.strings_size > 0
    append_to_v7(p, options=[(OptionId.VERSION, b"appended-by-test\0")])
    with open_trace(p) as tf:
        assert len(tf.options_sections) == n_sections + 1
        assert tf.meta.version == "appended-by-test"
        assert tf.buffers[0].events.num_rows == events
    d = subprocess.run(["trace-cmd", "dump", "--options", "-i", str(p)], capture_output=True, text=True)
    assert d.returncode == 0, d.stderr
    assert "appended-by-test" in d.stdout + d.stderr
    r = subprocess.run(["trace-cmd", "report", "-i", str(p)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.count("\n") > events
