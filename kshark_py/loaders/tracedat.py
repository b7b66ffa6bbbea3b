"""Open a trace-cmd file (v6 or v7): headers, options, metadata sections and buffers.

Identification happens once, by hand, before any layout is trusted (magic, version, endianness,
long size, page size); then the v6 sequential layout or the v7 section/option chain is walked.
Opening reads only the index and the small metadata; each buffer's CPU data is decompressed and
decoded on first access (:meth:`Buffer.events`).  Every offset and size is checked against the
file before use and every failure is a :class:`~kshark_py.loaders.errors.TraceDatError` naming
the file, the section and the byte offset.

Damaged input, and what ``strict`` changes (``open_trace(path, strict=True)`` is the default):

* Header, options and metadata sections (magic, version, sizes, option records, event formats,
  kallsyms/printk/cmdlines): always a typed error, in both modes.  Opening raises for what opening
  reads; ``formats``/``kallsyms``/``printk``/``cmdlines`` raise on first access, so one bad block
  does not hide the others.
* A file that *ends early* inside the CPU data (truncated copy or download): never an error.  Each
  buffer loads every whole page (uncompressed) or every whole chunk (compressed) that is present;
  ``Buffer.stats[i].truncated_bytes`` / ``.truncated_pages`` say what is missing, and
  ``TraceFile.losses`` holds one typed :class:`~kshark_py.loaders.errors.DataLoss` per damaged CPU
  (with counts; what every front end shows) besides the older ``warnings`` strings.  In v7 the
  BUFFER option of a buffer is written *after* its data, so a v7 file cut inside its last buffer
  keeps its metadata but loses that buffer's index: the buffer's section is then found by walking
  the sections and its compressed chunks are read up to the cut
  (:meth:`TraceFile._recover_lost_buffers`; the loss of the index is a ``DataLoss`` too).
  trace-cmd 3.1.6 is stricter: a v6 file cut in its data is refused ("File possibly truncated",
  exit 22) and a v7 one prints nothing, exit 0.
* CPU data whose *contents lie* (a page commit larger than the page, an event running past the
  commit, a chunk that does not decompress or claims an impossible size):
  - ``strict=True``: opening and the metadata still work; the buffer's ``events``/``lost`` raise
    :class:`~kshark_py.loaders.errors.CorruptSectionError` with the file offset of the bad page
    (uncompressed) or of the header of the chunk holding it (compressed).
  - ``strict=False``: the records before the fault in a bad page are kept and the rest of that page
    dropped (a bad chunk drops the CPU's data from that chunk on); ``stats[i].bad_pages`` lists
    them and ``warnings`` counts them.
"""

from __future__ import annotations

import mmap
import os
import stat
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pyarrow as pa

from . import schema
from .compress import ChunkTable, Codec, decompress_block, get_codec, read_chunk_table
from .errors import (
    LOSS_CORRUPT,
    LOSS_INDEX,
    LOSS_TRUNCATED,
    BadMagicError,
    CorruptSectionError,
    DataLoss,
    FormatParseError,
    TraceDatError,
    TruncatedFileError,
    UnsupportedVersionError,
)
from .fields import field_array
from .formats import EventFormat, EventFormats, HeaderPage, parse_format, parse_header_page
from .layout import (
    MAGIC,
    SECTION_FLAG_COMPRESSED,
    SECTION_NAMES,
    SUPPORTED_VERSIONS,
    V6_TAG_FLYRECORD,
    V6_TAG_LATENCY,
    V6_TAG_LEN,
    V6_TAG_OPTIONS,
    Layouts,
    OptionId,
    cstring_at,
    layouts,
    unpack_at,
)
from .memory import drop_mapped_pages, forget_consumed, release_free_memory
from .metadata import Kallsyms, parse_cmdlines, parse_printk, saved_cmdline_entries
from .options import MAX_CPUS, BufferOption, CpuData, TraceMetadata, parse_option
from .pages import BadPage, decode_pages
from .store import BLOCK_BYTES, ChunkStore, FlatStore
from .text import decode, trace_clocks
from .timestamps import to_trace_time

MAX_OPTIONS_SECTIONS = 4096


@contextmanager
def _section(name: str):
    """Name the section in errors raised by helpers that do not know it (unpack_at, cstring_at...)."""
    try:
        yield
    except TraceDatError as e:
        e.with_context(section=name)
        raise
USECS_CLOCKS = ("local", "global", "uptime", "perf", "tsc2nsec", "tai")


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
    """Per-record columns filled block by block into arrays sized for the most records the data
    could hold (8 bytes each).  The untouched tail is never faulted in, so memory follows the records
    actually decoded, and no per-block pieces are kept or concatenated."""

    DTYPES = {"ts": np.uint64, "off": np.int64, "len": np.int32, "eid": np.int32, "pid": np.int32,
              "flags": np.uint8, "preempt": np.uint8}

    def __init__(self, data_bytes: int) -> None:
        cap = max(1, data_bytes // 8 + 1)
        self.arrays = {k: np.empty(cap, d) for k, d in self.DTYPES.items()}
        self.n = 0
        self.segments: list[tuple[int, int]] = []  # (cpu, records) per block, in decode order
        self.missed: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, cpu: int, at: int, **cols: np.ndarray) -> None:
        """Append one block's records of ``cpu`` (whose data starts at file byte ``at``)."""
        k = len(cols["ts"])
        a, b = self.n, self.n + k
        if b > len(self.arrays["ts"]):  # pragma: no cover (a record is at least 8 bytes)
            raise CorruptSectionError(f"CPU {cpu}: more records than the data can hold", offset=at)
        for name, arr in cols.items():
            self.arrays[name][a:b] = arr
        self.n = b
        self.segments.append((cpu, k))

    def pop(self, name: str) -> np.ndarray:
        """The filled part of a column; the accumulator lets go of it."""
        return self.arrays.pop(name)[: self.n]


class Buffer:
    """One tracing instance of a file (``""`` is the top instance) and its events, decoded lazily."""

    def __init__(self, tf: TraceFile, name: str, clock: str | None, page_size: int,
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
        self.store: FlatStore | ChunkStore | None = None
        """Record bytes by data offset (the ``offset`` column): see :mod:`.store`."""

    @property
    def cpu_count(self) -> int:
        """CPUs as trace-cmd counts them for this buffer (the file's count for the top buffer)."""
        ids = [c.cpu for c in self.cpu_data]
        n = max(ids) + 1 if ids else 0
        if self.name == "" or self.trace.version < 7:
            return max(n, self.trace.cpus)
        return n

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

    def payload(self, row: int) -> bytes:
        """The raw record bytes of event ``row`` (from common_type on)."""
        t = self.events
        off = int(t.column("offset")[row].as_py())
        ln = int(t.column("length")[row].as_py())
        return self.store.read(off, ln)

    def payloads(self, rows: np.ndarray) -> list[bytes]:
        off = self.events.column("offset").to_numpy()[rows]
        ln = self.events.column("length").to_numpy()[rows]
        return [self.store.read(o, n) for o, n in zip(off.tolist(), ln.tolist(), strict=True)]

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

        Decompressed data is never held whole: each block (about BLOCK_BYTES) is decoded, its
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
        step = max(ps, (BLOCK_BYTES // ps) * ps)
        if not self.compressed:
            whole = np.frombuffer(tf.buf, dtype=np.uint8)
            self.store = FlatStore(whole)
            spans = sorted((o, o + n, cd.cpu) for cd in self.cpu_data for o, n in [self._cpu_bytes(cd)] if n)
            for (_, end, c1), (start, _, c2) in zip(spans, spans[1:], strict=False):
                if start < end:  # trace-cmd writes each CPU's pages apart: this is a corrupt CPU table
                    raise CorruptSectionError(f"CPU {c2}'s data at byte {start} overlaps CPU {c1}'s (to byte "
                                              f"{end})", offset=start)
            cols = _Columns(sum(self._cpu_bytes(cd)[1] for cd in self.cpu_data))
            for cd in self.cpu_data:
                off, size = self._cpu_bytes(cd)
                st = CpuStats(cd.cpu, cd.size, size, 0, 0, truncated_bytes=cd.size - size)
                usable = size - size % ps
                st.truncated_bytes += size - usable
                self.stats.append(st)
                for a in range(0, usable, step):
                    arr = whole[off + a: off + min(usable, a + step)]
                    self._decode_part(cols, st, arr, base=off + a, local0=a, cpu_base=off)
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
            cols = _Columns(int(us.sum()))
            k0 = 0
            for cd, t in zip(self.cpu_data, tables, strict=True):
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
                cpu_base = int(ustarts[k0]) if n else 0
                local_starts = np.concatenate(([0], np.cumsum(t.usizes))).astype(np.int64)
                batches = []
                i = 0
                while i < n:
                    j = min(n, i + max(1, int(np.searchsorted(local_starts[i + 1:] - local_starts[i], step,
                                                              side="right"))))
                    batches.append((i, j))
                    i = j
                for i, j in batches:
                    try:
                        arr = self.store.decompress_range(k0 + i, k0 + j)
                    except Exception:
                        arr, bad = self._salvage(k0, i, j)
                        if len(arr):
                            st.data_bytes += len(arr)
                            self._decode_part(cols, st, arr, base=cpu_base + int(local_starts[i]),
                                              local0=int(local_starts[i]), cpu_base=cpu_base)
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
                        break
                    st.data_bytes += len(arr)
                    self._decode_part(cols, st, arr, base=cpu_base + int(local_starts[i]),
                                      local0=int(local_starts[i]), cpu_base=cpu_base)
                    del arr
                    self._block_done(int(t.csizes[i:j].sum()) + (j - i) * lay.compress_block.size)
                k0 += n

        for st in self.stats:
            if st.truncated_bytes:
                tf.warnings.append(f"buffer {self.name!r} CPU {st.cpu}: file truncated, "
                                   f"{st.truncated_bytes} bytes of CPU data missing "
                                   f"({'at least ' if self.compressed else ''}{st.truncated_pages} pages lost)")
        self._note_losses()
        self._build_table(cols)

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
                     local0: int, cpu_base: int) -> None:
        """Decode whole pages ``arr`` of one CPU (at data offset ``base``; ``local0`` bytes into the
        CPU's data) and append their records' columns, common fields included."""
        tf = self.trace
        lay = tf.lay
        ps = self.page_size
        dec = decode_pages(arr, ps, lay, tf.header_page.data_offset)
        page0 = local0 // ps
        for b in dec.bad_pages:
            b.page += page0
            b.offset += local0
        st.pages += dec.n_pages
        st.events += len(dec.ts)
        st.bad_pages.extend(dec.bad_pages)
        st.truncated_bytes += dec.partial_page_bytes
        if dec.bad_pages and tf.strict:
            b = dec.bad_pages[0]
            raise CorruptSectionError(
                f"CPU {st.cpu} page {b.page}: {b.reason}"
                + ("" if not self.compressed else f" (byte {b.offset} of the decompressed data)"),
                path=tf.path, section=f"buffer {self.name!r} flyrecord",
                offset=self._file_offset(st.cpu, cpu_base, b))
        if dec.bad_pages:
            tf.warnings.append(f"buffer {self.name!r} CPU {st.cpu}: {len(dec.bad_pages)} corrupt page(s), "
                               f"first page {dec.bad_pages[0].page} at byte "
                               f"{self._file_offset(st.cpu, cpu_base, dec.bad_pages[0])}: "
                               f"{dec.bad_pages[0].reason}; records after each fault dropped")
        m = dec.missed
        st.lost_events += int(m[m > 0].sum())
        st.lost_unknown_pages += int((m < 0).sum())
        # records are 4-byte aligned: read the common fields as two 32-bit words per record while
        # the block is in memory (sequential access)
        ln = dec.length
        words = arr[: len(arr) - len(arr) % 4].view(lay.np_u32)
        short = ln < 8
        widx = np.where(short, 0, dec.offset // 4)
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
        for ev, fields, where, parts in self._hot:
            sel = np.flatnonzero(event_id == ev.id)
            if len(sel):
                where.append(sel + cols.n)
                for f in fields:
                    parts[f.name].append(field_array(arr, dec.offset[sel], dec.length[sel], f, tf.endian))
        nz = np.flatnonzero(m)
        if len(nz):  # sparse: almost every record has none
            cols.missed.append((nz + cols.n, m[nz]))
        at = next(cd.offset for cd in self.cpu_data if cd.cpu == st.cpu)
        cols.add(st.cpu, at, ts=dec.ts, off=dec.offset + base, len=dec.length, eid=event_id, pid=pid, flags=flags,
                 preempt=preempt)

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

    def _build_table(self, cols: _Columns | None) -> None:
        """Convert times and merge CPUs into report order.

        The CPU column is written in report order first; it labels every row with its run, and
        the other columns follow it into place chunk by chunk while their sources are released
        (:func:`scatter_merged`), so the peak stays near one copy of the table.
        """
        tf = self.trace
        if cols is None:
            cols = _Columns(0)
        release_free_memory()  # the decode blocks' temporaries, before the merge needs room
        # per-CPU runs of records in decode order (a CPU's blocks are consecutive)
        run_cpu: list[int] = []
        run_len: list[int] = []
        for c, k in cols.segments:
            if k and run_cpu and run_cpu[-1] == c:
                run_len[-1] += k
            elif k:
                run_cpu.append(c)
                run_len.append(k)
        bounds = np.concatenate(([0], np.cumsum(run_len, dtype=np.int64))).astype(np.int64)
        take = cols.pop
        ts = take("ts")
        for c, a, b in zip(run_cpu, bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            conv = tf.convert_ts(ts[a:b], np.full(b - a, c, np.int16))
            if conv.ctypes.data != ts[a:].ctypes.data:  # converted into a new array: put it back
                ts[a:b] = conv.view(ts.dtype)
            del conv
        ts = ts.view(np.int64)
        merge = _Merge([ts[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
        sparse = cols.missed
        lost_src = np.concatenate([nz for nz, _ in sparse]) if sparse else np.zeros(0, np.int64)
        lost_val = np.concatenate([v for _, v in sparse]) if sparse else np.zeros(0, np.int64)
        new_pos = merge.positions(lost_src).astype(np.int64)
        self._store_hot(merge.positions)
        o = np.argsort(new_pos, kind="stable")
        rows, lost_count = new_pos[o], lost_val[o]
        # the CPU column first, straight into report order: it is also the merge's label of every
        # row, from which each other column is scattered into place while its source is released
        cpu = np.empty(int(bounds[-1]), np.int16)
        merge.fill(cpu, np.array(run_cpu, np.int16))
        del merge
        release_free_memory()
        names = ("ts", "pid", "eid", "flags", "preempt", "off", "len")
        src = {"ts": ts, **{k: take(k) for k in names[1:]}}
        del ts
        if len(run_cpu) <= 1:
            out = src
        else:
            lut = np.full(int(max(run_cpu)) + 1, -1, np.int64)
            lut[run_cpu] = np.arange(len(run_cpu))
            out = scatter_merged(src, cpu, lut, bounds)
        del src
        out["cpu"] = cpu
        self._table = schema.events_table(ts=out.pop("ts"), cpu=out["cpu"], pid=out.pop("pid"),
                                          event_id=out.pop("eid"), flags=out.pop("flags"),
                                          preempt=out.pop("preempt"), offset=out.pop("off"), length=out.pop("len"))
        t = self._table
        self._lost = schema.lost_table(row=rows, ts=t.column("ts").to_numpy()[rows], cpu=out["cpu"][rows],
                                       count=lost_count)


class _Merge:
    """trace-cmd's merge of per-CPU runs (see :func:`merge_order`) without a position per row.

    With few runs a record's place is its index in its run plus, from every other run, the
    records that go before it (``searchsorted``), computed on demand: for the few records whose
    places are needed one by one (lost-event marks, hot fields) and, a chunk at a time, to write
    each run's label into the merged order (:meth:`fill`).  No int32 per row is held (68 MB
    for 17 M events).  With many runs a stable sort of the running maxima gives the positions.
    """

    def __init__(self, segments: list[np.ndarray]) -> None:
        self.keys = []
        for seg in segments:
            if len(seg) > 1 and bool((seg[1:] < seg[:-1]).any()):
                seg = np.maximum.accumulate(seg)
            self.keys.append(seg)
        self.starts = np.concatenate(([0], np.cumsum([len(k) for k in self.keys], dtype=np.int64)))
        self.inv = merge_positions(self.keys) if len(self.keys) > 4 else None

    def _place(self, r: int, local: np.ndarray) -> np.ndarray:
        q = self.keys[r][local]
        pos = local.astype(np.int64)
        for s_, other in enumerate(self.keys):
            if s_ != r and len(other):
                pos += np.searchsorted(other, q, side="right" if s_ < r else "left")
        return pos

    def positions(self, src: np.ndarray) -> np.ndarray:
        """Report-order rows of decode-order indices ``src``."""
        src = np.asarray(src, np.int64)
        if self.inv is not None:
            return self.inv[src].astype(np.int64)
        out = np.empty(len(src), np.int64)
        run = np.searchsorted(self.starts, src, side="right") - 1
        for r in np.unique(run).tolist():
            sel = np.flatnonzero(run == r)
            out[sel] = self._place(r, src[sel] - self.starts[r])
        return out

    def fill(self, out: np.ndarray, values: np.ndarray, chunk: int = 1 << 20) -> None:
        """``out[row] = values[run of row]`` for every report-order row."""
        if self.inv is not None:
            for r, (a, b) in enumerate(zip(self.starts[:-1].tolist(), self.starts[1:].tolist(), strict=True)):
                for x in range(a, b, chunk):
                    out[self.inv[x:min(b, x + chunk)]] = values[r]
            self.inv = None
            return
        if not self.keys:
            return
        # the longest run takes every row the others do not: only the others are searched
        big = int(np.argmax([len(k) for k in self.keys]))
        out[:] = values[big]
        for r, k in enumerate(self.keys):
            if r == big:
                continue
            for a in range(0, len(k), chunk):
                out[self._place(r, np.arange(a, min(len(k), a + chunk)))] = values[r]


def scatter_merged(src: dict[str, np.ndarray], labels: np.ndarray, lut: np.ndarray, bounds: np.ndarray,
                   chunk: int = 1 << 20) -> dict[str, np.ndarray]:
    """Columns in decode order (runs at ``bounds``) -> report order, given each report-order row's
    run (``lut[labels[row]]``; ``lut`` is -1 for labels no run has).

    A merge never reorders a run, so the rows of run r in a chunk of the output take the next
    records of run r in order.  The output is filled front to back a chunk at a time, every
    column at once, and each source is released as it is consumed (see
    :func:`~.memory.forget_consumed`): the peak stays one copy of the table, with no position
    array.  The sources are dead afterwards.
    """
    out = {k: np.empty_like(v) for k, v in src.items()}
    nruns = len(bounds) - 1
    done = [int(x) for x in bounds[:-1]]
    n = len(labels)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        lab = lut[labels[a:b]]
        if nruns <= 8:
            groups = [(r, a + np.flatnonzero(lab == r)) for r in range(nruns)]
        else:
            o = np.argsort(lab, kind="stable")
            cs = np.concatenate(([0], np.cumsum(np.bincount(lab, minlength=nruns))))
            groups = [(r, a + o[cs[r]:cs[r + 1]]) for r in range(nruns)]
        for r, dest in groups:
            m = len(dest)
            if not m:
                continue
            lo = done[r]
            for k, col in src.items():
                out[k][dest] = col[lo:lo + m]
                forget_consumed(col, lo, lo + m)
            done[r] = lo + m
    return out


def merge_order(segments: list[np.ndarray]) -> np.ndarray:
    """Row order of trace-cmd's merge of per-CPU streams (``tracecmd_iterate_events_multi``).

    ``segments`` are the streams' timestamps in slot order (CPU order within a buffer; files then
    instances across buffers), concatenated in that order by the caller.  trace-cmd repeatedly
    takes the smallest head among the streams, ties going to the lower slot.  That equals a stable
    sort on each stream's running maximum of ts: a record that goes back in time stays behind its
    predecessor.
    """
    inv = merge_positions(segments)
    order = np.empty_like(inv)
    order[inv] = np.arange(len(inv), dtype=inv.dtype)
    return order


def merge_positions(segments: list[np.ndarray]) -> np.ndarray:
    """Where each record of the concatenated ``segments`` lands in the merged order (the inverse of
    :func:`merge_order`), as int32 when it fits.

    With few streams each record's place is its index in its stream plus, from every other stream,
    the records that go before it (``searchsorted``: ``<=`` for lower slots, ``<`` for higher), which
    needs no sort of the whole trace; with many streams a stable sort of the running maxima does it.
    """
    keys = []
    for seg in segments:
        if len(seg) > 1 and bool((seg[1:] < seg[:-1]).any()):
            seg = np.maximum.accumulate(seg)
        keys.append(seg)
    n = sum(len(k) for k in keys)
    dt = np.int32 if n < 2**31 else np.int64
    if not keys:
        return np.zeros(0, dt)
    if len(keys) > 4:
        order = np.argsort(np.concatenate(keys), kind="stable")
        inv = np.empty(n, dt)
        inv[order] = np.arange(n, dtype=dt)
        return inv
    inv = np.empty(n, dt)
    start = 0
    chunk = 1 << 20  # queries at a time: the int64 temporaries stay small
    for r, k in enumerate(keys):
        for a in range(0, len(k), chunk):
            q = k[a:a + chunk]
            pos = np.arange(a, a + len(q), dtype=np.int64)
            for s_, other in enumerate(keys):
                if s_ != r and len(other):
                    pos += np.searchsorted(other, q, side="right" if s_ < r else "left")
            inv[start + a:start + a + len(q)] = pos
        start += len(k)
    return inv


class TraceFile:
    """An opened trace.dat: header facts, typed options, metadata and buffers."""

    def __init__(self, path: str | os.PathLike, *, strict: bool = True) -> None:
        self.path = os.fspath(path)
        self.strict = strict
        self.warnings: list[str] = []
        self.hot_fields: list[tuple[str, str, list[str]]] = []
        """(system, event, fields) to extract while the data is decoded (one pass instead of a second
        decompression later); the results land in each buffer's field cache."""
        self.truncated_options: int | None = None
        """v7: offset of an options section the (truncated) file no longer holds, else None."""
        self.options_sections: list[int] = []
        """v7: file offsets of the options sections read, in chain order (the last one ends the chain)."""
        self.first_section: int | None = None
        """v7: file offset of the first section header (sections follow one another from there)."""
        self._file_losses: list[DataLoss] = []
        self.progress: Callable[[int], None] | None = None
        """Called after each decoded block with the file bytes it consumed (progress bars; it may
        raise to abandon the load, which leaves the buffer undecoded)."""
        self._fh = _open_regular(self.path)
        try:
            self.file_size = os.fstat(self._fh.fileno()).st_size
            if self.file_size == 0:
                raise TruncatedFileError("file is empty", path=self.path, section="file header", offset=0)
            self.buf = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
            self._parse()
        except TraceDatError as e:
            self.close()
            e.with_context(path=self.path)
            raise

    @property
    def losses(self) -> list[DataLoss]:
        """Everything found lost so far: known at open (a v7 buffer's lost index) and per decoded
        buffer (truncated or, with ``strict=False``, corrupt CPU data).  :meth:`decode_all` first
        gives the full list."""
        out = [*self._file_losses, *(x for b in getattr(self, "buffers", []) for x in b.losses)]
        # buffer by buffer (top first), its own record before its CPUs'
        return sorted(out, key=lambda x: (x.buffer is not None and x.buffer != "", x.buffer or "",
                                          x.cpu if x.cpu is not None else -1 if x.kind == LOSS_INDEX else 1 << 20))

    def decode_all(self) -> list[DataLoss]:
        """Decode every buffer (cached: the report, export or app that follows decodes nothing
        again) and return :attr:`losses`, complete."""
        for b in self.buffers:
            _ = b.events
        return self.losses

    def close(self) -> None:
        for b in getattr(self, "buffers", []):
            b.store = None
            b._table = None
        try:
            if getattr(self, "buf", None) is not None:
                self.buf.close()
        except BufferError:
            pass  # numpy views still alive; the mapping goes when they do
        self._fh.close()

    def __enter__(self) -> TraceFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- parsing ------------------------------------------------------------------------------
    def _parse(self) -> None:
        with _section("file header"):
            self._parse_file()

    def _parse_file(self) -> None:
        buf = self.buf
        head = bytes(buf[:len(MAGIC)])
        if head != MAGIC[:len(head)] or len(head) < len(MAGIC):
            if len(head) < len(MAGIC) and head == MAGIC[:len(head)]:
                raise TruncatedFileError("file ends inside the magic", section="file header", offset=len(head))
            raise BadMagicError("not a trace-cmd file (bad magic)", section="file header", offset=0)
        vtext, pos = cstring_at(buf, len(MAGIC), "version string", limit=len(MAGIC) + 16)
        if not vtext.isdigit():
            raise UnsupportedVersionError(f"version {vtext!r} is not a number", section="file header",
                                          offset=len(MAGIC))
        self.version = int(vtext)
        if self.version not in SUPPORTED_VERSIONS:
            raise UnsupportedVersionError(f"file version {self.version} (supported: 6, 7)",
                                          section="file header", offset=len(MAGIC))
        if pos + 6 > self.file_size:
            raise TruncatedFileError("file ends inside the header", section="file header", offset=pos)
        endian_byte, user_long = buf[pos], buf[pos + 1]
        if endian_byte not in (0, 1):
            raise CorruptSectionError(f"endianness byte {endian_byte} (must be 0 or 1)", section="file header",
                                      offset=pos)
        if user_long not in (4, 8):
            raise CorruptSectionError(f"long size {user_long} (must be 4 or 8)", section="file header",
                                      offset=pos + 1)
        self.endian = "<" if endian_byte == 0 else ">"
        self.user_long_size = user_long
        lay = layouts(self.endian, user_long)
        (self.page_size,) = unpack_at(lay.u32, buf, pos + 2, "page size")
        if self.page_size < 64 or self.page_size & (self.page_size - 1) or self.page_size > (1 << 24):
            raise CorruptSectionError(f"page size {self.page_size} is not a plausible power of two",
                                      section="file header", offset=pos + 2)
        pos += 6
        self.meta = TraceMetadata()
        self.sections: dict[int, bytes] = {}
        self._section_pos: dict[int, int] = {}
        """Metadata block -> file offset (v7: its section header; v6: the block itself)."""
        self._section_plain: set[int] = set()
        """Blocks stored as-is in the file (v6), whose inner offsets map 1:1 to file offsets."""
        self.compression = "none"
        self.compression_version = ""
        self.codec: Codec | None = None
        self.lay = lay
        if self.version >= 7:
            name_pos = pos
            self.compression, pos = cstring_at(buf, pos, "compression name", limit=pos + 64)
            self.compression_version, pos = cstring_at(buf, pos, "compression version", limit=pos + 64)
            self.codec = get_codec(self.compression, self.compression_version, path=self.path, offset=name_pos)
            (first_opts,) = unpack_at(lay.u64, buf, pos, "options offset")
            self.first_section = pos + 8  # sections follow one another from here (spec §5)
            self._parse_v7(first_opts)
        else:
            self._parse_v6(pos)
        # the kernel's long size (from header_page) decides the page layout
        with self._in_section(OptionId.HEADER_INFO):
            self.header_page = parse_header_page(self.header_page_text, user_long)
        if self.header_page.long_size not in (4, 8):
            raise CorruptSectionError(f"header_page commit size {self.header_page.long_size}",
                                      section="headers", offset=self._section_pos.get(OptionId.HEADER_INFO))
        hp = self.header_page
        if not 8 + hp.long_size <= hp.data_offset <= 64 or hp.data_offset % 4:
            raise CorruptSectionError(f"header_page data offset {hp.data_offset}", section="headers",
                                      offset=self._section_pos.get(OptionId.HEADER_INFO))
        self.lay = layouts(self.endian, self.header_page.long_size)
        self._make_buffers()

    def _section_body(self, offset: int, expect: int) -> bytes:
        """Read the body of the v7 section whose header is at ``offset`` (decompressing it)."""
        name = SECTION_NAMES.get(expect, f"section {expect}")
        with _section(name):
            return self._section_body_in(offset, expect, name)

    def _section_body_in(self, offset: int, expect: int, name: str) -> bytes:
        lay = self.lay
        sid, flags, _desc, size = unpack_at(lay.section_header, self.buf, offset, f"{name} section header")
        if sid != expect:
            raise CorruptSectionError(f"expected section id {expect}, found {sid}", section=name, offset=offset)
        start = offset + lay.section_header.size
        if start + size > self.file_size:
            raise TruncatedFileError(f"section of {size} bytes runs past the end of the "
                                     f"{self.file_size}-byte file", section=name, offset=offset)
        if flags & SECTION_FLAG_COMPRESSED:
            if self.codec is None:
                raise CorruptSectionError("compressed section in an uncompressed file", section=name,
                                          offset=offset)
            return decompress_block(self.codec, self.buf, start, start + size, lay, name)
        return bytes(self.buf[start:start + size])

    def _parse_v7(self, first_opts: int) -> None:
        lay = self.lay
        seen: set[int] = set()
        off = first_opts
        searched_to = first_opts  # the end of the last options section read (for "no HEADER_INFO")
        while off:
            if off in seen or len(seen) > MAX_OPTIONS_SECTIONS:
                raise CorruptSectionError("options sections form a loop", section="options", offset=off)
            if seen and self._options_cut(off):
                # v7 writes each buffer's options after its data: a file cut inside the data loses them
                self.warnings.append(f"file truncated: options section at byte {off} lies past the end of the "
                                     f"{self.file_size}-byte file; buffers described there are lost")
                self.truncated_options = off
                searched_to = self.file_size
                break
            seen.add(off)
            self.options_sections.append(off)
            body = self._section_body(off, OptionId.DONE)
            base = off + lay.section_header.size
            searched_to = base + len(body)
            off = self._parse_options(body, base, v7=True)
        for oid in (OptionId.HEADER_INFO, OptionId.FTRACE_EVENTS, OptionId.EVENT_FORMATS,
                    OptionId.KALLSYMS, OptionId.PRINTK, OptionId.CMDLINES):
            if oid in self.meta.section_offsets:
                self._section_pos[oid] = self.meta.section_offsets[oid]
                self.sections[oid] = self._section_body(self.meta.section_offsets[oid], oid)
        if OptionId.HEADER_INFO not in self.sections:
            raise CorruptSectionError(f"no HEADER_INFO section: no options section from byte {first_opts} "
                                      f"to byte {searched_to}, where the search ended, names one",
                                      section="options", offset=searched_to)
        with self._in_section(OptionId.HEADER_INFO):
            self.header_page_text, self.header_event_text, _ = _parse_header_info(
                self.sections[OptionId.HEADER_INFO], 0, lay, 0)
        self.cpus = self.meta.cpu_count or 0

    def _options_cut(self, off: int) -> bool:
        """Whether the (later) v7 options section at ``off`` is cut off by the end of the file.

        Its whole option records are read all the same (a buffer's BUFFER option comes first), so a
        file cut just after the index of its last buffer loses nothing but the rest of that section."""
        lay = self.lay
        start = off + lay.section_header.size
        if start > self.file_size:
            return True
        sid, flags, _d, size = lay.section_header.unpack_from(self.buf, off)
        if sid != OptionId.DONE or start + size <= self.file_size:
            return False  # whole (or not an options section at all: _section_body says so)
        if not flags & SECTION_FLAG_COMPRESSED:
            with _section("options"):
                self._parse_whole_options(self.buf[start:self.file_size], start)
        return True

    def _parse_whole_options(self, body, base: int) -> None:
        """The option records of a cut v7 options section that lie wholly in the file."""
        hdr = self.lay.option_header
        pos = 0
        while pos + hdr.size <= len(body):
            oid, size = hdr.unpack_from(body, pos)
            start = pos + hdr.size
            if oid == OptionId.DONE or start + size > len(body):
                return
            parse_option(self.meta, oid, bytes(body[start:start + size]), base + start, self.lay, self.version)
            pos = start + size

    def _parse_options(self, body: bytes, base: int, *, v7: bool) -> int:
        """Parse option records; returns the next options section offset (v7) or end offset (v6)."""
        with _section("options"):
            return self._parse_options_in(body, base, v7=v7)

    def _parse_options_in(self, body: bytes, base: int, *, v7: bool) -> int:
        lay = self.lay
        hdr = lay.option_header
        pos = 0
        while True:
            if v7:
                oid, size = unpack_at(hdr, body, pos, "option header", base=base)
            else:
                (oid,) = unpack_at(lay.u16, body, pos, "option id", base=base)
                if oid == OptionId.DONE:
                    return base + pos + 2
                oid, size = unpack_at(hdr, body, pos, "option header", base=base)
            start = pos + hdr.size
            if start + size > len(body):
                raise TruncatedFileError(f"option {oid} of {size} bytes runs past its section",
                                         section="options", offset=base + pos)
            payload = bytes(body[start:start + size])
            if v7 and oid == OptionId.DONE:
                (nxt,) = unpack_at(lay.u64, payload, 0, "DONE option", base=base + start)
                return nxt
            parse_option(self.meta, oid, payload, base + start, lay, self.version)
            pos = start + size

    def _parse_v6(self, pos: int) -> None:
        lay = self.lay
        buf = self.buf
        self._section_pos[OptionId.HEADER_INFO] = pos
        with _section("headers"):
            self.header_page_text, self.header_event_text, pos = _parse_header_info(buf, pos, lay, 0)
        start = pos
        with _section("ftrace events"):
            pos = _ftrace_entries(buf, pos, lay)[1]
        self.sections[OptionId.FTRACE_EVENTS] = bytes(buf[start:pos])
        self._section_pos[OptionId.FTRACE_EVENTS] = start
        start = pos
        with _section("events format"):
            pos = _format_entries(buf, pos, lay)[1]
        self.sections[OptionId.EVENT_FORMATS] = bytes(buf[start:pos])
        self._section_pos[OptionId.EVENT_FORMATS] = start
        self._section_plain.update(OptionId)
        for oid, sz in ((OptionId.KALLSYMS, lay.u32), (OptionId.PRINTK, lay.u32), (OptionId.CMDLINES, lay.u64)):
            self._section_pos[oid] = pos
            with _section(SECTION_NAMES[oid]):
                (n,) = unpack_at(sz, buf, pos, SECTION_NAMES[oid] + " size")
            end = pos + sz.size + n
            if end > self.file_size:
                raise TruncatedFileError(f"{n}-byte block runs past the end", section=SECTION_NAMES[oid],
                                         offset=pos)
            self.sections[oid] = bytes(buf[pos:end])
            pos = end
        with _section("flyrecord"):
            (self.cpus,) = unpack_at(lay.u32, buf, pos, "CPU count")
            pos += 4
            self._v6_top_offset = pos
            self._v6_top = self._read_v6_flyrecord(pos, top=True)

    def _read_v6_flyrecord(self, pos: int, *, top: bool) -> tuple[str, list[CpuData], str | None] | None:
        """Read ``[options] latency|flyrecord [cpu table] [clock]`` at ``pos`` (v6)."""
        lay = self.lay
        buf = self.buf
        tag = bytes(buf[pos:pos + V6_TAG_LEN])
        if len(tag) < V6_TAG_LEN:
            raise TruncatedFileError("file ends before the data tag", section="flyrecord", offset=pos)
        if tag.startswith(V6_TAG_OPTIONS[:7]):
            pos = self._parse_options(memoryview(buf)[pos + V6_TAG_LEN:], pos + V6_TAG_LEN, v7=False)
            tag = bytes(buf[pos:pos + V6_TAG_LEN])
        if tag.startswith(V6_TAG_LATENCY[:7]):
            self.latency_text = bytes(buf[pos + V6_TAG_LEN:]).decode("utf-8", "replace")
            return None
        if not tag.startswith(V6_TAG_FLYRECORD[:9]):
            raise CorruptSectionError(f"expected 'flyrecord' or 'latency', found {tag!r}", section="flyrecord",
                                      offset=pos)
        pos += V6_TAG_LEN
        cpus = self.meta.cpu_count if (self.meta.cpu_count and not top) else self.cpus
        if top and self.meta.cpu_count:
            cpus = self.cpus
        table = []
        for c in range(cpus):
            off, size = unpack_at(lay.v6_cpu, buf, pos, f"CPU {c} data entry")
            table.append(CpuData(c, off, size))
            pos += lay.v6_cpu.size
        clock = None
        if self.meta.trace_clock_text is not None:
            try:
                (n,) = unpack_at(lay.u64, buf, pos, "trace clock size")
                if pos + 8 + n <= self.file_size and n < 4096:
                    # "[local]"; text without both brackets names no clock (and need not be UTF-8)
                    text = bytes(buf[pos + 8:pos + 8 + n]).split(b"\0")[0].decode("utf-8", "replace")
                    clock = trace_clocks(text)[1]
            except TraceDatError:
                clock = None
        return "", table, clock

    def _make_buffers(self) -> None:
        self.buffers: list[Buffer] = []
        compressed = self.codec is not None
        if self.version >= 7:
            for b in self.meta.buffers:
                self._check_v7_buffer(b)
                ps = b.page_size or self.page_size
                self.buffers.append(Buffer(self, b.name, b.clock or self.meta.trace_clock, ps,
                                           list(b.cpus), compressed and self._buffer_compressed(b)))
            if self.truncated_options is not None:
                self._recover_lost_buffers()
        else:
            if getattr(self, "_v6_top", None) is not None:
                _, table, clock = self._v6_top
                self.buffers.append(Buffer(self, "", self.meta.trace_clock or clock, self.page_size, table, False))
            for b in self.meta.buffers:
                with _section(f"buffer {b.name!r} flyrecord"):
                    res = self._read_v6_flyrecord(b.section_offset, top=False)
                if res is not None:
                    self.buffers.append(Buffer(self, b.name, self.meta.trace_clock, self.page_size, res[1], False))
        # the top buffer first, as trace-cmd reports it
        self.buffers.sort(key=lambda b: b.name != "")
        # CPU data past the end of the file is a truncation: loading records it per CPU (stats, warnings)

    def _recover_lost_buffers(self) -> None:
        """v7 cut inside a buffer's data or its index: find its flyrecord section and read the CPUs.

        The BUFFER option (where each CPU's data lies) is written after the data, so it is gone,
        but the data is not: sections follow one another from the file header on, each sized by its
        header, so the buffer's flyrecord section is found by walking them.  Inside it trace-cmd put
        each CPU's data at the next page-aligned offset; compressed data starts with its chunk count
        and chunk sizes, so each CPU's extent is known and every whole chunk before the cut loads.
        Two things the index alone knew are assumed: the CPU numbers (file order 0, 1, ...; trace-cmd
        writes nothing for a CPU with no data, which would shift the later ones) and the names of
        instances after the top buffer (the first buffer section is the top buffer: trace-cmd writes
        it first).  Uncompressed data has no chunk headers, so with more than one CPU the boundary
        between CPUs is unknown and that buffer's data is reported lost rather than guessed.
        """
        lay = self.lay
        hdr = lay.section_header
        fs = self.file_size
        known = {b.section_offset for b in self.meta.buffers}
        names = {b.name for b in self.meta.buffers}
        pos = self.first_section
        found = []
        for _ in range(MAX_OPTIONS_SECTIONS):
            if pos is None or pos + hdr.size > fs:
                break
            sid, flags, _d, size = hdr.unpack_from(self.buf, pos)
            if sid > max(OptionId):
                break  # not a section header: the walk has lost its way
            if sid == OptionId.BUFFER and pos not in known:
                found.append((pos, flags, size))
            if size == 0 and sid == OptionId.BUFFER:
                break  # never given its size (the writer died): the rest of the file is its data
            pos += hdr.size + size
        if not found:
            x = self.truncated_options
            where = (f"inside the options section at byte {x} (its whole option records were read)"
                     if x + hdr.size <= fs else f", before the options section at byte {x}")
            self._file_losses.append(DataLoss(
                self.path, LOSS_INDEX, None, None, fs, f"file ends at byte {fs}{' ' if where[0] != ',' else ''}"
                f"{where}: whatever was written after it (more buffers, if any) is not in the file"))
            return
        unnamed = 0
        for sec, flags, size in found:
            if "" not in names:
                name = ""
            else:
                unnamed += 1
                name = f"(unnamed {unnamed})"
            names.add(name)
            li = LostIndex(sec, sec + hdr.size + size if size else None, self.truncated_options)
            compressed = bool(flags & SECTION_FLAG_COMPRESSED) and self.codec is not None
            cpus, note, missing = self._walk_lost_buffer(sec + hdr.size, li, compressed)
            self._file_losses.append(DataLoss(
                self.path, LOSS_INDEX, name, None, fs, f"file ends at byte {fs}, before the buffer's index "
                f"(trace-cmd writes it after the data, at byte {self.truncated_options}); {note}",
                bytes=None if cpus is not None else max(0, min(li.section_end or fs, fs) - sec - hdr.size)))
            for c in missing[:8]:
                self._file_losses.append(DataLoss(
                    self.path, LOSS_TRUNCATED, name, c, fs, f"file ends at byte {fs}, before CPU {c}'s data "
                    f"(the index that gave its size is lost too)"))
            if len(missing) > 8:  # one line for the rest of a many-CPU machine
                self._file_losses.append(DataLoss(
                    self.path, LOSS_TRUNCATED, name, None, fs, f"file ends at byte {fs}, before the data of CPUs "
                    f"{missing[8]}-{missing[-1]} (the index that gave their sizes is lost too)"))
            if cpus is not None:
                self.buffers.append(Buffer(self, name, self.meta.trace_clock, self.page_size, cpus, compressed, li))

    def _walk_lost_buffer(self, data_start: int, li: LostIndex, compressed: bool,
                          ) -> tuple[list[CpuData] | None, str, list[int]]:
        """The CPU extents of a buffer found without its index (see :meth:`_recover_lost_buffers`):
        (CPU data, or None if it cannot be split into CPUs; what was done, for the loss record; the
        CPUs of the file's CPU count that lie wholly past the end)."""
        ps = self.page_size
        fs = self.file_size
        end = min(li.section_end or fs, fs)
        ncpus = None if self.meta.cpu_count is None else min(self.meta.cpu_count, MAX_CPUS)

        def align(p: int) -> int:
            return (p + ps - 1) // ps * ps

        pos = align(data_start)
        if not compressed:
            if ncpus == 1:
                size = (li.section_end or fs) - pos
                return [CpuData(0, pos, max(0, size))], "CPU 0's pages read up to the end of the file", []
            return None, (f"its uncompressed CPU data (bytes {pos}-{end}) is not read: without the index nothing "
                          f"says where one CPU's pages end and the next's begin"), []
        cpus: list[CpuData] = []
        cpu = 0
        while ncpus is None or cpu < ncpus:
            pos = align(pos)
            if pos + 4 > end:
                break
            t = read_chunk_table(self.buf, pos, end, self.lay, ps, f"CPU {cpu} data")
            if t.truncated_at is None and t.bad_at is None:
                stop = int(t.file_offsets[-1] + t.csizes[-1]) if len(t.csizes) else pos + 4
                cpus.append(CpuData(cpu, pos, stop - pos - 4))
                pos = stop
                cpu += 1
                continue
            # the cut CPU: promise the rest of the section, so loading counts it as truncated there
            cpus.append(CpuData(cpu, pos, max(0, (li.section_end or fs) - pos - 4)))
            cpu += 1
            break
        missing = list(range(cpu, ncpus)) if ncpus is not None and cpu < ncpus else []
        whose = "1 CPU's" if len(cpus) == 1 else f"{len(cpus)} CPUs'"
        return cpus, f"{whose} data found by walking the chunks, numbered in file order", missing

    def _check_v7_buffer(self, b: BufferOption) -> None:
        sid, _flags, _d, _size = unpack_at(self.lay.section_header, self.buf, b.section_offset,
                                          "buffer section header")
        if sid != OptionId.BUFFER:
            raise CorruptSectionError(f"BUFFER option points at section id {sid}", section="options",
                                      offset=b.section_offset)
        if b.page_size is not None and (b.page_size < 64 or b.page_size & (b.page_size - 1)
                                        or b.page_size > (1 << 24)):
            raise CorruptSectionError(f"buffer {b.name!r} page size {b.page_size}", section="options",
                                      offset=b.section_offset)

    def _buffer_compressed(self, b: BufferOption) -> bool:
        _sid, flags, _d, _size = self.lay.section_header.unpack_from(self.buf, b.section_offset)
        return bool(flags & SECTION_FLAG_COMPRESSED)

    # -- metadata -------------------------------------------------------------------------------
    @cached_property
    def formats(self) -> EventFormats:
        """Every event format in the file (ftrace events and all systems)."""
        lay = self.lay
        events: list[EventFormat] = []
        ft = self.sections.get(OptionId.FTRACE_EVENTS)
        if ft:
            with self._in_section(OptionId.FTRACE_EVENTS):
                for _sys, text, at in _texts(ft, _ftrace_entries(ft, 0, lay)[0]):
                    events.append(_parse_format_checked(text, "ftrace", at))
        ev = self.sections.get(OptionId.EVENT_FORMATS)
        if ev:
            with self._in_section(OptionId.EVENT_FORMATS):
                for system, text, at in _texts(ev, _format_entries(ev, 0, lay)[0]):
                    events.append(_parse_format_checked(text, system, at))
        return EventFormats(events)

    @cached_property
    def kallsyms(self) -> Kallsyms:
        with self._in_section(OptionId.KALLSYMS):
            ks = Kallsyms(_sized_block(self.sections.get(OptionId.KALLSYMS), self.lay.u32))
        release_free_memory()  # the parse's many sub-MB temporaries came from the heap
        return ks

    @cached_property
    def printk(self) -> dict[int, str]:
        with self._in_section(OptionId.PRINTK):
            return parse_printk(_sized_block(self.sections.get(OptionId.PRINTK), self.lay.u32))

    @cached_property
    def cmdlines(self) -> dict[int, str]:
        with self._in_section(OptionId.CMDLINES):
            return parse_cmdlines(_sized_block(self.sections.get(OptionId.CMDLINES), self.lay.u64))

    @cached_property
    def cmdline_entries(self) -> list[tuple[int, str]]:
        """The saved cmdlines as written, in file order (for libtraceevent's registration order)."""
        with self._in_section(OptionId.CMDLINES):
            return saved_cmdline_entries(_sized_block(self.sections.get(OptionId.CMDLINES), self.lay.u64))

    @contextmanager
    def _in_section(self, oid: int):
        """Give errors raised while parsing a metadata block the file, the section and a file offset."""
        try:
            yield
        except TraceDatError as e:
            pos = self._section_pos.get(oid)
            if oid in self._section_plain and pos is not None and e.offset is not None:
                e.offset += pos
            elif pos is not None:
                if e.offset is not None:
                    e.message += f" (byte {e.offset} of the section body)"
                e.offset = pos
            e.with_context(path=self.path, section=SECTION_NAMES.get(oid))
            raise

    @property
    def trace_clock(self) -> str | None:
        if self.meta.trace_clock:
            return self.meta.trace_clock
        top = next((b for b in self.buffers if b.name == ""), None)
        return top.clock if top else None

    @property
    def in_usecs(self) -> bool:
        """Whether trace-cmd prints times as seconds.micro (a ns clock) or raw counts."""
        if self.meta.tsc2nsec is not None and self.meta.tsc2nsec.mult:
            return True
        clock = self.trace_clock
        if clock is None:
            return True
        return clock in USECS_CLOCKS or clock.startswith("mono")

    def convert_ts(self, raw: np.ndarray, cpu: np.ndarray, *, raw_ts: bool = False) -> np.ndarray:
        """Raw ring-buffer timestamps of this file -> the times trace-cmd prints (int64)."""
        m = self.meta
        return to_trace_time(raw, cpu, time_shift=m.time_shift, tsc2nsec=m.tsc2nsec,
                             ts_offset=m.ts_offset, raw_ts=raw_ts)

    def buffer(self, name: str = "") -> Buffer:
        for b in self.buffers:
            if b.name == name:
                return b
        raise KeyError(name)


def _open_regular(path: str):
    """Open ``path`` for reading; anything but a regular file is refused at once.

    Why not plain open(): open() of a FIFO waits for a writer forever (the app's File > Open and any
    script would hang, uncancellable); O_NONBLOCK returns at once, and fstat then says what it is.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise TraceDatError(f"cannot open: {e.strerror}", path=path) from e
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "a device")
        raise TraceDatError(f"cannot open: not a regular file ({kind})", path=path)
    return os.fdopen(fd, "rb")


def open_trace(path: str | os.PathLike, *, strict: bool = True) -> TraceFile:
    """Open a trace-cmd file.  ``strict=False`` loads past corrupt pages/chunks, noting them."""
    return TraceFile(path, strict=strict)


# -- metadata block helpers (same layout in v6 and v7 bodies) -------------------------------------

def _parse_header_info(buf, pos: int, lay: Layouts, base: int) -> tuple[str, str, int]:
    texts = []
    for label in (b"header_page", b"header_event"):
        name, p = cstring_at(buf, pos, "headers", base=base, limit=pos + 32)
        if name.encode() != label:
            raise CorruptSectionError(f"expected {label.decode()!r}, found {name!r}", section="headers",
                                      offset=base + pos)
        (n,) = unpack_at(lay.u64, buf, p, f"{name} size", base=base)
        p += 8
        if p + n > len(buf):
            raise TruncatedFileError(f"{name} text of {n} bytes runs past the end", section="headers",
                                     offset=base + p)
        texts.append(bytes(buf[p:p + n]).decode("utf-8", "replace"))
        pos = p + n
    return texts[0], texts[1], pos


def _ftrace_entries(buf, pos: int, lay: Layouts) -> tuple[list[tuple[str, int, int]], int]:
    """Walk an ftrace-events block (u32 count, then count x {u64 size, text}) starting at ``pos``:
    ([("ftrace", text offset, text size)...], end offset).  v6 uses the end, v7 the texts."""
    (count,) = unpack_at(lay.u32, buf, pos, "ftrace events count")
    pos += 4
    out = []
    for _ in range(count):
        (n,) = unpack_at(lay.u64, buf, pos, "ftrace event format size")
        pos += 8
        if pos + n > len(buf):
            raise TruncatedFileError("ftrace event format runs past the end", section="ftrace events", offset=pos)
        out.append(("ftrace", pos, n))
        pos += n
    return out, pos


def _format_entries(buf, pos: int, lay: Layouts) -> tuple[list[tuple[str, int, int]], int]:
    """Walk an event-systems block (u32 systems; per system: name, u32 count, count x {u64 size, text})."""
    (nsys,) = unpack_at(lay.u32, buf, pos, "event systems count")
    pos += 4
    out = []
    for _ in range(nsys):
        system, pos = cstring_at(buf, pos, "event system name", limit=pos + 256)
        (count,) = unpack_at(lay.u32, buf, pos, "event count")
        pos += 4
        for _ in range(count):
            (n,) = unpack_at(lay.u64, buf, pos, "event format size")
            pos += 8
            if pos + n > len(buf):
                raise TruncatedFileError("event format runs past the end", section="events format", offset=pos)
            out.append((system, pos, n))
            pos += n
    return out, pos


def _texts(buf, entries: list[tuple[str, int, int]]):
    """(system, format text, offset of the text in ``buf``) per entry."""
    for system, start, n in entries:
        yield system, decode(bytes(buf[start:start + n])), start  # print fmts keep their bytes (.text)


def _parse_format_checked(text: str, system: str, at: int) -> EventFormat:
    """parse_format, its errors located at the format text (``at``: the offset in the section body,
    which :meth:`TraceFile._in_section` turns into a file offset)."""
    try:
        return parse_format(text, system)
    except FormatParseError as e:
        if e.offset is None:
            e.offset = at
        raise


def _sized_block(block: bytes | None, size_struct) -> bytes:
    if not block:
        return b""
    (n,) = unpack_at(size_struct, block, 0, "block size")
    return block[size_struct.size:size_struct.size + n]


HeaderPage = HeaderPage  # re-exported for callers that type-annotate
