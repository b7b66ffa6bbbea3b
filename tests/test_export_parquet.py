"""``kshark-py export FILE -o X.parquet``, the fast path: the same rows as ``trace-cmd report``, task
names read while decoding (no second pass over the data), compressed chunks decompressed by a few
pool tasks (not a future per chunk)."""

from __future__ import annotations

import gzip
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kshark_py.cli import main
from kshark_py.export import COLUMNS, export_parquet
from kshark_py.loaders import store
from kshark_py.loaders.tasks import task_names
from kshark_py.loaders.tracedat import Buffer, open_trace

LINE = re.compile(r"-(\d+) +\[(\d+)\] +(\d+)\.(\d+): (\S+):")


def test_rows_match_trace_cmd_report(traces, tmp_path, capsys):
    path = traces / "host-sched-v7.dat"
    out = tmp_path / "x.parquet"
    assert main(["export", str(path), "-o", str(out)]) == 0
    assert capsys.readouterr().err.strip().endswith(" events")
    t = pq.read_table(out)
    assert t.column_names == COLUMNS
    ref = [LINE.search(ln).groups() for ln in gzip.open(str(path) + ".report.txt.gz", "rt", errors="replace")
           if LINE.search(ln)]
    assert t.num_rows == len(ref)
    assert t.column("pid").to_pylist() == [int(r[0]) for r in ref]
    assert t.column("cpu").to_pylist() == [int(r[1]) for r in ref]
    assert t.column("event").to_pylist() == [r[4] for r in ref]
    us = np.array([int(r[2]) * 1_000_000 + int(r[3]) for r in ref], np.int64)
    assert np.array_equal((t.column("ts").to_numpy() + 500) // 1000, us)  # trace-cmd rounds to us
    # comm: the file's name of each pid, as its bytes; <idle> for pid 0
    names = task_names(open_trace(path).buffers, open_trace(path).formats, open_trace(path).cmdlines)
    pid = t.column("pid").to_numpy()
    comm = t.column("comm")
    assert pa.types.is_binary(comm.type.value_type)
    for p in np.unique(pid)[:50].tolist():
        got = {c for c in comm.filter(pa.array(pid == p)).to_pylist()}
        assert got == {names.get(p, "<...>").encode("utf-8", "surrogateescape")}, p


def test_task_names_need_no_second_pass(traces, tmp_path, monkeypatch):
    """task_names took 2.3 s of 3.9 on 3 M events: a second decompression of the whole buffer to read
    the sched comm fields; they are now read while decoding."""

    def second_pass(self, requests):
        raise AssertionError(f"second pass over the data for {[ev.name for ev, _ in requests]}")

    monkeypatch.setattr(Buffer, "prefetch", second_pass)
    with open_trace(traces / "host-sched-v7.dat") as tf:
        n = export_parquet(tf, str(tmp_path / "x.parquet"))
    assert n == pq.read_metadata(tmp_path / "x.parquet").num_rows > 0


def test_a_few_decompression_tasks_per_block(traces, monkeypatch):
    """ThreadPoolExecutor.map ignores chunksize: every 40 KB chunk was its own future (0.1 s of CPU
    per 3 M events); a block is now at most 2 tasks per worker."""
    pool = store.decompress_pool()
    submitted = []
    real = type(pool).submit

    def counting(self, fn, *a, **k):
        submitted.append(fn)
        return real(self, fn, *a, **k)

    monkeypatch.setattr(type(pool), "submit", counting)
    ranges = []
    real_range = store.ChunkStore.start_range

    def counting_range(self, a, b, *args, **kw):  # the loader starts each block's range ahead (1f75b2c)
        ranges.append(b - a)
        return real_range(self, a, b, *args, **kw)

    monkeypatch.setattr(store.ChunkStore, "start_range", counting_range)
    tf = open_trace(traces / "host-sched-v7.dat")
    b = tf.buffers[0]
    assert b.compressed
    _ = b.events
    assert sum(ranges) == len(b.store) > 4 * store.WORKERS * len(ranges)  # many chunks per block
    assert 0 < len(submitted) <= 2 * store.WORKERS * len(ranges)


def test_event_columns_are_required_and_read_back_equal(traces, tmp_path):
    """The events' columns never hold a null: written as REQUIRED (no definition levels, a fifth of
    the write's CPU), the same values as the table in memory; DuckDB reads them."""
    import duckdb

    from kshark_py.export import events_with_names, prepare

    out = tmp_path / "x.parquet"
    with open_trace(traces / "host-sched-v7.dat") as tf:
        export_parquet(tf, str(out))
    with open_trace(traces / "host-sched-v7.dat") as tf:
        want = events_with_names(prepare(tf))
    schema = pq.read_schema(out)
    assert [f.nullable for f in schema] == [False] * len(COLUMNS)
    col = pq.ParquetFile(out).schema.column(0)
    assert col.max_definition_level == 0  # REQUIRED in the Parquet schema itself
    got = pq.read_table(out)
    for c in COLUMNS:
        a, b = got.column(c), want.column(c)
        if pa.types.is_dictionary(b.type):
            a, b = a.cast(b.type.value_type), b.cast(b.type.value_type)
        assert a.equals(b), c
    [(n, pids)] = duckdb.sql(f"SELECT count(*), sum(pid) FROM '{out}'").fetchall()
    assert (n, pids) == (want.num_rows, int(want.column("pid").to_numpy().sum()))
