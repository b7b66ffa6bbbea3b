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
  strings).
* Timestamps are the session's: host-clock ns, a synchronized guest's already moved onto the host
  clock (TIME_SHIFT), so host and guests line up in the UI as in the app.
* A ``ProcessTree`` per machine names every task the trace names; a guest's VCPU threads on the
  host are named ``GUEST vcpu N (comm)``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401 (pa.compute)

from ..model.apitables import fields_table
from ..model.errors import UserInputError
from ..model.session import Session
from ..model.vcpus import build_vcpu_map
from .events import stream_events
from .hive import event_keys, prefetch_fields

CHUNK = 10_000
"""Records per bundle: packets stay well under a MB, as traced's own (one ring-buffer read each)."""
SEQUENCE_ID = 1


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


def _value(f, v) -> None:
    if isinstance(v, bool):
        f.uint_value = int(v)
    elif isinstance(v, int):
        if v < 0:
            f.int_value = v
        else:
            f.uint_value = v
    elif isinstance(v, (bytes, bytearray)):
        f.str_value = bytes(v).decode("utf-8", "replace")
    elif v is not None:
        f.str_value = str(v)


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
        self.columns: list[dict[str, list]] = []
        st = session.streams[stream]
        for name, t in fields.items():
            fmt = st.trace.formats.find(name)
            if fmt is None:
                continue
            mine = t.filter(pa.compute.equal(t.column("_stream"), stream))  # this stream's rows, in its order
            rows = st.buffer.rows_of(fmt.id)
            if not len(rows) or len(rows) != mine.num_rows:
                continue
            own = [f.name for f in fmt.fields if f.name in mine.column_names]
            self.kind[rows] = len(self.tables)
            self.pos[rows] = np.arange(len(rows))
            self.tables.append((fmt.name, mine.select(own)))
            self.columns.append({c: mine.column(c).to_pylist() for c in own})
        names = ev.column("event").to_pylist() if (self.kind < 0).any() else []
        self.unnamed = {int(r): names[r] for r in np.flatnonzero(self.kind < 0)}  # no format: the name only


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
    intern: dict[str, int] = {}
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
        texts = [bytes(v or b"").decode("utf-8", "replace") for v in t.column(comm).take(p).to_pylist()]
        getattr(cs, f"{prefix}_{'next_' if prefix == 'switch' else ''}comm_index").extend(
            [intern.setdefault(x, len(intern)) for x in texts])
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


def _bundles(pb, s: _Stream, machine: int):
    ok = _compact_ok(s)
    for c in np.unique(s.cpu).tolist():
        rows_c = np.flatnonzero(s.cpu == c)
        for a in range(0, len(rows_c), CHUNK):
            rows = rows_c[a:a + CHUNK]
            pkt = pb.TracePacket()
            pkt.trusted_packet_sequence_id = SEQUENCE_ID
            if machine:
                pkt.machine_id = machine
            bundle = pkt.ftrace_events
            bundle.cpu = int(c)
            rest = _compact(bundle, s, rows, ok)
            ts, pid, kind, pos = (s.ts[rest].tolist(), s.pid[rest].tolist(), s.kind[rest].tolist(),
                                  s.pos[rest].tolist())
            for r, t, p, k, i in zip(rest.tolist(), ts, pid, kind, pos, strict=True):
                e = bundle.event.add()
                e.timestamp = t
                e.pid = p
                g = e.generic
                if k < 0:
                    g.event_name = s.unnamed[r]
                    continue
                g.event_name = s.tables[k][0]
                for name, col in s.columns[k].items():
                    f = g.field.add()
                    f.name = name
                    _value(f, col[i])
            yield pkt


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
    fields = {name: fields_table(session, name, comm=False, binary=True) for name in event_keys(session).values()}
    n = 0
    with open(out, "wb") as fh:
        for machine, streams in machines.items():
            fh.write(_framed(_process_tree(pb, session, machine, streams, vcpu_names if machine == 0 else {})))
            for i in streams:
                s = _Stream(session, i, fields)
                n += s.n
                for pkt in _bundles(pb, s, machine):
                    fh.write(_framed(pkt))
    return n


def _framed(pkt) -> bytes:
    """One ``Trace.packet`` (field 1, length-delimited): a trace file is these, concatenated."""
    body = pkt.SerializeToString()
    return b"\x0a" + _varint(len(body)) + body


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)
