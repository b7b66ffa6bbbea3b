"""The timeline's model without Qt: picking a row's nearest event, rendering only some rows."""

from __future__ import annotations

import numpy as np
import pytest

from kshark_py.model.viewmodel import EventTicks


@pytest.mark.parametrize("n", [1, 63, 64, 65, 1000, 20011])
def test_nearest_position_is_the_rows_nearest_event(n):
    """Exact against brute force, however far the nearest matching event is, masked or not."""
    rng = np.random.default_rng(n)
    times = np.sort(rng.integers(0, 10**6, n)).astype(np.int64)
    key = rng.integers(0, 4, n).astype(np.int16)
    mask = rng.random(n) < 0.5
    for m in (None, mask):
        ticks = EventTicks(times, key, 3, m)
        hit = (key == 3) if m is None else ((key == 3) & m)
        idx = np.flatnonzero(hit)
        for k in range(len(idx)):
            assert ticks.nth(k) == idx[k]
        for t in rng.integers(-10**5, 11 * 10**5, 50).tolist():
            got = ticks.nearest_position(t)
            if not len(idx):
                assert got is None
                continue
            assert hit[got]
            assert abs(int(times[got]) - t) == np.abs(times[idx] - t).min()


def test_render_of_some_rows_matches_the_full_render(traces):
    from kshark_py.loaders.tracedat import open_trace
    from kshark_py.model.session import Session
    from kshark_py.model.viewmodel import RowSources, TimelineModel

    s = Session.from_files([open_trace(str(traces / "host-sched-v7.dat"))])
    m = TimelineModel(s, RowSources(s, lambda st, p: str(p)))
    m.default_rows()
    m.add_task_row(0, int(s.streams[0].buffer.events.column("pid").to_numpy()[100]))
    t = s.merged().ts
    full = m.render(int(t.min()), int(t.max()), 300)
    part = m.render(int(t.min()), int(t.max()), 300, first=1, count=2)
    assert part.first == 1 and part.kind.shape[0] == 2 * 10
    for name in ("kind", "alpha", "overlay"):
        assert np.array_equal(getattr(part, name), getattr(full, name)[10:30]), name
    assert np.array_equal(part.counts, full.counts[1:3]) and np.array_equal(part.dominant, full.dominant[1:3])


def test_short_runs_show_when_zoomed_out():
    """A column in which a row was busy is never drawn empty, however short the runs (probes miss
    them); the colour is that of the column's first busy run."""
    from kshark_py.model.viewmodel import Intervals, Row, TimelineModel

    start = np.arange(50, 10_000_000, 100_000, dtype=np.int64)  # 1 µs runs every 100 µs
    key = np.where(np.arange(len(start)) % 2 == 0, 3, 5).astype(np.int64)
    iv = Intervals(start, start + 1_000, key)
    m = TimelineModel.__new__(TimelineModel)
    m.rows, m.highlight_pid = [Row("task", 0, "t", pid=1, intervals=iv, color_by="cpu")], None
    res = m.render(0, 10_000_000, 50)  # 200 µs per column: two runs in each, probes 33 µs apart
    assert (res.alpha[5] > 0).all(), "busy columns must not be empty"
    assert (res.dominant[0] == 3).all()  # each column's first run has key 3


def test_render_over_the_whole_int64_range(traces):
    """A view from -2**63 to 2**63-1 (a guest moved by a wild TIME_SHIFT) renders without a cast overflow."""
    import warnings

    from kshark_py.loaders.tracedat import open_trace
    from kshark_py.model.session import Session
    from kshark_py.model.viewmodel import RowSources, TimelineModel, _column_grid

    lo, hi = -2**63, 2**63 - 1
    edges, probes = _column_grid(lo, hi, 800)
    assert edges[0] == lo and edges[-1] >= 2**63 - 2048 and np.all(np.diff(edges) > 0)
    assert np.all(np.diff(probes.ravel()) >= 0)
    s = Session.from_files([open_trace(str(traces / "host-sched-v7.dat"))])
    m = TimelineModel(s, RowSources(s, lambda st, p: str(p)))
    m.default_rows()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = m.render(lo, hi, 800)
    t = s.merged().ts
    col = int((int(t.min()) - lo) / ((hi - lo) / 800))  # every event sits in the middle column
    assert res.counts[:, col].sum() == len(t) and res.counts.sum() == len(t)
