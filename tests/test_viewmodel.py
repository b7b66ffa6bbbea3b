"""The visualization model's event counting: exact against a brute-force count."""

from __future__ import annotations

import numpy as np
import pytest

from kshark_py.model.viewmodel import EventTicks


@pytest.mark.parametrize("n", [0, 1, 63, 64, 65, 1000, 20011])
def test_event_ticks_count_exactly(n):
    rng = np.random.default_rng(n)
    times = np.sort(rng.integers(0, 10**6, n)).astype(np.int64)
    key = rng.integers(0, 4, n).astype(np.int16)
    mask = rng.random(n) < 0.7
    for m in (None, mask):
        ticks = EventTicks(times, key, 2, m)
        hit = (key == 2) if m is None else ((key == 2) & m)
        assert len(ticks) == int(hit.sum())
        assert np.array_equal(ticks.timestamps(), times[hit])
        edges = np.sort(rng.integers(-10, 10**6 + 10, 300)).astype(np.int64)
        expect = np.diff(np.searchsorted(times[hit], edges))
        assert np.array_equal(ticks.counts(edges), expect)
        if hit.any():
            t = int(times[hit][len(times[hit]) // 2]) + 3
            near = ticks.nearest(t, 10**6)
            assert near is not None and abs(near - t) == np.abs(times[hit] - t).min()
            assert ticks.nearest(-10**7, 10) is None


def test_event_ticks_keep_no_copy_of_times():
    """Memory per row is one int per 64 events, not the timestamps again."""
    times = np.arange(64 * 1000, dtype=np.int64)
    ticks = EventTicks(times, np.zeros(len(times), np.int16), 0)
    assert ticks.times is times
    assert ticks.cum.nbytes <= 4 * (1000 + 1)
