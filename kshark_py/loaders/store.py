"""Random access to a buffer's record bytes without keeping the decompressed data in memory.

Records are addressed by a "data offset": for an uncompressed file, the byte offset in the file
(the file is memory-mapped, so nothing is copied); for a compressed file, the offset in the
concatenation of every CPU's *decompressed* data.  A compressed store keeps only the chunk index
(trace-cmd chunks of 10 pages, each an independent zstd/zlib frame) and decompresses on demand:
single records through a small LRU cache (the event list, ``report``), and many records at once
in large contiguous blocks, decompressed in parallel (vectorized field extraction).  A record
never crosses a page, and chunks hold whole pages, so every record lies inside one chunk.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait

import numpy as np

from .compress import Codec
from .lru import LRU

BLOCK_BYTES = 32 << 20
"""Decompressed bytes handled at once by bulk operations: bounds memory (the per-block
temporaries are several times this), keeps caches warm."""
CACHE_CHUNKS = 512

WORKERS = max(1, min(4, os.cpu_count() or 1))
"""Threads of the decompression pool."""
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def decompress_pool() -> ThreadPoolExecutor:
    """The process's one pool of decompression threads, shared by every store of every open file.

    A pool per store kept up to 4 idle threads alive per buffer of every file until the garbage
    collector found the store: an app that opened a trace 50 times held hundreds of threads.
    """
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=WORKERS,
                                       thread_name_prefix="kshark-decompress")
        return _POOL


class PendingRange:
    """Chunks being decompressed into one array by the pool (:meth:`ChunkStore.start_range`)."""

    def __init__(self, out: np.ndarray, futures: list[Future]) -> None:
        self.out = out
        self.futures = futures

    def result(self) -> np.ndarray:
        """The array, once every part is in; a part's error is raised here, in the caller's thread."""
        try:
            for f in self.futures:
                f.result()
        finally:
            self.cancel()
        return self.out

    def cancel(self) -> None:
        """Drop the parts not started and wait for those running (nothing writes to ``out`` after)."""
        for f in self.futures:
            f.cancel()
        wait(self.futures)
        self.futures = []


class FlatStore:
    """Record bytes that are already contiguous in memory (an mmap'd uncompressed file)."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data

    def read(self, off: int, n: int) -> bytes:
        return self.data[off:off + n].tobytes()

    def blocks(self, offsets: np.ndarray) -> Iterator[tuple[np.ndarray, int, np.ndarray]]:
        """(indices into ``offsets``, base offset, bytes) covering every offset: here, one block."""
        yield np.arange(len(offsets)), 0, self.data


class ChunkStore:
    """Record bytes of compressed CPU data, decompressed chunk by chunk on demand."""

    def __init__(self, codec: Codec, buf, file_offsets: np.ndarray, csizes: np.ndarray, usizes: np.ndarray,
                 ustarts: np.ndarray) -> None:
        self.codec = codec
        self.buf = buf
        self.file_offsets = file_offsets.astype(np.int64)
        self.csizes = csizes.astype(np.int64)
        self.usizes = usizes.astype(np.int64)
        self.ustarts = ustarts.astype(np.int64)
        self._cache: LRU[np.ndarray] = LRU(CACHE_CHUNKS)

    def __len__(self) -> int:
        return len(self.ustarts)

    def chunk_of(self, offsets: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.ustarts, offsets, side="right") - 1

    def _chunk_bytes(self, k: int) -> bytes:
        o, c, u = int(self.file_offsets[k]), int(self.csizes[k]), int(self.usizes[k])
        return self.codec.decompress(memoryview(self.buf)[o:o + c], u)

    def chunk(self, k: int) -> np.ndarray:
        """Chunk ``k`` decompressed (cached)."""
        return self._cache.get_or(k, lambda: np.frombuffer(self._chunk_bytes(k), np.uint8))

    def read(self, off: int, n: int) -> bytes:
        k = int(self.chunk_of(np.array([off]))[0])
        if k < 0:
            return b""
        rel = off - int(self.ustarts[k])
        return self.chunk(k)[rel:rel + n].tobytes()

    def decompress_range(self, a: int, b: int) -> np.ndarray:
        """Chunks ``a..b-1`` (contiguous in data offsets) decompressed into one array."""
        return self.start_range(a, b).result()

    def start_range(self, a: int, b: int, parts: int = 2 * WORKERS) -> PendingRange:
        """Start decompressing chunks ``a..b-1`` in the pool, in up to ``parts`` tasks, and return at
        once: the loader asks for the next blocks while it decodes this one (a task per block: the
        blocks in flight keep the threads busy), so both cores work for the whole load."""
        base = int(self.ustarts[a])
        out = np.empty(int(self.ustarts[b - 1] + self.usizes[b - 1]) - base, np.uint8)
        starts = (self.ustarts[a:b] - base).tolist()
        sizes = self.usizes[a:b].tolist()

        def some(lo: int, hi: int) -> None:
            for k in range(lo, hi):
                s, u = starts[k - a], sizes[k - a]
                out[s:s + u] = np.frombuffer(self._chunk_bytes(k), np.uint8)

        # a few tasks of many chunks each: ThreadPoolExecutor.map ignores chunksize, and a future
        # per 40 KB chunk cost more than decompressing it (0.1 s of CPU per 3 M events)
        pool = decompress_pool()
        cuts = np.linspace(a, b, max(1, min(b - a, parts)) + 1).astype(np.int64).tolist()
        return PendingRange(out, [pool.submit(some, lo, hi) for lo, hi in zip(cuts[:-1], cuts[1:], strict=True)])

    def blocks(self, offsets: np.ndarray) -> Iterator[tuple[np.ndarray, int, np.ndarray]]:
        """(indices into ``offsets``, base offset, bytes) for blocks of consecutive chunks that
        together cover every offset; each block holds at most about BLOCK_BYTES."""
        if len(offsets) == 0 or len(self.ustarts) == 0:
            return
        k = self.chunk_of(offsets)
        order = np.argsort(k, kind="stable")
        ks = k[order]
        need = np.unique(ks)
        # split the needed chunks into runs of consecutive ids, at most BLOCK_BYTES each
        cut = np.flatnonzero(np.diff(need) != 1) + 1
        for run in np.split(need, cut):
            start = 0
            while start < len(run):
                size = np.cumsum(self.usizes[run[start:]])
                stop = start + max(1, int(np.searchsorted(size, BLOCK_BYTES, side="right")))
                a, b = int(run[start]), int(run[stop - 1]) + 1
                lo, hi = np.searchsorted(ks, [a, b])
                yield order[lo:hi], int(self.ustarts[a]), self.decompress_range(a, b)
                start = stop
