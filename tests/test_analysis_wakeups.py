"""Scheduling latency (issue 12, item 1) against an independent walk of trace-cmd's own report.

The walk reads trace-cmd 3.1.6's saved report of each case line by line (event line k is merged
row k of the session, as test_report checks), takes the woken pid from the printed text and pairs
wakeups with a dict of pending pids: nothing of kshark-py's field extraction or pairing is used.
Times are compared to the report's microseconds; latencies are the ns ``ts`` column's difference
at the rows the walk chose.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from kshark_py.model.analysis.wakeups import percentile_nearest_rank, wakeup_stats, wakeups

from .support.reports import (
    CASES,
    SWITCH_NEXT,
    WAKING_PID,
    load,
    merged_map,
    reference_stats,
    walk_wakeups,
)


@pytest.fixture(scope="module", params=list(CASES))
def case(request, traces):
    files, ref = CASES[request.param]
    session, ev, walk = walk_wakeups(traces, files, ref)
    return request.param, session, ev, walk


def test_every_wakeup_matches_the_walk(case):
    name, session, ev, walk = case
    w = wakeups(session)
    stream, row, ts = merged_map(session, len(ev))
    assert len(walk) > 1000, name
    assert w.num_rows == len(walk)
    expect = sorted((s, int(row[wk]), int(row[sk]), pid, comm) for s, pid, comm, wk, sk in walk)
    got = sorted(zip(w.column("stream").to_pylist(), w.column("waking_row").to_pylist(),
                     w.column("switch_row").to_pylist(), w.column("pid").to_pylist(), w.column("comm").to_pylist(),
                     strict=True))
    assert got == expect
    # times: the report's microseconds (guest lines on the host clock), latency in ns
    by_row = {(s, int(row[wk])): (ev[wk]["us"], ev[sk]["us"], int(ts[sk]) - int(ts[wk]), ev[sk]["cpu"])
              for s, _pid, _comm, wk, sk in walk}
    for r in w.to_pylist():
        wus, sus, lat, cpu = by_row[(r["stream"], r["waking_row"])]
        assert (r["waking_ts"] + 500) // 1000 == wus and (r["switch_ts"] + 500) // 1000 == sus  # trace-cmd rounds
        assert r["latency_ns"] == lat >= 0
        assert r["cpu"] == cpu
    if name == "vm-tsync":
        assert set(w.column("stream").to_pylist()) == {0, 1}  # host (sched_wakeup) and guest (sched_waking)


def test_stats_per_task_match_the_walk(case):
    name, session, ev, walk = case
    st = wakeup_stats(wakeups(session))
    ref = reference_stats(session, ev, walk)
    assert st.num_rows == len(ref)
    for r in st.to_pylist():
        exp = ref[(r["stream"], r["pid"])]
        assert {k: r[k] for k in exp} == exp, (name, r)
    # sorted by stream, then worst first
    keys = [(r["stream"], -r["max_ns"]) for r in st.to_pylist()]
    assert keys == sorted(keys)


def test_window_keeps_wakeups_wholly_inside(case):
    name, session, ev, walk = case
    _s, _r, ts = merged_map(session, len(ev))
    t0 = int(ts[len(ts) // 4])
    t1 = int(ts[len(ts) // 2])
    w = wakeups(session, t0=t0, t1=t1)
    inside = [x for x in walk if int(ts[x[3]]) >= t0 and int(ts[x[4]]) <= t1]
    assert 0 < w.num_rows == len(inside) < len(walk)
    st = wakeup_stats(w)
    ref = reference_stats(session, ev, walk, t0, t1)
    assert {(r["stream"], r["pid"]): r["count"] for r in st.to_pylist()} == {k: v["count"] for k, v in ref.items()}


def test_streams_argument(traces):
    session, _ev, walk = walk_wakeups(traces, *CASES["vm-tsync"])
    g = wakeups(session, streams=[1])
    assert g.num_rows == sum(1 for x in walk if x[0] == 1) > 0
    assert set(g.column("stream").to_pylist()) == {1}


def test_second_waking_does_not_restart(traces):
    """The corpus has wakings of a pid already waiting: the wakeup is measured from the first one."""
    session, ev, walk = walk_wakeups(traces, *CASES["host-sched-v7"])
    stream, row, ts = merged_map(session, len(ev))
    repeats = []  # (stream, pid, first waking k) of wakeups woken again before their switch
    starts = {(s, pid, wk) for s, pid, _c, wk, _sk in walk}
    pending: dict[tuple[int, int], int] = {}
    for k, e in enumerate(ev):
        if e["event"] == "sched_waking":
            key = (int(stream[k]), int(WAKING_PID.search(e["info"]).group(1)))
            if key in pending:
                repeats.append((*key, pending[key]))
            else:
                pending[key] = k
        elif e["event"] == "sched_switch":
            pending.pop((int(stream[k]), int(SWITCH_NEXT.search(e["info"]).group(2))), None)
    assert len(repeats) > 10
    w = wakeups(session)
    got = {(r["stream"], r["pid"], r["waking_row"]) for r in w.to_pylist()}
    measured = [r for r in repeats if r in starts]  # the repeats whose task was switched in afterwards
    assert len(measured) > 10
    for s, pid, k in measured:
        assert (s, pid, int(row[k])) in got  # measured from the first waking, not the repeat


def test_pid_zero_left_out(case):
    _name, session, _ev, _walk = case
    assert 0 not in wakeups(session).column("pid").to_pylist()


def test_percentile_is_nearest_rank():
    """p50/p99 as numpy's inverted_cdf: an observed value of rank ceil(q*n/100)."""
    rng = np.random.default_rng(7)
    for n in (1, 2, 3, 4, 99, 100, 101, 199, 200, 1000):
        v = np.sort(rng.integers(0, 10**9, n))
        for q in (50, 99):
            got = percentile_nearest_rank(v, np.array([0]), np.array([n]), q)[0]
            assert got == np.percentile(v, q, method="inverted_cdf") == v[math.ceil(q * n / 100) - 1]
    lat = [1, 2, 3, 4, 10, 20]
    t = pa.table({"stream": pa.array([0] * 6, pa.int16()), "pid": pa.array([5, 5, 5, 5, 6, 6], pa.int32()),
                  "comm": ["a"] * 4 + ["b"] * 2, "waking_ts": pa.array([100, 200, 300, 400, 500, 600]),
                  "switch_ts": pa.array([100 + x for x in (1, 2, 3, 4)] + [510, 620]),
                  "latency_ns": pa.array(lat), "waking_row": pa.array(range(6)), "switch_row": pa.array(range(6)),
                  "cpu": pa.array([0] * 6, pa.int16()), "across_loss": [False, True, True, False, False, False]})
    st = {r["pid"]: r for r in wakeup_stats(t).to_pylist()}
    assert (st[5]["across_loss"], st[6]["across_loss"]) == (2, 0)
    assert (st[5]["p50_ns"], st[5]["p99_ns"], st[5]["max_ns"], st[5]["total_ns"]) == (2, 4, 4, 10)
    assert (st[6]["p50_ns"], st[6]["max_at_ns"], st[6]["count"]) == (10, 600, 2)


def test_time_offset_moves_wakeups(traces):
    session = load(traces, CASES["host-sched-v7"][0])
    before = wakeups(session)
    session.set_time_offset(0, 1000)
    after = wakeups(session)
    assert (after.column("waking_ts").to_numpy() == before.column("waking_ts").to_numpy() + 1000).all()
    assert after.column("latency_ns").equals(before.column("latency_ns"))


def test_empty_session_tables(traces):
    session = load(traces, ["host-printk.dat"])  # sched_switch only: no waking of any kind
    w = wakeups(session)
    assert w.num_rows == 0 and w.schema.names == ["stream", "pid", "comm", "waking_ts", "switch_ts", "latency_ns",
                                                  "waking_row", "switch_row", "cpu", "across_loss"]
    assert wakeup_stats(w).num_rows == 0
