"""What a window asks the app to open (windows never create windows themselves; see ``app``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from PySide6 import QtWidgets

from ..model.sessionfile import SessionState


@dataclass
class OpenRequest:
    """Files to open (host first), the user's VCPU map, a session state to apply once loaded, the
    window to close once the new one is shown (Append guest trace, Import session), and streams to
    shift in time (``--time-offset``)."""

    paths: list[str]
    user_map: dict[str, dict[int, int]] = field(default_factory=dict)
    state: SessionState | None = None
    replace: QtWidgets.QWidget | None = None
    time_offsets: dict[int | str, int] = field(default_factory=dict)
