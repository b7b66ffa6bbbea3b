"""KernelShark's Plots > CPUs and Plots > Tasks: which rows the timeline shows.

Both dialogs are trees with check boxes (a stream at the top, its CPUs or tasks below) that read
and write only the :class:`~kshark_py.model.viewmodel.TimelineModel`'s row choice; the timeline
follows through the model's ``rows_changed``.  A check box means "this row is shown".
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..model.viewmodel import TimelineModel

ValueRole = Qt.ItemDataRole.UserRole + 1
"""Leaf items carry what they show: ("cpu", stream, cpu), ("pair", guest, vcpu), ("task", stream, pid)."""


class _PlotsDialog(QDialog):
    """A check tree with Check all / Uncheck all and Apply / OK / Cancel."""

    title = ""

    def __init__(self, model: TimelineModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.setWindowTitle(self.title)
        self.resize(460, 560)
        self.tree = QTreeWidget(self)
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Row", "Events"])
        self.tree.setUniformRowHeights(True)
        self.tree.header().resizeSection(0, 320)
        buttons = QHBoxLayout()
        for text, on in (("Check all", True), ("Uncheck all", False)):
            b = QPushButton(text, self)
            b.clicked.connect(lambda _=False, on=on: self.set_all(on))
            buttons.addWidget(b)
        buttons.addStretch(1)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Apply | QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel, self)
        self.buttons.button(QDialogButtonBox.StandardButton.Apply).clicked.connect(self.apply)
        self.buttons.accepted.connect(self._ok)
        self.buttons.rejected.connect(self.reject)
        self.layout_ = QVBoxLayout(self)
        self.layout_.addWidget(self.tree, 1)
        self.layout_.addLayout(buttons)
        self.layout_.addWidget(self.buttons)

    def add_stream(self, text: str) -> QTreeWidgetItem:
        top = QTreeWidgetItem(self.tree, [text])
        top.setFlags(top.flags() | Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsAutoTristate)
        top.setExpanded(True)
        return top

    def add_leaf(self, top: QTreeWidgetItem, text: str, value: tuple, checked: bool, events: str = "") -> None:
        it = QTreeWidgetItem(top, [text, events])
        it.setFlags(it.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        it.setCheckState(0, Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
        it.setData(0, ValueRole, value)

    def leaves(self) -> list[QTreeWidgetItem]:
        out = []
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            out += [top.child(j) for j in range(top.childCount())]
        return out

    def checked(self, kind: str) -> list[tuple]:
        """The values of the checked leaves of one kind, in tree order."""
        return [tuple(it.data(0, ValueRole))[1:] for it in self.leaves()
                if it.data(0, ValueRole)[0] == kind and it.checkState(0) == Qt.CheckState.Checked]

    def set_all(self, on: bool) -> None:
        for it in self.leaves():
            if not it.isHidden():
                it.setCheckState(0, Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def _ok(self) -> None:
        self.apply()
        self.accept()


class CpuPlotsDialog(_PlotsDialog):
    """Plots > CPUs: each stream's CPU rows; for a guest also each VCPU's pair rows (its host
    thread and state lane, KernelShark's combo plot)."""

    title = "Show CPUs"

    def __init__(self, model: TimelineModel, parent: QWidget | None = None) -> None:
        super().__init__(model, parent)
        ss = model.session
        pairs = set(model.pairs())
        shown_pairs = set(model.visible_pairs())
        for stream, ncpu in model.cpu_streams():
            st = ss.streams[stream]
            counts = np.bincount(st.buffer.events.column("cpu").to_numpy(), minlength=ncpu)
            top = self.add_stream(st.name)
            shown = set(model.visible_cpus(stream))
            guest = st.role == "guest" and st.buffer.name == ""
            for c in range(ncpu):
                if guest and (st.name, c) in pairs:
                    self.add_leaf(top, f"VCPU{c} host thread + state", ("pair", st.name, c),
                                  (st.name, c) in shown_pairs)
                self.add_leaf(top, f"VCPU{c} (guest CPU)" if guest else f"CPU {c}", ("cpu", stream, c),
                              c in shown, f"{int(counts[c]):,}")

    def apply(self) -> None:
        chosen = self.checked("cpu")
        for stream, _ in self.model.cpu_streams():
            self.model.set_visible_cpus(stream, [c for s, c in chosen if s == stream])
        self.model.set_visible_pairs(self.checked("pair"))


class TaskPlotsDialog(_PlotsDialog):
    """Plots > Tasks: every task (pid > 0) of every stream, with its event count; a search box
    narrows the tree (a trace holds thousands of tasks)."""

    title = "Show tasks"

    def __init__(self, model: TimelineModel, names: Callable[[int, int], str],
                 parent: QWidget | None = None) -> None:
        super().__init__(model, parent)
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("find a task (name or PID)")
        self.search.textChanged.connect(self._narrow)
        self.layout_.insertWidget(0, self.search)
        self.search.setFocus()  # typing narrows the tree at once
        shown = set(model.visible_tasks())
        for st in model.session.streams:
            pids, counts = np.unique(st.buffer.events.column("pid").to_numpy(), return_counts=True)
            if not len(pids):
                continue
            top = self.add_stream(st.name)
            for p, n in zip(pids.tolist(), counts.tolist(), strict=True):
                if p:
                    self.add_leaf(top, f"{names(st.index, p)}-{p}", ("task", st.index, p),
                                  (st.index, p) in shown, f"{n:,}")

    def _narrow(self, text: str) -> None:
        text = text.strip().lower()
        for it in self.leaves():
            it.setHidden(bool(text) and text not in it.text(0).lower())

    def apply(self) -> None:
        chosen = set(self.checked("task"))
        keep = [t for t in self.model.visible_tasks() if t in chosen]  # shown rows keep their order
        self.model.set_visible_tasks(keep + [t for t in self.checked("task") if t not in keep])
