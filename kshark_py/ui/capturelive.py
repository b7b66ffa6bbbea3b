"""The live view of a recording: a main window whose rows and event list grow while the capture runs.

Why a timer and whole snapshots: the recording thread decodes the new pages into a
:class:`~kshark_py.capture.live.LiveCapture` (no Qt there); every :data:`REFRESH_MS` the GUI thread takes
the streams' tables as they are (only if something arrived), makes a session of them
(:class:`~kshark_py.model.livesession.LiveSessionBuilder`) and hands it to the window, which rebuilds its
rows, event list and panels from it.  The view follows the newest data (the last :attr:`LiveView.span_ns`)
until the user zooms or pans ("Follow" unchecks itself; checking it again follows again).  After Stop
the written files are loaded off the GUI thread and replace the live session in the same window, in the same
view range; :attr:`LiveView.finished` says whether their tables are exactly what the live view held (not when
the view was bounded to the newest events, or a guest had no time sync).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
from PySide6 import QtCore, QtWidgets
from shiboken6 import isValid

from ..capture.live import LiveCapture, Snapshot
from ..capture.livecount import cpu_lost_text
from ..model.livesession import LiveSessionBuilder
from ..model.loading import load_session
from ..model.session import Session
from ..model.vcpus import build_vcpu_map

MainWindow = QtWidgets.QMainWindow
"""What this module needs of the main window (its class is handed in: the main window imports the panel)."""

REFRESH_MS = 500
"""How often the window takes the new events (the issue's bound: at most 1 s behind)."""
MAX_SHARE = 0.1
"""At most this share of a core goes to refreshes: a refresh that took T s of CPU waits T / MAX_SHARE s (at most
:data:`MAX_WAIT_MS`) for the next one (big live tables at full speed refresh less often, the window stays
responsive)."""
MAX_WAIT_MS = 5000
UNSYNCED = " (not synchronized yet)"
"""Appended to the row labels of a guest that has no time-sync sample yet."""
FOLLOW_SPAN_NS = 10_000_000_000
"""While following, at most this much of the newest data is in view (all of it while shorter)."""


def same_tables(a: Session, b: Session) -> bool:
    """Do two sessions hold the same events in every stream (time, CPU, task, event)?"""
    if [s.name for s in a.streams] != [s.name for s in b.streams]:
        return False
    for x, y in zip(a.streams, b.streams, strict=True):
        tx, ty = x.buffer.events, y.buffer.events
        if tx.num_rows != ty.num_rows:
            return False
        for c in ("ts", "cpu", "pid", "event_id"):
            if not np.array_equal(tx.column(c).to_numpy(), ty.column(c).to_numpy()):
                return False
    return True


def status_text(snaps: list[Snapshot], recording: bool) -> str:
    """``Recording: host 1,234 events (lost 0) · g 567 events (lost 3+, not synchronized yet)``."""
    parts = []
    for s in snaps:
        lost = sum(n for n, _u in s.cpu_lost.values())
        unknown = sum(u for _n, u in s.cpu_lost.values())
        extra = f"lost {cpu_lost_text(lost, unknown)}"
        if not s.synced:
            extra += ", not synchronized yet: aligned by first event"
        parts.append(f"{s.name} {s.events.num_rows:,} events ({extra})")
    return ("Recording (live): " if recording else "Recorded: ") + " · ".join(parts)


class LiveView(QtCore.QObject):
    """Drives one main window from a recording's :class:`LiveCapture` (see the module doc).

    ``window_class`` builds the window (the main window's class, handed in by whoever opens the capture
    panel: this module must not import the main window, which imports the panel).  :attr:`windowOpened`
    announces a window it built, for the app to own and show.
    """

    windowOpened = QtCore.Signal(object)
    finished = QtCore.Signal(bool)
    """The files replaced the live session; True when they held exactly what the live view showed."""

    def __init__(self, live: LiveCapture, window_class: Callable[..., MainWindow], *,
                 window: MainWindow | None = None, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.live = live
        self.window_class = window_class
        self.window = window
        self.builder = LiveSessionBuilder()
        self.follow = True
        self.span_ns = FOLLOW_SPAN_NS
        self.refreshes = 0
        self.recording = True
        self._gen = -1
        self._moving = False
        self._follow_action: QtWidgets.QAction | None = None
        self._label: QtWidgets.QLabel | None = None
        self._loaded: tuple | None = None
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self.refresh)

    def start(self) -> None:
        self.timer.start()

    # -- refresh
    def refresh(self) -> bool:
        """Show the newest events (if any arrived since the last refresh); True if the window changed."""
        gen = self.live.generation
        if gen == self._gen:
            return False
        t0 = time.thread_time()
        snaps = self.live.snapshots()
        if not snaps or not any(s.events.num_rows for s in snaps):
            return False
        self._gen = gen
        session = self.builder.build(snaps)
        built = self.window is not None and isValid(self.window)
        self._show(session)
        self._mark_unsynced({s.name for s in snaps if not s.synced})
        self.refreshes += 1
        if built:  # (building the window is a one-time cost: it says nothing of the next refreshes)
            wait = int((time.thread_time() - t0) / MAX_SHARE * 1000)
            self.timer.setInterval(min(MAX_WAIT_MS, max(REFRESH_MS, wait)))
        if self._label is not None:
            self._label.setText(status_text(snaps, self.recording))
        return True

    def _show(self, session: Session) -> None:
        w = self.window
        if w is None or not isValid(w):
            w = self.window = self.window_class(session, build_vcpu_map(session, {}), paths=[])
            self.setParent(w)  # the window keeps its view alive (the panel may close before the files are in)
            w.setWindowTitle("kshark-py - recording (live)")
            self._decorate(w)
            self._moving = True
            try:
                self._follow_now()
            finally:
                self._moving = False
            self.windowOpened.emit(w)
            return
        if self.parent() is not w:
            self.setParent(w)
        keep = w.view.range
        top = w.event_list.table.rowAt(0)
        self._moving = True
        try:
            w.replace_session(session)
            if self.follow:
                self._follow_now()
            elif keep is not None:
                w.timeline.set_range(*keep)
        finally:
            self._moving = False
        table = w.event_list.table
        if self.follow:  # the list appends: its newest rows in view
            table.scrollToBottom()
        elif top > 0:  # where the user scrolled it (the rows before it do not move: a table only grows)
            table.scrollTo(table.model().index(top, 0), QtWidgets.QAbstractItemView.ScrollHint.PositionAtTop)

    def _mark_unsynced(self, names: set[str]) -> None:
        """The rows of guests without time-sync samples yet say so (their times are aligned by first event)."""
        w = self.window
        if not names or w is None or not isValid(w):
            return
        for r in w.model.rows:
            if w.session.streams[r.stream].name in names and not r.label.endswith(UNSYNCED):
                r.label += UNSYNCED
        w.timeline.rows_changed()

    def _follow_now(self) -> None:
        t0, t1 = self.window.timeline.full_range()
        self.window.timeline.set_range(max(t0, t1 - self.span_ns), t1)
        self.window.event_list.table.scrollToBottom()

    def _decorate(self, w: MainWindow) -> None:
        tb = QtWidgets.QToolBar("Live")
        tb.setObjectName("Live")
        act = tb.addAction("Follow")
        act.setCheckable(True)
        act.setChecked(self.follow)
        act.setToolTip("Keep the newest events in view (zooming or panning turns it off)")
        act.toggled.connect(self.set_follow)
        self._follow_action = act
        self._label = QtWidgets.QLabel()
        tb.addWidget(self._label)
        w.addToolBar(QtCore.Qt.ToolBarArea.TopToolBarArea, tb)
        self.toolbar = tb
        w.view.events.range.connect(self._range_moved)

    def _range_moved(self, *_: object) -> None:
        if not self._moving and self.follow:  # the user zoomed or panned: stop following
            self.set_follow(False)

    def set_follow(self, on: bool) -> None:
        self.follow = bool(on)
        if self._follow_action is not None and self._follow_action.isChecked() != self.follow:
            self._follow_action.setChecked(self.follow)
        if self.follow and self.window is not None and isValid(self.window):
            self._moving = True
            try:
                self._follow_now()
            finally:
                self._moving = False

    # -- after Stop
    def finish(self, paths: list[str]) -> None:
        """The recording is written: take the last events, then load ``paths`` off the GUI thread and put
        them in the window in place of the live session."""
        self.recording = False
        self.timer.stop()
        self.refresh()
        if self.window is None or not isValid(self.window) or not paths:
            self.finished.emit(False)
            return
        result: dict = {}

        def load() -> None:
            try:
                result["res"] = load_session(list(paths))
            except Exception as e:  # shown in the status bar; the live session stays
                result["error"] = str(e)

        th = threading.Thread(target=load, name="kshark-live-final", daemon=True)
        th.start()
        poll = QtCore.QTimer(self)
        poll.setInterval(50)

        def check() -> None:
            if th.is_alive():
                return
            poll.stop()
            poll.deleteLater()
            self._adopt_files(paths, result)

        poll.timeout.connect(check)
        poll.start()

    def _adopt_files(self, paths: list[str], result: dict) -> None:
        w = self.window
        if w is None or not isValid(w):
            self.finished.emit(False)
            return
        if "res" not in result:
            w.status.showMessage(f"could not open the recorded files: {result.get('error')}", 10000)
            self.finished.emit(False)
            return
        res = result["res"]
        same = same_tables(w.session, res.session)
        held = sum(s.buffer.events.num_rows for s in w.session.streams)
        total = sum(s.buffer.events.num_rows for s in res.session.streams)
        keep = w.view.range
        self._moving = True
        try:
            w.replace_session(res.session)
            if keep is not None:  # the files hold what was in view: it stays in view
                w.timeline.set_range(*keep)
        finally:
            self._moving = False
        w.paths = list(paths)
        w.setWindowTitle("kshark-py - " + ", ".join(p.rsplit("/", 1)[-1] for p in paths))
        if self._follow_action is not None:
            self._follow_action.setEnabled(False)
        if self._label is not None:
            note = ""
            if not same and held < total:
                note = f"  (the live view held the newest {held:,} events; the files hold all {total:,})"
            elif not same:
                note = "  (the files place the streams differently: no time sync was written)"
            self._label.setText(self._label.text().replace("Recording (live): ", "Recorded: ") + note)
        self.builder.close()
        self.finished.emit(same)
