"""Latency between two events (KernelShark's latency_plot): irq_handler_entry -> irq_handler_exit by
irq, sys_enter -> sys_exit by pid, kvm_exit -> kvm_entry by host thread, ...

The pairing is KernelShark 2's (``src/plugins/LatencyPlot.cpp``, ``secondPass``): per stream, a
start event A pairs with the first end event B at or after it whose match fields equal A's, looked
for only up to the next A with the same match values.  So a second start with the same key before
any end *replaces* the first (the first start has no pair and is left out), and an end that follows
no pending start is ignored.  KernelShark walks the events sorted by time; here "after" is the
stream's record order (trace-cmd's report order, which is time order with ties as the report
prints them), so two events at one nanosecond pair in the order the report shows them.  When the
start and the end are the same event (sched_switch -> sched_switch by CPU, say), each record ends
the previous pair and starts the next, never pairs with itself.

KernelShark matches one field; here ``match`` may hold any number of (start_field, end_field) pairs,
all of which must be equal, or none (then each start pairs with the next end of the stream).
``common_pid`` (and ``pid`` for an event that has no ``pid`` field of its own, such as
``sys_enter``) is the record's task, ``common_cpu`` its CPU.

Vectorized: starts and ends of a stream are merged into one sequence ordered by (key, row); a
start pairs exactly when the element after it is an end of the same key.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from ..columns import event_columns
from ..lost import loss_gaps, spans_loss

__all__ = ["LatencyError", "latency_pairs", "latency_histogram", "latency_stats", "find_event", "dense_codes",
           "combine_codes"]

BASE = [("stream", pa.int16()), ("start_ts", pa.int64()), ("end_ts", pa.int64()), ("latency_ns", pa.int64()),
        ("start_row", pa.int64()), ("end_row", pa.int64()), ("across_loss", pa.bool_())]
"""The columns every pair has; ``across_loss``: the kernel dropped events of the stream between the
start and the end (:func:`..lost.spans_loss`), so the pair may be wrong (its real end dropped)."""


class LatencyError(ValueError):
    """An event or field the session does not have (the CLI prints it on one line, exit 2)."""


def find_event(session, name: str, streams: Sequence[int] | None = None):
    """``{stream: EventFormat}`` of every stream whose file knows event ``name`` (``event`` or ``system:event``)."""
    out = {}
    for si in range(len(session.streams)) if streams is None else streams:
        ev = session.streams[si].trace.formats.find(name)
        if ev is not None:
            out[int(si)] = ev
    return out


def _values(buf, ev, rows: np.ndarray, field: str) -> np.ndarray | pa.Array:
    t = buf.events
    if field == "common_pid" or (field == "pid" and ev.field("pid") is None):
        return t.column("pid").to_numpy()[rows].astype(np.int64)
    if field == "common_cpu" or (field == "cpu" and ev.field("cpu") is None):
        return t.column("cpu").to_numpy()[rows].astype(np.int64)
    if ev.field(field) is None:
        have = ", ".join(f.name for f in ev.fields) or "none"
        raise LatencyError(f"event {ev.full_name} has no field {field!r} (fields: {have}; or common_pid, common_cpu)")
    _, f = event_columns(buf, ev.name, [field], system=ev.system, rows=rows)
    return f[field]


def dense_codes(v: np.ndarray) -> tuple[np.ndarray, int]:
    """(codes in [0, k), k): equal values get equal codes.  A value range below 2**32 is used as is
    (a subtraction, no sort: pids, irqs, CPUs); wider ones (addresses) go through np.unique."""
    v = np.asarray(v)
    if v.dtype == np.uint64:
        v = v.view(np.int64)  # a bijection: equality is all that matters
    if not len(v):
        return np.zeros(0, np.int64), 1
    if v.dtype.kind in "iub":
        lo, hi = int(v.min()), int(v.max())
        if hi - lo < 1 << 32:
            return v.astype(np.int64) - lo, hi - lo + 1
    _, inv = np.unique(v, return_inverse=True)
    inv = inv.reshape(-1).astype(np.int64)
    return inv, int(inv.max()) + 1


def combine_codes(parts: list[tuple[np.ndarray, int]], n: int) -> tuple[np.ndarray, int]:
    """One code per element for a tuple of codes (mixed radix while it fits in 62 bits)."""
    g, k = np.zeros(n, np.int64), 1
    for c, kc in parts:
        if k * kc < 1 << 62:
            g, k = g * kc + c, k * kc
        else:
            g, k = dense_codes(np.unique(np.stack([g, c], 1), axis=0, return_inverse=True)[1].reshape(-1))
    return g, k


def _codes(a, b) -> tuple[np.ndarray, int, np.ndarray | pa.Array]:
    """(codes of start values then end values, number of codes, the start values for the key column):
    a start value and an end value are equal exactly when their codes are."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        if a.dtype.kind == b.dtype.kind:
            both = np.concatenate([a, b])
        else:  # signed against unsigned: compare as numbers
            both = np.concatenate([a.astype(np.float64), b.astype(np.float64)])
        c, k = dense_codes(both)
        return c, k, a
    sa = pa.array(a).cast(pa.string()) if not isinstance(a, pa.Array) else a.cast(pa.string())
    sb = pa.array(b).cast(pa.string()) if not isinstance(b, pa.Array) else b.cast(pa.string())
    enc = pa.concat_arrays([sa, sb]).dictionary_encode()
    codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, max(len(enc.dictionary), 1), (a if isinstance(a, pa.Array) else sa)


def _stream_pairs(session, si: int, sev, eev, match) -> dict | None:
    buf = session.streams[si].buffer
    s_rows = buf.rows_of(sev.id).astype(np.int64)
    e_rows = buf.rows_of(eev.id).astype(np.int64)
    if not len(s_rows) or not len(e_rows):
        return None
    ns = len(s_rows)
    parts, key_vals = [], []
    for sf, ef in match:
        va, vb = _values(buf, sev, s_rows, sf), _values(buf, eev, e_rows, ef)
        if isinstance(va, np.ndarray) != isinstance(vb, np.ndarray):  # numpy: a number; Arrow: text
            raise LatencyError(f"{sev.full_name}.{sf} and {eev.full_name}.{ef} cannot match: one is a number, "
                               "the other text")
        c, k, kv = _codes(va, vb)
        parts.append((c, k))
        key_vals.append(kv)
    rows = np.concatenate([s_rows, e_rows])
    kind = np.concatenate([np.ones(ns, np.int8), np.zeros(len(e_rows), np.int8)])  # end before start at one row
    g, k = combine_codes(parts, len(rows))
    span = int(rows.max()) + 1
    if k * span * 2 < 1 << 63:  # one int64 key (key, row, kind): unique, so a plain argsort
        order = np.argsort((g * span + rows) * 2 + kind)
    else:
        order = np.lexsort((kind, rows, g))
    k_o = kind[order]
    g_o = g[order]
    nxt = np.flatnonzero((k_o[:-1] == 1) & (k_o[1:] == 0) & (g_o[:-1] == g_o[1:]))  # a start, then its end
    o = np.argsort(order[nxt])  # pairs in the starts' record order
    si_, ei_ = order[nxt][o], order[nxt + 1][o] - ns
    ts = buf.events.column("ts").to_numpy()
    srow, erow = s_rows[si_], e_rows[ei_]
    out = {"stream": np.full(len(si_), si, np.int16), "start_ts": ts[srow], "end_ts": ts[erow],
           "latency_ns": ts[erow] - ts[srow], "start_row": srow, "end_row": erow,
           "across_loss": spans_loss(loss_gaps(buf), ts[srow], ts[erow])}
    for (sf, _ef), kv in zip(match, key_vals, strict=True):
        out[sf] = kv.take(pa.array(si_)) if isinstance(kv, pa.Array) else kv[si_]
    return out


def latency_pairs(session, start: str, end: str, match: Sequence[tuple[str, str]] = (),
                  streams: Sequence[int] | None = None, t0: int | None = None, t1: int | None = None) -> pa.Table:
    """Every (start, end) pair by KernelShark's latency_plot rule (module doc), over the given streams.

    Columns: stream int16, start_ts, end_ts, latency_ns, start_row, end_row (int64; rows of the
    stream's ``buffer.events``), then one column per match pair named after its start field, holding
    the start's value (int64 or string).  Sorted by stream, then start record order.

    ``t0``/``t1`` (host ns) keep pairs wholly inside [t0, t1] (start at or after t0, end at or
    before t1); the pairing looks at the whole trace.  Raises :class:`LatencyError` when no stream
    knows ``start`` or ``end``, or an event lacks a match field.
    """
    match = [tuple(m) for m in match]
    s_evs = find_event(session, start, streams)
    e_evs = find_event(session, end, streams)
    for name, evs in ((start, s_evs), (end, e_evs)):
        if not evs:
            raise LatencyError(f"no loaded stream has the event {name!r}")
    key_names = []
    for sf, _ef in match:
        if sf in key_names or sf in dict(BASE):
            raise LatencyError(f"match field {sf!r} given twice or clashes with a column name")
        key_names.append(sf)
    parts = []
    for si in sorted(set(s_evs) & set(e_evs)):
        p = _stream_pairs(session, si, s_evs[si], e_evs[si], match)
        if p is None:
            continue
        keep = None
        if t0 is not None:
            keep = p["start_ts"] >= t0
        if t1 is not None:
            keep = (p["end_ts"] <= t1) if keep is None else keep & (p["end_ts"] <= t1)
        if keep is not None:
            idx = np.flatnonzero(keep)
            p = {k: (v.take(pa.array(idx)) if isinstance(v, pa.Array) else v[idx]) for k, v in p.items()}
        parts.append(p)
    return _assemble(parts, key_names)


def _assemble(parts: list[dict], key_names: list[str]) -> pa.Table:
    fields = [pa.field(n, t) for n, t in BASE]
    arrays = []
    for n, t in BASE:
        vals = [p[n] for p in parts]
        arrays.append(pa.array(np.concatenate(vals).astype(t.to_pandas_dtype(), copy=False) if vals
                               else np.zeros(0, t.to_pandas_dtype()), t))
    for n in key_names:
        vals = [p[n] for p in parts]
        if any(isinstance(v, pa.Array) for v in vals):
            arr = pa.concat_arrays([v.cast(pa.string()) if isinstance(v, pa.Array) else pa.array(v).cast(pa.string())
                                    for v in vals])
        else:
            dt = np.uint64 if vals and all(v.dtype == np.uint64 for v in vals) else np.int64  # addresses stay u64
            arr = pa.array(np.concatenate([v.astype(dt) for v in vals]) if vals else np.zeros(0, dt))
        fields.append(pa.field(n, arr.type))
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def latency_histogram(lat: pa.Table, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(edges, counts) of ``lat["latency_ns"]`` in ``bins`` equal bins (numpy.histogram: the last bin
    includes its right edge).  Edges are float64 ns; with no pairs, edges span [0, 1] and counts are 0."""
    v = lat.column("latency_ns").to_numpy() if lat.num_rows else np.zeros(0, np.int64)
    if not len(v):
        return np.linspace(0.0, 1.0, bins + 1), np.zeros(bins, np.int64)
    counts, edges = np.histogram(v, bins=bins)
    return edges, counts.astype(np.int64)


def latency_stats(lat: pa.Table) -> pa.Table:
    """Per stream and match key: count, total_ns, p50_ns, p99_ns, max_ns, max_at_ns of a
    :func:`latency_pairs` table (``max_at_ns``: start time of the worst pair, the earliest of equal
    ones).  Percentiles are nearest-rank, as :func:`.wakeups.wakeup_stats`.  Sorted by stream, then
    max descending."""
    from .wakeups import percentile_nearest_rank

    base = {n for n, _ in BASE}
    keys = [n for n in lat.column_names if n not in base]
    schema = pa.schema([lat.schema.field("stream"), *(lat.schema.field(k) for k in keys),
                        *(pa.field(n, pa.int64()) for n in ("count", "total_ns", "p50_ns", "p99_ns", "max_ns",
                                                            "max_at_ns", "across_loss"))])
    if lat.num_rows == 0:
        return schema.empty_table()
    stream = lat.column("stream").to_numpy().astype(np.int64)
    parts = [dense_codes(stream)]
    for k in keys:
        col = lat.column(k).combine_chunks()
        if pa.types.is_integer(col.type):
            parts.append(dense_codes(col.to_numpy()))
        else:
            enc = col.dictionary_encode()
            parts.append((enc.indices.to_numpy(zero_copy_only=False).astype(np.int64), max(len(enc.dictionary), 1)))
    g, ng = combine_codes(parts, lat.num_rows)  # stream is the most significant part: groups sort by stream
    lv = lat.column("latency_ns").to_numpy()
    sts = lat.column("start_ts").to_numpy()
    lmin, lspan = int(lv.min()), int(lv.max()) - int(lv.min()) + 1
    if ng * lspan < 1 << 63:
        order = np.argsort(g * lspan + (lv - lmin))  # by group, latency up
    else:
        order = np.lexsort((lv, g))
    g_o, l_o = g[order], lv[order]
    new = np.ones(len(order), bool)
    new[1:] = g_o[1:] != g_o[:-1]
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, len(order)))
    last = starts + counts - 1
    worst = np.repeat(l_o[last], counts)
    # where the worst is: the earliest start among the group's equal worst pairs
    max_at = np.minimum.reduceat(np.where(l_o == worst, sts[order], np.iinfo(np.int64).max), starts)
    first_rows = pa.array(order[starts])
    cols = [lat.column("stream").take(first_rows), *(lat.column(k).take(first_rows) for k in keys),
            pa.array(counts.astype(np.int64)), pa.array(np.add.reduceat(l_o, starts).astype(np.int64)),
            pa.array(percentile_nearest_rank(l_o, starts, counts, 50)),
            pa.array(percentile_nearest_rank(l_o, starts, counts, 99)),
            pa.array(l_o[last]), pa.array(max_at.astype(np.int64)),
            pa.array(np.add.reduceat(lat.column("across_loss").to_numpy(zero_copy_only=False)[order].astype(np.int64),
                                     starts))]
    out = pa.Table.from_arrays([c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in cols],
                               schema=schema)
    return out.take(pa.array(np.lexsort((-l_o[last], stream[order][starts]))))
