"""Side panels: the VCPU map, time-sync quality, the A/B marker bar, and the task chooser's parsing."""

from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from ..model.session import Session
from ..model.timesync import sync_samples
from ..model.vcpus import VcpuMapping
from ..plots.axes import seconds_text

UNMAPPED = "unmapped: Edit VCPU map..."
"""What the Source column says of a VCPU without a host thread: the GUI's way to give one."""


def task_choices(session: Session, names) -> list[str]:
    """``"STREAM: NAME COMM-PID"`` for every task (pid > 0) of every stream: Plots > Add task row."""
    items = []
    for st in session.streams:
        for p in np.unique(st.buffer.events.column("pid").to_numpy()).tolist():
            if p:
                items.append(f"{st.index}: {st.name} {names(st.index, p)}-{p}")
    return items


def parse_task_choice(text: str, session: Session, names) -> tuple[int, int]:
    """(stream, pid) of what the user chose or typed in the task chooser (an editable combo box).

    Accepts a listed item, ``COMM-PID`` or a bare PID (first stream that has it), or a task name
    that names exactly one task.  Raises ``ValueError`` with a sentence for the user otherwise.
    """
    text = text.strip()
    if not text:
        raise ValueError("Type or choose a task (name, PID or NAME-PID).")
    pids = [set(np.unique(st.buffer.events.column("pid").to_numpy()).tolist()) - {0} for st in session.streams]
    head, sep, rest = text.partition(":")
    if sep and head.strip().isdigit() and "-" in rest:  # a listed item: "STREAM: NAME COMM-PID"
        stream, tail = int(head), rest.rsplit("-", 1)[1].strip()
        if 0 <= stream < len(pids) and tail.isdigit() and int(tail) in pids[stream]:
            return stream, int(tail)
    tail = text.rsplit("-", 1)[-1].strip()
    if tail.isdigit():
        pid = int(tail)
        for i, have in enumerate(pids):
            if pid in have:
                return i, pid
        raise ValueError(f"No task with PID {pid} in the loaded trace.")
    found = [(i, p) for i, have in enumerate(pids) for p in sorted(have) if names(i, p) == text]
    if len(found) == 1:
        return found[0]
    if found:
        listed = ", ".join(f"{text}-{p}" for _, p in found[:5]) + (", ..." if len(found) > 5 else "")
        raise ValueError(f"{len(found)} tasks are named {text!r} ({listed}): "
                         "choose one from the list or type NAME-PID.")
    raise ValueError(f"No task named {text!r}: choose one from the list, or type a PID or NAME-PID.")


class VcpuMapPanel(QtWidgets.QWidget):
    """Guest, VCPU, host pid/comm and the source of each mapping; clicking a line asks the graph to
    scroll to that VCPU pair."""

    pairActivated = QtCore.Signal(str, int)  # guest, vcpu
    editRequested = QtCore.Signal()

    HEADERS = ["Guest", "VCPU", "Host PID", "Host task", "Source", "Guest events", "Sync"]

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.table = QtWidgets.QTableWidget(0, len(self.HEADERS))
        self.table.setHorizontalHeaderLabels(self.HEADERS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.cellClicked.connect(self._clicked)
        self.edit = QtWidgets.QPushButton("Edit VCPU map...")
        self.edit.setToolTip("Give the host thread of VCPUs the host trace does not name (TCP guests record -1)")
        self.edit.clicked.connect(self.editRequested)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.table)
        lay.addWidget(self.edit)
        self._keys: list[tuple[str, int]] = []

    def set_data(self, session: Session, mappings: list[VcpuMapping], names) -> None:
        rows = []
        self._keys = []
        by = {(m.guest, m.vcpu): m for m in mappings}
        host = session.host_stream
        for g in session.guests:
            st = next((s for s in session.streams if s.guest is g and s.buffer.name == ""), None)
            # a cut guest file can have lost its top buffer's index: its VCPUs are listed with no events
            cpu = st.buffer.events.column("cpu").to_numpy() if st is not None else np.zeros(0, np.int16)
            for v in range(g.vcpu_count):
                m = by.get((g.name, v))
                pid = m.host_pid if m else None
                comm = names(host.index, pid) if (m and host is not None) else ""
                rows.append([g.name, str(v), str(pid) if pid is not None else "?", comm,
                             m.source if m else UNMAPPED, str(int((cpu == v).sum())),
                             "host clock" if g.synced else "own clock"])
                self._keys.append((g.name, v))
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            for j, text in enumerate(r):
                item = QtWidgets.QTableWidgetItem(text)
                if text == UNMAPPED:
                    item.setToolTip("The host trace does not say which host thread ran this VCPU (a TCP guest "
                                    "records -1): press Edit VCPU map... below and choose it.")
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()

    def _clicked(self, row: int, _col: int) -> None:
        if 0 <= row < len(self._keys):
            self.pairActivated.emit(*self._keys[row])


class VcpuMapDialog(QtWidgets.QDialog):
    """Edit the host thread of each guest VCPU: the user's source of the VCPU map.

    Mappings from the host's GUEST record or from kvm_entry events are shown read-only (they win, as
    in ``build_vcpu_map``); the others take a host pid, chosen from the host's threads (the list offers
    threads whose name looks like a VCPU thread first).
    """

    def __init__(self, session: Session, mappings: list[VcpuMapping], names, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("VCPU map")
        host = session.host_stream
        by = {(m.guest, m.vcpu): m for m in mappings}
        pids: list[int] = []
        if host is not None:
            t = host.buffer.events
            p, c = np.unique(t.column("pid").to_numpy(), return_counts=True)
            order = np.argsort(-c)
            pids = [int(x) for x in p[order] if x > 0]
        choices = [f"{pid} {names(host.index, pid)}" for pid in pids] if host is not None else []
        choices.sort(key=lambda s: ("qemu" not in s and "kvm" not in s and "CPU" not in s, ))
        form = QtWidgets.QFormLayout()
        self.fields: dict[tuple[str, int], QtWidgets.QComboBox] = {}
        for g in session.guests:
            for v in range(g.vcpu_count):
                m = by.get((g.name, v))
                box = QtWidgets.QComboBox()
                box.setEditable(True)
                box.addItem("")
                box.addItems(choices)
                if m is not None:
                    box.setCurrentText(f"{m.host_pid} {names(host.index, m.host_pid)}" if host else str(m.host_pid))
                    if m.source != "user":
                        box.setEnabled(False)
                        box.setToolTip(f"from the {m.source}")
                form.addRow(f"{g.name} VCPU {v}", box)
                self.fields[(g.name, v)] = box
        self.error = QtWidgets.QLabel()
        self.error.setStyleSheet("color: #b00")
        self.buttons = buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Ok
                                                            | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.error)
        lay.addWidget(buttons)
        self.result_map: dict[str, dict[int, int]] = {}

    def _accept(self) -> None:
        out: dict[str, dict[int, int]] = {}
        for (g, v), box in self.fields.items():
            if not box.isEnabled():
                continue
            text = box.currentText().strip()
            if not text:
                continue
            try:
                out.setdefault(g, {})[v] = int(text.split()[0])
            except ValueError:
                self.error.setText(f"{g} VCPU {v}: {text!r} is not a pid")
                return
        self.result_map = out
        self.accept()


SYNC_COLORS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207),
               (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34)]
"""One colour per plotted line (guest, VCPU): the tab10 palette, then dashed repeats."""


class SyncPanel(QtWidgets.QWidget):
    """Each guest VCPU's TIME_SHIFT offset samples over (host) time, and the causality count.

    Every (guest, VCPU) line has its own colour (dashed once the palette repeats); the legend is a
    label under the plot, so it can never cover a line.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setLabel("left", "offset - first sample", units="s")
        self.plot.setLabel("bottom", "host time (s)")
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.legend = QtWidgets.QLabel()
        self.legend.setWordWrap(True)
        self.legend.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.info = QtWidgets.QLabel()
        self.info.setWordWrap(True)
        self.lines: list[tuple[str, pg.PlotDataItem]] = []
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.legend)
        lay.addWidget(self.info)

    def set_data(self, session: Session, causality: dict[tuple[str, int], tuple[int, int]]) -> None:
        self.plot.clear()
        self.lines = []
        lines = []
        keys = []
        for g in session.guests:
            t = sync_samples(g.trace)
            if t.num_rows == 0:
                offs = {session.time_offsets[st.index] for st in session.streams
                        if st.guest is g and st.index in session.time_offsets}
                if offs:  # Tools > Add time offset / --time-offset put it on the host's clock by hand
                    shift = ", ".join(f"{o / 1e9:+.9f} s" for o in sorted(offs))
                    lines.append(f"{g.name}: no TIME_SHIFT samples - moved by the user's time offset ({shift})")
                else:
                    lines.append(f"{g.name}: no TIME_SHIFT samples - events stay on the guest clock")
                continue
            vc = t.column("vcpu").to_numpy()
            for v in np.unique(vc):
                sel = vc == v
                x = t.column("host_time").to_numpy()[sel] / 1e9
                off = t.column("offset").to_numpy()[sel]
                y = (off - off[0]) / 1e9
                k = len(self.lines)
                rgb = SYNC_COLORS[k % len(SYNC_COLORS)]
                style = QtCore.Qt.PenStyle.SolidLine if k < len(SYNC_COLORS) else QtCore.Qt.PenStyle.DashLine
                name = f"{g.name} VCPU {v}"
                item = self.plot.plot(x, y, pen=pg.mkPen(rgb, width=2, style=style), symbol="o",
                                      symbolBrush=rgb, symbolPen=rgb, symbolSize=6)
                self.lines.append((name, item))
                keys.append(f'<span style="color: rgb{rgb}; font-weight: bold">'
                            f'{"&#9473;&#9473;" if k < len(SYNC_COLORS) else "&#9476;&#9476;"}</span>'
                            f"&nbsp;{html.escape(name)}")
                drift = t.column("drift_ppm").to_numpy()[sel]
                d = drift[~np.isnan(drift)]
                lines.append(f"{g.name} VCPU {v}: {int(sel.sum())} samples, offset {off[0] / 1e9:.6f} s, "
                             f"moving {y[-1] * 1e3:+.3f} ms" + (f", drift {d.mean():.1f} ppm" if len(d) else ""))
        self.legend.setText(" &nbsp; ".join(keys))
        self.legend.setVisible(bool(keys))
        for (guest, v), (outside, judged) in sorted(causality.items()):
            lines.append(f"{guest} VCPU {v}: {outside} of {judged} guest events at host times when the VCPU "
                         f"thread was not in guest mode")
        self.info.setText("\n".join(lines) or "no guests loaded")


class StateLegend(QtWidgets.QWidget):
    """The colours of the VCPU state lane."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        from ..plots.colors import STATE_COLORS

        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(4, 0, 4, 0)
        lay.addWidget(QtWidgets.QLabel("VCPU state:"))
        text = {"guest": "in guest", "exit": "VM exit (host)", "preempted": "preempted on host",
                "halted": "halted / sleeping", "unknown": "unknown"}
        for name, rgb in STATE_COLORS.items():
            sw = QtWidgets.QLabel()
            sw.setFixedSize(12, 12)
            sw.setStyleSheet(f"background: rgb{rgb}; border: 1px solid #666")
            lay.addWidget(sw)
            lay.addWidget(QtWidgets.QLabel(text[name]))
        lay.addStretch(1)


class MarkerBar(QtWidgets.QWidget):
    """Marker A/B times, the delta, and which marker a click sets."""

    activeChanged = QtCore.Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.a = QtWidgets.QRadioButton("A")
        self.b = QtWidgets.QRadioButton("B")
        self.a.setChecked(True)
        self.a.setStyleSheet("color: rgb(0,140,0); font-weight: bold")
        self.b.setStyleSheet("color: rgb(200,0,0); font-weight: bold")
        self.a_label = QtWidgets.QLabel("-")
        self.b_label = QtWidgets.QLabel("-")
        self.delta = QtWidgets.QLabel("Δ: -")
        self.pointer = QtWidgets.QLabel("")
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(4, 0, 4, 0)
        for w in (self.a, self.a_label, self.b, self.b_label, self.delta):
            lay.addWidget(w)
        lay.addStretch(1)
        lay.addWidget(self.pointer)
        self.a.toggled.connect(lambda on: on and self.activeChanged.emit("A"))
        self.b.toggled.connect(lambda on: on and self.activeChanged.emit("B"))
        self.times: dict[str, int | None] = {"A": None, "B": None}

    @property
    def active(self) -> str:
        return "A" if self.a.isChecked() else "B"

    def set_active(self, name: str) -> None:
        """Check marker ``name``'s button (the view state's active marker)."""
        (self.a if name == "A" else self.b).setChecked(True)

    def set_time(self, name: str, ts: int | None) -> None:
        self.times[name] = ts
        (self.a_label if name == "A" else self.b_label).setText(seconds_text(ts, 9) if ts is not None else "-")
        a, b = self.times["A"], self.times["B"]
        if a is not None and b is not None:
            d = b - a
            self.delta.setText(f"Δ(B-A): {d / 1e3:,.3f} µs" if abs(d) < 1e7 else f"Δ(B-A): {d / 1e9:.6f} s")
        else:
            self.delta.setText("Δ: -")
