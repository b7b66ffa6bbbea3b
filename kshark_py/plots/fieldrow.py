"""A numeric event field as its own timeline row (KernelShark's event_field_plot).

A field row is a :class:`~kshark_py.model.viewmodel.Row` of kind ``field`` whose ``data`` is a
:class:`FieldSeries`; the image renderer draws its event ticks (where the records are) and
:class:`FieldRowLayer` draws the values over the row's body, scaled from the smallest to the
largest value in the window (an outlier elsewhere in the trace does not flatten what is on
screen); the scale's two ends are printed at the row's left edge.

Per render the layer reduces each field row on screen to a min and a max per pixel column
(:func:`~kshark_py.model.analysis.fieldplot.minmax_bins` over the records in the window, found by
bisection of the sorted times) and draws each column as KernelShark draws a value, a bar standing
on zero (pale), with its min..max span in full colour: a zoomed-out row of ten million records
costs two segments per pixel column and still shows every spike.  Zoomed in, each record is also
a dot.  Records are not joined by lines: two records of a field say nothing about the time
between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui

from ..model.analysis.fieldplot import minmax_bins
from ..model.viewmodel import Row
from .axes import seconds_text

NS = 1e9
TOP, BOTTOM = 0.26, 0.86
"""Where the largest and the smallest value sit inside a row, in row units."""
HALF_PX = 0.5 / 40
"""Half a pixel in row units (rows are 40 px): a column whose min equals its max is a 1 px dash."""
DOT_DENSITY = 0.125
"""Dots for the records when fewer than this share of the pixel columns hold one."""


def value_text(v: float) -> str:
    """A field value, short: integers as integers, with k/M/G past 10,000."""
    a = abs(v)
    for div, unit, least in ((1e9, "G", 1e9), (1e6, "M", 1e6), (1e3, "k", 1e4)):
        if a >= least:
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

    @staticmethod
    def y(v: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
        """Offset inside the row (row units, downwards) of values ``v`` on a ``vmin..vmax`` scale."""
        if vmax <= vmin:
            return np.full(np.shape(v), (TOP + BOTTOM) / 2)
        return BOTTOM - (np.asarray(v, np.float64) - vmin) / (vmax - vmin) * (BOTTOM - TOP)

    def describe(self, ts: int, within: float) -> str:
        """The value of the record nearest ``ts`` (within ``within`` ns), for the status bar."""
        i = int(np.searchsorted(self.ts, ts))
        cand = [k for k in (i - 1, i) if 0 <= k < len(self.ts)]
        if not cand:
            return ""
        k = min(cand, key=lambda k: abs(int(self.ts[k]) - ts))
        if abs(int(self.ts[k]) - ts) > within:
            return f"  {self.field}: {value_text(self.vmin)} .. {value_text(self.vmax)}"
        return f"  {self.field} = {self.values[k]} at {seconds_text(int(self.ts[k]), 9)}"


def _segments(x: np.ndarray, y0: np.ndarray, y1: np.ndarray) -> QtGui.QPainterPath:
    """One vertical segment per x, from y0 to y1, as one path."""
    return pg.arrayToQPath(np.repeat(x, 2), np.column_stack([y0, y1]).ravel(), connect="pairs")


class FieldRowLayer(pg.GraphicsObject):
    """Draws every field row on screen (see the module doc); the timeline calls :meth:`set_view`."""

    def __init__(self, color: tuple[int, int, int] = (31, 100, 200), parent=None) -> None:
        super().__init__(parent)
        self.color = QtGui.QColor(*color)
        self.stem_color = QtGui.QColor(*color, 90)
        self.path = QtGui.QPainterPath()
        """Each column's min..max, in full colour."""
        self.stems = QtGui.QPainterPath()
        """Each column's bar from zero up to its min, pale: heights read as in a bar chart."""
        self.dots = QtGui.QPolygonF()
        self.columns: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        """Row index -> (pixel columns, lo, hi) of the current view: what the rows show (tests)."""
        self.scales: list[tuple[float, float, str, str]] = []
        """(x, row, top text, bottom text): each field row's scale, drawn at the view's left edge."""
        self._bounds = QtCore.QRectF()
        self.setZValue(11)

    def set_view(self, rows: list[Row], first: int, count: int, t0: int, t1: int, npix: int) -> None:
        xs, lows, highs, bases, dx, dy = [], [], [], [], [], []
        self.columns = {}
        self.scales = []
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
                # the scale fits the window, and holds 0: bars stand on zero as in a bar chart
                vmin, vmax = min(float(lo[col].min()), 0.0), max(float(hi[col].max()), 0.0)
                self.scales.append((t0 / NS, i, value_text(vmax), value_text(vmin)))
                xs.append((t0 + (col + 0.5) * px) / NS)
                lows.append(i + s.y(lo[col], vmin, vmax) + HALF_PX)
                highs.append(i + s.y(hi[col], vmin, vmax) - HALF_PX)
                bases.append(i + s.y(np.zeros(len(col)), vmin, vmax))
                if len(col) < npix * DOT_DENSITY and len(ts) <= npix:  # zoomed in: every record a dot
                    dx.append(ts / NS)
                    dy.append(i + s.y(v, vmin, vmax))
        self.prepareGeometryChange()
        if xs:
            x, lo_y, hi_y, base_y = (np.concatenate(a) for a in (xs, lows, highs, bases))
            self.stems = _segments(x, base_y, lo_y)
            self.path = _segments(x, lo_y, hi_y)
            self._bounds = QtCore.QRectF(t0 / NS, first, (t1 - t0) / NS, count + 1)
        else:
            self.stems = self.path = QtGui.QPainterPath()
            self._bounds = QtCore.QRectF()
        self.dots = QtGui.QPolygonF([QtCore.QPointF(a, b) for a, b in
                                     zip(np.concatenate(dx).tolist(), np.concatenate(dy).tolist(), strict=True)]) \
            if dx else QtGui.QPolygonF()
        self.update()

    def boundingRect(self) -> QtCore.QRectF:  # noqa: N802
        return self._bounds

    def paint(self, p: QtGui.QPainter, *_args) -> None:
        p.setBrush(QtCore.Qt.BrushStyle.NoBrush)
        stem = QtGui.QPen(self.stem_color, 1)
        stem.setCosmetic(True)
        p.setPen(stem)
        p.drawPath(self.stems)
        pen = QtGui.QPen(self.color, 1.5)
        pen.setCosmetic(True)
        p.setPen(pen)
        p.drawPath(self.path)
        if self.dots.size():
            dot = QtGui.QPen(self.color, 4)
            dot.setCosmetic(True)
            dot.setCapStyle(QtCore.Qt.PenCapStyle.RoundCap)
            p.save()  # in device pixels: points under the view's huge x scale stroke as lines
            dev = p.transform().map(self.dots)
            p.resetTransform()
            p.setPen(dot)
            p.drawPoints(dev)
            p.restore()
        if self.scales:  # the row's value range, in screen pixels at its left edge
            tr = p.transform()
            p.save()
            p.resetTransform()
            p.setPen(QtGui.QPen(self.color.darker(130)))
            f = p.font()
            f.setPointSizeF(7.5)
            p.setFont(f)
            for x, row, top, bottom in self.scales:
                a, b = tr.map(QtCore.QPointF(x, row + TOP)), tr.map(QtCore.QPointF(x, row + BOTTOM))
                p.drawText(QtCore.QPointF(a.x() + 3, a.y() + 3), top)
                p.drawText(QtCore.QPointF(b.x() + 3, b.y()), bottom)
            p.restore()
