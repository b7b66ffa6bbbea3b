"""Tools > SQL console: DuckDB queries over the window's session, in a dock (issue 13).

The tables are those of ``kshark-py sql`` (:mod:`kshark_py.model.sqltables`, through
:class:`kshark_py.api.TraceSession` over the window's own session: the same merge, time offsets
and VCPU map).  A query runs off the GUI thread (:class:`~.analysisrange.Worker`); its result is
shown by a virtual table model: Qt asks for the cells on screen only, and each is read from the
Arrow columns then, so a result of millions of rows costs no Python object per row.

A result with a ``ts`` column (else ``start``) is a list of moments: a click on a row puts the
active marker there, centres the graph on it and selects that event in the list (the event of
that stream and CPU at that time when the result says which).  "Show on graph" frames every row
on the CPU row of its stream and ``cpu`` (or the task row of its ``pid``), from ``ts`` to ``end``
when the result has an ``end`` column.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from PySide6 import QtCore, QtGui, QtWidgets

from ..loaders.text import display
from .analysisrange import GraphMarks, Lane, Worker, go_to, row_spec

Qt = QtCore.Qt

TIME_COLUMNS = ("ts", "start")
"""The column a click jumps to, first found wins."""
EXAMPLE = "SELECT event, count(*) AS n FROM events GROUP BY event ORDER BY n DESC"


def cell_text(v: object) -> str:
    """A value as the grid shows it: bytes (a comm) decoded for showing, None empty."""
    if v is None:
        return ""
    if isinstance(v, bytes):
        return display(v.decode("utf-8", "surrogateescape"))
    return str(v)


class ResultModel(QtCore.QAbstractTableModel):
    """A read-only grid over an Arrow table, each cell read when Qt paints it."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.table = pa.table({})
        self._cols: list[pa.Array] = []
        self._numeric: list[bool] = []

    def set_table(self, table: pa.Table) -> None:
        self.beginResetModel()
        self.table = table
        self._cols = [c.combine_chunks() for c in table.columns]
        self._numeric = [pa.types.is_integer(c.type) or pa.types.is_floating(c.type) for c in self._cols]
        self.endResetModel()

    def rowCount(self, parent=None) -> int:  # noqa: N802
        return 0 if parent is not None and parent.isValid() else self.table.num_rows

    def columnCount(self, parent=None) -> int:  # noqa: N802
        return 0 if parent is not None and parent.isValid() else self.table.num_columns

    def headerData(self, section: int, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return self.table.column_names[section] if 0 <= section < self.table.num_columns else None
        return str(section + 1)

    def data(self, index: QtCore.QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return cell_text(self._cols[index.column()][index.row()].as_py())
        if role == Qt.ItemDataRole.TextAlignmentRole and self._numeric[index.column()]:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def value(self, row: int, name: str) -> object:
        """The value of column ``name`` in ``row`` (None when the result has no such column)."""
        i = self.table.schema.get_field_index(name)
        return None if i < 0 else self._cols[i][row].as_py()


class SqlConsole(QtWidgets.QWidget):
    """Query editor, Run, Show on graph, a status line and the result grid, for one main window."""

    def __init__(self, window, parent=None) -> None:
        super().__init__(parent)
        self.w = window
        self._api = None
        self._api_key = None
        self.result: pa.Table | None = None
        self.worker = Worker(cache_size=4, parent=self)
        self.worker.ready.connect(self._show)
        self.worker.failed.connect(self._failed)
        self.marks = GraphMarks(window.timeline, window.model, color=(190, 0, 150))
        self.editor = QtWidgets.QPlainTextEdit(EXAMPLE)
        self.editor.setFont(QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont))
        self.editor.setMaximumHeight(self.editor.fontMetrics().height() * 6)
        self.editor.setToolTip("DuckDB SQL over events, one table per event name (sched_switch, ...), runs, vcpus, "
                               "vcpu_states, time_sync, wakeups, wakeup_stats, vm_exits, exit_stats, guest_entries, "
                               "vcpu_time. Ctrl+Return runs it. Times are ns on the host clock.")
        QtGui.QShortcut(QtGui.QKeySequence("Ctrl+Return"), self.editor, self.run)
        self.run_button = QtWidgets.QPushButton("Run")
        self.run_button.clicked.connect(self.run)
        self.graph_button = QtWidgets.QPushButton("Show on graph")
        self.graph_button.setToolTip("Frame the result's rows on the graph (needs ts, and cpu or pid; end if any)")
        self.graph_button.clicked.connect(self.show_on_graph)
        clear = QtWidgets.QPushButton("Clear marks")
        clear.clicked.connect(self.marks.clear)
        self.status = QtWidgets.QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.model = ResultModel(self)
        self.grid = QtWidgets.QTableView()
        self.grid.setModel(self.model)
        self.grid.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.grid.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.grid.verticalHeader().setDefaultSectionSize(self.grid.fontMetrics().height() + 6)
        self.grid.horizontalHeader().setStretchLastSection(True)
        self.grid.clicked.connect(lambda idx: self.jump(idx.row()))
        self.grid.activated.connect(lambda idx: self.jump(idx.row()))
        buttons = QtWidgets.QHBoxLayout()
        for b in (self.run_button, self.graph_button, clear):
            buttons.addWidget(b)
        buttons.addStretch(1)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(self.editor)
        lay.addLayout(buttons)
        lay.addWidget(self.status)
        lay.addWidget(self.grid, 1)
        self._update_buttons()

    # ---- running ---------------------------------------------------------------------------------
    def api(self):
        """The window's session as a :class:`~kshark_py.api.TraceSession`; a new one after a time
        offset or a VCPU map change (its tables were built from the old times)."""
        from ..api import TraceSession

        s = self.w.session
        key = (id(s), tuple(sorted(s.time_offsets.items())), repr(sorted(self.w.user_map.items())))
        if self._api is None or key != self._api_key:
            self._api, self._api_key = TraceSession(s, self.w.user_map), key
            self.worker.clear_cache()
        return self._api

    def run(self, query: str | None = None) -> None:
        """Run the editor's query (or ``query``) off the GUI thread; the grid shows it when done."""
        q = (self.editor.toPlainText() if query is None else query).strip()
        if query is not None:
            self.editor.setPlainText(query)
        if not q:
            return
        api = self.api()
        self.status.setText("running...")
        self.status.setStyleSheet("")
        self.run_button.setEnabled(False)
        self.worker.submit((self._api_key, q), lambda: _query(api, q))

    def _show(self, _key, table: pa.Table) -> None:
        self.run_button.setEnabled(True)
        self.result = table
        self.model.set_table(table)
        self.grid.resizeColumnsToContents()
        self.status.setText(f"{table.num_rows:,} rows" + ("; click a row to go to its time"
                                                         if self._time_column() else ""))
        self._update_buttons()

    def _failed(self, _key, message: str) -> None:
        self.run_button.setEnabled(True)
        self.status.setText(message.partition(": ")[2] or message)
        self.status.setStyleSheet("color: #b00000")

    def _update_buttons(self) -> None:
        t = self.result
        self.graph_button.setEnabled(t is not None and self._time_column() is not None and
                                     ("cpu" in t.column_names or "pid" in t.column_names))

    # ---- going to the rows -----------------------------------------------------------------------
    def _time_column(self) -> str | None:
        t = self.result
        return None if t is None else next((c for c in TIME_COLUMNS if c in t.column_names), None)

    def _stream_index(self, name: object) -> int | None:
        s = self.w.session
        if name is None:
            return s.host_stream.index if s.host_stream is not None else 0
        try:
            return s.stream_index(str(name))
        except ValueError:
            return None

    def jump(self, row: int) -> None:
        """Result row ``row``: marker, graph and list go to its time (the event itself when the
        result names its stream and CPU)."""
        col = self._time_column()
        if col is None or not 0 <= row < self.model.rowCount():
            return
        ts = self.model.value(row, col)
        if ts is None:
            return
        ts = int(ts)
        end = self.model.value(row, "end")
        go_to(self.w, ts, int(end) if end is not None and int(end) >= ts else ts)
        m = self._merged_index(ts, self.model.value(row, "stream"), self.model.value(row, "cpu"))
        if m is not None:
            self.w.event_list.select_merged_index(m)
        else:
            self.w.event_list.select_time(ts)

    def _merged_index(self, ts: int, stream: object, cpu: object) -> int | None:
        """The merged row of the event at ``ts`` of that stream (and CPU), if there is one."""
        if stream is None:
            return None
        si = self._stream_index(stream)
        if si is None:
            return None
        mv = self.w.session.merged()
        lo, hi = np.searchsorted(mv.ts, ts, "left"), np.searchsorted(mv.ts, ts, "right")
        for m in range(int(lo), min(int(hi), int(lo) + 10_000)):
            st = self.w.session.streams[int(mv.stream[m])]
            if st.index != si:
                continue
            if cpu is not None and int(st.buffer.events.column("cpu")[int(mv.row[m])].as_py()) != int(cpu):
                continue
            return m
        return None

    def _row_spec(self, by: str, stream: int, key: int) -> tuple:
        """The graph row of a stream's CPU (a guest's CPU is its VCPU row) or task."""
        if by == "pid":
            return ("task", stream, key)
        row = next((r for r in self.w.model.rows if r.kind in ("cpu", "vcpu_guest") and r.stream == stream
                    and r.cpu == key), None)
        return row_spec(row) if row is not None else ("cpu", stream, key)

    def show_on_graph(self) -> list[int]:
        """Frame every result row on the graph (see the module doc); returns the framed rows."""
        t, col = self.result, self._time_column()
        if t is None or col is None:
            return []
        start = t.column(col).to_numpy(zero_copy_only=False).astype(np.int64)
        end = t.column("end").to_numpy(zero_copy_only=False).astype(np.int64) if "end" in t.column_names else start
        names = t.column("stream").to_pylist() if "stream" in t.column_names else [None] * t.num_rows
        by = "cpu" if "cpu" in t.column_names else "pid"
        who = t.column(by).to_numpy(zero_copy_only=False).astype(np.int64)
        sidx = {n: self._stream_index(n) for n in set(names)}
        stream = np.array([-1 if sidx[n] is None else sidx[n] for n in names], np.int64)
        lanes = []
        keys = np.unique(np.stack([stream, who], axis=1), axis=0) if t.num_rows else np.zeros((0, 2), np.int64)
        for s, k in keys.tolist():
            if s < 0:
                continue
            sel = (stream == s) & (who == k)
            lanes.append(Lane(self._row_spec(by, s, k), start[sel], np.maximum(end[sel], start[sel])))
        rows = self.marks.show(lanes)
        self.status.setText(f"{int(sum(len(ln.start) for ln in lanes)):,} rows framed on {len(rows)} graph rows")
        return rows


def _query(api, q: str) -> pa.Table:
    import duckdb

    from ..model.sqltables import one_line

    try:
        return api.sql(q)
    except duckdb.Error as e:
        raise ValueError(one_line(e)) from None


def show_sql_console(window) -> SqlConsole:
    """Tools > SQL console: the window's console dock, made on first use, shown and raised."""
    dock = getattr(window, "sql_console_dock", None)
    if dock is None:
        dock = window.sql_console_dock = QtWidgets.QDockWidget("SQL console", window)
        dock.setObjectName("SQL console")
        dock.setWidget(SqlConsole(window, dock))
        window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
    dock.show()
    dock.raise_()
    return dock.widget()
