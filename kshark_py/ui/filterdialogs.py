"""Filter dialogs (KernelShark's Filter menu): checkable trees of events, tasks, CPUs and streams, and
the advanced field-filter editor.  They only read and write a :class:`~kshark_py.model.filters.Filters`
object; the list and the graph follow through its change notification.

A check box means "shown".  On Apply, each stream's set is stored the way KernelShark stores it:
all checked clears the filter, otherwise the shorter of the checked list (as a show filter) and the
unchecked list (as a hide filter) is kept, so sessions stay small and read naturally.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..model.distinct import value_counts
from ..model.fieldexpr import FieldFilter, FilterSyntaxError
from ..model.filters import Filters
from ..model.merged import stream_column
from ..model.session import Session, Stream
from ..model.taskindex import TaskIndex

ValueRole = Qt.ItemDataRole.UserRole + 1
"""Leaf items carry (stream index, value) in this role."""


def shown(value: int, show: frozenset[int], hide: frozenset[int]) -> bool:
    """KernelShark's pass test for one value."""
    return (not show or value in show) and value not in hide


def sets_for(checked: Iterable[int], unchecked: Iterable[int]) -> tuple[set[int], set[int]]:
    """(show, hide) sets that make exactly ``checked`` visible, the compact KernelShark way."""
    c, u = set(checked), set(unchecked)
    if not u:
        return set(), set()
    if not c:
        return set(), u
    return (c, set()) if len(c) < len(u) else (set(), u)


class CheckTreeDialog(QDialog):
    """A tree with check boxes: streams at the top, values (event ids, pids, CPUs) at the leaves."""

    kind = ""
    title = ""

    def __init__(self, session: Session, filters: Filters, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.filters = filters
        self.setWindowTitle(self.title)
        self.resize(460, 560)
        self.tree = QTreeWidget(self)
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Name", "Events"])
        self.tree.setUniformRowHeights(True)
        self.tree.header().setStretchLastSection(False)
        self.tree.header().resizeSection(0, 320)
        self.check_all = QPushButton("Check all", self)
        self.uncheck_all = QPushButton("Uncheck all", self)
        self.check_all.clicked.connect(lambda: self.set_all(True))
        self.uncheck_all.clicked.connect(lambda: self.set_all(False))
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Apply | QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel, self)
        self.buttons.button(QDialogButtonBox.StandardButton.Apply).clicked.connect(self.apply)
        self.buttons.accepted.connect(self._ok)
        self.buttons.rejected.connect(self.reject)
        top = QHBoxLayout()
        top.addWidget(self.check_all)
        top.addWidget(self.uncheck_all)
        top.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.tree)
        lay.addWidget(self.buttons)
        self.stream_items: dict[int, QTreeWidgetItem] = {}
        self.populate()
        self.tree.expandToDepth(0)

    # ---- building -----------------------------------------------------------------------
    def populate(self) -> None:
        for st in self.session.streams:
            item = self._group(self.tree, f"{st.name}  ({len(st.buffer.events)} events)")
            self.stream_items[st.index] = item
            self.fill_stream(st, item)

    def fill_stream(self, st: Stream, parent: QTreeWidgetItem) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _group(self, parent: QTreeWidget | QTreeWidgetItem, text: str) -> QTreeWidgetItem:
        item = QTreeWidgetItem(parent, [text])
        item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsAutoTristate)
        item.setCheckState(0, Qt.CheckState.Checked)
        return item

    def _leaf(self, parent: QTreeWidgetItem, text: str, stream: int, value: int, count: int) -> QTreeWidgetItem:
        item = QTreeWidgetItem(parent, [text, str(count)])
        item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsSelectable)
        item.setData(0, ValueRole, (stream, value))
        item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        show = self.filters.get(stream, self.kind, "show")
        hide = self.filters.get(stream, self.kind, "hide")
        on = shown(value, show, hide)
        item.setCheckState(0, Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
        return item

    # ---- reading --------------------------------------------------------------------------
    def leaves(self, stream: int | None = None) -> list[QTreeWidgetItem]:
        out = []
        roots = [self.stream_items[stream]] if stream is not None else list(self.stream_items.values())
        stack = list(roots)
        while stack:
            it = stack.pop()
            if it.data(0, ValueRole) is not None:
                out.append(it)
            stack.extend(it.child(i) for i in range(it.childCount()))
        return out

    def leaf(self, stream: int, value: int) -> QTreeWidgetItem | None:
        """The leaf of ``value`` in ``stream`` (tests and callers that pre-check items)."""
        return next((it for it in self.leaves(stream) if tuple(it.data(0, ValueRole)) == (stream, value)), None)

    def set_checked(self, stream: int, value: int, on: bool) -> None:
        it = self.leaf(stream, value)
        if it is None:
            raise KeyError(f"no item {value} in stream {stream}")
        it.setCheckState(0, Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def set_all(self, on: bool) -> None:
        for it in self.stream_items.values():
            it.setCheckState(0, Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def checked_values(self, stream: int) -> tuple[list[int], list[int]]:
        """(checked, unchecked) values of one stream."""
        c, u = [], []
        for it in self.leaves(stream):
            (c if it.checkState(0) == Qt.CheckState.Checked else u).append(int(it.data(0, ValueRole)[1]))
        return c, u

    # ---- applying -------------------------------------------------------------------------
    def apply(self) -> None:
        """Write the tree into the filters (one change notification)."""
        with self.filters.batch():
            for s in self.stream_items:
                show, hide = sets_for(*self.checked_values(s))
                self.filters.set(s, self.kind, "show", show)
                self.filters.set(s, self.kind, "hide", hide)

    def _ok(self) -> None:
        self.apply()
        self.accept()


class EventFilterDialog(CheckTreeDialog):
    """Show events: stream > system > event, with each event type's count."""

    kind = "event"
    title = "Filter events"

    def fill_stream(self, st: Stream, parent: QTreeWidgetItem) -> None:
        ids, counts = value_counts(stream_column(st, "event_id"))
        by_sys: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
        for eid, n in zip(ids.tolist(), counts.tolist(), strict=True):
            ev = st.trace.formats.get(eid)
            by_sys[ev.system if ev else "(unknown)"].append((ev.name if ev else f"id {eid}", eid, n))
        for system in sorted(by_sys):
            g = self._group(parent, system)
            g.setText(1, str(sum(n for _, _, n in by_sys[system])))
            g.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            for name, eid, n in sorted(by_sys[system]):
                self._leaf(g, name, st.index, eid, n)


class TaskFilterDialog(CheckTreeDialog):
    """Show tasks: stream > comm-pid, with each task's event count."""

    kind = "task"
    title = "Filter tasks"

    def __init__(self, session: Session, filters: Filters, tasks: TaskIndex | None = None,
                 parent: QWidget | None = None) -> None:
        self.tasks = tasks if tasks is not None else TaskIndex(session)
        super().__init__(session, filters, parent)

    def fill_stream(self, st: Stream, parent: QTreeWidgetItem) -> None:
        for pid, comm, n in self.tasks.tasks(st.index):
            self._leaf(parent, f"{comm}-{pid}", st.index, pid, n)


class CpuFilterDialog(CheckTreeDialog):
    """Show CPUs: stream > CPU n, with each CPU's event count."""

    kind = "cpu"
    title = "Filter CPUs"

    def fill_stream(self, st: Stream, parent: QTreeWidgetItem) -> None:
        cpus = stream_column(st, "cpu")
        counts = np.bincount(cpus.astype(np.int64), minlength=st.cpu_count) if len(cpus) else \
            np.zeros(st.cpu_count, np.int64)
        for c in range(max(st.cpu_count, len(counts))):
            self._leaf(parent, f"CPU {c}", st.index, c, int(counts[c]) if c < len(counts) else 0)


class StreamFilterDialog(QDialog):
    """Switch whole streams (host, each guest, each instance) on and off."""

    def __init__(self, session: Session, filters: Filters, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.filters = filters
        self.setWindowTitle("Filter streams")
        lay = QVBoxLayout(self)
        self.boxes: dict[int, QCheckBox] = {}
        for st in session.streams:
            b = QCheckBox(f"{st.name}  ({st.role}, {len(st.buffer.events)} events)", self)
            b.setChecked(filters.stream_enabled(st.index))
            self.boxes[st.index] = b
            lay.addWidget(b)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self._ok)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)

    def apply(self) -> None:
        with self.filters.batch():
            for s, b in self.boxes.items():
                self.filters.set_stream_enabled(s, b.isChecked())

    def _ok(self) -> None:
        self.apply()
        self.accept()


class FieldFilterDialog(QDialog):
    """Advanced filtering: an expression on one event type's fields, validated as it is typed.

    ``prev_pid == 0``, ``next_comm ~ "kworker*" && prev_state != 0``, ``!(irq == 1)``: numbers compare
    with == != < <= > >=, strings with == != ~ (glob) !~ (not glob) =~ (regex).
    """

    def __init__(self, session: Session, filters: Filters, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.filters = filters
        self.setWindowTitle("Advanced filtering (event fields)")
        self.resize(640, 420)
        self.stream = QComboBox(self)
        for st in session.streams:
            self.stream.addItem(st.name, st.index)
        self.event = QComboBox(self)
        self.event.setEditable(False)
        self.expr = QLineEdit(self)
        self.expr.setPlaceholderText('e.g.  prev_pid == 0 && next_comm ~ "kworker*"')
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self.fields_hint = QLabel("", self)
        self.fields_hint.setWordWrap(True)
        self.fields_hint.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.only_matching = QCheckBox("Hide events of types without a field filter (KernelShark's behaviour)", self)
        self.current = QListWidget(self)
        self.remove_button = QPushButton("Remove selected", self)
        self.apply_button = QPushButton("Apply", self)
        self.apply_button.setDefault(True)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        close.rejected.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(QLabel("Stream", self))
        row.addWidget(self.stream)
        row.addWidget(QLabel("Event", self))
        row.addWidget(self.event, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(row)
        lay.addWidget(self.fields_hint)
        erow = QHBoxLayout()
        erow.addWidget(self.expr, 1)
        erow.addWidget(self.apply_button)
        lay.addLayout(erow)
        lay.addWidget(self.status)
        lay.addWidget(self.only_matching)
        lay.addWidget(QLabel("Field filters set:", self))
        lay.addWidget(self.current, 1)
        brow = QHBoxLayout()
        brow.addWidget(self.remove_button)
        brow.addStretch(1)
        brow.addWidget(close)
        lay.addLayout(brow)
        self.stream.currentIndexChanged.connect(self._stream_changed)
        self.event.currentIndexChanged.connect(self._event_changed)
        self.expr.textChanged.connect(self.validate)
        self.apply_button.clicked.connect(self.apply)
        self.remove_button.clicked.connect(self.remove_selected)
        self.only_matching.toggled.connect(
            lambda on: self.filters.set_only_matching(self.current_stream().index, on))
        self._stream_changed()

    def current_stream(self) -> Stream:
        return self.session.streams[int(self.stream.currentData())]

    def current_event_id(self) -> int | None:
        d = self.event.currentData()
        return None if d is None else int(d)

    def select(self, stream: int, event_name: str) -> None:
        """Choose stream and event (``name`` or ``system/name``) as a user would."""
        self.stream.setCurrentIndex(self.stream.findData(stream))
        i = next((k for k in range(self.event.count())
                  if self.event.itemText(k) == event_name or self.event.itemText(k).endswith("/" + event_name)), -1)
        if i < 0:
            raise KeyError(event_name)
        self.event.setCurrentIndex(i)

    def _stream_changed(self) -> None:
        st = self.current_stream()
        ids = value_counts(stream_column(st, "event_id"))[0].tolist()
        evs = sorted((ev for i in ids if (ev := st.trace.formats.get(i)) is not None),
                     key=lambda e: (e.system, e.name))
        self.event.blockSignals(True)
        self.event.clear()
        for ev in evs:
            self.event.addItem(f"{ev.system}/{ev.name}", ev.id)
        self.event.blockSignals(False)
        self.only_matching.blockSignals(True)
        self.only_matching.setChecked(self.filters.only_matching(st.index))
        self.only_matching.blockSignals(False)
        self._event_changed()
        self._refresh_list()

    def _event_changed(self) -> None:
        st = self.current_stream()
        eid = self.current_event_id()
        ev = st.trace.formats.get(eid) if eid is not None else None
        if ev is None:
            self.fields_hint.setText("")
            return
        parts = []
        for f in ev.fields:
            kind = "string" if f.is_string else ("array" if f.is_array or f.dynamic else "number")
            parts.append(f"{f.name} ({kind})")
        self.fields_hint.setText("Fields: " + ", ".join(parts) + "  ·  also common_pid, common_flags, "
                                 "common_preempt_count")
        ff = self.filters.field_filters(st.index).get(ev.id)
        self.expr.setText(ff.expr if ff else "")
        self.validate()

    def validate(self) -> FieldFilter | None:
        """Parse the expression; show the reason when it is not valid."""
        st = self.current_stream()
        eid = self.current_event_id()
        text = self.expr.text()
        ev = st.trace.formats.get(eid) if eid is not None else None
        if ev is None:
            self._status("choose an event", ok=False)
            return None
        if not text.strip():
            self._status("empty: Apply removes this event's filter", ok=True)
            return None
        try:
            ff = FieldFilter.parse(text, ev)
        except FilterSyntaxError as e:
            self._status(str(e), ok=False)
            self.apply_button.setEnabled(False)
            return None
        self._status(f"valid: {ff.condition}", ok=True)
        return ff

    def _status(self, text: str, *, ok: bool) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("color: #1b7a1b;" if ok else "color: #b00020;")
        self.apply_button.setEnabled(ok)

    def apply(self) -> None:
        """Set (or, with an empty expression, remove) the filter of the chosen event."""
        st = self.current_stream()
        eid = self.current_event_id()
        if eid is None:
            return
        try:
            self.filters.set_field_filter(st, eid, self.expr.text())
        except FilterSyntaxError as e:
            self._status(str(e), ok=False)
            return
        res = self.filters.field_matches(st, eid)
        if res is not None:
            rows, hit = res
            name = self.event.currentText().split("/")[-1]
            self._status(f"applied: {int(hit.sum())} of {len(rows)} {name} events match", ok=True)
        self._refresh_list()

    def _refresh_list(self) -> None:
        self.current.clear()
        for st in self.session.streams:
            for eid, ff in sorted(self.filters.field_filters(st.index).items()):
                it = QListWidgetItem(f"{st.name}: {ff.system}/{ff.event_name}: {ff.condition}", self.current)
                it.setData(ValueRole, (st.index, eid))

    def remove_selected(self) -> None:
        for it in self.current.selectedItems():
            s, eid = it.data(ValueRole)
            self.filters.set_field_filter(self.session.streams[s], eid, None)
        self._refresh_list()
        self._event_changed()
