"""The yellow bar at the top of a window whose trace files lost data (cut or damaged files).

Why a bar and not a dialog or the status bar: a partial trace looks like a whole one (the timeline
just ends early, a CPU row stays empty), so what was lost must stay in sight while the user reads
the trace, until they close it. The text is the library's :class:`~kshark_py.loaders.errors.DataLoss`
records, the same counts ``kshark-py report`` prints on stderr, grouped by stream.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from ..loaders.errors import DataLoss
from ..model.dataloss import loss_text

MAX_LINES = 6
"""Loss lines shown in the bar; the rest are counted there and listed in its tooltip."""


class LossBanner(QtWidgets.QFrame):
    """What was lost, per stream, with counts; hidden when nothing was; the close button hides it."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("lossBanner")
        self.setStyleSheet("#lossBanner { background: #ffe97a; border-bottom: 1px solid #c9a400; }"
                           "#lossBanner QLabel { color: #2b2400; }")
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 4, 4)
        self.label = QtWidgets.QLabel()
        self.label.setObjectName("lossText")
        self.label.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.label, 1)
        self.close_button = QtWidgets.QToolButton()
        self.close_button.setText("\u2715")
        self.close_button.setToolTip("Hide this message")
        self.close_button.setAutoRaise(True)
        self.close_button.clicked.connect(self.hide)
        lay.addWidget(self.close_button, 0, QtCore.Qt.AlignmentFlag.AlignTop)
        self.hide()

    def set_losses(self, losses: list[tuple[str, DataLoss]]) -> None:
        """Show ``losses`` (:func:`kshark_py.model.dataloss.session_losses`); hide the bar when there are none."""
        lines = [loss_text(name, x) for name, x in losses]
        if not lines:
            self.label.clear()
            self.setToolTip("")
            self.hide()
            return
        head = ("Data lost: this trace is incomplete (a cut or damaged file). What could be read is shown; "
                "missing:")
        shown = lines[:MAX_LINES]
        if len(lines) > MAX_LINES:
            shown.append(f"... and {len(lines) - MAX_LINES} more (hover for the list)")
        self.label.setText("\n".join([head, *shown]))
        self.setToolTip("\n".join(lines))
        self.show()
