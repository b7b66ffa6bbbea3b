"""Random per-CPU runs for merge tests: sorted timestamps with ties, some going back in time."""

from __future__ import annotations

import numpy as np

from kshark_py.loaders.merge import merge_order


def random_runs(rng: np.random.Generator, nseg: int, hi: int = 60, longest: int = 40
                ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(runs, merge_order of them, its inverse, the runs concatenated, run bounds)."""
    segs = [np.sort(rng.integers(0, hi, rng.integers(0, longest))).astype(np.int64) for _ in range(nseg)]
    for s in segs:
        if len(s) > 2 and rng.random() < 0.4:
            s[rng.integers(0, len(s))] = rng.integers(0, hi)
    order = merge_order(segs)
    n = len(order)
    inv = np.empty(n, np.int64)
    inv[order] = np.arange(n)
    ts = np.concatenate(segs) if n else np.zeros(0, np.int64)
    bounds = np.concatenate(([0], np.cumsum([len(s) for s in segs]))).astype(np.int64)
    return segs, order, inv, ts, bounds
