"""GUI tests' helpers: the main window of a finished load, shown offscreen, a menu action by its text,
and real Qt mouse and wheel events on the timeline's plot at a time and row."""

from __future__ import annotations

import time

from PySide6 import QtCore, QtGui, QtWidgets

from kshark_py.model.loading import load_session
from kshark_py.ui.app import build_window

Qt = QtCore.Qt


def open_window(qtbot, *paths, vcpu_map: dict | None = None, state=None, size: tuple[int, int] = (1500, 900)):
    """The main window of these files (a VCPU map, a saved session's view state), shown and drawn."""
    paths = [str(p) for p in paths]
    vcpu_map = {} if vcpu_map is None else vcpu_map
    w = build_window(load_session(paths, vcpu_map), paths, vcpu_map, state)
    qtbot.addWidget(w)
    w.resize(*size)
    w.show()
    qtbot.waitExposed(w)
    w.timeline.redraw()
    return w


def menu_action(w, menu: str, text: str):
    for a in w.menuBar().actions():
        if a.menu() is not None and a.menu().title().replace("&", "") == menu:
            for b in a.menu().actions():
                if b.text().replace("&", "") == text:
                    return b
    raise AssertionError(f"no {menu} > {text}")


def vpos(tl, t_ns: float, row: float) -> QtCore.QPointF:
    """Viewport position of time ``t_ns`` in row ``row`` (row units: row i spans [i, i+1))."""
    return QtCore.QPointF(tl.mapFromScene(tl.vb.mapViewToScene(QtCore.QPointF(t_ns / 1e9, row))))


def label_pos(tl, row: float) -> QtCore.QPointF:
    """Viewport position over the row label of ``row``."""
    p = vpos(tl, tl.view_range()[0], row)
    return QtCore.QPointF(p.x() - 60, p.y())


def mouse(tl, kind, pos, button=Qt.MouseButton.LeftButton, buttons=None, mods=Qt.KeyboardModifier.NoModifier):
    if buttons is None:
        buttons = Qt.MouseButton.NoButton if kind == QtCore.QEvent.Type.MouseButtonRelease else button
    if kind == QtCore.QEvent.Type.MouseMove:
        button = Qt.MouseButton.NoButton
    glob = QtCore.QPointF(tl.viewport().mapToGlobal(pos.toPoint()))
    ev = QtGui.QMouseEvent(kind, pos, glob, button, buttons, mods)
    QtWidgets.QApplication.sendEvent(tl.viewport(), ev)


def drag(tl, a, b, mods=Qt.KeyboardModifier.NoModifier):
    T = QtCore.QEvent.Type
    mouse(tl, T.MouseMove, a, buttons=Qt.MouseButton.NoButton, mods=mods)
    mouse(tl, T.MouseButtonPress, a, mods=mods)
    for i in range(1, 11):
        time.sleep(0.02)  # pyqtgraph drops moves that come faster than its mouse rate limit
        p = QtCore.QPointF(a.x() + (b.x() - a.x()) * i / 10, a.y() + (b.y() - a.y()) * i / 10)
        mouse(tl, T.MouseMove, p, buttons=Qt.MouseButton.LeftButton, mods=mods)
    mouse(tl, T.MouseButtonRelease, b, mods=mods)
    QtWidgets.QApplication.processEvents()


def click(tl, pos, button=Qt.MouseButton.LeftButton, double=False):
    T = QtCore.QEvent.Type
    mouse(tl, T.MouseMove, pos, buttons=Qt.MouseButton.NoButton)
    mouse(tl, T.MouseButtonPress, pos, button=button)
    mouse(tl, T.MouseButtonRelease, pos, button=button)
    if double:
        mouse(tl, T.MouseButtonDblClick, pos, button=button)
        mouse(tl, T.MouseButtonRelease, pos, button=button)
    QtWidgets.QApplication.processEvents()


def wheel(tl, pos, notches=1, mods=Qt.KeyboardModifier.NoModifier):
    glob = QtCore.QPointF(tl.viewport().mapToGlobal(pos.toPoint()))
    ev = QtGui.QWheelEvent(pos, glob, QtCore.QPoint(0, 0), QtCore.QPoint(0, 120 * notches), Qt.MouseButton.NoButton,
                           mods, Qt.ScrollPhase.NoScrollPhase, False)
    QtWidgets.QApplication.sendEvent(tl.viewport(), ev)
    QtWidgets.QApplication.processEvents()


def time_at(tl, pos: QtCore.QPointF) -> int:
    """The time (ns) under a viewport position: what a click there hands the window."""
    return round(tl.vb.mapSceneToView(tl.mapToScene(pos.toPoint())).x() * 1e9)
