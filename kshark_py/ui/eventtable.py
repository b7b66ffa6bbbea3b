"""The event list's table model: a virtual table over the merged view of a session, filtered by a mask.

The model holds no per-event Python objects: it keeps the session's merged index arrays, references
to the streams' Arrow columns (as zero-copy numpy views) and, when filters hide something, one int64
array of the visible merged indices.  Every cell is computed in :meth:`EventTableModel.data` for the
rows Qt actually paints; the expensive part, the info text, goes through the same print-fmt renderer
as ``kshark-py report`` and is kept in an LRU cache.  With fixed row heights and no content-based
column sizing, Qt never asks for rows it does not show, so 17 million rows scroll like 17 hundred.
The view around it is :mod:`kshark_py.ui.eventlist`; its search bar (:mod:`kshark_py.ui.search`)
works on this model alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor, QFontDatabase

from ..loaders.lru import LRU
from ..loaders.printfmt import InfoRenderer
from ..loaders.text import display
from ..model.eventtext import guest_funcs, render_context, trace_cmd_time
from ..model.filters import Filters
from ..model.infotext import BlockInfo
from ..model.lost import LOST_EVENT_NAME, lost_events, lost_text
from ..model.merged import stream_column
from ..model.session import Session
from ..model.taskindex import TaskIndex

COLUMNS = ("#", "Time", "Stream", "CPU", "Task", "PID", "Latency", "Event", "Info")
COL = {name: i for i, name in enumerate(COLUMNS)}

MergedIndexRole = Qt.ItemDataRole.UserRole + 1
"""data(index, MergedIndexRole) -> the row's index into ``session.merged()``."""
TimestampRole = Qt.ItemDataRole.UserRole + 2
"""data(index, TimestampRole) -> the row's timestamp (int ns, host clock)."""

# libtraceevent's common_flags bits (what `trace-cmd report -l` decodes)
IRQS_OFF, IRQS_NOSUPPORT, NEED_RESCHED, HARDIRQ, SOFTIRQ = 0x01, 0x02, 0x04, 0x08, 0x10

_STREAM_TINTS = ((0, 0, 0, 0), (40, 110, 220, 26), (220, 150, 30, 30), (30, 170, 80, 28), (170, 30, 150, 26))
"""Row tint per stream (host untinted), so host and guest lines are told apart at a glance."""


def latency_text(flags: int, preempt: int) -> str:
    """The latency column exactly as ``trace-cmd report -l`` prints it (libtraceevent), e.g. ``dNh2.``.

    irqs-off ``d`` (``X`` when the arch cannot tell, else ``.``), need-resched ``N``, ``H`` for a hard
    irq inside a soft irq / ``h`` hard irq / ``s`` soft irq, the preempt depth (low nibble of
    common_preempt_count) and the migrate-disable depth (high nibble), each ``.`` when zero.
    """
    hard = flags & HARDIRQ
    soft = flags & SOFTIRQ
    depth = preempt & 0x0F
    migrate = (preempt >> 4) & 0x0F
    return ("d" if flags & IRQS_OFF else "X" if flags & IRQS_NOSUPPORT else ".") \
        + ("N" if flags & NEED_RESCHED else ".") \
        + ("H" if hard and soft else "h" if hard else "s" if soft else ".") \
        + (f"{depth:x}" if depth else ".") + (f"{migrate:x}" if migrate else ".")


def _alignment(col: int) -> int:
    if COLUMNS[col] in ("#", "Time", "CPU", "PID"):
        return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)


class EventTableModel(QAbstractTableModel):
    """All events of a session (or those passing ``filters``), one row each, in report order.

    Row ``k`` shows merged event ``rows[k]`` (``k`` itself when nothing is filtered: the identity is
    not materialized).  ``filters.changed`` resets the model with the new visible indices.
    """

    INFO_CACHE = 20000

    def __init__(self, session: Session, filters: Filters | None = None, tasks: TaskIndex | None = None,
                 parent: Any = None, *, nsec: bool = False) -> None:
        super().__init__(parent)
        self.session = session
        self.filters = filters
        self.tasks = tasks if tasks is not None else TaskIndex(session)
        self.merged = session.merged()
        self.nsec = nsec
        self._rows: np.ndarray | None = None
        self.generation = 0
        """Bumped on every reset, so searches know their cached matches are stale."""
        self._cols = [{c: stream_column(st, c) for c in ("ts", "cpu", "pid", "event_id", "flags", "preempt")}
                      for st in session.streams]
        self.lost = lost_events(session)
        self._lost_rows = np.zeros(0, np.int64)  # table rows of the loss rows shown (ascending)
        self._lost_of = np.zeros(0, np.int64)  # index into self.lost of each of them
        self._lost_anchor = np.zeros(0, np.int64)  # event row (see _event_row) each is shown before
        gf = guest_funcs(session)
        self._renderers: dict[int, InfoRenderer] = {}
        for st in session.streams:
            if id(st.trace) not in self._renderers:
                ctx = render_context(st.trace, gf if st.trace is session.host else None)
                self._renderers[id(st.trace)] = InfoRenderer(st.trace.formats, ctx)
        self._info: LRU[str] = LRU(self.INFO_CACHE)
        self._block_info: dict[int, BlockInfo] = {}
        self._tints = [QColor(*_STREAM_TINTS[i % len(_STREAM_TINTS)]) for i in range(len(session.streams))]
        self._lost_color = QColor("#ffd6d6")
        self._mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        if filters is not None:
            cb = self.refresh
            filters.changed.connect(cb)
            # the filters may outlive this model (a reopened list): stop calling a deleted model
            self.destroyed.connect(lambda *_: filters.changed.disconnect(cb))
            self._rows = self._visible_from_filters()
        self._place_lost()

    # ---- rows -------------------------------------------------------------------------------
    def _visible_from_filters(self) -> np.ndarray | None:
        f = self.filters
        if f is None or not f.apply_to_list or not f.is_active():
            return None
        return f.visible(self.session)

    def refresh(self) -> None:
        """Re-read the filters (connected to ``filters.changed``)."""
        self.beginResetModel()
        self._rows = self._visible_from_filters()
        self._place_lost()
        self.generation += 1
        self.endResetModel()

    def _place_lost(self) -> None:
        """Put a row before the first shown event at or after each loss (KernelShark's missed_events
        entry); a loss is hidden only with its stream or CPU."""
        lost = self.lost
        keep = np.ones(len(lost), bool)
        f = self.filters
        if f is not None and f.apply_to_list and f.is_active() and len(lost):
            for si in np.unique(lost.stream).tolist():
                sel = lost.stream == si
                if not f.stream_enabled(si):
                    keep &= ~sel
                    continue
                show, hide = f.get(si, "cpu", "show"), f.get(si, "cpu", "hide")
                cpu = lost.cpu
                if show:
                    keep &= ~sel | np.isin(cpu, list(show))
                if hide:
                    keep &= ~sel | ~np.isin(cpu, list(hide))
        which = np.flatnonzero(keep)
        m = lost.merged[which]
        anchor = m if self._rows is None else np.searchsorted(self._rows, m)
        self._lost_of = which
        self._lost_anchor = np.asarray(anchor, np.int64)
        self._lost_rows = self._lost_anchor + np.arange(len(which))

    def _n_events(self) -> int:
        return len(self.merged) if self._rows is None else len(self._rows)

    def _event_row(self, row: int) -> int:
        """Index among the shown events of table row ``row`` (the next event's for a loss row)."""
        return row - int(np.searchsorted(self._lost_rows, row, side="left"))

    def table_rows(self, event_rows: np.ndarray) -> np.ndarray:
        """Table rows of shown events given by their index among the shown events (vectorized)."""
        event_rows = np.asarray(event_rows, np.int64)
        return event_rows + np.searchsorted(self._lost_anchor, event_rows, side="right")

    @property
    def lost_rows(self) -> np.ndarray:
        """Table rows of the loss rows shown, ascending."""
        return self._lost_rows

    def lost_index(self, row: int) -> int:
        """Index into :attr:`lost` if table row ``row`` is a loss row, else -1."""
        k = int(np.searchsorted(self._lost_rows, row))
        return int(self._lost_of[k]) if k < len(self._lost_rows) and self._lost_rows[k] == row else -1

    def row_targets(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(merged index, is a loss row) of table rows ``rows`` (vectorized; a loss row's merged
        index is -1)."""
        rows = np.asarray(rows, np.int64)
        k = np.searchsorted(self._lost_rows, rows)
        kc = np.minimum(k, max(len(self._lost_rows) - 1, 0))
        is_lost = (k < len(self._lost_rows)) & (self._lost_rows[kc] == rows) if len(self._lost_rows) \
            else np.zeros(len(rows), bool)
        ev = rows - k
        m = ev if self._rows is None else self._rows[np.clip(ev, 0, max(len(self._rows) - 1, 0))]
        return np.where(is_lost, -1, m).astype(np.int64), is_lost

    def visible_rows(self) -> np.ndarray | None:
        """Merged indices of the shown events, ascending; None means all (shown event k is merged
        event k).  Loss rows are not events: :meth:`table_rows` maps event positions to table rows."""
        return self._rows

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        if parent.isValid():
            return 0
        return self._n_events() + len(self._lost_rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def merged_index(self, row: int) -> int:
        """The merged index shown in table row ``row`` (a loss row: the event after it)."""
        e = min(self._event_row(row), self._n_events() - 1)
        return int(e if self._rows is None else self._rows[e])

    def row_of(self, merged_index: int) -> int:
        """Table row of ``merged_index``, or -1 if that event is filtered out."""
        if self._rows is None:
            e = merged_index if 0 <= merged_index < len(self.merged) else -1
        else:
            k = int(np.searchsorted(self._rows, merged_index))
            e = k if k < len(self._rows) and self._rows[k] == merged_index else -1
        return -1 if e < 0 else int(self.table_rows(np.array([e]))[0])

    def nearest_row(self, merged_index: int) -> int:
        """Table row of ``merged_index`` or, if it is hidden, of the nearest visible event in time."""
        n = self._n_events()
        if n == 0:
            return -1
        if self._rows is None:
            e = min(max(merged_index, 0), n - 1)
        else:
            k = int(np.searchsorted(self._rows, merged_index))
            if k < n and self._rows[k] == merged_index:
                e = k
            else:
                ts = self.merged.ts
                target = int(ts[min(max(merged_index, 0), len(ts) - 1)])
                cands = [c for c in (k - 1, k) if 0 <= c < n]
                e = min(cands, key=lambda c: abs(int(ts[self._rows[c]]) - target))
        return int(self.table_rows(np.array([e]))[0])

    def row_at_time(self, ts: int) -> int:
        """Table row of the visible event nearest to ``ts`` (ns)."""
        mts = self.merged.ts
        if len(mts) == 0:
            return -1
        m = int(np.searchsorted(mts, ts))
        cands = [c for c in (m - 1, m) if 0 <= c < len(mts)]
        m = min(cands, key=lambda c: abs(int(mts[c]) - ts))
        return self.nearest_row(m)

    # ---- cell values ------------------------------------------------------------------------
    def event_fields(self, merged_index: int) -> tuple[int, int, int, int, int, int, int, int]:
        """(stream, row, ts, cpu, pid, event_id, flags, preempt) of one merged event."""
        s = int(self.merged.stream[merged_index])
        r = int(self.merged.row[merged_index])
        c = self._cols[s]
        return (s, r, int(c["ts"][r]), int(c["cpu"][r]), int(c["pid"][r]), int(c["event_id"][r]),
                int(c["flags"][r]), int(c["preempt"][r]))

    def info(self, merged_index: int, *, cache: bool = True) -> str:
        """The info text of one event (trace-cmd's).  Painted rows go through the LRU cache; a search
        sweeping thousands of rows passes ``cache=False`` so it does not evict what is on screen."""
        if cache:
            return self._info.get_or(merged_index, lambda: self._render_info(merged_index))
        hit = self._info.peek(merged_index)
        return hit if hit is not None else self._render_info(merged_index)

    def _render_info(self, merged_index: int) -> str:
        s, r, ts, cpu, _, eid, _, _ = self.event_fields(merged_index)
        st = self.session.streams[s]
        try:
            text = self._renderers[id(st.trace)].info(eid, st.buffer.payload(r), cpu, ts)
        except Exception as e:  # a renderer bug must not take the list down; show it in the cell
            text = f"[cannot format: {e}]"
        text = display(text)  # a comm or %s that is not UTF-8: U+FFFD (Qt would drop such bytes silently)
        return text[:-1] if text.endswith("\n") else text

    def block_info(self, stream: int) -> BlockInfo:
        """The vectorized info renderer of one stream (for searches), with the list's own context."""
        bi = self._block_info.get(stream)
        if bi is None:
            st = self.session.streams[stream]
            bi = self._block_info[stream] = BlockInfo(st.buffer, self._renderers[id(st.trace)])
        return bi

    def cell_text_at(self, row: int, column: int) -> str:
        """What table row ``row`` shows in ``column`` (an event or a loss row)."""
        k = self.lost_index(row) if len(self._lost_rows) else -1
        return self.lost_cell(k, column) if k >= 0 else self.cell_text(self.merged_index(row), column)

    def info_at(self, row: int) -> str:
        """What table row ``row`` shows in the Info column (an event's info text, or a loss row's)."""
        return self.cell_text_at(row, COL["Info"])

    def event_name(self, stream: int, event_id: int) -> str:
        ev = self.session.streams[stream].trace.formats.get(event_id)
        return ev.name if ev else "(NULL)"

    def time_text(self, stream: int, ts: int) -> str:
        tf = self.session.streams[stream].trace
        return trace_cmd_time(ts, usecs=tf.in_usecs, nsec=self.nsec).strip()

    def cell_text(self, merged_index: int, column: int) -> str:
        """What column ``column`` shows for one merged event."""
        s, r, ts, cpu, pid, eid, flags, pre = self.event_fields(merged_index)
        name = COLUMNS[column]
        if name == "#":
            return str(merged_index)
        if name == "Time":
            return self.time_text(s, ts)
        if name == "Stream":
            return self.session.streams[s].name
        if name == "CPU":
            return str(cpu)
        if name == "Task":
            return self.tasks.comm(s, pid)
        if name == "PID":
            return str(pid)
        if name == "Latency":
            return latency_text(flags, pre)
        if name == "Event":
            return self.event_name(s, eid)
        return self.info(merged_index)

    def lost_cell(self, k: int, column: int) -> str:
        """What column ``column`` shows in the row of loss ``k`` (see :mod:`kshark_py.model.lost`)."""
        lost = self.lost
        s = int(lost.stream[k])
        name = COLUMNS[column]
        if name == "Time":
            return self.time_text(s, int(self.merged.ts[lost.merged[k]]))
        if name == "Stream":
            return self.session.streams[s].name
        if name == "CPU":
            return str(int(lost.cpu[k]))
        if name == "Event":
            return LOST_EVENT_NAME
        if name == "Info":
            return lost_text(int(lost.count[k]))
        return ""

    def lost_tooltip(self, k: int) -> str:
        c = int(self.lost.count[k])
        what = f"{c} events were" if c >= 0 else "Events were (the trace does not say how many)"
        return (f"{what} lost on CPU {int(self.lost.cpu[k])} of {self.session.streams[int(self.lost.stream[k])].name} "
                "here: the ring buffer was full and the kernel dropped them before they were recorded.")

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        col = index.column()
        if len(self._lost_rows):
            k = self.lost_index(index.row())
            if k >= 0:
                return self._lost_data(k, col, role)
        if role == Qt.ItemDataRole.DisplayRole:
            return self.cell_text(self.merged_index(index.row()), col)
        if role == MergedIndexRole:
            return self.merged_index(index.row())
        if role == TimestampRole:
            return int(self.merged.ts[self.merged_index(index.row())])
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _alignment(col)
        if role == Qt.ItemDataRole.BackgroundRole:
            m = self.merged_index(index.row())
            s = int(self.merged.stream[m])
            return self._tints[s] if s else None
        if role == Qt.ItemDataRole.FontRole and COLUMNS[col] in ("Time", "Latency"):
            return self._mono
        if role == Qt.ItemDataRole.ToolTipRole:
            m = self.merged_index(index.row())
            s, _, _, cpu, pid, eid, _, _ = self.event_fields(m)
            ev = self.session.streams[s].trace.formats.get(eid)
            return (f"{self.session.streams[s].name}  CPU {cpu}  {self.tasks.comm(s, pid)}-{pid}\n"
                    f"{ev.full_name if ev else eid}: {self.info(m)}")
        return None

    def _lost_data(self, k: int, col: int, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            return self.lost_cell(k, col)
        if role == MergedIndexRole:
            return -1
        if role == TimestampRole:
            return int(self.merged.ts[self.lost.merged[k]])
        if role == Qt.ItemDataRole.BackgroundRole:
            return self._lost_color
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.lost_tooltip(k)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _alignment(col)
        if role == Qt.ItemDataRole.FontRole and COLUMNS[col] in ("Time", "Latency"):
            return self._mono
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        if role == Qt.ItemDataRole.ToolTipRole and orientation == Qt.Orientation.Horizontal:
            if COLUMNS[section] == "Latency":
                return ("irqs-off (d) · need-resched (N) · hard/soft irq (h/s, H both) · "
                        "preempt depth · migrate-disable depth")
            if COLUMNS[section] == "#":
                return "Position of the event in the merged (host + guests) trace"
        return None
