"""``kshark-py sql`` and ``TraceSession.sql``: the same tables as the API, built only when a query
reads them; CSV with a header, JSON, -o; DuckDB's errors on one line with exit 2."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pyarrow as pa
import pytest

import kshark_py as ks
from kshark_py.cli import main
from kshark_py.model.session import Session
from kshark_py.model.sqltables import SqlCatalog

from .support.reports import PAIRS, saved_report


def _plain(t: pa.Table) -> pa.Table:
    """Dictionary columns decoded and large strings as strings: how DuckDB hands Arrow back."""
    cols = []
    for f, c in zip(t.schema, t.columns, strict=True):
        typ = f.type.value_type if pa.types.is_dictionary(f.type) else f.type
        typ = pa.string() if pa.types.is_large_string(typ) else typ
        cols.append(c.cast(typ).combine_chunks())
    return pa.Table.from_arrays(cols, names=t.column_names)


@pytest.fixture(scope="module")
def tsync(traces):
    d = traces / "vm-tsync"
    return ks.open(d / "trace.dat", d / "trace-vmguest.dat")


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("table", ["events", "sched_switch", "sched_waking", "runs", "vcpus", "vcpu_states",
                                   "time_sync", "wakeups", "wakeup_stats", "vcpu_time"])
def test_sql_tables_equal_the_api(tsync, table):
    api = {"events": tsync.events, "sched_switch": lambda: tsync.fields("sched_switch"),
           "sched_waking": lambda: tsync.fields("sched_waking")}.get(table) or getattr(tsync, table)
    want = _plain(api())
    got = tsync.sql(f"SELECT * FROM {table}")
    assert got.column_names == want.column_names
    for name in want.column_names:
        g, w = got.column(name).combine_chunks(), want.column(name).combine_chunks()
        if g.type != w.type:  # e.g. a string column DuckDB gives back as string_view
            g = g.cast(w.type)
        assert g.equals(w) or (pa.types.is_floating(w.type) and np.array_equal(  # NaN: the first drift
            g.to_numpy(zero_copy_only=False), w.to_numpy(zero_copy_only=False), equal_nan=True)), (table, name)


def test_vm_exits_on_a_kvm_host(traces):
    d = traces / "external" / "doc-test"
    s = ks.open(d / "trace.dat", d / "trace-Salamander4.dat")
    got = s.sql("SELECT reason, count(*) n, sum(duration_ns) t FROM vm_exits GROUP BY reason ORDER BY reason")
    ex = s.vm_exits()
    reasons = ex.column("reason").to_numpy(zero_copy_only=False)
    dur = ex.column("duration_ns").to_numpy()
    for r in got.to_pylist():
        assert r["n"] == int((reasons == r["reason"]).sum())
        assert r["t"] == int(dur[reasons == r["reason"]].sum())
    assert sum(r["n"] for r in got.to_pylist()) == ex.num_rows > 0


@pytest.mark.parametrize("folder", list(PAIRS))
def test_cli_counts_and_field_sums_equal_the_merged_report(traces, capsys, folder):
    d = traces / folder
    host, guest = PAIRS[folder]
    ref = saved_report(d)["streams"]
    s = ks.open(d / host, d / guest)
    labels = {st.name: st.label for st in s.model.streams}
    rc, out, err = _run(capsys, "sql", "-i", d / host, "-i", d / guest, "--format", "csv",
                        "SELECT stream, count(*) AS n FROM events GROUP BY stream ORDER BY stream")
    assert rc == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert out.splitlines()[0] == "stream,n"
    assert {labels[r["stream"]]: int(r["n"]) for r in rows} == {k: v["n"] for k, v in ref.items()}
    rc, out, err = _run(capsys, "sql", "-i", d / host, "-i", d / guest, "--format", "json",
                        "SELECT stream, sum(next_pid) AS s FROM sched_switch GROUP BY stream")
    assert rc == 0, err
    assert {labels[r["stream"]]: r["s"] for r in json.loads(out)} == {
        k: v["next_pid"] for k, v in ref.items() if v["next_pid"]}


def test_cli_csv_equals_the_api_and_writes_o(traces, capsys, tmp_path, tsync):
    d = traces / "vm-tsync"
    out_file = tmp_path / "sw.csv"
    rc, out, err = _run(capsys, "sql", "-i", d / "trace.dat", "-i", d / "trace-vmguest.dat", "--format", "csv",
                        "-o", out_file, 'SELECT ts, stream, comm, prev_comm, next_pid FROM "sched:sched_switch"')
    assert rc == 0 and out == "", err
    rows = list(csv.reader(io.StringIO(out_file.read_text(encoding="utf-8"))))
    assert rows[0] == ["ts", "stream", "comm", "prev_comm", "next_pid"]
    f = tsync.fields("sched_switch")
    assert len(rows) - 1 == f.num_rows
    assert [int(r[0]) for r in rows[1:]] == f.column("ts").to_pylist()
    assert [r[2] for r in rows[1:]] == [c.decode("utf-8", "replace") for c in f.column("comm").to_pylist()]
    assert [int(r[4]) for r in rows[1:]] == f.column("next_pid").to_pylist()


def test_cli_table_format_and_tables_list(traces, capsys):
    d = traces / "vm-tsync"
    rc, out, err = _run(capsys, "sql", "-i", d / "trace.dat", "-i", d / "trace-vmguest.dat",
                        "SELECT event, count(*) AS n FROM events WHERE stream = 'vmguest' GROUP BY event "
                        "ORDER BY n DESC LIMIT 2")
    assert rc == 0, err
    assert out.splitlines()[0].split() == ["event", "n"]
    assert out.splitlines()[1].split()[0] == "sched_stat_runtime"
    rc, out, err = _run(capsys, "sql", "-i", d / "trace.dat", "--tables")
    assert rc == 0, err
    names = [ln.split()[0] for ln in out.splitlines()[1:]]
    assert names[:2] == ["events", "runs"] and "sched_switch" in names and "sched:sched_switch" in names


@pytest.mark.parametrize("query, says", [
    ("SELECT * FROM no_such_table", "Catalog Error: Table with name no_such_table does not exist"),
    ("SELEC event FROM events", "Parser Error: syntax error at or near \"SELEC\""),
    ("SELECT no_such_column FROM events", "Binder Error"),
])
def test_cli_bad_sql_is_one_line_exit_2(traces, capsys, query, says):
    rc, out, err = _run(capsys, "sql", "-i", traces / "vm-tsync" / "trace.dat", query)
    assert rc == 2 and out == ""
    lines = [ln for ln in err.splitlines() if "warning:" not in ln]
    assert len(lines) == 1 and lines[0].startswith("kshark-py: ") and says in lines[0], err


STREAM_COUNTS = ["stream,n", "host,127829", "vmguest,62306"]


def test_cli_bare_files_before_the_query(traces, capsys):
    """As for the other commands a bare FILE is -i FILE: ``kshark-py sql HOST GUEST "QUERY"``."""
    d = traces / "vm-tsync"
    rc, out, err = _run(capsys, "sql", "--format", "csv", d / "trace.dat", d / "trace-vmguest.dat",
                        "SELECT stream, count(*) AS n FROM events GROUP BY stream ORDER BY stream")
    assert rc == 0, err
    assert out.splitlines() == STREAM_COUNTS


@pytest.mark.parametrize("order", ["options after the query", "query first", "files and query among options",
                                   "bare host, -i guest, query"])
def test_cli_words_and_options_in_any_order(traces, capsys, order):
    """argparse's intermixed parsing: options after the query, the query before -i, bare files
    split by options are all the same command."""
    d = traces / "vm-tsync"
    q = "SELECT stream, count(*) AS n FROM events GROUP BY stream ORDER BY stream"
    argv = {"options after the query": ["-i", d / "trace.dat", "-i", d / "trace-vmguest.dat", q, "--format", "csv"],
            "query first": [q, "-i", d / "trace.dat", "--format", "csv", "-i", d / "trace-vmguest.dat"],
            "files and query among options": [d / "trace.dat", "--format", "csv", d / "trace-vmguest.dat", "--strict",
                                              q],
            "bare host, -i guest, query": [d / "trace.dat", "-i", d / "trace-vmguest.dat", q, "--format", "csv"]}[order]
    rc, out, err = _run(capsys, "sql", *argv)
    assert rc == 0, err
    assert out.splitlines() == STREAM_COUNTS


@pytest.mark.parametrize("argv, says", [
    (["SELECT 1", "--format", "xml"], "argument --format: invalid choice: 'xml'"),
    (["SELECT 1", "--no-such-option"], "unrecognized arguments: --no-such-option"),
    (["--format"], "argument --format: expected one argument"),
])
def test_cli_bad_options_in_any_order_are_one_line_exit_2(traces, capsys, argv, says):
    rc, out, err = _run(capsys, "sql", "-i", traces / "vm-tsync" / "trace.dat", *argv)
    assert rc == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("kshark-py sql: ") and says in err, err


def test_cli_usage_errors(traces, capsys):
    rc, _, err = _run(capsys, "sql", "SELECT 1")
    assert rc == 2 and "needs the trace files" in err
    rc, _, err = _run(capsys, "sql", "-i", traces / "vm-tsync" / "trace.dat")
    assert rc == 2 and "needs a query" in err


def test_only_the_tables_a_query_reads_are_built(traces, monkeypatch):
    """events alone: no event's fields extracted, no task named; comm is computed only when read."""
    from kshark_py.loaders.tracedat import open_trace

    d = traces / "vm-tsync"
    session = Session.from_files([open_trace(d / "trace.dat"), open_trace(d / "trace-vmguest.dat")])
    calls = {"names": 0, "fields": 0}
    orig_names = Session.task_names
    buf_type = type(session.streams[0].buffer)
    orig_prefetch = buf_type.prefetch

    def names(self, stream):
        calls["names"] += 1
        return orig_names(self, stream)

    def prefetch(self, requests):
        calls["fields"] += 1
        return orig_prefetch(self, requests)

    monkeypatch.setattr(Session, "task_names", names)
    monkeypatch.setattr(buf_type, "prefetch", prefetch)
    cat = SqlCatalog(session)
    got = cat.query("SELECT event, count(*) AS n FROM events GROUP BY event ORDER BY n DESC")
    assert cat.tables_built == ["events"]
    assert calls == {"names": 0, "fields": 0}
    assert got.column("n").to_pylist()[0] == 71546  # sched_switch, host and guest
    cat.query("SELECT count(*) FROM events WHERE comm = 'md5sum'")
    assert calls["names"] == 2 and calls["fields"] > 0  # each stream's names, once
    cat.query("SELECT max(next_pid) FROM sched_switch")
    assert cat.tables_built == ["events", "sched_switch"]


def test_merged_positions_of_fields_follow_the_events(tsync):
    """A field table's rows are the events table's rows of that event, in the same order."""
    e = tsync.events(["ts", "stream", "event"])
    sel = np.flatnonzero(e.column("event").to_numpy(zero_copy_only=False) == "sched_switch")
    f = tsync.fields("sched_switch")  # host and guest rows interleaved
    assert f.num_rows == len(sel) > 0
    assert f.column("ts").to_pylist() == e.column("ts").take(pa.array(sel)).to_pylist()
    assert f.column("stream").to_pylist() == e.column("stream").take(pa.array(sel)).to_pylist()


def test_decode_plan_reads_while_decoding_only_what_the_query_needs(traces):
    """kshark-py sql names the fields to extract while decoding: none for events alone, the sched
    fields naming tasks when comm may be read, every field of an event table the query reads."""
    from kshark_py.loaders.tracedat import open_trace
    from kshark_py.sql_cli import decode_plan

    path = traces / "vm-tsync" / "trace.dat"

    def plan(q):
        tf = open_trace(path)
        decode_plan(q)([tf])
        return {name: set(fields) for _, name, fields in tf.hot_fields}

    assert plan("SELECT event, count(*) FROM events GROUP BY event") == {}
    assert plan("SELECT comm, count(*) FROM events GROUP BY comm")["sched_switch"] >= {"prev_comm", "next_pid"}
    assert plan('SELECT * FROM "sched:sched_wakeup"')["sched_wakeup"] == {"comm", "pid", "prio", "target_cpu"}
    assert plan("SELECT max(next_pid) FROM sched_switch") == {
        "sched_switch": {"prev_comm", "prev_pid", "prev_prio", "prev_state", "next_comm", "next_pid", "next_prio"}}
    assert decode_plan("SELEC nonsense") is None  # the query's own run says what is wrong


def test_cli_prints_every_duckdb_type(traces, capsys):
    """Lists of comms (bytes), decimals past int64, intervals, maps of BLOBs: printed, never a traceback."""
    q = ("SELECT list(comm) AS c, 1.5::DECIMAL(10,2) AS d, 170141183460469231731687303715884105727::HUGEINT AS h, "
         "INTERVAL 3 DAY AS i, map([1], ['x'::BLOB]) AS m, sum(pid) AS s FROM (SELECT comm, pid FROM events LIMIT 2)")
    for fmt in ("json", "csv", "table"):
        rc, out, err = _run(capsys, "sql", "-i", traces / "vm-tsync" / "trace.dat", "--format", fmt, q)
        assert rc == 0 and "Traceback" not in err, err
    rows = json.loads(_run(capsys, "sql", "-i", traces / "vm-tsync" / "trace.dat", "--format", "json", q)[1])
    assert rows[0]["c"] == ["sleep", "sleep"] and rows[0]["d"] == "1.50"
    assert rows[0]["h"] == "170141183460469231731687303715884105727" and isinstance(rows[0]["s"], int)


def test_no_progress_bar_in_the_output(tsync):
    """DuckDB draws a progress bar on the terminal for a query over 2 s (19 M events grouped by comm):
    it would land in the CSV; the catalog turns it off."""
    assert tsync.sql("SELECT current_setting('enable_progress_bar') AS p").to_pylist() == [{"p": False}]
