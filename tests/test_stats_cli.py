"""``kshark-py stats --wakeups / --latency``: CSV, JSON and table output against the walks of
trace-cmd's reports (test_analysis_wakeups, test_analysis_latency); errors are one line, exit 2.
(``--exits`` and ``--vcpus`` are tested with their analyses.)"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict

import pytest

from kshark_py.cli import main

from .support.reports import (
    CASES,
    irq_of,
    merged_map,
    reference_stats,
    report_events,
    walk_pairs,
    walk_wakeups,
)

WAKEUP_HEADER = "stream,pid,comm,count,total_ns,p50_ns,p99_ns,max_ns,max_at_ns,across_loss"


def _run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def v7_walk(traces):
    return walk_wakeups(traces, *CASES["host-sched-v7"])


def _csv_rows(out):
    return list(csv.DictReader(io.StringIO(out)))


def test_wakeups_csv(traces, capsys, v7_walk):
    session, ev, walk = v7_walk
    rc, out, err = _run(capsys, "stats", "-i", str(traces / "host-sched-v7.dat"), "--wakeups", "--format", "csv")
    assert rc == 0, err
    assert out.splitlines()[0] == WAKEUP_HEADER
    ref = reference_stats(session, ev, walk)
    rows = _csv_rows(out)
    assert len(rows) == len(ref)
    for r in rows:
        exp = ref[(int(r["stream"]), int(r["pid"]))]
        assert r["comm"] == exp["comm"]
        for k in ("count", "total_ns", "p50_ns", "p99_ns", "max_ns", "max_at_ns"):
            assert r[k] == str(exp[k])  # integers in ns, no decimals


def test_wakeups_pair_range_json(traces, capsys):
    files, ref = CASES["vm-tsync"]
    session, ev, walk = walk_wakeups(traces, files, ref)
    _s, _r, ts = merged_map(session, len(ev))
    t0, t1 = int(ts[len(ts) // 5]), int(ts[len(ts) // 2])
    rc, out, err = _run(capsys, "stats", *(str(traces / f) for f in files), "--wakeups", "--range", f"{t0}:{t1}",
                        "--format", "json")
    assert rc == 0, err
    rows = json.loads(out)
    exp = reference_stats(session, ev, walk, t0, t1)
    assert {(r["stream"], r["pid"]): (r["count"], r["max_ns"], r["max_at_ns"]) for r in rows} == \
        {k: (v["count"], v["max_ns"], v["max_at_ns"]) for k, v in exp.items()}
    assert {r["stream"] for r in rows} == {0, 1}
    assert all(t0 <= r["max_at_ns"] <= t1 for r in rows)  # guest times on the host clock
    # an open side
    rc, out2, _ = _run(capsys, "stats", *(str(traces / f) for f in files), "--wakeups", "--range", f"{t0}:",
                       "--format", "json")
    assert rc == 0
    assert sum(r["count"] for r in json.loads(out2)) == sum(v["count"] for v in reference_stats(
        session, ev, walk, t0, None).values())


def test_wakeups_table(traces, capsys, v7_walk):
    session, ev, walk = v7_walk
    rc, out, _ = _run(capsys, "stats", str(traces / "host-sched-v7.dat"), "--wakeups")  # bare file name
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split() == WAKEUP_HEADER.split(",")
    assert len(lines) == 1 + len(reference_stats(session, ev, walk))
    first = max(reference_stats(session, ev, walk).items(), key=lambda kv: kv[1]["max_ns"])
    assert lines[1].split()[:2] == ["0", str(first[0][1])]  # worst task first


def test_time_offset(traces, capsys):
    p = str(traces / "host-sched-v7.dat")
    _rc, a, _ = _run(capsys, "stats", "-i", p, "--wakeups", "--format", "json")
    rc, b, _ = _run(capsys, "stats", "-i", p, "--wakeups", "--format", "json", "--time-offset", "host=1000")
    assert rc == 0
    assert [r["max_at_ns"] + 1000 for r in json.loads(a)] == [r["max_at_ns"] for r in json.loads(b)]


@pytest.mark.parametrize("spec", ["irq_handler_entry:irq_handler_exit:irq=irq",
                                  "irq:irq_handler_entry:irq:irq_handler_exit:irq=irq",
                                  "irq:irq_handler_entry:irq_handler_exit:irq=irq",
                                  "irq_handler_entry:irq:irq_handler_exit:irq=irq"])
def test_latency_csv(traces, capsys, spec):
    files, ref = CASES["vm-tsync"]
    rc, out, err = _run(capsys, "stats", *(f"-i{traces / f}" for f in files), "--latency", spec, "--format", "csv")
    assert rc == 0, err
    assert out.splitlines()[0] == "stream,irq,count,total_ns,p50_ns,p99_ns,max_ns,max_at_ns,across_loss"
    from kshark_py.loaders.tracedat import open_trace
    from kshark_py.model.session import Session

    session = Session.from_files([open_trace(traces / f) for f in files])
    ev = report_events(traces, ref)
    stream, _row, ts = merged_map(session, len(ev))
    groups = defaultdict(list)
    for s, a, b, irq in walk_pairs(ev, stream, "irq_handler_entry", "irq_handler_exit", irq_of, irq_of):
        groups[(s, irq)].append(int(ts[b]) - int(ts[a]))
    rows = _csv_rows(out)
    assert {(int(r["stream"]), int(r["irq"])): (int(r["count"]), int(r["total_ns"]), int(r["max_ns"]))
            for r in rows} == {k: (len(v), sum(v), max(v)) for k, v in groups.items()}


def test_latency_without_match(traces, capsys):
    rc, out, _ = _run(capsys, "stats", "-i", str(traces / "host-sched-v7.dat"), "--latency",
                      "softirq_entry:softirq_exit", "--format", "csv")
    assert rc == 0
    assert out.splitlines()[0] == "stream,count,total_ns,p50_ns,p99_ns,max_ns,max_at_ns,across_loss"
    assert len(out.splitlines()) == 2


@pytest.mark.parametrize("args,message", [
    (["--latency", "nosuch:irq_handler_exit"], "no loaded file has the event 'nosuch'"),
    (["--latency", "irq_handler_entry:irq_handler_exit:vector=irq"], "has no field 'vector'"),
    (["--latency", "irq_handler_entry"], "--latency takes START:END"),
    (["--latency", "a:b:x=y:c"], "event names come before"),
    (["--latency", "a:b:x="], "a match is START_FIELD=END_FIELD"),
    (["--latency", "sched_process_hang:sched_switch"], "the input has no 'sched_process_hang' events"),
    (["--wakeups", "--range", "5:3"], "the start is after the end"),
    (["--wakeups", "--range", "x:3"], "not a whole number: 'x'"),
    (["--wakeups", "--range", "17"], "--range takes A:B"),
    (["--wakeups", "--latency", "a:b"], "not allowed with argument"),
    ([], "one of the arguments --wakeups --exits --vcpus --explain --latency is required"),
    (["--wakeups", "--format", "xml"], "invalid choice: 'xml'"),
])
def test_errors_are_one_line(traces, capsys, args, message):
    rc, out, err = _run(capsys, "stats", "-i", str(traces / "host-sched-v7.dat"), *args)
    assert rc == 2
    assert out == ""
    assert err.count("\n") == 1 and message in err, err


def test_no_events_and_missing_inputs(traces, capsys, tmp_path):
    rc, out, err = _run(capsys, "stats", "-i", str(traces / "host-printk.dat"), "--wakeups")
    assert (rc, out) == (2, "") and "no stream has sched_switch with sched_waking or sched_wakeup" in err
    assert err.count("\n") == 1
    rc, _out, err = _run(capsys, "stats", "--wakeups")
    assert rc == 2 and "stats needs the trace files" in err
    rc, _out, err = _run(capsys, "stats", "-i", str(tmp_path / "none.dat"), "--wakeups")
    assert rc == 2 and "cannot open" in err and err.count("\n") == 1


def _edit_format(name: bytes, old: bytes, new: bytes) -> bytes:
    """host-sched-v6.dat with one field declaration of event ``name`` edited (as test_fuzz does)."""
    from . import fuzzcases

    path = fuzzcases.TRACES / "host-sched-v6.dat"
    data, lay = fuzzcases.original(path), fuzzcases.layout(path)
    start, end = lay.meta["formats"]
    items = fuzzcases.parse_meta("formats", data[start:end])
    hit = [it for it in items if isinstance(it[1], bytes) and b"name: " + name + b"\n" in it[1]]
    assert len(hit) == 1 and old in hit[0][1]
    hit[0][1] = hit[0][1].replace(old, new)
    return fuzzcases.splice(data, lay, start, end, fuzzcases.build_meta(items))


@pytest.mark.parametrize("name,old,new,flag", [
    # a damaged format (the fuzz run's kind): pids of chars, a comm of pointers; no traceback, ever
    (b"sched_switch", b"field:pid_t next_pid;", b"field:char next_pid[4];", "--wakeups"),
    (b"sched_waking", b"field:pid_t pid;", b"field:char pid[4];", "--wakeups"),
    (b"sched_waking", b"field:char comm[16];", b"field:const char * comm[2];", "--wakeups"),
    (b"irq_handler_entry", b"field:int irq;", b"field:char irq[4];", "--latency"),
])
def test_damaged_formats(tmp_path, capsys, name, old, new, flag):
    p = tmp_path / "edited.dat"
    p.write_bytes(_edit_format(name, old, new))
    extra = ["irq_handler_entry:irq_handler_exit:irq=irq"] if flag == "--latency" else []
    rc, out, err = _run(capsys, "stats", "-i", str(p), flag, *extra, "--format", "csv")
    assert "Traceback" not in err
    if name == b"sched_waking" and b"comm" in old:
        assert rc == 0 and len(out.splitlines()) > 10  # the wakeups stand; only the names are unknown
        assert {r["comm"] for r in _csv_rows(out)} == {""}
    elif name == b"irq_handler_entry":
        assert "irq:irq_handler_entry.irq and irq:irq_handler_exit.irq cannot match" in err
        assert (rc, out) == (2, "") and err.count("\n") == 1, err
    else:
        assert (rc, out) == (2, "") and err.count("\n") == 1, err
