"""A read-back of what the live app shows, for tests that drive the real process with real input.

With ``KSHARK_PY_PROBE=/path/state.json`` in the environment, the app writes a JSON description of
its visible top-level windows a few times a second (atomically: temp file and rename): each main
window's title, row labels, time range, visible rows, markers, selected list row and status line,
and the titles of open dialogs. A test starts ``kshark-py`` as a subprocess on Xvfb, drives it with
xdotool and asserts on this file, so it checks what the user sees without reaching into private
methods of a process it cannot import. Without the variable nothing runs.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable
from typing import Any

from PySide6 import QtCore, QtWidgets

PROBE_ENV = "KSHARK_PY_PROBE"
INTERVAL_MS = 200


def _safe(fn, default=None):
    try:
        return fn()
    except Exception:  # a field a window does not have (yet) must not stop the probe
        return default


def _global_rect(view: QtWidgets.QGraphicsView, scene_rect: QtCore.QRectF) -> list[int]:
    """A scene rectangle of a graphics view in screen coordinates: where xdotool must point."""
    tl = view.mapToGlobal(view.mapFromScene(scene_rect.topLeft()))
    br = view.mapToGlobal(view.mapFromScene(scene_rect.bottomRight()))
    return [tl.x(), tl.y(), br.x() - tl.x(), br.y() - tl.y()]


def _widget_rect(widget: QtWidgets.QWidget) -> list[int]:
    p = widget.mapToGlobal(QtCore.QPoint(0, 0))
    return [p.x(), p.y(), widget.width(), widget.height()]


def window_state(w: Any) -> dict:
    """What one main window shows."""
    tl = w.timeline
    g = w.geometry()
    out: dict[str, Any] = {
        "kind": "main",
        "title": w.windowTitle(),
        "geometry": [g.x(), g.y(), g.width(), g.height()],
        "files": list(w.paths),
        "rows": _safe(lambda: [r.label for r in w.model.rows], []),
        "range": _safe(lambda: list(tl.view_range())),
        "full_range": _safe(lambda: list(tl.full_range())),
        "y_range": _safe(lambda: list(tl.vb.viewRange()[1])),
        "plot_rect": _safe(lambda: _global_rect(tl, tl.vb.sceneBoundingRect())),
        "markers": _safe(lambda: {k: v for k, v in w.markers.times.items()}, {}),
        "active_marker": _safe(lambda: w.markers.active),
        "list_rows": _safe(lambda: w.event_list.model.rowCount()),
        "list_rect": _safe(lambda: _widget_rect(w.event_list.table.viewport())),
        "list_row_height": _safe(lambda: w.event_list.table.verticalHeader().defaultSectionSize()),
        "list_top_row": _safe(lambda: w.event_list.table.rowAt(0)),
        "list_selected": _safe(lambda: w.event_list.current_merged_index()),
        "status": _safe(lambda: w.status.currentMessage(), ""),
        "highlight": _safe(lambda: list(tl.highlight.getRegion()) if tl.highlight.isVisible() else None),
        "docks": _safe(lambda: {d.windowTitle(): d.isVisible()
                               for d in w.findChildren(QtWidgets.QDockWidget)}, {}),
    }
    return out


def loading_state(w: Any) -> dict:
    """A main window still loading: its page-header preview (rows, range), progress, cancelled."""
    tl, lv = w.timeline, w.loading
    return {
        "kind": "loading",
        "title": w.windowTitle(),
        "files": list(w.paths),
        "rows": _safe(lambda: [r.label for r in tl.model.rows], []),
        "range": _safe(lambda: list(tl.view_range())),
        "full_range": _safe(lambda: list(tl.full_range())),
        "plot_rect": _safe(lambda: _global_rect(tl, tl.vb.sceneBoundingRect())),
        "progress": _safe(lambda: lv.bar.value()),
        "cancelled": _safe(lambda: lv.is_cancelled),
        "note": _safe(lambda: lv.note.text(), ""),
    }


def app_state(windows_in_memory: Callable[[], int]) -> dict:
    """What the visible top-level windows show; ``windows_in_memory`` counts the main windows still
    alive after a garbage collection (the app's count: this module knows no app)."""
    wins = []
    for top in QtWidgets.QApplication.topLevelWidgets():
        if not top.isVisible():
            continue
        if getattr(top, "loading", None) is not None:
            wins.append(loading_state(top))
        elif hasattr(top, "timeline") and hasattr(top, "model"):
            wins.append(window_state(top))
        else:
            wins.append({"kind": type(top).__name__, "title": top.windowTitle()})
    return {"pid": os.getpid(), "windows": wins, "windows_in_memory": windows_in_memory()}


_GC_EVERY_S = 2.0


class Probe(QtCore.QObject):
    """Writes :func:`app_state` to ``path`` every ``INTERVAL_MS`` when it changed."""

    def __init__(self, path: str, windows_in_memory: Callable[[], int], parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.path = path
        self._count_windows = windows_in_memory
        self._gc_last = (0.0, 0)
        self._last = ""
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(INTERVAL_MS)
        self._timer.timeout.connect(self.write)
        self._timer.start()

    @QtCore.Slot()
    def write(self) -> None:
        try:
            text = json.dumps(app_state(self._windows_in_memory), default=str)
        except Exception:  # a test reading a stale probe must see why in the app's output
            traceback.print_exc()
            return
        if text == self._last:
            return
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.path)
        self._last = text


    def _windows_in_memory(self) -> int:
        """Main windows alive after a garbage collection; collected at most every ``_GC_EVERY_S`` (a
        full collection over a big session's objects is not free)."""
        now = time.monotonic()
        if now - self._gc_last[0] >= _GC_EVERY_S:
            self._gc_last = (now, self._count_windows())
        return self._gc_last[1]


def start_probe(app: QtWidgets.QApplication, windows_in_memory: Callable[[], int]) -> Probe | None:
    """Start the probe if the environment asks for it; ``windows_in_memory`` is the app's count of
    main windows still alive (passed in: the probe does not import the app, which imports it)."""
    path = os.environ.get(PROBE_ENV)
    return Probe(path, windows_in_memory, app) if path else None
