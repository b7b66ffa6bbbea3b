"""Wakeups and latency pairs that span events the kernel dropped are flagged (``across_loss``).

The reference is trace-cmd 3.1.6's own report of host-lost-events.dat: its ``CPU:N [.. EVENTS
DROPPED]`` lines say where each CPU lost events; the dropped ones came after that CPU's previous
printed line and before its next one.  An interval that meets such a stretch may have lost the
event that really ended it, so it must say so; every other interval must not.
"""

from __future__ import annotations

import re

import numpy as np

from kshark_py.model.analysis.latency import latency_pairs, latency_stats
from kshark_py.model.analysis.wakeups import wakeup_stats, wakeups
from kshark_py.model.lost import loss_gaps, spans_loss

from .reference import LINE_RE, read_reference
from .support.reports import load, merged_map

DROP = re.compile(r"^CPU:(\d+) \[.*EVENTS DROPPED\]")
FILE = "host-lost-events.dat"


def report_gaps(traces, ts: np.ndarray) -> list[tuple[int, int]]:
    """(from, to) ns of each loss the report prints: the CPU's previous line's time (or the int64
    minimum) to its next line's time; line k of the report is merged row k."""
    last: dict[int, int] = {}
    pending: dict[int, int] = {}
    gaps = []
    k = 0
    for line in read_reference(traces / f"{FILE}.report.txt.gz"):
        d = DROP.match(line.strip())
        if d:
            c = int(d[1])
            pending[c] = last.get(c, -1)
            continue
        m = LINE_RE.match(line)
        if not m:
            continue
        c = int(m["cpu"])
        if c in pending:
            p = pending.pop(c)
            gaps.append((int(ts[p]) if p >= 0 else np.iinfo(np.int64).min, int(ts[k])))
        last[c] = k
        k += 1
    return gaps


def expected(gaps, start, end) -> list[bool]:
    return [any(g0 <= b and g1 >= a for g0, g1 in gaps) for a, b in zip(start.tolist(), end.tolist(), strict=True)]


def test_wakeups_across_dropped_events_are_flagged(traces):
    session = load(traces, [FILE])
    n = len(session.streams[0].buffer.events)
    _s, _r, ts = merged_map(session, n)
    gaps = report_gaps(traces, ts)
    assert len(gaps) == 16  # the README's count of markers
    w = wakeups(session)
    flag = w.column("across_loss").to_numpy(zero_copy_only=False)
    want = expected(gaps, w.column("waking_ts").to_numpy(), w.column("switch_ts").to_numpy())
    assert flag.tolist() == want
    assert 0 < flag.sum() < len(flag)  # both kinds occur: the check can fail either way
    st = wakeup_stats(w)
    assert int(st.column("across_loss").to_numpy().sum()) == int(flag.sum())
    assert (st.column("across_loss").to_numpy() <= st.column("count").to_numpy()).all()


def test_latency_pairs_across_dropped_events_are_flagged(traces):
    session = load(traces, [FILE])
    _s, _r, ts = merged_map(session, len(session.streams[0].buffer.events))
    gaps = report_gaps(traces, ts)
    lat = latency_pairs(session, "sched_waking", "sched_switch", [("pid", "next_pid")])
    flag = lat.column("across_loss").to_numpy(zero_copy_only=False)
    assert flag.tolist() == expected(gaps, lat.column("start_ts").to_numpy(), lat.column("end_ts").to_numpy())
    assert 0 < flag.sum() < len(flag)
    assert int(latency_stats(lat).column("across_loss").to_numpy().sum()) == int(flag.sum())


def test_no_loss_no_flag(traces):
    session = load(traces, ["host-kvm.dat"])  # its report prints no EVENTS DROPPED
    assert loss_gaps(session.streams[0].buffer)[0].size == 0
    assert not wakeups(session).column("across_loss").to_numpy(zero_copy_only=False).any()


def test_spans_loss_bounds():
    gaps = (np.array([10, 12, 40]), np.array([20, 15, 50]))  # sorted by start; the second inside the first
    start = np.array([0, 21, 20, 16, 0, 13, 21, 50, 51, 30])
    end = np.array([9, 39, 30, 18, 10, 14, 25, 60, 60, 40])
    assert spans_loss(gaps, start, end).tolist() == [False, False, True, True, True, True, False, True, False, True]
    assert spans_loss((np.zeros(0, np.int64),) * 2, start, end).tolist() == [False] * len(start)
