"""Cross-layer latency (issue 12, item 6) on real files, against plain walks written here.

The guest task's own life comes from its runs (``tests.test_intervals.slow_runs``: its switches and
the ones its records show are missing) and its ``sched_waking`` records; its VCPU's host side from
the walks of test_analysis_exits (doc-test: real kvm exits) and test_analysis_vcputime (vm-tsync's
TCG thread: the host schedule).  Each elementary time segment is classified by a plain loop.
"""

from __future__ import annotations

import bisect
import json
from collections import Counter, defaultdict

import numpy as np
import pytest

from kshark_py.loaders.tracedat import open_trace
from kshark_py.model.analysis.crosslayer import (
    CROSS_LAYER,
    CROSS_LAYER_INTERVALS,
    cross_layer,
    cross_layer_intervals,
    explain_wakeup,
)
from kshark_py.model.analysis.wakeups import wakeups
from kshark_py.model.columns import event_columns

from .support.corpus import TSYNC
from .support.kvmhost import (
    GUEST,
    HOST,
    VCPU0,
    kvm_walk,
    named_exits,
    report_exits,
    session,
)
from .support.schedwalk import slow_runs

BUSY_DOC = 512  # trace-cmd in Salamander4: 548 wakeups
BUSY_TSYNC = 174  # dd in vm-tsync's guest: 835 wakeups


def _guest_life(buf, pid: int) -> tuple[list[tuple], list[tuple]]:
    """(pieces (start, end, state, vcpu, waker), wakings (ts, waker)) of a guest task, unbounded."""
    runs = sorted((s, e, c, st) for c, s, e, p, st in slow_runs(buf) if p == pid)
    t = buf.events
    ts, wpid = t.column("ts").to_pylist(), t.column("pid").to_pylist()
    rows, f = event_columns(buf, "sched_waking", ["pid"], system="sched")
    wk = [(ts[r], wpid[r]) for r, p in zip(rows.tolist(), f["pid"].tolist(), strict=True) if p == pid]
    big = 1 << 62
    pieces = []
    gaps = [(-big, runs[0][0], -2, runs[0][2])]  # before the first run: nothing is known
    for i, (s, e, c, st) in enumerate(runs):
        pieces.append((s, e, "running", c, -1))
        nxt = runs[i + 1] if i + 1 < len(runs) else None
        gaps.append((e, nxt[0] if nxt else big, st, nxt[2] if nxt else c))
    for gs, ge, st, c in gaps:
        if st == -1:  # still on its CPU where that CPU's records end
            pieces.append((gs, ge, "running", c, -1))
            continue
        w = next(((x, by) for x, by in wk if gs <= x < ge), None)
        if st in (0, 0x100):
            pieces.append((gs, ge, "runnable", c, -1))
            continue
        first = "unknown" if st == -2 else "blocked"
        cut = w[0] if w else ge
        pieces.append((gs, cut, first, -1, w[1] if w and first == "blocked" else -1))
        pieces.append((cut, ge, "runnable" if w else first, c if w else -1, -1))
    return sorted(p for p in pieces if p[1] > p[0]), wk


def _expected(pieces: list[tuple], lanes: dict[int, list[tuple]], t0: int, t1: int) -> Counter:
    """ns per (state, detail key) over [t0, t1]: running/runnable pieces take their VCPU's host state
    (exit: reason; preempted: host pid; halted) unless it is in guest or unknown."""
    cuts = sorted({t0, t1} | {x for p in pieces for x in p[:2] if t0 < x < t1}
                  | {x for lane in lanes.values() for seg in lane for x in seg[:2] if t0 < x < t1})
    starts = [p[0] for p in pieces]
    lstarts = {v: [seg[0] for seg in lane] for v, lane in lanes.items()}
    out: Counter = Counter()
    for a, b in zip(cuts, cuts[1:], strict=False):
        s, e, state, vcpu, waker = pieces[bisect.bisect_right(starts, a) - 1]
        assert s <= a < e
        key: tuple = (state, f"VCPU {vcpu}" if state == "running" else "guest scheduler" if state == "runnable"
                      else waker if state == "blocked" and waker >= 0 else "")
        if state in ("running", "runnable") and vcpu in lanes:
            i = bisect.bisect_right(lstarts[vcpu], a) - 1
            if i >= 0 and a < lanes[vcpu][i][1] and lanes[vcpu][i][2] not in ("guest", "unknown"):
                hs = lanes[vcpu][i][2]
                key = (hs, f"VCPU {vcpu}" if hs == "halted" else lanes[vcpu][i][3])
        out[key] += b - a
    return out


def _got(t) -> Counter:
    """The table's totals keyed like :func:`_expected` (a task named ``comm-pid`` by its pid)."""
    out: Counter = Counter()
    for r in t.to_pylist():
        d = r["detail"]
        if r["state"] in ("blocked", "preempted") and d:
            d = int(d.rsplit("-", 1)[1])
        out[(r["state"], d)] += r["total_ns"]
    return out


def _doc_lane() -> list[tuple]:
    """Salamander4's VCPU 0 on the host: closed entries in guest, closed exits by reason (HLT: halted)."""
    exits, entries = kvm_walk()
    names = named_exits(exits, report_exits("trace.dat.report.txt.gz"))
    lane = [(w["entry_ts"], w["exit_ts"], "guest", "") for w in entries if w["host_pid"] == VCPU0]
    lane += [(w["exit_ts"], w["entry_ts"], "halted" if n[0] == "HLT" else "exit", n[0])
             for w, n in zip(exits, names, strict=True) if w["host_pid"] == VCPU0]
    return sorted(lane)


@pytest.mark.parametrize("window", ["guest data", "a busy 50 ms"])
def test_doc_test_task_split_against_the_walk(window):
    s = session(HOST, GUEST)
    gb = s.streams[1].buffer
    ts = gb.events.column("ts").to_numpy()
    t0, t1 = int(ts.min()), int(ts.max())
    if window != "guest data":  # around the task's worst wakeup
        t0 = _worst(s)["waking_ts"] - 25_000_000
        t1 = t0 + 50_000_000
    pieces, _ = _guest_life(gb, BUSY_DOC)
    want = _expected(pieces, {0: _doc_lane()}, t0, t1)
    t = cross_layer(s, "Salamander4", BUSY_DOC, t0, t1)
    assert t.schema == CROSS_LAYER
    assert _got(t) == want
    assert sum(t.column("total_ns").to_pylist()) == t1 - t0
    states = {k[0] for k in want}
    assert {"running", "runnable", "blocked", "exit"} <= states
    iv = cross_layer_intervals(s, "Salamander4", BUSY_DOC, t0, t1)
    assert iv.schema == CROSS_LAYER_INTERVALS
    spans = list(zip(iv.column("start").to_pylist(), iv.column("end").to_pylist(), strict=True))
    assert spans[0][0] == t0 and spans[-1][1] == t1 and all(a[1] == b[0] for a, b in zip(spans, spans[1:],
                                                                                          strict=False))


def _tcg_lane(path, vpid: int, t1: int) -> list[tuple]:
    """A TCG VCPU thread's host side from the walked runs: on a CPU in guest; switched out runnable
    preempted, cut by the runs of whoever had the CPU it ran on next; asleep halted; after a missing
    switch unknown; still on its CPU at its end: in guest."""
    every = slow_runs(open_trace(str(path)).buffers[0])
    per_cpu: dict[int, list] = defaultdict(list)
    for c, s_, e, p, _st in every:
        per_cpu[c].append((s_, e, p))
    mine = sorted((s_, e, c, st) for c, s_, e, p, st in every if p == vpid)
    lane = []
    for i, (s_, e, c, st) in enumerate(mine):
        nxt = mine[i + 1] if i + 1 < len(mine) else None
        end = nxt[0] if nxt else t1
        if st == -1:
            lane.append((s_, end, "guest", ""))
            continue
        lane.append((s_, e, "guest", ""))
        if st in (0, 0x100):
            wait = nxt[2] if nxt else c
            for rs, re_, p in per_cpu[wait]:
                a, b = max(rs, e), min(re_, end)
                if b > a:
                    lane.append((a, b, "preempted", p))
        elif end > e:
            lane.append((e, end, "unknown" if st == -2 else "halted", ""))
    return sorted(lane)


def test_tcg_guest_task_preempted_on_the_host():
    """vm-tsync with the QMP map: the VCPU's host side is its TCG thread's schedule."""
    vmap = json.loads((TSYNC / "vcpu-threads.json").read_text())
    vpid = int(vmap["vcpus"][0]["thread-id"])
    s = session(TSYNC / "trace.dat", TSYNC / "trace-vmguest.dat")
    gb = s.streams[1].buffer
    ts = gb.events.column("ts").to_numpy()
    t0, t1 = int(ts.min()), int(ts.max())
    h1 = int(s.streams[0].buffer.events.column("ts").to_numpy().max())
    pieces, _ = _guest_life(gb, BUSY_TSYNC)
    want = _expected(pieces, {0: _tcg_lane(TSYNC / "trace.dat", vpid, h1)}, t0, t1)
    got = _got(cross_layer(s, "vmguest", BUSY_TSYNC, t0, t1, vcpu_map={"vmguest": {0: vpid}}))
    assert got == want
    assert sum(got.values()) == t1 - t0
    assert sum(v for k, v in got.items() if k[0] == "preempted") > 0  # dd's VCPU thread lost its host CPU
    # without the map the host says nothing of this VCPU: the guest's evidence only (idle: halted)
    plain = _got(cross_layer(s, "vmguest", BUSY_TSYNC, t0, t1))
    assert not any(k[0] in ("preempted", "exit") for k in plain)
    assert {k: v for k, v in plain.items() if k[0] == "blocked"} == {k: v for k, v in want.items()
                                                                     if k[0] == "blocked"}


def _worst(s) -> dict:
    """The worst wakeup of BUSY_DOC in Salamander4 (stream 1)."""
    w = wakeups(s, [1])
    mine = np.flatnonzero(w.column("pid").to_numpy() == BUSY_DOC)
    worst = int(mine[np.argmax(w.column("latency_ns").to_numpy()[mine])])
    return {n: w.column(n)[worst].as_py() for n in w.column_names}


def test_explain_one_wakeup():
    """The worst wakeup of trace-cmd in Salamander4: its latency split between the guest scheduler and
    its VCPU's exits, as the walk says."""
    s = session(HOST, GUEST)
    r = _worst(s)
    t = explain_wakeup(s, 1, r["waking_row"])
    assert sum(t.column("total_ns").to_pylist()) == r["latency_ns"] == 361206
    pieces, _ = _guest_life(s.streams[1].buffer, BUSY_DOC)
    assert _got(t) == _expected(pieces, {0: _doc_lane()}, r["waking_ts"], r["switch_ts"])
    assert set(t.column("state").to_pylist()) == {"runnable", "exit"}
    with pytest.raises(ValueError, match="starts no wakeup"):
        explain_wakeup(s, 1, r["switch_row"])


def test_empty_window_and_unknown_task():
    s = session(HOST, GUEST)
    assert cross_layer(s, "Salamander4", BUSY_DOC, 10, 10).num_rows == 0
    ts = s.streams[1].buffer.events.column("ts").to_numpy()
    t = cross_layer(s, "Salamander4", 999_999, int(ts.min()), int(ts.max()))  # no such task: unknown
    assert t.to_pylist() == [{"state": "unknown", "detail": "", "total_ns": int(ts.max() - ts.min())}]
