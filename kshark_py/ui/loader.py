"""Loading off the GUI thread: :func:`kshark_py.model.loading.load_session` in a QThread.

The worker turns the loader's byte counts into a 0..1000 progress signal and hands the cancel
button's event to the loader; errors from the reader arrive as one line, ready for a dialog.
"""

from __future__ import annotations

import threading

from PySide6 import QtCore

from ..loaders.errors import TraceDatError
from ..model.loading import Cancelled, load_session


class LoadWorker(QtCore.QObject):
    """Runs :func:`load_session` in a QThread; emits progress, then finished or failed."""

    progress = QtCore.Signal(int, int, str)
    finished = QtCore.Signal(object)
    failed = QtCore.Signal(str)

    def __init__(self, paths: list[str], user_map=None, time_offsets: dict[int | str, int] | None = None) -> None:
        super().__init__()
        self.paths = paths
        self.user_map = user_map
        self.time_offsets = time_offsets
        self.cancel_event = threading.Event()

    @QtCore.Slot()
    def run(self) -> None:
        try:
            res = load_session(self.paths, self.user_map, progress=lambda d, t, m: self.progress.emit(
                int(d * 1000 // max(t, 1)), 1000, m), cancel=self.cancel_event, time_offsets=self.time_offsets)
        except Cancelled:
            self.failed.emit("cancelled")
        except TraceDatError as e:
            self.failed.emit(e.one_line())
        except (OSError, ValueError) as e:  # ValueError: a bad --time-offset stream, a VCPU map error
            self.failed.emit(str(e))
        else:
            self.finished.emit(res)

    def cancel(self) -> None:
        self.cancel_event.set()
