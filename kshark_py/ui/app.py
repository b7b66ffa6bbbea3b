"""Starting the desktop app: files, a session, or the bundled demo; optionally a screenshot.

Only this module creates main windows. Windows ask for a new one with
:attr:`MainWindow.openRequested`; :class:`WindowManager` (a QObject living in the GUI thread) loads
the files in a worker thread and builds the window when the load is done. Every slot the worker's
signals reach is a method of a GUI-thread QObject, so Qt queues the call into the GUI thread: a
lambda or closure slot would run in the worker thread and build widgets there, which crashes Qt.
"""

from __future__ import annotations

import functools
import gc
import os
import sys
import traceback
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6 import QtCore, QtWidgets
from shiboken6 import isValid

from ..loaders.memory import release_free_memory, return_memory_promptly
from ..model.loading import LoadResult, load_session
from ..model.sessionfile import SessionState, load_session_file
from .loader import LoadWorker
from .openrequest import OpenRequest
from .probe import start_probe

if TYPE_CHECKING:
    from .mainwindow import MainWindow

DEMO_SESSION = Path(__file__).resolve().parents[2] / "resources" / "demo" / "demo-session.json"


def app_instance() -> QtWidgets.QApplication:
    app = QtWidgets.QApplication.instance()
    if app is None:
        return_memory_promptly()  # big temporaries go back to the kernel when freed (see there)
        app = QtWidgets.QApplication(sys.argv[:1])
        app.setApplicationName("kshark-py")
        app.setOrganizationName("kshark-py")
        from .cachesetting import apply as apply_cache_setting

        apply_cache_setting()  # Tools > Keep decoded traces: off turns the load cache off
    return app


_built: weakref.WeakSet = weakref.WeakSet()
"""Every main window built and not yet garbage: a closed window must leave it (its session's tables
are the app's memory)."""


def windows_in_memory() -> int:
    """Main windows whose Python objects are still alive after a garbage collection."""
    gc.collect()
    return len(_built)


def build_window(res: LoadResult, paths: list[str], user_map=None, state: SessionState | None = None) -> MainWindow:
    """The main window for a finished load (synchronous: tests, screenshots, the manager)."""
    # imported here, after the load: pyqtgraph and the window's modules (~55 MB) are then not
    # resident while the reader is at its peak
    from .mainwindow import MainWindow

    w = MainWindow(res.session, res.vcpu_map, paths=paths, user_map=user_map)
    _built.add(w)
    if state is not None:
        w.apply_state(state)
    release_free_memory()  # building rows and the list left free heap pages behind
    return w


class _LoadJob(QtCore.QObject):
    """One load in a worker thread, with its progress dialog. Lives in the GUI thread: the worker's
    signals arrive here queued."""

    done = QtCore.Signal(object, object)  # self, MainWindow | None

    def __init__(self, req: OpenRequest, parent: QtCore.QObject) -> None:
        super().__init__(parent)
        self.req = req
        self.dialog = QtWidgets.QProgressDialog("Loading...", "Cancel", 0, 1000)
        self.dialog.setWindowTitle("kshark-py")
        self.dialog.setMinimumDuration(200)
        self.dialog.setAutoClose(False)
        self.dialog.setAutoReset(False)
        self._thread = QtCore.QThread(self)
        self.worker = LoadWorker(req.paths, req.user_map, req.time_offsets, progressive=True)
        self.worker.moveToThread(self._thread)
        self._thread.started.connect(self.worker.run)
        self.worker.progress.connect(self._progress)
        self.worker.preview.connect(self._preview)
        self.worker.streamDecoded.connect(self._stream_decoded)
        self.worker.finished.connect(self._finished)
        self.worker.failed.connect(self._failed)
        self.dialog.canceled.connect(self.worker.cancel, QtCore.Qt.ConnectionType.DirectConnection)
        self.window: MainWindow | None = None
        """The window showing the page-header preview while the load runs (the progressive first view)."""

    def start(self) -> None:
        self._thread.start()
        from . import mainwindow  # noqa: F401 (the preview's window, imported while the worker reads page headers)

    @QtCore.Slot(object)
    def _preview(self, preview: object) -> None:
        """The files' page headers are read: show the window now (the dialog's work moves into it),
        then let the worker decode."""
        if self.dialog.wasCanceled():
            return
        from .mainwindow import MainWindow

        self.dialog.canceled.disconnect(self.worker.cancel)
        self.dialog.close()
        self.window = MainWindow(None, [], paths=self.req.paths, user_map=self.req.user_map, preview=preview,
                                 cancel_load=self.worker.cancel)
        _built.add(self.window)
        self.window.show()
        self.window.timeline.redraw()
        self.window.repaint()
        self.worker.preview_shown()

    @QtCore.Slot(int)
    def _stream_decoded(self, index: int) -> None:
        if self.window is not None and self.window.loading is not None:
            self.window.loading.stream_decoded(index)

    @QtCore.Slot(int, int, str)
    def _progress(self, value: int, total: int, msg: str) -> None:
        if self.window is not None and self.window.loading is not None:
            self.window.loading.progress(value, total, msg)
            return
        if self.dialog.wasCanceled():
            return
        self.dialog.setMaximum(total)
        self.dialog.setValue(value)
        self.dialog.setLabelText(msg)

    def _stop_thread(self) -> None:
        self.dialog.close()
        self.dialog.deleteLater()
        self._thread.quit()
        self._thread.wait()
        self.worker.deleteLater()

    @QtCore.Slot(object)
    def _finished(self, res: LoadResult) -> None:
        self._stop_thread()
        r = self.req
        if self.window is not None and not self.window.isVisible():  # closed while its load ended
            self.window.deleteLater()
            self.done.emit(self, None)
            return
        try:
            if self.window is not None:  # the preview's window takes the session
                w = self.window
                w.finish_load(res, r.state)
                release_free_memory()
            else:
                w = build_window(res, r.paths, r.user_map, r.state)
        except Exception as e:  # a bug must not leave the app running without a window
            traceback.print_exc()
            QtWidgets.QMessageBox.critical(None, "kshark-py", f"could not open {', '.join(r.paths)}: {e}")
            if self.window is not None:
                self.window.close()
                self.window.deleteLater()
            w = None
        self.done.emit(self, w)

    @QtCore.Slot(str)
    def _failed(self, msg: str) -> None:
        self._stop_thread()
        w = self.window
        if msg != "cancelled":
            QtWidgets.QMessageBox.critical(None, "kshark-py", msg)
        elif w is not None and w.isVisible():  # cancelled: the preview stays
            w.load_cancelled()
            self.done.emit(self, w)
            return
        if w is not None:
            w.close()
            w.deleteLater()
        self.done.emit(self, None)


class WindowManager(QtCore.QObject):
    """Owns the main windows and the loads in progress; quits the app when the last window closes
    and no load is pending (Qt's own rule would quit between closing an old window and showing the
    new one)."""

    def __init__(self, app: QtWidgets.QApplication) -> None:
        super().__init__(app)
        self.app = app
        app.setQuitOnLastWindowClosed(False)
        self.windows: list[MainWindow] = []
        self.jobs: list[_LoadJob] = []

    def open(self, req: OpenRequest) -> None:
        """Load ``req.paths`` off the GUI thread; show the window when done."""
        job = _LoadJob(req, self)
        job.done.connect(self._job_done)
        self.jobs.append(job)
        job.start()

    @QtCore.Slot(object, object)
    def _job_done(self, job: _LoadJob, w: MainWindow | None) -> None:
        self.jobs.remove(job)
        job.deleteLater()
        if w is not None:
            self.adopt(w)
            w.show()
            if job.req.replace is not None:
                job.req.replace.close()
        self._maybe_quit()

    def adopt(self, w: MainWindow) -> None:
        """Track a window: its requests come here, and it is freed when closed."""
        w.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose, True)
        w.openRequested.connect(self.open)
        w.windowOpened.connect(self._adopt_shown)  # a live capture's window, made by the capture panel
        # destroyed() hands over a new QObject wrapper, not ``w``: identify the window by its id
        w.destroyed.connect(functools.partial(self._forget, id(w)))
        self.windows.append(w)

    def _adopt_shown(self, w: MainWindow) -> None:
        self.adopt(w)
        w.show()

    def _forget(self, key: int, *_: object) -> None:
        self.windows = [w for w in self.windows if id(w) != key]
        QtCore.QTimer.singleShot(0, self._maybe_quit)

    def _maybe_quit(self) -> None:
        alive = [w for w in self.windows if isValid(w) and w.isVisible()]  # deleted: not yet forgotten
        if not alive and not self.jobs:
            self.app.quit()


_manager: WindowManager | None = None


def window_manager() -> WindowManager:
    global _manager
    if _manager is None:
        _manager = WindowManager(app_instance())
    return _manager


def open_window(paths: list[str], user_map=None, state: SessionState | None = None,
                time_offsets: dict[int | str, int] | None = None) -> None:
    """Load in a worker thread with a progress dialog; the window appears when loading is done."""
    window_manager().open(OpenRequest(list(paths), dict(user_map or {}), state,
                                      time_offsets=dict(time_offsets or {})))


def screenshot(paths: list[str], out: str, user_map=None, state: SessionState | None = None,
               size: tuple[int, int] = (1600, 1000), time_offsets: dict[int | str, int] | None = None) -> int:
    """Load synchronously, lay out and render the main window, write the PNG."""
    app_instance()
    res = load_session(paths, user_map, time_offsets=time_offsets, write_behind=True)
    w = build_window(res, paths, user_map, state)
    w.resize(*size)
    w.show()
    for _ in range(5):
        QtWidgets.QApplication.processEvents()
    w.timeline.redraw()
    QtWidgets.QApplication.processEvents()
    ok = w.grab().save(out)
    w.close()
    return 0 if ok else 2


def run(paths: list[str], session: str | None, user_map: dict | None, shot: str | None,
        time_offsets: dict[int | str, int] | None = None) -> int:
    """The GUI entry point behind ``kshark-py [-i FILE ...] [--session F] [--time-offset S=NS]
    [--screenshot OUT]``."""
    state = None
    if session or not paths:
        state = load_session_file(session or DEMO_SESSION)
        paths = state.files
        merged = dict(state.vcpu_map)
        merged.update(user_map or {})
        user_map = merged
    if shot:
        code = screenshot(paths, shot, user_map, state, time_offsets=time_offsets)
    else:
        app = app_instance()
        probe = start_probe(app, windows_in_memory)  # noqa: F841 (kept alive by its parent; a test reads what it writes)
        open_window(paths, user_map, state, time_offsets)
        code = app.exec()
    # Tear-down of PySide6 + pyqtgraph objects during interpreter finalization can abort the
    # process in the GC after all work is done; leave without it, files flushed.
    sys.stdout.flush()
    sys.stderr.flush()
    from ..loaders.loadcache import flush

    flush()  # a load cache entry still being written behind (os._exit would leave half a temp file)
    os._exit(code)
