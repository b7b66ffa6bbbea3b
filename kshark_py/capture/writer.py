"""Write trace.dat files (v7 with zstd by default, v6 on request) the way trace-cmd 3.1.6 does.

Why its own writer and not a copy of trace-cmd's files: the recorder, the guest agent (which streams
a file's metadata to the host) and the host (which appends the guest's CPU data and time-sync options
to the file it received) all need to produce byte layouts that trace-cmd and our reader accept, and
each of those three needs a different slice of the file.  Every structure is packed with the reader's
own declarations (:mod:`kshark_py.loaders.layout`), so reader and writer cannot drift apart.

Facts: shared/spec/trace-dat-format.md (§2-8) and trace-cmd's `trace-output.c`:
* v7: initial header with the first options offset; sections HEADER_INFO, FTRACE_EVENTS,
  EVENT_FORMATS, KALLSYMS, PRINTK, CMDLINES (each announced by a u64 option), an options section
  ending in DONE (offset of the next options section, 0 = last), a flyrecord section per buffer
  (per-CPU data page aligned, compressed in chunks of 10 pages) followed by an options section with
  its BUFFER option, and STRINGS sections with the section descriptions.
* v6: the same metadata blocks back to back, u32 CPU count, ``options  `` + options + bare u16 0,
  ``flyrecord`` + per-CPU (offset, size) table + ``[clock]``, page-aligned raw CPU data.
"""

from __future__ import annotations

import contextlib
import io
import os
import platform
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..loaders.appendpoint import append_point
from ..loaders.errors import TraceDatError
from ..loaders.layout import (
    COMPRESSION_NONE,
    MAGIC,
    PAGES_IN_CHUNK,
    SECTION_FLAG_COMPRESSED,
    SECTION_NAMES,
    V6_TAG_FLYRECORD,
    V6_TAG_OPTIONS,
    Layouts,
    OptionId,
    layouts,
    pack_cstring,
)
from ..loaders.text import trace_clocks
from ..loaders.tracedat import open_trace

WRITER_VERSION = "kshark-py 0.1.0"
"""What we store in the VERSION option (trace-cmd stores its own version string there)."""

COPY_CHUNK = 1 << 20


class WriterError(Exception):
    """The writer was used out of order or given inconsistent input."""


# --- compression -------------------------------------------------------------------------------------
class Compressor:
    """One compression algorithm as trace-cmd names it in the file header."""

    def __init__(self, name: str) -> None:
        self.name = name
        if name == "zstd":
            import zstandard

            # trace-cmd writes frames without the content size (ZSTD_c_contentSizeFlag 0)
            self._zc = zstandard.ZstdCompressor(level=1, write_content_size=False)
            self.version = ".".join(map(str, zstandard.ZSTD_VERSION))
        elif name == "zlib":
            import zlib

            self._zlib = zlib
            self.version = zlib.ZLIB_VERSION
        else:
            raise WriterError(f"unknown compression {name!r} (zstd, zlib or none)")

    def compress(self, data: bytes) -> bytes:
        if self.name == "zstd":
            return self._zc.compress(data)
        return self._zlib.compress(data, 9)


# --- tracefs metadata --------------------------------------------------------------------------------
@dataclass
class Metadata:
    """What trace-cmd copies from tracefs and /proc into a file's metadata blocks."""

    header_page: bytes
    header_event: bytes
    ftrace_formats: list[bytes]
    event_formats: list[tuple[str, list[bytes]]]  # (system, format texts)
    kallsyms: bytes = b""
    printk: bytes = b""
    cmdlines: bytes = b""
    trace_clock: str = "[local]"
    uname: str = ""
    page_size: int = 4096
    long_size: int = 8  # the kernel's, from header_page (written as the "user long" too, as trace-cmd does on 64-bit)

    @property
    def clock(self) -> str:
        """The selected clock: the bracketed token of trace_clock."""
        clocks, selected = trace_clocks(self.trace_clock)
        return selected or (clocks[0] if clocks else "local")


def uname_text() -> str:
    """``sysname nodename release machine``, as trace-cmd's UNAME option."""
    u = platform.uname()
    return f"{u.system} {u.node} {u.release} {u.machine}"


def kernel_long_size(header_page: bytes) -> int:
    """The kernel long size from header_page's ``commit`` field (trace-cmd's tep_get_header_page_size)."""
    for line in header_page.decode(errors="replace").splitlines():
        if "commit;" in line and "size:" in line:
            try:
                return int(line.split("size:")[1].split(";")[0])
            except ValueError:
                break
    return 8


# --- option payloads ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TimeShiftSamples:
    """One vCPU's samples for the TIME_SHIFT option."""

    times: Sequence[int]
    offsets: Sequence[int]
    scalings: Sequence[int]
    fractions: Sequence[int] | None = None


def opt_string(text: str) -> bytes:
    return pack_cstring(text)


def opt_guest(lay: Layouts, name: str, trace_id: int, pids: Sequence[int]) -> bytes:
    """GUEST option: name, guest trace id, VCPU count, (vcpu, host pid) pairs (pid -1 over TCP)."""
    out = bytearray(pack_cstring(name) + lay.u64.pack(trace_id) + lay.u32.pack(len(pids)))
    for i, pid in enumerate(pids):
        out += lay.guest_vcpu.pack(i, pid)
    return bytes(out)


def opt_time_shift(lay: Layouts, peer_trace_id: int, flags: int, cpus: Sequence[TimeShiftSamples]) -> bytes:
    """TIME_SHIFT option as ``tracecmd_write_guest_time_shift()`` lays it out (fractions appended)."""
    out = bytearray(lay.time_shift_head.pack(peer_trace_id, flags, len(cpus)))
    for c in cpus:
        n = len(c.times)
        if not (len(c.offsets) == len(c.scalings) == n):
            raise WriterError("TIME_SHIFT: times/offsets/scalings of one CPU differ in length")
        out += lay.u32.pack(n)
        for arr in (c.times, c.offsets, c.scalings):
            out += b"".join(lay.i64.pack(v) for v in arr)
    for c in cpus:
        fr = c.fractions if c.fractions is not None else [0] * len(c.times)
        out += b"".join(lay.i64.pack(v) for v in fr)
    return bytes(out)


def opt_tsc2nsec(lay: Layouts, mult: int, shift: int, offset: int = 0) -> bytes:
    return lay.tsc2nsec.pack(mult, shift, offset)


def cpustat_text(cpu: int, stats: str) -> str:
    """CPUSTAT payload text: trace-cmd prefixes the per_cpu stats file with ``CPU: N``."""
    return f"CPU: {cpu}\n{stats}"


@dataclass
class CpuData:
    """One CPU's raw ring-buffer pages: a file (or a byte range of it)."""

    cpu: int
    path: str | os.PathLike
    offset: int = 0
    size: int | None = None  # None = to the end of the file

    def length(self) -> int:
        if self.size is not None:
            return self.size
        return max(0, os.path.getsize(self.path) - self.offset)


# --- the writer --------------------------------------------------------------------------------------
@dataclass
class _Option:
    oid: int
    payload: bytes
    written: bool = False


@dataclass
class TraceWriter:
    """Builds one trace.dat on a seekable binary file, in trace-cmd's order.

    Usage (local recording): ``write_initial_header(); write_metadata(meta); add_option(...)...;
    write_buffer("", clock, cpus)`` (v7: writes the first options section, the flyrecord section and
    its BUFFER options; v6: the options and the flyrecord block), then ``finish()``.
    """

    fh: BinaryIO
    version: int = 7
    compression: str | None = "zstd"
    page_size: int = 4096
    endian: str = "<"
    long_size: int = 8
    lay: Layouts = field(init=False)
    _comp: Compressor | None = field(init=False, default=None)
    _options: list[_Option] = field(init=False, default_factory=list)
    _strings: bytearray = field(init=False, default_factory=bytearray)
    _strings_base: int = field(init=False, default=0)
    _first_opts_field: int = field(init=False, default=-1)
    _last_done_field: int = field(init=False, default=-1)
    _options_written: bool = field(init=False, default=False)
    _cpu_count: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.version not in (6, 7):
            raise WriterError(f"file version {self.version} (6 or 7)")
        self.lay = layouts(self.endian, self.long_size)
        if self.version == 7 and self.compression and self.compression != COMPRESSION_NONE:
            self._comp = Compressor(self.compression)

    # -- low level
    def _tell(self) -> int:
        return self.fh.tell()

    def _write(self, data: bytes) -> None:
        self.fh.write(data)

    def _patch(self, pos: int, data: bytes) -> None:
        cur = self._tell()
        self.fh.seek(pos)
        self.fh.write(data)
        self.fh.seek(cur)

    def _add_string(self, text: str) -> int:
        off = self._strings_base + len(self._strings)
        self._strings += pack_cstring(text)
        return off

    def _section_start(self, sid: int, description: str, compress: bool, announce: bool) -> int:
        """Section header with a size placeholder; returns the position of the size field."""
        pos = self._tell()
        if announce:
            self.add_option(sid, self.lay.u64.pack(pos))
        flags = SECTION_FLAG_COMPRESSED if (compress and self._comp) else 0
        desc = self._add_string(description)
        self._write(self.lay.section_header.pack(sid, flags, desc & 0xFFFFFFFF, 0))
        return pos + self.lay.section_header.size - 8

    def _section_end(self, size_field: int) -> None:
        self._patch(size_field, self.lay.u64.pack(self._tell() - size_field - 8))

    def _write_body(self, body: bytes) -> None:
        """A section body: one compressed block (u32 C, u32 U, data) when the file is compressed."""
        if self._comp:
            c = self._comp.compress(body)
            self._write(self.lay.compress_block.pack(len(c), len(body)) + c)
        else:
            self._write(body)

    def _section(self, sid: OptionId, body: bytes, *, announce: bool = True) -> None:
        size_field = self._section_start(sid, SECTION_NAMES[sid], True, announce)
        self._write_body(body)
        self._section_end(size_field)

    # -- public steps
    def write_initial_header(self) -> None:
        lay = self.lay
        out = MAGIC + pack_cstring(str(self.version)) + bytes([0 if self.endian == "<" else 1, 8])
        out += lay.u32.pack(self.page_size)
        if self.version == 7:
            if self._comp:
                out += pack_cstring(self._comp.name) + pack_cstring(self._comp.version)
            else:
                out += pack_cstring(COMPRESSION_NONE) + pack_cstring("")
            self._write(out)
            self._first_opts_field = self._tell()
            self._write(lay.u64.pack(0))
        else:
            self._write(out)

    def write_metadata(self, meta: Metadata, *, cmdlines: bool = True) -> None:
        """Headers, ftrace and event formats, kallsyms, printk (and cmdlines unless told not to)."""
        lay = self.lay
        hdr = (b"header_page\0" + lay.u64.pack(len(meta.header_page)) + meta.header_page
               + b"header_event\0" + lay.u64.pack(len(meta.header_event)) + meta.header_event)
        ftrace = lay.u32.pack(len(meta.ftrace_formats)) + b"".join(
            lay.u64.pack(len(f)) + f for f in meta.ftrace_formats)
        ev = bytearray(lay.u32.pack(len(meta.event_formats)))
        for system, fmts in meta.event_formats:
            ev += pack_cstring(system) + lay.u32.pack(len(fmts))
            for f in fmts:
                ev += lay.u64.pack(len(f)) + f
        blocks = [(OptionId.HEADER_INFO, hdr), (OptionId.FTRACE_EVENTS, ftrace), (OptionId.EVENT_FORMATS, bytes(ev)),
                  (OptionId.KALLSYMS, lay.u32.pack(len(meta.kallsyms)) + meta.kallsyms),
                  (OptionId.PRINTK, lay.u32.pack(len(meta.printk)) + meta.printk)]
        for sid, body in blocks:
            if self.version == 7:
                self._section(sid, body)
            else:
                self._write(body)
        if cmdlines:
            self.write_cmdlines(meta.cmdlines)

    def write_cmdlines(self, text: bytes) -> None:
        body = self.lay.u64.pack(len(text)) + text
        if self.version == 7:
            self._section(OptionId.CMDLINES, body)
        else:
            self._write(body)

    def add_option(self, oid: int, payload: bytes) -> None:
        self._options.append(_Option(int(oid), payload))

    def add_string_option(self, oid: int, text: str) -> None:
        self.add_option(oid, opt_string(text))

    def add_standard_options(self, meta: Metadata, trace_id: int, cpustats: Sequence[str] | None = None,
                             *, version_text: str = WRITER_VERSION) -> None:
        """TRACECLOCK, UNAME, VERSION, TRACEID and one CPUSTAT per CPU, in trace-cmd's order."""
        self.add_string_option(OptionId.TRACECLOCK, meta.trace_clock.rstrip("\n") + "\n")
        self.add_string_option(OptionId.UNAME, meta.uname or uname_text())
        self.add_string_option(OptionId.VERSION, version_text)
        self.add_option(OptionId.TRACEID, self.lay.u64.pack(trace_id))
        for cpu, text in enumerate(cpustats or ()):
            self.add_string_option(OptionId.CPUSTAT, cpustat_text(cpu, text))

    def set_cpu_count(self, cpus: int) -> None:
        """CPUCOUNT (v7 option, v6 field): the number of CPUs the recording covered."""
        self._cpu_count = cpus
        if self.version == 7:
            self.add_option(OptionId.CPUCOUNT, self.lay.u32.pack(cpus))

    def write_options(self) -> None:
        """v7: an options section with every option not yet written; its DONE is chained later."""
        if self.version != 7:
            raise WriterError("write_options is for v7; v6 options are written by write_buffer")
        pending = [o for o in self._options if not o.written]
        pos = self._tell()
        if self._first_opts_field >= 0 and not self._options_written:
            self._patch(self._first_opts_field, self.lay.u64.pack(pos))
        elif self._last_done_field >= 0:
            self._patch(self._last_done_field, self.lay.u64.pack(pos))
        size_field = self._section_start(OptionId.DONE, SECTION_NAMES[OptionId.DONE], False, False)
        for o in pending:
            self._write(self.lay.option_header.pack(o.oid, len(o.payload)) + o.payload)
            o.written = True
        self._write(self.lay.option_header.pack(OptionId.DONE, 8))
        self._last_done_field = self._tell()
        self._write(self.lay.u64.pack(0))
        self._section_end(size_field)
        self._options_written = True

    def write_strings(self) -> None:
        """v7: a STRINGS section with the descriptions collected since the last one."""
        if self.version != 7:
            return
        self._add_string(SECTION_NAMES[OptionId.STRINGS])
        body = bytes(self._strings)
        self._strings_base += len(self._strings)
        self._strings.clear()
        pos = self._tell()
        flags = SECTION_FLAG_COMPRESSED if self._comp else 0
        # the description "strings" was the last string added
        desc = self._strings_base - len(pack_cstring(SECTION_NAMES[OptionId.STRINGS]))
        self._write(self.lay.section_header.pack(OptionId.STRINGS, flags, desc, 0))
        size_field = pos + self.lay.section_header.size - 8
        self._write_body(body)
        self._section_end(size_field)

    def _align(self) -> None:
        pos = self._tell()
        pad = (-pos) % self.page_size
        if pad:
            self._write(bytes(pad))

    def _copy_cpu(self, cpu: CpuData) -> int:
        """Copy (and compress in 10-page chunks) one CPU's pages at the current, aligned position.

        Returns the size trace-cmd stores for it: raw bytes, or for compressed data the sum of the
        chunk records without the leading u32 chunk count.
        """
        total = cpu.length()
        if total == 0:
            return 0
        with open(cpu.path, "rb") as src:
            src.seek(cpu.offset)
            if not self._comp:
                left = total
                while left:
                    buf = src.read(min(COPY_CHUNK, left))
                    if not buf:
                        raise WriterError(f"CPU {cpu.cpu}: {cpu.path} is shorter than announced")
                    self._write(buf)
                    left -= len(buf)
                return total
            count_pos = self._tell()
            self._write(self.lay.u32.pack(0))
            chunk = self.page_size * PAGES_IN_CHUNK
            count = 0
            written = 0
            left = total
            while left:
                raw = src.read(min(chunk, left))
                if not raw:
                    raise WriterError(f"CPU {cpu.cpu}: {cpu.path} is shorter than announced")
                left -= len(raw)
                c = self._comp.compress(raw)
                rec = self.lay.compress_block.pack(len(c), len(raw)) + c
                self._write(rec)
                written += len(rec)
                count += 1
            self._patch(count_pos, self.lay.u32.pack(count))
            return written

    def write_buffer(self, name: str, clock: str, cpus: Sequence[CpuData]) -> None:
        """The flyrecord data of one buffer (the top instance is name ``""``).

        v7: pending options section, flyrecord section, then an options section with the BUFFER
        option.  v6 (top buffer only): the CPU count, options and the flyrecord block.
        """
        if self.version == 6:
            self._write_v6_tail(clock, cpus)
            return
        if not self._options_written or any(not o.written for o in self._options):
            self.write_options()
        size_field = self._section_start(OptionId.BUFFER, f"buffer flyrecord {name}", True, False)
        section_pos = size_field - (self.lay.section_header.size - 8)
        entries = []
        for cd in sorted(cpus, key=lambda c: c.cpu):
            self._align()
            off = self._tell()
            size = self._copy_cpu(cd)
            if cd.length():
                entries.append((cd.cpu, off, size))
        self._section_end(size_field)
        lay = self.lay
        payload = (lay.u64.pack(section_pos) + pack_cstring(name) + pack_cstring(clock)
                   + lay.u32.pack(self.page_size) + lay.u32.pack(len(entries))
                   + b"".join(lay.buffer_cpu.pack(*e) for e in entries))
        self.add_option(OptionId.BUFFER, payload)
        self.write_options()

    def _write_v6_tail(self, clock: str, cpus: Sequence[CpuData]) -> None:
        lay = self.lay
        n = self._cpu_count or (max((c.cpu for c in cpus), default=-1) + 1)
        by_cpu = {c.cpu: c for c in cpus}
        self._write(lay.u32.pack(n))
        self._write(V6_TAG_OPTIONS)
        for o in self._options:
            self._write(lay.option_header.pack(o.oid, len(o.payload)) + o.payload)
            o.written = True
        self._write(lay.u16.pack(OptionId.DONE))
        self._write(V6_TAG_FLYRECORD)
        table = self._tell()
        self._write(bytes(lay.v6_cpu.size * n))
        clk = f"[{clock}]".encode()
        self._write(lay.u64.pack(len(clk)) + clk)
        entries = []
        for cpu in range(n):
            self._align()
            off = self._tell()
            cd = by_cpu.get(cpu)
            size = self._copy_cpu(cd) if cd else 0
            entries.append((off, size))
        self._patch(table, b"".join(lay.v6_cpu.pack(o, s) for o, s in entries))

    def finish(self) -> None:
        """Write whatever is pending (v7: last options, strings) and flush."""
        if self.version == 7:
            if any(not o.written for o in self._options):
                self.write_options()
            if self._strings:
                self.write_strings()
        self.fh.flush()


# --- appending to a received guest file ----------------------------------------------------------------
@dataclass
class V7FileState:
    """What is needed to append to an existing v7 file: layouts, compression, chain end, strings size."""

    lay: Layouts
    page_size: int
    compression: str | None
    last_done_field: int
    strings_size: int
    clock: str | None
    cpu_count: int | None
    trace_id: int | None
    long_size: int = 8
    """The guest kernel's long size (its header_page), which the appended pages are laid out with."""


def inspect_v7(path: str | os.PathLike) -> V7FileState:
    """Validate a v7 file we received with the loaders' reader and find where to append to it.

    The file came from a guest's agent, so any byte may be wrong: whatever the reader refuses (a cut
    header, a broken options chain, a damaged section) is a :class:`WriterError` naming the file.
    """
    try:
        with open_trace(path) as tf:
            if tf.version != 7:
                raise WriterError(f"{path}: only version 7 guest files can be completed (got version {tf.version})")
            point = append_point(tf)
            return V7FileState(tf.lay, tf.page_size, None if tf.compression == COMPRESSION_NONE else tf.compression,
                               point.last_done_field, point.strings_size, tf.meta.trace_clock,
                               tf.meta.cpu_count, tf.meta.trace_id, tf.header_page.long_size)
    except TraceDatError as e:
        raise WriterError(f"{path}: a damaged guest file, cannot append to it ({e})") from e


def append_to_v7(path: str | os.PathLike, *, buffer: tuple[str, str, Sequence[CpuData]] | None = None,
                 options: Iterable[tuple[int, bytes]] = ()) -> None:
    """Append a flyrecord buffer and/or options to a finished v7 file, chaining its last DONE.

    This is how the host completes a guest's file: the agent streamed header, metadata and a first
    options section; the host appends the CPU data (+ BUFFER option) and later TSC2NSEC/TIME_SHIFT.

    All or nothing: when the append fails (a full disk), the file is cut back to its old end and its
    DONE field restored, so it is again the file it was (and the data can be appended later).
    """
    st = inspect_v7(path)
    with open(path, "r+b") as f:
        end = f.seek(0, io.SEEK_END)
        f.seek(st.last_done_field)
        done = f.read(st.lay.u64.size)
        f.seek(end)
        try:
            w = TraceWriter(f, version=7, compression=st.compression, page_size=st.page_size,
                            endian=st.lay.endian, long_size=st.long_size)
            w._strings_base = st.strings_size
            w._options_written = True
            w._last_done_field = st.last_done_field
            for oid, payload in options:
                w.add_option(oid, payload)
            if buffer is not None:
                name, clock, cpus = buffer
                w.write_buffer(name, clock or st.clock or "local", cpus)
            w.finish()
            f.flush()
            os.fsync(f.fileno())  # a disk that fills on write-back fails here, while the file can be restored
        except BaseException:
            with contextlib.suppress(OSError):
                f.close()  # its buffered bytes cannot be written either: dropped with it
            fd = os.open(path, os.O_WRONLY)
            try:  # cut first (frees the appended bytes), then the DONE field rewritten in place
                os.ftruncate(fd, end)
                os.pwrite(fd, done, st.last_done_field)
            finally:
                os.close(fd)
            raise


def write_trace_file(path: str | os.PathLike, meta: Metadata, cpus: Sequence[CpuData], *, version: int = 7,
                     compression: str | None = "zstd", trace_id: int, cpu_count: int,
                     cpustats: Sequence[str] | None = None, extra_options: Iterable[tuple[int, bytes]] = (),
                     buffer_name: str = "", clock: str | None = None, sync: bool = False) -> None:
    """A whole local trace file, in trace-cmd's order (the recorder's one call).

    ``sync``: fsync before returning, so a disk that fills up or fails on write-back (delayed allocation,
    network file systems) raises here, while the caller still has the raw pages."""
    with open(Path(path), "w+b") as f:
        w = TraceWriter(f, version=version, compression=compression, page_size=meta.page_size,
                        long_size=meta.long_size)
        w.write_initial_header()
        w.write_metadata(meta, cmdlines=False)
        w.add_standard_options(meta, trace_id, cpustats)
        for oid, payload in extra_options:
            w.add_option(oid, payload)
        w.write_cmdlines(meta.cmdlines)
        w.set_cpu_count(cpu_count)
        w.write_buffer(buffer_name, clock or meta.clock, cpus)
        w.finish()
        if sync:
            os.fsync(f.fileno())


def metadata_stream(meta: Metadata, *, trace_id: int, cpu_count: int, version: int = 7,
                    compression: str | None = "zstd", extra_options: Iterable[tuple[int, bytes]] = ()) -> bytes:
    """The bytes a guest agent streams to the host (SEND_DATA): a v7 file up to its first options and strings.

    The last DONE is 0; the host appends the flyrecord section and patches it (see :func:`append_to_v7`).
    """
    if version != 7:
        raise WriterError("the agent streams version 7 files")
    buf = io.BytesIO()
    w = TraceWriter(buf, version=7, compression=compression, page_size=meta.page_size, long_size=meta.long_size)
    w.write_initial_header()
    w.write_metadata(meta, cmdlines=False)
    w.add_standard_options(meta, trace_id)
    for oid, payload in extra_options:
        w.add_option(oid, payload)
    w.write_cmdlines(meta.cmdlines)
    w.set_cpu_count(cpu_count)
    w.write_options()
    w.write_strings()
    return buf.getvalue()
