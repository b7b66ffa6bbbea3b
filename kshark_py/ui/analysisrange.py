"""What the VM analysis panels share: the time range they follow, and computing off the GUI thread.

A panel follows one of three ranges (:data:`MODES`): the graph's view, markers A..B, or the whole
trace.  The window feeds an :class:`AnalysisContext` with its view range and markers; panels
listen to its ``changed`` signal (debounced, so a drag that pans the graph through a hundred
ranges asks for one computation at its end).

The analyses are pure functions of (session, t0, t1).  :class:`Worker` runs them off the GUI
thread, one at a time per panel; a newer request supersedes any older one still waiting or
running (its result is dropped), and results come back on the GUI thread through ``ready``.  Results are cached per
(request key) so going back to a range costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6 import QtCore, QtWidgets

from ..loaders.lru import LRU
from ..model.session import Session

MODES = (("view", "Graph view"), ("markers", "Markers A-B"), ("all", "Whole trace"))
"""(key, what the range box says), in the order the box lists them."""
DEBOUNCE_MS = 150
"""A view or marker change settles this long before the panels recompute."""


class AnalysisContext(QtCore.QObject):
    """The window's view range and markers as the analysis panels see them."""

    changed = QtCore.Signal()
    """The view or a marker moved (debounced by :data:`DEBOUNCE_MS`)."""
    reset = QtCore.Signal()
    """A stream's times moved (a time offset) or the VCPU map changed: every result computed
    before is stale."""

    def __init__(self, session: Session, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.view: tuple[int, int] | None = None
        self.markers: dict[str, int | None] = {"A": None, "B": None}
        self._timer = QtCore.QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.changed)

    def set_view(self, t0: int, t1: int) -> None:
        v = (int(t0), int(t1))
        if v != self.view:
            self.view = v
            self._timer.start()

    def set_marker(self, name: str, ts: int | None) -> None:
        ts = None if ts is None else int(ts)
        if self.markers.get(name) != ts:
            self.markers[name] = ts
            self._timer.start()

    def invalidate(self) -> None:
        self.reset.emit()

    def full(self) -> tuple[int, int]:
        t = self.session.merged().ts
        return (int(t.min()), int(t.max()) + 1) if len(t) else (0, 1)

    def range_for(self, mode: str) -> tuple[int, int] | None:
        """(t0, t1) in ns of a mode; None for markers A-B while a marker is unset."""
        if mode == "all":
            return self.full()
        if mode == "markers":
            a, b = self.markers.get("A"), self.markers.get("B")
            if a is None or b is None or a == b:
                return None
            return (min(a, b), max(a, b))
        return self.view if self.view is not None else self.full()


class RangeBox(QtWidgets.QComboBox):
    """Which range a panel follows (see :data:`MODES`)."""

    def __init__(self, default: str = "view", parent=None) -> None:
        super().__init__(parent)
        for key, text in MODES:
            self.addItem(text, key)
        self.setCurrentIndex([k for k, _ in MODES].index(default))
        self.setToolTip("The time range the panel analyses; it follows the graph as you zoom and pan, "
                        "or markers A and B as you set them")

    @property
    def mode(self) -> str:
        return str(self.currentData())

    def set_mode(self, mode: str) -> None:
        self.setCurrentIndex([k for k, _ in MODES].index(mode))


class Worker(QtCore.QObject):
    """One analysis at a time off the GUI thread, newest request wins (see the module doc).

    ``submit(key, fn)`` answers from the cache at once when ``key`` was computed before; else
    ``fn()`` runs in Qt's global thread pool (threads are shared and expire when idle: a panel
    costs no thread of its own).  While one runs, a newer request waits in the single pending
    slot, replacing any older one there; the running one's result is dropped.  ``ready(key,
    result)`` arrives on the GUI thread for the newest request only; ``failed(key, message)`` when
    ``fn`` raised.  With :attr:`sync` set (tests), ``fn`` runs in the caller's thread."""

    ready = QtCore.Signal(object, object)
    failed = QtCore.Signal(object, str)
    _done = QtCore.Signal(int, object, object, object)  # generation, key, result, error

    def __init__(self, cache_size: int = 8, parent=None) -> None:
        super().__init__(parent)
        self.sync = False
        self._gen = 0
        self._running = False
        self._pending: tuple[int, Any, Callable[[], Any]] | None = None
        self._cache: LRU[Any] = LRU(cache_size)
        self._done.connect(self._deliver, QtCore.Qt.ConnectionType.QueuedConnection)

    @property
    def busy(self) -> bool:
        """A computation runs or waits (what the panel shows is not the newest request's yet)."""
        return self._running or self._pending is not None

    def clear_cache(self) -> None:
        self._cache.clear()

    def submit(self, key: Any, fn: Callable[[], Any]) -> None:
        self._gen += 1
        self._pending = None
        if key in self._cache:
            self.ready.emit(key, self._cache.get(key))
            return
        if self.sync:
            self._finish(self._gen, key, *_call(fn))
            return
        self._pending = (self._gen, key, fn)
        if not self._running:
            self._start()

    def _start(self) -> None:
        gen, key, fn = self._pending
        self._pending = None
        self._running = True
        done = self._done
        QtCore.QThreadPool.globalInstance().start(lambda: done.emit(gen, key, *_call(fn)))

    def _deliver(self, gen: int, key: Any, res: Any, err: Any) -> None:
        self._running = False
        if self._pending is not None:
            self._start()
        self._finish(gen, key, res, err)

    def _finish(self, gen: int, key: Any, res: Any, err: Any) -> None:
        if gen != self._gen:  # superseded meanwhile
            return
        if err is not None:
            self.failed.emit(key, err)
            return
        self._cache.put(key, res)
        self.ready.emit(key, res)


def _call(fn: Callable[[], Any]) -> tuple[Any, str | None]:
    """(result, None) or (None, the exception in one line): shown in the panel, never a traceback."""
    try:
        return fn(), None
    except Exception as e:  # noqa: BLE001
        return None, f"{type(e).__name__}: {e}"


MARKERS_UNSET = "Set markers A and B (click the graph with A, then with B) to analyse between them."
"""What a panel following markers A-B says while one of them is unset."""


class RangeFollower(QtCore.QObject):
    """Keeps one panel on the range it follows, but only while the user can see it.

    On each ``ctx.changed`` the panel's ``refresh()`` runs at once when the panel is on screen; off
    screen (its dock closed, or a tab behind another) it is only marked stale and refreshes once
    when shown again: a hidden panel costs nothing while the user pans.  A panel following the
    whole trace (mode "all") ignores view and marker moves.  Feed :meth:`set_on_screen` from the
    dock's ``visibilityChanged``: a tabbed dock's widget stays ``isVisible()`` behind another
    tab, so only the dock knows when it is really shown."""

    def __init__(self, ctx: AnalysisContext, mode: Callable[[], str], refresh: Callable[[], None],
                 parent: QtCore.QObject) -> None:
        super().__init__(parent)
        self._mode, self._refresh = mode, refresh
        self.on_screen = True
        self.stale = False
        """The range moved while off screen: refresh when shown."""
        ctx.changed.connect(self._changed)

    def _changed(self) -> None:
        if self._mode() == "all":
            return
        if self.on_screen:
            self.refresh()
        else:
            self.stale = True

    def set_on_screen(self, on: bool) -> None:
        self.on_screen = bool(on)
        if on and self.stale:
            self.refresh()

    def refresh(self) -> None:
        self.stale = False
        self._refresh()


class RangePanel(QtWidgets.QWidget):
    """Base of the VM analysis panels computed on a :class:`Worker`, one computation per range.

    It holds the range box, the summary line and the worker, follows the range through a
    :class:`RangeFollower` (``follow``), and starts again from scratch on ``ctx.reset``.  A
    subclass names its analysis (:attr:`analysis`, a pure function of (session, t0, t1, the
    user's VCPU map), run off the GUI thread), sets ``marks`` (its :class:`GraphMarks`), shows
    results in ``_ready`` and calls :meth:`refresh` once its widgets exist."""

    computed = QtCore.Signal()
    """The results on screen were replaced (tests wait for it)."""

    KEY = ""
    """The worker's cache key starts with this (then the range)."""
    WHAT = ""
    """The analysis in words, for "... could not be computed"."""
    BUSY_TEXT: str | None = None
    """The summary while computing (None: the previous one stays)."""
    analysis: Callable[..., Any]

    def __init__(self, window, ctx: AnalysisContext, mode: str, parent=None) -> None:
        super().__init__(parent)
        self.window, self.ctx, self.session = window, ctx, ctx.session
        self.result: Any = None
        self.marks: GraphMarks | None = None
        self.range_box = RangeBox(mode)
        self.summary = QtWidgets.QLabel()
        self.summary.setWordWrap(True)
        self.worker = Worker(parent=self)
        self.worker.ready.connect(self._ready)
        self.worker.failed.connect(lambda _k, msg: self.summary.setText(f"{self.WHAT} could not be computed: {msg}"))
        self.range_box.currentIndexChanged.connect(lambda *_: self.refresh())
        self.follow = RangeFollower(ctx, lambda: self.range_box.mode, self._submit, self)
        ctx.reset.connect(self._reset)

    def set_on_screen(self, on: bool) -> None:
        """The dock's ``visibilityChanged`` (see :class:`RangeFollower`)."""
        self.follow.set_on_screen(on)

    def head(self) -> QtWidgets.QHBoxLayout:
        """The panel's top line: "Range:", the range box, the summary."""
        head = QtWidgets.QHBoxLayout()
        head.addWidget(QtWidgets.QLabel("Range:"))
        head.addWidget(self.range_box)
        head.addWidget(self.summary, 1)
        return head

    def refresh(self) -> None:
        self.follow.refresh()

    def _reset(self) -> None:
        self.worker.clear_cache()
        if self.marks is not None:
            self.marks.clear()
        self.refresh()

    def _submit(self) -> None:
        rng = self.ctx.range_for(self.range_box.mode)
        if rng is None:
            self.summary.setText(MARKERS_UNSET)
            return
        if self.BUSY_TEXT is not None:
            self.summary.setText(self.BUSY_TEXT)
        session, user, fn = self.session, {g: dict(m) for g, m in self.window.user_map.items()}, self.analysis
        self.worker.submit((self.KEY, rng), lambda: fn(session, *rng, user))

    def _ready(self, key: Any, result: Any) -> None:
        raise NotImplementedError


def ms_text(ns: float) -> str:
    """A duration for a table cell or a sentence: ms with 3 decimals, µs below 0.1 ms, ns below 1 µs."""
    ns = float(ns)
    if abs(ns) >= 100_000:
        return f"{ns / 1e6:,.3f} ms"
    if abs(ns) >= 1_000:
        return f"{ns / 1e3:,.1f} µs"
    return f"{ns:,.0f} ns"


class NumItem(QtWidgets.QTableWidgetItem):
    """A table cell that shows text and sorts by a number (durations sort as durations, not text)."""

    def __init__(self, text: str, value: float) -> None:
        super().__init__(text)
        self.value = value
        self.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other: QtWidgets.QTableWidgetItem) -> bool:
        if isinstance(other, NumItem):
            return self.value < other.value
        return super().__lt__(other)


def make_table(headers: list[str]) -> QtWidgets.QTableWidget:
    """A read-only, row-selecting, sortable table with these column headers."""
    t = QtWidgets.QTableWidget(0, len(headers))
    t.setHorizontalHeaderLabels(headers)
    t.verticalHeader().setVisible(False)
    t.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
    t.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
    t.horizontalHeader().setStretchLastSection(True)
    t.setAlternatingRowColors(True)
    t.horizontalHeader().setSortIndicator(-1, QtCore.Qt.SortOrder.AscendingOrder)
    t.setSortingEnabled(True)  # rows stay in the panel's order until the user clicks a header
    return t


def fill_table(table: QtWidgets.QTableWidget, rows: list[list[QtWidgets.QTableWidgetItem]], key_role_data=None) -> None:
    """Replace a table's rows (sorting is paused while filling, then the user's sort is re-applied).

    ``key_role_data`` (one object per row) is stored on each row's first cell (UserRole): what a
    click on the row means, whatever the sort order."""
    sorting = table.isSortingEnabled()
    table.setSortingEnabled(False)
    table.clearContents()
    table.setRowCount(len(rows))
    for i, r in enumerate(rows):
        for j, item in enumerate(r):
            if j == 0 and key_role_data is not None:
                item.setData(QtCore.Qt.ItemDataRole.UserRole, key_role_data[i])
            table.setItem(i, j, item)
    table.setSortingEnabled(sorting)
    table.resizeColumnsToContents()


def row_key(table: QtWidgets.QTableWidget, row: int):
    """What :func:`fill_table` stored for the table row now shown at ``row``."""
    item = table.item(row, 0)
    return None if item is None else item.data(QtCore.Qt.ItemDataRole.UserRole)


def row_spec(row) -> tuple:
    """What a timeline row shows, as a key panels name rows by (indices change as rows are added):
    ``(kind, guest, vcpu)`` for a VCPU's rows, ``("task", stream, pid)``, ``("cpu", stream, cpu)``."""
    if row.kind.startswith("vcpu_"):
        return (row.kind, row.guest, row.vcpu)
    if row.kind == "task":
        return ("task", row.stream, row.pid)
    return (row.kind, row.stream, row.cpu)


@dataclass
class Lane:
    """Intervals (ns, host clock) to frame on the row that shows ``spec`` (see :func:`row_spec`)."""

    spec: tuple
    start: np.ndarray
    end: np.ndarray


class GraphMarks:
    """One panel's intervals framed on the window's timeline (a :class:`~kshark_py.plots.boxes.BoxLayer`
    over the whole row body).

    :meth:`show` frames intervals on the rows its lanes name, adds a task row the graph does not
    show yet (a host VCPU thread of a VM the files do not name has no pair rows), and scrolls the
    rows into view."""

    def __init__(self, timeline, model, color=(20, 90, 255), fill_alpha: int = 70) -> None:
        from ..plots.boxes import BoxLayer

        self.timeline, self.model = timeline, model
        self.peers: list[GraphMarks] = timeline.__dict__.setdefault("_analysis_marks", [])
        """Every panel's marks on this timeline: showing one panel's clears the others'."""
        self.peers.append(self)
        self.layer = BoxLayer(color, band=(0.22, 0.88), fill_alpha=fill_alpha)
        self.lanes: dict[tuple, object] = {}
        self.layer.set_source(lambda row: self.lanes.get(row_spec(row)))
        timeline.add_layer(self.layer)

    def show(self, lanes: list[Lane]) -> list[int]:
        """Frame ``lanes``; returns the indices of their rows."""
        from ..plots.boxes import BoxLane

        for other in self.peers:
            if other is not self and other.lanes:
                other.clear()
        for ln in lanes:
            if ln.spec[0] == "task" and not any(row_spec(r) == ln.spec for r in self.model.rows):
                self.model.add_task_row(ln.spec[1], ln.spec[2])
        self.lanes = {ln.spec: BoxLane.of(ln.start, ln.end) for ln in lanes if len(ln.start)}
        self.layer.set_source(lambda row: self.lanes.get(row_spec(row)))
        rows = [i for i, r in enumerate(self.model.rows) if row_spec(r) in self.lanes]
        self.timeline.ensure_rows_visible(rows)
        self.timeline.schedule()
        return rows

    def clear(self) -> None:
        self.lanes = {}
        self.layer.set_source(lambda row: self.lanes.get(row_spec(row)))
        self.timeline.schedule()


def go_to(window, start: int, end: int, stream: int | None = None, row: int | None = None) -> None:
    """Show [start, end] in the middle of the graph (a fifth of its width, at least 20 µs around
    it), put the active marker at ``start`` and select event ``row`` of ``stream`` in the list."""
    dur = max(int(end) - int(start), 0)
    span = max(5 * dur, 20_000)
    t0 = int(start) - (span - dur) // 2
    window.timeline.set_range(t0, t0 + span)
    window.set_marker(window.view.active_marker, int(start))
    if stream is not None and row is not None and row >= 0:
        m = window.model.merged_index(int(stream), int(row))
        if m >= 0:
            window.event_list.select_merged_index(m)
        else:
            window.event_list.select_time(int(start))


STATE_TEXT = {"guest": "in guest", "exit": "VM exit", "halted": "halted", "preempted": "preempted on host",
              "unknown": "unknown"}
"""How the panels name the VCPU states of :mod:`kshark_py.model.analysis.vcputime`."""

_WARM = [(230, 126, 34), (211, 84, 0), (243, 156, 18), (186, 104, 44), (250, 177, 100), (160, 82, 45),
         (255, 140, 60), (204, 120, 80)]
_REDS = [(220, 50, 47), (178, 34, 34), (240, 100, 90), (150, 40, 60), (255, 120, 120), (200, 70, 90)]


def detail_color(state: str, detail: str) -> tuple[int, int, int]:
    """The colour of a state's piece: the state's own (as the graph's state lane draws it), varied
    per exit reason or preempting task by a stable hash of the name, so a reason has the same
    colour in every panel and every run."""
    import zlib

    from ..plots.colors import STATE_COLORS

    if state == "exit" and detail:
        return _WARM[zlib.crc32(detail.encode()) % len(_WARM)]
    if state == "preempted" and detail:
        return _REDS[zlib.crc32(detail.encode()) % len(_REDS)]
    return STATE_COLORS.get(state, (120, 120, 200))


def vcpu_specs(model, guest: str, vcpu: int, host: int | None, host_pid: int) -> list[tuple]:
    """The rows that show a VCPU: its pair rows (host thread, state lane) when the graph has them,
    else the host thread's task row (a VM the loaded files do not name), else (no host thread
    known: ``host_pid`` -1) the guest CPU's row."""
    pair = [("vcpu_state", guest, vcpu), ("vcpu_host", guest, vcpu)]
    if guest and any(row_spec(r) in pair for r in model.rows):
        return pair
    if host is not None and host_pid >= 0:
        return [("task", host, host_pid)]
    return [("vcpu_guest", guest, vcpu)] if guest else []
