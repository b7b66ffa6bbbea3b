"""Bar charts of the analysis panels: stacked horizontal bars (where a VCPU's time went); with one
segment per bar, a histogram over named categories (VM exit reasons).  Names stay readable on
the left axis however long they are (EPT_VIOLATION, EXTERNAL_INTERRUPT ...).

Each chart is one ``BarGraphItem`` (pyqtgraph batches its rectangles), built from the numbers the
panel computed: the chart keeps no copy of model state beyond what it draws, and a click is
answered from the segment edges with ``searchsorted``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui


@dataclass
class Segment:
    """One piece of a stacked bar."""

    label: str
    value: float
    color: tuple[int, int, int]
    key: object = None
    """What the panel needs to answer a click on it (opaque to the chart)."""


class _LabelAxis(pg.AxisItem):
    """An axis whose ticks are the bars' names at integer positions."""

    def __init__(self, orientation: str) -> None:
        super().__init__(orientation)
        self.names: list[str] = []

    def set_names(self, names: list[str]) -> None:
        self.names = list(names)
        self.setTicks([[(i, n) for i, n in enumerate(self.names)]])
        if self.orientation == "left":  # wide enough for the longest name (a wider label is not drawn)
            fm = QtGui.QFontMetrics(self.style.get("tickFont") or QtGui.QFont())
            self.setWidth(max((fm.horizontalAdvance(n) for n in self.names), default=20) + 14)


class StackedBars(pg.PlotWidget):
    """One horizontal stacked bar per item (top to bottom); :attr:`segmentClicked` (bar, segment)."""

    segmentClicked = QtCore.Signal(int, int)

    def __init__(self, unit: str = "ms", scale: float = 1e-6, parent=None) -> None:
        self.axis = _LabelAxis("left")
        super().__init__(parent, background="w", axisItems={"left": self.axis})
        self.unit, self.scale = unit, scale
        self.decimals = 0 if scale == 1 else 3
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.getViewBox().invertY(True)
        self.setLabel("bottom", unit)
        self.getAxis("bottom").enableAutoSIPrefix(False)
        self.item: pg.BarGraphItem | None = None
        self.bars: list[list[Segment]] = []
        self.edges: list[np.ndarray] = []
        """Per bar: segment edges in the chart's unit, ``len(segments) + 1`` values from 0."""
        self.selected: tuple[int, int] | None = None
        self.scene().sigMouseClicked.connect(self._on_click)
        self.scene().sigMouseMoved.connect(self._on_move)

    def set_bars(self, names: list[str], bars: list[list[Segment]]) -> None:
        self.bars = [list(b) for b in bars]
        self.edges = [np.r_[0.0, np.cumsum([s.value * self.scale for s in b])] for b in self.bars]
        self.axis.set_names(names)
        self.selected = None
        self._draw()
        longest = max((float(e[-1]) for e in self.edges), default=0.0)
        self.setXRange(0, max(longest, 1e-9) * 1.02, padding=0)
        self.setYRange(-0.6, max(len(self.bars), 1) - 0.4, padding=0)

    def _draw(self) -> None:
        if self.item is not None:
            self.removeItem(self.item)
            self.item = None
        x0, w, y, brushes, pens = [], [], [], [], []
        for i, (b, e) in enumerate(zip(self.bars, self.edges, strict=True)):
            for j, s in enumerate(b):
                x0.append(e[j])
                w.append(e[j + 1] - e[j])
                y.append(i)
                brushes.append(pg.mkBrush(*s.color))
                sel = self.selected == (i, j)
                pens.append(pg.mkPen((0, 0, 0), width=3) if sel else pg.mkPen((255, 255, 255), width=1))
        if not x0:
            return
        self.item = pg.BarGraphItem(x0=np.array(x0), width=np.array(w), y=np.array(y, float), height=0.7,
                                    brushes=brushes, pens=pens)
        self.addItem(self.item)

    def select(self, bar: int, segment: int | None) -> None:
        """Outline one segment (None: none)."""
        self.selected = None if segment is None else (bar, segment)
        self._draw()

    def segment_at(self, x: float, y: float) -> tuple[int, int] | None:
        """(bar, segment) at chart coordinates, None between bars."""
        i = int(round(y))
        if not 0 <= i < len(self.bars) or abs(y - i) > 0.35:
            return None
        e = self.edges[i]
        j = int(np.searchsorted(e, x, side="right")) - 1
        return (i, j) if 0 <= j < len(self.bars[i]) else None

    def _hit(self, scene_pos) -> tuple[int, int] | None:
        vb = self.getViewBox()
        if not vb.sceneBoundingRect().contains(scene_pos):
            return None
        p = vb.mapSceneToView(scene_pos)
        return self.segment_at(p.x(), p.y())

    def _on_click(self, ev) -> None:
        if ev.button() != QtCore.Qt.MouseButton.LeftButton:
            return
        hit = self._hit(ev.scenePos())
        if hit is not None:
            ev.accept()
            self.select(*hit)
            self.segmentClicked.emit(*hit)

    def _on_move(self, pos) -> None:
        hit = self._hit(pos)
        if hit is None:
            self.setToolTip("")
            return
        s = self.bars[hit[0]][hit[1]]
        total = self.edges[hit[0]][-1]
        share = s.value * self.scale / total * 100 if total else 0.0
        self.setToolTip(f"{self.axis.names[hit[0]]}: {s.label}  {s.value * self.scale:,.{self.decimals}f} {self.unit}"
                        f" ({share:.1f}%)")

