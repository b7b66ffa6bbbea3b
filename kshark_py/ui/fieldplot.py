"""Analysis > Field plot: any numeric field of an event as its own timeline row (KernelShark's
event_field_plot): sched_stat_runtime.runtime, rss_stat.size, kvm_exit.exit_reason...

The dialog lists, per stream, the event types that have records and their numeric fields; the
chosen field becomes a row of kind ``field`` at the bottom of the graph (ticks where its records
are, the values drawn by :class:`~kshark_py.plots.fieldrow.FieldRowLayer`, min and max per pixel
column).  The row's context menu removes it like any other row.
"""

from __future__ import annotations

import numpy as np
from PySide6 import QtWidgets

from ..model.analysis.fieldplot import FieldPlotError, field_series, numeric_fields
from ..model.session import Session
from ..model.viewmodel import EventTicks, Row, RowSources
from ..plots.fieldrow import FieldSeries


def stream_events(session: Session, stream: int) -> list[tuple[str, int]]:
    """``(system:name, records)`` of the stream's event types that have a numeric field, most records first."""
    st = session.streams[stream]
    ids, n = np.unique(st.buffer.events.column("event_id").to_numpy(), return_counts=True)
    out = []
    for i, c in zip(ids.tolist(), n.tolist(), strict=True):
        ev = st.trace.formats.get(int(i))
        if ev is not None and numeric_fields(session, stream, ev.full_name):
            out.append((ev.full_name, int(c)))
    return sorted(out, key=lambda kv: (-kv[1], kv[0]))


def field_row(session: Session, sources: RowSources, stream: int, event: str, field: str) -> Row:
    """The timeline row of ``event.field`` in ``stream``: ticks at its records, its series as data.
    Raises :class:`FieldPlotError` when the field cannot be plotted."""
    ts, values = field_series(session, stream, event, field)
    series = FieldSeries(stream, event, field, ts, values)
    st = session.streams[stream]
    ev = st.trace.formats.find(event)
    ticks = EventTicks(sources.times(stream), st.buffer.events.column("event_id").to_numpy(), ev.id,
                       sources.mask(stream))
    label = f"{st.name} {ev.name}.{field}" + ("" if len(values) else " (no records)")
    return Row("field", stream, label, events=ticks, data=series)


class FieldPlotDialog(QtWidgets.QDialog):
    """Stream, event, field (see the module doc); ``chosen`` is (stream, event, field) once accepted."""

    def __init__(self, session: Session, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Field plot")
        self.session = session
        self.chosen: tuple[int, str, str] | None = None
        self.stream = QtWidgets.QComboBox()
        for st in session.streams:
            self.stream.addItem(st.name, st.index)
        self.event = QtWidgets.QComboBox()
        self.event.setEditable(True)
        self.event.setInsertPolicy(QtWidgets.QComboBox.InsertPolicy.NoInsert)
        self.field = QtWidgets.QComboBox()
        self.stream.currentIndexChanged.connect(lambda *_: self._events())
        self.event.currentTextChanged.connect(lambda *_: self._fields())
        self.error = QtWidgets.QLabel()
        self.error.setStyleSheet("color: #b00")
        self.error.setWordWrap(True)
        form = QtWidgets.QFormLayout()
        form.addRow("Stream:", self.stream)
        form.addRow("Event:", self.event)
        form.addRow("Field:", self.field)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Ok
                                             | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.error)
        lay.addWidget(buttons)
        self.resize(460, 180)
        self._events()

    def _events(self) -> None:
        self.event.blockSignals(True)
        self.event.clear()
        for name, n in stream_events(self.session, int(self.stream.currentData())):
            self.event.addItem(f"{name}", n)
        self.event.blockSignals(False)
        self._fields()

    def _fields(self) -> None:
        self.field.clear()
        fields = numeric_fields(self.session, int(self.stream.currentData()), self.event.currentText().strip())
        self.field.addItems(fields + ["common_pid"] if fields else [])
        if fields:  # the event's last number: runtime, size, ... (its first is often a pid)
            self.field.setCurrentIndex(len(fields) - 1)

    def select(self, stream: int, event: str, field: str) -> None:
        """Choose as the user would (tests, session restore)."""
        self.stream.setCurrentIndex(self.stream.findData(stream))
        self.event.setCurrentText(event)
        self.field.setCurrentText(field)

    def _accept(self) -> None:
        stream, event, field = int(self.stream.currentData()), self.event.currentText().strip(), \
            self.field.currentText().strip()
        try:
            field_series(self.session, stream, event, field)
        except FieldPlotError as e:
            self.error.setText(str(e))
            return
        self.chosen = (stream, event, field)
        self.accept()
