"""Give freed heap memory back to the OS after a big load.

Decoding allocates many medium-sized temporary arrays (one set per block).  glibc serves those
from its heap arenas and, once freed, keeps the pages: RSS stays at the load's high-water mark
although the memory is free.  ``malloc_trim(0)`` returns it.  A no-op where glibc is absent.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_libc = None
try:
    _name = ctypes.util.find_library("c")
    if _name:
        _libc = ctypes.CDLL(_name)
        if not hasattr(_libc, "malloc_trim"):
            _libc = None
except OSError:  # pragma: no cover
    _libc = None


def release_free_memory() -> None:
    if _libc is not None:
        _libc.malloc_trim(0)
