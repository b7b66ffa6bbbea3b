"""VM exits (issue 12, item 4): every ``kvm_exit`` of the host with the ``kvm_entry`` that closes it.

The rule (:func:`~kshark_py.model.intervals.kvm_events`): an exit lasts from its ``kvm_exit`` to the
next kvm event of the same host thread when that event is a ``kvm_entry``; if it is another
``kvm_exit``, or the thread has no later kvm event, the exit has no duration and is left out of
every row, count and total here.  The same rule, the other way round, gives the time in guest
(:func:`guest_entries`: ``kvm_entry`` to the ``kvm_exit`` that closes it).

Who: each host thread with kvm events is named by the session's VCPU map (the host's GUEST records,
the kvm_entry pairing of a lone guest, the user's map) or, for a VM no record names, guest ``""`` and
the VCPU of its ``kvm_entry`` (``vcpu_id``).  Reasons are printed as trace-cmd's kvm plugin prints
them (``HLT``, ``EPT_VIOLATION``, ``EXIT_NPF``, ``UNKNOWN (99)``), the guest RIP is symbolized with the
guest file's kallsyms when that file is loaded (``func+0xoff``, as a merged ``trace-cmd report``).

A time range [t0, t1] keeps the exits (entries) that lie wholly inside it (from ``t0`` on, closed by
``t1``), as the other analyses of a range do.  Every function is whole-array numpy/Arrow work: no loop over exits.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ...loaders.printfmt.context import RenderContext
from ...loaders.printfmt.evaluator import Evaluator
from ...loaders.printfmt.plugin_kvm import exit_reason_name
from ...loaders.tracedat import TraceFile
from ..session import Session
from ..vcpus import build_vcpu_map
from .wakeups import percentile_nearest_rank

__all__ = ["VM_EXITS", "EXIT_STATS", "REASON_HISTOGRAM", "TOP_RIPS", "GUEST_ENTRIES", "vcpu_threads",
           "vm_exits", "guest_entries", "exit_stats", "stats_of", "reason_histogram", "top_rips", "reason_names",
           "symbolize"]

VM_EXITS = pa.schema([
    ("guest", pa.string()), ("vcpu", pa.int32()), ("host_pid", pa.int32()), ("reason", pa.string()),
    ("exit_reason", pa.int64()), ("exit_ts", pa.int64()), ("entry_ts", pa.int64()), ("duration_ns", pa.int64()),
    ("guest_rip", pa.uint64()), ("rip_symbol", pa.string()), ("exit_row", pa.int64()),
])
"""One closed VM exit: ``exit_ts``/``entry_ts`` host ns, ``exit_row`` its row in the host buffer.
Rows in report order."""
GUEST_ENTRIES = pa.schema([
    ("guest", pa.string()), ("vcpu", pa.int32()), ("host_pid", pa.int32()), ("entry_ts", pa.int64()),
    ("exit_ts", pa.int64()), ("duration_ns", pa.int64()), ("reason", pa.string()), ("entry_row", pa.int64()),
])
"""One closed stay in guest mode; ``reason``: of the exit that ended it.  Rows in report order."""
EXIT_STATS = pa.schema([
    ("guest", pa.string()), ("vcpu", pa.int32()), ("host_pid", pa.int32()), ("reason", pa.string()),
    ("count", pa.int64()), ("total_ns", pa.int64()), ("p50_ns", pa.int64()), ("p99_ns", pa.int64()),
    ("max_ns", pa.int64()),
])
"""Per VCPU thread and reason; percentiles nearest-rank (an observed duration)."""
REASON_HISTOGRAM = pa.schema([("reason", pa.string()), ("count", pa.int64()), ("total_ns", pa.int64())])
TOP_RIPS = pa.schema([("guest_rip", pa.uint64()), ("rip_symbol", pa.string()), ("count", pa.int64()),
                      ("total_ns", pa.int64())])


def vcpu_threads(session: Session, vcpu_map: dict[str, dict[int, int]] | None = None) -> dict[int, tuple[str, int]]:
    """host thread id -> (guest name, VCPU) for every thread the session can name.

    The session's VCPU map (:func:`~kshark_py.model.vcpus.build_vcpu_map`: the host's GUEST records,
    the kvm_entry pairing of a lone guest, then ``vcpu_map``, the user's ``{guest: {vcpu: pid}}``);
    a warning it gives is added to ``session.warnings`` once however often this is asked.  Threads
    of guests whose files are not loaded are named by the host's GUEST records (vsock guests: real
    thread ids)."""
    n = len(session.warnings)
    mappings = build_vcpu_map(session, vcpu_map)
    new = session.warnings[n:]
    del session.warnings[n:]
    session.warnings.extend(dict.fromkeys(w for w in new if w not in session.warnings))
    out: dict[int, tuple[str, int]] = {}
    for m in mappings:
        out.setdefault(int(m.host_pid), (m.guest, int(m.vcpu)))
    if session.host is not None:
        loaded = {g.trace.meta.trace_id for g in session.guests}
        for rec in session.host.meta.guests:
            if rec.trace_id in loaded:
                continue
            for v, pid in enumerate(rec.vcpu_pids):
                if pid >= 0:
                    out.setdefault(int(pid), (rec.name or "", v))
    return out


def reason_names(exit_reason: np.ndarray, isa: np.ndarray) -> pa.Array:
    """trace-cmd's name of each exit reason (:func:`~kshark_py.loaders.printfmt.plugin_kvm.exit_reason_name`),
    computed once per distinct (reason, isa)."""
    if len(exit_reason) == 0:
        return pa.array([], pa.string())
    # both are u32 in the event: one 64-bit key per exit, one 1-D sort
    key = (np.asarray(isa, np.int64).astype(np.uint64) << np.uint64(32)) | \
        (np.asarray(exit_reason, np.int64).astype(np.uint64) & np.uint64(0xFFFFFFFF))
    keys, inv = np.unique(key, return_inverse=True)
    names = [exit_reason_name(k & 0xFFFFFFFF, k >> 32) for k in keys.tolist()]
    return pa.array(names, pa.string()).take(pa.array(np.asarray(inv).reshape(-1)))


def symbolize(tf: TraceFile, rips: np.ndarray) -> list[str | None]:
    """``func+0xoff`` (``func`` at offset 0) of each address of ``rips`` (distinct values: one lookup
    each) in ``tf``'s kallsyms, as trace-cmd's kvm plugin prints a guest RIP in a merged report
    (libtraceevent's lookup, aliases included); None where none resolves."""
    ev = Evaluator(RenderContext(endian=tf.endian, long_size=tf.lay.long_size, kallsyms=tf.kallsyms, printk={},
                                 comm_of=str))
    out: list[str | None] = []
    for rip in np.asarray(rips, np.uint64).tolist():
        hit = ev.find_func(rip)
        out.append(None if hit is None else hit[0] + (f"+0x{rip - hit[1]:x}" if rip != hit[1] else ""))
    return out


class _Kvm:
    """The host's kvm events as arrays, with each thread's guest and VCPU (internal)."""

    def __init__(self, session: Session, vcpu_map: dict[str, dict[int, int]] | None) -> None:
        self.session = session
        hs = session.host_stream
        k = session.kvm_events(hs.index) if hs is not None else None
        self.n = 0 if k is None else k.num_rows
        if not self.n:
            return
        self.c = {n: k.column(n).to_numpy(zero_copy_only=False) for n in k.column_names}
        self.threads = vcpu_threads(session, vcpu_map)

    def closed(self, entry: bool, t0: int | None, t1: int | None) -> np.ndarray:
        """Indices of the closed entries (or exits) wholly inside [t0, t1], in report order."""
        c = self.c
        sel = c["closed"] & (c["entry"] == entry)
        if t0 is not None:
            sel &= c["ts"] >= t0
        if t1 is not None:
            sel &= c["next_ts"] <= t1
        idx = np.flatnonzero(sel)
        return idx[np.argsort(c["row"][idx], kind="stable")]

    def who(self, pid: np.ndarray, vcpu_id: np.ndarray) -> tuple[pa.Array, np.ndarray, pa.Array]:
        """(guest names, VCPUs, guest index into session.guests or null) of threads ``pid``."""
        upid, inv = np.unique(pid, return_inverse=True)
        named = [self.threads.get(int(p)) for p in upid]
        gidx = {g.name: i for i, g in enumerate(self.session.guests)}
        names = pa.array(["" if w is None else w[0] for w in named], pa.string())
        mapped_vcpu = np.array([-1 if w is None else w[1] for w in named], np.int64)
        loaded = pa.array([None if w is None else gidx.get(w[0]) for w in named], pa.int64())
        take = pa.array(inv)
        vcpu = np.where(mapped_vcpu[inv] >= 0, mapped_vcpu[inv], vcpu_id)
        return names.take(take), vcpu, loaded.take(take)

    def symbols(self, rips: np.ndarray, guest_index: pa.Array) -> pa.Array:
        """``rips`` symbolized with the kallsyms of the loaded guest at ``guest_index`` (null: none)."""
        out = pa.nulls(len(rips), pa.string())
        gi = guest_index.fill_null(-1).to_numpy(zero_copy_only=False)
        parts, where = [], []
        for g in np.unique(gi[gi >= 0]).tolist():  # one pass per loaded guest
            sel = np.flatnonzero(gi == g)
            urip, inv = np.unique(rips[sel], return_inverse=True)
            names = pa.array(symbolize(self.session.guests[g].trace, urip), pa.string())
            parts.append(names.take(pa.array(inv)))
            where.append(sel)
        if not parts:
            return out
        sel = np.concatenate(where)
        pos = np.full(len(rips), -1, np.int64)
        pos[sel] = np.arange(len(sel))
        allnames = pa.concat_arrays(parts)
        return allnames.take(pa.array(pos, mask=pos < 0))


def vm_exits(session: Session, t0: int | None = None, t1: int | None = None, *,
             vcpu_map: dict[str, dict[int, int]] | None = None) -> pa.Table:
    """One row per host ``kvm_exit`` closed by a ``kvm_entry`` of the same thread (schema :data:`VM_EXITS`),
    those with ``t0 <= exit_ts`` and ``entry_ts <= t1``; ``vcpu``: the VCPU map's, else the closing
    entry's ``vcpu_id``."""
    k = _Kvm(session, vcpu_map)
    if not k.n:
        return VM_EXITS.empty_table()
    c = k.c
    ex = k.closed(False, t0, t1)
    en = ex + 1  # closed: the thread's next kvm event, an entry
    guest, vcpu, gi = k.who(c["pid"][ex], c["vcpu"][en])
    rip = c["rip"][ex]
    return pa.Table.from_arrays([
        guest, pa.array(vcpu, pa.int32()), pa.array(c["pid"][ex], pa.int32()),
        reason_names(c["exit_reason"][ex], c["isa"][ex]), pa.array(c["exit_reason"][ex], pa.int64()),
        pa.array(c["ts"][ex], pa.int64()), pa.array(c["ts"][en], pa.int64()),
        pa.array(c["ts"][en] - c["ts"][ex], pa.int64()), pa.array(rip, pa.uint64()), k.symbols(rip, gi),
        pa.array(c["row"][ex], pa.int64()),
    ], schema=VM_EXITS)


def guest_entries(session: Session, t0: int | None = None, t1: int | None = None, *,
                  vcpu_map: dict[str, dict[int, int]] | None = None) -> pa.Table:
    """One row per host ``kvm_entry`` closed by a ``kvm_exit`` of the same thread (schema
    :data:`GUEST_ENTRIES`), those with ``t0 <= entry_ts`` and ``exit_ts <= t1``: the VCPU ran guest code that long."""
    k = _Kvm(session, vcpu_map)
    if not k.n:
        return GUEST_ENTRIES.empty_table()
    c = k.c
    en = k.closed(True, t0, t1)
    ex = en + 1
    guest, vcpu, _ = k.who(c["pid"][en], c["vcpu"][en])
    return pa.Table.from_arrays([
        guest, pa.array(vcpu, pa.int32()), pa.array(c["pid"][en], pa.int32()),
        pa.array(c["ts"][en], pa.int64()), pa.array(c["ts"][ex], pa.int64()),
        pa.array(c["ts"][ex] - c["ts"][en], pa.int64()), reason_names(c["exit_reason"][ex], c["isa"][ex]),
        pa.array(c["row"][en], pa.int64()),
    ], schema=GUEST_ENTRIES)


def _groups(keys: list[np.ndarray], values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(order, starts, counts, sorted values): rows grouped by ``keys`` (most significant first), each
    group's values ascending."""
    order = np.lexsort((values, *reversed(keys)))
    new = np.zeros(len(order), bool)
    new[:1] = True
    for k in keys:
        ko = k[order]
        new[1:] |= ko[1:] != ko[:-1]
    starts = np.flatnonzero(new)
    return order, starts, np.diff(np.append(starts, len(order))), values[order]


def _codes(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Dense codes of a string column, in the strings' sort order (one sort of the distinct values)."""
    enc = (col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col).dictionary_encode()
    rank = np.argsort(np.argsort(np.asarray(enc.dictionary.to_pylist(), dtype=object), kind="stable"))
    return rank[enc.indices.to_numpy(zero_copy_only=False)].astype(np.int64)


def stats_of(exits: pa.Table) -> pa.Table:
    """:data:`EXIT_STATS` of a :func:`vm_exits` table: per (guest, VCPU, host thread) and reason the
    count, total, nearest-rank p50/p99 and max duration.  Sorted by guest, VCPU, host thread, then
    total descending."""
    if exits.num_rows == 0:
        return EXIT_STATS.empty_table()
    dur = exits.column("duration_ns").to_numpy()
    keys = [_codes(exits.column("guest")), exits.column("vcpu").to_numpy().astype(np.int64),
            exits.column("host_pid").to_numpy().astype(np.int64), _codes(exits.column("reason"))]
    order, starts, counts, d = _groups(keys, dur)
    first = pa.array(order[starts])
    total = np.add.reduceat(d, starts)
    out = pa.Table.from_arrays([
        exits.column("guest").take(first).combine_chunks(), exits.column("vcpu").take(first).combine_chunks(),
        exits.column("host_pid").take(first).combine_chunks(), exits.column("reason").take(first).combine_chunks(),
        pa.array(counts, pa.int64()), pa.array(total, pa.int64()),
        pa.array(percentile_nearest_rank(d, starts, counts, 50), pa.int64()),
        pa.array(percentile_nearest_rank(d, starts, counts, 99), pa.int64()),
        pa.array(d[starts + counts - 1], pa.int64()),
    ], schema=EXIT_STATS)
    o = np.lexsort((-total, *(k[order[starts]] for k in reversed(keys[:3]))))
    return out.take(pa.array(o))


def exit_stats(session: Session, t0: int | None = None, t1: int | None = None, *,
               vcpu_map: dict[str, dict[int, int]] | None = None) -> pa.Table:
    """Per VCPU and reason: count, total, p50, p99, max of the closed exits in [t0, t1] (schema
    :data:`EXIT_STATS`; see :func:`stats_of`)."""
    return stats_of(vm_exits(session, t0, t1, vcpu_map=vcpu_map))


def reason_histogram(exits: pa.Table) -> pa.Table:
    """Exits and their total duration per reason of a :func:`vm_exits` table (schema
    :data:`REASON_HISTOGRAM`), most frequent first (then by name)."""
    if exits.num_rows == 0:
        return REASON_HISTOGRAM.empty_table()
    t = exits.group_by("reason").aggregate([("duration_ns", "count"), ("duration_ns", "sum")])
    t = pa.table({"reason": t.column("reason"), "count": t.column("duration_ns_count").cast(pa.int64()),
                  "total_ns": t.column("duration_ns_sum").cast(pa.int64())}, schema=REASON_HISTOGRAM)
    return t.sort_by([("count", "descending"), ("reason", "ascending")])


def top_rips(exits: pa.Table, n: int = 20) -> pa.Table:
    """The ``n`` guest RIPs with the most exits of a :func:`vm_exits` table (schema :data:`TOP_RIPS`),
    most exits first, then most time, then lowest address."""
    if exits.num_rows == 0 or n <= 0:
        return TOP_RIPS.empty_table()
    t = exits.group_by("guest_rip", use_threads=False).aggregate([("duration_ns", "count"), ("duration_ns", "sum"),
                                               ("rip_symbol", "first")])
    t = pa.table({"guest_rip": t.column("guest_rip"), "rip_symbol": t.column("rip_symbol_first"),
                  "count": t.column("duration_ns_count").cast(pa.int64()),
                  "total_ns": t.column("duration_ns_sum").cast(pa.int64())}, schema=TOP_RIPS)
    return t.sort_by([("count", "descending"), ("total_ns", "descending"), ("guest_rip", "ascending")]).slice(0, n)
