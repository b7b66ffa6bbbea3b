"""Loading off the GUI thread: :func:`kshark_py.model.loading.load_session` in a QThread.

The worker turns the loader's byte counts into a 0..1000 progress signal and hands the cancel
button's event to the loader; errors from the reader arrive as one line, ready for a dialog.
With ``progressive`` (the app's default) it also reads the page headers of the opened files before
decoding anything and emits the :class:`~kshark_py.model.preview.Preview` (:attr:`LoadWorker.preview`),
then hands each delivery of decoded rows to it (:meth:`LoadWorker._rows`: the preview's rows and the
loading window's list fill in) and emits :attr:`LoadWorker.streamDecoded` as each stream is whole.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from PySide6 import QtCore

from ..loaders.buffer import Buffer
from ..loaders.errors import TraceDatError
from ..loaders.tracedat import TraceFile
from ..model.loading import Cancelled, LoadResult, load_session
from ..model.preview import Preview, build_preview

if TYPE_CHECKING:
    from ..loaders.partial import PartialRows

PREVIEW_WAIT_S = 3.0
"""The longest the decode waits for the GUI to show the preview (a GUI that never does: no deadlock)."""


class LoadWorker(QtCore.QObject):
    """Runs :func:`load_session` in a QThread; emits progress (and the preview), then finished or failed."""

    progress = QtCore.Signal(int, int, str)
    preview = QtCore.Signal(object)  # Preview: page headers read, nothing decoded yet
    streamDecoded = QtCore.Signal(int)  # stream index of the preview whose rows now count its events
    finished = QtCore.Signal(object)
    failed = QtCore.Signal(str)

    def __init__(self, paths: list[str], user_map=None, time_offsets: dict[int | str, int] | None = None,
                 progressive: bool = False) -> None:
        super().__init__()
        self.paths = paths
        self.user_map = user_map
        self.time_offsets = time_offsets
        self.progressive = progressive
        self.cancel_event = threading.Event()
        self.shown_event = threading.Event()
        """Set by the GUI thread once the preview is on screen: decoding starts then."""
        self._preview: Preview | None = None
        self._files: list[TraceFile] = []

    @QtCore.Slot()
    def run(self) -> None:
        hooks = {"opened": self._opened, "decoded": self._decoded} if self.progressive else {}
        try:
            res = load_session(self.paths, self.user_map, progress=lambda d, t, m: self.progress.emit(
                int(d * 1000 // max(t, 1)), 1000, m), cancel=self.cancel_event, time_offsets=self.time_offsets,
                write_behind=True, **hooks)
        except Cancelled:
            self.failed.emit("cancelled")
        except TraceDatError as e:
            self.failed.emit(e.one_line())
        except (OSError, ValueError) as e:  # ValueError: a bad --time-offset stream, a VCPU map error
            self.failed.emit(str(e))
        else:
            if self.progressive:
                self._prepare_window(res)
            self.finished.emit(res)
        finally:
            self._stop_rows()

    def _opened(self, files: list[TraceFile]) -> None:
        """The files are open: read their page headers and hand the preview to the GUI thread."""
        try:
            self._preview = build_preview(files, self.time_offsets)
        except Exception:  # noqa: BLE001 - the preview is a courtesy: the load goes on and reports any real fault
            self._preview = None
            return
        self.preview.emit(self._preview)
        self._files = files
        for tf in files:  # the reader hands each buffer's decoded rows over as it goes (loaders/partial)
            tf.on_rows = self._rows
        # Decode once the preview is drawn: the GUI thread builds the window (pyqtgraph, widgets: pure
        # Python) much sooner without a decoding thread contending for the interpreter.
        waited = 0.0
        while not self.shown_event.wait(0.05) and not self.cancel_event.is_set() and waited < PREVIEW_WAIT_S:
            waited += 0.05

    def _stop_rows(self) -> None:
        """The load ended: its files hand no more rows to this worker."""
        for tf in self._files:
            tf.on_rows = None
        self._files = []

    def _rows(self, rows: PartialRows) -> None:
        """The reader decoded more rows of a buffer (the loading thread): the preview counts them into
        its per-CPU time bins and keeps the list's first rows (here, not in the GUI thread), then
        tells the window."""
        if self._preview is None or self.cancel_event.is_set():
            return
        try:
            st = self._preview.stream_of(rows.buffer)
            if st is not None and st is self._preview.streams[0] and st.partial is None:
                _ = rows.buffer.trace.cmdlines  # the list's task names, parsed here, not in the GUI thread
            self._preview.add_rows(rows)
        except Exception:  # noqa: BLE001 - a courtesy like the preview: the rows keep their estimate, the load goes on
            return

    def _decoded(self, buffer: Buffer) -> None:
        """One buffer is decoded: its preview rows switch to its events."""
        if self._preview is None or self.cancel_event.is_set():
            return
        try:
            st = self._preview.set_exact(buffer)
        except Exception:  # noqa: BLE001 - a courtesy like the preview: the row keeps its estimate, the load goes on
            return
        if st is not None:
            self.streamDecoded.emit(st.index)

    def _prepare_window(self, res: LoadResult) -> None:
        """Compute here what building the window would (task names, pid counts, kallsyms): the
        preview stays interactive meanwhile, and the GUI thread's freeze while it builds the window
        is that much shorter."""
        ss = res.session
        try:
            for st in ss.streams:
                ss.task_names(st.index)
                ss.pid_counts(st.index)
            for tf in ss.files:
                _ = tf.kallsyms
        except TraceDatError:
            pass  # the window's build meets it again and says so, as without this

    def preview_shown(self) -> None:
        """The preview is on screen (any thread): the load goes on decoding."""
        self.shown_event.set()

    def cancel(self) -> None:
        self.cancel_event.set()
