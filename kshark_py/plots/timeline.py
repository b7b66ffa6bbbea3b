"""The timeline plot: every row as one image from the visualization model, plus markers.

Navigation follows KernelShark with bounded steps: wheel zooms around the pointer, drag pans,
Ctrl+drag (or the rubber-band button) zooms to a selection, +/- zoom by x2 per key press (auto
repeat ignored, so a held key cannot run away), arrows pan by 1/4 window, Home zooms to fit.
A range change only schedules a re-render (coalesced with a zero-delay timer), and the render cost
follows the pixel width, not the number of events.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui

from ..model.viewmodel import SUBROWS, RenderResult, TimelineModel
from .axes import RowAxis, TimeAxis, format_time

NS = 1e9
MIN_SPAN_NS = 1_000  # never zoom below 1 µs across the whole view


class _ViewBox(pg.ViewBox):
    """x-only navigation; Ctrl+left-drag draws a rubber band."""

    def __init__(self, owner: TimelineWidget) -> None:
        super().__init__(enableMenu=False)
        self.owner = owner
        self.setMouseEnabled(x=True, y=False)
        self.invertY(True)

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802
        if ev.button() == QtCore.Qt.MouseButton.LeftButton and (
                ev.modifiers() & QtCore.Qt.KeyboardModifier.ControlModifier or self.owner.rubber_band):
            self.setMouseMode(pg.ViewBox.RectMode)
            try:
                super().mouseDragEvent(ev, axis)
            finally:
                self.setMouseMode(pg.ViewBox.PanMode)
            return
        super().mouseDragEvent(ev, axis)

    def wheelEvent(self, ev, axis=None):  # noqa: N802
        super().wheelEvent(ev, axis=0)


class TimelineWidget(pg.GraphicsLayoutWidget):
    """Rows of CPUs, tasks and VCPU pairs between two times; emits what the user points at."""

    rangeChanged = QtCore.Signal(object, object)  # t0, t1 in ns (Qt ints are 32-bit)
    rowClicked = QtCore.Signal(int, object)  # row index, time ns
    timeDoubleClicked = QtCore.Signal(int, object)  # row index, time ns
    hovered = QtCore.Signal(str)

    def __init__(self, model: TimelineModel, parent=None) -> None:
        super().__init__(parent)
        self.model = model
        self.rubber_band = False
        self.vb = _ViewBox(self)
        self.time_axis = TimeAxis()
        self.row_axis = RowAxis()
        self.plot = self.addPlot(viewBox=self.vb, axisItems={"bottom": self.time_axis, "left": self.row_axis})
        self.plot.hideButtons()
        self.plot.showGrid(x=True, y=False, alpha=0.15)
        self.image = pg.ImageItem()
        self.plot.addItem(self.image)
        self.markers: dict[str, pg.InfiniteLine] = {}
        for name, color in (("A", (0, 160, 0)), ("B", (200, 0, 0))):
            line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(color, width=2),
                                   label=name, labelOpts={"position": 0.02, "color": color})
            line.setVisible(False)
            self.plot.addItem(line)
            self.markers[name] = line
        self.highlight = pg.LinearRegionItem(orientation="horizontal", movable=False,
                                             brush=pg.mkBrush(255, 215, 0, 50), pen=pg.mkPen(None))
        self.highlight.setVisible(False)
        self.highlight.setZValue(-10)
        self.plot.addItem(self.highlight)
        self.last: RenderResult | None = None
        self.render_ms: list[float] = []
        self._full = (0, 1)
        self._timer = QtCore.QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self.redraw)
        self.vb.sigXRangeChanged.connect(self._on_range)
        self.scene().sigMouseMoved.connect(self._on_move)
        self.scene().sigMouseClicked.connect(self._on_click)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)

    # -- data -------------------------------------------------------------------------------
    def set_full_range(self, t0: int, t1: int) -> None:
        """The span of all loaded data: zoom-to-fit target and pan limit."""
        self._full = (int(t0), max(int(t1), int(t0) + MIN_SPAN_NS))
        pad = (self._full[1] - self._full[0]) * 0.02
        self.vb.setLimits(xMin=(self._full[0] - pad) / NS, xMax=(self._full[1] + pad) / NS,
                          minXRange=MIN_SPAN_NS / NS, yMin=-0.2, yMax=max(1, len(self.model.rows)) + 0.2)

    def rows_changed(self) -> None:
        self.row_axis.set_labels([r.label for r in self.model.rows])
        n = max(1, len(self.model.rows))
        self.vb.setLimits(yMin=-0.2, yMax=n + 0.2)
        self.vb.setYRange(0, n, padding=0.01)
        self.schedule()

    # -- navigation -------------------------------------------------------------------------
    def view_range(self) -> tuple[int, int]:
        (x0, x1), _ = self.vb.viewRange()
        return int(round(x0 * NS)), int(round(x1 * NS))

    def set_range(self, t0: int, t1: int) -> None:
        if t1 - t0 < MIN_SPAN_NS:
            mid = (t0 + t1) // 2
            t0, t1 = mid - MIN_SPAN_NS // 2, mid + MIN_SPAN_NS // 2
        self.vb.setXRange(t0 / NS, t1 / NS, padding=0)

    def zoom_to_fit(self) -> None:
        self.set_range(*self._full)

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
        if ev.isAutoRepeat() and ev.key() in (QtCore.Qt.Key.Key_Plus, QtCore.Qt.Key.Key_Minus,
                                              QtCore.Qt.Key.Key_Equal):
            ev.accept()
            return
        k = ev.key()
        if k in (QtCore.Qt.Key.Key_Plus, QtCore.Qt.Key.Key_Equal):
            self.zoom(2.0)
        elif k == QtCore.Qt.Key.Key_Minus:
            self.zoom(0.5)
        elif k == QtCore.Qt.Key.Key_Left:
            self.pan(-0.25)
        elif k == QtCore.Qt.Key.Key_Right:
            self.pan(0.25)
        elif k == QtCore.Qt.Key.Key_Home:
            self.zoom_to_fit()
        else:
            super().keyPressEvent(ev)
            return
        ev.accept()

    # -- rendering --------------------------------------------------------------------------
    def _on_range(self, *_):
        self.schedule()
        self.rangeChanged.emit(*self.view_range())

    def schedule(self) -> None:
        self._timer.start()

    def pixel_width(self) -> int:
        return max(16, int(self.vb.width()))

    def redraw(self) -> None:
        """Render the visible window at the view's pixel width (cost ~ pixels x rows)."""
        import time

        if not self.model.rows:
            self.image.clear()
            return
        t0, t1 = self.view_range()
        start = time.perf_counter()
        res = self.model.render(t0, t1, self.pixel_width())
        self.image.setImage(res.image, autoLevels=False, levels=(0, 255))
        self.image.setRect(QtCore.QRectF(t0 / NS, 0, (res.t1 - t0) / NS, len(self.model.rows)))
        self.last = res
        self.render_ms.append((time.perf_counter() - start) * 1e3)
        del self.render_ms[:-200]

    # -- markers and highlight ---------------------------------------------------------------
    def set_marker(self, name: str, ts: int | None) -> None:
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
    def _at(self, scene_pos) -> tuple[int, int] | None:
        if not self.vb.sceneBoundingRect().contains(scene_pos):
            return None
        p = self.vb.mapSceneToView(scene_pos)
        row = int(np.floor(p.y()))
        if not 0 <= row < len(self.model.rows):
            return None
        return row, int(round(p.x() * NS))

    def _on_move(self, pos) -> None:
        at = self._at(pos)
        if at is None:
            return
        row, ts = at
        self.hovered.emit(self.describe(row, ts))

    def describe(self, row: int, ts: int) -> str:
        """What is under the pointer: row, time, and what the row shows there."""
        r = self.model.rows[row]
        text = f"{r.label}  @ {format_time(ts)}"
        if r.intervals is not None and len(r.intervals.start):
            key = int(r.intervals.at(np.array([ts]))[0])
            if key >= 0:
                if r.color_by == "state":
                    from ..model.viewmodel import STATE_ORDER

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
                text += f"  event at {format_time(near)}"
        self.setToolTip(text)
        return text

    def _on_click(self, ev) -> None:
        at = self._at(ev.scenePos())
        if at is None:
            return
        row, ts = at
        if ev.double():
            self.timeDoubleClicked.emit(row, ts)
        else:
            self.rowClicked.emit(row, ts)
