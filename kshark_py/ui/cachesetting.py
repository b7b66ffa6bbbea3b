"""The app's setting for the load cache (Tools > Keep decoded traces), kept in the user's settings.

The cache itself is :mod:`kshark_py.loaders.loadcache`.  The setting can only turn it off: the
environment (``KSHARK_PY_NO_CACHE=1``, which ``--no-cache`` sets) wins over a setting that is on,
and the menu entry then says so instead of pretending.  Settings live where the capture dialog
keeps its choices (an INI file under the user's config folder).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6 import QtCore, QtGui, QtWidgets

from ..loaders import loadcache

KEY = "loadcache/enabled"
LABEL = "&Keep decoded traces (instant re-open)"


def user_settings() -> QtCore.QSettings:
    """The user's settings file (the one the capture dialog uses: same organization and name)."""
    return QtCore.QSettings(QtCore.QSettings.Format.IniFormat, QtCore.QSettings.Scope.UserScope, "kshark-py",
                            "kshark-py")


def _on(settings: QtCore.QSettings) -> bool:
    return str(settings.value(KEY, "true")).lower() not in ("false", "0", "no")


def apply(settings: Callable[[], QtCore.QSettings] | None = None) -> None:
    """At start: the setting off turns the cache off for this process."""
    if not _on((settings or user_settings)()):
        loadcache.set_enabled(False)


def add_action(menu: QtWidgets.QMenu, settings: Callable[[], QtCore.QSettings] | None = None) -> QtGui.QAction:
    """The checkable menu entry: toggling it saves the setting and applies it to the next load."""
    settings = settings or user_settings
    act = menu.addAction(LABEL)
    act.setCheckable(True)
    forced_off = not loadcache.enabled() and _on(settings())  # the environment or --no-cache
    act.setChecked(loadcache.enabled())
    if forced_off:
        act.setEnabled(False)
        act.setToolTip("turned off for this run by --no-cache or KSHARK_PY_NO_CACHE")
    else:
        act.setToolTip(f"a trace opened again maps its decoded tables from {loadcache.cache_dir()} instead of "
                       "decoding it (kshark-py cache --list / --clear)")

    def toggled(on: bool) -> None:
        s = settings()
        s.setValue(KEY, "true" if on else "false")
        s.sync()
        loadcache.set_enabled(on)

    act.toggled.connect(toggled)
    return act
