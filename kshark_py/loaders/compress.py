"""Decompression of v7 metadata blocks and chunked trace data (spec §6).

trace-cmd compresses each metadata section as one block ``u32 C, u32 U, C bytes`` and each CPU's
ring-buffer data as ``u32 K`` chunks of ``{u32 C, u32 U, C bytes}``, every chunk an independent
zstd frame or zlib stream of up to 10 pages.  Chunks are decompressed in parallel (zstandard
releases the GIL) straight into one preallocated numpy array per CPU, so the page decoder sees
plain contiguous pages.
"""

from __future__ import annotations

import os
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .errors import DecompressionError, TruncatedFileError, UnsupportedCompressionError
from .layout import COMPRESSION_NONE, Layouts, unpack_at

try:  # zstandard is a declared dependency; keep the import error readable if it is missing
    import zstandard
except ImportError:  # pragma: no cover
    zstandard = None

MAX_BLOCK_SIZE = 1 << 31
"""Upper bound on one block's uncompressed size: refuse absurd headers before allocating."""

MAX_RATIO = 4096
"""Upper bound on uncompressed/compressed size of one block or chunk.  zlib cannot exceed ~1032:1;
zstd could in theory (RLE blocks), but trace-cmd's metadata and 10-page chunks stay far below this
(real files: < 20:1; ten all-zero pages ~ 1500:1).  A header claiming more is corrupt, and refusing
it keeps a flipped size field from turning into a multi-gigabyte allocation."""


def plausible_size(csize: int, usize: int) -> bool:
    """Whether ``usize`` uncompressed bytes can come from ``csize`` compressed ones."""
    return usize <= MAX_BLOCK_SIZE and usize <= max(csize, 1) * MAX_RATIO


class Codec:
    """One compression algorithm: decompresses a block whose uncompressed size is known."""

    name: str

    def decompress(self, data: bytes | memoryview, size: int) -> bytes:  # pragma: no cover
        raise NotImplementedError


class _Zstd(Codec):
    name = "zstd"

    def __init__(self) -> None:
        if zstandard is None:
            raise UnsupportedCompressionError("zstd needs the 'zstandard' package")
        self._local = threading.local()

    def decompress(self, data, size: int) -> bytes:
        # trace-cmd writes frames without a content size, so give the capacity explicitly.
        # One decompressor per thread (a ZstdDecompressor is not thread-safe; making one per
        # 40 KB chunk cost 15% of the decompression), fed the mapped bytes without a copy.
        d = getattr(self._local, "d", None)
        if d is None:
            d = self._local.d = zstandard.ZstdDecompressor()
        return d.decompress(data, max_output_size=size)


class _Zlib(Codec):
    name = "zlib"

    def decompress(self, data, size: int) -> bytes:
        d = zlib.decompressobj()
        out = d.decompress(data, size)
        return out


def get_codec(name: str, version: str = "", *, path: str | None = None, offset: int | None = None) -> Codec | None:
    """The codec for a file's compression name; None for ``none``; a typed error otherwise.

    ``offset`` is where the name lies in the file, for the error message.
    """
    if name == COMPRESSION_NONE:
        return None
    if name == "zstd":
        if zstandard is None:
            raise UnsupportedCompressionError("zstd needs the 'zstandard' package", path=path,
                                              section="file header", offset=offset)
        return _Zstd()
    if name == "zlib":
        return _Zlib()
    raise UnsupportedCompressionError(f"unknown compression algorithm {name!r} (version {version!r})",
                                      path=path, section="file header", offset=offset)


def decompress_block(codec: Codec, buf, offset: int, end: int, lay: Layouts, what: str) -> bytes:
    """Decompress one ``u32 C, u32 U, data`` block lying in ``buf[offset:end]``."""
    csize, usize = unpack_at(lay.compress_block, buf, offset, f"{what} compression header")
    start = offset + lay.compress_block.size
    if start + csize > end:
        raise TruncatedFileError(f"{what}: compressed size {csize} exceeds the section", offset=offset)
    if not plausible_size(csize, usize):
        raise DecompressionError(f"{what}: uncompressed size {usize} is not plausible", offset=offset)
    try:
        out = codec.decompress(memoryview(buf)[start:start + csize], usize)
    except Exception as e:  # zstd/zlib raise their own types; report ours
        raise DecompressionError(f"{what}: {codec.name} error: {e}", offset=offset) from e
    if len(out) != usize:
        raise DecompressionError(f"{what}: decompressed to {len(out)} bytes, header says {usize}",
                                 offset=offset)
    return out


@dataclass
class ChunkTable:
    """Where the chunks of one CPU's compressed data are, and how big each becomes."""

    file_offsets: np.ndarray  # int64, offset of each chunk's compressed bytes
    csizes: np.ndarray  # int64
    usizes: np.ndarray  # int64
    truncated_at: int | None = None
    """File offset where the chunk list stopped being readable (a truncated file), else None."""
    bad_at: int | None = None
    """File offset of a chunk header that contradicts itself (the table stops before it), else None."""
    bad_reason: str = ""

    @property
    def total(self) -> int:
        return int(self.usizes.sum())


def read_chunk_table(buf, offset: int, end: int, lay: Layouts, page_size: int, what: str) -> ChunkTable:
    """Walk the chunk headers of one CPU's data in ``buf[offset:end]``.

    A chunk running past ``end`` (a truncated file) ends the table there and is recorded in
    ``truncated_at``: the chunks before it are intact and still load.  A chunk header claiming an
    impossible uncompressed size ends the table too, recorded in ``bad_at`` (the caller decides
    whether that is fatal).  Nothing is allocated from unchecked sizes.
    """
    (count,) = unpack_at(lay.u32, buf, offset, f"{what} chunk count")
    pos = offset + 4
    hdr = lay.compress_block
    limit = 16 * page_size * 10  # a chunk is at most 10 pages; allow slack for odd writers
    offs, cs, us = [], [], []
    truncated_at = None
    bad_at, bad_reason = None, ""
    for i in range(count):
        if pos + hdr.size > end:
            truncated_at = pos
            break
        c, u = hdr.unpack_from(buf, pos)
        if u > limit or u % page_size or not plausible_size(c, u):
            bad_at = pos
            bad_reason = (f"{what}: chunk {i} claims {u} uncompressed bytes from {c} "
                          f"(not a plausible run of {page_size}-byte pages)")
            break
        if pos + hdr.size + c > end:
            truncated_at = pos
            break
        offs.append(pos + hdr.size)
        cs.append(c)
        us.append(u)
        pos += hdr.size + c
    return ChunkTable(np.array(offs, np.int64), np.array(cs, np.int64), np.array(us, np.int64), truncated_at,
                      bad_at, bad_reason)


def _threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def decompress_chunks(codec: Codec, buf, table: ChunkTable, what: str,
                      pool: ThreadPoolExecutor | None = None) -> tuple[np.ndarray, int | None]:
    """Decompress every chunk of ``table`` into one contiguous uint8 array.

    Returns (data, file offset of the first bad chunk's header, or None).  A chunk that fails to decompress stops
    the CPU's data there (what came before is kept), so a corrupted chunk costs only its pages.
    """
    out = np.empty(table.total, dtype=np.uint8)
    starts = np.concatenate(([0], np.cumsum(table.usizes)[:-1])) if len(table.usizes) else np.zeros(0, np.int64)
    mv = memoryview(buf)
    hdr = 8  # u32 compressed size, u32 uncompressed size precede each chunk's bytes

    def one(i: int) -> int | None:
        o, c, u, s = (int(table.file_offsets[i]), int(table.csizes[i]), int(table.usizes[i]), int(starts[i]))
        try:
            data = codec.decompress(mv[o:o + c], u)
        except Exception:
            return o - hdr
        if len(data) != u:
            return o - hdr
        out[s:s + u] = np.frombuffer(data, dtype=np.uint8)
        return None

    n = len(table.usizes)
    if pool is not None and n > 1:
        results = list(pool.map(one, range(n), chunksize=max(1, n // (4 * _threads()))))
    else:
        results = [one(i) for i in range(n)]
    for i, bad in enumerate(results):
        if bad is not None:
            return out[: int(starts[i])], bad
    return out, None
