"""One tracing instance of a file (:class:`Buffer`) and its events, decoded lazily into columns.

A buffer decodes every CPU's pages block by block (decompressing as it goes), the blocks of all
CPUs in time order (each block's first page timestamp), keeps only the per-record columns
(:class:`_Columns`, a region per CPU) and merges the CPUs into report order (:mod:`.merge`); while
it decodes, the rows below the next block's time are final and can be handed out (:mod:`.partial`);
payloads are re-read on demand through its store.  What loading finds lost or damaged is kept per
CPU (:class:`CpuStats`) and as typed :class:`~kshark_py.loaders.errors.DataLoss` records; the
rules for damaged data (``strict``) are in :mod:`.tracedat`, whose :class:`~.tracedat.TraceFile`
makes the buffers.
"""

from __future__ import annotations

import mmap
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pyarrow as pa

from . import schema
from .compress import ChunkTable, Codec, read_chunk_table
from .errors import LOSS_CORRUPT, LOSS_TRUNCATED, CorruptSectionError, DataLoss, TraceDatError
from .fields import field_array
from .formats import EventFormat, EventFormats, HeaderPage
from .layout import COMMIT_MASK, Layouts
from .memory import drop_mapped_pages, release_free_memory
from .merge import CompiledMerge, Merge, scatter_merged
from .options import CpuData
from .pages import BadPage, decode_into, decode_pages, kernels_ready, want_compiled
from .partial import PartialRows, RowFeed
from .store import ChunkStore, FlatStore, PendingRange, decompress_pool

__all__ = ["Buffer", "CpuStats", "LostIndex", "TraceSource"]


class TraceSource(Protocol):
    """What a buffer reads of the file that holds it (:class:`~.tracedat.TraceFile`, which imports
    this module): the mapped bytes and their layouts, the formats, the strictness, where warnings
    and progress go, and the time conversion."""

    path: str
    version: int
    cpus: int
    endian: str
    lay: Layouts
    buf: mmap.mmap
    file_size: int
    strict: bool
    codec: Codec | None
    header_page: HeaderPage
    warnings: list[str]
    hot_fields: list[tuple[str, str, list[str]]]
    progress: Callable[[int], None] | None
    on_rows: Callable[[PartialRows], None] | None

    @property
    def formats(self) -> EventFormats: ...

    def convert_ts(self, raw: np.ndarray, cpu: np.ndarray, *, raw_ts: bool = False) -> np.ndarray: ...


@dataclass
class CpuStats:
    """What loading one CPU of one buffer found: sizes, pages, and what was lost or damaged."""

    cpu: int
    file_bytes: int
    data_bytes: int
    pages: int
    events: int
    lost_events: int = 0
    """Sum of the kernel's stored missed-event counts (pages with an unknown count add 0)."""
    lost_unknown_pages: int = 0
    bad_pages: list[BadPage] = field(default_factory=list)
    truncated_bytes: int = 0
    """Bytes of this CPU's data the file promised but does not hold (a truncated file)."""
    truncated_pages: int = 0
    """Pages lost to truncation: exact for uncompressed data; for compressed data the pages of the
    chunk cut short when its header survived (a lower bound: later chunks' sizes are unknown)."""
    bad_chunk_at: int | None = None
    """Lenient load: file offset of the chunk header from which this CPU's data was dropped."""


@dataclass
class _CpuChunks:
    """One CPU's compressed data while it loads: its chunk table, stats, first chunk in the
    store (``k0``), data offset (``cpu_base``) and each chunk's start in the CPU's data."""

    cd: CpuData
    table: ChunkTable
    stats: CpuStats
    k0: int
    cpu_base: int
    local_starts: np.ndarray
    slot: int
    """The CPU's place in ``cpu_data`` (its region of the columns)."""


LOAD_BLOCK_BYTES = 8 << 20
"""CPU data decoded at once while loading: small enough that the blocks in flight cost little
memory (the load's peak is then its columns), big enough that per-block Python work is noise."""

AHEAD = 3
"""Blocks (of about LOAD_BLOCK_BYTES) decompressing at once while one is decoded."""


@dataclass(frozen=True)
class LostIndex:
    """A v7 buffer found without its BUFFER option (cut off with the end of the file).

    trace-cmd writes a buffer's BUFFER option (where each CPU's data lies) into the options section
    *after* the data, so a file cut inside the data has the data but not its index; the reader then
    walks the buffer's flyrecord section itself (:meth:`TraceFile._recover_lost_buffers`)."""

    section_offset: int
    """The buffer's flyrecord section header."""
    section_end: int | None
    """Where its data ran to (the section header's size), None if the header never got its size."""
    options_offset: int | None
    """The options section that held the BUFFER option, past the end of the file (None: unknown)."""


class _Columns:
    """Per-record columns filled block by block, each CPU into its own region sized for the most
    records its data could hold (8 bytes each), so a CPU's records are one run whatever order its
    blocks decode in (time order, across CPUs).  Untouched region tails are never faulted in, so
    memory follows the records actually decoded, and no per-block pieces are kept or concatenated.
    A record's decode index is its place in these arrays (gaps between regions)."""

    DTYPES = {"ts": np.uint64, "off": np.int64, "len": np.int32, "eid": np.int32, "pid": np.int32,
              "flags": np.uint8, "preempt": np.uint8}

    def __init__(self, data_bytes: list[int]) -> None:
        """``data_bytes``: each region's (CPU's, slot order) decompressed data size."""
        caps = [max(1, b // 8 + 1) for b in data_bytes]
        self.starts = np.concatenate(([0], np.cumsum(caps, dtype=np.int64)))[:-1].astype(np.int64).tolist()
        self.ends = [a + c for a, c in zip(self.starts, caps, strict=True)]
        self.arrays = {k: np.empty(max(1, sum(caps)), d) for k, d in self.DTYPES.items()}
        self.fill = list(self.starts)
        """Each region's end of decoded records (where its next block's records go)."""
        self.missed: list[tuple[np.ndarray, np.ndarray]] = []

    @property
    def n(self) -> int:
        return sum(f - a for f, a in zip(self.fill, self.starts, strict=True))

    def add(self, slot: int, at: int, **cols: np.ndarray) -> None:
        """Append one block's records to region ``slot`` (whose CPU's data starts at file byte ``at``)."""
        k = len(cols["ts"])
        a, b = self.fill[slot], self.fill[slot] + k
        if b > self.ends[slot]:  # pragma: no cover (a record is at least 8 bytes)
            raise CorruptSectionError(f"CPU slot {slot}: more records than the data can hold", offset=at)
        for name, arr in cols.items():
            self.arrays[name][a:b] = arr
        self.fill[slot] = b

    def commit(self, slot: int, k: int) -> None:
        """Count ``k`` records a compiled decoder wrote in place at region ``slot``'s end."""
        self.fill[slot] += k

    def runs(self) -> list[tuple[int, int, int]]:
        """(slot, first, end) decode indices of each region that holds records, in slot order."""
        return [(s, a, f) for s, (a, f) in enumerate(zip(self.starts, self.fill, strict=True)) if f > a]

    def pop(self, name: str) -> np.ndarray:
        """A whole column (regions and gaps); the accumulator lets go of it."""
        return self.arrays.pop(name)


def common_fields(arr: np.ndarray, offset: np.ndarray, length: np.ndarray, lay: Layouts
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(event id, pid, flags, preempt count) of records at ``offset`` in block ``arr`` (numpy path).

    Records are 4-byte aligned: the common fields are two 32-bit words per record, read while the
    block is in memory (sequential access).  A record too short to hold them gets id and pid -1."""
    words = arr[: len(arr) - len(arr) % 4].view(lay.np_u32)
    short = length < 8
    widx = np.where(short, 0, offset // 4)
    if len(words) and len(widx):
        w0 = words[widx].astype(np.uint32)
        pid = words[np.minimum(widx + 1, len(words) - 1)].astype(np.uint32).view(np.int32)
    else:
        w0 = np.zeros(len(widx), np.uint32)
        pid = w0.view(np.int32)
    if lay.endian == "<":
        event_id = (w0 & 0xFFFF).astype(np.int32)
        flags = ((w0 >> 16) & 0xFF).astype(np.uint8)
        preempt = (w0 >> 24).astype(np.uint8)
    else:
        event_id = (w0 >> 16).astype(np.int32)
        flags = ((w0 >> 8) & 0xFF).astype(np.uint8)
        preempt = (w0 & 0xFF).astype(np.uint8)
    if short.any():
        event_id[short] = -1
        pid = np.where(short, -1, pid).astype(np.int32)
    return event_id, pid, flags, preempt


class Buffer:
    """One tracing instance of a file (``""`` is the top instance) and its events, decoded lazily."""

    def __init__(self, tf: TraceSource, name: str, clock: str | None, page_size: int,
                 cpus: list[CpuData], compressed: bool, lost_index: LostIndex | None = None) -> None:
        self.trace = tf
        self.name = name
        self.clock = clock
        self.page_size = page_size
        self.cpu_data = sorted(cpus, key=lambda c: c.cpu)  # slot order of trace-cmd's merge
        self.compressed = compressed
        self.stats: list[CpuStats] = []
        self.lost_index = lost_index
        """Set when the buffer was found without its BUFFER option (a v7 file cut inside its data)."""
        self.losses: list[DataLoss] = []
        """What decoding could not read (filled by the first access to :attr:`events`)."""
        self._table: pa.Table | None = None
        self._lost: pa.Table | None = None
        self._chunks: dict[int, ChunkTable | None] = {}
        self._rows_cache: dict[int, np.ndarray] = {}
        self._field_cache: dict[tuple[int, str], pa.Array] = {}
        self._compiled = False
        """Whether the load merged with the compiled kernels (they were ready by then)."""
        self._want_compiled = False
        """Whether the load uses the kernels once they are ready: blocks decoded before that use numpy."""
        self.store: FlatStore | ChunkStore | None = None
        """Record bytes by data offset (the ``offset`` column): see :mod:`.store`."""
        self._feed: RowFeed | None = None
        """While loading with a rows callback (``on_rows`` of the file): the rows handed out so far."""

    @property
    def cpu_count(self) -> int:
        """CPUs as trace-cmd counts them for this buffer (the file's count for the top buffer)."""
        ids = [c.cpu for c in self.cpu_data]
        n = max(ids) + 1 if ids else 0
        if self.name == "" or self.trace.version < 7:
            return max(n, self.trace.cpus)
        return n

    @property
    def compiled(self) -> bool:
        """Whether this buffer was decoded by the compiled kernels (:mod:`.kernels`): they are
        loaded, so the model's derived tables of a big buffer may use them too."""
        return self._compiled

    @property
    def events(self) -> pa.Table:
        """The events, in the order trace-cmd reports them (schema: :data:`schema.EVENTS`)."""
        if self._table is None:
            self._checked_load()
        return self._table

    @property
    def lost(self) -> pa.Table:
        """One row per "events dropped" mark: the row it precedes, its CPU, time and count (-1: unknown)."""
        if self._table is None:
            self._checked_load()
        return self._lost

    def adopt(self, *, events: pa.Table, lost: pa.Table, stats: list[CpuStats], losses: list[DataLoss],
              fields: dict[tuple[int, str], pa.Array], rows: dict[int, np.ndarray],
              store: FlatStore | ChunkStore) -> None:
        """Take what a load of this buffer computed from elsewhere (the load cache,
        :mod:`.loadcache`, which checked it) instead of decoding: afterwards the buffer is as if
        loaded (``events``, ``lost``, ``stats``, ``losses``, hot fields, payloads through ``store``)."""
        self._table, self._lost, self.stats, self.losses, self.store = events, lost, stats, losses, store
        self._field_cache, self._rows_cache = dict(fields), dict(rows)

    def decoded_fields(self) -> tuple[dict[tuple[int, str], pa.Array], dict[int, np.ndarray]]:
        """(fields extracted so far by (event id, name), rows of each event asked for so far): what
        the load cache keeps beside the events."""
        return dict(self._field_cache), dict(self._rows_cache)

    def shift_time(self, delta_ns: int) -> None:
        """Add ``delta_ns`` to every timestamp of this buffer (its events and lost marks), in place.

        The user's correction for a guest recorded without time sync (KernelShark's "Add Time
        Offset"). Row order is unchanged, so every per-row cache (fields, rows of an event) stays
        valid; only the ``ts`` columns are replaced."""
        if not delta_ns:
            return
        t, lost = self.events, self.lost
        d = np.int64(delta_ns)
        self._table = t.set_column(t.schema.get_field_index("ts"), "ts", pa.array(t.column("ts").to_numpy() + d))
        if len(lost):
            self._lost = lost.set_column(lost.schema.get_field_index("ts"), "ts",
                                         pa.array(lost.column("ts").to_numpy() + d))

    def _checked_load(self) -> None:
        try:
            self._load()
            release_free_memory()  # the per-block temporaries are gone now; hand their pages back
        except TraceDatError as e:
            self._table = self._lost = None
            e.with_context(path=self.trace.path, section=f"buffer {self.name!r} flyrecord")
            raise
        finally:
            self._feed = None  # a cancelled load's feed holds its columns

    def payload(self, row: int) -> bytes:
        """The raw record bytes of event ``row`` (from common_type on)."""
        t = self.events
        off = int(t.column("offset")[row].as_py())
        ln = int(t.column("length")[row].as_py())
        return self.store.read(off, ln)

    def rows_of(self, event_id: int) -> np.ndarray:
        """Rows of one event type (cached: filters, intervals and names all ask for the same)."""
        r = self._rows_cache.get(event_id)
        if r is None:
            r = self._rows_cache[event_id] = np.flatnonzero(self.events.column("event_id").to_numpy() == event_id)
        return r

    def field_arrays(self, ev: EventFormat, names: list[str], rows: np.ndarray | None = None) -> dict[str, pa.Array]:
        """Fields ``names`` of event type ``ev`` for the events at ``rows`` (default: all of that type),
        as Arrow arrays in the order of ``rows``.

        Whole columns (every record of the type) are extracted once and cached, so the GUI's many
        questions about sched_switch cost one pass over the data.
        """
        missing = [n for n in names if ev.field(n) is not None and (ev.id, n) not in self._field_cache]
        if missing:
            self.prefetch([(ev, missing)])
        out = {n: self._field_cache[(ev.id, n)] for n in names if (ev.id, n) in self._field_cache}
        if rows is None:
            return out
        all_rows = self.rows_of(ev.id)
        if len(rows) == len(all_rows) and (rows == all_rows).all():
            return out
        pos = np.searchsorted(all_rows, rows)
        pos = np.clip(pos, 0, max(len(all_rows) - 1, 0))
        if len(rows) and not (all_rows[pos] == rows).all():
            raise ValueError(f"rows passed for {ev.name} include events of another type")
        idx = pa.array(pos)
        return {n: a.take(idx) for n, a in out.items()}

    def prefetch(self, requests: list[tuple[EventFormat, list[str]]]) -> None:
        """Extract several events' fields in one pass over the data (decompressing each block once)."""
        endian = self.trace.endian
        t = self.events
        off_all = t.column("offset").to_numpy()
        len_all = t.column("length").to_numpy()
        jobs = []
        for ev, names in requests:
            fields = [f for f in (ev.field(n) for n in names) if f is not None and (ev.id, f.name) not in
                      self._field_cache]
            if fields:
                jobs.append((ev, fields, self.rows_of(ev.id)))
        if not jobs:
            return
        union = np.concatenate([r for _, _, r in jobs])
        which = np.concatenate([np.full(len(r), k, np.int32) for k, (_, _, r) in enumerate(jobs)])
        pos_in_event = np.concatenate([np.arange(len(r)) for _, _, r in jobs])
        parts: dict[tuple[int, str], list[pa.Array]] = {(ev.id, f.name): [] for ev, fs, _ in jobs for f in fs}
        order_parts: dict[int, list[np.ndarray]] = {k: [] for k in range(len(jobs))}
        off_u = off_all[union]
        for idx, base, block in self.store.blocks(off_u):
            w = which[idx]
            for k, (ev, fields, _r) in enumerate(jobs):
                sel = idx[w == k]
                if not len(sel):
                    continue
                order_parts[k].append(pos_in_event[sel])
                ro = off_u[sel] - base
                rl = len_all[union[sel]]
                for f in fields:
                    parts[(ev.id, f.name)].append(field_array(block, ro, rl, f, endian))
        for k, (ev, fields, r) in enumerate(jobs):
            got = np.concatenate(order_parts[k]) if order_parts[k] else np.zeros(0, np.int64)
            inv = np.empty(len(got), np.int64)
            inv[got] = np.arange(len(got))
            identity = bool(len(got) == len(r) and (np.diff(got) == 1).all() if len(got) > 1 else True)
            for f in fields:
                ps = parts[(ev.id, f.name)]
                if not ps:
                    arr = field_array(np.zeros(8, np.uint8), np.zeros(0, np.int64), np.zeros(0, np.int32), f,
                                      endian)
                else:
                    arr = ps[0] if len(ps) == 1 else pa.concat_arrays(ps)
                    if not identity:
                        arr = arr.take(pa.array(inv))
                self._field_cache[(ev.id, f.name)] = arr

    # -- loading ------------------------------------------------------------------------------
    def _cpu_bytes(self, cd: CpuData) -> tuple[int, int]:
        """(offset, size) of a CPU's data clipped to the file; records truncation."""
        fsize = self.trace.file_size
        end = min(cd.offset + cd.size, fsize)
        return cd.offset, max(0, end - cd.offset)

    def _load(self) -> None:
        """Decode every CPU's pages block by block (decompressing as it goes), keeping only columns.

        Blocks go in time order: by the raw timestamp of their first page (lowered to the smallest of
        the CPU's later blocks', so a CPU's blocks keep their order), ties to the lower CPU.  After
        each block, every record earlier than the next block's key is decoded: the row feed
        (``on_rows`` of the file, :mod:`.partial`) hands those rows out.

        Decompressed data is never held whole: each block (about LOAD_BLOCK_BYTES) is decoded, its
        records' common fields read, and dropped; payloads are re-read on demand through
        :attr:`store`.
        """
        tf = self.trace
        lay = tf.lay
        ps = self.page_size
        self.stats = []
        self.losses = []
        cols: _Columns | None = None
        self._hot = []
        for system, name, names in tf.hot_fields:
            ev = tf.formats.find(name, system)
            if ev is not None:
                fields = [f for f in (ev.field(n) for n in names) if f is not None]
                if fields:
                    self._hot.append((ev, fields, [], {f.name: [] for f in fields}))
        step = max(ps, (LOAD_BLOCK_BYTES // ps) * ps)
        self._feed = None
        if not self.compressed:
            whole = np.frombuffer(tf.buf, dtype=np.uint8)
            self.store = FlatStore(whole)
            spans = sorted((o, o + n, cd.cpu) for cd in self.cpu_data for o, n in [self._cpu_bytes(cd)] if n)
            for (_, end, c1), (start, _, c2) in zip(spans, spans[1:], strict=False):
                if start < end:  # trace-cmd writes each CPU's pages apart: this is a corrupt CPU table
                    raise CorruptSectionError(f"CPU {c2}'s data at byte {start} overlaps CPU {c1}'s (to byte "
                                              f"{end})", offset=start)
            sizes = [self._cpu_bytes(cd)[1] for cd in self.cpu_data]
            cols = _Columns(sizes)
            self._want_compiled = want_compiled((sum(sizes) // 8 + 1) * 8)
            keys: list[np.ndarray] = []
            blocks: list[tuple[int, int, int]] = []  # (key, slot, start in the CPU's data)
            usable = []
            for slot, cd in enumerate(self.cpu_data):
                off, size = self._cpu_bytes(cd)
                st = CpuStats(cd.cpu, cd.size, size, 0, 0, truncated_bytes=cd.size - size)
                usable.append(size - size % ps)
                st.truncated_bytes += size - usable[-1]
                self.stats.append(st)
                at = range(0, usable[-1], step)
                k = self._block_keys([self._first_page_ts(whole, off + a, off + min(usable[-1], a + step))
                                      for a in at], cd.cpu)
                keys.append(k)
                blocks += [(int(x), slot, a) for x, a in zip(k.tolist(), at, strict=True)]
            self._start_feed(cols, keys)
            for _key, slot, a in sorted(blocks):  # time order (a CPU's blocks stay in their order)
                off = self.cpu_data[slot].offset
                arr = whole[off + a: off + min(usable[slot], a + step)]
                self._decode_part(cols, self.stats[slot], arr, base=off + a, local0=a, cpu_base=off, slot=slot)
                self._block_done(len(arr))
            for st in self.stats:
                st.truncated_pages = -(-st.truncated_bytes // ps)
        else:
            tables = []
            for cd in self.cpu_data:
                if cd.size == 0:
                    tables.append(None)
                    continue
                # the chunk count precedes the `size` bytes the BUFFER option announces
                if cd.offset + 4 > tf.file_size:
                    z = np.zeros(0, np.int64)
                    tables.append(ChunkTable(z, z, z, truncated_at=cd.offset))
                    continue
                t = read_chunk_table(tf.buf, cd.offset, min(cd.offset + 4 + cd.size, tf.file_size), lay, ps,
                                     f"CPU {cd.cpu} data")
                if t.bad_at is not None:
                    if tf.strict:
                        raise CorruptSectionError(t.bad_reason, path=tf.path, section=f"buffer {self.name!r}",
                                                  offset=t.bad_at)
                    tf.warnings.append(f"buffer {self.name!r}: {t.bad_reason} at byte {t.bad_at}; "
                                       f"data from there on dropped")
                    self.losses.append(self._loss(LOSS_CORRUPT, cd.cpu, t.bad_at, f"{t.bad_reason}; the CPU's data "
                                                  f"from byte {t.bad_at} on dropped",
                                                  nbytes=max(0, cd.offset + 4 + cd.size - t.bad_at)))
                tables.append(t)
            self._chunks = dict(zip((cd.cpu for cd in self.cpu_data), tables, strict=True))
            present = [t for t in tables if t is not None]
            z = np.zeros(0, np.int64)
            fo = np.concatenate([t.file_offsets for t in present]) if present else z
            cs = np.concatenate([t.csizes for t in present]) if present else z
            us = np.concatenate([t.usizes for t in present]) if present else z
            ustarts = np.concatenate(([0], np.cumsum(us)[:-1])).astype(np.int64) if len(us) else z
            self.store = ChunkStore(tf.codec, tf.buf, fo, cs, us, ustarts)
            cols = _Columns([0 if t is None else int(t.usizes.sum()) for t in tables])
            self._want_compiled = want_compiled(int(us.sum()))
            k0 = 0
            work: list[tuple[int, int, int]] = []  # (CPU slot in ctx, first chunk, end chunk) in CPU order
            ctx: list[_CpuChunks] = []
            for slot, (cd, t) in enumerate(zip(self.cpu_data, tables, strict=True)):
                st = CpuStats(cd.cpu, cd.size, 0, 0, 0)
                self.stats.append(st)
                if t is None:
                    continue
                if t.truncated_at is not None:
                    st.truncated_bytes = max(0, cd.offset + 4 + cd.size - t.truncated_at)
                    if t.truncated_at + lay.compress_block.size <= tf.file_size:
                        _c, u = lay.compress_block.unpack_from(tf.buf, t.truncated_at)
                        st.truncated_pages = -(-u // ps) if u <= 16 * 10 * ps else 0
                    elif t.truncated_at < cd.offset + 4 + cd.size:
                        st.truncated_pages = 1
                n = len(t.usizes)
                local_starts = np.concatenate(([0], np.cumsum(t.usizes))).astype(np.int64)
                i = 0
                while i < n:
                    j = min(n, i + max(1, int(np.searchsorted(local_starts[i + 1:] - local_starts[i], step,
                                                              side="right"))))
                    work.append((len(ctx), i, j))
                    i = j
                ctx.append(_CpuChunks(cd, t, st, k0, int(ustarts[k0]) if n else 0, local_starts, slot))
                k0 += n
            # time order: each block's key is its first chunk's first page (decompressed here: one
            # chunk of ten pages per block, in the pool)
            first = list(decompress_pool().map(self._chunk_key, [ctx[c].k0 + i for c, i, _ in work]))
            keys = [np.zeros(0, np.int64) for _ in self.cpu_data]
            order = []
            for c, x in enumerate(ctx):  # work holds each CPU's blocks together, in ctx order
                mine = [w for w, (c2, _, _) in enumerate(work) if c2 == c]
                keys[x.slot] = k = self._block_keys([first[w] for w in mine], x.cd.cpu)
                order += [(int(v), x.slot, w) for v, w in zip(k.tolist(), mine, strict=True)]
            self._start_feed(cols, keys)
            self._decode_chunks(cols, [work[w] for _, _, w in sorted(order)], ctx)

        for st in self.stats:
            if st.truncated_bytes:
                tf.warnings.append(f"buffer {self.name!r} CPU {st.cpu}: file truncated, "
                                   f"{st.truncated_bytes} bytes of CPU data missing "
                                   f"({'at least ' if self.compressed else ''}{st.truncated_pages} pages lost)")
        self._note_losses()
        self._build_table(cols)
        feed, self._feed = self._feed, None
        if feed is not None:
            feed.finish(self._table)

    def _decode_chunks(self, cols: _Columns, work: list[tuple[int, int, int]], ctx: list[_CpuChunks]) -> None:
        """Decode compressed CPU data block by block, the pool decompressing up to :data:`AHEAD`
        blocks ahead while this thread decodes (zstd, zlib and the compiled decoder release the
        GIL: both cores work).  A block that does not decompress is salvaged chunk by chunk and ends
        its CPU's data (an error in strict mode); a cancel (``progress`` raising) or any error drops
        the blocks in flight and waits for their threads before it propagates."""
        tf = self.trace
        lay = tf.lay
        ps = self.page_size
        assert isinstance(self.store, ChunkStore)
        ahead: deque[PendingRange] = deque()
        nxt = 0
        dead: set[int] = set()  # CPUs whose data stopped at a chunk that does not decompress
        try:
            for c, i, j in work:
                while nxt < len(work) and len(ahead) < AHEAD:
                    c2, i2, j2 = work[nxt]
                    ahead.append(self.store.start_range(ctx[c2].k0 + i2, ctx[c2].k0 + j2, parts=1))
                    nxt += 1
                pend = ahead.popleft()
                if c in dead:
                    pend.cancel()
                    if self._feed is not None:
                        self._feed.skip(ctx[c].slot)
                    continue
                x = ctx[c]
                cd, t, st, k0, cpu_base, local_starts = x.cd, x.table, x.stats, x.k0, x.cpu_base, x.local_starts
                try:
                    arr = pend.result()
                except Exception:
                    dead.add(c)
                    arr, bad = self._salvage(k0, i, j)
                    if len(arr):
                        st.data_bytes += len(arr)
                        self._decode_part(cols, st, arr, base=cpu_base + int(local_starts[i]),
                                          local0=int(local_starts[i]), cpu_base=cpu_base, slot=x.slot)
                    elif self._feed is not None:
                        self._feed.skip(x.slot)
                    bad_at = int(t.file_offsets[bad]) - lay.compress_block.size
                    if tf.strict:
                        raise CorruptSectionError(f"CPU {cd.cpu} data: chunk does not decompress",
                                                  path=tf.path, section=f"buffer {self.name!r}",
                                                  offset=bad_at) from None
                    tf.warnings.append(f"buffer {self.name!r} CPU {cd.cpu}: chunk at byte {bad_at} "
                                       f"does not decompress; data after it dropped")
                    self.losses.append(self._loss(
                        LOSS_CORRUPT, cd.cpu, bad_at, f"the chunk at byte {bad_at} does not decompress; the "
                        f"CPU's data from there on dropped", pages=int(t.usizes[bad:].sum()) // ps,
                        nbytes=max(0, cd.offset + 4 + cd.size - bad_at)))
                    continue
                st.data_bytes += len(arr)
                self._decode_part(cols, st, arr, base=cpu_base + int(local_starts[i]),
                                  local0=int(local_starts[i]), cpu_base=cpu_base, slot=x.slot)
                del arr
                self._block_done(int(t.csizes[i:j].sum()) + (j - i) * lay.compress_block.size)
        finally:
            for pend in ahead:
                pend.cancel()

    def _first_page_ts(self, data: np.ndarray, start: int, end: int) -> int | None:
        """Raw timestamp of the first page in ``data[start:end]`` that holds records (the first
        16 pages looked at), the key of a block in the time-ordered decode; None when none does."""
        ps = self.page_size
        lay = self.trace.lay
        room = ps - self.trace.header_page.data_offset
        for p in range(start, min(end, start + 16 * ps) - ps + 1, ps):
            ts, commit = lay.page_header.unpack_from(data, p)
            if 0 < commit & COMMIT_MASK <= room:
                return int(ts)
        return None

    def _chunk_key(self, k: int) -> int | None:
        """:meth:`_first_page_ts` of chunk ``k`` of the store (None when it does not decompress)."""
        try:
            data = np.frombuffer(self.store._chunk_bytes(k), np.uint8)
        except Exception:
            return None
        return self._first_page_ts(data, 0, len(data))

    def _block_keys(self, raw: list[int | None], cpu: int) -> np.ndarray:
        """A CPU's block keys on the table's clock (int64: what the merge orders records by).

        Each is its first page's time converted (the int64 minimum where no page says: a lower
        bound is always safe), lowered to the smallest of the CPU's later blocks' keys, so it is a
        lower bound of every record the CPU has from that block on and a CPU's keys never decrease.
        Converted, not raw: a damaged page's time of 2**63 or more is a negative int64 that the merge
        puts first, and the time order of the decode must agree with the merge's."""
        none = np.array([r is None for r in raw], bool)
        known = np.array([0 if r is None else r for r in raw], np.uint64)
        k = np.array(self.trace.convert_ts(known, np.full(len(known), cpu, np.int16)), np.int64)
        k[none] = np.iinfo(np.int64).min
        return np.minimum.accumulate(k[::-1])[::-1].copy() if len(k) else k

    def _start_feed(self, cols: _Columns, keys: list[np.ndarray]) -> None:
        """The row feed of this load, when the file has a callback for rows (:mod:`.partial`)."""
        cb = getattr(self.trace, "on_rows", None)
        if cb is not None:
            self._feed = RowFeed(self, cb, self.trace.convert_ts, cols.arrays, [cd.cpu for cd in self.cpu_data],
                                 cols.starts, keys)

    def _loss(self, kind: str, cpu: int | None, offset: int, what: str, *, pages: int | None = None,
              nbytes: int | None = None, at_least: bool = False) -> DataLoss:
        return DataLoss(self.trace.path, kind, self.name, cpu, offset, what, pages=pages, bytes=nbytes,
                        at_least=at_least, compressed=self.compressed and nbytes is not None)

    def _note_losses(self) -> None:
        """One :class:`DataLoss` per CPU that lost data to the file's end or to corrupt pages (after
        the chunk losses recorded while loading), with the counts the file allows."""
        tf = self.trace
        fs = tf.file_size
        kind_of = "compressed data" if self.compressed else "data"
        li = self.lost_index
        for cd, st in zip(self.cpu_data, self.stats, strict=True):
            if st.bad_pages:
                b = st.bad_pages[0]
                at = self._file_offset(st.cpu, cd.offset, b)
                self.losses.append(self._loss(
                    LOSS_CORRUPT, st.cpu, at, f"{len(st.bad_pages)} corrupt page(s), the first (page {b.page}) at "
                    f"byte {at}: {b.reason}; the records after each fault dropped", pages=len(st.bad_pages)))
            if not st.truncated_bytes:
                continue
            start, end = cd.offset, cd.offset + cd.size + (4 if self.compressed else 0)
            if li is not None:  # a buffer found without its index: its CPUs' sizes are not known
                ran = f"; the buffer's data ran to byte {li.section_end}" if li.section_end else ""
                # the file's last CPU: the section's end is its end, so its missing bytes are known
                last = li.section_end is not None and st.cpu == tf.cpus - 1
                self.losses.append(self._loss(
                    LOSS_TRUNCATED, st.cpu, fs, f"file ends at byte {fs} inside CPU {st.cpu}'s {kind_of} (from byte "
                    f"{start}{ran})", pages=st.truncated_pages or None, nbytes=st.truncated_bytes if last else None,
                    at_least=True))
            elif end <= fs:  # not cut: the CPU's data is not a whole number of pages
                self.losses.append(self._loss(
                    LOSS_CORRUPT, st.cpu, start + st.data_bytes, f"CPU {st.cpu}'s {kind_of} (bytes {start}-{end}) "
                    f"ends with a partial page", pages=st.truncated_pages, nbytes=st.truncated_bytes))
            else:
                where = ", before" if fs <= start else " inside"
                self.losses.append(self._loss(
                    LOSS_TRUNCATED, st.cpu, fs, f"file ends at byte {fs}{where} CPU {st.cpu}'s "
                    f"{kind_of} (bytes {start}-{end})", pages=st.truncated_pages, nbytes=st.truncated_bytes,
                    at_least=self.compressed))

    def _block_done(self, file_bytes: int) -> None:
        """After each decoded block: the file pages read so far leave our RSS, progress is told."""
        drop_mapped_pages(self.trace.buf)
        if self.trace.progress is not None:
            self.trace.progress(file_bytes)

    def _salvage(self, k0: int, i: int, j: int) -> tuple[np.ndarray, int]:
        """Chunks ``i..j-1`` of a CPU one by one: (the good prefix, index of the first bad chunk)."""
        good = []
        for k in range(i, j):
            try:
                c = self.store._chunk_bytes(k0 + k)
                if len(c) != int(self.store.usizes[k0 + k]):
                    raise ValueError("short chunk")
            except Exception:
                return (np.concatenate(good) if good else np.zeros(0, np.uint8)), k
            good.append(np.frombuffer(c, np.uint8))
        return np.concatenate(good), j  # pragma: no cover (the range failed as a whole)

    def _decode_part(self, cols: _Columns, st: CpuStats, arr: np.ndarray, *, base: int,
                     local0: int, cpu_base: int, slot: int) -> None:
        """Decode whole pages ``arr`` of one CPU (at data offset ``base``; ``local0`` bytes into the
        CPU's data) and append their records' columns, common fields included, to its region
        ``slot``; the row feed (if any) hears of the block."""
        tf = self.trace
        ps = self.page_size
        n0 = cols.fill[slot]
        compiled = self._want_compiled and kernels_ready()
        if compiled:
            res = decode_into(arr, ps, tf.lay, tf.header_page.data_offset, base, cols.arrays, n0)
            k = res.n
            n_pages, partial, bad = res.n_pages, res.partial_page_bytes, res.bad_pages
            miss_idx, miss_val = res.miss_idx, res.miss_val
        else:
            dec = decode_pages(arr, ps, tf.lay, tf.header_page.data_offset)
            k = len(dec.ts)
            n_pages, partial, bad = dec.n_pages, dec.partial_page_bytes, dec.bad_pages
            nz = np.flatnonzero(dec.missed)  # sparse: almost every record has none
            miss_idx, miss_val = nz + n0, dec.missed[nz]
        page0 = local0 // ps
        for b in bad:
            b.page += page0
            b.offset += local0
        st.pages += n_pages
        st.events += k
        st.bad_pages.extend(bad)
        st.truncated_bytes += partial
        if bad and tf.strict:
            b = bad[0]
            raise CorruptSectionError(
                f"CPU {st.cpu} page {b.page}: {b.reason}"
                + ("" if not self.compressed else f" (byte {b.offset} of the decompressed data)"),
                path=tf.path, section=f"buffer {self.name!r} flyrecord",
                offset=self._file_offset(st.cpu, cpu_base, b))
        if bad:
            tf.warnings.append(f"buffer {self.name!r} CPU {st.cpu}: {len(bad)} corrupt page(s), "
                               f"first page {bad[0].page} at byte "
                               f"{self._file_offset(st.cpu, cpu_base, bad[0])}: "
                               f"{bad[0].reason}; records after each fault dropped")
        st.lost_events += int(miss_val[miss_val > 0].sum())
        st.lost_unknown_pages += int((miss_val < 0).sum())
        if len(miss_idx):
            cols.missed.append((miss_idx, miss_val))
        if compiled:
            cols.commit(slot, k)
            event_id = cols.arrays["eid"][n0:n0 + k]
            offset = cols.arrays["off"][n0:n0 + k] - base
            length = cols.arrays["len"][n0:n0 + k]
        else:
            event_id, pid, flags, preempt = common_fields(arr, dec.offset, dec.length, tf.lay)
            at = next(cd.offset for cd in self.cpu_data if cd.cpu == st.cpu)
            cols.add(slot, at, ts=dec.ts, off=dec.offset + base, len=dec.length, eid=event_id, pid=pid,
                     flags=flags, preempt=preempt)
            offset, length = dec.offset, dec.length
        for ev, fields, where, parts in self._hot:
            sel = np.flatnonzero(event_id == ev.id)
            if len(sel):
                where.append(sel + n0)
                for f in fields:
                    parts[f.name].append(field_array(arr, offset[sel], length[sel], f, tf.endian))
        if self._feed is not None:
            self._feed.block(slot, cols.arrays["ts"][n0:n0 + k])
            self._feed.emit(cols.fill)

    def _file_offset(self, cpu: int, base: int, bad: BadPage) -> int:
        """File offset of a bad page's fault: exact when uncompressed, else its chunk's header."""
        if not self.compressed:
            return base + bad.offset
        t = self._chunks.get(cpu)
        if t is None or not len(t.usizes):
            return next(cd.offset for cd in self.cpu_data if cd.cpu == cpu)
        k = int(np.searchsorted(np.cumsum(t.usizes), bad.offset, side="right"))
        return int(t.file_offsets[min(k, len(t.file_offsets) - 1)]) - self.trace.lay.compress_block.size

    def _store_hot(self, positions: Callable[[np.ndarray], np.ndarray]) -> None:
        """Put the fields extracted during decoding into the field cache, in final row order
        (``positions``: decode-order indices -> report-order rows)."""
        for ev, fields, where, parts in self._hot:
            src = np.concatenate(where) if where else np.zeros(0, np.int64)
            final = positions(src).astype(np.int64)
            o = np.argsort(final, kind="stable")
            self._rows_cache[ev.id] = final[o]
            take = pa.array(o)
            for f in fields:
                ps = parts[f.name]
                if ps:
                    arr = ps[0] if len(ps) == 1 else pa.concat_arrays(ps)
                else:
                    arr = field_array(np.zeros(8, np.uint8), np.zeros(0, np.int64), np.zeros(0, np.int32), f,
                                      self.trace.endian)
                self._field_cache[(ev.id, f.name)] = arr.take(take)
        self._hot = []

    def _merge_numpy(self, cols: _Columns, box: list[np.ndarray], starts: np.ndarray, ends: np.ndarray,
                     run_cpu: list[int], lut: np.ndarray, lost_src: np.ndarray, lost_val: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray]:
        """The merge with numpy: (lost rows, their counts, the columns in report order, the CPU column);
        ``box`` holds the converted ts column; run r is its decode indices ``starts[r]..ends[r]-1``."""
        ts = box.pop()
        merge = Merge([ts[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)], starts=starts)
        new_pos = merge.positions(lost_src).astype(np.int64)
        self._store_hot(merge.positions)
        o = np.argsort(new_pos, kind="stable")
        rows, lost_count = new_pos[o], lost_val[o]
        # the CPU column first, straight into report order: it is also the merge's label of every
        # row, from which each other column is scattered into place while its source is released
        cpu = np.empty(int((ends - starts).sum()), np.int16)
        unique = len(set(run_cpu)) == len(run_cpu)
        if not unique:  # a damaged CPU table names a CPU twice: label rows by run, then by CPU
            lut = np.arange(len(run_cpu), dtype=np.int64)
        merge.fill(cpu, np.array(run_cpu if unique else range(len(run_cpu)), np.int16))
        del merge
        release_free_memory()
        names = ("ts", "pid", "eid", "flags", "preempt", "off", "len")
        src = {"ts": ts, **{k: cols.pop(k) for k in names[1:]}}
        del ts
        if len(run_cpu) <= 1:
            a, b = (int(starts[0]), int(ends[0])) if len(run_cpu) else (0, 0)
            out = {k: v[a:b] for k, v in src.items()}
        else:
            out = scatter_merged(src, cpu, lut, None, starts=starts)
        del src
        if not unique:
            cpu = np.array(run_cpu, np.int16)[cpu]
        return rows, lost_count, out, cpu

    def _build_table(self, cols: _Columns | None) -> None:
        """Convert times and merge CPUs into report order.

        Compiled (:class:`CompiledMerge`): one pass merges and moves every column into place. With
        numpy (:meth:`_merge_numpy`): the CPU column is written in report order first; it labels
        every row with its run, and the other columns follow it into place chunk by chunk.  Either
        way the sources are released as they are consumed, so the peak stays near one copy of
        the table.
        """
        tf = self.trace
        if cols is None:
            cols = _Columns(0)
        # the merge: one compiled pass when the kernels are there (not while numba still compiles
        # them, the first run on a machine: that load stays on numpy throughout)
        self._compiled = self._want_compiled and kernels_ready()
        release_free_memory()  # the decode blocks' temporaries, before the merge needs room
        # per-CPU runs of records: each CPU's region of the columns, in slot order
        runs = cols.runs()
        run_cpu = [self.cpu_data[s].cpu for s, _, _ in runs]
        starts = np.array([a for _, a, _ in runs], np.int64)
        ends = np.array([b for _, _, b in runs], np.int64)
        take = cols.pop
        ts = take("ts")
        for c, a, b in zip(run_cpu, starts.tolist(), ends.tolist(), strict=True):
            conv = tf.convert_ts(ts[a:b], np.full(b - a, c, np.int16))
            if conv.ctypes.data != ts[a:].ctypes.data:  # converted into a new array: put it back
                ts[a:b] = conv.view(ts.dtype)
            del conv
        ts = ts.view(np.int64)
        sparse = cols.missed
        lost_src = np.concatenate([nz for nz, _ in sparse]) if sparse else np.zeros(0, np.int64)
        lost_val = np.concatenate([v for _, v in sparse]) if sparse else np.zeros(0, np.int64)
        names = ("ts", "pid", "eid", "flags", "preempt", "off", "len")
        lut = np.full(int(max(run_cpu, default=0)) + 1, -1, np.int64)
        lut[run_cpu] = np.arange(len(run_cpu))
        if self._compiled and len(run_cpu) > 1 and len(set(run_cpu)) == len(run_cpu):
            # one pass: merge, every column into place, the rows of the lost marks and hot records
            hot_src = [np.concatenate(where) for _, _, where, _ in self._hot if where]
            cm = CompiledMerge(starts, np.array(run_cpu, np.int16), np.concatenate([lost_src, *hot_src]), ends=ends)
            src = {"ts": ts, **{k: take(k) for k in names[1:]}}
            del ts
            out, cpu = cm.run(src)
            del src
            new_pos = cm.positions(lost_src)
            self._store_hot(cm.positions)
            o = np.argsort(new_pos, kind="stable")
            rows, lost_count = new_pos[o], lost_val[o]
        else:
            box = [ts]  # the callee holds the only reference, and lets go of it while it scatters
            del ts
            rows, lost_count, out, cpu = self._merge_numpy(cols, box, starts, ends, run_cpu, lut, lost_src, lost_val)
        out["cpu"] = cpu
        self._table = schema.events_table(ts=out.pop("ts"), cpu=out["cpu"], pid=out.pop("pid"),
                                          event_id=out.pop("eid"), flags=out.pop("flags"),
                                          preempt=out.pop("preempt"), offset=out.pop("off"), length=out.pop("len"))
        t = self._table
        self._lost = schema.lost_table(row=rows, ts=t.column("ts").to_numpy()[rows], cpu=out["cpu"][rows],
                                       count=lost_count)
