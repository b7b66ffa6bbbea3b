"""Analysis > Scheduling latency: every task's wakeup latencies (KernelShark's sched_events,
``perf sched latency``), as a sortable table per task and as boxes on the task rows.

The wakeups of the whole trace are paired once (:func:`~kshark_py.model.analysis.wakeups.wakeups`,
whole-array work); the table then shows the wakeups lying inside the chosen range (whole trace,
the graph's view or markers A..B) by one mask and :func:`wakeup_stats`.  The boxes always show
every wakeup: a task row frames each wakeup -> switch-in as KernelShark does (a green outlined box
along the bottom of the row, :mod:`kshark_py.plots.boxes`).

Clicking a task asks the window (``wakeupChosen``) to show that task's worst wakeup in the range:
its row, the box centred in the graph, markers A and B on the waking and the switch, the list on
the switch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from PySide6 import QtCore, QtWidgets

from ..model.analysis.wakeups import wakeup_stats, wakeups
from ..model.session import Session
from ..model.viewmodel import Row
from ..plots.boxes import BoxLane
from .arrowtable import ArrowTableModel, Column, table_view, time_column, us_column, us_text

WAKEUP_COLOR = (0, 200, 0)
"""KernelShark's sched_events green."""

COLUMNS = [
    Column("Stream", "stream_name"),
    Column("PID", "pid"),
    Column("Task", "comm"),
    Column("Wakeups", "count"),
    us_column("Total (µs)", "total_ns", "sum of the task's wakeup latencies"),
    us_column("p50 (µs)", "p50_ns", "median wakeup latency (nearest rank)"),
    us_column("p99 (µs)", "p99_ns", "99th percentile (nearest rank: the maximum below 100 wakeups)"),
    us_column("Max (µs)", "max_ns", "worst wakeup latency: click the row to see it"),
    time_column("Max at (s)", "max_at_ns", "when the worst wakeup began (its sched_waking)"),
    Column("Across loss", "across_loss", lambda v: str(v) if v else "",
           "wakeups that span events the kernel dropped: the task may have run earlier, in the dropped part"),
]
MAX_COLUMN = 7


@dataclass(frozen=True)
class Wakeup:
    """One wakeup, as the window needs it to show it."""

    stream: int
    pid: int
    comm: str
    waking_ts: int
    switch_ts: int
    waking_row: int
    switch_row: int
    cpu: int


class WakeupLanes:
    """The wakeups of the whole trace per task, as box lanes for task rows (built once)."""

    def __init__(self, w: pa.Table) -> None:
        self.w = w
        s = w.column("stream").to_numpy().astype(np.int64)
        p = w.column("pid").to_numpy().astype(np.int64)
        t = w.column("waking_ts").to_numpy()
        self.order = np.lexsort((t, p, s))
        so, po = s[self.order], p[self.order]
        new = np.ones(len(so), bool)
        new[1:] = (so[1:] != so[:-1]) | (po[1:] != po[:-1])
        starts = np.flatnonzero(new)
        ends = np.append(starts[1:], len(so))
        self.index = {(int(a), int(b)): (int(i), int(j))
                      for a, b, i, j in zip(so[starts], po[starts], starts, ends, strict=True)}
        self._start = t[self.order]
        self._end = w.column("switch_ts").to_numpy()[self.order]
        self._lanes: dict[tuple[int, int], BoxLane] = {}

    def lane(self, stream: int, pid: int) -> BoxLane | None:
        key = (int(stream), int(pid))
        hit = self._lanes.get(key)
        if hit is None:
            span = self.index.get(key)
            if span is None:
                return None
            hit = self._lanes[key] = BoxLane(self._start[span[0]:span[1]], self._end[span[0]:span[1]])
        return hit

    def for_row(self, row: Row) -> BoxLane | None:
        """Task rows (and a VCPU's host-thread row) frame their task's wakeups."""
        if row.kind not in ("task", "vcpu_host") or row.pid is None:
            return None
        return self.lane(row.stream, row.pid)

    def at(self, stream: int, pid: int, ts: int) -> Wakeup | None:
        """The wakeup of a task whose box contains ``ts``."""
        lane = self.lane(stream, pid)
        if lane is None:
            return None
        k = lane.at(ts)
        if k is None:
            return None
        return wakeup_at(self.w, int(self.order[self.index[(int(stream), int(pid))][0] + k]))


def wakeup_at(w: pa.Table, i: int) -> Wakeup:
    r = w.slice(i, 1).to_pylist()[0]
    return Wakeup(int(r["stream"]), int(r["pid"]), r["comm"] or "", int(r["waking_ts"]), int(r["switch_ts"]),
                  int(r["waking_row"]), int(r["switch_row"]), int(r["cpu"]))


class WakeupPanel(QtWidgets.QWidget):
    """The per-task table (see the module doc).  ``range_of(mode)`` is the window's answer to
    "which times does this mode mean" (None: whole trace, or markers unset)."""

    wakeupChosen = QtCore.Signal(object)  # Wakeup

    def __init__(self, session: Session, range_box: QtWidgets.QComboBox,
                 range_of: Callable[[str], tuple[int, int] | None], parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.range_of = range_of
        self.all: pa.Table | None = None
        self.lanes: WakeupLanes | None = None
        self.shown: pa.Table | None = None
        """The wakeups inside the range the table shows."""
        self.window: tuple[int, int] | None = None
        self.range_box = range_box
        self.range_box.currentIndexChanged.connect(lambda *_: self.refresh())
        self.boxes = QtWidgets.QCheckBox("Boxes on task rows")
        self.boxes.setChecked(True)
        self.boxes.setToolTip("Frame every wakeup (sched_waking -> switch-in) on the task rows, as "
                              "KernelShark's sched_events plugin does")
        self.model = ArrowTableModel(COLUMNS, self)
        self.table = table_view(self.model, self.choose)
        self.table.sortByColumn(MAX_COLUMN, QtCore.Qt.SortOrder.DescendingOrder)  # worst tasks first
        self.info = QtWidgets.QLabel()
        self.info.setWordWrap(True)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(QtWidgets.QLabel("Range:"))
        top.addWidget(self.range_box)
        top.addStretch(1)
        top.addWidget(self.boxes)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(top)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.info)

    def compute(self) -> None:
        """Pair the whole trace's wakeups (again: after a time offset moved a stream)."""
        self.all = wakeups(self.session)
        self.lanes = WakeupLanes(self.all)
        self.refresh()

    def refresh(self) -> None:
        """Show the tasks' statistics over the chosen range."""
        if self.all is None:
            return
        mode = str(self.range_box.currentData())
        win = self.range_of(mode)
        if win is None and mode == "markers":
            self.info.setText("Set markers A and B (click the graph with A, then with B) to see the wakeups "
                              "between them.")
            return
        w = self.all
        if win is not None:
            ws, ss = w.column("waking_ts").to_numpy(), w.column("switch_ts").to_numpy()
            w = w.filter(pa.array((ws >= win[0]) & (ss <= win[1])))
        self.window, self.shown = win, w
        stats = wakeup_stats(w)
        names = np.array([st.name for st in self.session.streams], dtype=object)
        header = self.table.horizontalHeader()
        col, order = header.sortIndicatorSection(), header.sortIndicatorOrder()
        self.model.set_table(stats, {"stream_name": lambda t: names[t.column("stream").to_numpy().astype(np.int64)]})
        self.table.sortByColumn(col, order)  # the user's sort stays
        self.table.setColumnHidden(0, len(self.session.streams) == 1)  # one stream: nothing to tell apart
        self.table.resizeColumnsToContents()
        if stats.num_rows:
            worst = int(np.argmax(stats.column("max_ns").to_numpy()))
            r = stats.slice(worst, 1).to_pylist()[0]
            lossy = int(stats.column("across_loss").to_numpy().sum())
            warn = (f" {lossy:,} of them span dropped events (see Across loss): their latency may be overstated."
                    if lossy else "")
            self.info.setText(f"{w.num_rows:,} wakeups of {stats.num_rows:,} tasks.{warn} Worst: "
                              f"{r['comm']}-{r['pid']}, {us_text(r['max_ns'])} µs. Click a task to see its worst "
                              "wakeup.")
        else:
            self.info.setText("No wakeup (sched_waking or sched_wakeup followed by the task's sched_switch) "
                              + ("in this range." if win is not None else "in the trace."))

    def worst(self, stream: int, pid: int) -> Wakeup | None:
        """The task's worst wakeup in the shown range (the earliest of equal worst ones)."""
        w = self.shown
        if w is None or not w.num_rows:
            return None
        sel = np.flatnonzero((w.column("stream").to_numpy() == stream) & (w.column("pid").to_numpy() == pid))
        if not len(sel):
            return None
        lat = w.column("latency_ns").to_numpy()[sel]
        return wakeup_at(w, int(sel[int(np.argmax(lat))]))  # argmax: the first (earliest) of equal maxima

    def choose(self, view_row: int) -> None:
        """Table row ``view_row`` was clicked: ask the window to show its worst wakeup."""
        if not 0 <= view_row < self.model.rowCount():
            return
        k = self.model.source_row(view_row)
        t = self.model.table
        stream, pid = int(t.column("stream")[k].as_py()), int(t.column("pid")[k].as_py())
        w = self.worst(stream, pid)
        if w is not None:
            self.wakeupChosen.emit(w)
