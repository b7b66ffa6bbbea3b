"""Give freed heap memory back to the OS after a big load.

Decoding allocates many medium-sized temporary arrays (one set per block).  glibc serves those
from its heap arenas and, once freed, keeps the pages: RSS stays at the load's high-water mark
although the memory is free.  ``malloc_trim(0)`` returns it.  A no-op where glibc is absent.
"""

from __future__ import annotations

import ctypes
import mmap
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # every command calls return_memory_promptly() first: no numpy import for it
    import numpy as np

_libc = None
try:
    # the process's own symbols, which hold the C library's: no ctypes.util.find_library, whose
    # import (subprocess, tempfile...) and search cost ~7 ms at every command's start
    _libc = ctypes.CDLL(None)
    if not hasattr(_libc, "malloc_trim") or not hasattr(_libc, "madvise"):
        _libc = None
except OSError:  # pragma: no cover
    _libc = None


_PAGE = mmap.PAGESIZE
_MADV_DONTNEED = 4


def release_free_memory() -> None:
    if _libc is not None:
        _libc.malloc_trim(0)


def drop_mapped_pages(buf: object, start: int = 0, length: int | None = None) -> None:
    """Let the kernel take back the pages of a read-only file mapping that we have read (all of
    it, or ``length`` bytes from ``start``, a multiple of the page size).

    A page of an mmap'd trace counts in our RSS once touched, and decoding touches all of them
    (111 MB for a 17 M-event file) although every byte is read once.  ``MADV_DONTNEED`` unmaps
    them from this process; they stay in the page cache, and a later read (a payload for the
    event list) faults the one page it needs back in.
    """
    if isinstance(buf, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        try:
            if length is None:
                buf.madvise(mmap.MADV_DONTNEED)
            else:
                buf.madvise(mmap.MADV_DONTNEED, start, length)
        except (OSError, ValueError):  # pragma: no cover (closed or unsupported mapping)
            pass


def forget_consumed(arr: np.ndarray, start: int, stop: int) -> None:
    """Hand back the whole pages of ``arr[start:stop]``, elements its owner will never read again.

    Used while a big column is scattered into its final order: the source is consumed front to
    back, and releasing what has been consumed keeps the peak near one copy of the column instead
    of two.  Only for a C-contiguous array that nothing else views; afterwards those elements read
    as zero.  A no-op without glibc.
    """
    if _libc is None or stop <= start or not arr.flags.c_contiguous:
        return
    base = arr.ctypes.data
    lo = -(-(base + start * arr.itemsize) // _PAGE) * _PAGE
    hi = (base + stop * arr.itemsize) // _PAGE * _PAGE
    if hi > lo:
        _libc.madvise(ctypes.c_void_p(lo), ctypes.c_size_t(hi - lo), _MADV_DONTNEED)


def return_memory_promptly() -> None:
    """Put Arrow's allocations on the system allocator (called once by the CLI and the app).

    Arrow's default pool (mimalloc) keeps freed pages for reuse; with glibc's malloc they go back
    with :func:`release_free_memory`, which the loader calls after each big step.  (A fixed, low
    mmap threshold was tried as well: it cut the load's peak by ~80 MB but made every temporary
    a fresh mapping, 0.7 M page faults and +1.4 s per 17 M events; trimming the heap after the
    load's big steps keeps most of the gain for free.)
    """
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())
