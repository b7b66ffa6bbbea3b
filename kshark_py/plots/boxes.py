"""Latency boxes over timeline rows, drawn as KernelShark's plugins draw them.

KernelShark's sched_events plugin frames a task's wakeup latency (``sched_waking`` -> the
``sched_switch`` that puts it on a CPU) as an outlined green box along the bottom of the task's
graph, 30 % of its height, from the waking's bin to the switch's bin (``makeLatencyBox``); its
latency_plot plugin marks start -> end event pairs on CPU and task graphs.  :class:`BoxLayer`
draws both kinds: one layer per analysis, each with its colour and its band of the row.

Drawing cost follows pixels, not intervals: after each render the timeline tells every layer
which rows are on screen and the time window at N pixel columns (:meth:`BoxLayer.set_view`).  Per
row the layer finds the intervals overlapping the window with two binary searches, snaps them to
pixel columns and merges the ones that would touch, so Qt gets at most one rectangle per pixel
column per row however many wakeups the row holds; ``paint()`` issues one ``drawRects``.
The timeline's coordinates are seconds on x and row units on y (row i spans [i, i+1)).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import internals
from PySide6 import QtCore, QtGui

from ..model.viewmodel import Row

NS = 1e9
MIN_PX = 2
"""Narrowest box on screen, in pixels: a 1 µs latency stays visible when zoomed out."""


@dataclass
class BoxLane:
    """The intervals (ns, host clock) one row frames, sorted by start."""

    start: np.ndarray
    end: np.ndarray
    end_max: np.ndarray = field(init=False)
    """Running maximum of ``end``: sorted, so the first interval reaching past t0 is a bisection."""

    def __post_init__(self) -> None:
        self.start = np.asarray(self.start, np.int64)
        self.end = np.asarray(self.end, np.int64)
        self.end_max = np.maximum.accumulate(self.end) if len(self.end) else self.end

    @classmethod
    def of(cls, start: np.ndarray, end: np.ndarray) -> BoxLane:
        """A lane from unsorted intervals."""
        start = np.asarray(start, np.int64)
        o = np.argsort(start, kind="stable")
        return cls(start[o], np.asarray(end, np.int64)[o])

    def __len__(self) -> int:
        return len(self.start)

    def pixel_spans(self, t0: int, t1: int, npix: int, min_px: int = MIN_PX) -> tuple[np.ndarray, np.ndarray]:
        """Pixel columns ``[x0, x1)`` of the boxes to draw in ``[t0, t1]`` at ``npix`` columns:
        intervals outside are dropped, every box is at least ``min_px`` wide, boxes that would
        touch or overlap are merged (so there are at most ``npix`` of them)."""
        if not len(self.start) or t1 <= t0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        a = int(np.searchsorted(self.end_max, t0, side="left"))
        b = int(np.searchsorted(self.start, t1, side="right"))
        if b <= a:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        scale = npix / (t1 - t0)
        x0 = np.floor((self.start[a:b] - t0) * scale)
        x1 = np.ceil((self.end[a:b] - t0) * scale)
        x0 = np.clip(x0, -min_px, npix).astype(np.int64)
        x1 = np.clip(np.maximum(x1, x0 + min_px), 0, npix + min_px).astype(np.int64)
        reach = np.maximum.accumulate(x1)
        new = np.ones(len(x0), bool)
        new[1:] = x0[1:] > reach[:-1]
        first = np.flatnonzero(new)
        last = np.r_[first[1:] - 1, len(x0) - 1]
        return x0[first], reach[last]

    def at(self, ts: int) -> int | None:
        """Index of an interval containing ``ts`` (the one that starts last), or None."""
        i = int(np.searchsorted(self.start, ts, side="right")) - 1
        while i >= 0 and self.end_max[i] >= ts:
            if self.end[i] >= ts:
                return i
            i -= 1
        return None


class _RectBatch:
    """Rectangles for one ``QPainter.drawRects`` call, written from numpy.

    pyqtgraph's ``PrimitiveArray`` (internal API, as BarGraphItem uses it) hands Qt one C array
    instead of a Python list of QRectF; it is wrapped here so a pyqtgraph upgrade breaks one place."""

    def __init__(self) -> None:
        self._arr = internals.PrimitiveArray(QtCore.QRectF, 4)

    def set(self, x: np.ndarray, y: np.ndarray, w: np.ndarray, h: np.ndarray) -> None:
        self._arr.resize(len(x))
        if len(x):
            m = self._arr.ndarray()
            m[:, 0], m[:, 1], m[:, 2], m[:, 3] = x, y, w, h

    def __len__(self) -> int:
        return len(self._arr)

    def draw(self, p: QtGui.QPainter) -> None:
        if len(self._arr):
            p.drawRects(*self._arr.drawargs())


class BoxLayer(pg.GraphicsObject):
    """Outlined boxes on the rows ``lanes`` gives intervals for (see the module doc).

    ``lanes(row)`` returns the row's :class:`BoxLane` or None; it is asked for the rows on screen
    at each render, so it should answer from a cache (a dict lookup)."""

    def __init__(self, color: tuple[int, int, int], band: tuple[float, float] = (0.62, 0.9),
                 fill_alpha: int = 60, parent=None) -> None:
        super().__init__(parent)
        self.color = QtGui.QColor(*color)
        self.fill = QtGui.QColor(*color, fill_alpha)
        self.band = band
        """Top and bottom of the boxes inside a row, in row units (row body: 0.2 .. 0.9)."""
        self.lanes: Callable[[Row], BoxLane | None] | None = None
        self._rects = _RectBatch()
        self._spans: list[tuple[int, np.ndarray, np.ndarray]] = []
        self._bounds = QtCore.QRectF()
        self._last_view: tuple | None = None
        self.setZValue(12)

    def set_source(self, lanes: Callable[[Row], BoxLane | None] | None) -> None:
        """New intervals (None: draw nothing); shown at the next :meth:`set_view` (or at once if
        the layer has seen a view)."""
        self.lanes = lanes
        if self._last_view is not None:
            self.set_view(*self._last_view)

    def set_view(self, rows: list[Row], first: int, count: int, t0: int, t1: int, npix: int) -> None:
        """The timeline rendered rows ``first .. first+count`` over ``[t0, t1]`` at ``npix``
        columns: rebuild the rectangles for those rows (cost ~ pixels x rows on screen)."""
        self._last_view = (rows, first, count, t0, t1, npix)
        spans = []
        if self.lanes is not None and t1 > t0:
            for i in range(first, min(len(rows), first + count)):
                lane = self.lanes(rows[i])
                if lane is None or not len(lane):
                    continue
                x0, x1 = lane.pixel_spans(t0, t1, npix)
                if len(x0):
                    spans.append((i, x0, x1))
        self._spans = spans
        self.prepareGeometryChange()
        if spans:
            px = (t1 - t0) / npix / NS
            x = np.concatenate([s[1] for s in spans]) * px + t0 / NS
            w = np.concatenate([s[2] - s[1] for s in spans]) * px
            y = np.concatenate([np.full(len(s[1]), s[0] + self.band[0]) for s in spans])
            self._rects.set(x, y, w, np.full(len(x), self.band[1] - self.band[0]))
            self._bounds = QtCore.QRectF(t0 / NS - 4 * px, first, (t1 - t0) / NS + 8 * px, count + 1)
        else:
            self._rects.set(*(np.zeros(0),) * 4)
            self._bounds = QtCore.QRectF()
        self.update()

    def drawn(self) -> dict[int, list[tuple[int, int]]]:
        """Row index -> pixel spans ``(x0, x1)`` drawn for the current view (what the user sees)."""
        return {i: list(zip(a.tolist(), b.tolist(), strict=True)) for i, a, b in self._spans}

    def box_count(self) -> int:
        return len(self._rects)

    def boundingRect(self) -> QtCore.QRectF:  # noqa: N802
        return self._bounds

    def paint(self, p: QtGui.QPainter, *_args) -> None:
        if not len(self._rects):
            return
        pen = QtGui.QPen(self.color, 1.5)
        pen.setCosmetic(True)
        p.setPen(pen)
        p.setBrush(self.fill)
        self._rects.draw(p)
