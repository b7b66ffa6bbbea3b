"""A host + guests session as a Perfetto trace (``.pftrace``), for the Perfetto UI and trace processor.

What is written, with the PyPI ``perfetto`` package's protos (``perfetto_trace_pb2``; optional: a
missing package is one line, :class:`PerfettoUnavailable`):

* One machine per file: the host is machine 0 (no ``machine_id``), guest k is ``machine_id`` k + 1,
  so each guest gets its own CPUs and its own pid space, as in Perfetto's multi-machine traces.  An
  instance buffer goes to its file's machine.
* Per stream and CPU, ``FtraceEventBundle`` packets of at most :data:`CHUNK` records in the stream's
  order.  ``sched_switch`` and ``sched_waking`` go in the bundle's ``compact_sched`` arrays (the form
  traced itself writes; built from whole columns, no per-event Python); every other event is a
  ``GenericFtraceEvent`` with its format's fields (integers as int/uint values, text and arrays as
  strings), encoded for whole columns at once by :mod:`.protowire` (a protobuf object per event
  cost 13 s per 3 M events).  The protos build the rest and decode the file in the tests.
* Timestamps are the session's: host-clock ns, a synchronized guest's already moved onto the host
  clock (TIME_SHIFT), so host and guests line up in the UI as in the app.
* A ``ProcessTree`` per machine names every task the trace names; a guest's VCPU threads on the
  host are named ``GUEST vcpu N (comm)``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..model.apitables import fields_table
from ..model.errors import UserInputError
from ..model.session import Session
from ..model.vcpus import build_vcpu_map
from . import protowire as pw
from .events import stream_events
from .hive import event_keys, prefetch_fields

CHUNK = 10_000
"""Records per bundle: packets stay well under a MB, as traced's own (one ring-buffer read each)."""
SEQUENCE_ID = 1
SLICE = 1 << 18
"""Records of one event encoded at a time."""


class PerfettoUnavailable(UserInputError):
    """The ``perfetto`` package (its protos) is not installed."""


def protos():
    """The ``perfetto_trace_pb2`` module, or :class:`PerfettoUnavailable` in one line."""
    try:
        from perfetto.protos.perfetto.trace import perfetto_trace_pb2
    except ImportError as e:
        raise PerfettoUnavailable(f"--format perfetto needs the perfetto package (pip install perfetto): {e}") from None
    return perfetto_trace_pb2


def machine_of(session: Session, stream: int) -> int:
    """0 for the host's streams, k + 1 for the streams of guest k."""
    st = session.streams[stream]
    return 0 if st.guest is None else session.guests.index(st.guest) + 1


class _Stream:
    """One stream's records, as what each row becomes: compact switch/waking columns or a generic event."""

    def __init__(self, session: Session, stream: int, fields: dict[str, pa.Table]) -> None:
        ev = stream_events(session, stream)
        self.n = ev.num_rows
        self.ts = ev.column("ts").to_numpy()
        self.cpu = ev.column("cpu").to_numpy()
        self.pid = ev.column("pid").to_numpy()
        self.flags = ev.column("flags").to_numpy()
        self.kind = np.full(self.n, -1, np.int32)  # index into self.tables
        self.pos = np.zeros(self.n, np.int64)  # row in that table
        self.tables: list[tuple[str, pa.Table]] = []
        st = session.streams[stream]
        for name, t in fields.items():
            fmt = st.trace.formats.find(name)
            if fmt is None:
                continue
            mine = t.filter(pc.equal(t.column("_stream"), stream))  # this stream's rows, in its order
            rows = st.buffer.rows_of(fmt.id)
            if not len(rows) or len(rows) != mine.num_rows:
                continue
            own = [f.name for f in fmt.fields if f.name in mine.column_names]
            self.kind[rows] = len(self.tables)
            self.pos[rows] = np.arange(len(rows))
            self.tables.append((fmt.name, mine.select(own)))
        self.unnamed = np.flatnonzero(self.kind < 0)  # records without a format: the event name only
        self.unnamed_names = ev.column("event").take(pa.array(self.unnamed)).cast(pa.string())


COMPACT_FIELDS = {
    "sched_switch": ("switch", {"prev_state": "prev_state", "next_pid": "next_pid", "next_prio": "next_prio"},
                     "next_comm"),
    "sched_waking": ("waking", {"pid": "pid", "target_cpu": "target_cpu", "prio": "prio"}, "comm"),
}
"""event -> (compact_sched prefix, {its number field: format field}, the comm field)."""


def _compact(bundle, s: _Stream, rows: np.ndarray, ok: set[str]) -> np.ndarray:
    """Put the switch and waking rows of ``rows`` (of the kinds in ``ok``) into ``bundle.compact_sched``
    (whole columns: timestamps delta-encoded, comms interned); returns the other rows."""
    cs = bundle.compact_sched
    intern: list[str] = []
    rest = np.ones(len(rows), bool)
    for k, (name, t) in enumerate(s.tables):
        if name not in ok:
            continue
        sel = s.kind[rows] == k
        r = rows[sel]
        rest &= ~sel
        if not len(r):
            continue
        prefix, numbers, comm = COMPACT_FIELDS[name]
        p = pa.array(s.pos[r])
        getattr(cs, f"{prefix}_timestamp").extend(np.diff(s.ts[r], prepend=0).tolist())
        for out, field in numbers.items():
            getattr(cs, f"{prefix}_{out}").extend(t.column(field).take(p).to_numpy().astype(np.int64).tolist())
        enc = pc.fill_null(t.column(comm).take(p), "").combine_chunks().dictionary_encode()  # interned
        getattr(cs, f"{prefix}_{'next_' if prefix == 'switch' else ''}comm_index").extend(
            (enc.indices.to_numpy().astype(np.int64) + len(intern)).tolist())
        intern.extend(enc.dictionary.to_pylist())
        if prefix == "waking":
            cs.waking_common_flags.extend(s.flags[r].astype(np.int64).tolist())
    if intern:
        cs.intern_table.extend(intern)
    return rows[rest]


def _compact_ok(s: _Stream) -> set[str]:
    """The compact kinds whose format has every field compact_sched needs, numbers as integers (a
    damaged or old format may not: such events go out as generic ones)."""
    ok = set()
    for name, t in s.tables:
        if name in COMPACT_FIELDS:
            _, numbers, comm = COMPACT_FIELDS[name]
            names = set(t.column_names)
            if comm in names and all(f in names and pa.types.is_integer(t.schema.field(f).type)
                                     for f in numbers.values()):
                ok.add(name)
    return ok


def _text(arr: pa.Array | pa.ChunkedArray) -> pw.Ragged:
    """A string column's UTF-8 bytes per row (a null: no bytes), straight from Arrow's buffers."""
    a = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    a = pc.fill_null(a.cast(pa.large_string()), "")
    offsets = np.frombuffer(a.buffers()[1], np.int64)[a.offset:a.offset + len(a) + 1]
    data = np.frombuffer(a.buffers()[2], np.uint8) if a.buffers()[2] is not None else np.zeros(0, np.uint8)
    return pw.Ragged(data[offsets[0]:offsets[-1]], np.diff(offsets))


def _field_values(col: pa.ChunkedArray) -> pw.Ragged:
    """The value part of each row's ``GenericFtraceEvent.Field``: ``int_value`` for a negative
    integer, ``uint_value`` for any other integer or a bool, ``str_value`` for anything else (text;
    lists and floats as Python prints them); a null has no value."""
    t = col.type
    valid = np.asarray(col.is_valid())
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        v = np.asarray(pc.fill_null(col.cast(pa.int64() if pa.types.is_boolean(t) else t), 0))
        neg = v < 0 if np.issubdtype(v.dtype, np.signedinteger) else np.zeros(len(v), bool)
        tags = pw.Ragged(np.where(neg, pw.tag(4, pw.VARINT)[0], pw.tag(5, pw.VARINT)[0]).astype(np.uint8),
                         np.ones(len(v), np.int64))
        part = pw.concat(tags, pw.varints(v))
    else:
        if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
            col = pa.array([None if x is None else str(x) for x in col.to_pylist()], pa.string())
        text = _text(col)
        part = pw.concat(pw.constant(pw.tag(3, pw.LEN), len(valid)), pw.varints(text.lens), text)
    return part if valid.all() else pw.select(valid, part.take(np.flatnonzero(valid)))


def _string(field: int, text: bytes) -> bytes:
    return pw.tag(field, pw.LEN) + pw.varint_bytes(len(text)) + text


def _generic(name: str, t: pa.Table, ts: np.ndarray, pid: np.ndarray) -> pw.Ragged:
    """One ``FtraceEventBundle.event`` entry per row of ``t`` (an event's fields), as wire bytes:
    ``event {timestamp, pid, generic {event_name, field {name, value}...}}``, every length prefix
    computed from the leaves' lengths first, so each byte is written once."""
    n = t.num_rows
    head = _string(1, name.encode())
    fields: list[pw.Ragged] = []
    gen_len = np.full(n, len(head), np.int64)
    for c in t.column_names:
        fhead = _string(1, c.encode())
        val = _field_values(t.column(c))
        f_len = len(fhead) + val.lens
        f_len_v = pw.varints(f_len)
        fields += [pw.constant(pw.tag(2, pw.LEN), n), f_len_v, pw.constant(fhead, n), val]
        gen_len += 1 + f_len_v.lens + f_len
    return _event(ts, pid, gen_len, [pw.constant(head, n), *fields])


def _event(ts: np.ndarray, pid: np.ndarray, gen_len: np.ndarray, generic: list[pw.Ragged]) -> pw.Ragged:
    """``FtraceEvent {timestamp, pid, generic}`` per row, each as a bundle's ``event`` field
    (``generic``: the leaves of the ``GenericFtraceEvent``, ``gen_len`` bytes per row)."""
    n = len(ts)
    ts_v, pid_v, gen_v = pw.varints(ts), pw.varints(pid), pw.varints(gen_len)
    t_ts, t_pid, t_gen = pw.tag(1, pw.VARINT), pw.tag(2, pw.VARINT), pw.tag(327, pw.LEN)
    ev_len = len(t_ts) + ts_v.lens + len(t_pid) + pid_v.lens + len(t_gen) + gen_v.lens + gen_len
    return pw.concat(pw.constant(pw.tag(2, pw.LEN), n), pw.varints(ev_len), pw.constant(t_ts, n), ts_v,
                     pw.constant(t_pid, n), pid_v, pw.constant(t_gen, n), gen_v, *generic)


def _generic_events(s: _Stream, ok: set[str]) -> tuple[pw.Ragged, np.ndarray]:
    """(the wire bytes of every record that is not compact, the index of each stream row in them)."""
    parts, where = [], np.full(s.n, -1, np.int64)
    base = 0
    for k, (name, t) in enumerate(s.tables):
        if name in ok:
            continue
        rows = np.flatnonzero(s.kind == k)
        for a in range(0, len(rows), SLICE):  # bounded temporaries (index arrays are 8 bytes a byte)
            r = rows[a:a + SLICE]
            parts.append(_generic(name, t.slice(a, len(r)), s.ts[r], s.pid[r]))
        where[rows] = base + s.pos[rows]
        base += len(rows)
    if len(s.unnamed):
        r = s.unnamed
        text = _text(s.unnamed_names)
        name = pw.concat(pw.constant(pw.tag(1, pw.LEN), len(r)), pw.varints(text.lens), text)
        parts.append(_event(s.ts[r], s.pid[r], name.lens, [name]))
        where[r] = base + np.arange(len(r))
    if not parts:
        return pw.empty(0), where
    return pw.Ragged(np.concatenate([p.flat for p in parts]), np.concatenate([p.lens for p in parts])), where


def _bundles(pb, s: _Stream, machine: int):
    """Packets (wire bytes) of one stream: per CPU, bundles of at most :data:`CHUNK` records."""
    ok = _compact_ok(s)
    generic, where = _generic_events(s, ok)
    tail = pw.tag(10, pw.VARINT) + pw.varint_bytes(SEQUENCE_ID)
    if machine:
        tail += pw.tag(98, pw.VARINT) + pw.varint_bytes(machine)
    for c in np.unique(s.cpu).tolist():
        rows_c = np.flatnonzero(s.cpu == c)
        for a in range(0, len(rows_c), CHUNK):
            rows = rows_c[a:a + CHUNK]
            bundle = pb.FtraceEventBundle()
            bundle.cpu = int(c)
            rest = _compact(bundle, s, rows, ok)
            body = bundle.SerializeToString() + generic.take(where[rest]).flat.tobytes()
            yield pw.tag(1, pw.LEN) + pw.varint_bytes(len(body)) + body + tail


def _process_tree(pb, session: Session, machine: int, streams: list[int], vcpu_names: dict[int, str]):
    pkt = pb.TracePacket()
    pkt.trusted_packet_sequence_id = SEQUENCE_ID
    if machine:
        pkt.machine_id = machine
    names: dict[int, str] = {}
    for i in streams:
        names.update(session.task_names(i))
    for tid in sorted(names):
        if tid <= 0:
            continue
        th = pkt.process_tree.threads.add()
        th.tid = tid
        comm = names[tid].encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        th.name = f"{vcpu_names[tid]} ({comm})" if tid in vcpu_names else comm
    return pkt


def export_perfetto(session: Session, out: str, *, vcpu_map: dict[str, dict[int, int]] | None = None) -> int:
    """Write ``session`` to ``out`` as a Perfetto trace (see the module doc); returns the records written."""
    pb = protos()
    vcpu_names = {m.host_pid: f"{m.guest} vcpu {m.vcpu}" for m in build_vcpu_map(session, vcpu_map)
                  if m.host_pid > 0}
    machines: dict[int, list[int]] = {}
    for st in session.streams:
        machines.setdefault(machine_of(session, st.index), []).append(st.index)
    prefetch_fields(session)
    fields = {name: fields_table(session, name, comm=False) for name in event_keys(session).values()}
    n = 0
    with open(out, "wb") as fh:
        for machine, streams in machines.items():
            fh.write(_framed(_process_tree(pb, session, machine, streams, vcpu_names if machine == 0 else {})))
            for i in streams:
                s = _Stream(session, i, fields)
                n += s.n
                for pkt in _bundles(pb, s, machine):
                    fh.write(pw.tag(1, pw.LEN) + pw.varint_bytes(len(pkt)) + pkt)
    return n


def _framed(pkt) -> bytes:
    """One ``Trace.packet`` (field 1, length-delimited): a trace file is these, concatenated."""
    body = pkt.SerializeToString()
    return pw.tag(1, pw.LEN) + pw.varint_bytes(len(body)) + body
