"""The rows of one buffer decoded so far, while its load runs (the progressive first view).

The reader hands over a buffer's events in time order, a few blocks at a time
(:class:`kshark_py.loaders.partial.PartialRows`: ts, cpu, pid, event id, and a watermark below
which every event has been delivered).  A :class:`PartialStream` keeps those deliveries as they
came, one immutable :class:`Chunk` each (the arrays are not copied or concatenated; once the
buffer is decoded its table's columns replace them, :meth:`PartialStream.settle`), so that

* the preview's CPU rows count the decoded events exactly below the watermark
  (:meth:`PartialStream.before`: per chunk one binary search of its times and a per-CPU running
  count every :attr:`Chunk.block` rows, as :class:`~kshark_py.model.viewmodel.EventTicks` does for
  a loaded stream, so a render costs pixels x block, not events);
* the loading window's event list shows the delivered rows (``ui/partiallist`` reads the few rows
  on screen from the chunks).

Threads: the loading thread calls :meth:`PartialStream.add` (the running counts are computed
there, then the chunk is appended under a lock); the GUI thread reads :meth:`PartialStream.chunks`,
a snapshot tuple of immutable chunks.  No Qt here.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .distinct import TICK_BLOCK, all_block_counts

if TYPE_CHECKING:
    from ..loaders.partial import PartialRows

DONE_WATERMARK = np.iinfo(np.int64).max
"""The watermark of a buffer whose last rows arrived: every event is there."""


def _block_for(cpu_count: int) -> int:
    """Rows per running-count block: 64, more for many CPUs, so the counts (4 bytes per CPU per
    block) stay under a byte per event."""
    block = TICK_BLOCK
    while block < 4 * cpu_count:
        block *= 2
    return block


@dataclass(frozen=True)
class Chunk:
    """Rows ``start .. start + len(ts)`` of the events table: one delivery, or the whole table."""

    start: int
    base: int
    ts: np.ndarray
    """The rows' times minus :attr:`base` (uint32 when they fit: half the bytes; else int64, base 0)."""
    cpu: np.ndarray
    pid: np.ndarray
    event_id: np.ndarray
    cum: np.ndarray
    """(cpu_count, blocks + 1): rows of each CPU before each :attr:`block` boundary."""
    block: int
    watermark: int
    """The delivery's watermark (:data:`DONE_WATERMARK` for the last)."""

    def __len__(self) -> int:
        return len(self.ts)

    def positions(self, t: np.ndarray) -> np.ndarray:
        """Rows before each time ``t`` (int64 ns), searched in the stored dtype (no copy of it)."""
        if self.ts.dtype == np.uint32:  # offsets: the largest stored is below 2**32 - 1
            t = np.clip(t - self.base, 0, 2**32 - 1).astype(np.uint32)
        return np.searchsorted(self.ts, t, side="left")

    def time(self, row: int) -> int:
        """Time (ns) of row ``row`` of the chunk."""
        return self.base + int(self.ts[row])


def _small(a: np.ndarray, dtype: type[np.unsignedinteger]) -> np.ndarray:
    """``a`` as the unsigned ``dtype`` when every value fits (the delivered copies are what the
    progressive view costs in memory while the load runs), else as it is."""
    if len(a) and (int(a.min()) < 0 or int(a.max()) > np.iinfo(dtype).max):
        return a
    return a.astype(dtype)


class PartialStream:
    """The delivered rows of one buffer, as chunks (see the module docstring)."""

    def __init__(self, cpu_count: int) -> None:
        self.cpu_count = max(1, int(cpu_count))
        self._block = _block_for(self.cpu_count)
        self._lock = threading.Lock()
        self._chunks: tuple[Chunk, ...] = ()
        self._rows = 0
        self._watermark: int | None = None

    # ---- the loading thread ---------------------------------------------------------------
    def add(self, rows: PartialRows) -> Chunk:
        """Keep one delivery (the loading thread): its running counts per CPU, then publish it."""
        cpu = _small(np.asarray(rows.cpu), np.uint8)
        cum = all_block_counts(cpu, self.cpu_count, self._block).astype(np.int32)
        ts = np.asarray(rows.ts, np.int64)
        base = int(ts[0]) if len(ts) else 0
        off = ts - base
        if len(ts) and int(off.min()) >= 0 and int(off.max()) < 2**32 - 1:
            ts = off.astype(np.uint32)
        else:
            base = 0
        del off
        watermark = DONE_WATERMARK if rows.done else int(rows.watermark)
        chunk = Chunk(0, base, ts, cpu, _small(np.asarray(rows.pid), np.uint16),
                      _small(np.asarray(rows.event_id), np.uint16), cum, self._block, watermark)
        with self._lock:
            chunk = dataclasses.replace(chunk, start=self._rows)
            self._chunks = (*self._chunks, chunk)
            self._rows += len(chunk)
            self._watermark = watermark if self._watermark is None else max(self._watermark, watermark)
        return chunk

    def settle(self, ts: np.ndarray, cpu: np.ndarray, pid: np.ndarray, event_id: np.ndarray, cum: np.ndarray,
               block: int = TICK_BLOCK) -> None:
        """The buffer is decoded: its table's columns (``cum``: their per-CPU running counts every
        ``block`` rows) replace the deliveries, whose copies are freed (the loading thread).  The
        rows are the same, so a reader's row numbers stay valid."""
        with self._lock:
            self._chunks = (Chunk(0, 0, ts, cpu, pid, event_id, cum, block, DONE_WATERMARK),)
            self._rows = len(ts)
            self._watermark = DONE_WATERMARK

    # ---- any thread -----------------------------------------------------------------------
    def chunks(self) -> tuple[Chunk, ...]:
        """The chunks delivered so far (an immutable snapshot)."""
        with self._lock:
            return self._chunks

    @property
    def rows(self) -> int:
        """Rows delivered so far."""
        with self._lock:
            return self._rows

    @property
    def watermark(self) -> int | None:
        """Every event before this time (buffer clock, ns) is delivered; None before any delivery."""
        with self._lock:
            return self._watermark

    def before(self, t: np.ndarray, chunks: tuple[Chunk, ...] | None = None) -> np.ndarray:
        """int64 (cpu_count, len(t)): delivered events of each CPU with a time before each ``t``.

        Exact for ``t`` at or below the watermark (later, it counts what happens to be delivered).
        Chunks are in time order, so an edge falls inside at most a few of them: only those
        positions scan a block of CPU numbers."""
        t = np.asarray(t, np.int64)
        out = np.zeros((self.cpu_count, len(t)), np.int64)
        for ch in self.chunks() if chunks is None else chunks:
            n = len(ch)
            if n == 0:
                continue
            pos = ch.positions(t)
            out[:, pos >= n] += ch.cum[:, -1:]
            inner = np.flatnonzero((pos > 0) & (pos < n))
            if not len(inner):
                continue
            p = pos[inner]
            blk = p // ch.block
            out[:, inner] += ch.cum[:, blk]
            idx = (blk * ch.block)[:, None] + np.arange(ch.block)
            inside = idx < p[:, None]
            key = ch.cpu[np.minimum(idx, n - 1)].astype(np.int64)
            ok = inside & (key >= 0) & (key < self.cpu_count)
            which = np.broadcast_to(np.arange(len(inner))[:, None], idx.shape)
            out[:, inner] += np.bincount(key[ok] * len(inner) + which[ok],
                                         minlength=self.cpu_count * len(inner)).reshape(self.cpu_count, len(inner))
        return out
