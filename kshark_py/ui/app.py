"""Starting the desktop app: files, a session, or the bundled demo; optionally a screenshot."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6 import QtCore, QtWidgets

from ..loaders.memory import release_free_memory, return_memory_promptly
from .loader import LoadResult, LoadWorker, load_session
from .sessionfile import SessionState, load_session_file

if TYPE_CHECKING:
    from .mainwindow import MainWindow

DEMO_SESSION = Path(__file__).resolve().parents[2] / "resources" / "demo" / "demo-session.json"

_windows: list = []


def app_instance() -> QtWidgets.QApplication:
    app = QtWidgets.QApplication.instance()
    if app is None:
        return_memory_promptly()  # big temporaries go back to the kernel when freed (see there)
        app = QtWidgets.QApplication(sys.argv[:1])
        app.setApplicationName("kshark-py")
    return app


def build_window(res: LoadResult, paths: list[str], user_map=None, state: SessionState | None = None) -> MainWindow:
    # imported here, after the load: pyqtgraph and the window's modules (~55 MB) are then not
    # resident while the reader is at its peak
    from .mainwindow import MainWindow

    w = MainWindow(res.session, res.vcpu_map, paths=paths, user_map=user_map)
    if state is not None:
        w.apply_state(state)
    release_free_memory()  # building rows and the list left free heap pages behind
    _windows.append(w)
    return w


def open_window(paths: list[str], user_map=None, state: SessionState | None = None) -> None:
    """Load in a worker thread with a progress dialog; the window appears when loading is done."""
    dlg = QtWidgets.QProgressDialog("Loading...", "Cancel", 0, 1000)
    dlg.setWindowTitle("kshark-py")
    dlg.setMinimumDuration(200)
    thread = QtCore.QThread()
    worker = LoadWorker(paths, user_map)
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    worker.progress.connect(lambda v, t, m: (dlg.setMaximum(t), dlg.setValue(v), dlg.setLabelText(m)))
    dlg.canceled.connect(worker.cancel)

    def done(res: LoadResult) -> None:
        dlg.reset()
        thread.quit()
        build_window(res, paths, user_map, state).show()

    def failed(msg: str) -> None:
        dlg.reset()
        thread.quit()
        if msg != "cancelled":
            QtWidgets.QMessageBox.critical(None, "kshark-py", msg)

    worker.finished.connect(done)
    worker.failed.connect(failed)
    thread.finished.connect(worker.deleteLater)
    _windows.append((thread, worker, dlg))  # keep them alive
    thread.start()


def open_session(path: str) -> None:
    state = load_session_file(path)
    open_window(state.files, state.vcpu_map, state)


def screenshot(paths: list[str], out: str, user_map=None, state: SessionState | None = None,
               size: tuple[int, int] = (1600, 1000)) -> int:
    """Load synchronously, lay out and render the main window, write the PNG."""
    app_instance()
    res = load_session(paths, user_map)
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


def run(paths: list[str], session: str | None, user_map: dict | None, shot: str | None) -> int:
    """The GUI entry point behind ``kshark-py [-i FILE ...] [--session F] [--screenshot OUT]``."""
    state = None
    if session or not paths:
        state = load_session_file(session or DEMO_SESSION)
        paths = state.files
        merged = dict(state.vcpu_map)
        merged.update(user_map or {})
        user_map = merged
    if shot:
        code = screenshot(paths, shot, user_map, state)
    else:
        app = app_instance()
        open_window(paths, user_map, state)
        code = app.exec()
    # Tear-down of PySide6 6.12 + pyqtgraph objects during interpreter finalization can abort the
    # process ("bool_dealloc" in the GC) after all work is done; leave without it, files flushed.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
