"""Timeline colours live in plots/: the view model hands out pixel codes, keys and opacity, and
plots.colors.paint maps them through lookup tables (task colours per key, the state table, ticks,
lost marks, the in-guest shade)."""

from __future__ import annotations

import numpy as np

from kshark_py.model import viewmodel as vm
from kshark_py.plots.colors import LOST_RGB, STATE_COLORS, TICK_RGB, paint, task_colors

NPIX = 10
SPAN = 10_000_000  # 1 ms per column


def _model(rows: list[vm.Row]) -> vm.TimelineModel:
    m = vm.TimelineModel.__new__(vm.TimelineModel)
    m.rows, m.highlight_pid = rows, None
    return m


def _columns(keys: list[int]) -> vm.Intervals:
    """One interval per column, with the given key (0: idle)."""
    start = np.arange(len(keys), dtype=np.int64) * (SPAN // NPIX)
    return vm.Intervals(start, start + SPAN // NPIX, np.array(keys, np.int64))


def test_the_model_gives_codes_and_plots_give_colours():
    pids = [3, 5, 0, 3, 7, 7, 5, 0, 3, 5]
    states = [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]
    times = np.arange(0, SPAN, 50_000, dtype=np.int64)  # 20 events per column
    task = vm.Row("cpu", 0, "CPU 0", cpu=0, intervals=_columns(pids), color_by="pid",
               events=vm.EventTicks(times, np.zeros(len(times), np.int64), 0),
               lost=np.array([SPAN // NPIX * 4 + 10], np.int64))
    by_cpu = vm.Row("task", 0, "t-1", pid=1, intervals=_columns([c + 1 for c in range(NPIX)]), color_by="cpu")
    lane = vm.Row("vcpu_state", 0, "state", intervals=_columns(states), color_by="state")
    guest = vm.Row("vcpu_host", 0, "vcpu", pid=9, intervals=_columns([9] * NPIX),
                overlay=vm.Intervals(np.array([0], np.int64), np.array([SPAN // 2], np.int64), np.array([0], np.int64)))
    res = _model([task, by_cpu, lane, guest]).render(0, SPAN, NPIX)
    assert res.kind.dtype == np.uint8 and res.kind.shape == (4 * vm.SUBROWS, NPIX)  # codes, not RGB
    body = vm.BODY_ROWS.start
    lost = (4, 5)  # a lost-events mark is at least 2 px wide
    assert res.kind[body].tolist() == [vm.PX_LOST if c in lost else vm.PX_TASK if p else 0 for c, p in enumerate(pids)]
    assert res.kind[0:2].tolist() == [[vm.PX_LOST if c in lost else vm.PX_TICK for c in range(NPIX)]] * 2
    assert (res.kind[vm.SUBROWS + body] == vm.PX_CPU).all()
    assert (res.kind[2 * vm.SUBROWS + body] == vm.PX_STATE).all()
    img = paint(res)
    assert img.shape == (4 * vm.SUBROWS, NPIX, 4) and np.array_equal(img[:, :, 3], res.alpha)
    want = task_colors(np.array(pids))
    for c, p in enumerate(pids):
        if c in lost:  # the lost-events mark covers the ticks and the body of its columns
            assert img[0:vm.BODY_ROWS.stop, c, :3].tolist() == [list(LOST_RGB)] * vm.BODY_ROWS.stop
        elif p:
            assert img[body, c, :3].tolist() == want[c].tolist()
            assert img[0, c, :3].tolist() == list(TICK_RGB)
    assert np.array_equal(img[vm.SUBROWS + body, :, :3], task_colors(np.arange(1, NPIX + 1) + 7))
    assert img[2 * vm.SUBROWS + body, :, :3].tolist() == [list(STATE_COLORS[vm.STATE_ORDER[s]]) for s in states]
    shade = (task_colors(np.array([9]))[0] * 0.35 + np.array(STATE_COLORS["guest"]) * 0.65).astype(np.uint8)
    row = img[3 * vm.SUBROWS + body, :, :3]
    assert row[: NPIX // 2].tolist() == [shade.tolist()] * (NPIX // 2)  # in guest: shaded green
    assert row[NPIX // 2:].tolist() == [task_colors(np.array([9]))[0].tolist()] * (NPIX // 2)
