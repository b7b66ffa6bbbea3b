"""Analysis > Latency plot: the time from a start event to an end event whose fields match
(KernelShark's latency_plot plugin), as boxes on the rows, a histogram and the worst pairs.

:class:`LatencyDialog` picks the two events and the fields that must be equal (presets for the
usual questions: an IRQ handler by irq, a system call by pid, a VM exit by host thread).
:class:`LatencyPanel` shows one such analysis: a summary, a pyqtgraph histogram of the
latencies, the worst N pairs (click one: the graph centres it with markers A and B on its start
and end, the list selects the end event).  Every pair is framed on the rows of its end event, as
KernelShark keys its latency marks: the end's CPU row and its task's row
(:class:`LatencyLanes`, drawn by a :class:`~kshark_py.plots.boxes.BoxLayer`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from ..model.analysis.latency import latency_histogram, latency_pairs
from ..model.session import Session
from ..model.viewmodel import Row
from ..plots.boxes import BoxLane
from .arrowtable import ArrowTableModel, Column, table_view, time_column, us_column, us_text

LATENCY_COLOR = (255, 140, 0)
"""KernelShark's latency_plot orange."""
HIST_BINS = 50
WORST_N = 50


@dataclass(frozen=True)
class Preset:
    label: str
    start: str
    end: str
    match: tuple[tuple[str, str], ...]


PRESETS = [
    Preset("IRQ handler: irq_handler_entry -> irq_handler_exit, same irq", "irq:irq_handler_entry",
           "irq:irq_handler_exit", (("irq", "irq"),)),
    Preset("Softirq: softirq_entry -> softirq_exit, same vec and CPU", "irq:softirq_entry", "irq:softirq_exit",
           (("vec", "vec"), ("common_cpu", "common_cpu"))),
    Preset("System call: sys_enter -> sys_exit, same pid", "raw_syscalls:sys_enter", "raw_syscalls:sys_exit",
           (("common_pid", "common_pid"),)),
    Preset("VM exit: kvm_exit -> kvm_entry, same host thread", "kvm:kvm_exit", "kvm:kvm_entry",
           (("common_pid", "common_pid"),)),
    Preset("Wakeup: sched_waking -> sched_switch, pid = next_pid", "sched:sched_waking", "sched:sched_switch",
           (("pid", "next_pid"),)),
]
"""The usual questions, offered first in the dialog."""

COMMON_FIELDS = ["common_pid", "common_cpu"]


@dataclass(frozen=True)
class LatencyRequest:
    """What the user asked for: ``latency_pairs(session, start, end, match)``."""

    start: str
    end: str
    match: tuple[tuple[str, str], ...] = ()

    @property
    def title(self) -> str:
        m = ", ".join(f"{a} = {b}" if a != b else a for a, b in self.match)
        return f"{self.start.split(':')[-1]} -> {self.end.split(':')[-1]}" + (f" by {m}" if m else "")


def event_choices(session: Session) -> list[tuple[str, int]]:
    """``(system:name, records)`` of every event type that has records in some stream, most first."""
    counts: dict[str, int] = {}
    for st in session.streams:
        ids, n = np.unique(st.buffer.events.column("event_id").to_numpy(), return_counts=True)
        for i, c in zip(ids.tolist(), n.tolist(), strict=True):
            ev = st.trace.formats.get(int(i))
            if ev is not None:
                counts[ev.full_name] = counts.get(ev.full_name, 0) + int(c)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def event_fields(session: Session, name: str) -> list[str]:
    """The fields a match can use for event ``name``: its numbers and strings, then the record's pid and CPU."""
    for st in session.streams:
        ev = st.trace.formats.find(name)
        if ev is not None:
            return [f.name for f in ev.fields if f.is_string or (f.dynamic is None and not f.is_array)] + COMMON_FIELDS
    return list(COMMON_FIELDS)


class LatencyDialog(QtWidgets.QDialog):
    """Pick start event, end event and the fields that must match (see the module doc)."""

    def __init__(self, session: Session, parent=None, request: LatencyRequest | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Latency plot")
        self.session = session
        self.result_request: LatencyRequest | None = None
        present = event_choices(session)
        self.present = {n for n, _ in present}
        self.preset = QtWidgets.QComboBox()
        self.preset.addItem("(choose a preset)", None)
        for p in PRESETS:
            have = p.start in self.present and p.end in self.present
            self.preset.addItem(p.label + ("" if have else "  (not in this trace)"), p)
        self.preset.currentIndexChanged.connect(self._preset)
        self.start = self._event_box(present)
        self.end = self._event_box(present)
        self.start.currentTextChanged.connect(lambda *_: self._fields_for(self.start_field, self.start))
        self.end.currentTextChanged.connect(lambda *_: self._fields_for(self.end_field, self.end))
        self.start_field = QtWidgets.QComboBox()
        self.end_field = QtWidgets.QComboBox()
        add = QtWidgets.QPushButton("Add match")
        add.clicked.connect(self._add_match)
        self.matches = QtWidgets.QListWidget()
        self.matches.setMaximumHeight(90)
        remove = QtWidgets.QPushButton("Remove")
        remove.clicked.connect(lambda: [self.matches.takeItem(self.matches.row(i))
                                        for i in self.matches.selectedItems()])
        match_row = QtWidgets.QHBoxLayout()
        match_row.addWidget(self.start_field, 1)
        match_row.addWidget(QtWidgets.QLabel("="))
        match_row.addWidget(self.end_field, 1)
        match_row.addWidget(add)
        form = QtWidgets.QFormLayout()
        form.addRow("Preset:", self.preset)
        form.addRow("Start event:", self.start)
        form.addRow("End event:", self.end)
        form.addRow("Match field:", match_row)
        lst = QtWidgets.QHBoxLayout()
        lst.addWidget(self.matches, 1)
        lst.addWidget(remove, 0, QtCore.Qt.AlignmentFlag.AlignTop)
        form.addRow("Fields that must be equal:", lst)
        self.error = QtWidgets.QLabel()
        self.error.setStyleSheet("color: #b00")
        self.error.setWordWrap(True)
        note = QtWidgets.QLabel("Each start pairs with the first later end whose fields match, until the next "
                                "start with the same values (KernelShark's rule).")
        note.setWordWrap(True)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Ok
                                             | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(note)
        lay.addWidget(self.error)
        lay.addWidget(buttons)
        self.resize(620, 360)
        if request is not None:
            self.set_request(request)
        else:
            first = next((i + 1 for i, p in enumerate(PRESETS) if p.start in self.present and p.end in self.present),
                         None)
            if first is not None:
                self.preset.setCurrentIndex(first)

    def _event_box(self, present: list[tuple[str, int]]) -> QtWidgets.QComboBox:
        box = QtWidgets.QComboBox()
        box.setEditable(True)
        for name, n in present:
            box.addItem(name, n)
            box.setItemData(box.count() - 1, f"{n:,} records", QtCore.Qt.ItemDataRole.ToolTipRole)
        box.setInsertPolicy(QtWidgets.QComboBox.InsertPolicy.NoInsert)
        box.completer().setFilterMode(QtCore.Qt.MatchFlag.MatchContains)
        box.completer().setCompletionMode(QtWidgets.QCompleter.CompletionMode.PopupCompletion)
        return box

    def _fields_for(self, field_box: QtWidgets.QComboBox, event_box: QtWidgets.QComboBox) -> None:
        field_box.clear()
        field_box.addItems(event_fields(self.session, event_box.currentText().strip()))

    def _add_match(self) -> None:
        a, b = self.start_field.currentText(), self.end_field.currentText()
        if a and b and not self.matches.findItems(f"{a} = {b}", QtCore.Qt.MatchFlag.MatchExactly):
            self.matches.addItem(f"{a} = {b}")

    def _preset(self, index: int) -> None:
        p = self.preset.itemData(index)
        if isinstance(p, Preset):
            self.set_request(LatencyRequest(p.start, p.end, p.match))

    def set_request(self, req: LatencyRequest) -> None:
        self.start.setCurrentText(req.start)
        self.end.setCurrentText(req.end)
        self.matches.clear()
        for a, b in req.match:
            self.matches.addItem(f"{a} = {b}")

    def request(self) -> LatencyRequest:
        match = tuple(tuple(s.strip() for s in self.matches.item(i).text().split("=", 1))
                      for i in range(self.matches.count()))
        return LatencyRequest(self.start.currentText().strip(), self.end.currentText().strip(), match)

    def problem(self, req: LatencyRequest) -> str | None:
        """Why ``req`` cannot be computed (an unknown event or field), or None."""
        for name in (req.start, req.end):
            if not any(st.trace.formats.find(name) for st in self.session.streams):
                return f"No loaded stream has the event {name!r}."
        for a, b in req.match:
            for name, f in ((req.start, a), (req.end, b)):
                if f not in event_fields(self.session, name):
                    return f"Event {name} has no field {f!r}."
        return None

    def _accept(self) -> None:
        req = self.request()
        why = self.problem(req)
        if why:
            self.error.setText(why)
            return
        self.result_request = req
        self.accept()


class LatencyLanes:
    """Every pair framed on the CPU row and the task row of its end event (KernelShark's keys)."""

    def __init__(self, session: Session, lat: pa.Table) -> None:
        self.by_cpu: dict[tuple[int, int], BoxLane] = {}
        self.by_pid: dict[tuple[int, int], BoxLane] = {}
        if not lat.num_rows:
            return
        stream = lat.column("stream").to_numpy().astype(np.int64)
        start, end = lat.column("start_ts").to_numpy(), lat.column("end_ts").to_numpy()
        erow = lat.column("end_row").to_numpy()
        for s in np.unique(stream).tolist():
            sel = np.flatnonzero(stream == s)
            ev = session.streams[s].buffer.events
            cpu = ev.column("cpu").to_numpy()[erow[sel]]
            pid = ev.column("pid").to_numpy()[erow[sel]]
            for key, into in ((cpu, self.by_cpu), (pid, self.by_pid)):
                o = np.lexsort((start[sel], key))
                k = key[o]
                cut = np.flatnonzero(np.diff(k)) + 1
                for a, b in zip(np.r_[0, cut].tolist(), np.r_[cut, len(k)].tolist(), strict=True):
                    into[(s, int(k[a]))] = BoxLane(start[sel][o[a:b]], end[sel][o[a:b]])

    def for_row(self, row: Row) -> BoxLane | None:
        if row.kind in ("cpu", "vcpu_guest") and row.cpu is not None:
            return self.by_cpu.get((row.stream, int(row.cpu)))
        if row.kind in ("task", "vcpu_host") and row.pid is not None:
            return self.by_pid.get((row.stream, int(row.pid)))
        return None


@dataclass(frozen=True)
class LatencyPair:
    """One pair, as the window needs it to show it."""

    stream: int
    start_ts: int
    end_ts: int
    start_row: int
    end_row: int
    cpu: int
    pid: int


def worst_table(session: Session, lat: pa.Table, n: int, names: Callable[[int, int], str]) -> pa.Table:
    """The ``n`` longest pairs, longest first, with the end event's CPU, pid and task added
    (``end_cpu``, ``end_pid``, ``end_task``)."""
    o = np.argsort(-lat.column("latency_ns").to_numpy(), kind="stable")[:n] if lat.num_rows else np.zeros(0, np.int64)
    top = lat.take(pa.array(o, pa.int64()))
    stream = top.column("stream").to_numpy().astype(np.int64)
    erow = top.column("end_row").to_numpy()
    cpu = np.zeros(len(o), np.int64)
    pid = np.zeros(len(o), np.int64)
    for s in np.unique(stream).tolist():
        sel = stream == s
        ev = session.streams[s].buffer.events
        cpu[sel] = ev.column("cpu").to_numpy()[erow[sel]]
        pid[sel] = ev.column("pid").to_numpy()[erow[sel]]
    task = [f"{names(s, p)}-{p}" for s, p in zip(stream.tolist(), pid.tolist(), strict=True)]
    return top.append_column("end_cpu", pa.array(cpu)).append_column("end_pid", pa.array(pid)) \
        .append_column("end_task", pa.array(task, pa.string()))


class LatencyPanel(QtWidgets.QWidget):
    """One latency analysis (see the module doc).  ``pairChosen`` asks the window to show a pair."""

    pairChosen = QtCore.Signal(object)  # LatencyPair

    def __init__(self, session: Session, names: Callable[[int, int], str], range_box: QtWidgets.QComboBox,
                 range_of: Callable[[str], tuple[int, int] | None], parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.names = names
        self.range_box = range_box
        self.range_of = range_of
        self.range_box.currentIndexChanged.connect(lambda *_: self.refresh())
        self.request: LatencyRequest | None = None
        self.all: pa.Table | None = None
        """Every pair of the trace (the boxes show them all)."""
        self.lat: pa.Table | None = None
        """The pairs inside the chosen range (summary, histogram, worst N)."""
        self.lanes: LatencyLanes | None = None
        self.summary = QtWidgets.QLabel()
        self.summary.setWordWrap(True)
        self.change = QtWidgets.QPushButton("Change...")
        self.boxes = QtWidgets.QCheckBox("Boxes on rows")
        self.boxes.setChecked(True)
        self.boxes.setToolTip("Frame every pair on the CPU row and the task row of its end event")
        self.hist = pg.PlotWidget(background="w")
        self.hist.setLabel("bottom", "latency (µs)")
        self.hist.setLabel("left", "pairs")
        self.hist.setMinimumHeight(150)
        self.hist.setMouseEnabled(x=False, y=False)
        self.hist.hideButtons()
        self.bars: pg.BarGraphItem | None = None
        self.count = QtWidgets.QSpinBox()
        self.count.setRange(1, 10_000)
        self.count.setValue(WORST_N)
        self.count.setPrefix("worst ")
        self.count.valueChanged.connect(lambda *_: self._fill_worst())
        self.model = ArrowTableModel([], self)
        self.table = table_view(self.model, self.choose)
        head = QtWidgets.QHBoxLayout()
        head.addWidget(self.summary, 1)
        head.addWidget(self.change)
        opts = QtWidgets.QHBoxLayout()
        opts.addWidget(QtWidgets.QLabel("Range:"))
        opts.addWidget(self.range_box)
        opts.addWidget(self.count)
        opts.addStretch(1)
        opts.addWidget(self.boxes)
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        split.addWidget(self.hist)
        split.addWidget(self.table)
        split.setSizes([200, 300])
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(head)
        lay.addLayout(opts)
        lay.addWidget(split, 1)

    def compute(self, req: LatencyRequest | None = None) -> None:
        """Pair the whole trace for ``req`` (default: the current request again, after a time offset)."""
        self.request = req or self.request
        if self.request is None:
            return
        r = self.request
        self.all = latency_pairs(self.session, r.start, r.end, list(r.match))
        self.lanes = LatencyLanes(self.session, self.all)
        self.refresh()

    def refresh(self) -> None:
        """Summary, histogram and worst pairs over the chosen range (pairs wholly inside it)."""
        if self.all is None or self.request is None:
            return
        r = self.request
        mode = str(self.range_box.currentData())
        win = self.range_of(mode)
        if win is None and mode == "markers":
            self.summary.setText(f"<b>{r.title}</b>: set markers A and B (click the graph with A, then with B) "
                                 "to see the pairs between them.")
            return
        self.lat = self.all
        if win is not None:
            s, e = self.all.column("start_ts").to_numpy(), self.all.column("end_ts").to_numpy()
            self.lat = self.all.filter(pa.array((s >= win[0]) & (e <= win[1])))
        lat = self.lat.column("latency_ns").to_numpy()
        if len(lat):
            p50, p99 = np.percentile(lat, [50, 99], method="inverted_cdf")
            self.summary.setText(f"<b>{r.title}</b>: {len(lat):,} pairs, p50 {us_text(int(p50))} µs, "
                                 f"p99 {us_text(int(p99))} µs, max {us_text(int(lat.max()))} µs")
        else:
            self.summary.setText(f"<b>{r.title}</b>: no pair " + ("in this range" if win is not None else
                                                                  "in this trace"))
        edges, counts = latency_histogram(self.lat, HIST_BINS)
        if self.bars is not None:
            self.hist.removeItem(self.bars)
        self.bars = pg.BarGraphItem(x0=edges[:-1] / 1e3, x1=edges[1:] / 1e3, height=counts,
                                    brush=pg.mkBrush(*LATENCY_COLOR, 200), pen=pg.mkPen(120, 70, 0))
        self.hist.addItem(self.bars)
        self.hist.setXRange(edges[0] / 1e3, edges[-1] / 1e3, padding=0.02)
        self.hist.setYRange(0, max(1, int(counts.max()) if len(counts) else 1), padding=0.05)
        self.histogram = (edges, counts)
        self._fill_worst()

    def _fill_worst(self) -> None:
        if self.lat is None or self.request is None:
            return
        top = worst_table(self.session, self.lat, self.count.value(), self.names)
        names = np.array([st.name for st in self.session.streams], dtype=object)
        cols = [us_column("Latency (µs)", "latency_ns"), time_column("Start (s)", "start_ts"),
                time_column("End (s)", "end_ts"), Column("CPU", "end_cpu", tip="CPU of the end event"),
                Column("Task", "end_task", tip="task of the end event")]
        cols += [Column(a, a, tip=f"the start's {a}") for a, _ in self.request.match if a in top.column_names]
        if top.num_rows and top.column("across_loss").to_numpy(zero_copy_only=False).any():
            cols.append(Column("Across loss", "across_loss", lambda v: "yes" if v else "",
                               "the kernel dropped events between start and end: the real end may be lost"))
        if len(self.session.streams) > 1:
            cols.insert(0, Column("Stream", "stream_name"))
        self.model.columns = cols
        self.model.set_table(top, {"stream_name": lambda t: names[t.column("stream").to_numpy().astype(np.int64)]})
        self.table.sortByColumn(cols.index(next(c for c in cols if c.name == "latency_ns")),
                                QtCore.Qt.SortOrder.DescendingOrder)  # worst first, and the header says so
        self.table.resizeColumnsToContents()

    def pair_at(self, view_row: int) -> LatencyPair:
        t = self.model.table
        k = self.model.source_row(view_row)
        r = t.slice(k, 1).to_pylist()[0]
        return LatencyPair(int(r["stream"]), int(r["start_ts"]), int(r["end_ts"]), int(r["start_row"]),
                           int(r["end_row"]), int(r["end_cpu"]), int(r["end_pid"]))

    def choose(self, view_row: int) -> None:
        if 0 <= view_row < self.model.rowCount():
            self.pairChosen.emit(self.pair_at(view_row))
