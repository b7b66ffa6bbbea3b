"""What a buffer's page headers say, read without decoding its events (the progressive first view).

Every ring-buffer page starts with ``u64 timestamp, long commit``: the time of the page's first
record (before its delta) and how many data bytes the page holds, whose top bits say whether
events were lost before it (spec §9, ``kbuffer-parse.c``).  Read for every page, that gives each
CPU's activity over time and its lost-event marks in one strided numpy read of the headers, with
no per-event work.  Uncompressed data is read in place (one 16-byte header per page of the mmap).
Compressed v7 data must be decompressed to reach the headers; decompressing every chunk costs what
the zstd pass costs, so a scan may take an evenly spread sample of each CPU's chunks
(``max_chunks``): every page of a sampled chunk is read, and each one stands for the pages up to
the next sample.  Uncompressed data is sampled the same way (as many pages as those chunks hold):
one header per page would fault in the whole file, a full read from disk when it is not cached.
Page counts are exact either way (the chunk table; the data's size).

Only the first and the last page holding records of each CPU are decoded (two pages), so a scan
knows the CPU's exact first and last event times.  Times go through the file's own pipeline
(``TraceFile.convert_ts``: a guest's TIME_SHIFT, TSC2NSEC, the offset), so a synchronized guest's
pages land on the host clock exactly where its decoded events will.

A scan never raises on damaged data: what it cannot read (a chunk that does not decompress, a page
whose commit is larger than the page) it leaves out; the full load reports those losses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .buffer import Buffer
from .compress import ChunkTable, read_chunk_table
from .errors import TraceDatError
from .layout import COMMIT_MASK, PAGE_MISSING_EVENTS, PAGE_MISSING_STORED, PAGES_IN_CHUNK
from .pages import decode_pages
from .store import WORKERS, decompress_pool

__all__ = ["CpuPages", "BufferScan", "scan_buffer"]

EDGE_SEARCH_CHUNKS = 64
"""Chunks (or pages, uncompressed) walked from each end to find the CPU's first and last record."""


@dataclass
class CpuPages:
    """One CPU's page headers: a sample of its pages (all of them when :attr:`exact`)."""

    cpu: int
    pages: int
    """Pages of the CPU's data (exact even when only a sample was read)."""
    page: np.ndarray
    """int64, index of each read page among the CPU's pages (increasing); empty pages left out."""
    ts: np.ndarray
    """int64, each read page's timestamp on the trace clock (host clock for a synced guest);
    non-decreasing (a page stamped earlier than its predecessor is lifted to it)."""
    nbytes: np.ndarray
    """int64, data bytes committed in each read page."""
    weight: np.ndarray
    """int64, bytes each read page stands for: its own, times the pages up to the next sample."""
    lost: np.ndarray
    """int64 per read page: 0 none lost before it, -1 lost (count unknown), >0 the kernel's count."""
    first_ts: int | None
    """Time of the CPU's first record (decoded), None when no page holds one."""
    last_ts: int | None
    """Time of the CPU's last record (decoded)."""
    exact: bool
    """Every page header was read (uncompressed data, or a full scan of compressed data)."""

    @property
    def total_bytes(self) -> int:
        return int(self.weight.sum())

    def bytes_before(self, t: np.ndarray) -> np.ndarray:
        """Estimated data bytes recorded before each time ``t`` (float64; exact at page times when
        :attr:`exact`): each page's bytes spread evenly from its timestamp to the next page's."""
        if not len(self.ts):
            return np.zeros(np.shape(t), np.float64)
        end = self.last_ts if self.last_ts is not None and self.last_ts > self.ts[-1] else int(self.ts[-1]) + 1
        x = np.append(self.ts, end).astype(np.float64)
        y = np.concatenate(([0], np.cumsum(self.weight))).astype(np.float64)
        return np.interp(np.asarray(t, np.float64), x, y, left=0.0, right=float(y[-1]))


@dataclass
class BufferScan:
    """The page-header scan of one buffer: one :class:`CpuPages` per CPU with data."""

    name: str
    cpus: list[CpuPages]

    @property
    def first_ts(self) -> int | None:
        ts = [c.first_ts for c in self.cpus if c.first_ts is not None]
        return min(ts) if ts else None

    @property
    def last_ts(self) -> int | None:
        ts = [c.last_ts for c in self.cpus if c.last_ts is not None]
        return max(ts) if ts else None

    @property
    def exact(self) -> bool:
        return all(c.exact for c in self.cpus)


def scan_buffer(buffer: Buffer, max_chunks: int | None = 1024) -> BufferScan:
    """Read the page headers of every CPU of ``buffer`` (see the module doc).

    ``max_chunks``: compressed data reads at most this many chunks per CPU, evenly spread, and
    uncompressed data as many pages as they hold (None: every page)."""
    out = []
    for cd in buffer.cpu_data:
        try:
            cp = _scan_cpu(buffer, cd.cpu, cd.offset, cd.size, max_chunks)
        except TraceDatError:  # a chunk table the file does not hold: the full load says what is wrong
            cp = None
        if cp is not None:
            out.append(cp)
    return BufferScan(buffer.name, out)


class _Pages:
    """Page access for one CPU: header words of a set of pages, and one page's bytes."""

    def __init__(self, buffer: Buffer, offset: int, size: int) -> None:
        tf = buffer.trace
        self.buffer = buffer
        self.ps = buffer.page_size
        self.lay = tf.lay
        self.table: ChunkTable | None = None
        self._last: tuple[int, np.ndarray | None] = (-1, None)
        if buffer.compressed:
            if size <= 0 or offset + 4 > tf.file_size:
                self.n = 0
                return
            self.table = read_chunk_table(tf.buf, offset, min(offset + 4 + size, tf.file_size), tf.lay, self.ps,
                                          "CPU data")
            u = self.table.usizes // self.ps
            self.chunk_first = np.concatenate(([0], np.cumsum(u))).astype(np.int64)
            self.n = int(self.chunk_first[-1])
        else:
            end = min(offset + max(size, 0), tf.file_size)
            self.n = max(0, end - offset) // self.ps
            self.whole = np.frombuffer(tf.buf, np.uint8)
            self.offset = offset

    def chunk(self, k: int) -> np.ndarray | None:
        """Chunk ``k`` decompressed (None if it does not decompress to its announced size)."""
        t = self.table
        o, c, u = int(t.file_offsets[k]), int(t.csizes[k]), int(t.usizes[k])
        try:
            data = self.buffer.trace.codec.decompress(memoryview(self.buffer.trace.buf)[o:o + c], u)
        except Exception:  # zstd/zlib raise their own types; a bad chunk is left out of the preview
            return None
        return np.frombuffer(data, np.uint8) if len(data) == u else None

    def headers(self, data: np.ndarray, pages: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(raw timestamp, commit word) of each whole page of ``data`` (or of the pages ``pages``):
        strided reads, nothing but the headers is touched."""
        n = len(data) // self.ps
        if n == 0:
            z = np.zeros(0, np.uint64)
            return z, z
        whole = data[: n * self.ps]
        at = slice(None) if pages is None else pages
        ts = whole.view(self.lay.np_u64)[:: self.ps // 8][at]
        if self.lay.long_size == 8:
            commit = whole.view(self.lay.np_u64)[1:: self.ps // 8][at]
        else:
            commit = whole.view(self.lay.np_u32)[2:: self.ps // 4][at]
        return ts.astype(np.uint64), commit.astype(np.uint64)

    def page_bytes(self, p: int) -> np.ndarray | None:
        """The bytes of page ``p`` (None when its chunk does not decompress)."""
        if self.table is None:
            a = self.offset + p * self.ps
            return self.whole[a:a + self.ps]
        k = int(np.searchsorted(self.chunk_first, p, side="right")) - 1
        if self._last[0] != k:  # the edge walks read a chunk's pages one after another
            self._last = (k, self.chunk(k))
        c = self._last[1]
        if c is None:
            return None
        a = (p - int(self.chunk_first[k])) * self.ps
        return c[a:a + self.ps]


def _scan_cpu(buffer: Buffer, cpu: int, offset: int, size: int, max_chunks: int | None) -> CpuPages | None:
    pg = _Pages(buffer, offset, size)
    if pg.n == 0:
        return None
    room = pg.ps - buffer.trace.header_page.data_offset
    if pg.table is None:  # in place: every header, or as many pages as the sampled chunks would give
        page = np.arange(pg.n, dtype=np.int64)
        if max_chunks is not None and pg.n > max_chunks * PAGES_IN_CHUNK:
            page = np.unique(np.linspace(0, pg.n - 1, max_chunks * PAGES_IN_CHUNK).round().astype(np.int64))
        raw_ts, commit = pg.headers(pg.whole[offset: offset + pg.n * pg.ps], page)
        exact = len(page) == pg.n
    else:
        raw_ts, commit, page, exact = _sample_chunks(pg, max_chunks)
    size_b = (commit & np.uint64(COMMIT_MASK)).astype(np.int64)
    size_b[size_b > room] = 0  # a commit larger than the page: corrupt, nothing read from it
    gap = np.diff(np.append(page, pg.n))
    weight = size_b * np.maximum(gap, 1)
    lost = np.where((commit & np.uint64(PAGE_MISSING_EVENTS)) != 0, -1, 0).astype(np.int64)
    stored = (lost < 0) & ((commit & np.uint64(PAGE_MISSING_STORED)) != 0)
    if stored.any():
        lost[stored] = _stored_counts(pg, page[stored], size_b[stored], room)
    keep = size_b > 0
    page, raw_ts, size_b, weight, lost = page[keep], raw_ts[keep], size_b[keep], weight[keep], lost[keep]
    conv = buffer.trace.convert_ts(raw_ts, np.full(len(raw_ts), cpu, np.int16)) if len(raw_ts) else \
        np.zeros(0, np.int64)
    ts = np.maximum.accumulate(conv) if len(conv) else conv
    first, last = _edge_time(pg, buffer, cpu, first=True), _edge_time(pg, buffer, cpu, first=False)
    return CpuPages(cpu, pg.n, page, ts.astype(np.int64), size_b, weight, lost, first, last, exact)


def _sample_chunks(pg: _Pages, max_chunks: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Headers of the pages of an evenly spread sample of chunks (all when ``max_chunks`` is None or
    covers them), decompressed on the shared pool: (raw ts, commit, page index, exact)."""
    n = len(pg.table.usizes)
    if max_chunks is None or n <= max_chunks:
        ks = np.arange(n)
    else:
        ks = np.unique(np.linspace(0, n - 1, max(2, max_chunks)).round().astype(np.int64))
    got: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(ks)

    def some(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            c = pg.chunk(int(ks[i]))
            if c is not None:
                got[i] = pg.headers(c)

    cuts = np.linspace(0, len(ks), min(len(ks), 2 * WORKERS) + 1).astype(np.int64).tolist()
    if len(cuts) > 2:
        pool = decompress_pool()
        for f in [pool.submit(some, a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]:
            f.result()
    else:
        some(0, len(ks))
    ts_parts, commit_parts, page_parts = [], [], []
    for k, h in zip(ks.tolist(), got, strict=True):
        if h is None:
            continue
        ts_parts.append(h[0])
        commit_parts.append(h[1])
        page_parts.append(int(pg.chunk_first[k]) + np.arange(len(h[0]), dtype=np.int64))
    if not ts_parts:
        z = np.zeros(0, np.uint64)
        return z, z, np.zeros(0, np.int64), False
    exact = len(ks) == n and all(h is not None for h in got)
    return np.concatenate(ts_parts), np.concatenate(commit_parts), np.concatenate(page_parts), exact


def _stored_counts(pg: _Pages, pages: np.ndarray, sizes: np.ndarray, room: int) -> np.ndarray:
    """The kernel's lost-event counts stored after the committed data of ``pages`` (-1 where the
    count does not fit in the page or the page cannot be read)."""
    ls = pg.lay.long_size
    data_offset = pg.ps - room
    out = np.full(len(pages), -1, np.int64)
    for i, (p, s) in enumerate(zip(pages.tolist(), sizes.tolist(), strict=True)):
        if s + ls > room:
            continue
        b = pg.page_bytes(p)
        if b is None:
            continue
        a = data_offset + s
        out[i] = int(b[a:a + ls].view(pg.lay.np_u64 if ls == 8 else pg.lay.np_u32)[0])
    return out


def _edge_time(pg: _Pages, buffer: Buffer, cpu: int, *, first: bool) -> int | None:
    """The time of the CPU's first (or last) record: the first (last) page holding records, decoded."""
    tf = buffer.trace
    order = range(pg.n) if first else range(pg.n - 1, -1, -1)
    tries = 0
    for p in order:
        b = pg.page_bytes(p)
        tries += 1
        if b is not None and len(b) == pg.ps:
            dec = decode_pages(b, pg.ps, tf.lay, tf.header_page.data_offset)
            if len(dec.ts):
                raw = dec.ts[:1] if first else dec.ts[-1:]
                return int(tf.convert_ts(raw, np.full(1, cpu, np.int16))[0])
        if tries >= EDGE_SEARCH_CHUNKS * (10 if pg.table is not None else 1):
            return None
    return None
