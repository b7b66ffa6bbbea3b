"""The timeline as a user drives it: real Qt mouse and wheel events on the plot (offscreen), and
what the window then shows: rows, labels, ranges, marker, list selection, axis text."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from kshark_py.model.loading import load_session
from kshark_py.model.sessionfile import load_session_file
from kshark_py.plots.axes import seconds_text
from kshark_py.plots.timeline import ROW_PX
from kshark_py.ui.app import DEMO_SESSION, build_window

from .support.gui import click, drag, label_pos, time_at, vpos, wheel

Qt = QtCore.Qt
TWO_GUEST_MAP = {"vmguestA": {0: 9444}, "vmguestB": {0: 9446}}


def _show(qtbot, w, size=(1400, 900)):
    qtbot.addWidget(w)
    w.resize(*size)
    w.show()
    qtbot.waitExposed(w)
    QtWidgets.QApplication.processEvents()
    w.timeline.redraw()
    return w


@pytest.fixture
def demo(qtbot):
    state = load_session_file(DEMO_SESSION)
    res = load_session(state.files, state.vcpu_map)
    return _show(qtbot, build_window(res, state.files, state.vcpu_map))


@pytest.fixture
def two_guests(qtbot, traces):
    d = traces / "vm-2guests"
    paths = [str(d / "trace.dat"), str(d / "trace-vmguestA.dat"), str(d / "trace-vmguestB.dat")]
    res = load_session(paths, TWO_GUEST_MAP)
    return _show(qtbot, build_window(res, paths, TWO_GUEST_MAP))




def y_range(tl) -> tuple[float, float]:
    y0, y1 = tl.vb.viewRange()[1]
    return y0, y1


def rows_on_screen(tl) -> float:
    y0, y1 = y_range(tl)
    return y1 - y0


def labels_drawn(tl) -> list[str]:
    """The row labels the left axis draws now (pyqtgraph asks the axis for them)."""
    lo, hi = y_range(tl)
    vals = tl.row_axis.tickValues(lo, hi, tl.vb.height())[0][1]
    return [s for s in tl.row_axis.tickStrings([v for v in vals if lo <= v <= hi], 1, 1) if s]


# -- 1. rubber band -------------------------------------------------------------------------------
def test_rubber_band_zooms_time_only_and_fit_restores(demo):
    tl = demo.timeline
    t0, t1 = tl.view_range()
    y_before = y_range(tl)
    labels_before = labels_drawn(tl)
    assert labels_before[:2] == ["host CPU 0", "host CPU 1"]
    a0, a1 = t0 + (t1 - t0) * 0.3, t0 + (t1 - t0) * 0.5
    drag(tl, vpos(tl, a0, 0.4), vpos(tl, a1, 1.6), mods=Qt.KeyboardModifier.ControlModifier)
    z0, z1 = tl.view_range()
    assert z1 - z0 == pytest.approx(a1 - a0, rel=0.03) and z0 == pytest.approx(a0, abs=(t1 - t0) * 0.01)
    assert y_range(tl) == pytest.approx(y_before, abs=1e-6), "the rubber band must not zoom vertically"
    assert labels_drawn(tl) == labels_before
    assert not tl.vb.band.isVisible(), "the selection box must go once the zoom is done"
    # the toolbar's "Zoom to selection": a plain drag, then the button pops out
    demo.act_rubber.setChecked(True)
    drag(tl, vpos(tl, z0 + (z1 - z0) * 0.2, 2.5), vpos(tl, z0 + (z1 - z0) * 0.4, 3.5))
    w0, w1 = tl.view_range()
    assert w1 - w0 == pytest.approx((z1 - z0) * 0.2, rel=0.05)
    assert y_range(tl) == pytest.approx(y_before, abs=1e-6)
    assert not demo.act_rubber.isChecked() and not tl.vb.band.isVisible()
    # Fit (toolbar) and Home restore the whole time range and every row
    demo.timeline_fit()
    f0, f1 = tl.view_range()
    assert (f0, f1) == tl.full_range()
    assert y_range(tl) == pytest.approx(y_before, abs=1e-6) and labels_drawn(tl) == labels_before
    tl.zoom(8.0)
    tl.setFocus()
    QtCore.QCoreApplication.processEvents()
    from pytestqt.qtbot import QtBot  # noqa: F401 (qtbot is the plugin's)

    QtWidgets.QApplication.sendEvent(tl, QtGui.QKeyEvent(QtCore.QEvent.Type.KeyPress, Qt.Key.Key_Home,
                                                         Qt.KeyboardModifier.NoModifier))
    assert tl.view_range() == (f0, f1) and y_range(tl) == pytest.approx(y_before, abs=1e-6)


def test_wheel_over_plot_zooms_time_only(demo):
    tl = demo.timeline
    t0, t1 = tl.view_range()
    y_before = y_range(tl)
    wheel(tl, vpos(tl, (t0 + t1) / 2, 1.5), notches=2)
    z0, z1 = tl.view_range()
    assert z1 - z0 < (t1 - t0) * 0.9
    assert y_range(tl) == pytest.approx(y_before, abs=1e-6)


# -- 2. a click only highlights -----------------------------------------------------------------------
def test_click_vcpu_row_highlights_without_relayout(two_guests):
    w, tl = two_guests, two_guests.timeline
    rows = w.model.rows
    y_before = y_range(tl)
    t0, t1 = tl.view_range()
    last = len(rows) - 1
    assert rows[last].label == "vmguestB VCPU0 (guest CPU)"
    for i, r in enumerate(rows):
        if r.guest is None:
            continue
        click(tl, vpos(tl, (t0 + t1) / 2, i + 0.5))
        assert y_range(tl) == pytest.approx(y_before, abs=1e-6), f"clicking {r.label} moved the rows"
        assert tl.highlight.isVisible()
        lo, hi = tl.highlight.getRegion()
        pair = [k for k, q in enumerate(rows) if q.guest == r.guest and q.vcpu == r.vcpu]
        assert lo == pytest.approx(min(pair)) and hi > max(pair) + 0.5
        assert y_range(tl)[1] >= last + 1, "the last row left the screen"


def test_click_on_a_many_row_layout_keeps_every_row(two_guests):
    """Twenty rows (the two guests' rows and task rows): clicking a row leaves the same rows on screen."""
    w, tl = two_guests, two_guests.timeline
    host = w.session.host_stream
    pids = [p for p in np.unique(host.buffer.events.column("pid").to_numpy()).tolist() if p][:12]
    w.model.set_visible_tasks([(host.index, p) for p in pids])
    assert len(w.model.rows) == 8 + 12
    QtWidgets.QApplication.processEvents()
    y_before, labels = y_range(tl), labels_drawn(tl)
    t0, t1 = tl.view_range()
    click(tl, vpos(tl, (t0 + t1) / 2, 2.5))
    assert y_range(tl) == pytest.approx(y_before, abs=1e-6) and labels_drawn(tl) == labels
    assert labels[0] == "host CPU 0"


# -- 3. fixed row height, vertical scroll -----------------------------------------------------------
def test_rows_keep_a_fixed_height_and_scroll(two_guests, qtbot):
    w, tl = two_guests, two_guests.timeline
    assert rows_on_screen(tl) == pytest.approx(tl.vb.height() / ROW_PX, rel=1e-3)
    # a shorter window shows fewer rows at the same height, and a scroll bar reaches the others
    w.resize(1400, 560)
    qtbot.waitUntil(lambda: tl.vscroll.isVisible())
    QtWidgets.QApplication.processEvents()
    n = len(w.model.rows)
    assert rows_on_screen(tl) == pytest.approx(tl.vb.height() / ROW_PX, rel=1e-3) and rows_on_screen(tl) < n
    assert y_range(tl)[0] == pytest.approx(0)
    tl.redraw()
    assert tl.last.first == 0 and tl.last.kind.shape[0] <= (int(rows_on_screen(tl)) + 2) * 10
    # the wheel over the row labels scrolls; over the plot it zooms time and leaves the rows
    span = tl.view_range()
    wheel(tl, label_pos(tl, 1.5), notches=-1)
    assert y_range(tl)[0] > 0 and tl.view_range() == span
    wheel(tl, label_pos(tl, y_range(tl)[0] + 1.5), notches=10)
    assert y_range(tl)[0] == pytest.approx(0)
    # Shift+wheel over the plot scrolls too; the scroll bar goes to the end: the last row shows
    t0, t1 = tl.view_range()
    wheel(tl, vpos(tl, (t0 + t1) / 2, 1.5), notches=-1, mods=Qt.KeyboardModifier.ShiftModifier)
    assert y_range(tl)[0] > 0 and tl.view_range() == (t0, t1)
    tl.vscroll.setValue(tl.vscroll.maximum())
    assert y_range(tl)[1] == pytest.approx(n, abs=0.05)
    assert labels_drawn(tl)[-1] == "vmguestB VCPU0 (guest CPU)"
    tl.redraw()
    assert tl.last.first > 0 and tl.last.first + tl.last.kind.shape[0] // 10 == n
    assert rows_on_screen(tl) == pytest.approx(tl.vb.height() / ROW_PX, rel=1e-3)


def test_vcpu_map_line_scrolls_the_pair_into_view(two_guests, qtbot):
    w, tl = two_guests, two_guests.timeline
    w.resize(1400, 560)
    qtbot.waitUntil(lambda: tl.vscroll.isVisible())
    QtWidgets.QApplication.processEvents()
    height = rows_on_screen(tl)
    assert y_range(tl)[1] < len(w.model.rows)  # vmguestB's guest CPU row is off screen
    w.scroll_to_pair("vmguestB", 0)
    pair = [i for i, r in enumerate(w.model.rows) if r.guest == "vmguestB"]
    y0, y1 = y_range(tl)
    assert y0 <= min(pair) and max(pair) + 1 <= y1 + 1e-6
    assert rows_on_screen(tl) == pytest.approx(height), "row heights must not change"
    assert tl.highlight.isVisible()
    w.scroll_to_pair("vmguestA", 0)
    y0, y1 = y_range(tl)
    assert y0 <= 2 and rows_on_screen(tl) == pytest.approx(height)


# -- 4. which rows show ---------------------------------------------------------------------------
def test_model_row_choice_api(two_guests):
    w = two_guests
    m, host = w.model, w.session.host_stream.index
    seen = []
    m.rows_changed.connect(lambda: seen.append([r.label for r in m.rows]))
    assert m.cpu_streams()[0] == (host, 2) and m.visible_cpus(host) == [0, 1]
    m.set_visible_cpus(host, [1])
    assert [r.label for r in m.rows][:2] == ["host CPU 1", "vmguestA VCPU0 host 9444"]
    assert w.timeline.row_axis.labels == seen[-1]  # the view follows the model
    m.set_visible_pairs([("vmguestB", 0)])
    assert m.visible_pairs() == [("vmguestB", 0)]
    assert "vmguestA VCPU0 state" not in seen[-1] and "vmguestB VCPU0 state" in seen[-1]
    m.set_visible_tasks([(host, 9444), (host, 9446)])
    assert [r.label for r in m.rows][-2:] == ["host qemu-system-x86-9444", "host qemu-system-x86-9446"]
    assert m.visible_tasks() == [(host, 9444), (host, 9446)]
    m.remove_row(len(m.rows) - 2)
    assert m.visible_tasks() == [(host, 9446)]
    m.remove_row(0)  # host CPU 1
    assert m.visible_cpus(host) == []
    m.set_visible_cpus(host, [0, 1])
    m.set_visible_pairs(m.pairs())
    assert [r.label for r in m.rows][:3] == ["host CPU 0", "host CPU 1", "vmguestA VCPU0 host 9444"]
    # a new VCPU map keeps what is shown
    m.set_visible_cpus(host, [0])
    w.set_user_vcpu_map({"vmguestA": {0: 9444}, "vmguestB": {0: 9446}})
    assert m.visible_cpus(host) == [0] and m.visible_tasks() == [(host, 9446)]


def test_right_click_row_label_removes_the_row(two_guests, qtbot):
    w, tl = two_guests, two_guests.timeline
    menus = []
    orig = QtWidgets.QMenu.popup
    QtWidgets.QMenu.popup = lambda self, *a: menus.append(self)  # the menu would block nothing; keep it
    try:
        click(tl, label_pos(tl, 1.5), button=Qt.MouseButton.RightButton)
    finally:
        QtWidgets.QMenu.popup = orig
    assert len(menus) == 1
    acts = [a for a in menus[0].actions() if a.text().startswith("Remove row")]
    assert acts and "host CPU 1" in acts[0].text()
    acts[0].trigger()
    assert "host CPU 1" not in [r.label for r in w.model.rows]
    assert "host CPU 1" not in labels_drawn(tl)


def test_plots_cpus_and_tasks_dialogs(two_guests):
    from kshark_py.ui.plotdialogs import CpuPlotsDialog, TaskPlotsDialog

    w = two_guests
    host = w.session.host_stream.index
    dlg = CpuPlotsDialog(w.model, w)
    leaves = {it.text(0): it for it in dlg.leaves()}
    assert {"CPU 0", "CPU 1", "VCPU0 (guest CPU)", "VCPU0 host thread + state"} <= set(leaves)
    leaves["CPU 0"].setCheckState(0, Qt.CheckState.Unchecked)
    dlg.apply()
    labels = [r.label for r in w.model.rows]
    assert "host CPU 0" not in labels and "host CPU 1" in labels
    assert w.timeline.row_axis.labels == labels
    dlg.set_all(False)
    dlg.apply()
    assert w.model.rows == []
    dlg.set_all(True)
    dlg.apply()
    assert len(w.model.rows) == 8

    tdlg = TaskPlotsDialog(w.model, w.names, w)
    tdlg.search.setText("9446")
    shown = [it for it in tdlg.leaves() if not it.isHidden()]
    assert [it.text(0) for it in shown] == ["qemu-system-x86-9446"]
    tdlg.set_all(True)  # only what the search shows
    tdlg.apply()
    assert w.model.visible_tasks() == [(host, 9446)]
    assert w.model.rows[-1].label == "host qemu-system-x86-9446"


# -- 5. double-click picks the clicked row's event ------------------------------------------------------
def test_double_click_selects_the_clicked_rows_nearest_event(demo):
    w, tl = demo, demo.timeline
    host = w.session.host_stream
    t = host.buffer.events
    ts, cpu = t.column("ts").to_numpy().astype(np.int64), t.column("cpu").to_numpy()
    ts0, ts1 = ts[cpu == 0], ts[cpu == 1]
    # the CPU 0 event farthest from any CPU 1 event: a pick among all rows takes that CPU 0 event
    k = np.clip(np.searchsorted(ts1, ts0), 1, len(ts1) - 1)
    dist = np.minimum(np.abs(ts0 - ts1[k - 1]), np.abs(ts1[k] - ts0))
    click_t = int(ts0[int(np.argmax(dist))])
    d = int(dist.max())
    tl.set_range(click_t - 20 * d, click_t + 20 * d)
    QtWidgets.QApplication.processEvents()
    row1 = next(i for i, r in enumerate(w.model.rows) if r.label == "host CPU 1")
    pos = vpos(tl, click_t, row1 + 0.5)
    click(tl, pos, double=True)
    at_t = time_at(tl, pos)
    want = int(ts1[np.argmin(np.abs(ts1 - at_t))])
    assert w.markers.times["A"] == want, "the marker goes to the row's event's time, not the click's"
    m = w.session.merged()
    cur = w.event_list.current_merged_index()
    assert cur is not None and int(m.ts[cur]) == want
    assert int(cpu[int(m.row[cur])]) == 1 and int(m.stream[cur]) == host.index


def test_double_click_on_a_task_row_picks_that_tasks_event(demo):
    w = demo
    host = w.session.host_stream
    w.add_task_row(host.index, 27186)
    row = len(w.model.rows) - 1
    t = host.buffer.events
    ts, pid = t.column("ts").to_numpy(), t.column("pid").to_numpy()
    mine = ts[pid == 27186]
    probe = int((ts[0] + ts[-1]) // 2)
    w.timeline.set_range(probe - 50_000_000, probe + 50_000_000)
    w.timeline.ensure_rows_visible([row])
    QtWidgets.QApplication.processEvents()
    pos = vpos(w.timeline, probe, row + 0.5)
    click(w.timeline, pos, double=True)
    at_t = time_at(w.timeline, pos)
    want = int(mine[np.argmin(np.abs(mine.astype(np.int64) - at_t))])
    assert w.markers.times["A"] == want
    cur = w.event_list.current_merged_index()
    assert int(pid[int(w.session.merged().row[cur])]) == 27186


# -- 6. the absolute time of the window --------------------------------------------------------------
def test_zoomed_axis_shows_the_absolute_window_start(demo):
    tl = demo.timeline
    t0, t1 = tl.view_range()
    tl.set_range(t0 + (t1 - t0) // 3, t0 + (t1 - t0) // 3 + 593_000_000 // 200)
    z0, z1 = tl.view_range()
    ticks = tl.time_axis.tickStrings([z0 / 1e9, (z0 + z1) / 2e9], 1, (z1 - z0) / 2e9)
    assert all(s.startswith("+") for s in ticks)  # offsets only...
    text = tl.time_axis.labelText
    assert f"start {seconds_text(z0)} s" in text and f"end {seconds_text(z1)} s" in text  # ...and where from
    assert re.search(r"start \d+\.\d{6} s", text)  # trace-cmd's seconds: six decimals
    assert tl.time_axis.label.isVisible()
    tl.set_range(z0, z0 + 2_000)  # under 10 µs: nanoseconds
    assert re.search(r"start \d+\.\d{9} s", tl.time_axis.labelText)


# -- 7. marker labels readable -------------------------------------------------------------------
def test_marker_labels_sit_on_a_light_box(demo):
    w, tl = demo, demo.timeline
    t0, t1 = tl.view_range()
    w.set_marker("A", (t0 + t1) // 2)
    w.set_marker("B", t0 + (t1 - t0) * 3 // 4)
    QtWidgets.QApplication.processEvents()
    img = tl.grab().toImage()
    for name in ("A", "B"):
        lab = tl.markers[name].label
        assert lab.isVisible() and lab.toPlainText() == name
        r = tl.mapFromScene(lab.sceneBoundingRect()).boundingRect()
        assert tl.vb.sceneBoundingRect().contains(lab.sceneBoundingRect().center())
        # around the letter the box is light: the letter reads over the dark tick strip
        px = [QtGui.QColor(img.pixel(x, y)) for x in range(r.left() + 1, r.right() - 1)
              for y in (r.top() + 2, r.bottom() - 2)]
        light = sum(1 for c in px if c.lightness() > 200)
        assert light > 0.6 * len(px), f"marker {name}'s label has no light background"
