"""Cross-layer latency panel (issue 12, item 6): why a guest task's time went where it went.

For a guest task between markers A and B (or over the graph's view), or for one of its wakeups,
:mod:`kshark_py.model.analysis.crosslayer` splits the wall time into guest and host causes: running
with the VCPU in guest mode, the VCPU in exit handling, the VCPU's thread preempted on the host by
some host task, runnable in the guest, blocked.  The panel shows the split as one stacked bar, as a
table and as a sentence ("2.900 ms wakeup latency: 0.200 ms in the guest scheduler, 2.700 ms with
VCPU 1's thread preempted on the host by kworker/1:2-88"); clicking a piece frames its intervals
on the task's row of the graph and on the state lane of the VCPU it was on.

Asked from a guest task row's context menu (Explain time between markers A and B / in the view)
and from a selected wakeup (a ``sched_waking`` or the ``sched_switch`` that ends the wakeup,
selected in the event list; the scheduling latency table's jump selects that switch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PySide6 import QtCore, QtWidgets

from ..model.analysis.crosslayer import cross_layer, cross_layer_intervals, explain_wakeup
from ..model.analysis.wakeups import wakeups
from ..model.session import Session
from ..plots.axes import seconds_text
from ..plots.bars import Segment, StackedBars
from .analysisrange import GraphMarks, Lane, NumItem, Worker, detail_color, fill_table, make_table, ms_text, row_key

ORDER = ("blocked", "runnable", "running", "exit", "preempted", "halted", "unknown")
"""Order of the pieces in the bar, the table and the sentence: the life of a wakeup."""
COLORS = {"running": (46, 160, 67), "runnable": (52, 120, 200), "blocked": (200, 200, 210)}
"""The split's own states; the VCPU states (exit, preempted, halted, unknown) take the graph's
VCPU state lane colours (:func:`detail_color`)."""


def vcpu_text(vcpus: list[int]) -> str:
    """``VCPU 1`` when the piece happened on one VCPU, ``its VCPU`` otherwise."""
    return f"VCPU {vcpus[0]}" if len(vcpus) == 1 and vcpus[0] >= 0 else "its VCPU"


def phrase(state: str, detail: str | None, vcpus: list[int] | None = None) -> str:
    """One piece in words, as the sentence says it (``with VCPU 1's thread preempted on the host by
    kworker/1:2-88``); ``vcpus``: the guest CPUs the piece's intervals ran on or waited for."""
    v = vcpu_text(vcpus or [])
    if state == "running":
        return f"running in the guest on {detail}" if detail else "running in the guest"
    if state == "runnable":
        return "in the guest scheduler"
    if state == "exit":
        return f"with {v} in VM exit handling" + (f" ({detail})" if detail else "")
    if state == "preempted":
        return f"with {v}'s thread preempted on the host" + (f" by {detail}" if detail else "")
    if state == "halted":
        return f"with {detail or v} halted"
    if state == "blocked":
        return "blocked" + (f" (woken by {detail})" if detail else "")
    return state + (f" ({detail})" if detail else "")


def ordered(table: pa.Table) -> pa.Table:
    """The split's rows in :data:`ORDER`, larger first within a state; empty pieces left out."""
    if table.num_rows == 0:
        return table
    rank = pa.array([ORDER.index(s) if s in ORDER else len(ORDER) for s in table.column("state").to_pylist()],
                    pa.int32())
    t = table.append_column("rank", rank).sort_by([("rank", "ascending"), ("total_ns", "descending")])
    t = t.drop_columns(["rank"])
    return t.filter(pc.greater(t.column("total_ns"), 0))


def vcpus_of(intervals: pa.Table | None, state: str, detail: str | None) -> list[int]:
    """The distinct VCPUs of one piece's intervals."""
    if intervals is None or intervals.num_rows == 0 or "vcpu" not in intervals.column_names:
        return []
    m = (np.asarray(intervals.column("state").to_pylist(), dtype=object) == state) \
        & (np.asarray(intervals.column("detail").to_pylist(), dtype=object) == detail)
    return sorted(set(intervals.column("vcpu").to_numpy()[m].tolist()))


def sentence(table: pa.Table, what: str, intervals: pa.Table | None = None) -> str:
    """``2.900 ms wakeup latency: 0.200 ms in the guest scheduler, 2.700 ms with VCPU 1's thread
    preempted on the host by kworker/1:2-88.`` (``intervals`` say which VCPU each piece was on)."""
    t = ordered(table)
    total = int(pc.sum(t.column("total_ns")).as_py() or 0) if t.num_rows else 0
    if not total:
        return f"{what}: no time to explain in this range."
    parts = [f"{ms_text(ns)} {phrase(s, d, vcpus_of(intervals, s, d))}"
             for s, d, ns in zip(t.column("state").to_pylist(), t.column("detail").to_pylist(),
                                 t.column("total_ns").to_pylist(), strict=True)]
    return f"{ms_text(total)} {what}: " + ", ".join(parts) + "."


@dataclass
class Explained:
    """One question and its answer."""

    stream: int
    guest: str
    pid: int
    t0: int
    t1: int
    what: str
    """How the sentence names the time: ``wakeup latency``, ``between markers A and B``..."""
    split: pa.Table
    intervals: pa.Table


def explain_range(session: Session, stream: int, pid: int, t0: int, t1: int, what: str,
                  vcpu_map: dict[str, dict[int, int]]) -> Explained:
    """Guest task ``pid`` of ``stream`` over [t0, t1] (runs in the worker)."""
    guest = session.streams[stream].name
    iv = cross_layer_intervals(session, guest, pid, t0, t1, vcpu_map=vcpu_map)
    return Explained(stream, guest, pid, t0, t1, what, cross_layer(session, guest, pid, t0, t1, vcpu_map=vcpu_map),
                     iv)


class NoWakeup(ValueError):
    """The selected event starts or ends no wakeup of a guest task (said to the user as is)."""


def find_wakeup(session: Session, stream: int, row: int) -> dict:
    """The wakeup that the event ``row`` of ``stream`` starts (its waking) or ends (its switch)."""
    w = wakeups(session, [stream])
    for col in ("waking_row", "switch_row"):
        hit = np.flatnonzero(w.column(col).to_numpy() == row)
        if len(hit):
            return {n: w.column(n)[int(hit[0])].as_py() for n in w.column_names}
    raise NoWakeup("The selected event starts no wakeup (a sched_waking of a task that was already runnable, "
                   "or one no switch follows) and ends none: select a sched_waking or the sched_switch that "
                   "runs the woken task.")


def explain_wakeup_at(session: Session, stream: int, row: int, vcpu_map: dict[str, dict[int, int]]) -> Explained:
    """The wakeup event ``row`` of ``stream`` starts or ends (runs in the worker)."""
    w = find_wakeup(session, stream, row)
    guest = session.streams[stream].name
    t0, t1 = int(w["waking_ts"]), int(w["switch_ts"])
    return Explained(stream, guest, int(w["pid"]), t0, t1, "wakeup latency",
                     explain_wakeup(session, stream, int(w["waking_row"]), vcpu_map=vcpu_map),
                     cross_layer_intervals(session, guest, int(w["pid"]), t0, t1, vcpu_map=vcpu_map))


class CrossLayerPanel(QtWidgets.QWidget):
    """See the module doc.  ``window`` is the main window (timeline, model, task names)."""

    computed = QtCore.Signal()

    HEADERS = ["State", "Detail", "Time", "Share"]

    def __init__(self, window, session: Session, parent=None) -> None:
        super().__init__(parent)
        self.window, self.session = window, session
        self.result: Explained | None = None
        self.title = QtWidgets.QLabel("Right-click a guest task row: Explain time between markers A and B.")
        self.title.setWordWrap(True)
        f = self.title.font()
        f.setBold(True)
        self.title.setFont(f)
        self.text = QtWidgets.QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.bar = StackedBars(unit="ms", scale=1e-6)
        self.bar.setMaximumHeight(130)
        self.table = make_table(self.HEADERS)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.title)
        lay.addWidget(self.text)
        lay.addWidget(self.bar)
        lay.addWidget(self.table, 1)
        self.marks = GraphMarks(window.timeline, window.model, color=(120, 40, 200))
        self.worker = Worker(parent=self)
        self.worker.ready.connect(self._ready)
        self.worker.failed.connect(self._failed)
        self.bar.segmentClicked.connect(lambda _b, s: self.show_piece(self.bar.bars[0][s].key))
        self.table.cellClicked.connect(lambda r, _c: self._pick_row(r))

    def _user_map(self) -> dict[str, dict[int, int]]:
        return {g: dict(m) for g, m in self.window.user_map.items()}

    def task_name(self, stream: int, pid: int) -> str:
        return f"{self.window.names(stream, pid)}-{pid}"

    # -- questions -----------------------------------------------------------------------------
    def explain_task(self, stream: int, pid: int, t0: int, t1: int, what: str) -> None:
        """Split guest task ``pid``'s time over [t0, t1] (``what`` names the range in the sentence)."""
        t0, t1 = int(min(t0, t1)), int(max(t0, t1))
        self.title.setText(f"{self.session.streams[stream].name} task {self.task_name(stream, pid)}, "
                           f"{seconds_text(t0)} .. {seconds_text(t1)} s")
        self.text.setText("computing...")
        s, user = self.session, self._user_map()
        self.worker.submit(("task", stream, pid, t0, t1, what),
                           lambda: explain_range(s, stream, pid, t0, t1, what, user))

    def explain_wakeup(self, stream: int, row: int) -> None:
        """Split the wakeup that event ``row`` of guest ``stream`` starts or ends."""
        self.title.setText(f"Wakeup in {self.session.streams[stream].name}")
        self.text.setText("computing...")
        s, user = self.session, self._user_map()
        self.worker.submit(("wakeup", stream, row), lambda: explain_wakeup_at(s, stream, row, user))

    def _failed(self, _key, msg: str) -> None:
        self.result = None
        self.text.setText(msg.split(": ", 1)[1] if msg.startswith("NoWakeup: ") else f"Cannot explain: {msg}")
        self.bar.set_bars([], [])
        fill_table(self.table, [])
        self.computed.emit()

    def _ready(self, _key, res: Explained) -> None:
        self.result = res
        who = self.task_name(res.stream, res.pid)
        self.title.setText(f"{res.guest} task {who}: {res.what}, {seconds_text(res.t0)} .. {seconds_text(res.t1)} s")
        self.text.setText(sentence(res.split, res.what, res.intervals))
        t = ordered(res.split)
        states, details, totals = (t.column(c).to_pylist() for c in ("state", "detail", "total_ns"))
        total = sum(totals)
        segs, rows = [], []
        for i, (s, d, ns) in enumerate(zip(states, details, totals, strict=True)):
            color = COLORS.get(s) or detail_color(s, d or "")
            segs.append(Segment(phrase(s, d, vcpus_of(res.intervals, s, d)), ns, color, i))
            share = ns / total * 100 if total else 0.0
            rows.append([QtWidgets.QTableWidgetItem(s), QtWidgets.QTableWidgetItem(d or ""),
                         NumItem(ms_text(ns), ns), NumItem(f"{share:.1f}%", share)])
        self.pieces = t
        self.bar.set_bars([who], [segs] if segs else [])
        fill_table(self.table, rows, list(range(len(rows))))
        self.computed.emit()

    # -- showing a piece on the graph -------------------------------------------------------------
    def _pick_row(self, row: int) -> None:
        i = row_key(self.table, row)
        if i is not None:
            self.bar.select(0, int(i))
            self.show_piece(int(i))

    def piece_intervals(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sorted (start, end, vcpu) of piece ``i`` (a row of :attr:`pieces`)."""
        iv = self.result.intervals
        state, detail = self.pieces.column("state")[i].as_py(), self.pieces.column("detail")[i].as_py()
        m = np.asarray(iv.column("state").to_pylist(), dtype=object) == state
        m &= np.asarray(iv.column("detail").to_pylist(), dtype=object) == detail
        s, e = iv.column("start").to_numpy()[m], iv.column("end").to_numpy()[m]
        v = iv.column("vcpu").to_numpy()[m] if "vcpu" in iv.column_names else np.full(len(s), -1)
        o = np.argsort(s, kind="stable")
        return s[o], e[o], v[o]

    def show_piece(self, i: int) -> list[int]:
        """Frame piece ``i``'s intervals on the guest task's row (added if the graph lacks it) and
        on the state lane of each VCPU it ran on or waited for (when the graph shows that lane)."""
        if self.result is None:
            return []
        s, e, v = self.piece_intervals(i)
        res = self.result
        lanes = [Lane(("task", res.stream, res.pid), s, e)]
        lanes += [Lane(("vcpu_state", res.guest, int(x)), s[v == x], e[v == x]) for x in np.unique(v) if x >= 0]
        return self.marks.show(lanes)
