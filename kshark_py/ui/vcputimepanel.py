"""The VCPU time panel (issue 12, item 5): where each VCPU's time went over the view or A..B.

One stacked bar per VCPU thread from :func:`~kshark_py.model.analysis.vcputime.vcpu_intervals`:
in guest, VM exit handling by reason, halted, preempted on the host by each host task that ran
instead, unknown (colours as the graph's VCPU state lane).  The table under the bars lists the same
pieces (sortable).  Clicking a piece (bar or table row) frames its intervals on the VCPU's rows of
the graph.  The panel follows the graph's view (or markers A and B) as it changes; each range is
computed once, off the GUI thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PySide6 import QtCore, QtWidgets

from ..model.analysis.vcputime import STATE_ORDER, time_of, vcpu_intervals
from ..model.session import Session
from ..plots.bars import Segment, StackedBars
from .analysisrange import (
    STATE_TEXT,
    AnalysisContext,
    GraphMarks,
    Lane,
    NumItem,
    RangePanel,
    detail_color,
    fill_table,
    make_table,
    ms_text,
    row_key,
    vcpu_specs,
)

KEY = ["guest", "vcpu", "host_pid", "state", "reason", "by_pid", "by_comm"]
"""One bar piece per distinct value of these interval columns."""


@dataclass
class VcpuTime:
    """One range's results: the model's tables, and the bar pieces summed from the intervals."""

    t0: int
    t1: int
    intervals: pa.Table
    totals: pa.Table
    pieces: pa.Table
    """KEY columns + ``total_ns``, ``count``; ordered by VCPU, then :data:`STATE_ORDER`, then
    time (most first)."""


def pieces(intervals: pa.Table, t0: int, t1: int) -> pa.Table:
    """Nanoseconds and interval count per bar piece (see :data:`KEY`), intervals clipped to [t0, t1]."""
    s = np.clip(intervals.column("start").to_numpy(), t0, t1)
    e = np.clip(intervals.column("end").to_numpy(), t0, t1)
    t = intervals.select(KEY).append_column("dur", pa.array(e - s, pa.int64()))
    t = pc.filter(t, pc.greater(t.column("dur"), 0)) if t.num_rows else t
    g = t.group_by(KEY, use_threads=False).aggregate([("dur", "sum"), ("dur", "count")])
    g = g.select([*KEY, "dur_sum", "dur_count"]).rename_columns([*KEY, "total_ns", "count"])
    rank = pa.array([STATE_ORDER.index(x) if x in STATE_ORDER else len(STATE_ORDER)
                     for x in g.column("state").to_pylist()], pa.int32())
    g = g.append_column("rank", rank)
    g = g.sort_by([("guest", "ascending"), ("vcpu", "ascending"), ("host_pid", "ascending"),
                   ("rank", "ascending"), ("total_ns", "descending")])
    return g.drop_columns(["rank"])


def compute(session: Session, t0: int, t1: int, vcpu_map: dict[str, dict[int, int]]) -> VcpuTime:
    """The panel's tables over [t0, t1] with the user's part of the window's VCPU map (runs in the
    worker); ``vcpu_time`` is ``time_of(vcpu_intervals(...))``: the lanes are built once."""
    iv = vcpu_intervals(session, t0, t1, vcpu_map=vcpu_map)
    return VcpuTime(t0, t1, iv, time_of(iv), pieces(iv, t0, t1))


def piece_text(state: str, reason: str | None, by_pid: int | None, by_comm: str | None) -> str:
    """What a piece is, in words: ``VM exit: EPT_VIOLATION``, ``preempted on host by kworker/1:2-88``."""
    text = STATE_TEXT.get(state, state)
    if state == "exit" and reason:
        return f"{text}: {reason}"
    if state == "preempted" and by_pid is not None and by_pid >= 0:
        return f"{text} by {by_comm or '?'}-{by_pid}"
    return text


def vcpu_name(guest: str, vcpu: int, host_pid: int) -> str:
    if not guest:
        return f"VM thread {host_pid} VCPU{vcpu}"
    return f"{guest} VCPU{vcpu}" + (" (guest view)" if host_pid < 0 else "")


class VcpuTimePanel(RangePanel):
    """See the module doc.  ``window`` is the main window (timeline, model)."""

    HEADERS = ["VCPU", "Host PID", "State", "Detail", "Time", "Share", "Intervals"]
    KEY, WHAT = "vcputime", "VCPU time"
    analysis = staticmethod(compute)

    def __init__(self, window, ctx: AnalysisContext, parent=None) -> None:
        super().__init__(window, ctx, "view", parent)
        self.result: VcpuTime | None = None
        self.bar_keys: list[tuple[str, int, int]] = []
        self.bars = StackedBars(unit="ms", scale=1e-6)
        self.bars.setToolTip("Click a piece: its intervals are framed on the VCPU's rows of the graph")
        self.table = make_table(self.HEADERS)
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        split.addWidget(self.bars)
        split.addWidget(self.table)
        split.setSizes([220, 300])
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(self.head())
        lay.addWidget(split, 1)
        self.marks = GraphMarks(window.timeline, window.model, color=(20, 20, 20), fill_alpha=30)
        self.bars.segmentClicked.connect(self._pick_segment)
        self.table.cellClicked.connect(lambda r, _c: self._pick_row(r))
        self.refresh()

    def _ready(self, _key, res: VcpuTime) -> None:
        self.result = res
        p = res.pieces
        cols = {n: p.column(n).to_pylist() for n in p.column_names}
        bars: dict[tuple[str, int, int], list[Segment]] = {}
        rows, keys = [], []
        thread_total: dict[tuple[str, int, int], int] = {}
        for i in range(p.num_rows):
            k = (cols["guest"][i], cols["vcpu"][i], cols["host_pid"][i])
            thread_total[k] = thread_total.get(k, 0) + cols["total_ns"][i]
        for i in range(p.num_rows):
            k = (cols["guest"][i], cols["vcpu"][i], cols["host_pid"][i])
            state, reason, by_pid, by_comm = cols["state"][i], cols["reason"][i], cols["by_pid"][i], cols["by_comm"][i]
            detail = reason if state == "exit" else (f"{by_comm or '?'}-{by_pid}" if state == "preempted"
                                                     and by_pid is not None and by_pid >= 0 else "")
            text = piece_text(state, reason, by_pid, by_comm)
            ns = cols["total_ns"][i]
            bars.setdefault(k, []).append(Segment(f"{text}, {cols['count'][i]:,} interval"
                                                  f"{'s' * (cols['count'][i] != 1)}", ns,
                                                  detail_color(state, detail or ""), i))
            share = ns / thread_total[k] * 100 if thread_total[k] else 0.0
            rows.append([QtWidgets.QTableWidgetItem(vcpu_name(*k)), NumItem(str(k[2]), k[2]),
                         QtWidgets.QTableWidgetItem(STATE_TEXT.get(state, state)),
                         QtWidgets.QTableWidgetItem(detail or ""), NumItem(ms_text(ns), ns),
                         NumItem(f"{share:.1f}%", share), NumItem(f"{cols['count'][i]:,}", cols["count"][i])])
            keys.append(i)
        self.bar_keys = list(bars)
        self.bars.set_bars([vcpu_name(*k) for k in self.bar_keys], [bars[k] for k in self.bar_keys])
        fill_table(self.table, rows, keys)
        span = res.t1 - res.t0
        self.summary.setText(f"{len(self.bar_keys)} VCPU thread{'s' * (len(self.bar_keys) != 1)} over "
                             f"{ms_text(span)}" if self.bar_keys else
                             "No VCPU in this range (a host trace with kvm events or a VCPU map is needed).")
        self.computed.emit()

    # -- showing a piece on the graph -------------------------------------------------------------
    def _pick_segment(self, bar: int, seg: int) -> None:
        self.show_piece(self.bars.bars[bar][seg].key)

    def _pick_row(self, row: int) -> None:
        i = row_key(self.table, row)
        if i is not None:
            self.show_piece(int(i))
            for b, segs in enumerate(self.bars.bars):  # the same piece outlined in its bar
                for s, seg in enumerate(segs):
                    if seg.key == i:
                        self.bars.select(b, s)

    def piece_intervals(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Sorted (start, end) of bar piece ``i`` (a row of ``result.pieces``), clipped to the range."""
        res = self.result
        iv = res.intervals
        m = np.ones(iv.num_rows, bool)
        for c in KEY:
            want = res.pieces.column(c)[i].as_py()
            col = iv.column(c)
            eq = pc.is_null(col) if want is None else pc.fill_null(pc.equal(col, pa.scalar(want, col.type)), False)
            m &= np.asarray(eq.to_numpy(zero_copy_only=False), bool)
        s = np.clip(iv.column("start").to_numpy()[m], res.t0, res.t1)
        e = np.clip(iv.column("end").to_numpy()[m], res.t0, res.t1)
        keep = e > s
        o = np.argsort(s[keep], kind="stable")
        return s[keep][o], e[keep][o]

    def show_piece(self, i: int) -> list[int]:
        """Frame piece ``i``'s intervals on its VCPU's rows; returns the rows framed."""
        if self.result is None:
            return []
        p = self.result.pieces
        g, v, pid = (p.column(c)[i].as_py() for c in ("guest", "vcpu", "host_pid"))
        s, e = self.piece_intervals(i)
        host = self.session.host_stream
        specs = vcpu_specs(self.window.model, g, v, host.index if host else None, pid)
        rows = self.marks.show([Lane(sp, s, e) for sp in specs])
        state = p.column("state")[i].as_py()
        self.summary.setText(f"{vcpu_name(g, v, pid)}: {len(s):,} interval{'s' * (len(s) != 1)} "
                             f"{STATE_TEXT.get(state, state)}, {ms_text(int((e - s).sum()))}, framed on the graph")
        return rows
