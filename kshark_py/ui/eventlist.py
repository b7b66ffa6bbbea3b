"""The event list pane: the search bar over a table of events (KernelShark's list view).

The rows come from :class:`kshark_py.ui.eventtable.EventTableModel`; this module holds the widget:
selection without ping-pong with the graph, the context menu, and the keys that reach the search
bar (:class:`kshark_py.ui.search.SearchBar`, which gets the table model and a select callback).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt, Signal
from PySide6.QtGui import QAction, QFontMetricsF, QKeySequence, QShortcut
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QMenu, QTableView, QVBoxLayout, QWidget

from ..model.filters import Filters
from ..model.session import Session
from ..model.taskindex import TaskIndex
from .eventtable import COL, EventTableModel
from .search import SearchBar


class _EventTable(QTableView):
    """The list's table. Qt's type-ahead (``keyboardSearch``) matches the typed text against every
    row's cell with ``model.match``: on millions of events that renders each row's info text and
    freezes the window for minutes. Typing in the list goes to the search box instead."""

    typed = Signal(str)

    def keyboardSearch(self, search: str) -> None:  # noqa: N802 (Qt's name)
        if search.strip():
            self.typed.emit(search)


class EventListView(QWidget):
    """The list pane: search bar over a table of events.

    Signals: ``rowSelected(merged_index, ts)`` when the user selects a row (the graph puts the active
    marker there); ``taskPlotRequested(stream, pid)`` from the context menu.  Slots
    :meth:`select_time` / :meth:`select_merged_index` scroll to and select an event without emitting
    ``rowSelected`` (unless asked), so graph and list cannot ping-pong.
    """

    rowSelected = Signal("qint64", "qint64")
    taskPlotRequested = Signal(int, int)
    menuAboutToShow = Signal("qint64", object)  # merged index, QMenu: the window adds its own actions

    def __init__(self, session: Session, filters: Filters | None = None, tasks: TaskIndex | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.filters = filters
        self.model = EventTableModel(session, filters, tasks, self)
        self.table = _EventTable(self)
        self.table.setModel(self.model)
        self._quiet = False
        self._setup_table()
        self.search_bar = SearchBar(self.model, self.select_row, self._current_row, self)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.search_bar)
        lay.addWidget(self.table)
        self.table.selectionModel().currentRowChanged.connect(self._on_current)
        self.table.typed.connect(self._type_into_search)
        QShortcut(QKeySequence(QKeySequence.StandardKey.Find), self, self.search_bar.focus)
        QShortcut(QKeySequence(QKeySequence.StandardKey.FindNext), self, self.search_bar.find_next)
        QShortcut(QKeySequence(QKeySequence.StandardKey.FindPrevious), self, self.search_bar.find_prev)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self.search_bar, self.search_bar.stop)
        self.model.modelAboutToBeReset.connect(self._remember)
        self.model.modelReset.connect(self._restore)
        self._kept: int | None = None

    def _type_into_search(self, text: str) -> None:
        """Text typed while the table has the focus starts a search (as in a browser's find bar)."""
        self.search_bar.focus()
        self.search_bar.text.setText(text)

    def _setup_table(self) -> None:
        t = self.table
        t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        t.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        t.setWordWrap(False)
        t.setShowGrid(False)
        t.setAlternatingRowColors(True)
        t.setTextElideMode(Qt.TextElideMode.ElideRight)
        t.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerItem)
        t.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        vh = t.verticalHeader()
        vh.setVisible(False)
        # fixed, uniform row heights: Qt then never measures rows it does not paint
        vh.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vh.setDefaultSectionSize(t.fontMetrics().height() + 4)
        vh.setMinimumSectionSize(1)
        hh = t.horizontalHeader()
        hh.setStretchLastSection(True)
        hh.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        hh.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        hh.setHighlightSections(False)
        fm = t.fontMetrics()
        mono = QFontMetricsF(self.model._mono).horizontalAdvance
        m = self.model
        n = max(1, len(m.merged))
        names = [st.name for st in m.session.streams] or ["host"]
        # the names, not the formats: iterating those parses every format of the kernel (~0.8 s)
        ev_names = [name for st in m.session.streams for _sys, name in st.trace.formats.by_name] or ["sched_switch"]
        samples = {
            "#": "8" * len(str(n)), "Stream": max(names, key=len), "CPU": "CPU", "Task": "kworker/u16:12-ev",
            "PID": "8888888", "Event": max(ev_names, key=len)[:28],
        }
        pad = 18
        for name, text in samples.items():
            t.setColumnWidth(COL[name], max(fm.horizontalAdvance(text), fm.horizontalAdvance(name)) + pad)
        t.setColumnWidth(COL["Time"], int(mono("88888.888888888" if m.nsec else "88888.888888") + pad))
        t.setColumnWidth(COL["Latency"], int(max(mono("dNh2."), fm.horizontalAdvance("Latency"))) + pad)
        t.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        t.customContextMenuRequested.connect(self._context_menu)

    # ---- selection ----------------------------------------------------------------------
    def _on_current(self, cur: QModelIndex, _prev: QModelIndex) -> None:
        if self._quiet or not cur.isValid():
            return
        m = self.model.merged_index(cur.row())
        self.rowSelected.emit(m, int(self.model.merged.ts[m]))

    def _current_row(self) -> int:
        cur = self.table.currentIndex()
        return cur.row() if cur.isValid() else -1

    def current_merged_index(self) -> int | None:
        """The merged index of the selected row, if any."""
        cur = self.table.currentIndex()
        return self.model.merged_index(cur.row()) if cur.isValid() else None

    def select_row(self, row: int, *, emit: bool = False) -> None:
        """Select table row ``row`` and scroll it to the middle of the view."""
        if not 0 <= row < self.model.rowCount():
            return
        idx = self.model.index(row, 0)
        self._quiet = not emit
        try:
            self.table.selectionModel().setCurrentIndex(
                idx, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        finally:
            self._quiet = False
        self.table.scrollTo(idx, QAbstractItemView.ScrollHint.PositionAtCenter)

    def select_merged_index(self, merged_index: int, *, emit: bool = False) -> int:
        """Select ``merged_index`` (or the nearest visible event); returns the table row or -1."""
        row = self.model.nearest_row(int(merged_index))
        self.select_row(row, emit=emit)
        return row

    def select_time(self, ts: int, *, emit: bool = False) -> int:
        """Select the visible event nearest to time ``ts`` (the graph's double-click)."""
        row = self.model.row_at_time(int(ts))
        self.select_row(row, emit=emit)
        return row

    def keep_place(self, merged_index: int, selected: bool) -> None:
        """Show the event the user had in a list before this one (the loading window's): selected,
        or scrolled to the top."""
        if selected:
            self.select_merged_index(merged_index)
            return
        row = self.model.nearest_row(int(merged_index))
        if row >= 0:
            self.table.scrollTo(self.model.index(row, 0), QAbstractItemView.ScrollHint.PositionAtTop)

    def _remember(self) -> None:
        self._kept = self.current_merged_index()

    def _restore(self) -> None:
        if self._kept is not None:
            self.select_merged_index(self._kept)
        self._kept = None

    # ---- context menu ----------------------------------------------------------------------
    def _context_menu(self, pos: Any) -> None:
        idx = self.table.indexAt(pos)
        if not idx.isValid():
            return
        menu = self.build_context_menu(self.model.merged_index(idx.row()))
        if menu is not None:
            menu.exec(self.table.viewport().mapToGlobal(pos))

    def build_context_menu(self, merged_index: int) -> QMenu | None:
        """KernelShark's quick context menu for one event: show/hide its task, CPU, event; add a task plot."""
        m = self.model
        s, _, _, cpu, pid, eid, _, _ = m.event_fields(merged_index)
        comm = m.tasks.comm(s, pid)
        ev = m.event_name(s, eid)
        menu = QMenu(self)
        f = self.filters

        def act(text: str, fn: Callable[[], None]) -> None:
            a = QAction(text, menu)
            a.triggered.connect(fn)
            menu.addAction(a)

        if f is not None:
            act(f"Show only task {comm}-{pid}", lambda: f.set(s, "task", "show", [pid]))
            act(f"Hide task {comm}-{pid}", lambda: f.add(s, "task", "hide", pid))
            act(f"Show only CPU {cpu}", lambda: f.set(s, "cpu", "show", [cpu]))
            act(f"Hide CPU {cpu}", lambda: f.add(s, "cpu", "hide", cpu))
            act(f"Show only event {ev}", lambda: f.set(s, "event", "show", [eid]))
            act(f"Hide event {ev}", lambda: f.add(s, "event", "hide", eid))
            menu.addSeparator()
            act("Clear all filters", f.clear)
            menu.addSeparator()
        act(f"Add a plot for task {comm}-{pid}", lambda: self.taskPlotRequested.emit(s, pid))
        self.menuAboutToShow.emit(merged_index, menu)
        return menu

