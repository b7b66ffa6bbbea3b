"""Field plot (issue 12, item 3: KernelShark's event_field_plot): the series against trace-cmd's
printed values, the min/max bins against a plain loop."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from kshark_py.model.analysis.fieldplot import FieldPlotError, bin_edges, field_series, minmax_bins, numeric_fields

from .support.reports import (
    CASES,
    load,
    merged_map,
    report_events,
)

_RUNTIME = re.compile(r"\bruntime=(\d+)")
_TARGET = re.compile(r"CPU:(\d+)$")


def _reference(traces, name, event, pattern):
    files, ref = CASES[name]
    session = load(traces, files)
    ev = report_events(traces, ref)
    stream, row, _ts = merged_map(session, len(ev))
    out: dict[int, list[tuple[int, int, int]]] = {}
    for k, e in enumerate(ev):
        if e["event"] == event:
            out.setdefault(int(stream[k]), []).append((int(row[k]), e["us"], int(pattern.search(e["info"]).group(1))))
    return session, out


@pytest.mark.parametrize("name,event,field,pattern", [
    ("host-sched-v7", "sched_stat_runtime", "runtime", _RUNTIME),
    ("host-sched-v6", "sched_stat_runtime", "runtime", _RUNTIME),
    ("vm-tsync", "sched_stat_runtime", "runtime", _RUNTIME),
    ("vm-tsync", "sched_wakeup", "target_cpu", _TARGET),
])
def test_series_matches_the_report(traces, name, event, field, pattern):
    session, ref = _reference(traces, name, event, pattern)
    assert ref
    for s, items in ref.items():
        ts, v = field_series(session, s, event, field)
        assert len(ts) == len(v) == len(items) > 10
        assert ts.dtype == np.int64
        assert [int(x) for x in v] == [x[2] for x in items]
        assert [(int(t) + 500) // 1000 for t in ts] == [x[1] for x in items]  # host clock, as trace-cmd rounds us
    if name == "vm-tsync":  # the guest's series (stream 1) on the host clock too; the host has no stat_runtime
        assert set(ref) == ({1} if field == "runtime" else {0, 1})


def test_series_keeps_unsigned_and_common_pid(traces):
    session = load(traces, CASES["host-sched-v7"][0])
    ts, v = field_series(session, 0, "sched:sched_stat_runtime", "runtime")
    assert v.dtype == np.uint64  # u64 runtime: not wrapped into int64
    _ts, pids = field_series(session, 0, "sched_stat_runtime", "common_pid")
    ev = session.streams[0].buffer.events
    rows = np.flatnonzero(ev.column("event_id").to_numpy() == session.streams[0].trace.formats.find(
        "sched_stat_runtime").id)
    assert (pids == ev.column("pid").to_numpy()[rows]).all()
    assert "runtime" in numeric_fields(session, 0, "sched_stat_runtime")
    assert "comm" not in numeric_fields(session, 0, "sched_stat_runtime")


def test_series_errors(traces):
    session = load(traces, CASES["host-sched-v7"][0])
    with pytest.raises(FieldPlotError, match="no event 'kvm_exit'"):
        field_series(session, 0, "kvm_exit", "exit_reason")
    with pytest.raises(FieldPlotError, match="no field 'nope'"):
        field_series(session, 0, "sched_stat_runtime", "nope")
    with pytest.raises(FieldPlotError, match="not a number"):
        field_series(session, 0, "sched_stat_runtime", "comm")


def _loop_bins(ts, v, t0, t1, n):
    edges = [t0 + (i * (t1 - t0)) // n for i in range(n + 1)]
    lo = [math.nan] * n
    hi = [math.nan] * n
    for t, x in zip(ts.tolist(), v.tolist(), strict=True):
        if not t0 <= t <= t1:
            continue
        b = n - 1 if t == t1 else max(i for i in range(n) if edges[i] <= t)
        lo[b] = x if math.isnan(lo[b]) else min(lo[b], x)
        hi[b] = x if math.isnan(hi[b]) else max(hi[b], x)
    return edges, lo, hi


@pytest.mark.parametrize("nbins", [1, 7, 300])
def test_minmax_bins_match_a_loop(traces, nbins):
    session = load(traces, CASES["host-sched-v7"][0])
    ts, v = field_series(session, 0, "sched_stat_runtime", "runtime")
    ts, v = ts[:3000], v[:3000]
    t0, t1 = int(ts[100]) - 1, int(ts[2500]) + 3  # records outside [t0, t1] are left out
    centers, lo, hi = minmax_bins(ts, v, t0, t1, nbins)
    edges, rlo, rhi = _loop_bins(ts, v, t0, t1, nbins)
    np.testing.assert_array_equal(lo, np.array(rlo))
    np.testing.assert_array_equal(hi, np.array(rhi))
    assert (bin_edges(t0, t1, nbins) == np.array(edges)).all()
    assert np.allclose(centers, [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)], rtol=0, atol=0.5)
    if nbins == 300:
        assert np.isnan(lo).any() and not np.isnan(lo).all()  # empty columns are NaN


def test_minmax_bins_unsorted_and_edges():
    rng = np.random.default_rng(3)
    ts = rng.integers(0, 1000, 500)
    v = rng.integers(-50, 50, 500)
    _c, lo, hi = minmax_bins(ts, v, 0, 999, 13)
    _e, rlo, rhi = _loop_bins(ts, v, 0, 999, 13)
    np.testing.assert_array_equal(lo, np.array(rlo))
    np.testing.assert_array_equal(hi, np.array(rhi))
    _c, lo, hi = minmax_bins(np.array([10, 20]), np.array([5, 7]), 10, 20, 2)
    assert lo.tolist() == [5, 7] and hi.tolist() == [5, 7]  # t1 itself falls in the last bin
    _c, lo, _hi = minmax_bins(np.array([5]), np.array([1]), 10, 20, 3)
    assert np.isnan(lo).all()
    with pytest.raises(ValueError):
        minmax_bins(ts, v, 10, 10, 4)


def test_minmax_bins_window_wider_than_int64():
    """A view over a guest moved by a wild TIME_SHIFT: edges beyond int64 are clipped, bins stay right."""
    t0, t1 = -(1 << 70), 1 << 70
    ts = np.array([-(1 << 62), 0, 5, 1 << 62], np.int64)
    v = np.array([1, 2, 3, 4])
    centers, lo, hi = minmax_bins(ts, v, t0, t1, 4)
    # bins of 2**69 each: [-2**70, -2**69), [-2**69, 0), [0, 2**69), [2**69, 2**70]
    assert np.isnan(lo[0]) and lo[1] == hi[1] == 1 and (lo[2], hi[2]) == (2, 4) and np.isnan(lo[3])
    assert centers[0] == -(3 << 68) and centers[3] == 3 << 68
    _c, lo, hi = minmax_bins(np.array([10, 20]), np.array([5, 7]), 9.5, 20.2, 2)  # float bounds: whole ns
    assert lo.tolist() == [5, 7]
