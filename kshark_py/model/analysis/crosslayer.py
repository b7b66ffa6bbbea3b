"""Cross-layer latency (issue 12, item 6): a guest task's wall time split by guest and host causes.

The guest's own scheduling says, at each moment of [t0, t1], whether the task is

* running on a guest CPU (a VCPU): its runs (:func:`~kshark_py.model.intervals.cpu_runs`);
* runnable: switched out still runnable (R, R+), or from the wakeup (``sched_waking``; without it
  ``sched_wakeup``/``sched_wakeup_new``) that ended a sleep to the switch that runs it; it waits for
  the VCPU it next runs on (the one it ran on last when it does not run again);
* blocked: switched out sleeping, until that wakeup; the detail names the task whose context
  issued the wakeup (``comm-pid``, the waker);
* unknown: before anything says (before its first run without a wakeup, after a run a switch
  missing from the trace ended).

While it runs or waits for a VCPU, that VCPU's own state (:func:`~.vcputime.vcpu_intervals`) says
what the host did meanwhile:

======================  ==========================  ===============================================
VCPU state              state                       detail
======================  ==========================  ===============================================
in guest                ``running`` / ``runnable``  ``VCPU n`` (running) or ``guest scheduler``
exit handling           ``exit``                    exit reason as trace-cmd prints it
preempted on the host   ``preempted``               host task that ran instead, ``comm-pid``
halted                  ``halted``                  ``VCPU n``
unknown (no host data)  ``running`` / ``runnable``  as in guest: the guest's view stands
======================  ==========================  ===============================================

So a wakeup latency becomes e.g. 0.2 ms ``runnable`` (guest scheduler) + 2.7 ms ``preempted`` by
``kworker/1:2-88``.  Every piece is cut to [t0, t1]; the pieces tile it.  Times are host ns (the
guest's timestamps as the session shows them).  Whole-array work, no loop over events.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...loaders.text import display
from ..columns import event_columns
from ..intervals import END_MISSING, END_OPEN, is_runnable, sleeping_mask, task_runs
from ..session import Session
from .vcputime import vcpu_intervals

__all__ = ["CROSS_LAYER", "CROSS_LAYER_INTERVALS", "cross_layer", "cross_layer_intervals", "explain_wakeup"]

CROSS_LAYER = pa.schema([("state", pa.string()), ("detail", pa.string()), ("total_ns", pa.int64())])
CROSS_LAYER_INTERVALS = pa.schema([("state", pa.string()), ("detail", pa.string()), ("start", pa.int64()),
                                   ("end", pa.int64()), ("vcpu", pa.int32())])
"""One piece; ``vcpu``: the guest CPU it ran on or waited for (-1: blocked or unknown)."""

# guest-level states
_RUNNING, _RUNNABLE, _BLOCKED, _UNKNOWN = range(4)
_GSTATE = ("running", "runnable", "blocked", "unknown")


def _guest_stream(session: Session, guest: str) -> int:
    for st in session.streams:
        if st.guest is not None and st.buffer.name == "" and st.guest.name == guest:
            return st.index
    return session.stream_index(guest)


def _wakings(session: Session, stream: int, pid: int) -> tuple[np.ndarray, np.ndarray]:
    """(times, waker pids) of the wakeups of ``pid`` in ``stream``: its ``sched_waking`` records, or
    ``sched_wakeup``/``sched_wakeup_new`` in a stream without ``sched_waking``; in record order."""
    buf = session.streams[stream].buffer
    rows, f = event_columns(buf, "sched_waking", ["pid"], system="sched", numbers_only=True)
    parts = [(rows, f)] if len(rows) else [event_columns(buf, n, ["pid"], system="sched", numbers_only=True)
                                           for n in ("sched_wakeup", "sched_wakeup_new")]
    sel = np.concatenate([r[f["pid"] == pid] for r, f in parts if "pid" in f] or [np.zeros(0, np.int64)])
    sel = np.sort(sel.astype(np.int64))
    t = buf.events
    return t.column("ts").to_numpy()[sel], t.column("pid").to_numpy()[sel].astype(np.int64)


def _guest_pieces(session: Session, stream: int, pid: int, t0: int, t1: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(start, end, guest state, vcpu, waker pid) tiling [t0, t1] from the guest's own records."""
    buf = session.streams[stream].buffer
    r = task_runs(session.runs(stream), pid)
    rs = r.column("start").to_numpy().astype(np.int64)
    re_ = r.column("end").to_numpy().astype(np.int64)
    rc = r.column("cpu").to_numpy().astype(np.int64)
    st = r.column("end_state").to_numpy().astype(np.int64)
    wts, wpid = _wakings(session, stream, pid)
    # the gaps: before the first run, between runs, after the last (n + 1 of them)
    g_s = np.r_[np.iinfo(np.int64).min, re_]
    g_e = np.r_[rs, np.iinfo(np.int64).max]
    nxt_cpu = np.r_[rc, rc[-1:] if len(rc) else [-1]]  # the VCPU it waits for: of the next run, else the last
    mask = sleeping_mask(buf)
    before = np.r_[END_MISSING, st]  # how the run before each gap ended (none: unknown)
    after_open = np.r_[False, st == END_OPEN]  # a run still on its CPU when its records end: stays running
    # the first wakeup inside each gap (after a sleep it makes the task runnable)
    k = np.searchsorted(wts, g_s, side="left")
    has_w = (k < len(wts)) & (wts[np.minimum(k, max(len(wts) - 1, 0))] < g_e) if len(wts) else np.zeros(len(g_s), bool)
    w_at = np.where(has_w, wts[np.minimum(k, max(len(wts) - 1, 0))] if len(wts) else 0, g_e)
    w_by = np.where(has_w, wpid[np.minimum(k, max(len(wpid) - 1, 0))] if len(wpid) else -1, -1)
    runnable_gap = is_runnable(before, mask)
    asleep_gap = (before >= 0) & ~runnable_gap
    unknown_gap = ~runnable_gap & ~asleep_gap & ~after_open
    # each gap: [g_s, w_at) first part, [w_at, g_e) second part
    first_state = np.select([after_open, runnable_gap, asleep_gap], [_RUNNING, _RUNNABLE, _BLOCKED], _UNKNOWN)
    second_state = np.where(after_open, _RUNNING, np.where(unknown_gap & ~has_w, _UNKNOWN, _RUNNABLE))
    prev_cpu = np.r_[-1, rc]
    starts = np.concatenate([rs, g_s, w_at])
    ends = np.concatenate([re_, w_at, g_e])
    state = np.concatenate([np.full(len(rs), _RUNNING), first_state, second_state])
    vcpu = np.concatenate([rc, np.where(after_open, prev_cpu, nxt_cpu), np.where(after_open, prev_cpu, nxt_cpu)])
    waker = np.concatenate([np.full(len(rs), -1), np.where(first_state == _BLOCKED, w_by, -1),
                            np.full(len(g_s), -1)])
    vcpu = np.where((state == _BLOCKED) | (state == _UNKNOWN), -1, vcpu)
    s, e = np.clip(starts, t0, t1), np.clip(ends, t0, t1)
    keep = e > s
    o = np.argsort(s[keep], kind="stable")
    return s[keep][o], e[keep][o], state[keep][o], vcpu[keep][o], waker[keep][o]


def _vcpu_lanes(session: Session, guest: str, t0: int, t1: int, vcpu_map: dict[str, dict[int, int]] | None
                ) -> dict[int, dict[str, np.ndarray]]:
    """guest VCPU -> its lane (start, end, state, detail) over [t0, t1], from :func:`vcpu_intervals`."""
    iv = vcpu_intervals(session, t0, t1, vcpu_map=vcpu_map)
    if iv.num_rows == 0:
        return {}
    g = iv.column("guest").to_numpy(zero_copy_only=False)
    v = iv.column("vcpu").to_numpy()
    hp = iv.column("host_pid").to_numpy()
    out = {}
    for vc in np.unique(v[g == guest]).tolist():
        sel = (g == guest) & (v == vc)
        sel &= hp == hp[sel].max()  # one thread per VCPU (a known host thread before the guest's evidence)
        idx = np.flatnonzero(sel)
        part = iv.take(pa.array(idx))
        st = pc.cast(part.column("state"), pa.string())
        by_pid = part.column("by_pid")
        preempted_by = pc.binary_join_element_wise(pc.cast(part.column("by_comm"), pa.string()),
                                                   pc.cast(by_pid, pa.string()), "-")
        detail = pc.if_else(pc.equal(st, "exit"), pc.cast(part.column("reason"), pa.string()),
                            pc.if_else(pc.and_(pc.equal(st, "preempted"), pc.greater_equal(by_pid, 0)),
                                       preempted_by, ""))
        state = st.to_numpy(zero_copy_only=False)
        detail = pc.fill_null(detail, "").to_numpy(zero_copy_only=False)
        out[int(vc)] = {"start": iv.column("start").to_numpy()[idx], "end": iv.column("end").to_numpy()[idx],
                        "state": state, "detail": detail}
    return out


def cross_layer_intervals(session: Session, guest: str, pid: int, t0: int, t1: int, *,
                          vcpu_map: dict[str, dict[int, int]] | None = None) -> pa.Table:
    """The pieces of guest task ``pid``'s wall time over [t0, t1] (schema :data:`CROSS_LAYER_INTERVALS`),
    in time order; see the module doc.  ``guest``: the guest's name (its stream's name); ``vcpu_map``:
    the user's ``{guest: {vcpu: host pid}}`` for VCPU threads the files do not name."""
    if t1 <= t0:
        return CROSS_LAYER_INTERVALS.empty_table()
    stream = _guest_stream(session, guest)
    s, e, gst, vcpu, waker = _guest_pieces(session, stream, pid, t0, t1)
    lanes = _vcpu_lanes(session, guest, t0, t1, vcpu_map) if session.streams[stream].role == "guest" else {}
    names = session.task_names(stream)
    # cut every running/runnable piece where its VCPU's lane changes state
    bounds = [s, e] + [lane["start"] for lane in lanes.values()]
    cuts = np.unique(np.concatenate(bounds)) if len(s) else np.zeros(0, np.int64)
    i = np.searchsorted(cuts, s, side="right")
    j = np.searchsorted(cuts, e, side="left")
    n = np.maximum(j - i, 0) + 1
    piece = np.repeat(np.arange(len(s)), n)
    k = np.arange(len(piece)) - np.repeat(np.r_[0, np.cumsum(n)[:-1]], n)
    ps = np.where(k == 0, s[piece], cuts[np.minimum(np.repeat(i, n) + k - 1, max(len(cuts) - 1, 0))])
    pe = np.r_[ps[1:], 0]
    last = k == np.repeat(n - 1, n)
    pe = np.where(last, e[piece], pe)
    state = np.asarray(_GSTATE, dtype=object)[gst[piece]]
    detail = np.where(gst[piece] == _RUNNING, [f"VCPU {x}" for x in vcpu[piece].tolist()],
                      np.where(gst[piece] == _RUNNABLE, "guest scheduler", "")).astype(object)
    wk = waker[piece]
    blocked = np.flatnonzero((gst[piece] == _BLOCKED) & (wk >= 0))
    for u in np.unique(wk[blocked]).tolist():  # one name per distinct waker
        detail[blocked[wk[blocked] == u]] = f"{display(names.get(u, '<...>')) if u else '<idle>'}-{u}"
    for vc, lane in lanes.items():  # a few VCPUs
        on = np.flatnonzero(((gst[piece] == _RUNNING) | (gst[piece] == _RUNNABLE)) & (vcpu[piece] == vc))
        li = np.searchsorted(lane["start"], ps[on], side="right") - 1
        ok = (li >= 0) & (ps[on] < lane["end"][np.maximum(li, 0)])
        on, li = on[ok], li[ok]
        ls = lane["state"][li]
        host = (ls != "guest") & (ls != "unknown")
        state[on[host]] = ls[host]
        hd = lane["detail"][li[host]]
        detail[on[host]] = np.where(ls[host] == "halted", [f"VCPU {vc}"] * int(host.sum()), hd)
    vc_out = np.where((gst[piece] == _RUNNING) | (gst[piece] == _RUNNABLE), vcpu[piece], -1)
    # adjacent equal pieces joined
    keep = pe > ps
    ps, pe, state, detail, vc_out = ps[keep], pe[keep], state[keep], detail[keep], vc_out[keep]
    if len(ps) > 1:
        new = np.r_[True, (state[1:] != state[:-1]) | (detail[1:] != detail[:-1]) | (vc_out[1:] != vc_out[:-1])]
        first = np.flatnonzero(new)
        pe = pe[np.r_[first[1:], len(new)] - 1]
        ps, state, detail, vc_out = ps[first], state[first], detail[first], vc_out[first]
    return pa.Table.from_arrays([pa.array(state, pa.string()), pa.array(detail, pa.string()),
                                 pa.array(ps, pa.int64()), pa.array(pe, pa.int64()), pa.array(vc_out, pa.int32())],
                                schema=CROSS_LAYER_INTERVALS)


def _totals(pieces: pa.Table) -> pa.Table:
    if pieces.num_rows == 0:
        return CROSS_LAYER.empty_table()
    dur = pa.array(pieces.column("end").to_numpy() - pieces.column("start").to_numpy(), pa.int64())
    t = pieces.select(["state", "detail"]).append_column("dur", dur)
    g = t.group_by(["state", "detail"], use_threads=False).aggregate([("dur", "sum")])
    g = pa.table({"state": g.column("state"), "detail": g.column("detail"), "total_ns": g.column("dur_sum")},
                 schema=CROSS_LAYER)
    return g.sort_by([("total_ns", "descending"), ("state", "ascending"), ("detail", "ascending")])


def cross_layer(session: Session, guest: str, pid: int, t0: int, t1: int, *,
                vcpu_map: dict[str, dict[int, int]] | None = None) -> pa.Table:
    """:func:`cross_layer_intervals` summed per (state, detail) (schema :data:`CROSS_LAYER`), largest
    first; the totals add up to ``t1 - t0``."""
    return _totals(cross_layer_intervals(session, guest, pid, t0, t1, vcpu_map=vcpu_map))


def explain_wakeup(session: Session, stream: int, waking_row: int, *,
                   vcpu_map: dict[str, dict[int, int]] | None = None) -> pa.Table:
    """:func:`cross_layer` of one wakeup of a guest task: from its waking record (row ``waking_row``
    of ``stream``) to the switch that runs the task (the wakeup of
    :func:`~.wakeups.wakeups`).  Raises ValueError when that record starts no wakeup."""
    from .wakeups import wakeups

    w = wakeups(session, [stream])
    hit = np.flatnonzero(w.column("waking_row").to_numpy() == waking_row)
    if not len(hit):
        raise ValueError(f"row {waking_row} of stream {session.streams[stream].name!r} starts no wakeup")
    r = int(hit[0])
    return cross_layer(session, session.streams[stream].name, int(w.column("pid")[r].as_py()),
                       int(w.column("waking_ts")[r].as_py()), int(w.column("switch_ts")[r].as_py()),
                       vcpu_map=vcpu_map)
