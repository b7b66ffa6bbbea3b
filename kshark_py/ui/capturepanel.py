"""The capture panel: choose events, options and guests, check, record, watch, open the result.

Why a dialog that polls: the recording itself (:class:`kshark_py.capture.control.Recording`) runs in a
plain thread and only exposes counters; a QTimer reads them four times a second.  Nothing in the capture
package knows about Qt, and a stalled guest or disk can never block the event loop.
"""

from __future__ import annotations

import os
from html import escape
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from ..capture.control import (
    Check,
    CpuProgress,
    Recording,
    available_clocks,
    available_events,
    preflight,
    progress,
)
from ..capture.livecount import cpu_lost_text
from ..capture.recorder import EventSpec, RecordError
from ..capture.session import GuestConfig, HostSession

TRANSPORTS = ("vsock", "TCP", "FIFO")
_LEVEL_COLOURS = {"ok": "#2e7d32", "info": "#1565c0", "warn": "#ef6c00", "error": "#c62828"}
_LEVEL_MARKS = {"ok": "✔", "info": "ℹ", "warn": "⚠", "error": "✖"}


class CaptureDialog(QtWidgets.QDialog):
    """Record host and guests (trace-cmd record -A) from the viewer; when done it announces the files
    with :attr:`filesRecorded` (the main window asks the app to open them)."""

    filesRecorded = QtCore.Signal(list)  # [host file, guest files...] as str

    def __init__(self, parent: QtWidgets.QWidget | None = None, *, tracefs: Path | None = None,
                 open_result: bool = True) -> None:
        super().__init__(parent)
        self.setWindowTitle("Record host and guests")
        self.resize(1000, 700)
        self._tracefs = tracefs
        self._open_result = open_result
        self.recording: Recording | None = None
        self.result_files: list[Path] = []
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(250)
        self._timer.timeout.connect(self._poll)
        self._build()
        self._fill_events()
        self.run_preflight()

    # -- layout
    def _build(self) -> None:
        root = QtWidgets.QHBoxLayout(self)
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        root.addWidget(split)

        left = QtWidgets.QWidget()
        lv = QtWidgets.QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        self.search = QtWidgets.QLineEdit(placeholderText="Search events (e.g. sched_sw, irq:)")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.filter_events)
        lv.addWidget(self.search)
        self.tree = QtWidgets.QTreeWidget()
        self.tree.setHeaderLabels(["Event", "Filter"])
        self.tree.setColumnWidth(0, 230)
        self.tree.setToolTip("Check events to record; double-click the Filter column to set a filter "
                             "(e.g. prev_pid != 0)")
        self.tree.itemChanged.connect(lambda *_: self._selection_changed())
        lv.addWidget(self.tree, 1)
        self.selected_label = QtWidgets.QLabel()
        lv.addWidget(self.selected_label)
        split.addWidget(left)

        right = QtWidgets.QWidget()
        rv = QtWidgets.QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        form = QtWidgets.QFormLayout()
        self.buffer_kb = QtWidgets.QSpinBox(minimum=0, maximum=4 << 20, singleStep=1024, suffix=" KiB")
        self.buffer_kb.setSpecialValueText("kernel default")
        form.addRow("Buffer size per CPU", self.buffer_kb)
        self.clock = QtWidgets.QComboBox()
        clocks, sel = available_clocks(self._tracefs)
        self.clock.addItems(clocks or ["local"])
        if sel:
            self.clock.setCurrentText(sel)
        form.addRow("Trace clock", self.clock)
        self.command = QtWidgets.QLineEdit(placeholderText="optional: command to run while recording")
        form.addRow("Command", self.command)
        self.duration = QtWidgets.QDoubleSpinBox(minimum=0, maximum=86400, decimals=1, suffix=" s")
        self.duration.setSpecialValueText("until Stop")
        form.addRow("Duration", self.duration)
        self.tsync = QtWidgets.QSpinBox(minimum=-1, maximum=600000, suffix=" ms")
        self.tsync.setSpecialValueText("off")
        self.tsync.setValue(0)
        self.tsync.setToolTip("--tsync-interval: 0 = sync at start and stop, > 0 = also periodically, off = none")
        form.addRow("Time-sync interval", self.tsync)
        out_row = QtWidgets.QHBoxLayout()
        self.output_dir = QtWidgets.QLineEdit(os.getcwd())
        browse = QtWidgets.QPushButton("…")
        browse.clicked.connect(self._browse)
        out_row.addWidget(self.output_dir, 1)
        out_row.addWidget(browse)
        form.addRow("Output folder", out_row)
        self.file_name = QtWidgets.QLineEdit("trace.dat")
        form.addRow("Host file", self.file_name)
        rv.addLayout(form)

        gbox = QtWidgets.QGroupBox("Guests (agents: trace-cmd agent or kshark-py agent)")
        gl = QtWidgets.QVBoxLayout(gbox)
        self.guests = QtWidgets.QTableWidget(0, 3)
        self.guests.setHorizontalHeaderLabels(["Name", "Transport", "Address (CID[:PORT] or HOST:PORT)"])
        self.guests.horizontalHeader().setStretchLastSection(True)
        self.guests.verticalHeader().hide()
        self.guests.setMinimumHeight(90)
        gl.addWidget(self.guests)
        brow = QtWidgets.QHBoxLayout()
        add = QtWidgets.QPushButton("Add guest")
        add.clicked.connect(lambda: self.add_guest("guest", "vsock", "3"))
        rem = QtWidgets.QPushButton("Remove")
        rem.clicked.connect(self._remove_guest)
        brow.addWidget(add)
        brow.addWidget(rem)
        brow.addStretch(1)
        gl.addLayout(brow)
        rv.addWidget(gbox)

        pbox = QtWidgets.QGroupBox("Preflight")
        pl = QtWidgets.QVBoxLayout(pbox)
        self.checks = QtWidgets.QTextBrowser()
        self.checks.setMinimumHeight(120)
        pl.addWidget(self.checks)
        rv.addWidget(pbox, 1)

        self.stats = QtWidgets.QTableWidget(0, 5)
        self.stats.setHorizontalHeaderLabels(["Where", "CPU", "Bytes", "Events", "Lost"])
        self.stats.verticalHeader().hide()
        self.stats.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.stats.setMinimumHeight(110)
        rv.addWidget(self.stats, 1)
        self.status = QtWidgets.QLabel("Ready.")
        rv.addWidget(self.status)

        buttons = QtWidgets.QHBoxLayout()
        self.check_btn = QtWidgets.QPushButton("Check")
        self.check_btn.clicked.connect(self.run_preflight)
        self.record_btn = QtWidgets.QPushButton("Record")
        self.record_btn.setDefault(True)
        self.record_btn.clicked.connect(self.start_recording)
        self.stop_btn = QtWidgets.QPushButton("Stop")
        self.stop_btn.setEnabled(False)
        self.stop_btn.clicked.connect(self.stop_recording)
        close = QtWidgets.QPushButton("Close")
        close.clicked.connect(self.reject)
        for b in (self.check_btn, self.record_btn, self.stop_btn):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(close)
        rv.addLayout(buttons)
        split.addWidget(right)
        split.setSizes([380, 620])

    # -- events
    def _fill_events(self) -> None:
        self.tree.blockSignals(True)
        self.tree.clear()
        for system, events in available_events(self._tracefs).items():
            sitem = QtWidgets.QTreeWidgetItem(self.tree, [system])
            sitem.setFlags(sitem.flags() | QtCore.Qt.ItemFlag.ItemIsAutoTristate
                           | QtCore.Qt.ItemFlag.ItemIsUserCheckable)
            sitem.setCheckState(0, QtCore.Qt.CheckState.Unchecked)
            for e in events:
                it = QtWidgets.QTreeWidgetItem(sitem, [e, ""])
                it.setFlags(it.flags() | QtCore.Qt.ItemFlag.ItemIsUserCheckable | QtCore.Qt.ItemFlag.ItemIsEditable)
                it.setCheckState(0, QtCore.Qt.CheckState.Unchecked)
        self.tree.blockSignals(False)
        self._selection_changed()

    def event_items(self) -> dict[str, QtWidgets.QTreeWidgetItem]:
        out = {}
        for i in range(self.tree.topLevelItemCount()):
            s = self.tree.topLevelItem(i)
            for j in range(s.childCount()):
                it = s.child(j)
                out[f"{s.text(0)}:{it.text(0)}"] = it
        return out

    def set_event(self, name: str, checked: bool = True, filt: str = "") -> None:
        it = self.event_items()[name]
        it.setCheckState(0, QtCore.Qt.CheckState.Checked if checked else QtCore.Qt.CheckState.Unchecked)
        it.setText(1, filt)

    def filter_events(self, text: str) -> None:
        """Show events whose "system:event" contains the text (systems with no match are hidden)."""
        t = text.strip().lower()
        for i in range(self.tree.topLevelItemCount()):
            s = self.tree.topLevelItem(i)
            any_shown = False
            for j in range(s.childCount()):
                it = s.child(j)
                show = not t or t in f"{s.text(0)}:{it.text(0)}".lower()
                it.setHidden(not show)
                any_shown |= show
            s.setHidden(not any_shown)
            s.setExpanded(bool(t) and any_shown)

    def visible_events(self) -> list[str]:
        return [n for n, it in self.event_items().items() if not it.isHidden() and not it.parent().isHidden()]

    def _selection_changed(self) -> None:
        n = len(self.specs())
        self.selected_label.setText(f"{n} events selected" if n else "No event selected (all will be recorded)")

    def record_specs(self, checked: list[EventSpec] | None = None) -> list[EventSpec]:
        """What host and guests record: the checked events (``checked``, if already read from the tree), or
        every event (``-e all``) if none is checked.

        Explicit because the session follows trace-cmd, where no ``-e`` means "do not trace the host"."""
        return (self.specs() if checked is None else checked) or [EventSpec.parse("all")]

    def specs(self) -> list[EventSpec]:
        out = []
        for name, it in self.event_items().items():
            if it.checkState(0) == QtCore.Qt.CheckState.Checked:
                out.append(EventSpec.parse(name, it.text(1).strip() or None))
        return out

    # -- guests
    def add_guest(self, name: str, transport: str, address: str) -> None:
        r = self.guests.rowCount()
        self.guests.insertRow(r)
        self.guests.setItem(r, 0, QtWidgets.QTableWidgetItem(name))
        combo = QtWidgets.QComboBox()
        combo.addItems(TRANSPORTS)
        combo.setCurrentText(transport)
        self.guests.setCellWidget(r, 1, combo)
        self.guests.setItem(r, 2, QtWidgets.QTableWidgetItem(address))

    def _remove_guest(self) -> None:
        r = self.guests.currentRow()
        if r >= 0:
            self.guests.removeRow(r)

    def guest_configs(self, specs: list[EventSpec] | None = None) -> list[GuestConfig]:
        """One config per guest row with an address; every guest records ``specs`` (default: :meth:`record_specs`)."""
        if specs is None:
            specs = self.record_specs()
        out = []
        for r in range(self.guests.rowCount()):
            name = (self.guests.item(r, 0).text() if self.guests.item(r, 0) else "").strip() or None
            addr = (self.guests.item(r, 2).text() if self.guests.item(r, 2) else "").strip()
            transport = self.guests.cellWidget(r, 1).currentText()  # type: ignore[union-attr]
            if not addr:
                continue
            g = GuestConfig(f"{name}@{addr}" if name else addr, name=name, specs=specs,
                            use_fifos=transport == "FIFO", fifos_required=transport == "FIFO")
            out.append(g)
        return out

    # -- preflight
    def run_preflight(self) -> list[Check]:
        checked = self.specs()  # walks every event of the tree: once per check
        specs = self.record_specs(checked)
        guests = self.guest_configs(specs)
        checks = preflight(specs, guests, clock=self.clock.currentText() or None,
                           tsync_interval=self.tsync.value(), output_dir=self.output_dir.text(),
                           tracefs=self._tracefs)
        if not checked:
            checks.insert(0, Check("warn", "No event selected: every event will be recorded (-e all)."))
        what = [f"Will record {len(checked) or 'all'} event(s) on this kernel"]
        if guests:
            what.append(f"and on {len(guests)} guest(s): " + ", ".join(g.name or g.spec for g in guests))
        if self.command.text().strip():
            what.append(f"while running “{self.command.text().strip()}”")
        elif self.duration.value():
            what.append(f"for {self.duration.value():g} s")
        else:
            what.append("until Stop")
        html = [f"<p><b>{' '.join(what)}</b>, into {self._output_path()}.</p>"]
        for c in checks:
            html.append(f"<div style='color:{_LEVEL_COLOURS[c.level]}'>{_LEVEL_MARKS[c.level]} "
                        f"{escape(c.message, quote=False)}"
                        "</div>")
        self.checks.setHtml("".join(html))
        self.last_checks = checks
        self.record_btn.setEnabled(not any(c.level == "error" for c in checks) and self.recording is None)
        return checks

    def _output_path(self) -> Path:
        return Path(self.output_dir.text()) / (self.file_name.text().strip() or "trace.dat")

    def _browse(self) -> None:
        d = QtWidgets.QFileDialog.getExistingDirectory(self, "Output folder", self.output_dir.text())
        if d:
            self.output_dir.setText(d)
            self.run_preflight()

    # -- recording
    def start_recording(self) -> bool:
        if self.recording is not None:
            return False
        checks = self.run_preflight()
        if any(c.level == "error" for c in checks):
            self.status.setText("Cannot record: see the preflight errors.")
            return False
        try:
            specs = self.record_specs()
            session = HostSession(self._output_path(), specs, self.guest_configs(specs),
                                  buffer_kb=self.buffer_kb.value() or None, clock=self.clock.currentText() or None,
                                  tsync_interval=self.tsync.value())
        except (RecordError, ValueError, OSError) as e:
            self.status.setText(f"Cannot record: {e}")
            return False
        self.recording = Recording(session, command=self.command.text().strip() or None,
                                   duration=self.duration.value() or None)
        self.recording.start()
        self.record_btn.setEnabled(False)
        self.stop_btn.setEnabled(True)
        self._timer.start()
        return True

    def stop_recording(self) -> None:
        if self.recording is not None:
            self.recording.request_stop()
            self.stop_btn.setEnabled(False)
            self.status.setText("Stopping…")

    def _poll(self) -> None:
        rec = self.recording
        if rec is None:
            return
        p = progress(rec.session, rec.counts)
        rows = stat_rows(p.cpus)
        self.stats.setRowCount(len(rows))
        bold = QtGui.QFont(self.stats.font())
        bold.setBold(True)
        for i, (c, total) in enumerate(rows):
            vals = [c.where, "all" if total else str(c.cpu), f"{c.bytes:,}",
                    "—" if c.events is None else f"{c.events:,}", cpu_lost_text(c.lost, c.lost_unknown_pages)]
            for j, v in enumerate(vals):
                item = self.stats.item(i, j)
                if item is None:
                    item = QtWidgets.QTableWidgetItem()
                    self.stats.setItem(i, j, item)
                item.setText(v)
                item.setFont(bold if total else self.stats.font())
                lost = j == 4 and (c.lost or c.lost_unknown_pages)
                item.setForeground(QtGui.QColor("#c62828") if lost else self.stats.palette().text().color())
        total = sum(c.bytes for c in p.cpus)
        self.status.setText(f"{rec.state.capitalize()}: {p.elapsed:.1f} s elapsed, {total / 1e6:.2f} MB received")
        if not rec.is_alive():
            self._timer.stop()
            self._finished(rec)

    def _finished(self, rec: Recording) -> None:
        self.recording = None
        self.stop_btn.setEnabled(False)
        self.record_btn.setEnabled(True)
        if rec.error:
            self.status.setText(f"Recording failed: {rec.error}")
            return
        self.result_files = list(rec.files)
        self.status.setText("Wrote " + ", ".join(str(f) for f in self.result_files))
        if self._open_result and self.result_files:
            self.filesRecorded.emit([str(f) for f in self.result_files])
            self.accept()

    def reject(self) -> None:
        if self.recording is not None:
            self.stop_recording()
            return  # closes once the recording has been written (see _finished)
        super().reject()

    def closeEvent(self, ev: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt's name
        if self.recording is not None:
            self.stop_recording()
            ev.ignore()
            return
        super().closeEvent(ev)


def stat_rows(cpus: list[CpuProgress]) -> list[tuple[CpuProgress, bool]]:
    """The table's rows: each source's CPUs, then (if it has several) its total; (row, is_total)."""
    out: list[tuple[CpuProgress, bool]] = []
    by_where: dict[str, list[CpuProgress]] = {}
    for c in cpus:
        by_where.setdefault(c.where, []).append(c)
    for where, cs in by_where.items():
        out += [(c, False) for c in cs]
        if len(cs) > 1:
            events = [c.events for c in cs if c.events is not None]
            lost = [c.lost for c in cs if c.lost is not None]
            out.append((CpuProgress(where, -1, sum(c.bytes for c in cs),  # a sum only if every CPU is known
                                    sum(events) if len(events) == len(cs) else None,
                                    sum(lost) if len(lost) == len(cs) else None,
                                    sum(c.lost_unknown_pages for c in cs)), True))
    return out
