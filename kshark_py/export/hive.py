"""A session as a Hive-partitioned Parquet folder: many runs and many machines, one dataset.

Layout (every file zstd Parquet, :mod:`.parquet`)::

    DIR/events/run=ID/stream=NAME/part-0.parquet   the events table of one stream (no run/stream column)
    DIR/fields/event=NAME/run=ID/part-0.parquet    one event's records of every stream, every field
    DIR/<table>/run=ID/part-0.parquet              files, and the derived tables of the API:
                                                   runs, vcpus, vcpu_states, time_sync, wakeups, ...

The tables are the API's (:mod:`kshark_py.model.apitables`: ``s.fields(name)``, ``s.runs()``, ...),
so a script, ``kshark-py sql`` and a query over the folder see the same columns; ``files`` adds one
row per input buffer (role, file, trace id, clock, CPUs, events, synchronized).  Every ``ts``,
``start``, ``end`` is int64 ns on the host clock (guests synchronized by TIME_SHIFT).

So ``read_parquet('DIR/events/**/*.parquet', hive_partitioning=true)`` is every run's events with
``run`` and ``stream`` columns, in DuckDB, Spark or Trino alike; export another run (or another
host) into the same DIR and it joins the dataset.  Exporting a run id again replaces that run's
files (its ``run=ID`` folders are removed first), so a re-export never counts events twice.

Partition values are escaped as Hive does (``%XX`` for a character outside ``[A-Za-z0-9._-]``).
One event's fields may differ between runs (kernels of other versions): read them with
``union_by_name=true``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil

import numpy as np
import pyarrow as pa

from ..loaders.tracedat import TraceFile
from ..model.apitables import DERIVED_TABLES, Comms, derived_table, fields_table
from ..model.session import Session
from .events import stream_events
from .parquet import write_table

RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def escape(value: str) -> str:
    """A partition value as Hive writes it: ``%XX`` (UTF-8 bytes) for every character outside ``[A-Za-z0-9._-]``."""
    return _SAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode("utf-8", "surrogateescape")), value)


def default_run_id(host: TraceFile) -> str:
    """The host file's trace id (16 hex digits, the id trace-cmd writes in every v7 file and guests
    name as their peer): the same recording exported twice gets the same id, so the second export
    replaces the first instead of doubling it, and two recordings never share one.  A file without
    a trace id (v6) gets ``f`` + the first 15 hex digits of a BLAKE2b hash of its size and first MiB,
    stable in the same way (a timestamp would not be: every export would be a new run)."""
    tid = host.meta.trace_id
    if tid is not None:
        return f"{tid:016x}"
    h = hashlib.blake2b(digest_size=8)
    h.update(str(host.file_size).encode())
    h.update(bytes(host.buf[:1 << 20]))
    return "f" + h.hexdigest()[:15]


def files_table(session: Session) -> pa.Table:
    """One row per stream: its role, file, instance, the file's trace id, clock, CPUs, events, and
    for a guest whether it is on the host clock."""
    rows = []
    for st in session.streams:
        tid = st.trace.meta.trace_id
        rows.append({"stream": st.name, "role": st.role, "file": os.path.basename(st.trace.path),
                     "instance": st.buffer.name, "trace_id": f"{tid:016x}" if tid is not None else None,
                     "clock": st.buffer.clock or st.trace.trace_clock, "cpus": st.cpu_count,
                     "events": st.buffer.events.num_rows, "synced": st.guest.synced if st.guest else None})
    schema = pa.schema([("stream", pa.string()), ("role", pa.string()), ("file", pa.string()),
                        ("instance", pa.string()), ("trace_id", pa.string()), ("clock", pa.string()),
                        ("cpus", pa.int32()), ("events", pa.int64()), ("synced", pa.bool_())])
    return pa.Table.from_pylist(rows, schema=schema)


def event_keys(session: Session) -> dict[str, str]:
    """Partition value -> the name :func:`fields_table` takes, for every event some stream holds:
    the event's name, or ``system:name`` when two systems hold an event of that name."""
    found: dict[tuple[str, str], None] = {}
    for st in session.streams:
        fmts = st.trace.formats
        eid = st.buffer.events.column("event_id").to_numpy()
        for i in np.flatnonzero(np.bincount(eid[eid >= 0])).tolist() if len(eid) else []:
            ev = fmts.get(i)
            if ev is not None:
                found[(ev.system, ev.name)] = None
    names = [n for _, n in found]
    return {(n if names.count(n) == 1 else f"{s}:{n}"): f"{s}:{n}" for s, n in found}


def prefetch_fields(session: Session) -> None:
    """Every field of every event each stream holds, read in one pass over its data (each compressed
    block decompressed once for all events, not once per event)."""
    for st in session.streams:
        fmts = st.trace.formats
        eid = st.buffer.events.column("event_id").to_numpy()
        ids = np.flatnonzero(np.bincount(eid[eid >= 0])).tolist() if len(eid) else []
        st.buffer.prefetch([(ev, [f.name for f in ev.fields]) for ev in map(fmts.get, ids) if ev is not None])


def _clear_run(out_dir: str, run: str) -> None:
    """Remove every ``run=RUN`` folder of a previous export of the same run."""
    if not os.path.isdir(out_dir):
        return
    for top in os.listdir(out_dir):
        base = os.path.join(out_dir, top)
        if not os.path.isdir(base):
            continue
        for sub in [base, *(os.path.join(base, d) for d in os.listdir(base) if d.startswith("event="))]:
            p = os.path.join(sub, run)
            if os.path.isdir(p):
                shutil.rmtree(p)


def _write(table: pa.Table, *parts: str) -> int:
    os.makedirs(os.path.join(*parts[:-1]), exist_ok=True)
    return write_table(table, os.path.join(*parts))


def export_hive(session: Session, out_dir: str, run_id: str, *,
                vcpu_map: dict[str, dict[int, int]] | None = None) -> dict[str, int]:
    """Write ``session`` under ``out_dir`` as run ``run_id`` (layout: the module doc); returns rows
    written per table (``events``, ``fields``, ``files``, then each derived table)."""
    run = f"run={escape(run_id)}"
    _clear_run(out_dir, run)
    counts: dict[str, int] = {"events": 0, "fields": 0}
    for st in session.streams:
        ev = stream_events(session, st.index).drop_columns(["stream"])
        counts["events"] += _write(ev, out_dir, "events", run, f"stream={escape(st.name)}", "part-0.parquet")
    prefetch_fields(session)
    comms = Comms(session)
    for key, name in event_keys(session).items():
        t = fields_table(session, name, comms=comms)
        counts["fields"] += _write(t, out_dir, "fields", f"event={escape(key)}", run, "part-0.parquet")
    counts["files"] = _write(files_table(session), out_dir, "files", run, "part-0.parquet")
    for name in DERIVED_TABLES:
        counts[name] = _write(derived_table(session, name, vcpu_map), out_dir, name, run, "part-0.parquet")
    return counts
