"""Scheduling latency (KernelShark's sched_events, ``perf sched latency``): from a task's wakeup to
the switch that puts it on a CPU, for every stream of a session.

The rule (issue 12, item 1), per stream and per woken pid P:

* a wakeup starts at a ``sched_waking`` of P; a stream that holds no ``sched_waking`` record uses
  ``sched_wakeup`` and ``sched_wakeup_new`` instead (a kernel or a recording without the waking
  event);
* it ends at the first later ``sched_switch`` of the same stream whose ``next_pid`` is P;
* a second waking of P before that switch starts nothing: the first one stands (P was already
  runnable, its latency runs from the first waking);
* pid 0 (the idle task) is left out; a waking with no switch after it is not a wakeup.

So where the stream has ``sched_waking``, a new task's first wakeup (``sched_wakeup_new`` only, the
kernel traces no waking for it) is not counted, and a waking of a task that is still running lasts
until the task is next switched in: both follow from the rule (KernelShark's sched_events boxes,
waking to the task's next switch in, are the same kind of interval).

"Later" is the stream's own record order (trace-cmd's report order), so a waking and the switch
at the same nanosecond pair in the order the report prints them.  Times are the stream's ``ts``
column, which is the host clock for a synchronized guest and includes the user's time offset.

All of it is whole-array numpy: the wakings and the switches to a pid are merged into one
sequence ordered by (pid, row), where a start is a waking whose predecessor in the sequence is not
a waking of the same pid, and its end is the next switch in the sequence if that switch is of the
same pid.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..columns import event_columns
from ..lost import loss_gaps, spans_loss

__all__ = ["WAKEUPS", "WAKEUP_STATS", "wakeups", "wakeup_stats", "percentile_nearest_rank"]

WAKEUPS = pa.schema([
    ("stream", pa.int16()), ("pid", pa.int32()), ("comm", pa.string()),
    ("waking_ts", pa.int64()), ("switch_ts", pa.int64()), ("latency_ns", pa.int64()),
    ("waking_row", pa.int64()), ("switch_row", pa.int64()), ("cpu", pa.int16()), ("across_loss", pa.bool_()),
])
"""One row per completed wakeup; ``cpu`` is the CPU of the switch, rows index the stream's events;
``across_loss``: the kernel dropped events of the stream between the waking and the switch (any
CPU: the dropped ones may hold an earlier switch to the task, so the latency may be overstated)."""

WAKEUP_STATS = pa.schema([
    ("stream", pa.int16()), ("pid", pa.int32()), ("comm", pa.string()), ("count", pa.int64()),
    ("total_ns", pa.int64()), ("p50_ns", pa.int64()), ("p99_ns", pa.int64()), ("max_ns", pa.int64()),
    ("max_at_ns", pa.int64()), ("across_loss", pa.int64()),
])


def _stream_wakeups(session, si: int) -> dict[str, np.ndarray | pa.Array] | None:
    buf = session.streams[si].buffer
    sw_rows, sw = event_columns(buf, "sched_switch", ["next_pid"], system="sched", numbers_only=True)
    if not len(sw_rows) or "next_pid" not in sw:
        return None
    parts = []
    wk_rows, wk = event_columns(buf, "sched_waking", ["pid", "comm"], system="sched")
    if len(wk_rows):
        parts.append((wk_rows, wk))
    else:
        for name in ("sched_wakeup", "sched_wakeup_new"):
            r, f = event_columns(buf, name, ["pid", "comm"], system="sched")
            if len(r):
                parts.append((r, f))
    parts = [(r, f) for r, f in parts if isinstance(f.get("pid"), np.ndarray)]  # a pid of chars: damaged format
    if not parts:
        return None
    w_rows = np.concatenate([r for r, _ in parts]).astype(np.int64)
    w_pid = np.concatenate([np.asarray(f["pid"], np.int64) for _, f in parts])
    w_comm = pa.concat_arrays([_comm_array(f.get("comm"), len(r)) for r, f in parts])
    if len(parts) > 1:  # wakeup and wakeup_new: one sequence in record order
        o = np.argsort(w_rows, kind="stable")
        w_rows, w_pid, w_comm = w_rows[o], w_pid[o], w_comm.take(pa.array(o))
    keep = w_pid != 0
    s_pid = np.asarray(sw["next_pid"], np.int64)
    s_keep = s_pid != 0
    s_rows = sw_rows[s_keep].astype(np.int64)
    s_pid = s_pid[s_keep]
    w_idx = np.flatnonzero(keep)
    w_rows_k, w_pid_k = w_rows[w_idx], w_pid[w_idx]
    if not len(w_rows_k) or not len(s_rows):
        return None
    # one sequence ordered by (pid, row); kind 1 = waking, 0 = switch
    rows = np.concatenate([w_rows_k, s_rows])
    pid = np.concatenate([w_pid_k, s_pid])
    kind = np.concatenate([np.ones(len(w_rows_k), np.int8), np.zeros(len(s_rows), np.int8)])
    plo, span = int(pid.min()), int(rows.max()) + 1
    if (int(pid.max()) - plo + 1) * span < 1 << 63:  # (pid, row) as one unique int64: a plain argsort
        order = np.argsort((pid - plo) * span + rows)
    else:
        order = np.lexsort((rows, pid))
    pid_o = pid[order]
    kind_o = kind[order]
    n = len(order)
    is_w = kind_o == 1
    prev_same_waking = np.zeros(n, bool)
    prev_same_waking[1:] = is_w[:-1] & (pid_o[1:] == pid_o[:-1])
    start = np.flatnonzero(is_w & ~prev_same_waking)
    sw_pos = np.flatnonzero(~is_w)
    j = np.searchsorted(sw_pos, start)  # the next switch after each start, in sequence order
    has = j < len(sw_pos)
    start, j = start[has], j[has]
    end = sw_pos[j]
    ok = pid_o[end] == pid_o[start]
    start, end = start[ok], end[ok]
    ws = order[start]  # index into the concatenation: < len(w_rows_k) is a waking
    se = order[end] - len(w_rows_k)
    wrow = w_rows_k[ws]
    srow = s_rows[se]
    t = buf.events
    ts = t.column("ts").to_numpy()
    cpu = t.column("cpu").to_numpy()
    wts = ts[wrow]
    sts = ts[srow]
    # by waking time (record order within the stream)
    o = np.argsort(wrow, kind="stable")
    return {
        "stream": np.full(len(o), si, np.int16), "pid": w_pid_k[ws][o].astype(np.int32),
        "comm": w_comm.take(pa.array(w_idx[ws][o])), "waking_ts": wts[o], "switch_ts": sts[o],
        "latency_ns": (sts - wts)[o], "waking_row": wrow[o], "switch_row": srow[o],
        "cpu": cpu[srow][o].astype(np.int16),
        "across_loss": spans_loss(loss_gaps(buf), wts[o], sts[o]),
    }


def _comm_array(comm, n: int) -> pa.Array:
    if comm is None:
        return pa.nulls(n, pa.string())
    arr = comm if isinstance(comm, pa.Array) else pa.array(comm)
    if not pa.types.is_string(arr.type):
        try:
            arr = arr.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return pa.nulls(n, pa.string())
    return arr


def _select(start: np.ndarray, end: np.ndarray, t0: int | None, t1: int | None) -> np.ndarray | None:
    """Which rows lie wholly inside [t0, t1] (None: all)."""
    keep = None
    if t0 is not None:
        keep = start >= t0
    if t1 is not None:
        k = end <= t1
        keep = k if keep is None else keep & k
    return keep


def _table(schema: pa.Schema, parts: list[dict]) -> pa.Table:
    if not parts:
        return schema.empty_table()
    arrays = []
    for f in schema:
        vals = [p[f.name] for p in parts]
        if pa.types.is_string(f.type):
            arrays.append(pa.concat_arrays([v.cast(f.type) for v in vals]))
        else:
            arrays.append(pa.array(np.concatenate(vals).astype(f.type.to_pandas_dtype(), copy=False), f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _filter(part: dict, keep: np.ndarray) -> dict:
    idx = np.flatnonzero(keep)
    return {k: (v.take(pa.array(idx)) if isinstance(v, pa.Array) else v[idx]) for k, v in part.items()}


def wakeups(session, streams: list[int] | None = None, t0: int | None = None, t1: int | None = None) -> pa.Table:
    """Every completed wakeup of the given streams (default: all), by the rule in the module doc.

    Columns :data:`WAKEUPS`: stream, pid, comm (the waking record's ``comm``), waking_ts, switch_ts,
    latency_ns, waking_row, switch_row (rows of that stream's ``buffer.events``), cpu (of the switch).
    Sorted by stream, then waking record order.

    ``t0``/``t1`` (host ns) keep the wakeups lying wholly inside [t0, t1]: waking at or after t0 and
    switch at or before t1, which is what cutting the trace at t0 and t1 would leave.  The pairing
    itself always looks at the whole trace, so a window never invents a wakeup.
    """
    parts = []
    for si in range(len(session.streams)) if streams is None else streams:
        p = _stream_wakeups(session, int(si))
        if p is None:
            continue
        keep = _select(p["waking_ts"], p["switch_ts"], t0, t1)
        parts.append(p if keep is None else _filter(p, keep))
    return _table(WAKEUPS, parts)


def percentile_nearest_rank(sorted_vals: np.ndarray, starts: np.ndarray, counts: np.ndarray, q: float) -> np.ndarray:
    """The ``q``-th percentile (0 < q <= 100) of each group of ``sorted_vals`` by the nearest-rank rule.

    Groups are ``sorted_vals[starts[i] : starts[i] + counts[i]]``, each sorted ascending.  The
    value is the one of rank ceil(q/100 * n) (1-based), an observed latency and never an
    interpolation: numpy's ``percentile(..., method="inverted_cdf")``.  So p50 of [1, 2, 3, 4] is 2
    and p99 of fewer than 100 values is the maximum.
    """
    # exact ceil(q*n/100) for q with up to 6 decimals, in integers (no float rounding at the edges)
    qm = int(round(q * 1_000_000))
    rank = -((-counts.astype(np.int64) * qm) // 100_000_000)
    rank = np.clip(rank, 1, counts)
    return sorted_vals[starts + rank - 1]


def wakeup_stats(w: pa.Table) -> pa.Table:
    """Per task (stream, pid): count, total, p50, p99 and max latency, where the max is, and how
    many of the task's wakeups span dropped events (``across_loss``: their latency may be overstated).

    Columns :data:`WAKEUP_STATS`.  Percentiles are nearest-rank (:func:`percentile_nearest_rank`,
    numpy's ``inverted_cdf``).  ``max_at_ns`` is the waking time of the worst wakeup (the earliest
    of equal worst ones); ``comm`` is that of the task's last wakeup (a task may exec and rename).
    Sorted by stream, then max latency descending, then pid.
    """
    if w.num_rows == 0:
        return WAKEUP_STATS.empty_table()
    stream = w.column("stream").to_numpy().astype(np.int64)
    pid = w.column("pid").to_numpy().astype(np.int64)
    lat = w.column("latency_ns").to_numpy()
    wts = w.column("waking_ts").to_numpy()
    order = np.lexsort((-wts, lat, pid, stream))  # by task, latency up; equal worst: earliest last
    s_o, p_o, l_o = stream[order], pid[order], lat[order]
    new = np.ones(len(order), bool)
    new[1:] = (s_o[1:] != s_o[:-1]) | (p_o[1:] != p_o[:-1])
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, len(order)))
    last = starts + counts - 1
    total = np.add.reduceat(l_o, starts)
    # comm of each task's last wakeup in record order
    rec = np.lexsort((w.column("waking_row").to_numpy(), pid, stream))
    rnew = np.ones(len(rec), bool)
    rnew[:-1] = (stream[rec][1:] != stream[rec][:-1]) | (pid[rec][1:] != pid[rec][:-1])
    comm_last = w.column("comm").take(pa.array(rec[np.flatnonzero(rnew)]))
    out = pa.table({
        "stream": pa.array(s_o[starts].astype(np.int16)), "pid": pa.array(p_o[starts].astype(np.int32)),
        "comm": comm_last, "count": pa.array(counts.astype(np.int64)), "total_ns": pa.array(total.astype(np.int64)),
        "p50_ns": pa.array(percentile_nearest_rank(l_o, starts, counts, 50)),
        "p99_ns": pa.array(percentile_nearest_rank(l_o, starts, counts, 99)),
        "max_ns": pa.array(l_o[last]), "max_at_ns": pa.array(wts[order][last]),
        "across_loss": pa.array(np.add.reduceat(
            w.column("across_loss").to_numpy(zero_copy_only=False)[order].astype(np.int64), starts)),
    }, schema=WAKEUP_STATS)
    o = np.lexsort((p_o[starts], -l_o[last], s_o[starts]))
    return out.take(pa.array(o))
