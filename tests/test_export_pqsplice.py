"""export/pqsplice: a Parquet file encoded by several threads and spliced under one footer reads back
as the one-thread file does (pyarrow and DuckDB), and its footer codec rewrites footers byte for byte."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kshark_py.export import COLUMNS, events_with_names, prepare
from kshark_py.export import parquet as P
from kshark_py.export.parquet import _options, _required
from kshark_py.export.pqsplice import SpliceError, _footer, _write_struct, splice, write_spliced
from kshark_py.loaders.tracedat import open_trace


def _mixed(n: int) -> pa.Table:
    """Nulls, strings, dictionaries, lists, structs, floats, bools: every kind of column chunk."""
    i = pa.array(range(n), pa.int64())
    return pa.table({
        "i": i,
        "maybe": pa.array([None if k % 7 == 0 else k * 3 for k in range(n)], pa.int32()),
        "s": pa.array([f"name{k % 13}" for k in range(n)]),
        "d": pa.array([f"v{k % 5}" for k in range(n)]).dictionary_encode(),
        "b": pa.array([bytes([k % 256]) * (k % 4) for k in range(n)], pa.binary()),
        "l": pa.array([[k, k + 1][: k % 3] for k in range(n)], pa.list_(pa.int64())),
        "st": pa.array([{"x": k, "y": str(k)} for k in range(n)]),
        "f": pa.array([k / 3 for k in range(n)], pa.float64()),
        "ok": pa.array([k % 2 == 0 for k in range(n)]),
    })


def _encoded(t: pa.Table, **opts) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(t, sink, **opts)
    return sink.getvalue().to_pybytes()


def _same(a: pa.Table, b: pa.Table) -> None:
    assert a.schema == b.schema and a.num_rows == b.num_rows
    for c in a.column_names:
        assert a.column(c).combine_chunks().equals(b.column(c).combine_chunks()), c


@pytest.mark.parametrize("opts", [{}, {"compression": "zstd", "use_dictionary": ["d", "s"], "write_statistics": ["i"]},
                                  {"row_group_size": 100}])
def test_footer_codec_rewrites_footers_byte_for_byte(opts):
    data = _encoded(_mixed(1000), **opts)
    meta, start = _footer(data)
    out = bytearray()
    _write_struct(out, meta)
    assert bytes(out) == data[start:-8]


@pytest.mark.parametrize("sizes", [[1000, 1000], [1, 999, 500], [700, 0, 300], [250] * 4])
def test_spliced_parts_read_back_as_one_file(tmp_path, sizes):
    t = _mixed(sum(sizes))
    starts = [sum(sizes[:k]) for k in range(len(sizes))]
    parts = [_encoded(t.slice(s, n), row_group_size=400) for s, n in zip(starts, sizes, strict=True)]
    out = tmp_path / "x.parquet"
    out.write_bytes(splice(parts))
    _same(pq.read_table(out), t)
    md = pq.read_metadata(out)
    assert md.num_rows == t.num_rows
    assert [md.row_group(g).num_rows for g in range(md.num_row_groups)] == [
        pq.read_metadata(pa.BufferReader(p)).row_group(g).num_rows
        for p in parts for g in range(pq.read_metadata(pa.BufferReader(p)).num_row_groups)]
    [(n, total, nulls)] = duckdb.sql(f"SELECT count(*), sum(i), count(*) - count(maybe) FROM '{out}'").fetchall()
    assert (n, total, nulls) == (t.num_rows, sum(range(t.num_rows)), sum(1 for k in range(t.num_rows) if k % 7 == 0))


def test_not_parquet_is_refused():
    with pytest.raises(SpliceError):
        splice([b"PAR1" + b"\0" * 20])


def test_export_written_by_threads_equals_one_thread(traces, tmp_path, monkeypatch):
    """The export's own table and options: threads or not, the same file contents."""
    with open_trace(traces / "host-sched-v7.dat") as tf:
        t = _required(events_with_names(prepare(tf)), COLUMNS)
    one, many = tmp_path / "one.parquet", tmp_path / "many.parquet"
    pq.write_table(t, one, **_options(t.schema))
    write_spliced(t, many, lambda x, sink: pq.write_table(x, sink, **_options(t.schema)), 3)
    _same(pq.read_table(many), pq.read_table(one))
    assert pq.read_metadata(many).num_row_groups == 3
    # and write_table takes that path once a table is big enough
    monkeypatch.setattr(P, "SPLICE_MIN_ROWS", 2 * (t.num_rows // 3))
    monkeypatch.setattr(P.os, "cpu_count", lambda: 2)
    P.write_table(t, tmp_path / "auto.parquet")
    assert pq.read_metadata(tmp_path / "auto.parquet").num_row_groups == 2
    _same(pq.read_table(tmp_path / "auto.parquet"), pq.read_table(one))
