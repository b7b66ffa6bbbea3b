"""Give freed heap memory back to the OS after a big load.

Decoding allocates many medium-sized temporary arrays (one set per block).  glibc serves those
from its heap arenas and, once freed, keeps the pages: RSS stays at the load's high-water mark
although the memory is free.  ``malloc_trim(0)`` returns it.  A no-op where glibc is absent.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap

import numpy as np

_libc = None
try:
    _name = ctypes.util.find_library("c")
    if _name:
        _libc = ctypes.CDLL(_name)
        if not hasattr(_libc, "malloc_trim"):
            _libc = None
except OSError:  # pragma: no cover
    _libc = None


_PAGE = mmap.PAGESIZE
_MADV_DONTNEED = 4
_M_MMAP_THRESHOLD = -3


def release_free_memory() -> None:
    if _libc is not None:
        _libc.malloc_trim(0)


def drop_mapped_pages(buf: object) -> None:
    """Let the kernel take back the pages of a read-only file mapping that we have read.

    A page of an mmap'd trace counts in our RSS once touched, and decoding touches all of them
    (111 MB for a 17 M-event file) although every byte is read once.  ``MADV_DONTNEED`` unmaps
    them from this process; they stay in the page cache, and a later read (a payload for the
    event list) faults the one page it needs back in.
    """
    if isinstance(buf, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        try:
            buf.madvise(mmap.MADV_DONTNEED)
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


def scatter_consuming(src: np.ndarray, dest_pos: np.ndarray, bounds: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
    """``out[dest_pos[i]] = src[i]`` for all i, releasing ``src`` as it goes (see :func:`forget_consumed`).

    ``src`` is a concatenation of runs (``bounds``: their start offsets, then the total) that a
    merge interleaves without reordering any run, so ``dest_pos`` increases within each run.
    ``out`` is then filled front to back, a chunk at a time, taking from each run the prefix
    that lands before the chunk's end: every page of ``out`` is touched once, in order, and each
    run's source is consumed front to back and released.  The peak is one column plus a chunk,
    where ``src[order]`` would hold two columns at once.  ``src`` is dead afterwards.
    """
    out = np.empty_like(src)
    n = len(src)
    chunk_ends = np.minimum(np.arange(chunk, n + chunk, chunk), n).astype(dest_pos.dtype)
    # per run, how much of it lands before each chunk's end (searched in dest_pos's own dtype:
    # a Python int would make numpy convert the whole run to int64 on every call)
    cuts = [s0 + np.searchsorted(dest_pos[s0:e0], chunk_ends)
            for s0, e0 in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)]
    done = [int(x) for x in bounds[:-1]]
    for k in range(len(chunk_ends)):
        for r, cut in enumerate(cuts):
            lo, hi = done[r], int(cut[k])
            if hi > lo:
                out[dest_pos[lo:hi]] = src[lo:hi]
                forget_consumed(src, lo, hi)
                done[r] = hi
    return out


def return_memory_promptly(threshold: int = 1 << 20) -> None:
    """Make freed big blocks go back to the kernel at once (called once by the CLI and the app).

    glibc raises its mmap threshold each time a big block is freed (up to 32 MB), after which
    numpy's many tens-of-MB temporaries come from the heap and their pages stay with the process
    when freed: a big load left ~100 MB of free heap resident.  A fixed threshold gives each big
    temporary back as soon as it dies.  Arrow's default pool (mimalloc) likewise keeps freed
    pages; the system allocator, with that threshold, does not.
    """
    if _libc is not None and hasattr(_libc, "mallopt"):
        _libc.mallopt(_M_MMAP_THRESHOLD, threshold)
        import pyarrow as pa

        pa.set_memory_pool(pa.system_memory_pool())
