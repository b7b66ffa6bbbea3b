"""The VM exits panel (issue 12, item 4): which exits cost a VCPU the most, and where the guest was.

Three views of :mod:`kshark_py.model.analysis.exits` over the range the panel follows (whole trace,
graph view or markers A-B): the per VCPU and reason table (sortable: count, total, p50, p99,
max), a histogram of reasons, and the guest RIPs with the most exits (symbolized when the guest
file is loaded).  A click on a table row, a bar or a RIP jumps to the worst exit of that group:
the graph centres it, frames the group's exits on the VCPU's rows and the list selects the
``kvm_exit`` record.  The tables are computed off the GUI thread (:class:`~.analysisrange.Worker`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PySide6 import QtCore, QtWidgets

from ..model.analysis.exits import reason_histogram, stats_of, top_rips, vm_exits
from ..model.session import Session
from ..plots.bars import Segment, StackedBars
from .analysisrange import (
    AnalysisContext,
    GraphMarks,
    Lane,
    NumItem,
    RangePanel,
    detail_color,
    fill_table,
    go_to,
    make_table,
    ms_text,
    row_key,
    vcpu_specs,
)

TOP_RIPS = 25
"""RIPs listed."""
TIME_COLS = ("total_ns", "p50_ns", "p99_ns", "max_ns")


@dataclass
class ExitTables:
    """What the panel shows for one range: the model's tables, as they are."""

    t0: int
    t1: int
    exits: pa.Table
    stats: pa.Table
    reasons: pa.Table
    rips: pa.Table


def compute(session: Session, t0: int, t1: int, vcpu_map: dict[str, dict[int, int]]) -> ExitTables:
    """The panel's tables over [t0, t1] with the user's part of the window's VCPU map (runs in the
    worker); ``exit_stats`` is ``stats_of(vm_exits(...))``: the exits are paired once."""
    exits = vm_exits(session, t0, t1, vcpu_map=vcpu_map)
    return ExitTables(t0, t1, exits, stats_of(exits), reason_histogram(exits), top_rips(exits, TOP_RIPS))


def guest_text(name: str) -> str:
    return name or "(unnamed VM)"


def rip_text(rip: int | None) -> str:
    return "-" if rip is None else f"{rip:#x}"


def _equal(t: pa.Table, column: str, value) -> np.ndarray:
    """Rows of ``t`` whose string ``column`` equals ``value`` (None: is null), as a numpy mask."""
    col = t.column(column)
    m = pc.is_null(col) if value is None else pc.fill_null(pc.equal(col, pa.scalar(value, col.type)), False)
    return np.asarray(m.to_numpy(zero_copy_only=False), bool)


class ExitsPanel(RangePanel):
    """See the module doc.  ``window`` is the main window (timeline, model, list, markers)."""

    STATS_HEADERS = ["Guest", "VCPU", "Host PID", "Reason", "Count", "Total", "p50", "p99", "Max"]
    RIP_HEADERS = ["Guest RIP", "Symbol", "Exits", "Total"]
    KEY, WHAT, BUSY_TEXT = "exits", "VM exits", "computing..."
    analysis = staticmethod(compute)

    def __init__(self, window, ctx: AnalysisContext, parent=None) -> None:
        super().__init__(window, ctx, "all", parent)
        self.result: ExitTables | None = None
        self.stats = make_table(self.STATS_HEADERS)
        self.stats.sortItems(self.STATS_HEADERS.index("Total"), QtCore.Qt.SortOrder.DescendingOrder)
        self.stats.setToolTip("Click a row: the graph shows that VCPU's worst exit of that reason")
        self.hist = StackedBars(unit="exits", scale=1.0)
        self.hist.setToolTip("Exits per reason; click a bar for the worst exit of that reason")
        self.rips = make_table(self.RIP_HEADERS)
        self.rips.setToolTip("Guest instruction addresses with the most exits; click one for its worst exit")
        lower = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        lower.addWidget(self.hist)
        lower.addWidget(self.rips)
        lower.setSizes([300, 300])
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        split.addWidget(self.stats)
        split.addWidget(lower)
        split.setSizes([300, 250])
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(self.head())
        lay.addWidget(split, 1)
        self.marks = GraphMarks(window.timeline, window.model, color=(40, 40, 220))
        self.stats.cellClicked.connect(lambda r, _c: self._pick_stats(r))
        self.rips.cellClicked.connect(lambda r, _c: self._pick_rip(r))
        self.hist.segmentClicked.connect(lambda bar, _s: self._pick_reason(bar))
        self.refresh()

    # -- computing ---------------------------------------------------------------------------
    def _ready(self, _key, res: ExitTables) -> None:
        self.result = res
        st = res.stats
        rows, keys = [], []
        cols = {n: st.column(n).to_pylist() for n in st.column_names}
        for i in range(st.num_rows):
            g, v, p, r = cols["guest"][i], cols["vcpu"][i], cols["host_pid"][i], cols["reason"][i]
            rows.append([QtWidgets.QTableWidgetItem(guest_text(g)), NumItem(str(v), v), NumItem(str(p), p),
                         QtWidgets.QTableWidgetItem(r), NumItem(f"{cols['count'][i]:,}", cols["count"][i])]
                        + [NumItem(ms_text(cols[c][i]), cols[c][i]) for c in TIME_COLS])
            keys.append((g, v, p, r))
        fill_table(self.stats, rows, keys)
        h = res.reasons.sort_by([("count", "descending")])
        names, counts = h.column("reason").to_pylist(), h.column("count").to_pylist()
        totals = h.column("total_ns").to_pylist()
        self.hist.set_bars(names, [[Segment(f"{c:,} exits, {ms_text(t)} in total", c, detail_color("exit", n), n)]
                                   for n, c, t in zip(names, counts, totals, strict=True)])
        self.hist.setMinimumHeight(min(60 + 22 * len(names), 400))
        rp = res.rips
        rcols = {n: rp.column(n).to_pylist() for n in rp.column_names}
        rows = [[QtWidgets.QTableWidgetItem(rip_text(rcols["guest_rip"][i])),
                 QtWidgets.QTableWidgetItem(rcols["rip_symbol"][i] or ""),
                 NumItem(f"{rcols['count'][i]:,}", rcols["count"][i]),
                 NumItem(ms_text(rcols["total_ns"][i]), rcols["total_ns"][i])] for i in range(rp.num_rows)]
        fill_table(self.rips, rows, list(range(rp.num_rows)))  # keys: rows of res.rips (u64 RIPs overflow Qt)
        n = res.exits.num_rows
        total = int(pc.sum(res.exits.column("duration_ns")).as_py() or 0) if n else 0
        vcpus = len({(k[0], k[1], k[2]) for k in keys})
        self.summary.setText(f"{n:,} VM exits on {vcpus} VCPU thread{'s' * (vcpus != 1)}, "
                             f"{ms_text(total)} in exit handling" if n else
                             "No VM exits in this range (the host trace needs kvm_exit and kvm_entry).")
        self.computed.emit()

    # -- jumping to the worst exit -------------------------------------------------------------
    def _pick_stats(self, row: int) -> None:
        key = row_key(self.stats, row)
        if key is None or self.result is None:
            return
        g, v, p, r = key
        ex = self.result.exits
        m = _equal(ex, "guest", g) & (ex.column("vcpu").to_numpy() == v) & (ex.column("host_pid").to_numpy() == p) \
            & _equal(ex, "reason", r)
        self.show_worst(m)

    def _pick_reason(self, bar: int) -> None:
        if self.result is None:
            return
        self.show_worst(_equal(self.result.exits, "reason", self.hist.bars[bar][0].key))

    def _pick_rip(self, row: int) -> None:
        k = row_key(self.rips, row)
        if k is None or self.result is None:
            return
        rip = self.result.rips.column("guest_rip")[k].as_py()
        col = self.result.exits.column("guest_rip")
        m = np.asarray(col.is_null().to_numpy(zero_copy_only=False)) if rip is None else \
            np.asarray(pc.fill_null(pc.equal(col, pa.scalar(rip, pa.uint64())), False).to_numpy(zero_copy_only=False))
        self.show_worst(m)

    def worst(self, mask: np.ndarray) -> int | None:
        """Row of the exits table with the longest duration among ``mask`` (None: no exit)."""
        if self.result is None or not mask.any():
            return None
        d = self.result.exits.column("duration_ns").to_numpy()
        idx = np.flatnonzero(mask)
        return int(idx[np.argmax(d[idx])])

    def show_worst(self, mask: np.ndarray) -> int | None:
        """Centre the worst exit among ``mask`` on the graph, frame every exit of the group on its
        VCPU's rows (that VCPU's only: a group can span VCPUs), select its kvm_exit in the list."""
        i = self.worst(mask)
        if i is None:
            return None
        ex = self.result.exits
        get = {n: ex.column(n)[i].as_py() for n in ("guest", "vcpu", "host_pid", "exit_ts", "entry_ts", "exit_row")}
        same = mask & (ex.column("host_pid").to_numpy() == get["host_pid"])
        s = ex.column("exit_ts").to_numpy()[same]
        e = ex.column("entry_ts").to_numpy()[same]
        o = np.argsort(s, kind="stable")
        host = self.session.host_stream
        specs = vcpu_specs(self.window.model, get["guest"], get["vcpu"], host.index if host else None, get["host_pid"])
        self.marks.show([Lane(sp, s[o], e[o]) for sp in specs])
        go_to(self.window, get["exit_ts"], get["entry_ts"], host.index if host else None, get["exit_row"])
        return i
