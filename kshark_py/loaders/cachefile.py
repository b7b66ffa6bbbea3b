"""One checked container of Arrow IPC files: how the load cache (:mod:`.loadcache`) stores tables.

Why a container and not one Arrow file: a trace's decoded state is many tables of different
lengths (events, lost marks, each hot event's fields, chunk index, runs), and one file per entry
is what makes the write atomic (temp file + ``os.replace``) and the size cap simple.

Layout, all little-endian::

    MAGIC (8 bytes)
    for each table, at a 64-byte aligned offset: one Arrow IPC file (uncompressed), embedded: its
        footer's block offsets count from the container's start (``open_file(footer_offset=)``)
    directory: UTF-8 JSON {"meta": ..., "tables": [[name, offset, length, rows], ...], "sum": S}
    TRAILER: END_MAGIC (8), directory offset (u64), directory length (u64), blake2b-16 of the directory

``S`` is the wrapping uint64 sum of every 8-byte word before the directory: a byte flipped or cut
anywhere changes it, and checking it costs one vectorized pass (0.08 s per 600 MB) where a real
hash costs 0.5-1 s.  The directory (which holds the caller's key) is covered by the trailer's
digest.  :func:`read` maps the file (an ``mmap`` wrapped as one Arrow buffer, as
``pyarrow.memory_map`` does, but with ``madvise`` at hand) and returns tables whose buffers are
slices of the mapping: nothing is copied, the pages are the page cache's.  After the sum has
touched every page they are dropped from the process (``MADV_DONTNEED``): what the app then reads
faults back in, so its resident memory is what it uses, shared with the page cache.

Nothing read is trusted: every failure (wrong magic, bounds, digest, sum, JSON, Arrow) is one
:class:`CacheFileError`, which the caller answers by discarding the file.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
import tempfile
from typing import Any

import numpy as np
import pyarrow as pa

from .memory import drop_mapped_pages

MAGIC = b"KSPYLC\x00\x01"
END_MAGIC = b"KSPYEND\x00"
TRAILER = struct.Struct("<8sQQ16s")
ALIGN = 64
TEMP_PREFIX = ".tmp-"
"""Names of files being written: never read (the cache's owner removes old ones)."""


class CacheFileError(Exception):
    """The file is not a whole, unedited container (or cannot be read): discard it."""


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def word_sum(data: np.ndarray) -> int:
    """The wrapping uint64 sum of ``data``'s bytes read as little-endian 8-byte words (zero-padded)."""
    n = len(data) - len(data) % 8
    s = int(np.add.reduce(data[:n].view("<u8"), dtype=np.uint64)) if n else 0
    tail = bytes(data[n:])
    if tail:
        s += int.from_bytes(tail.ljust(8, b"\0"), "little")
    return s % (1 << 64)


WINDOW = 64 << 20
"""Bytes of a written file mapped at once to sum it: the process's RSS grows by this, not by the file."""


def _mapped_sum(path: str, n: int) -> int:
    """:func:`word_sum` of the file's first ``n`` bytes, read back through the page cache a window at a time."""
    total = 0
    with open(path, "rb") as fh:
        for off in range(0, n, WINDOW):
            with mmap.mmap(fh.fileno(), min(WINDOW, n - off), offset=off, access=mmap.ACCESS_READ) as mm:
                total += word_sum(np.frombuffer(mm, np.uint8))
    return total % (1 << 64)


def write(path: str, meta: dict[str, Any], tables: dict[str, pa.Table]) -> int:
    """Write ``tables`` and ``meta`` (JSON-able) to ``path`` atomically; returns the file's size.

    The file is built under a temporary name in the same folder and renamed over ``path``: a
    reader sees the old file or the new one, never a part; two writers of one path both succeed
    (the last rename wins).  Raises OSError (a full disk...), the temp file removed."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=folder)
    os.close(fd)
    try:
        entries = []
        with pa.OSFile(tmp, "wb") as f:
            f.write(MAGIC)
            for name, t in tables.items():
                pad = -f.tell() % ALIGN
                if pad:
                    f.write(b"\0" * pad)
                start = f.tell()
                with pa.ipc.new_file(f, t.schema) as w:
                    w.write_table(t)
                entries.append([name, start, f.tell() - start, t.num_rows])
            pad = -f.tell() % 8
            if pad:
                f.write(b"\0" * pad)
            dir_at = f.tell()
        total = _mapped_sum(tmp, dir_at)  # read back through the page cache, not copied
        body = json.dumps({"meta": meta, "tables": entries, "sum": total}, separators=(",", ":"),
                          default=_plain).encode()
        with open(tmp, "ab") as fh:
            fh.write(body)
            fh.write(TRAILER.pack(END_MAGIC, dir_at, len(body), _digest(body)))
        os.replace(tmp, path)
        return dir_at + len(body) + TRAILER.size
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _directory(body: bytes, digest: bytes) -> tuple[dict[str, Any], list, int]:
    if _digest(body) != digest:
        raise CacheFileError("directory digest mismatch")
    try:
        d = json.loads(body)
        return d["meta"], list(d["tables"]), int(d["sum"])
    except (ValueError, KeyError, TypeError) as e:
        raise CacheFileError(f"directory: {e}") from None


def peek(path: str) -> dict[str, Any]:
    """The meta of a container, its directory checked (not its data): cheap, for listing."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < len(MAGIC) + TRAILER.size or fh.read(len(MAGIC)) != MAGIC:
                raise CacheFileError("not a kshark-py cache file (magic)")
            fh.seek(size - TRAILER.size)
            end, dir_at, dir_len, digest = TRAILER.unpack(fh.read(TRAILER.size))
            if end != END_MAGIC or dir_at + dir_len != size - TRAILER.size or dir_at < len(MAGIC):
                raise CacheFileError("trailer does not match the file")
            fh.seek(dir_at)
            return _directory(fh.read(dir_len), digest)[0]
    except OSError as e:
        raise CacheFileError(f"cannot read: {e}") from None


def _plain(v: object) -> object:
    """JSON for the numpy scalars that stats and losses may hold."""
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    raise TypeError(f"{type(v).__name__} is not JSON")


class Container:
    """A mapped container whose trailer and directory are checked; its data word sum is checked by
    :meth:`verify` and its tables read by :meth:`tables`, which a caller may run at once (the sum
    is a numpy pass that releases the GIL: :mod:`.loadcache` runs it beside its own work)."""

    def __init__(self, path: str) -> None:
        try:
            with open(path, "rb") as fh:
                self._mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            self._whole = whole = pa.py_buffer(self._mm)  # the tables' buffers keep the mapping alive
            size = whole.size
        except (OSError, ValueError, pa.ArrowException) as e:  # ValueError: an empty file
            raise CacheFileError(f"cannot map: {e}") from None
        if size < len(MAGIC) + TRAILER.size or whole.slice(0, len(MAGIC)).to_pybytes() != MAGIC:
            raise CacheFileError("not a kshark-py cache file (magic)")
        end, dir_at, dir_len, digest = TRAILER.unpack(whole.slice(size - TRAILER.size, TRAILER.size).to_pybytes())
        if end != END_MAGIC or dir_at % 8 or not len(MAGIC) <= dir_at <= size - TRAILER.size \
                or dir_at + dir_len != size - TRAILER.size:
            raise CacheFileError("trailer does not match the file (cut short or appended to)")
        self.meta, self._entries, self._sum = _directory(whole.slice(dir_at, dir_len).to_pybytes(), digest)
        self._dir_at = dir_at

    def sum_part(self, part: int = 0, parts: int = 1) -> int:
        """The word sum of every ``parts``-th window of the data from window ``part`` on: threads
        each take a part (numpy releases the GIL) and :meth:`check` adds them up."""
        total = 0
        data = np.frombuffer(self._whole, np.uint8, count=self._dir_at)
        for off in range(part * WINDOW, self._dir_at, parts * WINDOW):
            total += word_sum(data[off:off + WINDOW])
            # the pass touched these pages: not kept resident (what the tables use faults back in)
            drop_mapped_pages(self._mm, off, min(WINDOW, self._dir_at - off))
        return total

    def check(self, sums: list[int]) -> None:
        """Raise :class:`CacheFileError` unless the parts' sums add up to the directory's."""
        if sum(sums) % (1 << 64) != self._sum:
            raise CacheFileError("data checksum mismatch (edited or damaged)")

    def verify(self) -> None:
        """Raise :class:`CacheFileError` unless the data's word sum is the directory's."""
        self.check([self.sum_part()])

    def tables(self) -> dict[str, pa.Table]:
        """Every table, bounds, row count and structure checked; zero-copy views of the mapping."""
        out: dict[str, pa.Table] = {}
        try:
            for name, start, length, rows in self._entries:
                if not (isinstance(start, int) and isinstance(length, int) and len(MAGIC) <= start
                        and start + length <= self._dir_at):
                    raise CacheFileError(f"table {name!r} lies outside the data")
                t = pa.ipc.open_file(self._whole, footer_offset=start + length).read_all()
                if t.num_rows != rows:
                    raise CacheFileError(f"table {name!r}: {t.num_rows} rows, the directory says {rows}")
                t.validate()
                out[str(name)] = t
        except (pa.ArrowException, ValueError, TypeError) as e:
            raise CacheFileError(f"table: {e}") from None
        return out


def read(path: str) -> tuple[dict[str, Any], dict[str, pa.Table]]:
    """(meta, tables) of a container, checked whole (magic, trailer, digest, word sum, each table's
    bounds and row count); the tables are zero-copy views of the mapped file."""
    c = Container(path)
    c.verify()
    return c.meta, c.tables()
