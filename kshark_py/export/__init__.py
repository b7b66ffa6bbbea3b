"""``kshark-py export``: a trace's tables as Parquet (one file, or a Hive-partitioned folder for many
runs) or as a Perfetto trace.

* :func:`export_parquet`: one file's events (every buffer) to one Parquet file, as before.
* :mod:`.hive`: host + guests, merged and on the host clock, as ``DIR/events/run=ID/stream=NAME/``,
  ``DIR/fields/event=NAME/run=ID/`` and the derived tables; many exports in one folder are one
  dataset for DuckDB, Spark or Trino.
* :mod:`.perfetto`: the same session as a Perfetto trace (``.pftrace``).
"""

from __future__ import annotations

from ..loaders.tracedat import TraceFile
from .events import COLUMNS, events_with_names, prepare, session_events, stream_events
from .parquet import write_table

__all__ = ["COLUMNS", "events_with_names", "export_parquet", "prepare", "session_events", "stream_events",
           "write_table"]


def export_parquet(tf: TraceFile, out: str) -> int:
    """Write one file's events table (:func:`events_with_names`) to ``out``; returns the number of rows.

    Call it on a freshly opened file: it asks the file to read the task-naming fields while it decodes
    (:func:`prepare`), which only helps before the events are first read."""
    prepare(tf)
    return write_table(events_with_names(tf), out, required=COLUMNS)
