"""Tools > Add time offset: shift one stream's times by a number of nanoseconds.

KernelShark's "Add Time Offset" for a guest opened without time sync (its clock is unrelated to
the host's). The offset is absolute (0 undoes it), as KernelShark's calibration; "Align first
events" proposes the offset that puts the stream's first event on the host's first event.
"""

from __future__ import annotations

import re

from PySide6 import QtWidgets

from ..model.session import Session

_UNITS = {"": 1, "ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


def parse_ns(text: str) -> int:
    """``-2848872631049``, ``2_848.87 s``, ``-1.5ms``: nanoseconds (ValueError with the reason)."""
    m = re.fullmatch(r"\s*([-+]?[\d_.]+(?:e[-+]?\d+)?)\s*(ns|us|µs|ms|s)?\s*", text, re.IGNORECASE)
    if not m:
        raise ValueError(f"not a time offset: {text!r} (nanoseconds, or a number with ns/us/ms/s)")
    num, unit = m.group(1).replace("_", ""), (m.group(2) or "").lower()
    scale = _UNITS[unit]
    if re.fullmatch(r"[-+]?\d+", num):
        return int(num) * scale
    return round(float(num) * scale)


class TimeOffsetDialog(QtWidgets.QDialog):
    """Asks for a stream and its offset in ns; :attr:`result_value` is ``(stream index, ns)``."""

    def __init__(self, session: Session, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add time offset")
        self.session = session
        self.result_value: tuple[int, int] | None = None
        self.stream = QtWidgets.QComboBox()
        host = session.host_stream
        for st in session.streams:
            self.stream.addItem(f"{st.index}: {st.name}", st.index)
        others = [st.index for st in session.streams if host is None or st.index != host.index]
        if others:
            self.stream.setCurrentIndex(others[0])
        self.value = QtWidgets.QLineEdit()
        self.value.setPlaceholderText("nanoseconds, or e.g. 2848.87 s")
        self.error = QtWidgets.QLabel()
        self.error.setStyleSheet("color: #b00020")
        align = QtWidgets.QPushButton("Align first events")
        align.setToolTip("The offset that puts this stream's first event on the host's first event")
        align.clicked.connect(self._align)
        form = QtWidgets.QFormLayout(self)
        form.addRow("Stream:", self.stream)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.value, 1)
        row.addWidget(align)
        form.addRow("Offset [ns]:", row)
        form.addRow(self.error)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Ok
                                             | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.stream.currentIndexChanged.connect(self._show_current)
        self._show_current()

    def _show_current(self) -> None:
        i = self.stream.currentData()
        self.value.setText(str(self.session.time_offsets.get(i, 0)))
        self.error.clear()

    def _align(self) -> None:
        i = self.stream.currentData()
        host = self.session.host_stream
        ts = self.session.streams[i].buffer.events.column("ts")
        if host is None or host.index == i or len(ts) == 0 or len(host.buffer.events) == 0:
            self.error.setText("needs a host stream and another stream with events")
            return
        own = int(ts[0].as_py()) - self.session.time_offsets.get(i, 0)  # as the file says
        self.value.setText(str(int(host.buffer.events.column("ts")[0].as_py()) - own))

    def _accept(self) -> None:
        try:
            ns = parse_ns(self.value.text())
        except ValueError as e:
            self.error.setText(str(e))
            return
        self.result_value = (int(self.stream.currentData()), ns)
        self.accept()
