"""The rows of one buffer decoded so far, while its load runs (the progressive first view).

The reader hands over a buffer's events in time order, a few blocks at a time
(:class:`kshark_py.loaders.partial.PartialRows`: ts, cpu, pid, event id, and a watermark below
which every event has been delivered).  Keeping those rows would cost 9 bytes an event at least,
alive during the reader's final merge (the load's peak memory: +165 MB on 19 M events, the issue
allows none of it), so a :class:`PartialStream` keeps only what the loading window shows:

* **per-CPU counts in fine time bins** (:class:`BinCounts`): the stream's full time range (from the
  page scan) cut into up to 2**20 bins per CPU, fewer when there are many CPUs (all the preview's
  streams together stay within :data:`COUNT_BUDGET_BINS`, 16 MB).  Each delivery is binned with
  one vectorized ``np.bincount``; what is kept is the running sum over the bins (rows of each CPU
  before each bin edge), so a render looks up its pixel edges and takes differences.  The counts
  are exact at every bin edge at or below the watermark: a pixel at least one bin wide (every zoom
  while a large file loads: 2**20 bins over the trace are ~1000 per pixel at full range) shows the
  exact events between the bin edges nearest its own (:meth:`PartialStream.before` with
  ``snap``); a finer zoom spreads each bin's count evenly over its width.
* **the first** :data:`LIST_ROWS` **delivered rows** (:class:`Chunk`, times as 32-bit offsets when
  they fit: 9 bytes a row, 9 MB at most) for the loading window's event list (``ui/partiallist``);
  the loaded window lists them all.

Threads: the loading thread calls :meth:`PartialStream.add` (bins are written only at or after the
first edge the delivery can change, then the new state is published under a lock); the GUI thread
takes a :meth:`PartialStream.counts` snapshot (edges at or below its watermark never change again)
and :meth:`PartialStream.chunks`, a tuple of immutable chunks.  No Qt here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..loaders.partial import PartialRows

DONE_WATERMARK = np.iinfo(np.int64).max
"""The watermark of a buffer whose last rows arrived: every event is there."""

LIST_ROWS = 1_000_000
"""Rows kept for the loading window's list (the first ones delivered; ~9 MB)."""

MAX_BINS = 1 << 20
"""Time bins per CPU at most."""

COUNT_BUDGET_BINS = 1 << 22
"""Bins of all CPUs of all streams together at most (4 bytes each: 16 MB)."""

_COUNT_SLICE = 1 << 18
"""Rows binned at a time (bounds the temporary arrays of a large delivery)."""


def bins_per_cpu(total_cpus: int) -> int:
    """Bins per CPU when ``total_cpus`` CPUs share :data:`COUNT_BUDGET_BINS` (a power of two,
    at most :data:`MAX_BINS`, at least 1024)."""
    n = MAX_BINS
    while n > 1024 and n * max(1, total_cpus) > COUNT_BUDGET_BINS:
        n //= 2
    return n


@dataclass(frozen=True)
class Chunk:
    """Rows ``start .. start + len(ts)`` of the events table, as delivered (the list's rows)."""

    start: int
    base: int
    ts: np.ndarray
    """The rows' times minus :attr:`base` (uint32 when they fit: half the bytes; else int64, base 0)."""
    cpu: np.ndarray
    pid: np.ndarray
    event_id: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def time(self, row: int) -> int:
        """Time (ns) of row ``row`` of the chunk."""
        return self.base + int(self.ts[row])


@dataclass(frozen=True)
class BinCounts:
    """A snapshot of a stream's binned counts: ``cum[c, i]`` = delivered rows of CPU ``c`` in the
    bins before ``i``, valid for ``i <= top`` (later edges hold the total: nothing is delivered
    there)."""

    lo: int
    """Time (ns, the buffer's clock) of bin edge 0."""
    width: int
    """ns per bin."""
    cum: np.ndarray
    top: int
    watermark: int | None

    def before(self, t: np.ndarray, snap: bool) -> np.ndarray:
        """float64 (cpu_count, len(t)): delivered rows of each CPU before each time ``t``.

        ``snap``: at the bin edge nearest each ``t`` (integers, exact at edges at or below the
        watermark); else the bins' counts spread evenly over their width (a zoom finer than a bin)."""
        x = np.asarray(t, np.int64) - self.lo
        if snap:
            idx = np.clip((x + self.width // 2) // self.width, 0, self.top)
            return self.cum[:, idx].astype(np.float64)
        i = np.clip(x // self.width, 0, self.top)
        frac = np.clip((x - i * self.width) / self.width, 0.0, 1.0)
        a = self.cum[:, i].astype(np.float64)
        b = self.cum[:, np.minimum(i + 1, self.top)].astype(np.float64)
        return a + (b - a) * frac


def _small(a: np.ndarray, dtype: type[np.unsignedinteger]) -> np.ndarray:
    """A copy of ``a`` in the smallest unsigned type from ``dtype`` up that holds every value (a copy
    always: a view would keep the reader's whole delivery alive)."""
    lo, hi = (int(a.min()), int(a.max())) if len(a) else (0, 0)
    if lo < 0:
        return a.copy()
    for t in (dtype, np.uint16, np.uint32):
        if np.dtype(t).itemsize >= np.dtype(dtype).itemsize and hi <= np.iinfo(t).max:
            return a.astype(t)
    return a.copy()


def _chunk(start: int, ts: np.ndarray, cpu: np.ndarray, pid: np.ndarray, event_id: np.ndarray) -> Chunk:
    """Compact copies of some delivered rows (times as 32-bit offsets when the span allows)."""
    ts = np.asarray(ts, np.int64)
    base = int(ts[0]) if len(ts) else 0
    off = ts - base
    if len(ts) and int(off.min()) >= 0 and int(off.max()) < 2**32 - 1:
        ts = off.astype(np.uint32)
    else:
        ts, base = ts.copy(), 0
    return Chunk(start, base, ts, _small(np.asarray(cpu), np.uint8), _small(np.asarray(pid), np.uint16),
                 _small(np.asarray(event_id), np.uint16))


class PartialStream:
    """What the loading window keeps of one buffer's deliveries (see the module docstring)."""

    def __init__(self, cpu_count: int, first_ts: int | None, last_ts: int | None, bins: int = MAX_BINS) -> None:
        """``first_ts`` .. ``last_ts``: the buffer's time range (its page scan; None: no events);
        ``bins``: per CPU (:func:`bins_per_cpu`)."""
        self.cpu_count = max(1, int(cpu_count))
        self.lo = int(first_ts) if first_ts is not None else 0
        span = int(last_ts) - self.lo + 1 if first_ts is not None and last_ts is not None else 1
        self.width = max(1, -(-span // max(1, int(bins))))
        self.bins = -(-max(1, span) // self.width)
        # zeros come from calloc: a page of the array is resident once the load writes it
        self._cum: np.ndarray | None = np.zeros((self.cpu_count, self.bins + 1), np.int32)
        self._top = 0
        self._lock = threading.Lock()
        self._chunks: tuple[Chunk, ...] = ()
        self._listed = 0
        self._rows = 0
        self._watermark: int | None = None
        self._restarts = 0

    # ---- the loading thread ---------------------------------------------------------------
    def add(self, rows: PartialRows) -> None:
        """Count one delivery into the bins, keep its first rows for the list, then publish.

        A ``restart`` delivery (a damaged file: the rows before were not the table's first ones)
        replaces everything: the bins count from zero and the list starts again (:meth:`listing`)."""
        if rows.restart:
            with self._lock:
                cum = self._cum
                self._cum = None if cum is None else np.zeros_like(cum)  # readers keep the old array
                self._top = 0
                self._chunks = ()
                self._listed = self._rows = 0
                self._watermark = None
                self._restarts += 1
        ts, cpu = np.asarray(rows.ts), np.asarray(rows.cpu)
        n = len(ts)
        cum, top = self._cum, self._top
        if cum is not None and n:
            if self._rows + n >= np.iinfo(np.int32).max and cum.dtype == np.int32:
                cum = cum.astype(np.int64)  # readers keep the old array: its edges stay right
            for a in range(0, n, _COUNT_SLICE):
                top = self._count(cum, top, ts[a:a + _COUNT_SLICE], cpu[a:a + _COUNT_SLICE])
        chunk = None
        take = min(n, LIST_ROWS - self._listed)
        if take > 0:
            chunk = _chunk(self._listed, ts[:take], cpu[:take], rows.pid[:take], rows.event_id[:take])
        watermark = DONE_WATERMARK if rows.done else int(rows.watermark)
        with self._lock:
            self._cum, self._top = cum, top
            if chunk is not None:
                self._chunks = (*self._chunks, chunk)
                self._listed += len(chunk)
            self._rows += n
            self._watermark = watermark if self._watermark is None else max(self._watermark, watermark)

    def _count(self, cum: np.ndarray, top: int, ts: np.ndarray, cpu: np.ndarray) -> int:
        """Add rows to the running sums from their first bin on; returns the new valid edge count.

        Deliveries come in time order, so the bins written are (nearly) only new ones: the whole
        load writes each bin about once."""
        b = np.clip((ts.astype(np.int64, copy=False) - self.lo) // self.width, 0, self.bins - 1)
        c = cpu.astype(np.int64)
        ok = (c >= 0) & (c < self.cpu_count)
        if not ok.all():
            b, c = b[ok], c[ok]
        if not len(b):
            return top
        b0, end = int(b.min()), max(top, int(b.max()) + 1)
        if end > top:  # edges past the old top hold the totals before these rows
            cum[:, top + 1:end + 1] = cum[:, top:top + 1]
        span = end - b0
        h = np.bincount(c * span + (b - b0), minlength=self.cpu_count * span).reshape(self.cpu_count, span)
        np.cumsum(h, axis=1, out=h)
        cum[:, b0 + 1:end + 1] += h
        return end

    def settle(self) -> None:
        """The buffer is decoded (its table counts the rows now): the bins go; the list's rows stay."""
        with self._lock:
            self._cum, self._top = None, 0
            self._watermark = DONE_WATERMARK

    # ---- any thread -----------------------------------------------------------------------
    def counts(self) -> BinCounts | None:
        """The binned counts as delivered so far (a snapshot); None once settled."""
        with self._lock:
            if self._cum is None:
                return None
            return BinCounts(self.lo, self.width, self._cum, self._top, self._watermark)

    def chunks(self) -> tuple[Chunk, ...]:
        """The list's rows delivered so far (an immutable snapshot: the first :data:`LIST_ROWS`)."""
        with self._lock:
            return self._chunks

    def listing(self) -> tuple[int, tuple[Chunk, ...]]:
        """(how many times the rows started again, :meth:`chunks`), one snapshot: a list that sees the
        count change drops its rows instead of appending (a damaged file's ``restart``)."""
        with self._lock:
            return self._restarts, self._chunks

    @property
    def rows(self) -> int:
        """Rows delivered so far (all of them, listed or not)."""
        with self._lock:
            return self._rows

    @property
    def listed(self) -> int:
        """Rows kept for the list (``min(LIST_ROWS, rows)``)."""
        with self._lock:
            return self._listed

    @property
    def watermark(self) -> int | None:
        """Every event before this time (buffer clock, ns) is delivered; None before any delivery."""
        with self._lock:
            return self._watermark

    def before(self, t: np.ndarray, snap: bool = True, counts: BinCounts | None = None) -> np.ndarray:
        """float64 (cpu_count, len(t)): delivered events of each CPU before each ``t`` (see
        :meth:`BinCounts.before`); zeros once settled."""
        counts = self.counts() if counts is None else counts
        if counts is None:
            return np.zeros((self.cpu_count, len(np.atleast_1d(t))), np.float64)
        return counts.before(t, snap)
