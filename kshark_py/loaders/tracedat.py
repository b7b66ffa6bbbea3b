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
from functools import cached_property

import numpy as np

from .buffer import Buffer, LostIndex
from .compress import Codec, decompress_block, get_codec, read_chunk_table
from .errors import (
    LOSS_INDEX,
    LOSS_TRUNCATED,
    BadMagicError,
    CorruptSectionError,
    DataLoss,
    TraceDatError,
    TruncatedFileError,
    UnsupportedVersionError,
)
from .formats import EventFormat, EventFormats, parse_header_page
from .layout import (
    MAGIC,
    SECTION_FLAG_COMPRESSED,
    SECTION_NAMES,
    SUPPORTED_VERSIONS,
    V6_TAG_FLYRECORD,
    V6_TAG_LATENCY,
    V6_TAG_LEN,
    V6_TAG_OPTIONS,
    OptionId,
    cstring_at,
    layouts,
    unpack_at,
)
from .loadcache import likely_hit
from .memory import release_free_memory
from .metablocks import format_entries, ftrace_entries, parse_format_checked, parse_header_info, sized_block, texts
from .metadata import Kallsyms, parse_cmdlines, parse_printk, saved_cmdline_entries
from .options import MAX_CPUS, BufferOption, CpuData, TraceMetadata, parse_option
from .pages import warm_up_for
from .partial import PartialRows
from .text import trace_clocks
from .timestamps import to_trace_time

__all__ = ["Buffer", "TraceFile", "open_trace"]


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
        self.on_rows: Callable[[PartialRows], None] | None = None
        """Called while a buffer decodes with its exact rows so far, in report order
        (:class:`~.partial.PartialRows`: the progressive view's list and rows; the last one of
        each buffer has ``done``), from the decoding thread; it may raise to abandon the load."""
        self._fh = _open_regular(self.path)
        try:
            self.file_size = os.fstat(self._fh.fileno()).st_size
            if self.file_size == 0:
                raise TruncatedFileError("file is empty", path=self.path, section="file header", offset=0)
            self.buf = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
            self._parse()
            if not likely_hit(self._fh.fileno(), self.path):  # a re-open from the load cache decodes nothing
                warm_up_for(self.file_size, self.codec is not None)  # the kernels load while formats parse
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
            self.header_page_text, self.header_event_text, _ = parse_header_info(
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
            self.header_page_text, self.header_event_text, pos = parse_header_info(buf, pos, lay, 0)
        start = pos
        with _section("ftrace events"):
            pos = ftrace_entries(buf, pos, lay)[1]
        self.sections[OptionId.FTRACE_EVENTS] = bytes(buf[start:pos])
        self._section_pos[OptionId.FTRACE_EVENTS] = start
        start = pos
        with _section("events format"):
            pos = format_entries(buf, pos, lay)[1]
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
                for _sys, text, at in texts(ft, ftrace_entries(ft, 0, lay)[0]):
                    events.append(parse_format_checked(text, "ftrace", at))
        ev = self.sections.get(OptionId.EVENT_FORMATS)
        if ev:
            with self._in_section(OptionId.EVENT_FORMATS):
                for system, text, at in texts(ev, format_entries(ev, 0, lay)[0]):
                    events.append(parse_format_checked(text, system, at))
        return EventFormats(events)

    @cached_property
    def kallsyms(self) -> Kallsyms:
        with self._in_section(OptionId.KALLSYMS):
            ks = Kallsyms(sized_block(self.sections.get(OptionId.KALLSYMS), self.lay.u32))
        release_free_memory()  # the parse's many sub-MB temporaries came from the heap
        return ks

    @cached_property
    def printk(self) -> dict[int, str]:
        with self._in_section(OptionId.PRINTK):
            return parse_printk(sized_block(self.sections.get(OptionId.PRINTK), self.lay.u32))

    @cached_property
    def cmdlines(self) -> dict[int, str]:
        with self._in_section(OptionId.CMDLINES):
            return parse_cmdlines(sized_block(self.sections.get(OptionId.CMDLINES), self.lay.u64))

    @cached_property
    def cmdline_entries(self) -> list[tuple[int, str]]:
        """The saved cmdlines as written, in file order (for libtraceevent's registration order)."""
        with self._in_section(OptionId.CMDLINES):
            return saved_cmdline_entries(sized_block(self.sections.get(OptionId.CMDLINES), self.lay.u64))

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
