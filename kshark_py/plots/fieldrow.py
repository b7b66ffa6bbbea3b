"""A numeric event field as its own timeline row (KernelShark's event_field_plot).

A field row is a :class:`~kshark_py.model.viewmodel.Row` of kind ``field`` whose ``data`` is a
:class:`FieldSeries`; the image renderer draws its event ticks (where the records are) and
:class:`FieldRowLayer` draws the values over the row's body, scaled from the field's smallest to
its largest value over the whole trace (a zoom does not rescale the row, so heights compare).

Per render the layer reduces each field row on screen to a min and a max per pixel column
(:func:`~kshark_py.model.analysis.fieldplot.minmax_bins` over the records in the window, found by
bisection of the sorted times) and draws them as one path, max of a column joined to the min of
the next, as pyqtgraph's "peak" downsampling does: a zoomed-out row of ten million records costs
a few thousand points and still shows every spike.  Zoomed in, each record is also a dot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui

from ..model.analysis.fieldplot import minmax_bins
from ..model.viewmodel import Row
from .axes import format_time

NS = 1e9
TOP, BOTTOM = 0.26, 0.86
"""Where the largest and the smallest value sit inside a row, in row units."""
DOT_DENSITY = 0.125
"""Dots for the records when fewer than this share of the pixel columns hold one."""


def value_text(v: float) -> str:
    """A field value, short: integers as integers, with k/M/G past 10,000."""
    a = abs(v)
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= 10 * div:
            return f"{v / div:.3g}{unit}"
    return f"{int(v)}" if float(v).is_integer() else f"{v:.4g}"


@dataclass
class FieldSeries:
    """One stream's ``event.field`` values over time, sorted by time (host clock, ns)."""

    stream: int
    event: str
    field: str
    ts: np.ndarray
    values: np.ndarray
    vmin: float = field(init=False)
    vmax: float = field(init=False)

    def __post_init__(self) -> None:
        ts = np.asarray(self.ts, np.int64)
        v = np.asarray(self.values)
        if len(ts) > 1 and (ts[1:] < ts[:-1]).any():  # CPUs interleave out of order: sort once
            o = np.argsort(ts, kind="stable")
            ts, v = ts[o], v[o]
        self.ts, self.values = ts, v
        self.vmin = float(v.min()) if len(v) else 0.0
        self.vmax = float(v.max()) if len(v) else 0.0

    def window(self, t0: int, t1: int) -> slice:
        """The records in ``[t0, t1]``."""
        return slice(int(np.searchsorted(self.ts, t0, "left")), int(np.searchsorted(self.ts, t1, "right")))

    def y(self, v: np.ndarray) -> np.ndarray:
        """Offset inside the row (row units, downwards) of values ``v``."""
        span = self.vmax - self.vmin
        if span <= 0:
            return np.full(np.shape(v), (TOP + BOTTOM) / 2)
        return BOTTOM - (np.asarray(v, np.float64) - self.vmin) / span * (BOTTOM - TOP)

    def describe(self, ts: int, within: float) -> str:
        """The value of the record nearest ``ts`` (within ``within`` ns), for the status bar."""
        i = int(np.searchsorted(self.ts, ts))
        cand = [k for k in (i - 1, i) if 0 <= k < len(self.ts)]
        if not cand:
            return ""
        k = min(cand, key=lambda k: abs(int(self.ts[k]) - ts))
        if abs(int(self.ts[k]) - ts) > within:
            return f"  {self.field}: {value_text(self.vmin)} .. {value_text(self.vmax)}"
        return f"  {self.field} = {self.values[k]} at {format_time(int(self.ts[k]), 9)}"


class FieldRowLayer(pg.GraphicsObject):
    """Draws every field row on screen (see the module doc); the timeline calls :meth:`set_view`."""

    def __init__(self, color: tuple[int, int, int] = (31, 100, 200), parent=None) -> None:
        super().__init__(parent)
        self.color = QtGui.QColor(*color)
        self.path = QtGui.QPainterPath()
        self.dots = QtGui.QPolygonF()
        self.columns: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        """Row index -> (pixel columns, lo, hi) of the current view: what the rows show (tests)."""
        self._bounds = QtCore.QRectF()
        self.setZValue(11)

    def set_view(self, rows: list[Row], first: int, count: int, t0: int, t1: int, npix: int) -> None:
        xs, ys, dx, dy = [], [], [], []
        self.columns = {}
        if t1 > t0 and npix > 0:
            px = (t1 - t0) / npix
            for i in range(first, min(len(rows), first + count)):
                s = rows[i].data
                if rows[i].kind != "field" or not isinstance(s, FieldSeries):
                    continue
                w = s.window(t0, t1)
                ts, v = s.ts[w], s.values[w]
                if not len(ts):
                    continue
                _, lo, hi = minmax_bins(ts, v, t0, t1, npix)
                col = np.flatnonzero(~np.isnan(lo))
                self.columns[i] = (col, lo[col], hi[col])
                x = (t0 + (col + 0.5) * px) / NS
                xs.append(np.repeat(x, 2))
                ys.append(i + s.y(np.column_stack([lo[col], hi[col]]).ravel()))
                if len(col) < npix * DOT_DENSITY and len(ts) <= npix:  # zoomed in: every record a dot
                    dx.append(ts / NS)
                    dy.append(i + s.y(v))
        self.prepareGeometryChange()
        if xs:
            self.path = self._joined(xs, ys)
            self._bounds = QtCore.QRectF(t0 / NS, first, (t1 - t0) / NS, count + 1)
        else:
            self.path = QtGui.QPainterPath()
            self._bounds = QtCore.QRectF()
        self.dots = QtGui.QPolygonF([QtCore.QPointF(a, b) for a, b in
                                     zip(np.concatenate(dx).tolist(), np.concatenate(dy).tolist(), strict=True)]) \
            if dx else QtGui.QPolygonF()
        self.update()

    @staticmethod
    def _joined(xs: list[np.ndarray], ys: list[np.ndarray]) -> QtGui.QPainterPath:
        """One path per row (lo..hi of each column, joined column to column), rows not joined."""
        x = np.concatenate(xs)
        y = np.concatenate(ys)
        connect = np.ones(len(x), bool)
        ends = np.cumsum([len(a) for a in xs]) - 1
        connect[ends] = False
        return pg.arrayToQPath(x, y, connect=connect)

    def boundingRect(self) -> QtCore.QRectF:  # noqa: N802
        return self._bounds

    def paint(self, p: QtGui.QPainter, *_args) -> None:
        pen = QtGui.QPen(self.color, 1.5)
        pen.setCosmetic(True)
        p.setPen(pen)
        p.setBrush(QtCore.Qt.BrushStyle.NoBrush)
        p.drawPath(self.path)
        if self.dots.size():
            dot = QtGui.QPen(self.color, 5)
            dot.setCosmetic(True)
            dot.setCapStyle(QtCore.Qt.PenCapStyle.RoundCap)
            p.setPen(dot)
            p.drawPoints(self.dots)
