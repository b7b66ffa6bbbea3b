"""``kshark-py export -i HOST -i GUEST -o DIR``: Hive-partitioned Parquet that DuckDB reads as one
dataset across runs.  Two real runs of the corpus (vm-tsync, external/doc-test) are exported into
one folder and read back together: per-stream counts and first/last timestamps against trace-cmd's
merged reports, field sums and VM exits against the reader and the analyses, a re-export replacing
its run, and one-line errors."""

from __future__ import annotations

import gzip
import re
from collections import defaultdict
from pathlib import Path

import duckdb
import numpy as np
import pytest

from kshark_py.cli import main
from kshark_py.export.hive import default_run_id, escape
from kshark_py.loaders.tracedat import open_trace
from kshark_py.model.analysis.exits import vm_exits
from kshark_py.model.session import Session

from .support.cli import assert_one_line_error

PAIRS = {"vm-tsync": ("trace.dat", "trace-vmguest.dat"), "external/doc-test": ("trace.dat", "trace-Salamander4.dat")}
DOC = Path(__file__).resolve().parents[1] / "docs" / "export.md"


def exits_query(d) -> str:
    """The VM-exits-per-reason query of docs/export.md, on folder ``d`` (the doc's is ``lake``)."""
    text = DOC.read_text()
    sql = text[text.index("### Example: VM exits per reason across runs"):].split("```sql\n", 1)[1].split("```")[0]
    return sql.replace("'lake/", f"'{d}/")


def _run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _inputs(traces, pair):
    return [str(traces / pair / f) for f in PAIRS[pair]]


@pytest.fixture(scope="module")
def lake(traces, tmp_path_factory):
    """Both corpus pairs exported into one folder, with their default run ids."""
    d = tmp_path_factory.mktemp("lake") / "lake"
    runs = {}
    for pair in PAIRS:
        paths = _inputs(traces, pair)
        rc = main(["export", *[w for p in paths for w in ("-i", p)], "-o", str(d)])
        assert rc == 0
        runs[pair] = default_run_id(open_trace(paths[0]))
    return d, runs


def _report_streams(path) -> dict[str, tuple[int, float, float]]:
    """file -> (events, first, last timestamp in s) from trace-cmd's merged report (a line without a
    file prefix continues the previous file's lines, as trace-cmd prints after a drop marker)."""
    acc: dict[str, list[float]] = defaultdict(list)
    cur = None
    stamp = re.compile(r"\] +(\d+\.\d+): ")
    with gzip.open(path, "rt", errors="replace") as fh:
        for line in fh:
            m = re.match(r"^\s*(\S+\.dat): ", line)
            if m:
                cur = m.group(1)
            s = stamp.search(line)
            if s and cur:
                acc[cur].append(float(s.group(1)))
    return {f: (len(v), min(v), max(v)) for f, v in acc.items()}


def test_two_runs_are_one_dataset(traces, lake):
    d, runs = lake
    assert len(set(runs.values())) == 2
    got = duckdb.sql(f"""
        SELECT run, stream, count(*), min(ts), max(ts)
        FROM read_parquet('{d}/events/**/*.parquet', hive_partitioning = true)
        GROUP BY run, stream""").fetchall()
    got = {(r, s): (n, lo, hi) for r, s, n, lo, hi in got}
    for pair, (host, guest) in PAIRS.items():
        ref = _report_streams(traces / pair / "merged.report.txt.gz")
        session = Session.from_files([open_trace(p) for p in _inputs(traces, pair)])
        for st in session.streams:
            n, lo, hi = got[(runs[pair], st.name)]
            rn, rlo, rhi = ref[host if st.role == "host" else guest]
            assert n == rn, (pair, st.name)
            # trace-cmd prints microseconds; the export keeps the host-clock nanoseconds
            assert abs(lo / 1e9 - rlo) < 2e-6 and abs(hi / 1e9 - rhi) < 2e-6, (pair, st.name, lo, rlo, hi, rhi)


def test_fields_and_comms_match_the_reader(traces, lake):
    d, runs = lake
    got = dict(duckdb.sql(f"""
        SELECT run, sum(next_pid) FROM read_parquet('{d}/fields/event=sched_switch/**/*.parquet',
                                                     hive_partitioning = true, union_by_name = true)
        GROUP BY run""").fetchall())
    for pair in PAIRS:
        want = 0
        for tf in map(open_trace, _inputs(traces, pair)):
            ev = tf.formats.find("sched_switch", "sched")
            for b in tf.buffers if ev is not None else []:
                want += int(np.asarray(b.field_arrays(ev, ["next_pid"])["next_pid"], np.int64).sum())
        assert got[runs[pair]] == want, pair
    idle = duckdb.sql(f"""SELECT DISTINCT decode(comm) FROM read_parquet('{d}/events/**/*.parquet',
                          hive_partitioning = true) WHERE pid = 0""").fetchall()
    assert idle == [("<idle>",)]


def test_vm_exits_per_reason_across_runs(traces, lake):
    """The query of docs/export.md: VM exits per reason and run, every run listed (0 when none)."""
    d, runs = lake
    got = duckdb.sql(exits_query(d)).fetchall()
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for pair in PAIRS:
        ex = vm_exits(Session.from_files([open_trace(p) for p in _inputs(traces, pair)]))
        for r in ex.column("reason").to_pylist():
            counts[(r, runs[pair])] += 1
    reasons = {r for r, _ in counts}
    assert len(reasons) > 5
    assert got == sorted((r, run, counts[(r, run)]) for r in reasons for run in runs.values())
    assert not any(n for _, run, n in got if run == runs["vm-tsync"])  # its host traced no kvm events
    tables = duckdb.sql(f"""SELECT run, stream, role, synced FROM read_parquet('{d}/files/**/*.parquet',
                            hive_partitioning = true) ORDER BY run, stream""").fetchall()
    assert {(r, role, s) for r, _, role, s in tables} == {(r, "host", None) for r in runs.values()} | \
        {(r, "guest", True) for r in runs.values()}


def test_reexport_replaces_the_run_and_run_ids(traces, tmp_path, capsys):
    paths = _inputs(traces, "vm-tsync")
    args = [w for p in paths for w in ("-i", p)]
    d = tmp_path / "lake"
    for _ in range(2):
        rc, _, err = _run(capsys, "export", *args, "-o", str(d), "--run-id", "before")
        assert rc == 0, err
    rc, _, err = _run(capsys, "export", *args, "-o", str(d), "--run-id", "after.2")
    assert rc == 0 and "run=after.2" in err, err
    got = dict(duckdb.sql(f"""SELECT run, count(*) FROM read_parquet('{d}/events/**/*.parquet',
                               hive_partitioning = true) GROUP BY run""").fetchall())
    n = sum(len(b.events) for p in paths for b in open_trace(p).buffers)
    assert got == {"before": n, "after.2": n}


def test_partition_values_are_escaped(traces, tmp_path, capsys):
    """An instance stream (``host:instance``) is a partition value with ``:``, written as ``%3A``."""
    p = traces / "host-instances.dat"
    d = tmp_path / "lake"
    rc, _, err = _run(capsys, "export", "-i", str(p), "-o", str(d), "--run-id", "i")
    assert rc == 0, err
    session = Session.from_files([open_trace(p)])
    names = sorted(st.name for st in session.streams)
    assert any(":" in n for n in names)
    assert sorted(x.name for x in (d / "events" / "run=i").iterdir()) == sorted(f"stream={escape(n)}" for n in names)
    got = dict(duckdb.sql(f"""SELECT stream, count(*) FROM read_parquet('{d}/events/**/*.parquet',
                               hive_partitioning = true) GROUP BY stream""").fetchall())
    assert got == {st.name: len(st.buffer.events) for st in session.streams}


@pytest.mark.parametrize(("argv", "why"), [
    (["--run-id", "a/b"], "letters, digits"),
    (["--run-id", "x", "--format", "perfetto", "-o", "{tmp}/x.pftrace"], "--run-id names a run"),
    (["-o", "{file}"], "is not a directory"),
    (["-o", "{tmp}/missing/lake"], "is not a directory"),
])
def test_errors_are_one_line(traces, tmp_path, capsys, argv, why):
    f = tmp_path / "f"
    f.write_text("x")
    paths = _inputs(traces, "vm-tsync")
    argv = [a.format(tmp=tmp_path, file=f) for a in argv]
    if "-o" not in argv:
        argv += ["-o", str(tmp_path / "lake")]
    rc, _, err = _run(capsys, "export", *[w for p in paths for w in ("-i", p)], *argv)
    assert_one_line_error(rc, err, why)


def test_default_run_id(traces, monkeypatch):
    """The host's trace id; a file without one gets a stable hash of its size and first MiB."""
    path = traces / "vm-tsync" / "trace.dat"
    tf = open_trace(path)
    assert default_run_id(tf) == f"{tf.meta.trace_id:016x}"
    ids = []
    for p in (path, path, traces / "host-sched-v7.dat"):
        t = open_trace(p)
        monkeypatch.setattr(t.meta, "trace_id", None)
        ids.append(default_run_id(t))
    assert ids[0] == ids[1] != ids[2]
    assert all(re.fullmatch(r"f[0-9a-f]{15}", i) for i in ids)
