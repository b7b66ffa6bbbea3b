"""The event list while the load runs: the rows of one stream decoded so far, growing as they come.

A virtual table over a :class:`~kshark_py.model.partialstream.PartialStream` (the first
:data:`~kshark_py.model.partialstream.LIST_ROWS` rows the reader delivered, kept as chunks: a
million rows is more than anyone scrolls through while a file loads, and keeping them all would
cost the load's peak memory 9 bytes an event; the caption says how many were decoded and that the
loaded window lists them all): :meth:`PartialListModel.refresh` appends the new rows with
``beginInsertRows`` (the user's scroll position and selection stay), and a cell is computed only
when Qt paints it.  The rows are the events table's first ones, so the row the user picked is
the loaded list's same event.  The columns are the loaded list's as far as the delivered rows tell them:
number, time, stream, CPU, task (the file's saved cmdlines name it; ``<...>`` otherwise), pid, event
name; the latency flags and the info text need the event payloads and come with the loaded window.
"""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from ..loaders.tasks import task_comm
from ..loaders.text import display
from ..model.eventtext import trace_cmd_time
from ..model.partialstream import Chunk
from ..model.preview import PreviewStream

Qt = QtCore.Qt

COLUMNS = ("#", "Time", "Stream", "CPU", "Task", "PID", "Event", "Info")
COL = {name: i for i, name in enumerate(COLUMNS)}
INFO_HEADER = "Info (when the load ends)"
_RIGHT = {COL["#"], COL["Time"], COL["CPU"], COL["PID"]}


class PartialListModel(QtCore.QAbstractTableModel):
    """The delivered rows of ``stream`` (a preview stream), one row each, in table order."""

    def __init__(self, stream: PreviewStream, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.stream = stream
        self._chunks: tuple[Chunk, ...] = ()
        self._starts = np.zeros(0, np.int64)
        self._n = 0
        self._restarts = 0
        self._comms: dict[int, str] | None = None
        tf = stream.buffer.trace
        self._usecs = bool(getattr(tf, "in_usecs", True))
        self._formats = getattr(tf, "formats", None)
        self.mono = QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont)

    def refresh(self) -> int:
        """Take the listed rows delivered since the last call (the GUI thread); returns how many came.

        When the reader started the rows again (a damaged file: ``PartialRows.restart``) the list is
        reset to the new rows."""
        part = self.stream.partial
        restarts, chunks = part.listing() if part is not None else (0, ())
        n = sum(len(c) for c in chunks)
        reset = restarts != self._restarts
        if not reset and n <= self._n:
            return 0
        old = 0 if reset else self._n
        if reset:
            self.beginResetModel()
        else:
            self.beginInsertRows(QtCore.QModelIndex(), old, n - 1)
        self._restarts, self._chunks, self._n = restarts, chunks, n
        self._starts = np.array([c.start for c in chunks], np.int64)
        if reset:
            self.endResetModel()
        else:
            self.endInsertRows()
        return n - old

    @property
    def delivered(self) -> int:
        """Rows of the stream decoded so far (the list shows the first :data:`LIST_ROWS` of them)."""
        part = self.stream.partial
        return part.rows if part is not None else 0

    # ---- cells --------------------------------------------------------------------------------
    def rowCount(self, parent: QtCore.QModelIndex = QtCore.QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else self._n

    def columnCount(self, parent: QtCore.QModelIndex = QtCore.QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(COLUMNS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return INFO_HEADER if section == COL["Info"] else COLUMNS[section]
        if role == Qt.ItemDataRole.ToolTipRole and section == COL["Info"]:
            return "The info text is rendered from the event payloads, in the loaded window's list."
        return None

    def data(self, index: QtCore.QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.cell_text(index.row(), index.column())
        if role == Qt.ItemDataRole.TextAlignmentRole:
            h = Qt.AlignmentFlag.AlignRight if index.column() in _RIGHT else Qt.AlignmentFlag.AlignLeft
            return int(h | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.FontRole and index.column() == COL["Time"]:
            return self.mono  # as the loaded list's
        return None

    def fields(self, row: int) -> tuple[int, int, int, int]:
        """(ts, cpu, pid, event_id) of shown row ``row``."""
        k = int(np.searchsorted(self._starts, row, side="right")) - 1
        ch = self._chunks[k]
        r = row - ch.start
        return ch.time(r), int(ch.cpu[r]), int(ch.pid[r]), int(ch.event_id[r])

    def comm(self, pid: int) -> str:
        """The task name the file's saved cmdlines give ``pid`` (``<idle>`` for 0, ``<...>`` unknown)."""
        if self._comms is None:
            try:  # parsed once (the loading thread parses them too: a dict, cheap to share)
                self._comms = dict(self.stream.buffer.trace.cmdlines)
            except Exception:  # noqa: BLE001 - no names is a fine answer while loading
                self._comms = {}
        return display(task_comm(self._comms, pid))

    def event_name(self, event_id: int) -> str:
        names = self._formats.names(event_id) if self._formats is not None else None
        return names[1] if names else "(NULL)"

    def cell_text(self, row: int, column: int) -> str:
        """What row ``row`` shows in ``column`` (as the loaded list would, Info aside)."""
        if not 0 <= row < self._n:
            return ""
        ts, cpu, pid, eid = self.fields(row)
        name = COLUMNS[column]
        if name == "#":
            return str(row)
        if name == "Time":
            return trace_cmd_time(ts + self.stream.offset, usecs=self._usecs, nsec=False).strip()
        if name == "Stream":
            return self.stream.name
        if name == "CPU":
            return str(cpu)
        if name == "Task":
            return self.comm(pid)
        if name == "PID":
            return str(pid)
        if name == "Event":
            return self.event_name(eid)
        return ""


class PartialListView(QtWidgets.QWidget):
    """A caption (what the list is, how far it got) over the growing table."""

    def __init__(self, stream: PreviewStream, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = PartialListModel(stream, self)
        self.caption = QtWidgets.QLabel()
        self.caption.setStyleSheet("padding: 2px 4px;")
        t = self.table = QtWidgets.QTableView(self)
        t.setModel(self.model)
        t.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        t.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        t.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        t.setWordWrap(False)
        t.setShowGrid(False)
        t.setAlternatingRowColors(True)
        t.setVerticalScrollMode(QtWidgets.QAbstractItemView.ScrollMode.ScrollPerItem)
        vh = t.verticalHeader()
        vh.setVisible(False)
        vh.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Fixed)  # Qt never measures rows it does not paint
        vh.setDefaultSectionSize(t.fontMetrics().height() + 4)
        hh = t.horizontalHeader()
        hh.setStretchLastSection(True)
        hh.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        fm = t.fontMetrics()
        formats = getattr(stream.buffer.trace, "formats", None)
        names = [name for _sys, name in formats.by_name] if formats is not None else []
        for name, sample in (("#", "88888888"), ("Stream", stream.name), ("CPU", "CPU"), ("Task", "kworker/u16:12-ev"),
                             ("PID", "8888888"), ("Event", max(names or ["sched_switch"], key=len)[:28])):
            t.setColumnWidth(COL[name], max(fm.horizontalAdvance(sample), fm.horizontalAdvance(name)) + 18)
        mono = QtGui.QFontMetricsF(self.model.mono).horizontalAdvance
        t.setColumnWidth(COL["Time"], int(mono("88888.888888")) + 18)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.caption)
        lay.addWidget(t, 1)
        self._name = stream.name
        self._end: str | None = None
        self.set_caption()

    def refresh(self) -> None:
        """Show the rows delivered since the last call (the caption counts those not listed too)."""
        self.model.refresh()
        self.set_caption(self._end)

    def set_caption(self, end: str | None = None) -> None:
        """Say how many rows are decoded and listed; ``end``: how the load went (None: it goes on)."""
        self._end = end
        listed, n = self.model.rowCount(), max(self.model.rowCount(), self.model.delivered)
        if n > listed:
            note = f"the first {listed:,} listed; {end}" if end else \
                f"the first {listed:,} listed while loading; all of them when the load ends"
        else:
            note = end or "the list grows as the load decodes; the Info column comes when it ends"
        self.caption.setText(f"Events of {self._name} decoded so far: {n:,} ({note})")
