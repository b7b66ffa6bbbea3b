"""Latency pairs (issue 12, item 2: KernelShark's latency_plot) against an independent walk of
trace-cmd's saved reports.

The walk keeps, per stream and key, the last start seen; an end with a pending start of its key
closes the pair (KernelShark's rule: a second start of the same key before the end replaces the
first; an end with no pending start is ignored; an end is looked at before a start at one line,
so an event that is both ends one pair and starts the next).  Keys are read from the printed text.
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pytest

from kshark_py.model.analysis.latency import (
    LatencyError,
    combine_codes,
    dense_codes,
    latency_histogram,
    latency_pairs,
    latency_stats,
)

from .support.reports import (
    CASES,
    SWITCH_NEXT,
    irq_of,
    load,
    merged_map,
    report_events,
    walk_pairs,
)


def _waking_comm(e):
    return e["info"].split("comm=", 1)[1].rsplit(" pid=", 1)[0]


def _next_comm(e):
    return SWITCH_NEXT.search(e["info"]).group(1)


_cache: dict = {}
KVM_HOST = (["external/doc-test/trace.dat"], "external/doc-test/trace.dat.report.txt")  # real KVM exits


def _case(traces, name):
    if name not in _cache:
        files, ref = KVM_HOST if name == "doc-test" else CASES[name]
        session = load(traces, files)
        ev = report_events(traces, ref)
        _cache[name] = (session, ev, *merged_map(session, len(ev)))
    return _cache[name]


def _check(lat, walk, row, ts, key_col=None):
    assert lat.num_rows == len(walk)
    got = sorted(zip(lat.column("stream").to_pylist(), lat.column("start_row").to_pylist(),
                     lat.column("end_row").to_pylist(),
                     lat.column(key_col).to_pylist() if key_col else [None] * lat.num_rows, strict=True))
    exp = sorted((s, int(row[a]), int(row[b]), key if key_col else None) for s, a, b, key in walk)
    assert got == exp
    for r, (s, a, b, _k) in zip(lat.to_pylist(), sorted(walk, key=lambda x: (x[0], int(row[x[1]]))), strict=True):
        assert (r["stream"], r["start_ts"], r["end_ts"]) == (s, int(ts[a]), int(ts[b]))
        assert r["latency_ns"] == int(ts[b]) - int(ts[a]) >= 0


@pytest.mark.parametrize("name", list(CASES))
def test_irq_entry_exit_by_irq(traces, name):
    session, ev, stream, row, ts = _case(traces, name)
    lat = latency_pairs(session, "irq_handler_entry", "irq_handler_exit", [("irq", "irq")])
    walk = walk_pairs(ev, stream, "irq_handler_entry", "irq_handler_exit", irq_of, irq_of)
    assert len(walk) >= 3
    _check(lat, walk, row, ts, "irq")
    if name == "vm-tsync":
        assert set(lat.column("stream").to_pylist()) == {0, 1}  # host and guest interrupts


def test_kvm_exit_entry_by_host_thread(traces):
    session, ev, stream, row, ts = _case(traces, "doc-test")
    lat = latency_pairs(session, "kvm:kvm_exit", "kvm:kvm_entry", [("common_pid", "common_pid")])
    walk = walk_pairs(ev, stream, "kvm_exit", "kvm_entry", lambda e: e["pid"], lambda e: e["pid"])
    assert len(walk) > 1000
    _check(lat, walk, row, ts, "common_pid")
    # "pid" on an event without a pid field is its task too
    alias = latency_pairs(session, "kvm_exit", "kvm_entry", [("pid", "pid")])
    assert alias.column("end_row").equals(lat.column("end_row"))


def test_string_keys_and_replacement(traces):
    """sched_waking -> sched_switch by comm: a second waking of a comm before its switch replaces the first."""
    session, ev, stream, row, ts = _case(traces, "host-sched-v7")
    lat = latency_pairs(session, "sched_waking", "sched_switch", [("comm", "next_comm")])
    walk = walk_pairs(ev, stream, "sched_waking", "sched_switch", _waking_comm, _next_comm)
    _check(lat, walk, row, ts, "comm")
    # the replacement rule differs from the wakeups rule (first stands) on this file
    starts = sum(1 for e in ev if e["event"] == "sched_waking")
    assert len(walk) < starts


def test_same_event_by_cpu(traces):
    """sched_switch -> sched_switch by CPU: the time each CPU spent between switches; never a self pair."""
    session, ev, stream, row, ts = _case(traces, "host-sched-v6")
    lat = latency_pairs(session, "sched_switch", "sched_switch", [("common_cpu", "common_cpu")])
    walk = walk_pairs(ev, stream, "sched_switch", "sched_switch", lambda e: e["cpu"], lambda e: e["cpu"])
    _check(lat, walk, row, ts, "common_cpu")
    assert (lat.column("end_row").to_numpy() > lat.column("start_row").to_numpy()).all()


def test_no_match_fields(traces):
    session, ev, stream, row, ts = _case(traces, "host-sched-v7")
    lat = latency_pairs(session, "softirq_entry", "softirq_exit")
    walk = walk_pairs(ev, stream, "softirq_entry", "softirq_exit", lambda e: 0, lambda e: 0)
    assert len(walk) > 100
    _check(lat, walk, row, ts)
    assert lat.column_names == ["stream", "start_ts", "end_ts", "latency_ns", "start_row", "end_row",
                                "across_loss"]


def test_window_and_streams(traces):
    session, ev, stream, row, ts = _case(traces, "vm-tsync")
    t0, t1 = int(ts[len(ts) // 3]), int(ts[2 * len(ts) // 3])
    lat = latency_pairs(session, "irq_handler_entry", "irq_handler_exit", [("irq", "irq")], t0=t0, t1=t1)
    walk = [x for x in walk_pairs(ev, stream, "irq_handler_entry", "irq_handler_exit", irq_of, irq_of)
            if int(ts[x[1]]) >= t0 and int(ts[x[2]]) <= t1]
    _check(lat, walk, row, ts, "irq")
    g = latency_pairs(session, "irq_handler_entry", "irq_handler_exit", [("irq", "irq")], streams=[1])
    assert set(g.column("stream").to_pylist()) == {1}


def test_stats_and_histogram(traces):
    session, ev, stream, row, ts = _case(traces, "host-sched-v7")
    lat = latency_pairs(session, "irq_handler_entry", "irq_handler_exit", [("irq", "irq")])
    groups = defaultdict(list)
    for s, a, b, irq in walk_pairs(ev, stream, "irq_handler_entry", "irq_handler_exit", irq_of, irq_of):
        groups[(s, irq)].append((int(ts[b]) - int(ts[a]), int(ts[a])))
    st = latency_stats(lat)
    assert st.column_names == ["stream", "irq", "count", "total_ns", "p50_ns", "p99_ns", "max_ns", "max_at_ns",
                               "across_loss"]
    assert st.num_rows == len(groups)
    for r in st.to_pylist():
        items = groups[(r["stream"], r["irq"])]
        v = sorted(x[0] for x in items)
        n = len(v)
        assert r["count"] == n and r["total_ns"] == sum(v) and r["max_ns"] == v[-1]
        assert r["p50_ns"] == v[-(-n * 50 // 100) - 1] and r["p99_ns"] == v[-(-n * 99 // 100) - 1]
        assert r["max_at_ns"] == min(t for d, t in items if d == v[-1])
    edges, counts = latency_histogram(lat, 7)
    assert len(edges) == 8 and counts.sum() == lat.num_rows
    vals = [x for items in groups.values() for x, _ in items]
    assert edges[0] == min(vals) and edges[-1] == max(vals)
    for i in range(7):
        last = i == 6
        assert counts[i] == sum(1 for x in vals if edges[i] <= x and (x < edges[i + 1] or (last and x <= edges[-1])))
    e0, c0 = latency_histogram(lat.slice(0, 0), 4)
    assert len(e0) == 5 and not c0.any()


def test_errors(traces):
    session = _case(traces, "host-sched-v7")[0]
    with pytest.raises(LatencyError, match="no_such_event"):
        latency_pairs(session, "no_such_event", "irq_handler_exit")
    with pytest.raises(LatencyError, match="has no field 'vector'"):
        latency_pairs(session, "irq_handler_entry", "irq_handler_exit", [("vector", "irq")])
    with pytest.raises(LatencyError, match="no loaded stream has the event 'kvm:kvm_exit'"):
        latency_pairs(session, "kvm:kvm_exit", "kvm:kvm_entry")
    empty = latency_pairs(session, "irq_handler_exit", "irq_handler_entry", [("irq", "irq")],
                          t0=int(np.iinfo(np.int64).max) - 1)
    assert empty.num_rows == 0 and "irq" in empty.column_names


_HRTIMER = re.compile(r"\bhrtimer=(0x[0-9a-f]+)")


def test_pointer_keys_in_an_instance(traces):
    """hrtimer_expire_entry -> exit by the hrtimer pointer (u64 kernel addresses: the wide-key path),
    in the ``irqbuf`` instance of host-instances.dat (stream 1)."""
    from kshark_py.loaders.tracedat import open_trace
    from kshark_py.model.session import Session

    session = Session.from_files([open_trace(traces / "host-instances.dat")])
    ev = report_events(traces, "host-instances.dat.report.txt")
    stream, row, ts = merged_map(session, len(ev))

    def key(e):
        return int(_HRTIMER.search(e["info"]).group(1), 16)

    walk = walk_pairs(ev, stream, "hrtimer_expire_entry", "hrtimer_expire_exit", key, key)
    assert len(walk) > 100 and {w[0] for w in walk} == {1}
    lat = latency_pairs(session, "timer:hrtimer_expire_entry", "timer:hrtimer_expire_exit", [("hrtimer", "hrtimer")])
    assert lat.schema.field("hrtimer").type == pa.uint64()
    _check(lat, walk, row, ts, "hrtimer")


def test_code_helpers_wide_and_combined():
    v = np.array([2**63 + 5, 7, 2**63 + 5, 2**64 - 1], np.uint64)
    c, k = dense_codes(v)
    assert k == 3 and c[0] == c[2] and len({c[0], c[1], c[3]}) == 3
    a, ka = np.array([0, 1, 0, 1]), 2**40
    b, kb = np.array([3, 3, 4, 3]), 2**40  # 2**80 combinations: the unique fallback
    g, kg = combine_codes([(a, ka), (b, kb)], 4)
    assert g[1] == g[3] and len({g[0], g[1], g[2]}) == 3 and kg == 3
