"""Every Arrow schema the loaders produce, declared once with its invariants.

EVENTS: one row per ring-buffer record of one buffer, in trace-cmd's report order (merged across
CPUs by time, ties to the lower CPU).
  ts        int64   time as trace-cmd prints it (ns for ns clocks; TSC2NSEC/offset/time-shift applied)
  cpu       int16   CPU the record was written on
  pid       int32   common_pid
  event_id  int32   common_type (-1: record too short to hold the common fields)
  flags     uint8   common_flags (irqs-off, need-resched, hardirq, softirq bits)
  preempt   uint8   common_preempt_count
  offset    int64   where the record's payload starts in the buffer's data array
  length    int32   payload length (4-byte rounded)
LOST: one row per "events dropped" mark.
  row       int64   the EVENTS row the loss precedes
  ts, cpu          of that row
  count     int64   events lost (-1 when the kernel did not store the count)
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

EVENTS = pa.schema([
    ("ts", pa.int64()), ("cpu", pa.int16()), ("pid", pa.int32()), ("event_id", pa.int32()),
    ("flags", pa.uint8()), ("preempt", pa.uint8()), ("offset", pa.int64()), ("length", pa.int32()),
])

LOST = pa.schema([("row", pa.int64()), ("ts", pa.int64()), ("cpu", pa.int16()), ("count", pa.int64())])


def events_table(**cols: np.ndarray) -> pa.Table:
    """Wrap the columns without copying (numpy arrays of the schema's types become Arrow zero-copy)."""
    arrays = []
    for f in EVENTS:
        a = np.asarray(cols.pop(f.name), dtype=f.type.to_pandas_dtype())
        arrays.append(pa.array(a))
        del a
    return pa.Table.from_arrays(arrays, schema=EVENTS)


def lost_table(**cols: np.ndarray) -> pa.Table:
    return pa.Table.from_arrays([pa.array(np.asarray(cols[f.name], dtype=f.type.to_pandas_dtype()))
                                 for f in LOST], schema=LOST)
