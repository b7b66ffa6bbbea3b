"""The progressive first view: every stream's CPUs drawn from page headers while events decode.

A :class:`Preview` is built from opened files before anything is decoded (:func:`build_preview`):
streams, names and roles as the session will have them (``Session.from_files`` reads metadata
only), and per stream the page-header scan of its buffer (:mod:`kshark_py.loaders.pagescan`).
That gives the session's exact time range (each CPU's first and last record are decoded) and
each CPU's activity over time, estimated from the bytes its pages commit.  As the load decodes a
stream, its rows fill in from the left: the reader's deliveries (:meth:`Preview.add_rows`, counted
into fine time bins per CPU by a :class:`~kshark_py.model.partialstream.PartialStream`, not kept)
count exactly below their watermark at every zoom where a pixel spans a bin or more (finer zooms
spread each bin's count over it) and only later times keep the estimate; :meth:`Preview.set_exact`
then swaps the stream for its decoded events (exact counts per pixel, the lost-event marks the
decode found).

Guest streams are placed on the host clock by the file's own time sync, exactly as their events
will be (the page times go through ``TraceFile.convert_ts``: TIME_SHIFT, TSC2NSEC, offset); a
``--time-offset`` is added too.  A guest without sync data stays on its own clock, as it will in
the loaded session.

:class:`PreviewModel` answers the timeline widget's questions the way
:class:`~kshark_py.model.viewmodel.TimelineModel` does (rows, ``render`` into pixel codes), so the
same widget draws it and the user can zoom and pan before the load ends.  No Qt here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..loaders.buffer import Buffer
from ..loaders.pagescan import BufferScan, scan_buffer
from ..loaders.tracedat import TraceFile
from .distinct import cpu_block_counts
from .emitter import Emitter
from .partialstream import DONE_WATERMARK, PartialStream, bins_per_cpu
from .session import Session
from .viewmodel import BODY_ROWS, PX_LOST, PX_TICK, SUBROWS, TICK_ROWS, EventTicks, RenderResult, Row, _column_grid

if TYPE_CHECKING:
    from ..loaders.partial import PartialRows

BYTES_PER_EVENT = 48
"""What one event costs in a page, on average (header and a sched or irq payload): turns a page's
committed bytes into an estimated event count, so estimated and decoded rows shade alike."""


@dataclass
class PreviewStream:
    """One stream of the preview: its page scan, then (once decoded) its events per CPU."""

    index: int
    name: str
    role: str
    buffer: Buffer
    cpu_count: int
    scan: BufferScan
    offset: int = 0
    """ns the user's ``--time-offset`` adds to this stream."""
    ticks: dict[int, EventTicks] | None = None
    """Decoded: per CPU, where its events are (set by :meth:`Preview.set_exact`)."""
    lost: dict[int, np.ndarray] = field(default_factory=dict)
    """Decoded: per CPU, the times of its lost-event marks."""
    partial: PartialStream | None = None
    """Decoding: the rows delivered so far (set by :meth:`Preview.add_rows`)."""

    @property
    def exact(self) -> bool:
        return self.ticks is not None

    def exact_until(self) -> int | None:
        """Session time (ns) before which this stream's rows count decoded events; None: nowhere yet."""
        if self.ticks is not None:
            return DONE_WATERMARK
        w = self.partial.watermark if self.partial is not None else None
        return None if w is None else (w if w == DONE_WATERMARK else w + self.offset)


@dataclass
class Preview:
    """Every stream's page scan, in the timeline's row order (host, guests, instances)."""

    streams: list[PreviewStream]
    delivered: Emitter = field(default_factory=Emitter)
    """Fired (in the loading thread) with the stream index after :meth:`add_rows` kept a delivery."""

    @property
    def full_range(self) -> tuple[int, int] | None:
        """The first and the last event time of the session (exact), None when nothing is recorded."""
        lo = [s.scan.first_ts + s.offset for s in self.streams if s.scan.first_ts is not None]
        hi = [s.scan.last_ts + s.offset for s in self.streams if s.scan.last_ts is not None]
        return (min(lo), max(hi)) if lo and hi else None

    def stream_of(self, buffer: Buffer) -> PreviewStream | None:
        return next((s for s in self.streams if s.buffer is buffer), None)

    def add_rows(self, rows: PartialRows) -> PreviewStream | None:
        """Keep one delivery of decoded rows of ``rows.buffer`` (the loading thread); its stream's
        rows then count them, and :attr:`delivered` says so."""
        st = self.stream_of(rows.buffer)
        if st is None:
            return None
        if st.partial is None:
            cpus = sum(max(1, s.cpu_count) for s in self.streams)  # every stream's bins share one budget
            st.partial = PartialStream(st.cpu_count, st.scan.first_ts, st.scan.last_ts, bins_per_cpu(cpus))
        st.partial.add(rows)
        self.delivered.emit(st.index)
        return st

    def set_exact(self, buffer: Buffer) -> PreviewStream | None:
        """``buffer`` is decoded: its stream's rows show its events from now on.

        Called from the loading thread; the per-CPU counts are built here (one pass over the
        stream's CPU column), then published in one assignment."""
        st = self.stream_of(buffer)
        if st is None:
            return None
        t = buffer.events
        ts = t.column("ts").to_numpy()
        cpu = t.column("cpu").to_numpy()
        lost = buffer.lost
        lts, lcpu = lost.column("ts").to_numpy(), lost.column("cpu").to_numpy()
        st.lost = {int(c): np.sort(lts[lcpu == c]) for c in np.unique(lcpu)}
        cum = cpu_block_counts(buffer, max(1, st.cpu_count))  # every CPU in one pass (kept for the load cache)
        st.ticks = {c: EventTicks(ts, cpu, c, cum=cum[c]) for c in range(st.cpu_count)}
        if st.partial is not None:  # the rows count from the table now: the bins go
            st.partial.settle()
        return st


def build_preview(files: list[TraceFile], time_offsets: dict[int | str, int] | None = None,
                  max_chunks: int | None = 512) -> Preview:
    """Scan the page headers of every stream of ``files`` (opened, not decoded).

    ``max_chunks``: per CPU, at most this many compressed chunks are decompressed (see
    :func:`~kshark_py.loaders.pagescan.scan_buffer`)."""
    session = Session.from_files(files)
    offsets: dict[int, int] = {}
    for key, ns in (time_offsets or {}).items():
        try:
            offsets[session.stream_index(key)] = int(ns)
        except ValueError:
            pass  # the load itself reports a stream that does not exist
    order = [s for s in session.streams if s.role == "host" and s.buffer.name == ""]
    order += [s for s in session.streams if s.role == "guest" and s.buffer.name == ""]
    order += [s for s in session.streams if s.buffer.name != ""]
    out = [PreviewStream(st.index, st.name, st.role, st.buffer, st.cpu_count, scan_buffer(st.buffer, max_chunks),
                         offsets.get(st.index, 0)) for st in order]
    return Preview(out)


class PreviewModel:
    """The preview's rows and their rendering, in :class:`~kshark_py.model.viewmodel.TimelineModel`'s
    terms: one row per CPU of every stream, an event-density strip and a shaded body."""

    session = None
    """No session yet (the timeline widget asks for it only for rows with lost-event arrays)."""

    def __init__(self, preview: Preview) -> None:
        self.preview = preview
        self.highlight_pid = None
        self.rows_changed = Emitter()
        self.rows: list[Row] = []
        self._where: list[tuple[PreviewStream, int]] = []
        for st in preview.streams:
            for c in range(st.cpu_count):
                label = f"{st.name} VCPU{c} (guest CPU)" if st.role == "guest" and st.buffer.name == "" \
                    else f"{st.name} CPU {c}"
                self.rows.append(Row("cpu", st.index, label, cpu=c))
                self._where.append((st, c))

    def is_exact(self, index: int) -> bool:
        """Whether row ``index`` shows decoded events (not the page-header estimate)."""
        return self._where[index][0].exact

    def exact_until(self, index: int) -> int | None:
        """Session time (ns) before which row ``index`` counts decoded events (None: nowhere yet)."""
        return self._where[index][0].exact_until()

    def counts(self, index: int, edges: np.ndarray) -> np.ndarray:
        """Events of row ``index`` between consecutive ``edges`` (ns): exact once its stream is
        decoded; while it decodes, counted from the delivered rows' time bins before their
        watermark (exact for edges a bin apart or more: see :meth:`_before`) and estimated from the
        committed page bytes after it; else estimated throughout (float64)."""
        st, c = self._where[index]
        return np.diff(self._before(st, np.asarray(edges, np.int64))[c])

    def _before(self, st: PreviewStream, edges: np.ndarray) -> np.ndarray:
        """float64 (cpu_count, len(edges)): events of each CPU of ``st`` before each edge (session
        time): decoded ones below the watermark, the page-byte estimate above it.

        Edges at least one bin apart (every zoom a user has while a large file loads: a bin is
        1/2**20 of the stream's range or so) are taken at the nearest bin edge, where the counts
        are exact: each pixel shows the events between the bin edges nearest its own, within half
        a bin of them.  Closer edges (a zoom finer than a bin) spread each bin's count evenly; those
        columns still draw solid left of the watermark."""
        e = edges - st.offset
        out = np.zeros((st.cpu_count, len(e)), np.float64)
        if st.ticks is not None:
            for c, ticks in st.ticks.items():
                out[c] = ticks.before(ticks.positions(e))
            return out
        bins = st.partial.counts() if st.partial is not None else None  # one snapshot: counts and watermark agree
        w = bins.watermark if bins is not None else None
        if bins is not None and w is not None:
            # pixels at least a bin wide count whole bins (exact below the watermark); finer ones spread them
            snap = len(e) < 2 or (int(e[-1]) - int(e[0])) >= bins.width * (len(e) - 1)
            out += bins.before(np.minimum(e, w), snap)
        if w == DONE_WATERMARK:
            return out
        late = e if w is None else np.maximum(e, w)
        for pages in st.scan.cpus:
            if 0 <= pages.cpu < st.cpu_count:
                est = pages.bytes_before(late).astype(np.float64)
                if w is not None:
                    est -= float(pages.bytes_before(np.array([w], np.int64))[0])
                out[pages.cpu] += est / BYTES_PER_EVENT
        return out

    def lost_times(self, index: int) -> np.ndarray:
        """Times of row ``index``'s lost-event marks: the decoded ones, or the pages whose header
        says events were lost before them."""
        st, c = self._where[index]
        if st.exact:
            return st.lost.get(c, np.zeros(0, np.int64)) + st.offset
        pages = next((p for p in st.scan.cpus if p.cpu == c), None)
        if pages is None:
            return np.zeros(0, np.int64)
        return pages.ts[pages.lost != 0] + st.offset

    def render(self, t0: int, t1: int, npix: int, first: int = 0, count: int | None = None) -> RenderResult:
        """Rows ``first`` .. ``first + count`` between ``t0`` and ``t1`` at ``npix`` columns: the
        tick strip shades by events per column as the loaded timeline's does, the body as much
        where the events are decoded and a third of that where they are estimated; lost-event marks
        in red."""
        npix = max(1, int(npix))
        t1 = max(t1, t0 + npix)
        first = max(0, min(int(first), len(self.rows)))
        stop = len(self.rows) if count is None else min(len(self.rows), first + max(0, int(count)))
        nrows = stop - first
        kind = np.zeros((nrows * SUBROWS, npix), np.uint8)
        alpha = np.zeros((nrows * SUBROWS, npix), np.uint8)
        counts = np.zeros((nrows, npix), np.int64)
        edges, _ = _column_grid(int(t0), int(t1), npix)
        before: dict[int, np.ndarray] = {}
        for k in range(nrows):
            st, cpu = self._where[first + k]
            if st.index not in before:
                before[st.index] = self._before(st, edges)
            c = np.diff(before[st.index][cpu])
            counts[k] = np.round(c).astype(np.int64)
            level = np.where(c > 0.05, 60 + np.minimum(160, np.log2(np.maximum(c, 0) + 1) * 25), 0).astype(np.uint8)
            until = st.exact_until()
            exact = edges[1:] <= until if until is not None else np.zeros(npix, bool)
            base = k * SUBROWS
            tick = slice(base + TICK_ROWS.start, base + TICK_ROWS.stop)
            body = slice(base + BODY_ROWS.start, base + BODY_ROWS.stop)
            kind[tick] = PX_TICK
            alpha[tick] = level[None, :]
            kind[body] = PX_TICK
            # decoded columns solid, estimated ones faint: the rows visibly fill in from the left
            alpha[body] = np.where(exact, level, level // 3)[None, :]
            lost = self.lost_times(first + k)
            if len(lost):
                hit = np.flatnonzero(np.diff(np.searchsorted(lost, edges)) > 0)
                if len(hit):
                    cols = np.unique(np.clip(np.concatenate([hit, hit + 1]), 0, npix - 1))
                    kind[base: base + BODY_ROWS.stop, cols] = PX_LOST
                    alpha[base: base + BODY_ROWS.stop, cols] = 255
        overlay = np.zeros(kind.shape, bool)
        dominant = np.full((nrows, npix), -1, np.int64)
        return RenderResult(kind, alpha, overlay, t0, t1, counts, dominant, first)
