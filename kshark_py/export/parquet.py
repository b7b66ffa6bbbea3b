"""Writing Arrow tables to Parquet the way every export does: zstd, dictionaries only where they pay.

Why these options: Arrow's defaults try a dictionary for every column and fall back page by page;
for ``ts``, ``pid`` and the like that is wasted work (a quarter of the write time on 3 M events) and
a bigger file.  Dictionary-typed and text columns keep their dictionaries; ``ts``, which grows
almost monotonically, is delta-encoded (smaller and faster than plain + zstd alone).  Statistics
(min/max) are written for number columns: DuckDB, Spark and Trino skip row groups by ``ts`` and
``pid`` ranges with them; the min and max of a text column prune nothing and cost a fifth of the
write.  A big table is encoded by several threads and spliced into one file (:mod:`.pqsplice`): the
same columns, one row group or more per thread.
"""

from __future__ import annotations

import os
from collections.abc import Collection

import pyarrow as pa

from .pqsplice import write_spliced

COMPRESSION = "zstd"
SPLICE_MIN_ROWS = 1 << 20
"""From this many rows on, a table is encoded in slices of at least half as many rows, one thread
each (:mod:`.pqsplice`; up to :data:`MAX_PARTS` and the number of CPUs); a smaller one on one thread."""
MAX_PARTS = 4


def _options(schema: pa.Schema) -> dict:
    dict_cols = [f.name for f in schema if pa.types.is_dictionary(f.type) or pa.types.is_string(f.type)
                 or pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)
                 or pa.types.is_large_string(f.type)]
    numbers = [f.name for f in schema if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)]
    opts: dict = {"compression": COMPRESSION, "use_dictionary": dict_cols, "write_statistics": numbers}
    if "ts" in schema.names and pa.types.is_int64(schema.field("ts").type):
        opts["column_encoding"] = {"ts": "DELTA_BINARY_PACKED"}
    return opts


def _required(table: pa.Table, names: Collection[str]) -> pa.Table:
    """``table`` (no copy) with the columns of ``names`` that hold no null declared not nullable."""
    fields = [f.with_nullable(False) if f.name in names and f.nullable and table.column(i).null_count == 0 else f
              for i, f in enumerate(table.schema)]
    if fields == list(table.schema):
        return table
    return pa.Table.from_arrays(table.columns, schema=pa.schema(fields, metadata=table.schema.metadata))


def write_table(table: pa.Table, path: str | os.PathLike, required: Collection[str] = ()) -> int:
    """Write ``table`` to ``path`` (zstd; options: the module doc); returns the number of rows.

    ``required``: columns that never hold a null in any export (the events table's), written as
    Parquet REQUIRED columns: no definition levels to compute and store (a fifth of the write's
    CPU on 3 M events).  Only those, so a column's type is the same in every run of a dataset."""
    import pyarrow.parquet as pq  # here: opening and decoding a trace need none of it (see export_cli)

    table = _required(table, required)
    opts = _options(table.schema)
    parts = min(os.cpu_count() or 1, MAX_PARTS, table.num_rows // max(1, SPLICE_MIN_ROWS // 2))
    if parts > 1:
        write_spliced(table, path, lambda t, sink: pq.write_table(t, sink, **opts), parts)
    else:
        pq.write_table(table, path, **opts)
    return table.num_rows
