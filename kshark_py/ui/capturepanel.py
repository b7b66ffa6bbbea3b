"""The capture panel: choose events, options and guests, check, record, watch, open the result.

Why a dialog that polls: the recording itself (:class:`kshark_py.capture.control.Recording`) runs in a
plain thread and only exposes counters; a QTimer reads them four times a second.  Nothing in the capture
package knows about Qt, and a stalled guest or disk can never block the event loop.

Each recording goes into a new folder (``<output folder>/kshark-YYYYmmdd-HHMMSS/``): readers pair a
``trace.dat`` with every ``trace-NAME.dat`` beside it, so two recordings must never share one.  What the
user chose (events, guests, folder, duration...) is kept in QSettings (organization "kshark-py").
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Callable
from html import escape
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets
from shiboken6 import isValid

from ..capture.control import (
    FIX_STALE_INSTANCES,
    Check,
    CpuProgress,
    Recording,
    available_clocks,
    available_events,
    new_recording_dir,
    preflight,
    probe_agent,
    progress,
)
from ..capture.eventspec import EventSpec
from ..capture.leftovers import remove_stale_instances
from ..capture.live import LiveCapture
from ..capture.livecount import cpu_lost_text, is_trace_cmd_agent
from ..capture.session import GuestConfig, HostSession
from ..capture.tracefs import RecordError, find_tracefs
from .capturelive import LiveView

TRANSPORTS = ("vsock", "TCP", "FIFO")
_TRANSPORT_FAMILY = {"vsock": "vsock", "TCP": "tcp", "FIFO": None}
"""Transport column -> the address kind it demands (FIFO: data over FIFOs, control over vsock or TCP)."""
_LEVEL_COLOURS = {"ok": "#2e7d32", "info": "#1565c0", "warn": "#ef6c00", "error": "#c62828"}
_LEVEL_MARKS = {"ok": "✔", "info": "ℹ", "warn": "⚠", "error": "✖"}
SETTINGS_ORG = "kshark-py"
SETTINGS_APP = "kshark-py"
SETTINGS_KEY = "capture/state"
RECHECK_MS = 300
"""Quiet time after a change before the preflight runs again (typing does not probe agents per key)."""
PROBE_TTL = 5.0
"""Seconds an agent probe's answer is reused by automatic re-checks (Check probes afresh)."""
MAX_STAT_ROWS = 10
"""More counter rows than this: the biggest sources show their total only, so every source stays in view."""
GUEST_EVENTS_HINT = "as the host"
LIVE_MAX_EVENTS = 1_000_000
"""The live view holds at most about this many of the newest events (each refresh rebuilds the window from them:
its cost follows their number); the files keep everything and open whole after Stop."""


def guest_event_specs(text: str) -> list[EventSpec]:
    """A guest row's Events cell (``irq``, ``sched:sched_switch, sched:sched_wakeup``, ``all``) -> specs;
    ``-e`` words as trace-cmd's ``-A GUEST -e ...`` takes them.  Empty: [] (the host's events are used)."""
    return [EventSpec.parse(w) for w in re.split(r"[\s,]+", text.strip()) if w]


def spec_text(s: EventSpec) -> str:
    """An event spec as ``-e`` takes it (``sched:sched_switch``, ``irq``, ``all``)."""
    return f"{s.system}:{s.event}" if s.system and s.event else (s.system or s.event or "all")


def capture_settings() -> QtCore.QSettings:
    """Where the dialog keeps its choices (an INI file under the user's config folder)."""
    return QtCore.QSettings(QtCore.QSettings.Format.IniFormat, QtCore.QSettings.Scope.UserScope,
                            SETTINGS_ORG, SETTINGS_APP)


class CaptureDialog(QtWidgets.QDialog):
    """Record host and guests (trace-cmd record -A) from the viewer; when done it announces the files
    with :attr:`filesRecorded` (the main window asks the app to open them)."""

    filesRecorded = QtCore.Signal(list)  # [host file, guest files...] as str
    liveWindowOpened = QtCore.Signal(object)
    """The live view's main window (built with ``live_window``), for the app to own and show."""

    def __init__(self, parent: QtWidgets.QWidget | None = None, *, tracefs: Path | None = None,
                 open_result: bool = True, settings: QtCore.QSettings | None = None,
                 live_window: Callable[..., QtWidgets.QMainWindow] | None = None) -> None:
        """``live_window``: the main window's class; with it (and "Live view" ticked) a recording shows its events
        in a main window while it runs (:mod:`.capturelive`), and that window takes the files after Stop."""
        super().__init__(parent)
        self._live_window = live_window
        self.live_view: LiveView | None = None
        self.setWindowTitle("Record host and guests")
        self.resize(1000, 760)
        self._tracefs = tracefs
        self._open_result = open_result
        self._settings = settings if settings is not None else capture_settings()
        self.recording: Recording | None = None
        self.recording_dir: Path | None = None
        self.result_files: list[Path] = []
        self.last_checks: list[Check] = []
        self.max_stat_rows = MAX_STAT_ROWS
        """More counter rows than this: the biggest sources shrink to their total (see :func:`stat_rows`)."""
        self._probes: dict[tuple[str, str | None], tuple[float, str | None]] = {}
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(250)
        self._timer.timeout.connect(self._poll)
        self._recheck = QtCore.QTimer(self)
        self._recheck.setSingleShot(True)
        self._recheck.setInterval(RECHECK_MS)
        self._recheck.timeout.connect(self.run_preflight)
        self._loading = True
        self._build()
        self._fill_events()
        self.load_settings()
        self._loading = False
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
        self.tree.itemChanged.connect(self._selection_changed)
        lv.addWidget(self.tree, 1)
        self.selected_label = QtWidgets.QLabel(textFormat=QtCore.Qt.TextFormat.PlainText)
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
        self.output_dir.setToolTip("Each recording goes into a new folder in it: kshark-YYYYmmdd-HHMMSS/")
        browse = QtWidgets.QPushButton("…")
        browse.clicked.connect(self._browse)
        out_row.addWidget(self.output_dir, 1)
        out_row.addWidget(browse)
        form.addRow("Output folder", out_row)
        self.file_name = QtWidgets.QLineEdit("trace.dat")
        form.addRow("Host file", self.file_name)
        live_row = QtWidgets.QHBoxLayout()
        self.live = QtWidgets.QCheckBox("show the timeline while recording")
        self.live.setChecked(self._live_window is not None)
        self.live.setEnabled(self._live_window is not None)
        self.live_keep = QtWidgets.QDoubleSpinBox(minimum=0, maximum=86400, decimals=0, suffix=" s")
        self.live_keep.setSpecialValueText("keep all")
        self.live_keep.setToolTip("Bound the live view's memory: keep only the newest seconds in it (and at most "
                                  f"the newest {LIVE_MAX_EVENTS / 1e6:g} M events; the files keep everything)")
        live_row.addWidget(self.live, 1)
        live_row.addWidget(QtWidgets.QLabel("live view keeps"))
        live_row.addWidget(self.live_keep)
        form.addRow("Live view", live_row)
        rv.addLayout(form)

        gbox = QtWidgets.QGroupBox("Guests (agents: trace-cmd agent or kshark-py agent)")
        gl = QtWidgets.QVBoxLayout(gbox)
        self.guests = QtWidgets.QTableWidget(0, 4)
        self.guests.setHorizontalHeaderLabels(["Name", "Transport", "Address", f"Events (empty: {GUEST_EVENTS_HINT})"])
        self.guests.horizontalHeaderItem(2).setToolTip("vsock: CID[:PORT]; TCP: HOST:PORT; FIFO: the control "
                                                       "connection's CID[:PORT] or HOST:PORT")
        self.guests.horizontalHeaderItem(3).setToolTip("This guest's events, as after -A NAME: e.g. irq, "
                                                       "sched:sched_switch sched:sched_wakeup, all; empty: the "
                                                       "events ticked on the left")
        self.guests.horizontalHeader().setStretchLastSection(True)
        self.guests.setColumnWidth(2, 170)
        self.guests.verticalHeader().hide()
        self.guests.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 12)  # fits a combo box
        rows = self.guests.verticalHeader().defaultSectionSize()
        self.guests.setMinimumHeight(rows * 2 + 30)
        self.guests.setMaximumHeight(rows * 4 + 30)  # four guests in view; the rest of the height: the counters
        self.guests.itemChanged.connect(self._changed)
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

        self.vsplit = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        self.vsplit.setChildrenCollapsible(False)
        pbox = QtWidgets.QGroupBox("Preflight (follows every change)")
        pl = QtWidgets.QVBoxLayout(pbox)
        pl.setContentsMargins(4, 4, 4, 4)
        self.checks = QtWidgets.QTextBrowser()
        self.checks.setMinimumHeight(50)
        pl.addWidget(self.checks)
        self.cleanup_btn = QtWidgets.QPushButton("Remove leftover instances")
        self.cleanup_btn.setToolTip("Remove the tracefs instances of kshark-py processes that no longer run (killed "
                                    "while recording: they keep recording into their ring buffers)")
        self.cleanup_btn.setAutoDefault(False)
        self.cleanup_btn.clicked.connect(self.remove_leftovers)
        self.cleanup_btn.hide()
        pl.addWidget(self.cleanup_btn, 0, QtCore.Qt.AlignmentFlag.AlignLeft)
        self.vsplit.addWidget(pbox)

        self.stats = QtWidgets.QTableWidget(0, 5)
        self.stats.setHorizontalHeaderLabels(["Where", "CPU", "Bytes", "Events", "Lost"])
        self.stats.verticalHeader().hide()
        self.stats.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.stats.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.stats.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.stats.setMinimumHeight(80)
        self.vsplit.addWidget(self.stats)
        self.vsplit.setSizes([300, 120])
        rv.addWidget(self.vsplit, 1)
        self.note = QtWidgets.QLabel(textFormat=QtCore.Qt.TextFormat.PlainText, wordWrap=True)
        self.note.hide()
        rv.addWidget(self.note)
        self.status = QtWidgets.QLabel("Ready.", textFormat=QtCore.Qt.TextFormat.PlainText, wordWrap=True)
        self.status.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        rv.addWidget(self.status)

        buttons = QtWidgets.QHBoxLayout()
        self.check_btn = QtWidgets.QPushButton("Check")
        self.check_btn.setToolTip("Check again now, probing every guest's agent afresh")
        self.check_btn.clicked.connect(self.check_now)
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
        for b in (browse, add, rem, self.check_btn, self.stop_btn, close):
            b.setAutoDefault(False)  # Return means Record (the default button), never "open the folder chooser"
        buttons.addStretch(1)
        buttons.addWidget(close)
        rv.addLayout(buttons)
        split.addWidget(right)
        split.setSizes([380, 620])

        for sig in (self.output_dir.textChanged, self.file_name.textChanged, self.command.textChanged,
                    self.clock.currentTextChanged, self.tsync.valueChanged, self.duration.valueChanged):
            sig.connect(self._changed)

    def _changed(self, *_args: object) -> None:
        """Any choice changed: re-run the preflight once the user pauses (it decides if Record is enabled)."""
        if self._loading or self.recording is not None:
            return
        self._recheck.start()  # Record itself re-checks first, so a click meanwhile is safe

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

    def _selection_changed(self, *_args: object) -> None:
        n = len(self.specs())
        self.selected_label.setText(f"{n} events selected" if n else "No event selected (all will be recorded)")
        self._changed()

    def record_specs(self, checked: list[EventSpec] | None = None) -> list[EventSpec]:
        """What the host records: the checked events (``checked``, if already read from the tree), or
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
    def add_guest(self, name: str, transport: str, address: str, events: str = "") -> None:
        """A guest row; ``events`` as after trace-cmd's ``-A NAME`` (empty: the host's events)."""
        r = self.guests.rowCount()
        self.guests.blockSignals(True)
        self.guests.insertRow(r)
        self.guests.setItem(r, 0, QtWidgets.QTableWidgetItem(name))
        combo = QtWidgets.QComboBox()
        combo.addItems(TRANSPORTS)
        combo.setCurrentText(transport if transport in TRANSPORTS else "vsock")
        combo.currentTextChanged.connect(self._changed)
        self.guests.setCellWidget(r, 1, combo)
        self.guests.setItem(r, 2, QtWidgets.QTableWidgetItem(address))
        self.guests.setItem(r, 3, QtWidgets.QTableWidgetItem(events))
        self.guests.blockSignals(False)
        self._changed()

    def _remove_guest(self) -> None:
        r = self.guests.currentRow()
        if r >= 0:
            self.guests.removeRow(r)
            self._changed()

    def guest_rows(self) -> list[tuple[str, str, str, str]]:
        """(name, transport, address, events) of every row, as typed."""
        out = []
        for r in range(self.guests.rowCount()):
            cells = [(self.guests.item(r, c).text() if self.guests.item(r, c) else "").strip() for c in (0, 2, 3)]
            combo = self.guests.cellWidget(r, 1)
            transport = combo.currentText() if isinstance(combo, QtWidgets.QComboBox) else "vsock"
            out.append((cells[0], transport, cells[1], cells[2]))
        return out

    def guest_configs(self, specs: list[EventSpec] | None = None) -> list[GuestConfig]:
        """One config per guest row with an address: its own events (the Events column), or ``specs``
        (default: :meth:`record_specs`) when that is empty; its address must match its Transport."""
        if specs is None:
            specs = self.record_specs()
        out = []
        for name, transport, addr, events in self.guest_rows():
            if not addr:
                continue
            fifo = transport == "FIFO"
            out.append(GuestConfig(f"{name}@{addr}" if name else addr, name=name or None,
                                   specs=guest_event_specs(events) or list(specs), use_fifos=fifo,
                                   fifos_required=fifo, transport=_TRANSPORT_FAMILY.get(transport)))
        return out

    # -- preflight
    def check_now(self) -> list[Check]:
        """The Check button: probe every agent afresh."""
        self._probes.clear()
        return self.run_preflight()

    def _probe(self, g: GuestConfig) -> str | None:
        """:func:`probe_agent`, its answer reused for :data:`PROBE_TTL` s (automatic re-checks)."""
        key = (g.spec, g.transport)
        now = time.monotonic()
        hit = self._probes.get(key)
        if hit is not None and now - hit[0] < PROBE_TTL:
            return hit[1]
        why = probe_agent(g.spec, timeout=0.5, transport=g.transport)
        self._probes[key] = (now, why)
        return why

    def run_preflight(self) -> list[Check]:
        self._recheck.stop()
        checked = self.specs()  # walks every event of the tree: once per check
        specs = self.record_specs(checked)
        guests = self.guest_configs(specs)
        checks = preflight(specs, guests, clock=self.clock.currentText() or None,
                           tsync_interval=self.tsync.value(), output_dir=self.output_dir.text(),
                           tracefs=self._tracefs, probe=self._probe)
        if not checked:
            checks.insert(0, Check("warn", "No event selected: every event will be recorded (-e all)."))
        what = [f"Will record {len(checked) or 'all'} event(s) on this kernel"]
        if guests:
            what.append(f"and on {len(guests)} guest(s): " + ", ".join(
                f"{g.display_name()} ({' '.join(spec_text(s) for s in g.specs)})" for g in guests))
        if self.command.text().strip():
            what.append(f"while running “{self.command.text().strip()}”")
        elif self.duration.value():
            what.append(f"for {self.duration.value():g} s")
        else:
            what.append("until Stop")
        html = [f"<p><b>{escape(' '.join(what), quote=False)}</b>, into "
                f"{escape(str(self._output_preview()), quote=False)} (a new folder per recording).</p>"]
        for c in checks:
            html.append(f"<div style='color:{_LEVEL_COLOURS[c.level]}'>{_LEVEL_MARKS[c.level]} "
                        f"{escape(c.message, quote=False)}"
                        "</div>")
        self.checks.setHtml("".join(html))
        self.last_checks = checks
        self.cleanup_btn.setVisible(any(c.fix == FIX_STALE_INSTANCES for c in checks) and self.recording is None)
        ok = not any(c.level == "error" for c in checks)
        self.record_btn.setEnabled(ok and self.recording is None)
        if self.recording is None and self.status.text().startswith("Cannot record") and ok:
            self.status.setText("Ready.")
        return checks

    def remove_leftovers(self) -> list[str]:
        """The button: remove the instances of dead kshark-py processes; returns the ones that stay (why)."""
        try:
            tfs = self._tracefs or find_tracefs()
        except RecordError as e:
            self.status.setText(str(e))
            return [str(e)]
        results = remove_stale_instances(tfs)
        stay = [f"{inst.name}: {why}" for inst, why in results if why]
        gone = len(results) - len(stay)
        text = f"Removed {gone} leftover tracefs instance(s)."
        if stay:
            text += " Left: " + "; ".join(stay)
        self.status.setText(text)
        self.run_preflight()
        return stay

    def _output_preview(self) -> Path:
        """Where the host file will go: a new ``kshark-<date>-<time>`` folder in the output folder."""
        return Path(self.output_dir.text()) / "kshark-YYYYmmdd-HHMMSS" / self._file_name()

    def _file_name(self) -> str:
        return Path(self.file_name.text().strip() or "trace.dat").name

    def _browse(self) -> None:
        d = QtWidgets.QFileDialog.getExistingDirectory(self, "Output folder", self.output_dir.text())
        if d:
            self.output_dir.setText(d)

    # -- settings
    def settings_state(self) -> dict:
        """The choices kept between openings (JSON-able)."""
        return {
            "events": {n: it.text(1) for n, it in self.event_items().items()
                       if it.checkState(0) == QtCore.Qt.CheckState.Checked},
            "guests": [list(r) for r in self.guest_rows()],
            "output_dir": self.output_dir.text(),
            "file_name": self.file_name.text(),
            "duration": self.duration.value(),
            "command": self.command.text(),
            "tsync": self.tsync.value(),
            "buffer_kb": self.buffer_kb.value(),
            "clock": self.clock.currentText(),
            "live": self.live.isChecked(),
            "live_keep": self.live_keep.value(),
        }

    def save_settings(self) -> None:
        self._settings.setValue(SETTINGS_KEY, json.dumps(self.settings_state()))
        self._settings.sync()

    def load_settings(self) -> None:
        """Restore the last choices; events this kernel lacks and bad values are skipped."""
        raw = self._settings.value(SETTINGS_KEY)
        try:
            st = json.loads(raw) if isinstance(raw, str) and raw else {}
        except ValueError:
            st = {}
        if not isinstance(st, dict):
            return
        items = self.event_items()
        events = st.get("events")
        if isinstance(events, dict):
            self.tree.blockSignals(True)
            for name, filt in events.items():
                it = items.get(name)
                if it is not None:
                    it.setCheckState(0, QtCore.Qt.CheckState.Checked)
                    it.setText(1, str(filt or ""))
            self.tree.blockSignals(False)
            self._selection_changed()
        for row in st.get("guests") or []:
            if isinstance(row, list) and len(row) == 4 and all(isinstance(x, str) for x in row):
                self.add_guest(*row)
        with contextlib.suppress(TypeError, ValueError):
            for key, widget in (("output_dir", self.output_dir), ("file_name", self.file_name),
                                ("command", self.command)):
                if isinstance(st.get(key), str) and st[key]:
                    widget.setText(st[key])
            if "duration" in st:
                self.duration.setValue(float(st["duration"]))
            if "tsync" in st:
                self.tsync.setValue(int(st["tsync"]))
            if "buffer_kb" in st:
                self.buffer_kb.setValue(int(st["buffer_kb"]))
            if st.get("clock") and self.clock.findText(str(st["clock"])) >= 0:
                self.clock.setCurrentText(str(st["clock"]))
            if "live" in st and self.live.isEnabled():
                self.live.setChecked(bool(st["live"]))
            if "live_keep" in st:
                self.live_keep.setValue(float(st["live_keep"]))

    def done(self, result: int) -> None:  # accept, reject, Escape: all remember the choices
        self.save_settings()
        super().done(result)

    # -- recording
    def start_recording(self) -> bool:
        if self.recording is not None:
            return False
        checks = self.run_preflight()
        if any(c.level == "error" for c in checks):
            self.status.setText("Cannot record: see the preflight errors.")
            return False
        self.save_settings()
        folder = None
        try:
            specs = self.record_specs()
            guests = self.guest_configs(specs)
            folder = new_recording_dir(self.output_dir.text())
            session = HostSession(folder / self._file_name(), specs, guests,
                                  buffer_kb=self.buffer_kb.value() or None, clock=self.clock.currentText() or None,
                                  tsync_interval=self.tsync.value(), keep_going=True)
        except (RecordError, ValueError, OSError) as e:
            if folder is not None:
                with contextlib.suppress(OSError):
                    folder.rmdir()
            self.status.setText(f"Cannot record: {e}")
            return False
        self.recording_dir = folder
        live = None
        if self._live_window is not None and self.live.isChecked():
            live = LiveCapture(session, keep_seconds=self.live_keep.value() or None, keep_events=LIVE_MAX_EVENTS)
            old = self.live_view.window if self.live_view is not None else None  # reused while it is open
            self.live_view = LiveView(live, self._live_window, window=old)  # its window becomes its parent
            self.live_view.windowOpened.connect(self.liveWindowOpened)
            self.live_view.start()
        self.recording = Recording(session, command=self.command.text().strip() or None,
                                   duration=self.duration.value() or None, live=live)
        self.recording.start()
        self.record_btn.setEnabled(False)
        self.stop_btn.setEnabled(True)
        self.note.hide()
        self.vsplit.setSizes([60, sum(self.vsplit.sizes()) - 60])  # the counters matter now
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
        rows = stat_rows(p.cpus, self.max_stat_rows)
        self.stats.setRowCount(len(rows))
        bold = QtGui.QFont(self.stats.font())
        bold.setBold(True)
        for i, (c, total) in enumerate(rows):
            at_least = "≥ " if c.partial else ""  # a live view skipped pages: it counted the others
            vals = [c.where, "all" if total else str(c.cpu), f"{c.bytes:,}",
                    "—" if c.events is None else f"{at_least}{c.events:,}",
                    at_least + cpu_lost_text(c.lost, c.lost_unknown_pages)]
            for j, v in enumerate(vals):
                item = self.stats.item(i, j)
                if item is None:
                    item = QtWidgets.QTableWidgetItem()
                    self.stats.setItem(i, j, item)
                item.setText(v)
                item.setFont(bold if total else self.stats.font())
                lost = j == 4 and (c.lost or c.lost_unknown_pages)
                item.setForeground(QtGui.QColor("#c62828") if lost else self.stats.palette().text().color())
        self._fit_stats()
        self._show_agent_note(rec)
        total = sum(c.bytes for c in p.cpus)
        if rec.state != "failed":
            self.status.setText(f"{rec.state.capitalize()}: {p.elapsed:.1f} s elapsed, "
                                f"{total / 1e6:.2f} MB received")
        if not rec.is_alive():
            self._timer.stop()
            self._finished(rec)

    def _fit_stats(self) -> None:
        """Give the counters the height their rows need (taken from the preflight text above them)."""
        need = (self.stats.horizontalHeader().height() + 2 * self.stats.frameWidth()
                + sum(self.stats.rowHeight(i) for i in range(self.stats.rowCount())) + 2)
        top, have = self.vsplit.sizes()
        if have < need and top > 50:
            give = min(need - have, top - 50)
            self.vsplit.setSizes([top - give, have + give])

    def _show_agent_note(self, rec: Recording) -> None:
        """Why a trace-cmd agent's counts lag (see :func:`~kshark_py.capture.livecount.is_trace_cmd_agent`)."""
        names = [n for n, v in rec.counts.agent_versions.items() if is_trace_cmd_agent(v)]
        if not names or not self.note.isHidden():
            return
        self.note.setText(
            f"Guest {', '.join(names)}: trace-cmd's agent sends a CPU's pages only once the guest's ring buffer "
            "for that CPU is half full (the guest's /sys/kernel/tracing/buffer_percent) and at Stop, so its "
            "counts arrive in bursts and a quiet guest shows 0 until Stop. In the guest, "
            "echo 0 > /sys/kernel/tracing/buffer_percent makes it send each page as soon as it is full.")
        self.note.show()

    def _finished(self, rec: Recording) -> None:
        self.recording = None
        self.stop_btn.setEnabled(False)
        self.record_btn.setEnabled(True)
        if rec.error:
            if self.recording_dir is not None:  # nothing was written: drop the empty folder
                with contextlib.suppress(OSError):
                    self.recording_dir.rmdir()
            self.status.setText(f"Recording failed: {rec.error}")
            self._set_status_colour("error")
            return
        self.result_files = list(rec.files)
        folders = {f.parent for f in self.result_files}
        text = "Wrote " + ", ".join(f.name if len(folders) == 1 else str(f) for f in self.result_files)
        if len(folders) == 1:
            text += f" in {folders.pop()}"
        if rec.warnings:
            text += f"; {len(rec.warnings)} guest(s) not recorded or cut short (see above)"
        if rec.losses:
            text += f"; events lost on {len(rec.losses)} host CPU(s) (see above)"
        problems = rec.warnings + rec.losses
        if problems:
            self._show_result(rec)
        self.status.setText(text + ".")
        self.status.setToolTip("\n".join([text, *problems]))
        self._set_status_colour("warn" if problems else "ok")
        live = self.live_view
        if live is not None and live.recording and live.window is not None and isValid(live.window):
            live.finish([str(f) for f in self.result_files])  # the live window takes the files
            if not problems:
                self.accept()
        elif self._open_result and self.result_files:
            self.filesRecorded.emit([str(f) for f in self.result_files])
            if not problems:  # otherwise stay open, so the user reads what went wrong
                self.accept()

    def _show_result(self, rec: Recording) -> None:
        """What was written, what went wrong with guests and what the host lost, where the preflight was (room
        to read it)."""
        html = ["<p><b>Recording done.</b></p>"]
        html += [f"<div style='color:{_LEVEL_COLOURS['ok']}'>{_LEVEL_MARKS['ok']} Wrote "
                 f"{escape(str(f), quote=False)}</div>" for f in rec.files]
        html += [f"<div style='color:{_LEVEL_COLOURS['error']}'>{_LEVEL_MARKS['error']} "
                 f"{escape(w, quote=False)}</div>" for w in rec.warnings + rec.losses]
        self.checks.setHtml("".join(html))
        total = sum(self.vsplit.sizes())
        self.vsplit.setSizes([total // 2, total - total // 2])

    def _set_status_colour(self, level: str) -> None:
        self.status.setStyleSheet(f"color: {_LEVEL_COLOURS[level]}" if level in ("warn", "error") else "")

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
        self.save_settings()
        super().closeEvent(ev)


def stat_rows(cpus: list[CpuProgress], max_rows: int = MAX_STAT_ROWS) -> list[tuple[CpuProgress, bool]]:
    """The table's rows: each source's CPUs, then (if it has several) its total; (row, is_total).

    Past ``max_rows`` rows, the sources with the most CPUs are shown as their total only, biggest first,
    until the rows fit, so that no source (a guest after a many-CPU host) is pushed out of view."""
    by_where: dict[str, list[CpuProgress]] = {}
    for c in cpus:
        by_where.setdefault(c.where, []).append(c)
    size = {w: len(cs) + (len(cs) > 1) for w, cs in by_where.items()}
    collapsed: set[str] = set()
    for w in sorted(by_where, key=lambda w: -len(by_where[w])):
        if sum(size.values()) <= max_rows:
            break
        collapsed.add(w)
        size[w] = 1
    out: list[tuple[CpuProgress, bool]] = []
    for where, cs in by_where.items():
        if where not in collapsed:
            out += [(c, False) for c in cs]
        if len(cs) > 1 or where in collapsed:
            events = [c.events for c in cs if c.events is not None]
            lost = [c.lost for c in cs if c.lost is not None]
            out.append((CpuProgress(where, -1, sum(c.bytes for c in cs),  # a sum only if every CPU is known
                                    sum(events) if len(events) == len(cs) else None,
                                    sum(lost) if len(lost) == len(cs) else None,
                                    sum(c.lost_unknown_pages for c in cs), any(c.partial for c in cs)), True))
    return out
