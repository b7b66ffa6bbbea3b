"""Change notification without Qt: the model's evented objects fire an :class:`Emitter`.

The model must stay importable and testable without a Qt event loop (STYLE 2.1), yet views must
redraw exactly when model state really changes (STYLE 2.2); a plain list of callbacks does both.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any


class Emitter:
    """A tiny signal: callbacks run in connection order when :meth:`emit` is called.

    Plain Python so the model stays importable and testable without a Qt event loop; Qt widgets
    connect a slot (or a lambda that emits a Qt signal) to it.
    """

    def __init__(self) -> None:
        self._callbacks: list[Callable[..., Any]] = []

    def connect(self, cb: Callable[..., Any]) -> Callable[..., Any]:
        self._callbacks.append(cb)
        return cb

    def disconnect(self, cb: Callable[..., Any]) -> None:
        with contextlib.suppress(ValueError):
            self._callbacks.remove(cb)

    def emit(self, *args: Any) -> None:
        for cb in list(self._callbacks):
            cb(*args)

