"""The list's search bar (KernelShark's "Search: Column [..] [contains] [text] [Next] [Prev]").

Event, Task, PID and CPU searches are answered for the whole (filtered) list at once: the model's
:func:`kshark_py.model.search.column_mask` says which events match, and ``np.flatnonzero`` gives every
matching row; Next/Prev then are binary searches in that array, and the counter shows "k/N".

Info text only exists once rendered, so an Info search renders blocks of rows from the current row
onward (:class:`kshark_py.model.infotext.BlockInfo`: the block's texts as one Arrow array, built per
event type with array operations, then ``pyarrow.compute.match_substring``), one block per turn of
the event loop (~250 ms of work, a zero-delay timer), stops at the first hit, shows its progress, and
can be cancelled (Esc, or any change of the query); the window never freezes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
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

from ..model.infotext import match_mask
from ..model.search import column_mask
from ..model.taskindex import MATCH_MODES, text_matcher

if TYPE_CHECKING:
    from .eventtable import EventTableModel

SEARCH_COLUMNS = ("Event", "Task", "Info", "PID", "CPU")
SEARCH_MIN_WIDTH = 180
"""The text field never gets narrower than this (the other controls give way first)."""
INFO_BUDGET_S = 0.25
"""Time an Info search aims to spend per block (then the window gets to repaint and react)."""
INFO_FIRST_BLOCK = 4096
INFO_MAX_BLOCK = 1 << 20
"""Rows per Info block: the first is small (a hit near the current row comes at once), later ones
grow towards INFO_BUDGET_S of work, up to this."""


class SearchBar(QWidget):
    """Column chooser, mode, text, Next/Prev, a match counter and "Graph follows".

    It knows the list only through the table model and two callbacks: ``select(row, emit=...)``
    selects a table row (``emit``: the graph follows), ``current_row()`` is the current row or -1.
    ``matchFound(row)`` is emitted with the table row of each hit (after the list selected it).
    """

    matchFound = Signal(int)

    def __init__(self, model: EventTableModel, select: Callable[..., None], current_row: Callable[[], int],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self._select = select
        self._current_row = current_row
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

    def stop(self) -> None:
        """Esc: cancel a running Info search and say so."""
        if self.busy:
            self.cancel()
            self._show_count("cancelled")

    def matches(self) -> np.ndarray | None:
        """Table rows matching the current query (ascending), or None for Info (found lazily)."""
        column, mode, text = self.column.currentText(), self.mode.currentText(), self.text.text()
        if column == "Info" or not text:
            return None
        model = self.model
        key = (column, mode, text, model.generation)
        if self._key != key:
            full = column_mask(model.session, model.merged, model.tasks, column, mode, text)
            rows = model.visible_rows()
            self._matches = model.table_rows(np.flatnonzero(full if rows is None else full[rows]))
            self._key = key
        return self._matches

    # ---- navigation -------------------------------------------------------------------------
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
        self._select(row, emit=self.graph_follows.isChecked())
        self.matchFound.emit(row)

    def _show_count(self, text: str, *, error: bool = False) -> None:
        self.counter.setText(text)
        self.counter.setStyleSheet("color: #b00020;" if error else "")

    # ---- Info: a block at a time ---------------------------------------------------------------
    def _start_info(self, direction: int) -> None:
        model = self.model
        n = model.rowCount()
        if n == 0:
            self._show_count("no match", error=True)
            return
        cur = self._current_row()
        start = (cur + 1 if direction > 0 else cur - 1) if cur >= 0 else (0 if direction > 0 else n - 1)
        self._job = {"dir": direction, "row": start % n, "left": n if cur < 0 else n - 1, "n": n,
                     "text": self.text.text(), "mode": self.mode.currentText(), "gen": model.generation,
                     "origin": cur, "block": INFO_FIRST_BLOCK, "t0": time.monotonic()}
        self._show_count("searching…")
        self._timer.start()

    def _info_step(self) -> None:
        """One block: render its info texts vectorized, match them, land on the first hit."""
        job = self._job
        model = self.model
        if job is None or job["gen"] != model.generation:
            self.cancel()
            return
        d, n, row = job["dir"], job["n"], job["row"]
        size = min(job["block"], job["left"])
        rows = (row + d * np.arange(size)) % n
        t = time.monotonic()
        hit = np.flatnonzero(self._info_hits(rows, job["text"], job["mode"]))
        took = time.monotonic() - t
        job["rendered"] = job.get("rendered", 0) + size
        if len(hit):
            found = int(rows[hit[0]])
            self.cancel()
            wrapped = (d > 0 and found <= job["origin"]) or (d < 0 and found >= job["origin"] >= 0)
            lost = model.lost_index(found) >= 0
            where = "lost events" if lost else f"# {model.merged_index(found)}"  # as the # column says
            self._show_count(where + (" (wrapped)" if wrapped else ""))
            self._land(found)
            return
        job["left"] -= size
        job["row"] = int((row + d * size) % n)
        if job["left"] <= 0:
            self.cancel()
            self._show_count("no match", error=True)
            return
        # aim at ~INFO_BUDGET_S per block: the window repaints and takes input between blocks
        job["block"] = int(min(INFO_MAX_BLOCK, max(INFO_FIRST_BLOCK, size * INFO_BUDGET_S / max(took, 1e-3))))
        done = 100 * (n - job["left"]) // max(1, n)
        self._show_count(f"searching… {done}%")

    def _info_hits(self, rows: np.ndarray, text: str, mode: str) -> np.ndarray:
        """bool per table row of ``rows``: does its info text match (loss rows: their text)."""
        model = self.model
        merged, is_lost = model.row_targets(rows)
        out = np.zeros(len(rows), bool)
        ev = np.flatnonzero(~is_lost)
        if len(ev):
            m = merged[ev]
            stream = np.asarray(model.merged.stream[m])
            srow = np.asarray(model.merged.row[m])
            for si in np.unique(stream).tolist():
                sel = np.flatnonzero(stream == si)
                try:
                    texts = model.block_info(si).render(srow[sel])
                except Exception:  # noqa: BLE001 (a format the block renderer trips on: row by row, as the list)
                    texts = pa.array([model.info(int(k), cache=False) for k in m[sel].tolist()], pa.string())
                out[ev[sel]] = match_mask(texts, text, mode)
        pred = text_matcher(text, mode)
        for k in np.flatnonzero(is_lost).tolist():
            out[k] = pred(model.info_at(int(rows[k])))
        return out
