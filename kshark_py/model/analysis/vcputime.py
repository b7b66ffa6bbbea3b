"""Where did the VCPU's time go (issue 12, item 5), per VCPU over a time range.

Each VCPU whose host thread is known (the VCPU map, or any host thread with kvm events) gets the
state lane of :func:`~kshark_py.model.intervals.vcpu_states`: in guest (a ``kvm_entry`` to the
``kvm_exit`` that closes it, item 4's rule; for a thread without kvm events, e.g. a TCG guest, its
own time on a host CPU), exit handling by reason, halted (after a HLT exit until the next entry;
asleep without kvm events), preempted (steal: switched out runnable, or asleep while its guest did
not halt) and unknown.  A preempted interval is split by the host tasks that ran meanwhile on the
CPU the thread waited for (the CPU it ran on next; the last one if it never ran again).

A VCPU of a loaded guest whose host thread is unknown gets the guest's own evidence instead: its
guest CPU running a task is in guest, running idle (pid 0) is halted, no data is unknown
(``host_pid`` -1).

Every VCPU's intervals tile the range exactly (padded with unknown where its data does not reach),
so its states' totals add up to ``t1 - t0``.  The default range is the host stream's first to last
record.  Times are host ns.  Whole-array work per VCPU (a few per session), no loop over events.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ...loaders.tasks import task_comm
from ...loaders.text import display
from ..intervals import vcpu_states
from ..session import Session
from .exits import reason_names, vcpu_threads

__all__ = ["VCPU_INTERVALS", "VCPU_TIME", "STATE_ORDER", "vcpu_intervals", "vcpu_time", "time_of"]

VCPU_INTERVALS = pa.schema([
    ("guest", pa.string()), ("vcpu", pa.int32()), ("host_pid", pa.int32()), ("state", pa.string()),
    ("reason", pa.string()), ("start", pa.int64()), ("end", pa.int64()), ("by_pid", pa.int32()),
    ("by_comm", pa.string()),
])
"""``reason``: trace-cmd's name of the exit (``exit`` only, else null); ``by_pid``/``by_comm``: the
VCPU thread itself while it runs (guest, exit), the host task that ran instead (preempted), else -1
and ""."""
VCPU_TIME = pa.schema([("guest", pa.string()), ("vcpu", pa.int32()), ("host_pid", pa.int32()),
                       ("state", pa.string()), ("total_ns", pa.int64())])
STATE_ORDER = ("guest", "exit", "halted", "preempted", "unknown")
"""Every state, in the order :func:`vcpu_time` lists them."""


def _window(session: Session, t0: int | None, t1: int | None) -> tuple[int, int] | None:
    hs = session.host_stream
    ts = hs.buffer.events.column("ts").to_numpy() if hs is not None else np.zeros(0, np.int64)
    if t0 is None or t1 is None:
        if len(ts) == 0:
            return None
        t0 = int(ts.min()) if t0 is None else t0
        t1 = int(ts.max()) if t1 is None else t1
    return (int(t0), int(t1)) if t1 > t0 else None


def _clip(start: np.ndarray, end: np.ndarray, cols: dict[str, np.ndarray], t0: int, t1: int
          ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Contiguous intervals cut to [t0, t1], empty ones dropped, and padded with an interval whose
    columns are all -1 (unknown) where they do not reach an end of the window."""
    s, e = np.clip(start, t0, t1), np.clip(end, t0, t1)
    keep = e > s
    s, e = s[keep], e[keep]
    cols = {k: v[keep] for k, v in cols.items()}
    if len(s) == 0:
        return np.array([t0]), np.array([t1]), {k: np.full(1, -1, v.dtype) for k, v in cols.items()}
    head = [(t0, int(s[0]))] if s[0] > t0 else []
    tail = [(int(e[-1]), t1)] if e[-1] < t1 else []
    if not head and not tail:
        return s, e, cols
    nh, nt = len(head), len(tail)
    s = np.concatenate([[x for x, _ in head], s, [x for x, _ in tail]]).astype(np.int64)
    e = np.concatenate([[y for _, y in head], e, [y for _, y in tail]]).astype(np.int64)
    return s, e, {k: np.concatenate([np.full(nh, -1, v.dtype), v, np.full(nt, -1, v.dtype)]) for k, v in cols.items()}


_CODE = {name: i for i, name in enumerate(STATE_ORDER)}
_UNKNOWN = _CODE["unknown"]


def _split_by_runs(s: np.ndarray, e: np.ndarray, cpu: np.ndarray, runs: pa.Table
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pieces (index of the interval, start, end, pid) of intervals [s, e) on CPU ``cpu``, cut where
    the task on that CPU changes; pid -1 where the CPU's runs do not reach."""
    rc = runs.column("cpu").to_numpy().astype(np.int64)
    rs_all = runs.column("start").to_numpy()
    re_all = runs.column("end").to_numpy()
    rp_all = runs.column("pid").to_numpy()
    out_i, out_s, out_e, out_p = [], [], [], []
    for c in np.unique(cpu).tolist():  # one pass per CPU
        mine = np.flatnonzero(cpu == c)
        sel = rc == c
        rs, re_, rp = rs_all[sel], re_all[sel], rp_all[sel]
        edges = np.unique(np.concatenate([rs, re_]))
        a = np.searchsorted(edges, s[mine], side="right")
        b = np.searchsorted(edges, e[mine], side="left")
        n_cut = np.maximum(b - a, 0)
        idx = np.repeat(mine, n_cut + 1)
        first = np.r_[0, np.cumsum(n_cut + 1)[:-1]]
        k = np.arange(len(idx)) - np.repeat(first, n_cut + 1)  # piece number inside its interval
        cut = edges[np.minimum(np.repeat(a, n_cut + 1) + k - 1, max(len(edges) - 1, 0))] if len(edges) else s[idx]
        ps = np.where(k == 0, s[idx], cut)
        last = k == np.repeat(n_cut, n_cut + 1)
        nxt = np.r_[ps[1:], 0]
        pe = np.where(last, e[idx], nxt)
        j = np.searchsorted(rs, ps, side="right") - 1
        # the run containing the piece's start; zero-length runs at one time: the last of them
        ok = (j >= 0) & (re_[np.maximum(j, 0)] > ps) if len(rs) else np.zeros(len(ps), bool)
        out_i.append(idx), out_s.append(ps), out_e.append(pe)
        out_p.append(np.where(ok, rp[np.maximum(j, 0)] if len(rs) else -1, -1))
    if not out_i:
        z = np.zeros(0, np.int64)
        return z, z, z, z
    i, ps, pe, pp = (np.concatenate(x) for x in (out_i, out_s, out_e, out_p))
    keep = pe > ps
    return i[keep], ps[keep], pe[keep], pp[keep].astype(np.int64)


def _waited_cpu(s: np.ndarray, e: np.ndarray, task: pa.Table) -> np.ndarray:
    """CPU each preempted interval [s, e) waited for: of the thread's next run (start >= e), else of
    its last run before s; -1 without runs."""
    ts = task.column("start").to_numpy()
    te = task.column("end").to_numpy()
    tc = task.column("cpu").to_numpy().astype(np.int64)
    if len(ts) == 0:
        return np.full(len(s), -1, np.int64)
    nxt = np.searchsorted(ts, e, side="left")
    prev = np.searchsorted(te, s, side="right") - 1
    return np.where(nxt < len(ts), tc[np.minimum(nxt, len(ts) - 1)], np.where(prev >= 0, tc[np.maximum(prev, 0)], -1))


def _host_lane(session: Session, pid: int, t0: int, t1: int) -> dict[str, np.ndarray]:
    """The lane of one host VCPU thread over [t0, t1], preempted pieces split by the host task."""
    from ..intervals import STATES, task_runs

    hs = session.host_stream
    runs = session.runs(hs.index)
    kvm = session.kvm_events(hs.index)
    lane = vcpu_states(hs.buffer, pid, runs, kvm)
    st = lane.column("state").combine_chunks()
    remap = np.array([_CODE[n] for n in STATES], np.int64)
    code = remap[st.indices.to_numpy()] if len(st) else np.zeros(0, np.int64)
    s, e, cols = _clip(lane.column("start").to_numpy(), lane.column("end").to_numpy(),
                       {"state": code, "reason": lane.column("reason").to_numpy()}, t0, t1)
    cols["state"] = np.where(cols["state"] < 0, _UNKNOWN, cols["state"])
    on_cpu = (cols["state"] == _CODE["guest"]) | (cols["state"] == _CODE["exit"])
    by = np.where(on_cpu, pid, -1).astype(np.int64)
    pre = np.flatnonzero(cols["state"] == _CODE["preempted"])
    if len(pre) and runs.num_rows:
        cpu = _waited_cpu(s[pre], e[pre], task_runs(runs, pid))
        i, ps, pe, pp = _split_by_runs(s[pre], e[pre], cpu, runs)
        rest = np.setdiff1d(np.arange(len(s)), pre)
        s = np.concatenate([s[rest], ps])
        e = np.concatenate([e[rest], pe])
        by = np.concatenate([by[rest], pp])
        cols = {k: np.concatenate([v[rest], v[pre][i]]) for k, v in cols.items()}
        o = np.argsort(s, kind="stable")
        s, e, by = s[o], e[o], by[o]
        cols = {k: v[o] for k, v in cols.items()}
    # the exit reasons' isa: the thread's own (one CPU vendor per host)
    kp = kvm.column("pid").to_numpy() == pid
    isa = kvm.column("isa").to_numpy()[kp & ~kvm.column("entry").to_numpy(zero_copy_only=False)]
    return {"start": s, "end": e, "state": cols["state"], "reason": cols["reason"], "by_pid": by,
            "isa": np.full(len(s), int(isa[0]) if len(isa) else 1, np.int64)}


def _guest_lane(session: Session, guest_index: int, vcpu: int, t0: int, t1: int) -> dict[str, np.ndarray]:
    """A VCPU without a known host thread, from its guest's own records: its CPU running a task is
    in guest, running idle is halted, outside its data unknown."""
    g = session.guests[guest_index]
    st = next((x for x in session.streams if x.guest is g and x.buffer.name == ""), None)
    runs = session.runs(st.index) if st is not None else None
    if runs is None or runs.num_rows == 0:  # no top buffer, or no sched_switch: nothing to say
        return {"start": np.array([t0]), "end": np.array([t1]), "state": np.array([_UNKNOWN]),
                "reason": np.array([-1]), "by_pid": np.array([-1]), "isa": np.array([1])}
    sel = runs.column("cpu").to_numpy() == vcpu
    rp = runs.column("pid").to_numpy()[sel]
    code = np.where(rp == 0, _CODE["halted"], _CODE["guest"]).astype(np.int64)
    s, e, cols = _clip(runs.column("start").to_numpy()[sel], runs.column("end").to_numpy()[sel],
                       {"state": code}, t0, t1)
    state = np.where(cols["state"] < 0, _UNKNOWN, cols["state"])
    n = len(s)
    return {"start": s, "end": e, "state": state, "reason": np.full(n, -1, np.int64),
            "by_pid": np.full(n, -1, np.int64), "isa": np.ones(n, np.int64)}


def _merge(lane: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Adjacent intervals with equal (state, reason, by_pid) joined into one."""
    if len(lane["start"]) < 2:
        return lane
    key = [lane[k] for k in ("state", "reason", "by_pid")]
    new = np.r_[True, np.any([k[1:] != k[:-1] for k in key], axis=0) | (lane["start"][1:] != lane["end"][:-1])]
    first = np.flatnonzero(new)
    last = np.r_[first[1:], len(new)] - 1
    out = {k: v[first] for k, v in lane.items()}
    out["end"] = lane["end"][last]
    return out


def _vcpus(session: Session, vcpu_map: dict[str, dict[int, int]] | None) -> list[tuple[str, int, int, int | None]]:
    """(guest, vcpu, host_pid, guest index for the guest-evidence lane or None) of every VCPU."""
    threads = vcpu_threads(session, vcpu_map)
    hs = session.host_stream
    kvm_vcpu: dict[int, int] = {}
    if hs is not None:
        kvm = session.kvm_events(hs.index)
        if kvm.num_rows:
            p = kvm.column("pid").to_numpy()
            v = kvm.column("vcpu").to_numpy()
            ent = kvm.column("entry").to_numpy(zero_copy_only=False)
            for pid in np.unique(p).tolist():
                vs = v[(p == pid) & ent]
                kvm_vcpu[pid] = int(np.bincount(vs[vs >= 0]).argmax()) if (vs >= 0).any() else -1
    out = []
    for pid in sorted(set(threads) | set(kvm_vcpu)):
        g, v = threads.get(pid, ("", kvm_vcpu.get(pid, -1)))
        out.append((g, v, pid, None))
    have = {(g, v) for g, v, _, _ in out}
    for gi, g in enumerate(session.guests):
        for v in range(g.vcpu_count):
            if (g.name, v) not in have:
                out.append((g.name, v, -1, gi))
    return sorted(out, key=lambda x: (x[0], x[1], x[2]))


def vcpu_intervals(session: Session, t0: int | None = None, t1: int | None = None, *,
                   vcpu_map: dict[str, dict[int, int]] | None = None) -> pa.Table:
    """Every VCPU's state intervals over [t0, t1] (schema :data:`VCPU_INTERVALS`), per VCPU in time
    order, VCPUs by (guest, vcpu, host_pid); see the module doc.  ``vcpu_map``: the user's
    ``{guest: {vcpu: host pid}}`` (added to the session's own map, see :func:`~.exits.vcpu_threads`)."""
    w = _window(session, t0, t1)
    if w is None or session.host_stream is None:
        return VCPU_INTERVALS.empty_table()
    t0, t1 = w
    parts, who = [], []
    for g, v, pid, gi in _vcpus(session, vcpu_map):
        lane = _merge(_host_lane(session, pid, t0, t1) if gi is None else _guest_lane(session, gi, v, t0, t1))
        parts.append(lane)
        who.append((g, v, pid, len(lane["start"])))
    if not parts:
        return VCPU_INTERVALS.empty_table()
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    counts = [n for *_, n in who]
    name_of = session.task_names(session.host_stream.index)
    ub, inv = np.unique(cat["by_pid"], return_inverse=True)  # names once per distinct task
    by_comm = pa.array(["" if p < 0 else display(task_comm(name_of, p))
                        for p in ub.tolist()], pa.string()).take(pa.array(np.asarray(inv).reshape(-1)))
    is_exit = cat["state"] == _CODE["exit"]
    reason = pa.array([None] * len(is_exit), pa.string())
    if is_exit.any():
        names_ex = reason_names(cat["reason"][is_exit], cat["isa"][is_exit])
        pos = np.where(is_exit, np.cumsum(is_exit) - 1, -1)
        reason = names_ex.take(pa.array(pos, mask=pos < 0))
    return pa.Table.from_arrays([
        pa.array(np.repeat([g for g, *_ in who], counts).astype(object) if counts else [], pa.string()),
        pa.array(np.repeat([v for _, v, *_ in who], counts), pa.int32()),
        pa.array(np.repeat([p for _, _, p, _ in who], counts), pa.int32()),
        pa.array(np.asarray(STATE_ORDER, dtype=object)[cat["state"]], pa.string()), reason,
        pa.array(cat["start"], pa.int64()), pa.array(cat["end"], pa.int64()),
        pa.array(cat["by_pid"], pa.int32()), by_comm,
    ], schema=VCPU_INTERVALS)


def time_of(intervals: pa.Table) -> pa.Table:
    """:data:`VCPU_TIME` of a :func:`vcpu_intervals` table: ns per VCPU and state, every state of
    :data:`STATE_ORDER` listed (0 when absent), VCPUs in the intervals' order."""
    if intervals.num_rows == 0:
        return VCPU_TIME.empty_table()
    g = intervals.column("guest").to_numpy(zero_copy_only=False)
    v = intervals.column("vcpu").to_numpy().astype(np.int64)
    p = intervals.column("host_pid").to_numpy().astype(np.int64)
    new = np.r_[True, (g[1:] != g[:-1]) | (v[1:] != v[:-1]) | (p[1:] != p[:-1])]
    vid = np.cumsum(new) - 1
    first = np.flatnonzero(new)
    state = intervals.column("state").to_numpy(zero_copy_only=False)
    scode = np.zeros(len(state), np.int64)
    for i, name in enumerate(STATE_ORDER):  # five states, not events
        scode[state == name] = i
    dur = intervals.column("end").to_numpy() - intervals.column("start").to_numpy()
    tot = np.zeros((len(first), len(STATE_ORDER)), np.int64)
    np.add.at(tot, (vid, scode), dur)
    n = len(STATE_ORDER)
    rep = np.repeat(first, n)
    return pa.Table.from_arrays([
        pa.array(g[rep].astype(object), pa.string()), pa.array(v[rep], pa.int32()), pa.array(p[rep], pa.int32()),
        pa.array(list(STATE_ORDER) * len(first), pa.string()), pa.array(tot.reshape(-1), pa.int64()),
    ], schema=VCPU_TIME)


def vcpu_time(session: Session, t0: int | None = None, t1: int | None = None, *,
              vcpu_map: dict[str, dict[int, int]] | None = None) -> pa.Table:
    """Nanoseconds per VCPU and state over [t0, t1] (schema :data:`VCPU_TIME`; see :func:`time_of`).
    A VCPU's totals add up to ``t1 - t0``; its guest time is the sum over ``kvm_entry`` of the time to
    the ``kvm_exit`` that closes it (cut to the range) when its thread has kvm events."""
    return time_of(vcpu_intervals(session, t0, t1, vcpu_map=vcpu_map))
