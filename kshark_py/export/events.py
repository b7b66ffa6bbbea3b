"""The events table of an export: one row per record, with stream, comm, system and event name.

Column types, and why:

* ``comm``: ``dictionary<int32, binary>``, the task name as the kernel recorded it.  A process may
  name itself with any bytes (``prctl(PR_SET_NAME)``), so a comm is not always UTF-8 and a string
  column could only hold it with losses (or not at all); readers decode it themselves, e.g.
  ``comm.decode("utf-8", "replace")`` for showing.  ``<idle>`` (pid 0) and ``<...>`` (a pid nobody
  named) are written as those ASCII bytes.
* ``system``, ``event``: ``dictionary<int32, string>``: names from the file's event formats, which
  the kernel builds from C identifiers; a byte there that is not UTF-8 (only a damaged file has one)
  is written as U+FFFD.
* ``stream``: ``dictionary<int32, string>``: for one file (:func:`events_with_names`) the input's
  file name, ``:instance`` for an instance buffer; in a session (:func:`stream_events`) the
  session's stream name (``host``, the guest's name, ``host:instance``), which stays the same from
  one recording to the next, so runs compare.
* ``ts``, ``cpu``, ``pid``, ``event_id``, ``flags``, ``preempt``: as in the events table
  (:mod:`kshark_py.loaders.schema`); ``ts`` of a synchronized guest is on the host clock.

Speed: every column is either the loader's own (no copy) or a dictionary whose indices come from
one hash pass (``dictionary_encode``), never a sort; the names the ``comm`` column needs are read
while the events are decoded (:func:`prepare`), not in a second pass over the data.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from ..loaders.formats import EventFormats
from ..loaders.tasks import NAME_FIELDS, comm_column, relabel, task_names
from ..loaders.text import display
from ..loaders.tracedat import Buffer, TraceFile

if TYPE_CHECKING:  # the one-file export (events_with_names) runs without the session model
    from ..model.session import Session

COLUMNS = ["ts", "stream", "cpu", "pid", "comm", "system", "event", "flags", "preempt", "event_id"]
"""Column order of the events table (the API's order; ``event_id`` last, it is the file's own number)."""


def prepare(tf: TraceFile, extra: list[tuple[str, str, list[str]]] | None = None) -> TraceFile:
    """Ask ``tf`` to extract the fields that name tasks (and ``extra``) while it decodes, before
    anything reads its events; returns ``tf``."""
    hot = {(s, e): list(f) for s, e, f in tf.hot_fields}
    for s, e, f in [*NAME_FIELDS, *(extra or [])]:
        have = hot.setdefault((s, e), [])
        have.extend(x for x in f if x not in have)
    tf.hot_fields = [(s, e, f) for (s, e), f in hot.items()]
    return tf


def _constant(value: str, n: int) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([display(value)], pa.string()))


def _by_id(enc: pa.DictionaryArray, labels: list[str]) -> pa.DictionaryArray:
    """A dictionary column of one label per distinct event id (``enc``: the ids, dictionary-encoded
    by one hash pass; ``labels``: per entry of its dictionary), labels deduplicated (two ids may share
    a name, e.g. an event of the same name in two systems, and many share a system)."""
    return relabel(enc.indices, [display(x) for x in labels], pa.string())


def buffer_events(buf: Buffer, formats: EventFormats, names: dict[int, str], stream: str) -> pa.Table:
    """One buffer's events with the named columns (:data:`COLUMNS`), in the buffer's report order."""
    t = buf.events
    n = t.num_rows
    # comm beside the event columns: both are mostly hash and gather passes that release the GIL
    # (3 M events: 0.035 -> 0.026 s)
    with ThreadPoolExecutor(1, thread_name_prefix="kshark-comm") as pool:
        comm = pool.submit(comm_column, t.column("pid").to_numpy(), names)
        eid = t.column("event_id").combine_chunks()
        enc = eid.dictionary_encode()
        evs = [formats.names(i) for i in enc.dictionary.to_pylist()]
        system = _by_id(enc, [ev[0] if ev else "" for ev in evs])
        event = _by_id(enc, [ev[1] if ev else "(unknown)" for ev in evs])
        comm = comm.result()
    cols = {
        "ts": t.column("ts"), "stream": _constant(stream, n), "cpu": t.column("cpu"), "pid": t.column("pid"),
        "comm": comm, "system": system, "event": event,
        "flags": t.column("flags"), "preempt": t.column("preempt"), "event_id": eid,
    }
    return pa.table({c: cols[c] for c in COLUMNS})


def events_with_names(tf: TraceFile) -> pa.Table:
    """Every buffer of one file, concatenated in file order, ``stream`` being the file's name
    (``name:instance`` for an instance); types: the module doc."""
    names = task_names(tf.buffers, tf.formats, tf.cmdlines)
    base = os.path.basename(tf.path)
    parts = [buffer_events(b, tf.formats, names, f"{base}:{b.name}" if b.name else base) for b in tf.buffers]
    if not parts:
        return pa.table({})
    return pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]


def stream_events(session: Session, stream: int) -> pa.Table:
    """One stream of a session (its own report order), ``stream`` being the session's stream name;
    a synchronized guest's ``ts`` is on the host clock."""
    st = session.streams[stream]
    return buffer_events(st.buffer, st.trace.formats, session.task_names(stream), st.name)


def session_events(session: Session) -> pa.Table:
    """Every stream merged in trace-cmd's report order (``trace-cmd report`` with all the files)."""
    parts = [stream_events(session, st.index) for st in session.streams]
    if not parts:
        return pa.table({c: pa.array([], pa.null()) for c in COLUMNS})
    m = session.merged()
    if m.identity:
        return parts[0]
    # unify the dictionaries, then one take by global row: (stream offset + row) in merged order
    whole = pa.concat_tables(parts, promote_options="permissive").unify_dictionaries()
    starts = np.cumsum([0] + [p.num_rows for p in parts[:-1]]).astype(np.int64)
    return whole.take(pa.array(starts[m.stream] + np.asarray(m.row, np.int64)))
