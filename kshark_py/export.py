"""``kshark-py export``: a file's events, with stream, comm and event name, to Parquet.

Column types, and why:

* ``comm``: ``dictionary<int32, binary>``, the task name as the kernel recorded it.  A process may
  name itself with any bytes (``prctl(PR_SET_NAME)``), so a comm is not always UTF-8 and a string
  column could only hold it with losses (or not at all); readers decode it themselves, e.g.
  ``comm.decode("utf-8", "replace")`` for showing.  ``<idle>`` (pid 0) and ``<...>`` (a pid nobody
  named) are written as those ASCII bytes.
* ``system``, ``event``: ``dictionary<int32, string>``: names from the file's event formats, which
  the kernel builds from C identifiers; a byte there that is not UTF-8 (only a damaged file has one)
  is written as U+FFFD.
* ``stream``: ``dictionary<int32, string>``: the input's file name, ``:instance`` for an instance
  buffer (a file name that is not UTF-8 has U+FFFD in its place).
* ``ts``, ``cpu``, ``pid``, ``event_id``, ``flags``, ``preempt``: as in the events table
  (:mod:`.loaders.schema`).
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .loaders.tasks import comm_column, task_names
from .loaders.text import display
from .loaders.tracedat import TraceFile


def events_with_names(tf: TraceFile) -> pa.Table:
    """Every buffer's events, concatenated, with ``stream``, ``comm``, ``system`` and ``event`` columns
    (types: the module doc)."""
    names = task_names(tf.buffers, tf.formats, tf.cmdlines)
    ev_names = {ev.id: ev.name for ev in tf.formats}
    ev_systems = {ev.id: ev.system for ev in tf.formats}
    parts = []
    base = os.path.basename(tf.path)
    for b in tf.buffers:
        t = b.events
        stream = f"{base}:{b.name}" if b.name else base
        eid = t.column("event_id").to_numpy()
        uniq, inv = np.unique(eid, return_inverse=True)
        ev_dict = pa.DictionaryArray.from_arrays(
            pa.array(inv.astype(np.int32)),
            pa.array([display(ev_names.get(int(e), "(unknown)")) for e in uniq], pa.string()))
        sys_dict = pa.DictionaryArray.from_arrays(
            pa.array(inv.astype(np.int32)), pa.array([display(ev_systems.get(int(e), "")) for e in uniq], pa.string()))
        cols = t.drop_columns(["offset", "length"])
        cols = cols.append_column("stream", pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(len(t), np.int32)), pa.array([display(stream)], pa.string())))
        cols = cols.append_column("comm", comm_column(t.column("pid").to_numpy(), names))
        cols = cols.append_column("system", sys_dict)
        cols = cols.append_column("event", ev_dict)
        parts.append(cols)
    if not parts:
        return pa.table({})
    return pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]


def export_parquet(tf: TraceFile, out: str) -> int:
    """Write the events table to ``out``; returns the number of rows."""
    table = events_with_names(tf)
    pq.write_table(table, out, compression="zstd")
    return table.num_rows
