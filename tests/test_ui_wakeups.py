"""Analysis > Scheduling latency in the app: the per-task table, the boxes on task rows, the jump.

Numbers are checked against a plain walk over the trace's records written here (a waking of P
starts a wakeup unless one is pending, the next sched_switch to P ends it), not the model's code.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from PySide6 import QtCore

from kshark_py.model.columns import event_columns
from kshark_py.ui.arrowtable import us_text

from .support.gui import menu_action, open_window


def walk_wakeups(session, si: int) -> dict[int, list[tuple[int, int]]]:
    """pid -> [(waking ts, latency)], by a loop over the stream's records in order."""
    buf = session.streams[si].buffer
    ts = buf.events.column("ts").to_numpy()
    w_rows, w = event_columns(buf, "sched_waking", ["pid"])
    if not len(w_rows):
        parts = [event_columns(buf, n, ["pid"]) for n in ("sched_wakeup", "sched_wakeup_new")]
        w_rows = np.concatenate([r for r, _ in parts])
        w = {"pid": np.concatenate([f["pid"] for _, f in parts])}
    s_rows, s = event_columns(buf, "sched_switch", ["next_pid"])
    what = {int(r): ("w", int(p)) for r, p in zip(w_rows, w["pid"], strict=True)}
    what.update({int(r): ("s", int(p)) for r, p in zip(s_rows, s["next_pid"], strict=True)})
    pending: dict[int, int] = {}
    out: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for r in sorted(what):
        kind, pid = what[r]
        if pid == 0:
            continue
        if kind == "w":
            pending.setdefault(pid, int(ts[r]))
        elif pid in pending:
            t = pending.pop(pid)
            out[pid].append((t, int(ts[r]) - t))
    return out


@pytest.fixture
def host(qtbot, traces):
    return open_window(qtbot, traces / "host-sched-v7.dat")


def test_menu_opens_table_of_tasks_worst_first(host):
    menu_action(host, "Analysis", "Scheduling latency").trigger()
    p = host.latency_tools.wakeup_panel
    assert p is not None and p.isVisible()
    walk = walk_wakeups(host.session, 0)
    assert p.model.rowCount() == len(walk)
    headers = [p.model.headerData(c, QtCore.Qt.Orientation.Horizontal) for c in range(p.model.columnCount())]
    assert headers[:4] == ["Stream", "PID", "Task", "Wakeups"]
    worst = max(walk, key=lambda pid: max(lat for _, lat in walk[pid]))
    top_lat = max(lat for _, lat in walk[worst])
    assert p.model.text(0, 1) == str(worst)
    assert p.model.text(0, 3) == str(len(walk[worst]))
    assert p.model.text(0, 7) == us_text(top_lat)
    assert p.model.text(0, 4) == us_text(sum(lat for _, lat in walk[worst]))
    maxes = [float(p.model.text(i, 7).replace(",", "")) for i in range(p.model.rowCount())]
    assert maxes == sorted(maxes, reverse=True)
    assert f"{sum(len(v) for v in walk.values()):,} wakeups of {len(walk)} tasks" in p.info.text()


def test_sort_by_count(host):
    p = host.latency_tools.show_wakeups()
    p.table.horizontalHeader().sectionClicked.emit(3)  # as a click on "Wakeups"
    p.table.sortByColumn(3, QtCore.Qt.SortOrder.DescendingOrder)
    walk = walk_wakeups(host.session, 0)
    counts = [int(p.model.text(i, 3)) for i in range(p.model.rowCount())]
    assert counts == sorted(counts, reverse=True)
    assert counts[0] == max(len(v) for v in walk.values())


def test_click_jumps_to_worst_wakeup(host, qtbot):
    p = host.latency_tools.show_wakeups()
    walk = walk_wakeups(host.session, 0)
    k = 5  # not the first row: any row jumps to its own task's worst
    pid = int(p.model.text(k, 1))
    waking, lat = max(walk[pid], key=lambda x: (x[1], -x[0]))
    rect = p.table.visualRect(p.model.index(k, 2))
    qtbot.mouseClick(p.table.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=rect.center())
    host.timeline.redraw()
    t0, t1 = host.timeline.view_range()
    assert t0 <= waking and waking + lat <= t1
    assert (t1 - t0) >= 5 * lat * 0.99 or (t1 - t0) >= 20_000 * 0.99  # context around the box
    assert host.markers.times == {"A": waking, "B": waking + lat}
    row = next(i for i, r in enumerate(host.model.rows) if r.kind == "task" and r.pid == pid)
    top, bottom = host.timeline.visible_rows()
    assert top <= row < bottom
    # the list selected the switch that ends the wakeup
    m = host.event_list.current_merged_index()
    merged = host.session.merged()
    buf = host.session.streams[0].buffer
    ev = buf.trace.formats.get(int(buf.events.column("event_id")[int(merged.row[m])].as_py()))
    assert ev.name == "sched_switch" and int(merged.ts[m]) == waking + lat
    # the box is on the task's row, around the middle of the graph
    drawn = host.latency_tools.wakeup_layer.drawn()
    npix = host.timeline.last.npix
    x0 = int(np.floor((waking - t0) * npix / (t1 - t0)))
    assert any(a <= x0 + 1 and b >= x0 for a, b in drawn[row])


def test_boxes_follow_pixels_not_wakeups(host):
    """Zoomed out, a task's many wakeups become at most one box per pixel column, covering every
    wakeup's columns; the layer's cost stays within the graph's render."""
    p = host.latency_tools.show_wakeups()
    walk = walk_wakeups(host.session, 0)
    pid = max(walk, key=lambda k: len(walk[k]))
    host.add_task_row(0, pid)
    host.timeline.zoom_to_fit()
    host.timeline.redraw()
    row = next(i for i, r in enumerate(host.model.rows) if r.kind == "task" and r.pid == pid)
    host.timeline.ensure_rows_visible([row])
    host.timeline.redraw()
    res = host.timeline.last
    npix = res.npix
    spans = host.latency_tools.wakeup_layer.drawn()[row]
    assert len(walk[pid]) > npix // 4 or len(spans) <= len(walk[pid])
    assert len(spans) <= npix
    assert all(b > a for a, b in spans) and all(spans[i][1] < spans[i + 1][0] for i in range(len(spans) - 1))
    t0, t1 = res.t0, res.t1
    covered = np.zeros(npix + 4, bool)
    for a, b in spans:
        covered[max(a, 0):b] = True
    for waking, lat in walk[pid]:
        x = int(np.floor((waking - t0) * npix / (t1 - t0)))
        assert covered[min(max(x, 0), npix - 1)], (waking, lat)
    # unchecking the box hides them
    p.boxes.setChecked(False)
    host.timeline.redraw()
    assert host.latency_tools.wakeup_layer.box_count() == 0
    p.boxes.setChecked(True)
    host.timeline.redraw()
    assert host.latency_tools.wakeup_layer.drawn()[row] == spans
    # so does closing the dock; opening it again from the menu puts them back
    host.latency_tools.docks["wakeups"].close()
    host.timeline.redraw()
    assert host.latency_tools.wakeup_layer.box_count() == 0
    menu_action(host, "Analysis", "Scheduling latency").trigger()
    host.timeline.redraw()
    assert host.latency_tools.wakeup_layer.drawn()[row] == spans


def test_double_click_in_box_marks_it(host):
    host.latency_tools.show_wakeups()
    walk = walk_wakeups(host.session, 0)
    pid = max(walk, key=lambda k: max(lat for _, lat in walk[k]))
    waking, lat = max(walk[pid], key=lambda x: x[1])
    host.add_task_row(0, pid)
    row = next(i for i, r in enumerate(host.model.rows) if r.kind == "task" and r.pid == pid)
    host.timeline.timeDoubleClicked.emit(row, waking + lat // 2)
    assert host.markers.times == {"A": waking, "B": waking + lat}


def test_range_follows_markers(host, qtbot):
    p = host.latency_tools.show_wakeups()
    walk = walk_wakeups(host.session, 0)
    t = host.session.merged().ts
    a, b = int(t.min()), int(t.min()) + (int(t.max()) - int(t.min())) // 3
    host.set_marker("A", a)
    host.set_marker("B", b)
    p.range_box.set_mode("markers")
    inside = {pid: [x for x in v if x[0] >= a and x[0] + x[1] <= b] for pid, v in walk.items()}
    inside = {k: v for k, v in inside.items() if v}
    assert p.model.rowCount() == len(inside)
    assert f"{sum(len(v) for v in inside.values()):,} wakeups" in p.info.text()
    # moving a marker recomputes (debounced)
    host.set_marker("B", int(t.max()))
    qtbot.waitUntil(lambda: p.model.rowCount() == len(walk), timeout=3000)


def test_guest_wakeups_on_host_clock(qtbot, traces):
    """vm-tsync: the guest's tasks are listed with the host's, the jump lands on the guest's task
    row at its host-clock time."""
    d = traces / "vm-tsync"
    w = open_window(qtbot, d / "trace.dat", d / "trace-vmguest.dat")
    p = w.latency_tools.show_wakeups()
    gi = next(st.index for st in w.session.streams if st.role == "guest")
    gname = w.session.streams[gi].name
    walk = walk_wakeups(w.session, gi)
    rows = [i for i in range(p.model.rowCount()) if p.model.text(i, 0) == gname]
    assert len(rows) == len(walk) > 0
    k = rows[0]
    pid = int(p.model.text(k, 1))
    waking, lat = max(walk[pid], key=lambda x: (x[1], -x[0]))
    p.choose(k)
    w.timeline.redraw()
    assert w.markers.times == {"A": waking, "B": waking + lat}
    row = next(i for i, r in enumerate(w.model.rows) if r.kind == "task" and r.stream == gi and r.pid == pid)
    assert w.model.rows[row].label.startswith(gname)
    gts = w.session.streams[gi].buffer.events.column("ts").to_numpy()
    assert gts.min() <= waking <= gts.max()
    assert row in w.latency_tools.wakeup_layer.drawn()


def test_wakeups_across_dropped_events_are_shown(qtbot, traces):
    """On a trace that lost events, the table counts each task's wakeups that span a loss and the
    panel says their latency may be overstated (their real switch may be among the dropped)."""
    from kshark_py.model.analysis.wakeups import wakeups

    win = open_window(qtbot, traces / "host-lost-events.dat")
    menu_action(win, "Analysis", "Scheduling latency").trigger()
    p = win.latency_tools.wakeup_panel
    headers = [p.model.headerData(c, QtCore.Qt.Orientation.Horizontal) for c in range(p.model.columnCount())]
    col = headers.index("Across loss")
    shown = sum(int(p.model.text(i, col) or 0) for i in range(p.model.rowCount()))
    lossy = int(wakeups(win.session).column("across_loss").to_numpy(zero_copy_only=False).sum())
    assert shown == lossy > 0
    assert f"{lossy:,} of them span dropped events" in p.info.text()
