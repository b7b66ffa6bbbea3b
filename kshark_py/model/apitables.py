"""The session as plain Arrow tables: what :mod:`kshark_py.api` returns and ``kshark-py sql`` queries.

Every table is built from what the session already holds, copying as little as it can:

* ``events``: one row per event of every stream, in the merged view's order (trace-cmd's order of a
  multi-file report, on the host clock).  With one stream the merged view is the stream itself, so
  ``ts``, ``cpu``, ``pid``, ``flags`` and ``preempt`` *are* the loader's columns (zero-copy) and
  ``event``/``system`` are dictionary columns whose indices are the ``event_id`` column itself (the
  dictionary is indexed by event id).  With several streams each column is one gather.
* ``comm`` is the task name of ``pid`` as that stream's file names it (:meth:`Session.task_names`),
  the kernel's bytes (binary, as ``kshark-py export`` writes it: a comm need not be UTF-8).  It is the
  one column that costs a pass over the sched fields of a trace that was not loaded by the app, so
  the builders take ``comm=False`` and :class:`Comms` answers it for any (stream, pid) columns
  later (``kshark-py sql`` computes it only for a query that reads it).
* ``fields(event)``: that event's records of every stream holding it, with ``ts``, ``stream``,
  ``cpu``, ``pid``, ``comm`` and every field of its format.  An event field with the name of one of
  those five (``sched_waking``'s own ``pid`` and ``comm``) keeps its name; the common column is then
  called ``common_pid`` (``common_comm``, ...), as trace-cmd's formats call them.

``stream`` is always the stream's name (``host``, the guest's name, ``host:instance``) as a
dictionary column.  Times are int64 ns on the host clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa

from ..loaders.tasks import comm_column
from ..loaders.text import display, display_array, encode
from .session import Session

__all__ = ["EVENT_COLUMNS", "COMMON_COLUMNS", "Comms", "events_table", "event_names", "fields_table", "runs_table",
           "time_sync_table", "merged_positions", "with_stream_names", "DERIVED_TABLES",
           "derived_table"]

EVENT_COLUMNS = ("ts", "stream", "cpu", "pid", "comm", "system", "event", "flags", "preempt")
"""The columns of :func:`events_table`, in order."""
COMMON_COLUMNS = ("ts", "stream", "cpu", "pid", "comm")
"""The columns :func:`fields_table` puts before an event's own fields."""

_DENSE_PIDS = 1 << 23
"""A stream whose pids all lie in [0, this) gets a comm dictionary indexed by pid (no sort of its
pids); Linux's PID_MAX_LIMIT is 4,194,304, so only a damaged file goes past it."""


def _stream_dictionary(session: Session, indices: np.ndarray) -> pa.DictionaryArray:
    names = pa.array([display(st.name) for st in session.streams], pa.string())
    itype = np.int8 if len(session.streams) < 128 else np.int16
    return pa.DictionaryArray.from_arrays(pa.array(np.asarray(indices, itype)), names)


def _column(session: Session, name: str) -> np.ndarray:
    """One events column over the merged view (zero-copy for a session of one stream)."""
    m = session.merged()
    if m.identity and len(m):
        return session.streams[int(m.stream[0])].buffer.events.column(name).to_numpy()
    dtype = session.streams[0].buffer.events.schema.field(name).type.to_pandas_dtype() if session.streams else np.int64
    out = np.empty(len(m), dtype)
    for st in session.streams:
        sel = m.stream == st.index
        out[sel] = st.buffer.events.column(name).to_numpy()[m.row[sel]]
    return out


class Comms:
    """Task names per (stream, pid), the kernel's bytes, computed per stream on first use."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._labels: dict[int, pa.Array] = {}

    def labels(self, stream: int) -> pa.Array | None:
        """Binary name per pid (index = pid) of one stream, or None when its pids are not all in
        [0, 2**23) (a damaged file): then :meth:`column` sorts that stream's pids instead."""
        if stream not in self._labels:
            pid = self.session.streams[stream].buffer.events.column("pid").to_numpy()
            if len(pid) and (int(pid.min()) < 0 or int(pid.max()) >= _DENSE_PIDS):
                self._labels[stream] = None
            else:
                names = self.session.task_names(stream)
                n = int(pid.max()) + 1 if len(pid) else 1
                unknown = b"<...>"
                vals = [unknown] * n
                for p, name in names.items():
                    if 0 <= p < n:
                        vals[p] = encode(name)
                self._labels[stream] = pa.array(vals, pa.binary())
        return self._labels[stream]

    def column(self, stream: np.ndarray | int, pid: np.ndarray) -> pa.Array:
        """``comm`` for rows given by stream index (an array, or one int for all) and pid:
        ``dictionary<int32, binary>``."""
        pid = np.asarray(pid)
        streams = np.unique(stream) if isinstance(stream, np.ndarray) else np.array([stream])
        if len(streams) == 0:
            return pa.DictionaryArray.from_arrays(pa.array([], pa.int32()), pa.array([], pa.binary()))
        if len(streams) == 1:
            lab = self.labels(int(streams[0]))
            if lab is None:
                return comm_column(pid, self.session.task_names(int(streams[0])))
            return pa.DictionaryArray.from_arrays(pa.array(pid.astype(np.int32, copy=False)), lab)
        codes = np.empty(len(pid), np.int32)
        parts: list[pa.Array] = []
        base = 0
        for s in streams.tolist():
            sel = stream == s
            lab = self.labels(s)
            if lab is None:
                c = comm_column(pid[sel], self.session.task_names(s))
                lab, idx = c.dictionary, c.indices.to_numpy()
            else:
                idx = pid[sel]
            codes[sel] = idx + base
            parts.append(lab)
            base += len(lab)
        return pa.DictionaryArray.from_arrays(pa.array(codes), pa.concat_arrays(parts))


def _event_names(session: Session) -> tuple[list[tuple[str, str]], list[np.ndarray]]:
    """Every (system, name) of every stream's formats, and per stream a LUT event id -> its code
    (code len(names) for an id no format has, shown as null)."""
    keys: dict[tuple[str, str], int] = {}
    luts = []
    for st in session.streams:
        fmts = list(st.trace.formats)
        top = max([ev.id for ev in fmts] + [0]) + 1
        lut = np.full(top + 1, -1, np.int64)  # last slot: ids out of range
        for ev in fmts:
            lut[ev.id] = keys.setdefault((ev.system, ev.name), len(keys))
        luts.append(lut)
    return list(keys), luts


def event_names(session: Session) -> list[tuple[str, str]]:
    """(system, name) of every event type some stream holds a record of, in first-seen order."""
    seen: dict[tuple[str, str], None] = {}
    for st in session.streams:
        ids = np.unique(st.buffer.events.column("event_id").to_numpy())
        for i in ids.tolist():
            ev = st.trace.formats.get(int(i))
            if ev is not None:
                seen.setdefault((ev.system, ev.name), None)
    return list(seen)


def _event_columns(session: Session, eid: np.ndarray) -> tuple[pa.DictionaryArray, pa.DictionaryArray]:
    """(system, event) dictionary columns for the merged ``event_id`` column ``eid``."""
    names, luts = _event_names(session)
    m = session.merged()
    if m.identity and len(m) and len(session.streams[int(m.stream[0])].trace.formats):
        # one stream: the dictionary is indexed by event id, so the indices are eid itself
        lut = luts[int(m.stream[0])]
        known = lut[:-1] >= 0
        ev_dict = np.array([display(names[c][1]) if c >= 0 else None for c in lut[:-1].tolist()], dtype=object)
        sys_dict = np.array([display(names[c][0]) if c >= 0 else None for c in lut[:-1].tolist()], dtype=object)
        ev_dict[~known] = None
        idx = eid
        if len(eid) and (int(eid.min()) < 0 or int(eid.max()) >= len(ev_dict)):  # a record too short or damaged
            bad = (eid < 0) | (eid >= len(ev_dict))
            idx = pa.array(np.where(bad, 0, eid).astype(np.int32), mask=bad)
        else:
            idx = pa.array(eid.astype(np.int32, copy=False))
        return (pa.DictionaryArray.from_arrays(idx, pa.array(sys_dict, pa.string())),
                pa.DictionaryArray.from_arrays(idx, pa.array(ev_dict, pa.string())))
    codes = np.empty(len(eid), np.int64)
    for st in session.streams:
        sel = m.stream == st.index
        lut = luts[st.index]
        e = eid[sel].astype(np.int64)
        e = np.where((e < 0) | (e >= len(lut) - 1), len(lut) - 1, e)
        codes[sel] = lut[e]
    missing = codes < 0
    idx = pa.array(np.where(missing, 0, codes).astype(np.int32), mask=missing if missing.any() else None)
    return (pa.DictionaryArray.from_arrays(idx, pa.array([display(s) for s, _ in names], pa.string())),
            pa.DictionaryArray.from_arrays(idx, pa.array([display(n) for _, n in names], pa.string())))


def events_table(session: Session, columns: Sequence[str] | None = None, comms: Comms | None = None) -> pa.Table:
    """Every event of every stream in merged order (columns :data:`EVENT_COLUMNS`, or ``columns``).

    Row i is merged row i (``session.merged()``).  See the module doc for what is copied."""
    want = list(EVENT_COLUMNS if columns is None else columns)
    unknown = [c for c in want if c not in EVENT_COLUMNS]
    if unknown:
        raise ValueError(f"no events column {unknown[0]!r} (columns: {', '.join(EVENT_COLUMNS)})")
    m = session.merged()
    out: dict[str, pa.Array] = {}
    sysev = None
    for c in want:
        if c == "ts":
            out[c] = pa.array(m.ts)
        elif c == "stream":
            out[c] = _stream_dictionary(session, np.zeros(len(m), np.int8) if m.identity else np.asarray(m.stream))
        elif c == "comm":
            stream = int(m.stream[0]) if m.identity and len(m) else np.asarray(m.stream)
            out[c] = (comms or Comms(session)).column(stream, _column(session, "pid"))
        elif c in ("system", "event"):
            if sysev is None:
                sysev = _event_columns(session, _column(session, "event_id"))
            out[c] = sysev[0] if c == "system" else sysev[1]
        else:
            out[c] = pa.array(_column(session, c))
    return pa.table(out) if out else pa.table({"ts": pa.array(m.ts)}).select([])


def merged_positions(session: Session, stream: int, rows: np.ndarray) -> np.ndarray:
    """The merged row of each row ``rows`` of stream ``stream`` (rows ascending)."""
    m = session.merged()
    if m.identity:
        return np.asarray(rows, np.int64)
    mine = np.flatnonzero(m.stream == stream)
    srow = np.asarray(m.row[mine])
    pos = np.searchsorted(srow, rows) if (len(srow) < 2 or (srow[1:] > srow[:-1]).all()) else None
    if pos is None:  # not expected (a stream keeps its own order in the merge); stay correct anyway
        order = np.argsort(srow, kind="stable")
        return mine[order][np.searchsorted(srow[order], rows)]
    return mine[pos]


def _field_column(arr: pa.Array, binary: bool) -> pa.Array:
    """Char arrays as strings (U+FFFD for bytes that are not UTF-8) unless ``binary``; the rest as is."""
    if not binary and (pa.types.is_large_binary(arr.type) or pa.types.is_binary(arr.type)):
        return display_array(arr)
    return arr


def fields_table(session: Session, event: str, *, comm: bool = True, binary: bool = False,
                 comms: Comms | None = None) -> pa.Table:
    """Every record of ``event`` (a name or ``system:name``) of every stream, in merged order: ``ts``,
    ``stream``, ``cpu``, ``pid``, ``comm`` (left out with ``comm=False``; the stream index is then in
    a ``_stream`` column for :class:`Comms`) and every field of its format, typed: integers as
    declared, char arrays as strings (``binary``: the kernel's bytes), other arrays as lists.
    Raises KeyError when no stream's formats have the event."""
    parts = []
    found = False
    for st in session.streams:
        ev = st.trace.formats.find(event)
        if ev is None:
            continue
        found = True
        rows = st.buffer.rows_of(ev.id)
        names = [f.name for f in ev.fields]
        vals = st.buffer.field_arrays(ev, names, rows) if names else {}
        t = st.buffer.events
        cols: dict[str, pa.Array] = {
            "ts": pa.array(t.column("ts").to_numpy()[rows]),
            "_stream": pa.array(np.full(len(rows), st.index, np.int16)),
            "cpu": pa.array(t.column("cpu").to_numpy()[rows]),
            "pid": pa.array(t.column("pid").to_numpy()[rows]),
            "_merged": pa.array(merged_positions(session, st.index, rows)),
        }
        parts.append((cols, {n: _field_column(vals[n], binary) for n in names if n in vals}))
    if not found:
        raise KeyError(event)
    field_names: dict[str, None] = {}
    for _, f in parts:
        field_names.update(dict.fromkeys(f))
    tables = [pa.table({**cols, **{f"\0{k}": v for k, v in f.items()}}) for cols, f in parts]
    t = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    order = np.argsort(t.column("_merged").to_numpy(), kind="stable")
    if len(order) > 1 and (np.diff(order) != 1).any():
        t = t.take(pa.array(order))
    stream = t.column("_stream").to_numpy()
    out: dict[str, pa.Array | pa.ChunkedArray] = {}

    def common(name: str) -> str:
        return f"common_{name}" if name in field_names else name

    out[common("ts")] = t.column("ts")
    out[common("stream")] = _stream_dictionary(session, stream)
    out[common("cpu")] = t.column("cpu")
    out[common("pid")] = t.column("pid")
    if comm:
        out[common("comm")] = (comms or Comms(session)).column(
            stream if len(parts) > 1 else int(stream[0]) if len(stream) else 0, t.column("pid").to_numpy())
    else:
        out["_stream"] = t.column("_stream")
    for n in field_names:
        out[n] = t.column(f"\0{n}")
    return pa.table(out)


def runs_table(session: Session, comms: Comms | None = None) -> pa.Table:
    """Which task ran on which CPU from when to when (:func:`~.intervals.cpu_runs`), every stream:
    ``stream``, ``cpu``, ``pid``, ``comm``, ``start``, ``end`` (ns), ``end_state`` (the ``prev_state``
    of the switch that ended the run; -1 still running at the end, -2 ended by a switch the trace
    lacks).  Sorted by stream, cpu, start."""
    parts = []
    for st in session.streams:
        r = session.runs(st.index)
        if r.num_rows:
            parts.append((st.index, r))
    cm = comms or Comms(session)
    if not parts:
        return pa.table({"stream": _stream_dictionary(session, np.zeros(0, np.int8)), "cpu": pa.array([], pa.int16()),
                         "pid": pa.array([], pa.int32()), "comm": pa.array([], pa.binary()),
                         "start": pa.array([], pa.int64()), "end": pa.array([], pa.int64()),
                         "end_state": pa.array([], pa.int64())})
    stream = np.concatenate([np.full(r.num_rows, i, np.int16) for i, r in parts])
    cat = pa.concat_tables([r for _, r in parts])
    pid = cat.column("pid").to_numpy()
    comm = pa.chunked_array([cm.column(i, r.column("pid").to_numpy()).cast(pa.binary()) for i, r in parts])
    return pa.table({"stream": _stream_dictionary(session, stream), "cpu": cat.column("cpu"),
                     "pid": pa.array(pid), "comm": comm, "start": cat.column("start"), "end": cat.column("end"),
                     "end_state": cat.column("end_state")})


def time_sync_table(session: Session) -> pa.Table:
    """Every guest's TIME_SHIFT samples (:func:`~.timesync.sync_samples`) with a ``guest`` column
    first; a guest without samples (no time sync) has no rows."""
    from .timesync import SAMPLES_SCHEMA, sync_samples

    schema = pa.schema([("guest", pa.string()), *SAMPLES_SCHEMA])
    parts = []
    for g in session.guests:
        s = sync_samples(g.trace)
        parts.append(s.add_column(0, "guest", pa.array([display(g.name)] * s.num_rows, pa.string())))
    return pa.concat_tables(parts).cast(schema) if parts else schema.empty_table()


def with_stream_names(session: Session, table: pa.Table) -> pa.Table:
    """``table`` with an integer ``stream`` column (a stream index, as the analyses give it) replaced
    by the stream's name, as every table of this module has it."""
    i = table.schema.get_field_index("stream")
    if i < 0 or not pa.types.is_integer(table.schema.field(i).type):
        return table
    idx = table.column(i).to_numpy() if table.num_rows else np.zeros(0, np.int16)
    return table.set_column(i, "stream", _stream_dictionary(session, idx))


def _analysis(name: str) -> Callable[[Session, dict | None], pa.Table]:
    def build(session: Session, vmap: dict | None) -> pa.Table:
        from .analysis import exits, vcputime, wakeups

        if name == "wakeups":
            return with_stream_names(session, wakeups.wakeups(session))
        if name == "wakeup_stats":
            return with_stream_names(session, wakeups.wakeup_stats(wakeups.wakeups(session)))
        if name == "vm_exits":
            return exits.vm_exits(session, vcpu_map=vmap)
        if name == "exit_stats":
            return exits.exit_stats(session, vcpu_map=vmap)
        if name == "guest_entries":
            return exits.guest_entries(session, vcpu_map=vmap)
        if name == "vcpu_time":
            return vcputime.vcpu_time(session, vcpu_map=vmap)
        if name == "vcpu_states":
            return vcputime.vcpu_intervals(session, vcpu_map=vmap)
        raise KeyError(name)
    return build


def _vcpus(session: Session, vmap: dict | None) -> pa.Table:
    from .vcpus import build_vcpu_map, vcpu_summary

    return vcpu_summary(session, build_vcpu_map(session, vmap))


DERIVED_TABLES: dict[str, str] = {
    "runs": "which task ran on which CPU from when to when (sched_switch), every stream",
    "vcpus": "each guest VCPU's host thread, its source, guest events, time in guest, causality check",
    "vcpu_states": "each VCPU's state intervals: guest, exit (reason), halted, preempted (by whom), unknown",
    "time_sync": "every guest's TIME_SHIFT samples (guest time, host time, offset, drift)",
    "wakeups": "every completed wakeup: sched_waking (or sched_wakeup) to the switch in",
    "wakeup_stats": "scheduling latency per task: count, total, p50, p99, max",
    "vm_exits": "every closed VM exit (kvm_exit -> kvm_entry of the same thread), reason, guest RIP",
    "exit_stats": "VM exits per VCPU and reason: count, total, p50, p99, max",
    "guest_entries": "every closed stay in guest mode (kvm_entry -> kvm_exit)",
    "vcpu_time": "ns per VCPU and state over the whole trace",
}
"""The tables derived from the events (name: what a row is), each built by :func:`derived_table`."""

_BUILDERS: dict[str, Callable[[Session, dict | None], pa.Table]] = {
    "runs": lambda s, _m: runs_table(s),
    "vcpus": _vcpus,
    "time_sync": lambda s, _m: time_sync_table(s),
    **{n: _analysis(n) for n in ("wakeups", "wakeup_stats", "vm_exits", "exit_stats", "guest_entries",
                                 "vcpu_time", "vcpu_states")},
}


def derived_table(session: Session, name: str, vcpu_map: dict[str, dict[int, int]] | None = None) -> pa.Table:
    """Table ``name`` of :data:`DERIVED_TABLES` over the whole trace; ``vcpu_map``: the user's
    ``{guest: {vcpu: host pid}}`` added to the session's own VCPU map."""
    try:
        build = _BUILDERS[name]
    except KeyError:
        raise KeyError(f"no table {name!r} (tables: {', '.join(DERIVED_TABLES)})") from None
    return build(session, vcpu_map or None)
