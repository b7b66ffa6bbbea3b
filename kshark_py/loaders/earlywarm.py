"""Start loading the compiled kernels at a command's first line, from a peek at the file's header.

Why: loading the kernels (:func:`.pages.start_warm_up`: numpy's import and the module built ahead of
time, or without one numba's import and its disk cache, ~0.2 s of CPU) otherwise starts when the
file is opened, after numpy, pyarrow and the reader have been imported (~0.1 s more).  A command that
will decode one big file (``kshark-py export``) starts it before those imports, so the two overlap.
The peek reads the header's first bytes only (this module imports nothing heavy): a file that is not
a trace, or too small to use the kernels (:func:`.pages.warm_up_for`), starts nothing and
the reader's checks then report what is wrong.
"""

from __future__ import annotations

import os
import stat
import threading

_MAGIC = b"\x17\x08\x44tracing"  # layout.MAGIC, not imported: layout imports numpy
_HEAD_BYTES = 64


def peek(path: str) -> tuple[int, bool] | None:
    """(file size, whether its data is compressed) of a trace.dat, from its size and first bytes;
    None for anything else (no such file, not a regular file, not a trace).  A v7 header names its
    compression after the page size (``"none"`` or nothing: uncompressed); v6 files never compress."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO's bytes read here would be the reader's
            return None
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(_HEAD_BYTES)
    except OSError:
        return None
    if not head.startswith(_MAGIC):
        return None
    version, nul, rest = head[len(_MAGIC):].partition(b"\0")
    if not nul or not version.isdigit():
        return None
    if int(version) < 7:
        return size, False
    name = rest[6:].partition(b"\0")[0]  # after endianness, long size and the u32 page size
    return size, name not in (b"", b"none")


def warm_up_early(path: str) -> None:
    """Start the kernels' warm-up for ``path`` in the background if the reader would (a big file the
    load cache probably does not hold): the decision, numpy's import included, runs in a thread."""
    threading.Thread(target=_decide, args=(path,), name="kshark-early-warm-up", daemon=True).start()


def _cache_off() -> bool:
    """``KSHARK_PY_NO_CACHE`` turns the load cache off (``--no-cache`` sets it): the rule of
    :func:`.loadcache.enabled`, read without importing that module."""
    return os.environ.get("KSHARK_PY_NO_CACHE", "").strip().lower() not in ("", "0", "no", "false")


def _decide(path: str) -> None:
    got = peek(path)
    if got is None:
        return
    from . import pages

    if pages.big_enough(*got) and (_cache_off() or not _likely_cached(path)):
        pages.start_warm_up()


def _likely_cached(path: str) -> bool:
    """:func:`.loadcache.likely_hit` for ``path`` (that module imports the reader: only asked when
    the environment leaves the cache on)."""
    from . import loadcache

    if not loadcache.enabled():
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        return loadcache.likely_hit(fd, path)
    finally:
        os.close(fd)
