"""The list's search bar (KernelShark's "Search: Column [..] [contains] [text] [Next] [Prev]").

Event, Task, PID and CPU searches are answered for the whole (filtered) list at once: the predicate
runs on the few distinct values of the column (event names, task names, pids, CPUs), a lookup table
maps the answer back onto the events, and ``np.flatnonzero`` gives every matching row; Next/Prev then
are binary searches in that array, and the counter shows "k/N".

Info text only exists once rendered, so an Info search renders rows in chunks from the current row
onward on the event loop (a zero-delay timer, ~15 ms of work per turn), stops at the first hit, and
never freezes the window, even on 17 million rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QWidget,
)

from ..model.filters import MATCH_MODES, map_values, merged_gather, stream_column, text_matcher

if TYPE_CHECKING:
    from .eventlist import EventListView, EventTableModel

SEARCH_COLUMNS = ("Event", "Task", "Info", "PID", "CPU")
SEARCH_MIN_WIDTH = 180
"""The text field never gets narrower than this (the other controls give way first)."""
INFO_BUDGET_S = 0.015
"""Time an Info search may spend per event-loop turn (then the window gets to repaint and react)."""
INFO_STEP = 64
"""Rows rendered between two looks at the clock."""


def value_mask(col: np.ndarray, pred: Callable[[int], bool]) -> np.ndarray:
    """bool per element of an int column: ``pred`` runs once per distinct value (bincount, no sort)."""
    return map_values(col, lambda uniq: np.array([bool(pred(int(v))) for v in uniq.tolist()], bool)).astype(bool)


def column_mask(model: EventTableModel, column: str, mode: str, text: str) -> np.ndarray:
    """bool per merged event: does ``column`` match ``text`` in ``mode`` (not for Info)."""
    pred = text_matcher(text, mode)
    streams = model.session.streams
    if column == "Task":
        return model.tasks.match(text, mode)
    per_stream: list[np.ndarray | None] = []
    for st in streams:
        if column == "Event":
            fmts = st.trace.formats

            def ev_pred(eid: int, fmts=fmts) -> bool:
                ev = fmts.get(eid)
                return pred(ev.name if ev else "(NULL)")

            per_stream.append(value_mask(stream_column(st, "event_id"), ev_pred))
        elif column == "PID":
            per_stream.append(value_mask(stream_column(st, "pid"), lambda v: pred(str(v))))
        elif column == "CPU":
            per_stream.append(value_mask(stream_column(st, "cpu"), lambda v: pred(str(v))))
        else:
            raise ValueError(f"column {column!r} is not searchable in bulk")
    return merged_gather(model.merged, per_stream)


class SearchBar(QWidget):
    """Column chooser, mode, text, Next/Prev, a match counter and "Graph follows".

    ``matchFound(row)`` is emitted with the table row of each hit (after the list selected it).
    """

    matchFound = Signal(int)

    def __init__(self, view: EventListView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self.column = QComboBox(self)
        self.column.addItems(SEARCH_COLUMNS)
        self.column.setToolTip("The column to search")
        self.mode = QComboBox(self)
        self.mode.addItems(MATCH_MODES)
        self.text = QLineEdit(self)
        self.text.setPlaceholderText("search text")
        self.text.setClearButtonEnabled(True)
        self.text.setMinimumWidth(SEARCH_MIN_WIDTH)
        self.prev_button = QPushButton("Prev", self)
        self.next_button = QPushButton("Next", self)
        for b in (self.prev_button, self.next_button):  # as wide as their text, not the style's 80 px
            b.setMinimumWidth(b.fontMetrics().horizontalAdvance(b.text()) + 20)
            b.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
            b.setMaximumWidth(b.minimumWidth())
        self.counter = QLabel("", self)
        self.counter.setMinimumWidth(self.counter.fontMetrics().horizontalAdvance("searching… 100%") + 4)
        self.graph_follows = QCheckBox("Graph follows", self)
        self.graph_follows.setChecked(True)
        self.graph_follows.setToolTip("Move the graph's marker to each match")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 2, 4, 2)
        lay.addWidget(QLabel("Search:", self))
        lay.addWidget(self.column)
        lay.addWidget(self.mode)
        lay.addWidget(self.text, 1)
        lay.addWidget(self.prev_button)
        lay.addWidget(self.next_button)
        lay.addWidget(self.counter)
        lay.addWidget(self.graph_follows)
        self._matches: np.ndarray | None = None
        self._key: tuple | None = None
        self._job: dict | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._info_step)
        self.next_button.clicked.connect(self.find_next)
        self.prev_button.clicked.connect(self.find_prev)
        self.text.returnPressed.connect(self.find_next)
        self.text.textChanged.connect(self._invalidate)
        self.column.currentIndexChanged.connect(self._invalidate)
        self.mode.currentIndexChanged.connect(self._invalidate)

    # ---- query ------------------------------------------------------------------------------
    def set_query(self, column: str, text: str, mode: str = "contains") -> None:
        """Set the three inputs (as a user would)."""
        self.column.setCurrentText(column)
        self.mode.setCurrentText(mode)
        self.text.setText(text)

    def focus(self) -> None:
        """Ctrl+F: put the cursor in the text field, text selected."""
        self.text.setFocus()
        self.text.selectAll()

    @property
    def busy(self) -> bool:
        """An Info search is running."""
        return self._job is not None

    def _invalidate(self) -> None:
        self.cancel()
        self._matches = None
        self._key = None
        self.counter.setText("")

    def cancel(self) -> None:
        """Stop a running Info search."""
        self._timer.stop()
        self._job = None

    def matches(self) -> np.ndarray | None:
        """Table rows matching the current query (ascending), or None for Info (found lazily)."""
        column, mode, text = self.column.currentText(), self.mode.currentText(), self.text.text()
        if column == "Info" or not text:
            return None
        model = self.view.model
        key = (column, mode, text, model.generation)
        if self._key != key:
            full = column_mask(model, column, mode, text)
            rows = model.visible_rows()
            self._matches = np.flatnonzero(full if rows is None else full[rows])
            self._key = key
        return self._matches

    # ---- navigation -------------------------------------------------------------------------
    def _current_row(self) -> int:
        cur = self.view.table.currentIndex()
        return cur.row() if cur.isValid() else -1

    def find_next(self) -> None:
        self._find(+1)

    def find_prev(self) -> None:
        self._find(-1)

    def _find(self, direction: int) -> None:
        if not self.text.text():
            return
        self.cancel()
        if self.column.currentText() == "Info":
            self._start_info(direction)
            return
        hits = self.matches()
        if hits is None or len(hits) == 0:
            self._show_count("no match", error=True)
            return
        cur = self._current_row()
        wrapped = False
        if direction > 0:
            i = int(np.searchsorted(hits, cur, side="right"))
            if i >= len(hits):
                i, wrapped = 0, True
        else:
            i = int(np.searchsorted(hits, cur, side="left")) - 1
            if i < 0:
                i, wrapped = len(hits) - 1, cur >= 0
        self._show_count(f"{i + 1}/{len(hits)}" + (" (wrapped)" if wrapped else ""))
        self._land(int(hits[i]))

    def _land(self, row: int) -> None:
        self.view.select_row(row, emit=self.graph_follows.isChecked())
        self.matchFound.emit(row)

    def _show_count(self, text: str, *, error: bool = False) -> None:
        self.counter.setText(text)
        self.counter.setStyleSheet("color: #b00020;" if error else "")

    # ---- Info: incremental ----------------------------------------------------------------------
    def _start_info(self, direction: int) -> None:
        model = self.view.model
        n = model.rowCount()
        if n == 0:
            self._show_count("no match", error=True)
            return
        cur = self._current_row()
        start = (cur + 1 if direction > 0 else cur - 1) if cur >= 0 else (0 if direction > 0 else n - 1)
        self._job = {"dir": direction, "row": start % n, "left": n if cur < 0 else n - 1, "n": n,
                     "pred": text_matcher(self.text.text(), self.mode.currentText()), "gen": model.generation,
                     "origin": cur}
        self._show_count("searching…")
        self._timer.start()

    def _info_step(self) -> None:
        job = self._job
        model = self.view.model
        if job is None or job["gen"] != model.generation:
            self.cancel()
            return
        pred, d, n = job["pred"], job["dir"], job["n"]
        row = job["row"]
        deadline = time.monotonic() + INFO_BUDGET_S
        while job["left"] > 0 and time.monotonic() < deadline:
            for _ in range(min(INFO_STEP, job["left"])):
                text = model.info(model.merged_index(row), cache=False)
                job["left"] -= 1
                if pred(text):
                    self.cancel()
                    wrapped = (d > 0 and row <= job["origin"]) or (d < 0 and row >= job["origin"] >= 0)
                    self._show_count(f"row {row + 1}" + (" (wrapped)" if wrapped else ""))
                    self._land(row)
                    return
                row = (row + d) % n
        job["row"] = row
        if job["left"] <= 0:
            self.cancel()
            self._show_count("no match", error=True)
            return
        done = 100 * (n - job["left"]) // max(1, n)
        self._show_count(f"searching… {done}%")
