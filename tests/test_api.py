"""The Python API (``kshark_py.open``) against trace-cmd's merged reports of the host + guest pairs:
per-stream counts, first and last timestamps, field sums from a walk over the report text, info
texts; and the runnable example of docs/examples/."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import kshark_py as ks
from kshark_py.model.eventtext import trace_cmd_time

from .support.reports import BARE, LINE, PAIRS, report_walk, saved_report

ROOT = Path(__file__).resolve().parents[1]



@pytest.fixture(scope="module", params=list(PAIRS))
def pair(request, traces):
    folder = traces / request.param
    host, guest = PAIRS[request.param]
    s = ks.open(folder / host, folder / guest)
    return request.param, folder, s


def _labels(s: ks.TraceSession) -> dict[str, str]:
    """stream name -> the label trace-cmd prefixes its lines with (the file name)."""
    return {st.name: st.label for st in s.model.streams}


def _per_stream(s: ks.TraceSession) -> dict[str, dict]:
    e = s.events(["ts", "stream", "event"])
    stream = e.column("stream").to_numpy(zero_copy_only=False)
    ts = e.column("ts").to_numpy()
    out = {}
    for name in np.unique(stream):
        t = ts[stream == name]
        out[name] = {"n": len(t), "first": int(t[0]), "last": int(t[-1])}
    return out


def _usecs(s: ks.TraceSession, name: str, ts: int) -> str:
    tf = next(st.trace for st in s.model.streams if st.name == name)
    return trace_cmd_time(ts, usecs=tf.in_usecs, nsec=False).strip()


def test_counts_and_first_last_equal_the_saved_merged_report(pair):
    """Every pair against the merged report saved beside it (trace-cmd report -i host -i guest)."""
    _, folder, s = pair
    ref = saved_report(folder)["streams"]
    mine = _per_stream(s)
    labels = _labels(s)
    assert {labels[n] for n in mine} == set(ref)
    for name, got in mine.items():
        exp = ref[labels[name]]
        assert got["n"] == exp["n"], name
        assert _usecs(s, name, got["first"]) == exp["first"], name
        assert _usecs(s, name, got["last"]) == exp["last"], name


def test_merged_order_equals_the_saved_report(pair):
    """Row by row: the file and event of every line, in the report's order."""
    _, folder, s = pair
    order = saved_report(folder)["order"]
    e = s.events(["stream", "event"])
    labels = _labels(s)
    stream = [labels[x] for x in e.column("stream").to_pylist()]
    assert list(zip(stream, e.column("event").to_pylist(), strict=True)) == [(lb, ev) for lb, _, ev in order]


@pytest.mark.parametrize("folder", ["vm-tsync", "vm"])
def test_exact_ns_against_trace_cmd_report_t(traces, folder):
    """The zstd pairs also against the installed trace-cmd with -t: first and last ts to the ns."""
    host, guest = PAIRS[folder]
    d = traces / folder
    out = subprocess.run(["trace-cmd", "report", "-t", "-i", str(d / host), "-i", str(d / guest)],
                         capture_output=True, check=True).stdout.decode("utf-8", "surrogateescape")
    ref = report_walk(out.splitlines())["streams"]
    s = ks.open(d / host, d / guest)
    labels = _labels(s)
    for name, got in _per_stream(s).items():
        exp = ref[labels[name]]
        assert got["n"] == exp["n"]
        for k in ("first", "last"):
            assert f"{got[k] // 10**9}.{got[k] % 10**9:09d}" == exp[k], (name, k)


def test_field_sum_equals_a_walk_over_the_report(pair):
    """sum(next_pid) of sched_switch per stream = the sum of the next pids the report prints."""
    _, folder, s = pair
    ref = saved_report(folder)["streams"]
    labels = _labels(s)
    f = s.fields("sched_switch")
    assert f.column_names[:5] == ["ts", "stream", "cpu", "pid", "comm"]
    stream = f.column("stream").to_numpy(zero_copy_only=False)
    pids = f.column("next_pid").to_numpy()
    for name in np.unique(stream):
        assert int(pids[stream == name].astype(np.int64).sum()) == ref[labels[name]]["next_pid"]
    # merged order: ts of a stream's rows ascending as the stream's own, and the same rows as events()
    e = s.events(["ts", "event"])
    assert f.num_rows == pc.sum(pc.equal(e.column("event").cast("string"), "sched_switch")).as_py()


def test_types_of_the_tables(pair):
    _, _, s = pair
    e = s.events()
    assert e.column_names == ["ts", "stream", "cpu", "pid", "comm", "system", "event", "flags", "preempt"]
    assert e.schema.field("ts").type == pa.int64()
    assert e.schema.field("comm").type.value_type == pa.binary()  # the kernel's bytes, lossless
    assert (np.diff(e.column("ts").to_numpy()) >= 0).sum() > 0.9 * e.num_rows  # host clock, merged
    f = s.fields("sched_switch")
    assert pa.types.is_large_string(f.schema.field("prev_comm").type)
    assert f.schema.field("next_pid").type == pa.int32()
    assert s.fields("sched_switch", binary=True).schema.field("prev_comm").type == pa.large_binary()
    w = s.fields("sched_waking")  # its own pid and comm keep their names; the common ones get common_
    assert w.column_names[:6] == ["ts", "stream", "cpu", "common_pid", "common_comm", "comm"]
    with pytest.raises(KeyError, match="no loaded file has the event"):
        s.fields("no_such_event")


def test_info_is_the_report_text(traces):
    """info(rows) = what trace-cmd prints after the event name, for rows of both streams."""
    d = traces / "vm-tsync"
    s = ks.open(d / "trace.dat", d / "trace-vmguest.dat")
    with gzip.open(d / "merged.report.txt.gz", "rt", encoding="utf-8", errors="replace") as f:
        infos = [m.group(7).strip() for m in (LINE.match(x) or BARE.match(x) for x in f) if m]
    rows = np.r_[0:50, len(infos) // 2:len(infos) // 2 + 50, len(infos) - 50:len(infos)]
    got = s.info(rows).to_pylist()
    assert [g.strip() for g in got] == [infos[r] for r in rows]  # the report pads the event name
    with pytest.raises(IndexError):
        s.info([len(infos)])


def test_derived_tables(pair):
    name, _, s = pair
    assert s.runs().column_names == ["stream", "cpu", "pid", "comm", "start", "end", "end_state"]
    assert s.runs().num_rows > 0
    v = s.vcpus()
    assert v.num_rows >= 1 and "host_pid" in v.column_names
    states = s.vcpu_states()
    assert set(states.column("state").to_pylist()) <= {"guest", "exit", "halted", "preempted", "unknown"}
    sync = s.time_sync()
    assert sync.column_names[0] == "guest"
    assert (sync.num_rows > 0) == (name != "vm")  # vm/ was recorded without time sync
    assert s.wakeup_stats().num_rows > 0
    assert s.wakeups().schema.field("stream").type.value_type == pa.string()
    if name == "external/doc-test":  # a real KVM host: VM exits
        assert s.vm_exits().num_rows > 0
        assert s.exit_stats().column("count").to_numpy().sum() == s.vm_exits().num_rows
    tot = s.vcpu_time()
    assert set(tot.column("state").to_pylist()) == {"guest", "exit", "halted", "preempted", "unknown"}


def test_import_is_cheap():
    """``import kshark_py`` imports no API, DuckDB, numpy or Qt (the CLI and the app start with it)."""
    code = "import sys, kshark_py; print(sorted(m for m in sys.modules if m.split('.')[0] in " \
           "('duckdb', 'numpy', 'pyarrow', 'PySide6') or m == 'kshark_py.api'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_example_script_runs(traces):
    d = traces / "vm-tsync"
    r = subprocess.run([sys.executable, str(ROOT / "docs" / "examples" / "api_tour.py"), str(d / "trace.dat"),
                        str(d / "trace-vmguest.dat")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "events per stream" in r.stdout and "vmguest" in r.stdout and "sched_switch" in r.stdout


def test_two_guests_exact_against_the_saved_report_t(traces):
    """vm-2guests: host and two guests, against trace-cmd report -t saved beside them (ns)."""
    d = traces / "vm-2guests"
    s = ks.open(d / "trace.dat", d / "trace-vmguestA.dat", d / "trace-vmguestB.dat")
    with gzip.open(d / "merged.report-t.txt.gz", "rt", encoding="utf-8", errors="surrogateescape") as f:
        ref = report_walk(f)
    labels = _labels(s)
    mine = _per_stream(s)
    assert {labels[n] for n in mine} == set(ref["streams"])
    for name, got in mine.items():
        exp = ref["streams"][labels[name]]
        assert got["n"] == exp["n"]
        assert [f"{got[k] // 10**9}.{got[k] % 10**9:09d}" for k in ("first", "last")] == [exp["first"], exp["last"]]
    e = s.events(["stream", "event"])
    assert list(zip([labels[x] for x in e.column("stream").to_pylist()], e.column("event").to_pylist(),
                    strict=True)) == [(lb, ev) for lb, _, ev in ref["order"]]


def test_instance_streams(traces):
    """host-instances: the top buffer and the irqbuf instance as streams host and host:irqbuf."""
    with gzip.open(traces / "host-instances.dat.report.txt.gz", "rt", encoding="utf-8", errors="replace") as f:
        irqbuf = sum(1 for x in f if x.startswith("irqbuf:") and "EVENTS DROPPED" not in x)
    s = ks.open(traces / "host-instances.dat")
    assert s.streams == ["host", "host:irqbuf"]
    got = {r["stream"]: r["n"] for r in s.sql("SELECT stream, count(*) AS n FROM events GROUP BY stream").to_pylist()}
    assert got == {"host": 62513 - irqbuf, "host:irqbuf": irqbuf}


def test_comm_keeps_the_kernels_bytes(traces):
    """A task that named itself with bytes that are not UTF-8: comm is those bytes, exactly."""
    s = ks.open(traces / "badcomm" / "badcomm.dat")
    comms = set(s.events(["comm"]).column("comm").to_pylist())
    assert b"bad\xff\xfename" in comms
    text = (traces / "badcomm" / "badcomm.dat.report-t.txt").read_bytes()
    assert b"bad\xff\xfename" in text
    assert b"bad\xff\xfename" in set(s.fields("sched_switch", binary=True).column("next_comm").to_pylist())
    assert "bad\ufffd\ufffdname" in set(s.fields("sched_switch").column("next_comm").to_pylist())


def test_a_file_cut_before_its_data_gives_empty_tables(tmp_path, traces):
    """A v6 file cut where its CPU data starts (byte 5,541,888): no events, every table empty, not an error."""
    cut = tmp_path / "cut.dat"
    cut.write_bytes((traces / "host-sched-v6.dat").read_bytes()[:5541888])
    s = ks.open(cut)
    assert s.losses
    assert s.events().num_rows == 0 and s.fields("sched_switch").num_rows == 0
    assert s.runs().num_rows == 0 and s.wakeup_stats().num_rows == 0 and len(s.info([])) == 0
    assert s.sql("SELECT count(*) AS n FROM sched_switch").to_pylist() == [{"n": 0}]
    with pytest.raises(ks.DataLossError, match="cut.dat"):
        ks.open(cut, strict=True)


def test_open_uses_the_load_cache(traces):
    """A second ks.open of a file is mapped from the load cache (one entry, the same tables);
    cache=False neither reads nor writes it."""
    from kshark_py.loaders import loadcache

    path = traces / "host-sched-v7.dat"
    ks.open(path, cache=False)
    assert loadcache.entries() == []
    first = ks.open(path)
    assert len(loadcache.entries()) == 1
    second = ks.open(path)
    assert second.model.streams[0].buffer.events.equals(first.model.streams[0].buffer.events)
    assert second.events().equals(first.events())
    assert len(loadcache.entries()) == 1
