"""The analysis panels' shared range following (analysisrange.RangeFollower, RangePanel): a panel
follows the view and markers while on screen; off screen (a tab behind another dock, or its dock
closed) it computes nothing and catches up once when shown again."""

from __future__ import annotations

from kshark_py.model.loading import load_session
from kshark_py.ui.analysisrange import DEBOUNCE_MS, AnalysisContext, RangeFollower
from kshark_py.ui.latencyplot import LatencyRequest

from .support.gui import open_window

SETTLE_MS = DEBOUNCE_MS + 250
"""Past the debounce of the context's ``changed``."""
SOFTIRQ = LatencyRequest("irq:softirq_entry", "irq:softirq_exit", (("vec", "vec"), ("common_cpu", "common_cpu")))


def test_follower_defers_while_off_screen_and_ignores_moves_in_whole_trace_mode(qtbot, traces):
    ctx = AnalysisContext(load_session([str(traces / "host-small-v7.dat")], {}))
    mode, calls = ["view"], []
    f = RangeFollower(ctx, lambda: mode[0], lambda: calls.append(ctx.view), ctx)
    ctx.set_view(10, 20)
    qtbot.waitUntil(lambda: calls == [(10, 20)], timeout=3000)

    f.set_on_screen(False)
    ctx.set_view(30, 40)
    qtbot.wait(SETTLE_MS)
    ctx.set_view(50, 60)
    qtbot.wait(SETTLE_MS)
    assert calls == [(10, 20)] and f.stale  # off screen: nothing computed, two moves noted
    f.set_on_screen(True)
    assert calls == [(10, 20), (50, 60)]  # shown: once, at the newest range
    f.set_on_screen(True)
    assert len(calls) == 2  # shown again without a move: nothing to do

    mode[0] = "all"
    ctx.set_view(70, 80)
    qtbot.wait(SETTLE_MS)
    assert len(calls) == 2 and not f.stale


def test_panel_behind_a_tab_recomputes_once_when_shown(qtbot, traces):
    w = open_window(qtbot, traces / "host-sched-v7.dat")
    p = w.vm_analyses.show_vcputime()  # follows the graph's view
    qtbot.waitUntil(lambda: p.result is not None and not p.worker.busy, timeout=30_000)
    done = []
    p.computed.connect(lambda: done.append((p.result.t0, p.result.t1)))
    w.vm_analyses.show_exits()  # a tab in front of it
    qtbot.waitUntil(lambda: not p.follow.on_screen, timeout=5000)
    w.timeline.zoom(2.0)
    qtbot.wait(SETTLE_MS)
    w.timeline.zoom(2.0)
    qtbot.wait(SETTLE_MS)
    assert done == []
    w.vm_analyses.show_vcputime()
    view = w.timeline.view_range()
    qtbot.waitUntil(lambda: done == [view], timeout=30_000)
    qtbot.wait(SETTLE_MS)
    assert done == [view]


def test_scheduling_latency_behind_a_tab_or_closed_catches_up_when_shown(qtbot, traces):
    w = open_window(qtbot, traces / "host-sched-v7.dat")
    t = w.session.merged().ts
    t0, t1 = int(t.min()), int(t.max())
    a, b = t0 + (t1 - t0) // 4, t0 + (t1 - t0) // 2
    w.set_marker("A", a)
    w.set_marker("B", b)
    p = w.latency_tools.show_wakeups()
    p.range_box.set_mode("markers")
    assert p.window == (a, b)

    tools = w.latency_tools

    def hidden_then_shown(hide, marker: str, ts: int, want: tuple[int, int]) -> None:
        """``hide()`` the dock, move a marker: the table keeps its range until the dock is shown."""
        before = p.window
        hide()
        qtbot.waitUntil(lambda: not tools.follow["wakeups"].on_screen, timeout=5000)
        w.set_marker(marker, ts)
        qtbot.wait(SETTLE_MS)
        assert p.window == before
        tools.show_wakeups()
        qtbot.waitUntil(lambda: p.window == want, timeout=3000)

    hidden_then_shown(lambda: tools.show_latency(SOFTIRQ), "B", t1, (a, t1))  # behind the latency plot's tab
    hidden_then_shown(tools.docks["wakeups"].close, "A", t0, (t0, t1))  # its dock closed with its X
    assert f"{p.shown.num_rows:,} wakeups" in p.info.text()
