"""Every byte layout of the trace.dat format, declared once.

The reader (`tracedat`, `options`, `pages`) parses with these declarations and capture's writer
builds files with the same objects, so no format string or magic offset lives anywhere else.
Facts: shared/spec/trace-dat-format.md (trace-cmd 3.1.6 `trace-input.c` / `trace-output.c`,
libtraceevent `kbuffer-parse.c`).

Layouts depend on two things read from the file's first bytes: the byte order and the size of a
kernel ``long``.  :func:`layouts` builds (and caches) the set for one combination.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .errors import TruncatedFileError

# --- initial header (endian-agnostic part, spec §2) ------------------------------------------------
MAGIC = b"\x17\x08\x44tracing"
"""``TRACECMD_MAGIC`` {23, 8, 68} followed by ASCII "tracing" (no NUL)."""
SUPPORTED_VERSIONS = (6, 7)

V6_TAG_LEN = 10
V6_TAG_OPTIONS = b"options  \0"
V6_TAG_LATENCY = b"latency  \0"
V6_TAG_FLYRECORD = b"flyrecord\0"

COMPRESSION_NONE = "none"
SECTION_FLAG_COMPRESSED = 1
"""Bit 0 of a v7 section header's flags: the body is one compressed block (spec §6.1)."""

PAGES_IN_CHUNK = 10
"""trace-cmd compresses flyrecord data in chunks of this many pages (spec §6.2)."""


class OptionId(enum.IntEnum):
    """Option ids (= v7 section ids) as in trace-cmd's ``enum tracecmd_file_options``."""

    DONE = 0
    DATE = 1
    CPUSTAT = 2
    BUFFER = 3
    TRACECLOCK = 4
    UNAME = 5
    HOOK = 6
    OFFSET = 7
    CPUCOUNT = 8
    VERSION = 9
    PROCMAPS = 10
    TRACEID = 11
    TIME_SHIFT = 12
    GUEST = 13
    TSC2NSEC = 14
    STRINGS = 15
    HEADER_INFO = 16
    FTRACE_EVENTS = 17
    EVENT_FORMATS = 18
    KALLSYMS = 19
    PRINTK = 20
    CMDLINES = 21
    BUFFER_TEXT = 22


SECTION_NAMES = {
    OptionId.DONE: "options",
    OptionId.BUFFER: "buffer flyrecord",
    OptionId.STRINGS: "strings",
    OptionId.HEADER_INFO: "headers",
    OptionId.FTRACE_EVENTS: "ftrace events",
    OptionId.EVENT_FORMATS: "events format",
    OptionId.KALLSYMS: "kallsyms",
    OptionId.PRINTK: "printk",
    OptionId.CMDLINES: "command lines",
    OptionId.BUFFER_TEXT: "buffer latency",
}

# --- ring-buffer pages (spec §9) ----------------------------------------------------------------
RB_TYPE_PADDING = 29
RB_TYPE_TIME_EXTEND = 30
RB_TYPE_TIME_STAMP = 31
RB_TYPE_DATA_MAX = 28
TS_SHIFT = 27
TS_MSB = 0xF8 << 56
COMMIT_MASK = (1 << 27) - 1
PAGE_MISSING_EVENTS = 1 << 31
PAGE_MISSING_STORED = 1 << 30
PAGE_FAULT_COMMIT = 0
"""A damaged page, as the compiled page walk reports it: its commit exceeds its data bytes (skipped)."""
PAGE_FAULT_ENTRY = 1
"""A damaged page, as the compiled page walk reports it: an entry runs past the commit (the rest is skipped)."""

# common_flags bits (libtraceevent event-parse.h TRACE_FLAG_*)
TRACE_FLAG_IRQS_OFF = 0x01
TRACE_FLAG_IRQS_NOSUPPORT = 0x02
TRACE_FLAG_NEED_RESCHED = 0x04
TRACE_FLAG_HARDIRQ = 0x08
TRACE_FLAG_SOFTIRQ = 0x10

# TIME_SHIFT flags (trace-cmd-private.h TRACECMD_TSYNC_FLAG_INTERPOLATE)
TSYNC_FLAG_INTERPOLATE = 0x1


@dataclass(frozen=True)
class Layouts:
    """The structures of one (byte order, kernel long size) combination."""

    endian: str  # "<" or ">"
    long_size: int  # 4 or 8

    u8: struct.Struct
    u16: struct.Struct
    u32: struct.Struct
    i32: struct.Struct
    u64: struct.Struct
    i64: struct.Struct
    long: struct.Struct
    # v7 section header: u16 id, u16 flags, u32 description (strings offset), u64 body size
    section_header: struct.Struct
    # option record header (v6 and v7): u16 id, u32 payload size
    option_header: struct.Struct
    # compressed block header (metadata section body, trace data chunk): u32 compressed, u32 raw
    compress_block: struct.Struct
    # BUFFER option (v7) CPU entry: u32 cpu id, u64 data offset, u64 data size
    buffer_cpu: struct.Struct
    # v6 flyrecord CPU table entry: u64 offset, u64 size
    v6_cpu: struct.Struct
    # TSC2NSEC option: u32 mult, u32 shift, u64 offset
    tsc2nsec: struct.Struct
    # GUEST option VCPU entry: u32 vcpu id, s32 host pid (-1 for network guests)
    guest_vcpu: struct.Struct
    # TIME_SHIFT option head: u64 peer trace id, u32 flags, u32 cpu count
    time_shift_head: struct.Struct
    # ring-buffer page header: u64 timestamp, long commit (+ flags)
    page_header: struct.Struct

    # numpy dtypes in file byte order, for vectorized decoding
    np_u16: np.dtype
    np_u32: np.dtype
    np_i32: np.dtype
    np_u64: np.dtype
    np_i64: np.dtype

    @property
    def page_data_offset(self) -> int:
        """Where events start in a page: after the u64 timestamp and the commit long."""
        return 8 + self.long_size


@lru_cache(maxsize=8)
def layouts(endian: str, long_size: int) -> Layouts:
    """The layouts for a file with byte order ``endian`` ('<'/'>') and kernel long ``long_size``."""
    if endian not in "<>" or len(endian) != 1:
        raise ValueError(f"endian must be '<' or '>', not {endian!r}")
    if long_size not in (4, 8):
        raise ValueError(f"long size must be 4 or 8, not {long_size}")
    e = endian
    lng = "Q" if long_size == 8 else "I"

    def s(fmt: str) -> struct.Struct:
        return struct.Struct(e + fmt)

    def d(code: str) -> np.dtype:
        return np.dtype(e + code)

    return Layouts(
        endian=e, long_size=long_size,
        u8=s("B"), u16=s("H"), u32=s("I"), i32=s("i"), u64=s("Q"), i64=s("q"), long=s(lng),
        section_header=s("HHIQ"), option_header=s("HI"), compress_block=s("II"),
        buffer_cpu=s("IQQ"), v6_cpu=s("QQ"), tsc2nsec=s("IIQ"), guest_vcpu=s("Ii"),
        time_shift_head=s("QII"), page_header=s("Q" + lng),
        np_u16=d("u2"), np_u32=d("u4"), np_i32=d("i4"), np_u64=d("u8"), np_i64=d("i8"),
    )


# --- bounded readers shared by every parser ----------------------------------------------------------

def unpack_at(st: struct.Struct, buf, offset: int, what: str, *, base: int = 0) -> tuple:
    """Unpack ``st`` at ``offset`` in ``buf``; a short buffer is a :class:`TruncatedFileError`.

    ``base`` is added to offsets in the error so messages give absolute file positions even when
    ``buf`` is a slice (an option payload, a decompressed section).
    """
    if offset < 0 or offset + st.size > len(buf):
        raise TruncatedFileError(f"{what}: needs {st.size} bytes, {max(0, len(buf) - offset)} left",
                                 offset=base + offset)
    return st.unpack_from(buf, offset)


def cstring_at(buf, offset: int, what: str, *, base: int = 0, limit: int | None = None) -> tuple[str, int]:
    """Read a NUL-terminated string at ``offset``; returns (text, offset after the NUL).

    The NUL must occur before ``limit`` (default: end of ``buf``): a string running off its
    enclosing payload is corruption, not something to read past.
    """
    end = len(buf) if limit is None else min(limit, len(buf))
    if offset > end:
        raise TruncatedFileError(f"{what}: string starts past the end", offset=base + offset)
    mv = bytes(buf[offset:end])
    nul = mv.find(b"\0")
    if nul < 0:
        raise TruncatedFileError(f"{what}: string is not NUL-terminated", offset=base + offset)
    return mv[:nul].decode("utf-8", "replace"), offset + nul + 1


def pack_cstring(text: str) -> bytes:
    """A string as the writer stores it: UTF-8 bytes plus NUL."""
    return text.encode() + b"\0"
