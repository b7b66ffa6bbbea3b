"""The metadata blocks of a trace.dat (same layout in v6 and v7 bodies): the header texts
(``header_page``, ``header_event``), the ftrace and event-system format lists, and size-prefixed
blocks (kallsyms, printk, cmdlines)."""

from __future__ import annotations

from .errors import CorruptSectionError, FormatParseError, TruncatedFileError
from .formats import EventFormat, PendingFormat, index_format
from .layout import Layouts, cstring_at, unpack_at
from .text import decode

__all__ = ["format_entries", "ftrace_entries", "parse_format_checked", "parse_header_info", "sized_block", "texts"]


def parse_header_info(buf, pos: int, lay: Layouts, base: int) -> tuple[str, str, int]:
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


def ftrace_entries(buf, pos: int, lay: Layouts) -> tuple[list[tuple[str, int, int]], int]:
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


def format_entries(buf, pos: int, lay: Layouts) -> tuple[list[tuple[str, int, int]], int]:
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


def texts(buf, entries: list[tuple[str, int, int]]):
    """(system, format text, offset of the text in ``buf``) per entry."""
    for system, start, n in entries:
        yield system, decode(bytes(buf[start:start + n])), start  # print fmts keep their bytes (.text)


def parse_format_checked(text: str, system: str, at: int) -> EventFormat | PendingFormat:
    """:func:`~.formats.index_format` (a text that parses may have its fields parsed on first use),
    its errors located at the format text (``at``: the offset in the section body, which
    :meth:`TraceFile._in_section` turns into a file offset)."""
    try:
        return index_format(text, system)
    except FormatParseError as e:
        if e.offset is None:
            e.offset = at
        raise


def sized_block(block: bytes | None, size_struct) -> bytes:
    if not block:
        return b""
    (n,) = unpack_at(size_struct, block, 0, "block size")
    return block[size_struct.size:size_struct.size + n]
