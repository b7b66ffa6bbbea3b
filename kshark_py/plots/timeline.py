"""The timeline plot: the rows on screen as one image from the visualization model, plus markers.

Navigation follows KernelShark with bounded steps: wheel zooms time around the pointer, drag pans,
Ctrl+drag (or the rubber-band button) zooms to a time selection, +/- zoom by x2 per key press (auto
repeat ignored, so a held key cannot run away), arrows pan by 1/4 window, Home zooms to fit.

Rows have a fixed height (:data:`ROW_PX`) whatever their number, as in KernelShark; the view shows
as many as fit and scrolls vertically: the scroll bar, the wheel over the row labels, Shift+wheel
anywhere, PageUp/PageDown and Up/Down.  Nothing but that scroll moves the rows: zooming is in time
only, and clicks only highlight.  The view's y range is in row units (row i spans [i, i+1)).

A range change only schedules a re-render (coalesced with a zero-delay timer), and the render cost
follows the pixel width times the rows on screen, not the number of events or rows.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from ..model.lost import lost_near, lost_text
from ..model.viewmodel import STATE_ORDER, SUBROWS, RenderResult, TimelineModel
from ..model.viewstate import ViewState
from .axes import RowAxis, TimeAxis, seconds_text
from .colors import paint

NS = 1e9
MIN_SPAN_NS = 1_000  # never zoom below 1 µs across the whole view
ROW_PX = 40
"""Height of one row on screen, in pixels (4 per image sub-row)."""
MIN_BAND_PX = 4
"""A rubber band narrower than this is a click, not a zoom."""


class _ViewBox(pg.ViewBox):
    """Time-only navigation; Ctrl+left-drag (or the rubber-band mode) selects a time range."""

    def __init__(self, owner: TimelineWidget) -> None:
        super().__init__(enableMenu=False)
        self.owner = owner
        self.setMouseEnabled(x=True, y=False)
        self.disableAutoRange()
        self.invertY(True)
        self.band = pg.LinearRegionItem(orientation="vertical", movable=False,
                                        brush=pg.mkBrush(70, 130, 230, 60), pen=pg.mkPen(70, 130, 230, 200))
        self.band.setZValue(20)
        self.band.setVisible(False)
        self.addItem(self.band, ignoreBounds=True)
        self._band_x0: float | None = None

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802
        if ev.button() == QtCore.Qt.MouseButton.LeftButton and (
                ev.modifiers() & QtCore.Qt.KeyboardModifier.ControlModifier or self.owner.rubber_band):
            ev.accept()
            x0 = self.mapSceneToView(ev.buttonDownScenePos()).x()
            x1 = self.mapSceneToView(ev.scenePos()).x()
            if ev.isStart():
                self._band_x0 = x0
            if ev.isFinish():
                self.band.setVisible(False)
                self._band_x0 = None
                wide = abs(ev.scenePos().x() - ev.buttonDownScenePos().x()) >= MIN_BAND_PX
                if wide:
                    self.owner.set_range(int(min(x0, x1) * NS), int(max(x0, x1) * NS))
                    self.owner.rubberBandDone.emit()
                return
            self.band.setRegion((min(x0, x1), max(x0, x1)))
            self.band.setVisible(True)
            return
        if axis == 1:  # a drag on the row labels: nothing to pan vertically by dragging
            ev.ignore()
            return
        super().mouseDragEvent(ev, axis=0)

    def wheelEvent(self, ev, axis=None):  # noqa: N802
        if ev.modifiers() & QtCore.Qt.KeyboardModifier.ShiftModifier:
            ev.accept()
            self.owner.scroll_wheel(ev.delta())
            return
        super().wheelEvent(ev, axis=0)


class _RowAxis(RowAxis):
    """The row labels: the wheel over them scrolls the rows (it does not zoom)."""

    def __init__(self, owner: TimelineWidget) -> None:
        super().__init__()
        self.owner = owner

    def wheelEvent(self, ev):  # noqa: N802
        ev.accept()
        self.owner.scroll_wheel(ev.delta())


class TimelineWidget(pg.GraphicsLayoutWidget):
    """Rows of CPUs, tasks and VCPU pairs between two times; emits what the user points at.

    The visible range and the markers are the window's :class:`~kshark_py.model.viewstate.ViewState`
    (``state``): the graph shows what it says, and writes back every range the user moves it to
    (the state emits only on a change, so the echo ends there). The vertical scroll bar is
    :attr:`vscroll`, in :attr:`vscroll_box` (which keeps it level with the rows, not the time axis):
    the window lays the box out beside the widget."""

    rangeChanged = QtCore.Signal(object, object)  # t0, t1 in ns (Qt ints are 32-bit)
    rowClicked = QtCore.Signal(int, object)  # row index, time ns
    timeDoubleClicked = QtCore.Signal(int, object)  # row index, time ns
    hovered = QtCore.Signal(str)
    rubberBandDone = QtCore.Signal()
    rowMenuAboutToShow = QtCore.Signal(int, object)  # row index, QMenu: add actions before it shows

    def __init__(self, model: TimelineModel, state: ViewState | None = None, parent=None) -> None:
        super().__init__(parent)
        self.model = model
        self.state = state if state is not None else ViewState()
        self.rubber_band = False
        self.vb = _ViewBox(self)
        self.time_axis = TimeAxis()
        self.row_axis = _RowAxis(self)
        self.plot = self.addPlot(viewBox=self.vb, axisItems={"bottom": self.time_axis, "left": self.row_axis})
        self.plot.hideButtons()
        self.plot.showGrid(x=True, y=False, alpha=0.15)
        self.image = pg.ImageItem()
        self.plot.addItem(self.image)
        self.markers: dict[str, pg.InfiniteLine] = {}
        for name, color in (("A", (0, 140, 0)), ("B", (200, 0, 0))):
            # the label sits on a white box with the marker's colour, readable over any row
            line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(color, width=2), label=name,
                                   labelOpts={"position": 0.97, "color": color, "fill": pg.mkBrush(255, 255, 255, 235),
                                              "border": pg.mkPen(color, width=1.5), "anchors": [(0.5, 1), (0.5, 1)]})
            line.label.setFont(_bold_font())
            line.label.setZValue(30)
            line.setZValue(25)
            line.setVisible(False)
            self.plot.addItem(line, ignoreBounds=True)
            self.markers[name] = line
        self.highlight = pg.LinearRegionItem(orientation="horizontal", movable=False,
                                             brush=pg.mkBrush(255, 215, 0, 50), pen=pg.mkPen(None))
        self.highlight.setVisible(False)
        self.highlight.setZValue(-10)
        self.plot.addItem(self.highlight, ignoreBounds=True)
        self.vscroll = QtWidgets.QScrollBar(QtCore.Qt.Orientation.Vertical)
        self.vscroll.setSingleStep(ROW_PX)
        self.vscroll.valueChanged.connect(self._apply_rows_view)
        self.vscroll_box = QtWidgets.QWidget()
        box = QtWidgets.QVBoxLayout(self.vscroll_box)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.vscroll)
        self.last: RenderResult | None = None
        self.layers: list = []
        """Items drawn over the rows (analysis boxes, field plots): told the rows and window of
        each render through ``set_view(rows, first, count, t0, t1, npix)``."""
        self.render_ms: list[float] = []
        self._full = (0, 1)
        self._timer = QtCore.QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self.redraw)
        self.vb.sigXRangeChanged.connect(self._on_range)
        self.vb.sigResized.connect(self._apply_rows_view)
        self.scene().sigMouseMoved.connect(self._on_move)
        self.scene().sigMouseClicked.connect(self._on_click)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        self.model.rows_changed.connect(self.rows_changed)
        self.state.events.range.connect(self._show_range)
        self.state.events.marker.connect(self._show_marker)
        for name, ts in self.state.markers.items():
            self._show_marker(name, ts)
        if self.state.range is not None:
            self._show_range(*self.state.range)

    # -- data -------------------------------------------------------------------------------
    def set_full_range(self, t0: int, t1: int) -> None:
        """The span of all loaded data: zoom-to-fit target and pan limit."""
        self._full = (int(t0), max(int(t1), int(t0) + MIN_SPAN_NS))
        pad = (self._full[1] - self._full[0]) * 0.02
        self.vb.setLimits(xMin=(self._full[0] - pad) / NS, xMax=(self._full[1] + pad) / NS,
                          minXRange=MIN_SPAN_NS / NS)

    def rows_changed(self) -> None:
        """The model's rows changed: new labels, scroll extent; the highlight's indices are stale."""
        self.row_axis.set_labels([r.label for r in self.model.rows])
        self.model.highlight_pid = None
        self.highlight.setVisible(False)
        self._apply_rows_view()
        self.schedule()

    # -- vertical layout: fixed row height, scrolled ------------------------------------------------
    def visible_rows(self) -> tuple[float, float]:
        """The rows on screen as a range in row units (top, bottom); bottom may exceed the rows."""
        top = self.vscroll.value() / ROW_PX
        return top, top + max(1.0, self.vb.height()) / ROW_PX

    def _apply_rows_view(self, *_) -> None:
        """Put the view's y range where the scroll bar says, at :data:`ROW_PX` per row."""
        h = max(1, int(self.vb.height()))
        total = len(self.model.rows) * ROW_PX
        sb = self.vscroll
        sb.blockSignals(True)
        sb.setRange(0, max(0, total - h))
        sb.setPageStep(h)
        sb.blockSignals(False)
        sb.setVisible(total > h)
        r = self.mapFromScene(self.vb.sceneBoundingRect()).boundingRect()
        self.vscroll_box.layout().setContentsMargins(0, max(0, r.top()), 0, max(0, self.height() - r.bottom() - 1))
        top, bottom = self.visible_rows()
        y0, y1 = self.vb.viewRange()[1]
        if abs(y0 - top) > 1e-6 or abs(y1 - bottom) > 1e-6:
            self.vb.setYRange(top, bottom, padding=0)
            self.schedule()

    def scroll_rows(self, rows: float) -> None:
        """Scroll by ``rows`` rows (negative: up)."""
        self.vscroll.setValue(self.vscroll.value() + int(round(rows * ROW_PX)))

    def scroll_wheel(self, delta: float) -> None:
        """A wheel turn scrolls three rows per notch, as text views do."""
        self.scroll_rows(-3 * delta / 120)

    def ensure_rows_visible(self, rows: list[int]) -> None:
        """Scroll the least so that ``rows`` are on screen (their first row if all cannot be)."""
        if not rows:
            return
        lo, hi = min(rows) * ROW_PX, (max(rows) + 1) * ROW_PX
        v, h = self.vscroll.value(), max(1, int(self.vb.height()))
        if lo < v or hi - lo > h:
            self.vscroll.setValue(lo)
        elif hi > v + h:
            self.vscroll.setValue(hi - h)

    # -- navigation -------------------------------------------------------------------------
    def view_range(self) -> tuple[int, int]:
        (x0, x1), _ = self.vb.viewRange()
        return int(round(x0 * NS)), int(round(x1 * NS))

    def set_range(self, t0: int, t1: int) -> None:
        if t1 - t0 < MIN_SPAN_NS:
            mid = (t0 + t1) // 2
            t0, t1 = mid - MIN_SPAN_NS // 2, mid + MIN_SPAN_NS // 2
        self.vb.setXRange(t0 / NS, t1 / NS, padding=0)

    def full_range(self) -> tuple[int, int]:
        """The span of all loaded data (ns), as :meth:`set_full_range` widened it: zoom to fit shows it."""
        return self._full

    def zoom_to_fit(self) -> None:
        """All of the time range; the rows back at their fixed height (the scroll position stays)."""
        self.vb.band.setVisible(False)
        self.set_range(*self.full_range())
        self._apply_rows_view()

    def zoom(self, factor: float, center_ns: int | None = None) -> None:
        """Zoom by ``factor`` (>1 zooms in) around ``center_ns`` (default: window centre)."""
        t0, t1 = self.view_range()
        c = (t0 + t1) / 2 if center_ns is None else center_ns
        half0, half1 = (c - t0) / factor, (t1 - c) / factor
        span = half0 + half1
        full = self._full[1] - self._full[0]
        if span > full * 1.04:
            return self.zoom_to_fit()
        self.set_range(int(c - half0), int(c + half1))

    def pan(self, fraction: float) -> None:
        t0, t1 = self.view_range()
        d = int((t1 - t0) * fraction)
        self.set_range(t0 + d, t1 + d)

    def keyPressEvent(self, ev: QtGui.QKeyEvent) -> None:  # noqa: N802
        key = QtCore.Qt.Key
        if ev.isAutoRepeat() and ev.key() in (key.Key_Plus, key.Key_Minus, key.Key_Equal):
            ev.accept()
            return
        k = ev.key()
        page = max(1, int(self.vb.height() // ROW_PX) - 1)
        if k in (key.Key_Plus, key.Key_Equal):
            self.zoom(2.0)
        elif k == key.Key_Minus:
            self.zoom(0.5)
        elif k == key.Key_Left:
            self.pan(-0.25)
        elif k == key.Key_Right:
            self.pan(0.25)
        elif k == key.Key_Home:
            self.zoom_to_fit()
        elif k in (key.Key_Up, key.Key_Down):
            self.scroll_rows(-1 if k == key.Key_Up else 1)
        elif k in (key.Key_PageUp, key.Key_PageDown):
            self.scroll_rows(-page if k == key.Key_PageUp else page)
        else:
            super().keyPressEvent(ev)
            return
        ev.accept()

    # -- rendering --------------------------------------------------------------------------
    def _on_range(self, *_):
        t0, t1 = self.view_range()
        self.time_axis.set_window(t0, t1)
        self.schedule()
        self.state.set_range(t0, t1)
        self.rangeChanged.emit(t0, t1)

    def _show_range(self, t0: int, t1: int) -> None:
        """The state's range moved: show it (unless it is what is shown)."""
        if (t0, t1) != self.view_range():
            self.set_range(t0, t1)

    def schedule(self) -> None:
        self._timer.start()

    def pixel_width(self) -> int:
        return max(16, int(self.vb.width()))

    def redraw(self) -> None:
        """Render the rows on screen at the view's pixel width (cost ~ pixels x rows on screen)."""
        if not self.model.rows:
            self.image.clear()
            self.last = None
            for layer in self.layers:
                layer.set_view([], 0, 0, 0, 1, 1)
            return
        t0, t1 = self.view_range()
        top, bottom = self.visible_rows()
        first = max(0, int(math.floor(top)))
        count = max(1, min(len(self.model.rows), int(math.ceil(bottom))) - first)
        start = time.perf_counter()
        res = self.model.render(t0, t1, self.pixel_width(), first, count)
        self.image.setImage(paint(res), autoLevels=False, levels=(0, 255))
        self.image.setRect(QtCore.QRectF(t0 / NS, first, (res.t1 - t0) / NS, res.kind.shape[0] / SUBROWS))
        self.last = res
        for layer in self.layers:
            layer.set_view(self.model.rows, first, count, t0, res.t1, res.npix)
        self.render_ms.append((time.perf_counter() - start) * 1e3)
        del self.render_ms[:-200]

    def add_layer(self, item) -> None:
        """Draw ``item`` over the rows; it follows every render (see :attr:`layers`)."""
        self.plot.addItem(item, ignoreBounds=True)
        self.layers.append(item)
        self.schedule()

    # -- markers and highlight ---------------------------------------------------------------
    def set_marker(self, name: str, ts: int | None) -> None:
        """Put marker ``name`` at ``ts`` (None: remove it), in the view state."""
        self.state.set_marker(name, ts)

    def _show_marker(self, name: str, ts: int | None) -> None:
        line = self.markers[name]
        if ts is None:
            line.setVisible(False)
            return
        line.setValue(ts / NS)
        line.setVisible(True)

    def highlight_rows(self, rows: list[int]) -> None:
        if not rows:
            self.highlight.setVisible(False)
            return
        self.highlight.setRegion((min(rows), max(rows) + 1 - 1 / SUBROWS))
        self.highlight.setVisible(True)

    # -- pointer ----------------------------------------------------------------------------
    def _row_at(self, scene_pos) -> int | None:
        """The row under a scene point, over the plot or its label."""
        r = self.vb.sceneBoundingRect()
        if not (r.top() <= scene_pos.y() <= r.bottom() and scene_pos.x() <= r.right()):
            return None
        row = int(np.floor(self.vb.mapSceneToView(scene_pos).y()))
        return row if 0 <= row < len(self.model.rows) else None

    def _at(self, scene_pos) -> tuple[int, int] | None:
        if not self.vb.sceneBoundingRect().contains(scene_pos):
            return None
        row = self._row_at(scene_pos)
        if row is None:
            return None
        return row, int(round(self.vb.mapSceneToView(scene_pos).x() * NS))

    def _on_move(self, pos) -> None:
        at = self._at(pos)
        if at is None:
            return
        row, ts = at
        self.hovered.emit(self.describe(row, ts))

    def describe(self, row: int, ts: int) -> str:
        """What is under the pointer: row, time, and what the row shows there."""
        r = self.model.rows[row]
        text = f"{r.label}  @ {seconds_text(ts)}"
        if r.intervals is not None and len(r.intervals.start):
            key = int(r.intervals.at(np.array([ts]))[0])
            if key >= 0:
                if r.color_by == "state":
                    text += f"  state: {STATE_ORDER[key] if key < len(STATE_ORDER) else key}"
                elif r.color_by == "cpu":
                    text += f"  on CPU {key - 1}"
                elif r.kind == "vcpu_host":
                    text += "  on a host CPU"
                else:
                    text += f"  running: {self.model.src.names(r.stream, key)}-{key}"
        if r.events is not None and len(r.events):
            t0, t1 = self.view_range()
            near = r.events.nearest(ts, 4 * (t1 - t0) / self.pixel_width())
            if near is not None:
                text += f"  event at {seconds_text(near)}"
        if r.data is not None and hasattr(r.data, "describe"):  # an analysis row (a field plot): its value
            t0, t1 = self.view_range()
            text += r.data.describe(ts, 4 * (t1 - t0) / self.pixel_width())
        if r.lost is not None and len(r.lost):  # the red marks: say what they are
            t0, t1 = self.view_range()
            lost = lost_near(self.model.session, r.stream, r.cpu, ts, int(4 * (t1 - t0) / self.pixel_width()))
            if lost:
                known = sum(c for _, c in lost if c >= 0)
                what = lost_text(known if all(c >= 0 for _, c in lost) else -1)
                text += f"  {what}: the ring buffer was full, the kernel lost events here"
        self.setToolTip(text)
        return text

    def _on_click(self, ev) -> None:
        if ev.button() == QtCore.Qt.MouseButton.RightButton:
            row = self._row_at(ev.scenePos())
            if row is not None:
                ev.accept()
                self.row_menu(row).popup(ev.screenPos().toPoint())
            return
        if ev.button() != QtCore.Qt.MouseButton.LeftButton:
            return
        at = self._at(ev.scenePos())
        if at is None:
            return
        row, ts = at
        if ev.double():
            self.timeDoubleClicked.emit(row, ts)
        else:
            self.rowClicked.emit(row, ts)

    def row_menu(self, row: int) -> QtWidgets.QMenu:
        """The context menu of a row (right-click on the row or its label)."""
        menu = QtWidgets.QMenu(self)
        label = self.model.rows[row].label
        act = menu.addAction(f"Remove row \"{label}\"")
        act.triggered.connect(lambda: self.model.remove_row(row))
        self.rowMenuAboutToShow.emit(row, menu)  # the window adds what it offers for this row
        return menu


def _bold_font() -> QtGui.QFont:
    f = QtGui.QFont()
    f.setBold(True)
    return f
