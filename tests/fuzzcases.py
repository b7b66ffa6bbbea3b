"""Fuzz cases for every path a trace file takes, shared by tests/test_fuzz.py and benchmarks/fuzz_long.py.

A case is ``(key, seed, index)``: a real file of ../shared/traces (``CORPUS[key]``) mutated by a
``random.Random`` seeded with that triple only, so a case is reproduced anywhere from its three values.
The mutations understand the file format (parsed here with :mod:`struct`, not with kshark_py, so a
bug in the reader cannot hide from its own fuzzer, and the other engineers' internal names may change):

- ``raw``: bit flips, overwritten spans, truncation, a duplicated span, 60% of them near a landmark
  (section and option headers, CPU tables, chunk and page headers).
- ``chunk`` (v7): a compressed chunk of ring-buffer pages is decompressed, its pages mutated (page
  header timestamp / commit, event headers, padding and time-extend records, data_loc words, event ids,
  dropped / duplicated / swapped pages), recompressed with the file's algorithm and spliced back with its
  sizes fixed, so it passes decompression and reaches the page decoder.  ``page`` does the same to the
  uncompressed pages of a v6 file.
- ``meta``: a metadata text (header_page/header_event, ftrace and event format texts, kallsyms, printk,
  cmdlines) is changed meaningfully: numbers, sizes, offsets, field types, print fmt conversions, event
  names and ids, deleted / duplicated / swapped lines, bytes that are not UTF-8; then re-serialized with
  its size prefixes fixed and recompressed when the section is compressed.
- ``option``: an option record's payload (text numbers, binary u32/u64 words, CPU entries of BUFFER,
  TIME_SHIFT and GUEST arrays), its id or its size.

Every splice that changes a length fixes the file's structure around it (section sizes, the CPU's data
size and every absolute offset after the splice: the header's options offset, DONE links, section
options, BUFFER offsets, v6 CPU tables), so the mutation is the only thing wrong with the file.

:func:`run_case` runs one case in a forked child (RLIMIT_AS, wall-clock timeout) and classifies it:
``clean`` (every path loaded), ``lenient-only:<class>`` (strict refused with a typed error, lenient
loaded), ``typed:<class>`` (a typed error even when lenient), ``crash:<class>`` (any other exception,
or a native signal: a bug), ``hang`` and ``blowup`` (MemoryError under the address-space limit).
The paths (:func:`exercise`): the reader strict and lenient (events, lost pages, formats, kallsyms,
printk, cmdlines, fields of the frequent event types), then for a lenient load: the app's load
(``model.loading.load_session``: Session, merge, prefetch, VCPU map, task runs), lost rows, ``report`` with
random -t/-R/--cpu (its first lines), the CLI ``report`` through ``main`` (output cut as by ``| head``),
Parquet export, info texts of random rows (the event list's BlockInfo) and the timeline model's render;
a fraction of cases also builds the event list's Qt table model on an offscreen QApplication.

Run directly (``python tests/fuzzcases.py --keys v7 --cases 5``) it prints one case's mutated file's
description; the runner with a table is benchmarks/fuzz_long.py.
"""

from __future__ import annotations

import contextlib
import gc
import io
import itertools
import json
import os
import random
import re
import resource
import select
import signal
import struct
import tempfile
import time
import traceback
import zlib
from collections.abc import Callable, Iterable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

try:
    import zstandard
except ImportError:  # pragma: no cover - a declared dependency of kshark_py
    zstandard = None

TRACES = Path(os.environ.get("KSHARK_TRACES", Path(__file__).resolve().parents[2] / "shared" / "traces"))
CORPUS: dict[str, tuple[tuple[Path, ...], int]] = {
    "v7": ((TRACES / "host-small-v7.dat",), 0),
    "v6": ((TRACES / "host-sched-v6.dat",), 0),
    "printk": ((TRACES / "host-printk.dat",), 0),
    "lost": ((TRACES / "host-lost-events.dat",), 0),
    "instances": ((TRACES / "host-instances.dat",), 0),
    "kvm": ((TRACES / "host-kvm.dat",), 0),
    "guest": ((TRACES / "vm-tsync" / "trace-vmguest.dat",), 0),
    "zlib": ((TRACES / "external" / "doc-test" / "trace.dat",), 0),
    "pair-host": ((TRACES / "vm-tsync" / "trace.dat", TRACES / "vm-tsync" / "trace-vmguest.dat"), 0),
    "pair-guest": ((TRACES / "vm-tsync" / "trace.dat", TRACES / "vm-tsync" / "trace-vmguest.dat"), 1),
    "badcomm": ((TRACES / "badcomm" / "badcomm.dat",), 0),
}
"""key -> (the files loaded together, index of the one mutated)."""

KINDS = ("raw", "chunk", "meta", "option")
KIND_WEIGHTS = (3, 3, 3, 2)

INTERESTING = (0, 1, 2, 3, 7, 8, 15, 16, 31, 32, 63, 64, 127, 128, 255, 256, 4095, 4096, 4097, 65535, 65536,
               2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1)


# --- the file's structure, parsed with struct ------------------------------------------------------------

MAGIC = b"\x17\x08Dtracing"
SECTION_OPTIONS = {16: "header_info", 17: "ftrace", 18: "formats", 19: "kallsyms", 20: "printk", 21: "cmdlines"}


@dataclass
class CpuData:
    buffer: str
    cpu: int
    offset: int
    size: int
    size_field: int | None
    """File position of the u64 that holds this CPU's data size (BUFFER option / v6 table), if any."""


@dataclass
class Section:
    """A v7 section: its header at ``offset`` (u16 id, u16 flags, u32 string, u64 size)."""

    offset: int
    sid: int
    flags: int
    size: int

    @property
    def content(self) -> int:
        return self.offset + 16


@dataclass
class Option:
    offset: int  # the record's u16 id
    oid: int
    size: int
    section: Section | None  # its v7 options section (None in v6)

    @property
    def payload(self) -> int:
        return self.offset + 6


@dataclass
class Layout:
    """What the mutators need to know of one file."""

    version: int
    page_size: int
    compression: str
    offset_fields: list[int] = field(default_factory=list)
    """Positions of u64 absolute file offsets (fixed when a splice moves what they point at)."""
    sections: list[Section] = field(default_factory=list)
    options: list[Option] = field(default_factory=list)
    cpu_data: list[CpuData] = field(default_factory=list)
    data_sections: dict[int, Section] = field(default_factory=dict)
    """v7: the flyrecord section holding each CPU data offset."""
    meta: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Metadata part -> (start, end) of its bytes (v7: the section's content; v6: the part's extent)."""
    landmarks: tuple[int, ...] = ()


def _cstr(data: bytes, pos: int) -> tuple[bytes, int]:
    end = data.index(b"\0", pos)
    return data[pos:end], end + 1


def _meta_extent(kind: str, data: bytes, pos: int) -> int:
    """End of one metadata part (v6 layout, or a v7 section's uncompressed content) starting at pos."""
    return _walk_meta(kind, data, pos)[1]


def decompress(comp: str, block: bytes, usize: int) -> bytes:
    if comp == "zstd":
        return zstandard.ZstdDecompressor().decompress(block, max_output_size=max(usize, 1))
    return zlib.decompressobj().decompress(block, usize)


def compress(comp: str, data: bytes) -> bytes:
    if comp == "zstd":
        return zstandard.ZstdCompressor(level=3).compress(data)
    return zlib.compress(data, 6)


def parse_layout(data: bytes) -> Layout:
    """The structure of a trace-cmd v6 or v7 file (little endian, as every corpus file)."""
    assert data.startswith(MAGIC)
    ver, pos = _cstr(data, 10)
    page_size = struct.unpack_from("<I", data, pos + 2)[0]
    pos += 6
    if int(ver) >= 7:
        return _parse_v7(data, pos, page_size)
    return _parse_v6(data, pos, page_size)


def _records(data: bytes, pos: int, end: int, section: Section | None) -> list[Option]:
    out = []
    while pos + 6 <= end and len(out) < 10000:
        oid, size = struct.unpack_from("<HI", data, pos)
        out.append(Option(pos, oid, size, section))
        if oid == 0:
            break
        pos += 6 + size
    return out


def _buffer_option(lay: Layout, data: bytes, opt: Option, v7: bool) -> list[tuple[str, int, int, int]]:
    """A BUFFER option's (name, cpu, offset, size-field position) entries; records its offset fields."""
    p = opt.payload
    lay.offset_fields.append(p)
    (at,) = struct.unpack_from("<Q", data, p)
    name, p = _cstr(data, p + 8)
    if not v7:
        return [("v6:" + name.decode("latin-1"), -1, at, -1)]
    _, p = _cstr(data, p)  # clock
    p += 4  # page size
    (ncpu,) = struct.unpack_from("<I", data, p)
    p += 4
    out = []
    for _ in range(ncpu):
        cpu, off, _size = struct.unpack_from("<IQQ", data, p)
        lay.offset_fields.append(p + 4)
        out.append((name.decode("latin-1"), cpu, off, p + 12))
        p += 20
    return out


def _parse_v7(data: bytes, pos: int, page_size: int) -> Layout:
    comp, pos = _cstr(data, pos)
    _, pos = _cstr(data, pos)
    lay = Layout(7, page_size, comp.decode())
    lay.offset_fields.append(pos)
    (nxt,) = struct.unpack_from("<Q", data, pos)
    first = pos + 8
    sec_at = first
    while sec_at + 16 <= len(data):  # every section, contiguous as trace-cmd writes them
        sid, flags, _, size = struct.unpack_from("<HHIQ", data, sec_at)
        if sid > 64 or sec_at + 16 + size > len(data):
            break
        lay.sections.append(Section(sec_at, sid, flags, size))
        sec_at += 16 + size
    by_off = {s.offset: s for s in lay.sections}
    seen = set()
    buffers = []
    while nxt and nxt not in seen and nxt in by_off:  # the options chain
        seen.add(nxt)
        sec = by_off[nxt]
        nxt = 0
        if sec.flags & 1:
            continue  # compressed options: not in the corpus
        for opt in _records(data, sec.content, sec.content + sec.size, sec):
            lay.options.append(opt)
            if opt.oid == 0:
                lay.offset_fields.append(opt.payload)
                (nxt,) = struct.unpack_from("<Q", data, opt.payload)
            elif opt.oid in SECTION_OPTIONS:
                lay.offset_fields.append(opt.payload)
                (at,) = struct.unpack_from("<Q", data, opt.payload)
                if at in by_off:
                    s = by_off[at]
                    lay.meta[SECTION_OPTIONS[opt.oid]] = (s.content, s.content + s.size)
            elif opt.oid == 3:
                buffers.append((opt, _buffer_option(lay, data, opt, True)))
            elif opt.oid == 22:  # BUFFER_TEXT: u64 offset, name
                lay.offset_fields.append(opt.payload)
    for opt, entries in buffers:
        (at,) = struct.unpack_from("<Q", data, opt.payload)
        for name, cpu, off, size_field in entries:
            (size,) = struct.unpack_from("<Q", data, size_field)
            lay.cpu_data.append(CpuData(name, cpu, off, size, size_field))
            if at in by_off:
                lay.data_sections[off] = by_off[at]
    _landmarks(lay, data)
    return lay


def _parse_v6(data: bytes, pos: int, page_size: int) -> Layout:
    lay = Layout(6, page_size, "none")
    for kind in ("header_info", "ftrace", "formats", "kallsyms", "printk", "cmdlines"):
        end = _meta_extent(kind, data, pos)
        lay.meta[kind] = (pos, end)
        pos = end
    (ncpu,) = struct.unpack_from("<I", data, pos)
    pos += 4
    tops = []
    while True:
        tag, nxt = _cstr(data, pos)
        if tag.startswith(b"options"):
            opts = _records(data, nxt, len(data), None)
            if opts and opts[-1].oid == 0:  # v6 ends the options with a bare u16 0
                opts.pop()
                pos = (opts[-1].offset + 6 + opts[-1].size if opts else nxt) + 2
            else:
                pos = nxt
            lay.options.extend(opts)
            for opt in opts:
                if opt.oid == 3:
                    for name, _, off, _ in _buffer_option(lay, data, opt, False):
                        tops.append((name, off))
        elif tag == b"flyrecord":
            tops.insert(0, ("", pos))
            break
        else:
            break
    for name, at in tops:
        p = at + 10
        for cpu in range(ncpu):
            if p + 16 > len(data):
                break
            off, size = struct.unpack_from("<QQ", data, p)
            lay.offset_fields.append(p)
            lay.cpu_data.append(CpuData(name, cpu, off, size, p + 8))
            p += 16
    _landmarks(lay, data)
    return lay


def chunk_headers(data: bytes, cd: CpuData) -> list[int]:
    """File positions of the ``u32 C, u32 U`` headers of one CPU's compressed chunks."""
    end = min(len(data), cd.offset + 4 + cd.size)  # the u32 chunk count precedes the announced size
    if cd.offset + 4 > end:
        return []
    (count,) = struct.unpack_from("<I", data, cd.offset)
    pos, out = cd.offset + 4, []
    for _ in range(count):
        if pos + 8 > end:
            break
        c, _ = struct.unpack_from("<II", data, pos)
        if pos + 8 + c > end:
            break
        out.append(pos)
        pos += 8 + c
    return out


def _landmarks(lay: Layout, data: bytes) -> None:
    marks = {0, len(data) - 1}
    marks.update(s.offset for s in lay.sections)
    marks.update(o.offset for o in lay.options)
    marks.update(lay.offset_fields)
    marks.update(start for start, _ in lay.meta.values())
    for cd in lay.cpu_data:
        marks.add(cd.offset)
        if lay.compression != "none":
            marks.update(chunk_headers(data, cd)[:20])
        else:
            marks.update(range(cd.offset, cd.offset + min(cd.size, 8 * lay.page_size), lay.page_size))
    lay.landmarks = tuple(sorted(m for m in marks if 0 <= m < len(data)))


# --- splicing with the structure kept consistent ---------------------------------------------------------

def splice(data: bytes, lay: Layout, start: int, end: int, new: bytes, size_fields: Iterable[tuple[int, str]] = ()
           ) -> bytes:
    """Replace ``data[start:end]`` by ``new``; add the length change to ``size_fields`` (position, struct
    format) and to every absolute offset at or after ``end``, so the rest of the file still lines up."""
    delta = len(new) - (end - start)
    d = bytearray(data)
    if delta:
        for p in lay.offset_fields:
            if start <= p < end or p + 8 > len(d):
                continue
            (v,) = struct.unpack_from("<Q", d, p)
            if v >= end:  # an earlier step may have made it huge: wrap as the u64 it is
                struct.pack_into("<Q", d, p, (v + delta) % (1 << 64))
        for p, fmt in size_fields:
            if start <= p < end or p + struct.calcsize(fmt) > len(d):  # an earlier step cut the file there
                continue
            (v,) = struct.unpack_from(fmt, d, p)
            struct.pack_into(fmt, d, p, max(0, v + delta) % (1 << (8 * struct.calcsize(fmt))))
    d[start:end] = new
    return bytes(d)


# --- mutations of texts, words and pages ----------------------------------------------------------------

FIELD_TYPES = (b"char", b"unsigned char", b"short", b"int", b"unsigned int", b"long", b"unsigned long", b"u8",
               b"u16", b"u32", b"u64", b"s64", b"bool", b"pid_t", b"void *", b"__data_loc char[]",
               b"__rel_loc char[]", b"struct foo", b"enum x", b"const char *", b"dma_addr_t", b"", b"int[4]")
FIELD_SUFFIXES = (b"", b"[0]", b"[4]", b"[16]", b"[TASK_COMM_LEN]", b"[-1]", b"[99999999999]", b"[")
CONVERSIONS = (b"%d", b"%u", b"%x", b"%s", b"%p", b"%pS", b"%ps", b"%pf", b"%pB", b"%c", b"%llx", b"%lu",
               b"%*s", b"%.*s", b"%-10s", b"%pM", b"%pI4", b"%pU", b"%%", b"%", b"%n", b"%ld", b"%#x", b"%pISpc")


def interesting(rng: random.Random, old: int | None = None) -> int:
    if old is not None and rng.random() < 0.4:
        return max(0, rng.choice([old + 1, old - 1, old * 2, old // 2, old + 4096, old ^ (1 << rng.randrange(32))]))
    return rng.choice(INTERESTING)


def mutate_text(rng: random.Random, text: bytes, kind: str) -> tuple[bytes, str]:
    """One meaningful change to a metadata text; returns (new text, what was done)."""
    lines = text.split(b"\n")
    ops = ["number", "number", "delete", "dup", "swap", "truncate", "nonutf8", "empty", "token"]
    if kind in ("formats", "ftrace", "header_info"):
        ops += ["ftype", "ftype", "fattr", "fattr", "printfmt", "printfmt", "nameid"]
    if kind == "kallsyms":
        ops += ["symline"]
    op = rng.choice(ops)
    if op == "number":
        nums = list(re.finditer(rb"-?(0x[0-9a-fA-F]+|\d+)", text))
        if nums:
            m = rng.choice(nums)
            digits = m.group(1)
            old = int(digits, 16) if digits.startswith(b"0x") else int(digits)
            new = interesting(rng, abs(old))
            if rng.random() < 0.15:
                new = -new
            rep = (hex(new) if m.group(1).startswith(b"0x") else str(new)).encode()
            if rng.random() < 0.05:
                rep = b"9" * rng.randint(19, 40)
            return text[:m.start()] + rep + text[m.end():], f"number {m.group(0)!r}@{m.start()} -> {rep!r}"
    if op in ("ftype", "fattr"):
        idx = [i for i, ln in enumerate(lines) if b"field:" in ln]
        if idx:
            i = rng.choice(idx)
            ln = lines[i]
            if op == "ftype":
                m = re.search(rb"field:([^;]*?)(\w+)((\[[^\]]*\])?);", ln)
                if m:
                    name = m.group(2) + rng.choice(FIELD_SUFFIXES)
                    new = b"field:" + rng.choice(FIELD_TYPES) + b" " + name + b";"
                    lines[i] = ln[:m.start()] + new + ln[m.end():]
                    return b"\n".join(lines), f"line {i}: field type -> {new!r}"
            else:
                attrs = list(re.finditer(rb"(offset|size|signed):(-?\d+)", ln))
                if attrs:
                    m = rng.choice(attrs)
                    v = interesting(rng, int(m.group(2)))
                    if rng.random() < 0.1:
                        v = -v
                    lines[i] = ln[:m.start(2)] + str(v).encode() + ln[m.end(2):]
                    return b"\n".join(lines), f"line {i}: {m.group(1)!r} -> {v}"
    if op == "printfmt":
        idx = [i for i, ln in enumerate(lines) if ln.startswith(b"print fmt:")]
        if idx:
            i = idx[0]
            ln = lines[i]
            sub = rng.randrange(6)
            convs = list(re.finditer(rb"%[-#0-9.*]*[a-zA-Z]+", ln))
            if sub == 0 and convs:
                m = rng.choice(convs)
                ln = ln[:m.start()] + rng.choice(CONVERSIONS) + ln[m.end():]
            elif sub == 1:
                recs = list(re.finditer(rb"REC->\w+", ln))
                if recs:
                    m = rng.choice(recs)
                    rep = rng.choice([b"", b"REC->nope", b"REC->", b"REC->" + m.group(0)[5:] + b"[9]", b"(", b"1/0"])
                    ln = ln[:m.start()] + rep + ln[m.end():]
            elif sub == 2:  # cut anywhere: unbalanced quotes and parentheses
                ln = ln[:rng.randrange(len(ln) + 1)]
            elif sub == 3:
                p = rng.randrange(len(ln) + 1)
                ln = ln[:p] + rng.choice([b"(", b")", b"\"", b",", b"?", b":", b"__print_symbolic(",
                                          b"__get_str(", b"__print_flags(REC->x, \"|\", {1,\"A\"})", b"sizeof(",
                                          b"*", b"<<63"]) + ln[p:]
            elif sub == 4:
                ln = (b"print fmt: \"" + b"%s" * rng.randint(1, 8) + b"\", "
                      + b", ".join([b"REC->x"] * rng.randint(0, 3)))
            else:
                ln = ln.replace(b"\"", b"", 1)
            lines[i] = ln
            return b"\n".join(lines), f"print fmt sub {sub}"
    if op == "nameid":
        idx = [i for i, ln in enumerate(lines) if ln.startswith((b"name:", b"ID:"))]
        if idx:
            i = rng.choice(idx)
            if lines[i].startswith(b"ID:"):
                lines[i] = b"ID: " + str(interesting(rng)).encode()
            else:
                lines[i] = b"name: " + rng.choice([b"", b"sched_switch", b"x" * 300, b"\xff\xfe", b"a b", b"print"])
            return b"\n".join(lines), f"line {i} -> {lines[i][:40]!r}"
    if op == "symline" and len(lines) > 1:
        i = rng.randrange(len(lines))
        lines[i] = rng.choice([b"", b"ffffffff81000000", b"zzzz T foo", b"ffffffffffffffff t x [mod]",
                               b"0 T \xff\xfe", lines[i] + b" extra", b"ffffffff81000000 T " + b"x" * 5000])
        return b"\n".join(lines), f"kallsyms line {i} -> {lines[i][:40]!r}"
    if op == "delete" and len(lines) > 1:
        i = rng.randrange(len(lines))
        k = rng.choice([1, 1, 1, 2, 5])
        del lines[i:i + k]
        return b"\n".join(lines), f"delete lines {i}..{i + k}"
    if op == "dup" and lines:
        i = rng.randrange(len(lines))
        lines[i:i] = [lines[i]] * rng.choice([1, 1, 3])
        return b"\n".join(lines), f"dup line {i}"
    if op == "swap" and len(lines) > 1:
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
        return b"\n".join(lines), f"swap lines {i} {j}"
    if op == "truncate":
        p = rng.randrange(len(text) + 1)
        return text[:p], f"truncate text at {p}"
    if op == "nonutf8" and text:
        p = rng.randrange(len(text))
        raw = rng.choice([b"\xff", b"\xc3", b"\x80\x80", b"\xed\xa0\x80", b"\0", b"\xfe\xff\xfe"])
        return text[:p] + raw + text[p:], f"insert {raw!r} at {p}"
    if op == "empty":
        return b"", "empty text"
    words = list(re.finditer(rb"\w+", text))
    if len(words) > 1:
        a, b = rng.choice(words), rng.choice(words)
        return text[:a.start()] + b.group(0) + text[a.end():], f"word {a.group(0)[:20]!r} -> {b.group(0)[:20]!r}"
    return text + b"\n", "newline"


def parse_meta(kind: str, content: bytes) -> list[list]:
    """A metadata part as a list of [fmt, bytes] items: fmt ``"<Q"``/``"<I"`` for a size-prefixed text,
    ``"cstr"`` for a NUL-terminated name, ``"u32"`` for a count, ``"tail"`` for what follows;
    :func:`build_meta` writes it back."""
    items, end = _walk_meta(kind, content, 0)
    items.append(["tail", content[end:]])
    return items


def _walk_meta(kind: str, content: bytes, pos: int) -> tuple[list[list], int]:
    """The items of one metadata part starting at ``pos`` (see :func:`parse_meta`) and its end."""
    items: list[list] = []

    def text(fmt: str) -> None:
        nonlocal pos
        (n,) = struct.unpack_from(fmt, content, pos)
        sz = struct.calcsize(fmt)
        items.append([fmt, content[pos + sz:pos + sz + n]])
        pos += sz + n

    def cstr() -> None:
        nonlocal pos
        s, pos = _cstr(content, pos)
        items.append(["cstr", s])

    def count() -> int:
        nonlocal pos
        (c,) = struct.unpack_from("<I", content, pos)
        items.append(["u32", c])
        pos += 4
        return c

    if kind == "header_info":
        for _ in range(2):
            cstr()
            text("<Q")
    elif kind == "ftrace":
        for _ in range(count()):
            text("<Q")
    elif kind == "formats":
        for _ in range(count()):
            cstr()
            for _ in range(count()):
                text("<Q")
    elif kind in ("kallsyms", "printk"):
        text("<I")
    else:
        text("<Q")
    return items, pos


def build_meta(items: list[list]) -> bytes:
    out = bytearray()
    for fmt, v in items:
        if fmt == "cstr":
            out += v + b"\0"
        elif fmt == "u32":
            out += struct.pack("<I", v % 2**32)
        elif fmt == "tail":
            out += v
        else:
            out += struct.pack(fmt, len(v)) + v
    return bytes(out)


def mutate_meta_items(rng: random.Random, kind: str, items: list[list]) -> str:
    """Change one item of a metadata part in place: a text (mostly), a name or a count."""
    texts = [i for i, (f, _) in enumerate(items) if f in ("<Q", "<I")]
    r = rng.random()
    if r < 0.08 and any(f == "u32" for f, _ in items):
        i = rng.choice([i for i, (f, _) in enumerate(items) if f == "u32"])
        old = items[i][1]
        items[i][1] = interesting(rng, old)
        return f"{kind} count {old} -> {items[i][1]}"
    if r < 0.14 and any(f == "cstr" for f, _ in items):
        i = rng.choice([i for i, (f, _) in enumerate(items) if f == "cstr"])
        items[i][1] = rng.choice([b"", b"\xff\xfe", b"sched", b"x" * 200, b"../..", items[i][1] + b"\x80"])
        return f"{kind} name {i} -> {items[i][1][:20]!r}"
    if r < 0.18 and len(texts) > 1:
        i = rng.choice(texts)
        del items[i]  # the count no longer matches
        return f"{kind} text {i} removed"
    if not texts:
        return "nothing"
    i = rng.choice(texts)
    items[i][1], what = mutate_text(rng, items[i][1], kind)
    return f"{kind} text {i}: {what}"


def page_mutation(rng: random.Random, pages: bytes, page_size: int) -> tuple[bytes, str]:
    """One change to a run of ring-buffer pages (page header, event headers, payload words, whole pages)."""
    d = bytearray(pages)
    npages = max(1, len(d) // page_size)
    pg = rng.randrange(npages) * page_size
    if len(d) < pg + 16:
        return bytes(d) + b"\0" * 8, "grew"
    op = rng.choice(["ts", "commit", "commit", "evhdr", "evhdr", "evhdr", "special", "dataloc", "eventid",
                     "flip", "drop", "dup", "swap", "cut", "zero"])
    events = []
    p = pg + 16
    (commit,) = struct.unpack_from("<Q", d, pg + 8)
    end = min(pg + 16 + (commit & 0xFFFFF), pg + page_size, len(d))
    while p + 4 <= end and len(events) < 64:
        (w,) = struct.unpack_from("<I", d, p)
        tl = w & 31
        events.append(p)
        if tl == 0:
            if p + 8 > end:
                break
            n = struct.unpack_from("<I", d, p + 4)[0]
            p += 8 + max(4, (n - 4 + 3) & ~3) if n >= 4 else 8
        elif tl <= 28:
            p += 4 + 4 * tl
        elif tl == 29:
            if p + 8 > end:
                break
            p += 8 + struct.unpack_from("<I", d, p + 4)[0]
        else:
            p += 8
    ev = rng.choice(events) if events else pg + 16
    if op == "ts":
        struct.pack_into("<Q", d, pg, rng.choice([0, 1, 2**63, 2**64 - 1, rng.getrandbits(64)]))
    elif op == "commit":
        v = rng.choice([0, 1, 16, page_size - 16, page_size, page_size + 1, 2**20 - 1,
                        (commit & 0xFFFFF) | (1 << rng.choice([30, 31])), (1 << 31) | (1 << 30), rng.getrandbits(64)])
        struct.pack_into("<Q", d, pg + 8, v)
    elif op == "evhdr" and ev + 4 <= len(d):
        (w,) = struct.unpack_from("<I", d, ev)
        tl = rng.choice([0, 1, 2, 5, 27, 28, 29, 30, 31, rng.randrange(32)])
        delta = rng.choice([w >> 5, 0, (1 << 27) - 1, rng.getrandbits(27)])
        struct.pack_into("<I", d, ev, (delta << 5) | tl)
    elif op == "special" and ev + 8 <= len(d):
        tl = rng.choice([29, 30, 31, 0])
        struct.pack_into("<II", d, ev, (rng.getrandbits(27) << 5) | tl, rng.choice(INTERESTING) % 2**32)
    elif op == "dataloc" and ev + 16 <= len(d):
        at = ev + 4 * rng.randint(2, 8)
        if at + 4 <= len(d):
            size = rng.choice([0, 1, 16, 300, 4096, 65535])
            struct.pack_into("<I", d, at, (size << 16) | rng.choice([0, 8, 24, 60, 4000, 65535]))
    elif op == "eventid" and ev + 10 <= len(d):
        struct.pack_into("<H", d, ev + 8 if d[ev] & 31 == 0 else ev + 4, rng.choice([0, 1, 65535, rng.randrange(2000)]))
    elif op == "flip":
        for _ in range(rng.randint(1, 8)):
            q = min(len(d) - 1, ev + rng.randrange(64)) if rng.random() < 0.7 else rng.randrange(len(d))
            d[q] ^= 1 << rng.randrange(8)
    elif op == "drop" and npages > 1:
        del d[pg:pg + page_size]
    elif op == "dup":
        d[pg:pg] = d[pg:pg + page_size]
    elif op == "swap" and npages > 1:
        q = rng.randrange(npages) * page_size
        a, b = bytes(d[pg:pg + page_size]), bytes(d[q:q + page_size])
        d[pg:pg + page_size], d[q:q + page_size] = b, a
    elif op == "cut":
        del d[rng.randrange(len(d)):]
    elif op == "zero":
        d[pg:pg + page_size] = bytes(len(d[pg:pg + page_size]))
    else:
        d[pg + 16] ^= 1
        op = "flip1"
    return bytes(d), f"page {pg // page_size} {op} at {ev - pg}"


# --- the four mutators ------------------------------------------------------------------------------------

def mutate_raw(rng: random.Random, data: bytes, lay: Layout) -> tuple[bytes, str]:
    n = len(data)
    if n == 0:  # an earlier step truncated the file to nothing: no byte to flip or cut
        return data, "raw nothing (empty file)"
    lm = lay.landmarks

    def pos() -> int:
        if rng.random() < 0.6:
            return min(n - 1, max(0, rng.choice(lm) + rng.randint(-8, 80)))
        return rng.randrange(n)

    d = bytearray(data)
    kind = rng.choice(["flip", "span", "truncate", "dup"])
    if kind == "flip":
        flips = [(pos(), rng.randrange(8)) for _ in range(rng.randint(1, 6))]
        for p, bit in flips:
            d[p] ^= 1 << bit
        return bytes(d), f"raw flip {flips}"
    if kind == "span":
        p, raw = pos(), rng.randbytes(rng.randint(1, 48))
        d[p:p + len(raw)] = raw
        return bytes(d), f"raw span {p} {raw.hex()}"
    if kind == "truncate":
        p = pos()
        return bytes(d[:p]), f"raw truncate {p}"
    src, k, dst = pos(), rng.randint(1, 4096), pos()
    d[dst:dst] = d[src:src + k]
    return bytes(d), f"raw dup {src}+{k} -> {dst}"


def mutate_chunk(rng: random.Random, data: bytes, lay: Layout) -> tuple[bytes, str] | None:
    """v7: decompress one chunk, mutate its pages, recompress, splice with sizes fixed; v6: mutate pages."""
    cds = [cd for cd in lay.cpu_data if cd.size > 0 and cd.offset < len(data)]
    if not cds:
        return None
    cd = rng.choice(cds)
    if lay.compression == "none":
        end = min(len(data), cd.offset + cd.size)
        npages = max(1, (end - cd.offset) // lay.page_size)
        first = cd.offset + rng.randrange(npages) * lay.page_size
        run_end = min(end, first + lay.page_size * rng.choice([1, 1, 2, 4]))
        new, what = page_mutation(rng, data[first:run_end], lay.page_size)
        sf = [(cd.size_field, "<Q")] if cd.size_field is not None and cd.size_field >= 0 else []
        return splice(data, lay, first, run_end, new, sf), f"v6 pages cpu {cd.cpu} @{first}: {what}"
    hdrs = chunk_headers(data, cd)
    if not hdrs:
        return None
    h = rng.choice(hdrs)
    c, u = struct.unpack_from("<II", data, h)
    try:
        payload = decompress(lay.compression, data[h + 8:h + 8 + c], u)
    except Exception:
        return None
    new, what = page_mutation(rng, payload, lay.page_size)
    for _ in range(rng.choice([0, 0, 0, 1, 2])):  # sometimes more than one change in the chunk
        new, more = page_mutation(rng, new, lay.page_size)
        what += "; " + more
    block = compress(lay.compression, new)
    sizes = [(cd.size_field, "<Q")] if cd.size_field is not None else []
    sec = lay.data_sections.get(cd.offset)
    if sec is not None:
        sizes.append((sec.offset + 8, "<Q"))
    out = splice(data, lay, h, h + 8 + c, struct.pack("<II", len(block), len(new)) + block, sizes)
    return out, f"chunk {cd.buffer!r} cpu {cd.cpu} @{h} ({u} -> {len(new)} bytes): {what}"


def mutate_meta(rng: random.Random, data: bytes, lay: Layout) -> tuple[bytes, str] | None:
    if not lay.meta:
        return None
    kind = rng.choice(sorted(lay.meta))
    start, end = lay.meta[kind]
    sec = next((s for s in lay.sections if s.content == start), None) if lay.version >= 7 else None
    raw = data[start:end]
    if sec is not None and sec.flags & 1:
        if len(raw) < 8:
            return None  # an earlier step cut the compressed section short of its header
        c, u = struct.unpack_from("<II", raw, 0)
        try:
            content = decompress(lay.compression, raw[8:8 + c], u)
        except Exception:
            return None
    else:
        content = raw
    try:
        items = parse_meta(kind, content)
    except (struct.error, ValueError):
        return None
    what = mutate_meta_items(rng, kind, items)
    if rng.random() < 0.2:
        what += "; " + mutate_meta_items(rng, kind, items)
    new = build_meta(items)
    if sec is not None and sec.flags & 1:
        block = compress(lay.compression, new)
        new = struct.pack("<II", len(block), len(new)) + block
    sizes = [(sec.offset + 8, "<Q")] if sec is not None else []
    return splice(data, lay, start, end, new, sizes), f"meta {what}"


def mutate_option(rng: random.Random, data: bytes, lay: Layout) -> tuple[bytes, str] | None:
    opts = [o for o in lay.options if o.oid != 0 or rng.random() < 0.1]
    if not opts:
        return None
    o = rng.choice(opts)
    payload = bytearray(data[o.payload:o.payload + o.size])
    oid = o.oid
    op = rng.choice(["text", "text", "word", "word", "id", "size", "grow"])
    if op == "text" and payload:
        payload, what = mutate_text(rng, bytes(payload), "option")
        payload = bytearray(payload)
    elif op == "word" and len(payload) >= 4:
        w = rng.choice([4, 8]) if len(payload) >= 8 else 4
        at = rng.randrange(0, len(payload) - w + 1)
        if rng.random() < 0.6:
            at -= at % 4
        old = int.from_bytes(payload[at:at + w], "little")
        v = interesting(rng, old) % (1 << (8 * w))
        payload[at:at + w] = v.to_bytes(w, "little")
        what = f"u{8 * w} at +{at}: {old} -> {v}"
    elif op == "id":
        oid = rng.choice([1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 21, 22, 23, 999])
        what = f"id {o.oid} -> {oid}"
    elif op == "size":
        payload = payload[:rng.randrange(len(payload) + 1)]
        what = f"payload cut to {len(payload)}"
    else:
        payload += rng.choice([bytes(payload), rng.randbytes(rng.randint(1, 64)), b"\0" * 8])
        what = f"payload grown to {len(payload)}"
    rec = struct.pack("<HI", oid, len(payload)) + bytes(payload)
    sizes = [(o.section.offset + 8, "<Q")] if o.section is not None else []
    out = splice(data, lay, o.offset, o.payload + o.size, rec, sizes)
    return out, f"option {o.oid}@{o.offset} {what}"


MUTATORS: dict[str, Callable] = {"raw": mutate_raw, "chunk": mutate_chunk, "meta": mutate_meta, "option": mutate_option}


@cache
def original(path: Path) -> bytes:
    return Path(path).read_bytes()


@cache
def layout(path: Path) -> Layout:
    return parse_layout(original(path))


@dataclass
class Case:
    key: str
    seed: int
    index: int
    kind: str = ""
    steps: list[str] = field(default_factory=list)
    forced: str | None = None
    """The mutator asked for (part of the case's identity: it changes the random draws)."""
    params: dict = field(default_factory=dict)

    def label(self) -> str:
        return f"{self.key}/{self.seed}/{self.index}"


def make_case(key: str, seed: int, index: int, kind: str | None = None, depth: float = 1.0
              ) -> tuple[Case, list[bytes]]:
    """The case's files (the corpus entry's files, one of them mutated) and its description.

    ``kind`` forces the first mutator (else drawn); ``"none"`` leaves the files as they are and turns
    every path on (the baseline: a corpus file must pass it before it is fuzzed).  ``depth`` scales the
    chance of each path after the reader (1: CI's full depth; a long run uses less to fit more cases:
    then kallsyms is read in 15% of the cases that did not mutate it, and the lenient load repeats a
    strict load that succeeded in 10%)."""
    rng = random.Random(f"{seed}/{key}/{index}/{kind or ''}")  # str seeds: SHA-512, stable across runs
    paths, which = CORPUS[key]
    files = [original(p) for p in paths]
    if kind == "none":
        case = Case(key, seed, index, "none", ["unmutated"], forced=kind)
        case.params = {"app": True, "report": True, "cli": True, "export": True, "info": True, "timeline": True,
                       "qt": False, "nsec": True, "raw": False, "cpus": "0-999999999999", "rows_seed": 0,
                       "symbols": True, "lenient": True}
        return case, files
    case = Case(key, seed, index, kind or rng.choices(KINDS, KIND_WEIGHTS)[0], forced=kind)
    data = files[which]
    lay = layout(paths[which])
    for n in range(rng.choice([1, 1, 1, 2])):
        kind_n = case.kind if n == 0 else rng.choices(KINDS, KIND_WEIGHTS)[0]
        if n and kind_n != "raw":
            lay = parse_layout_safe(data) or lay
        res = None
        for _ in range(4):
            res = MUTATORS[kind_n](rng, data, lay)
            if res is not None:
                break
        if res is None:
            res = mutate_raw(rng, data, lay)
        data, what = res
        case.steps.append(what)
    mutated = " ".join(case.steps)
    case.params = {
        "app": rng.random() < 0.4 * depth, "report": rng.random() < 0.4 * depth, "cli": rng.random() < 0.1 * depth,
        "export": rng.random() < 0.15 * depth, "info": rng.random() < 0.3 * depth,
        "timeline": rng.random() < 0.3 * depth, "qt": rng.random() < 0.04 * depth, "nsec": rng.random() < 0.5,
        "raw": rng.random() < 0.3, "cpus": cpu_text(rng) if rng.random() < 0.4 else None,
        "rows_seed": rng.getrandbits(32),
        "symbols": rng.random() < max(0.15, depth) or "kallsyms" in mutated or "printk" in mutated,
        "lenient": rng.random() < max(0.1, depth),
    }
    files[which] = data
    return case, files


def parse_layout_safe(data: bytes) -> Layout | None:
    try:
        return parse_layout(data)
    except Exception:
        return None


def cpu_text(rng: random.Random) -> str:
    return rng.choice(["0", "1", "0,1", "1-1", "0-3", "2", "0-999999999999", "5-2", "a", "1-", "-1", "0x1",
                       " 1", "1 ", "0:1", "1,,2", "", "99999999999999999999999", str(rng.randrange(4)),
                       f"{rng.randrange(3)}-{rng.randrange(3, 8)}"])


# --- running one case ------------------------------------------------------------------------------------

REPORT_LINES = 300
CASE_SECONDS = 60
MEMORY_LIMIT = 6 << 30
"""Address space a case may use beyond the process's at fork (RLIMIT_AS): the corpus files need < 1 GB."""


class _HeadSink(io.RawIOBase):
    """Bytes cut after ``limit`` lines, as ``| head`` does (BrokenPipeError), so a report stays short."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.lines = 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        if self.lines >= self.limit:
            raise BrokenPipeError(32, "Broken pipe")
        self.lines += bytes(b).count(b"\n")
        return len(b)


def head_stdout(limit: int) -> io.TextIOWrapper:
    """A stdout (text, with a ``.buffer`` for bytes) that breaks like a pipe into ``head -n limit``."""
    return io.TextIOWrapper(io.BufferedWriter(_HeadSink(limit), 8192), encoding="utf-8", errors="surrogateescape")


@contextlib.contextmanager
def _small_blocks():
    """Loads in one-page blocks with every watermark step delivered (the row feed's hardest case)."""
    from kshark_py.loaders import buffer, partial

    saved = buffer.LOAD_BLOCK_BYTES, partial.EMIT_SECONDS
    buffer.LOAD_BLOCK_BYTES, partial.EMIT_SECONDS = 1, 0.0
    try:
        yield
    finally:
        buffer.LOAD_BLOCK_BYTES, partial.EMIT_SECONDS = saved


def _reader(paths: list[str], strict: bool, symbols: bool = True) -> list:
    """The reader's part: every buffer's events, lost pages, formats, kallsyms, printk, cmdlines, fields."""
    import numpy as np

    from kshark_py.loaders.tracedat import open_trace

    out = []
    for p in paths:
        tf = open_trace(p, strict=strict)
        out.append(tf)
        formats = tf.formats
        if symbols:
            len(tf.kallsyms)
            _ = tf.printk
        _ = tf.cmdlines
        fed: list = []
        if not strict:  # the lenient load also feeds rows as the progressive view takes them, in one-page
            tf.on_rows = fed.append  # blocks (one chunk when compressed) delivered as they decode
            with _small_blocks():
                for b in tf.buffers:
                    _ = b.events
        for b in tf.buffers:
            t = b.events
            _ = b.lost
            mine = [r for r in fed if r.buffer is b]
            again = [i for i, r in enumerate(mine) if r.restart]
            if again:  # the rows started again (a damaged file): only the last start counts
                if again != [len(mine) - 1]:
                    raise AssertionError("row feed: a restart that is not the last delivery")
                mine = mine[again[-1]:]
            if mine:  # what the view was given is the table, in order
                for name in ("ts", "cpu", "pid", "event_id"):
                    got = np.concatenate([getattr(r, name) for r in mine])
                    if not np.array_equal(got, t.column(name).to_numpy()):
                        raise AssertionError(f"row feed: {name} differs from the events table")
                w = [r.watermark for r in mine]
                if any(b2 < a for a, b2 in zip(w, w[1:], strict=False)):
                    raise AssertionError("row feed: a watermark went back")
        tf.on_rows = None
        for b in tf.buffers:
            t = b.events
            eid = t.column("event_id").to_numpy()
            ids, counts = np.unique(eid, return_counts=True)
            for i in ids[np.argsort(-counts)][:4]:
                ev = formats.get(int(i))
                if ev is not None:
                    rows = np.flatnonzero(eid == i)[:500]
                    b.field_arrays(ev, [f.name for f in ev.fields], rows)
            if len(t):
                b.payload(len(t) - 1)
    return out


def _deep(paths: list[str], params: dict, step: Callable[[str], None]) -> str | None:
    """Everything after the load: the app's load, report, CLI, export, info texts, timeline, Qt model.

    Returns the class of a typed error the app's load gave (it opens strictly, as the app does: the user
    sees that error in a dialog), else None."""
    import numpy as np

    from kshark_py.loaders.errors import TraceDatError
    from kshark_py.loaders.tracedat import open_trace
    from kshark_py.model.session import Session

    rng = np.random.default_rng(params["rows_seed"])
    session = None
    typed = None
    if params["app"]:
        step("app load")
        from kshark_py.model.loading import load_session
        try:
            session = load_session(list(paths)).session
        except TraceDatError as e:
            check_typed(e)
            typed = type(e).__name__
        else:
            from kshark_py.model.lost import lost_events
            step("lost rows")
            lost_events(session)
    if params["report"]:
        step("report")
        from kshark_py.report import report
        files = [open_trace(p, strict=False) for p in paths]
        cpus = None
        if params["cpus"] is not None:
            try:
                from kshark_py.cli import cpu_slots, cpus_in, parse_cpu_list
                cpus = cpus_in(parse_cpu_list(params["cpus"]), cpu_slots(files))
            except ValueError:
                cpus = None
        for _ in itertools.islice(report(files, nsec=params["nsec"], raw=params["raw"], cpus=cpus), REPORT_LINES):
            pass
    if params["cli"]:
        step("cli report")
        from kshark_py.cli import main
        argv = ["report", *paths] + (["-t"] if params["nsec"] else []) + (["-R"] if params["raw"] else [])
        if params["cpus"] is not None:
            argv += ["--cpu", params["cpus"]]
        commands = [argv] + ([["vcpus", *paths]] if len(paths) > 1 else [])  # host + guest: the VCPU table
        for argv in commands:
            err = io.StringIO()
            with redirect_stdout(head_stdout(REPORT_LINES)), redirect_stderr(err):
                code = main(argv)
            if "Traceback" in err.getvalue() or err.getvalue().count("\n") > 50:
                raise AssertionError(f"cli {argv[0]} printed a traceback or {err.getvalue().count(chr(10))} lines")
            if code not in (0, 1, 2, 3):
                raise AssertionError(f"cli {argv[0]} exit status {code}")
    if params["export"]:
        step("export")
        from kshark_py.export import export_parquet
        tf = open_trace(paths[0], strict=False)
        with tempfile.TemporaryDirectory(prefix="kshark-fuzz-x-") as d:
            export_parquet(tf, os.path.join(d, "out.parquet"))
    if not (params["info"] or params["timeline"] or params["qt"]):
        return typed
    if session is None:
        step("session")
        session = Session.from_files([open_trace(p, strict=False) for p in paths])
    if params["info"]:
        step("info texts")
        from kshark_py.loaders.printfmt import InfoRenderer
        from kshark_py.model.eventtext import guest_funcs, render_context
        from kshark_py.model.infotext import BlockInfo
        gf = guest_funcs(session)
        for st in session.streams:
            n = len(st.buffer.events)
            if not n:
                continue
            r = InfoRenderer(st.trace.formats, render_context(st.trace, gf if st.trace is session.host else None))
            rows = np.unique(rng.integers(0, n, min(n, 300)))
            BlockInfo(st.buffer, r).render(rows.astype(np.int64))
    if params["timeline"]:
        step("timeline model")
        from kshark_py.model.vcpus import build_vcpu_map
        from kshark_py.model.viewmodel import RowSources, TimelineModel
        model = TimelineModel(session, RowSources(session, lambda s, p: "?" if p is None else str(p)))
        model.default_rows(build_vcpu_map(session, None))
        ts = [st.buffer.events.column("ts").to_numpy() for st in session.streams if len(st.buffer.events)]
        if ts:
            lo = min(int(t.min()) for t in ts)
            hi = max(int(t.max()) for t in ts)
            for t0, t1 in ((lo, hi + 1), (lo, lo + max(1, (hi - lo) // 1000)), (hi - 10, hi + 10)):
                model.render(t0, max(t1, t0 + 1), 800)
    if params["qt"]:
        step("qt event table")
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        from PySide6.QtWidgets import QApplication
        app = QApplication.instance() or QApplication(["fuzz"])
        from kshark_py.ui.eventtable import EventTableModel
        m = EventTableModel(session)
        nrows, ncols = m.rowCount(), m.columnCount()
        for r in list(rng.integers(0, max(nrows, 1), 50)) + [0, max(nrows - 1, 0)]:
            for c in range(ncols):
                if nrows:
                    m.data(m.index(int(r), c))
        del app
    return typed


def exercise(paths: list[str], params: dict, step: Callable[[str], None] = lambda s: None) -> str:
    """Run every path; returns the outcome (``clean`` / ``lenient-only:X`` / ``typed:X``); raises on a bug."""
    from kshark_py.loaders.errors import TraceDatError

    strict_err = None
    step("strict load")
    try:
        _reader(paths, True, params["symbols"])
    except TraceDatError as e:
        check_typed(e)
        strict_err = type(e).__name__
    step("lenient load")
    try:
        if strict_err or params["lenient"]:
            _reader(paths, False, params["symbols"])
    except TraceDatError as e:
        check_typed(e)
        return f"typed:{type(e).__name__}"
    deep_err = _deep(paths, params, step)
    if deep_err:
        return f"deep:{deep_err}"
    return f"lenient-only:{strict_err}" if strict_err else "clean"


def check_typed(e) -> None:
    """A typed error names the file and the section and is one line."""
    if not (e.path and e.section) or "\n" in e.one_line():
        raise AssertionError(f"typed error without file/section or not one line: {e!r}")


def _signature(e: BaseException) -> str:
    """Exception class + the innermost kshark_py frame: one bug, one signature."""
    tb = traceback.extract_tb(e.__traceback__)
    ours = [f for f in tb if "kshark_py" in f.filename] or tb[-1:]
    where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno} {ours[-1].name}" if ours else "?"
    return f"{type(e).__name__} @ {where}"


class CaseTimeout(Exception):
    """A case ran past its time limit (raised by SIGALRM in the worker)."""


def _alarm(signum, frame):
    raise CaseTimeout(f"fuzz case exceeded {CASE_SECONDS} s")


def run_one(key: str, seed: int, index: int, kind: str | None, depth: float, workdir: str,
            timeout: float = CASE_SECONDS) -> dict:
    """Make one case, run it under a SIGALRM time limit and classify it; one JSON-able dict."""
    t0 = time.perf_counter()
    try:
        case, files = make_case(key, seed, index, kind, depth)
    except Exception as e:  # noqa: BLE001 - the fuzzer's own bug, not the reader's: counted apart
        return {"kind": kind or "", "steps": [], "params": {}, "outcome": "fuzzer-error", "sig": _signature(e),
                "step": "mutate", "tb": "".join(traceback.format_exception(e))[-6000:], "times": {}}
    times = {"mutate": time.perf_counter() - t0}
    step_name = ["setup"]
    last = [time.perf_counter()]

    def step(name: str) -> None:
        now = time.perf_counter()
        times[step_name[0]] = times.get(step_name[0], 0.0) + now - last[0]
        last[0] = now
        step_name[0] = name

    paths = []
    for i, data in enumerate(files):
        p = os.path.join(workdir, f"{key}-{os.getpid()}-{index}-{i}.dat")
        with open(p, "wb") as fh:
            fh.write(data)
        paths.append(p)
    msg: dict = {"kind": case.kind, "steps": case.steps, "params": case.params}
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(max(1, int(timeout)))
    try:
        msg["outcome"] = exercise(paths, case.params, step)
        step("end")
    except CaseTimeout as e:
        msg.update(outcome="hang", sig=f"hang in {step_name[0]} @ {_signature(e).split(' @ ')[-1]}",
                   step=step_name[0], tb="".join(traceback.format_exception(e))[-6000:])
    except MemoryError as e:
        msg.update(outcome="blowup", sig=_signature(e), step=step_name[0])
    except BaseException as e:  # noqa: BLE001 - everything else is a bug
        if type(e).__name__ == "ArrowMemoryError":
            msg.update(outcome="blowup", sig=_signature(e), step=step_name[0])
        else:
            msg.update(outcome=f"crash:{type(e).__name__}", sig=_signature(e), step=step_name[0],
                       tb="".join(traceback.format_exception(e))[-6000:])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        # the case's TraceFiles are left to the collector, and each holds a decompression pool's
        # threads until a cycle collection: without this a worker ran out of threads after ~2000 cases
        gc.collect()
        for p in paths:
            try:
                os.unlink(p)
            except OSError:
                pass
    msg["times"] = times
    return msg


KALLSYMS_KEPT = 16
"""Parsed kallsyms texts a worker keeps (see :func:`_share_kallsyms`)."""


def _share_kallsyms() -> None:
    """In a worker: a kallsyms text parsed once is not parsed again (the reader's ``Kallsyms`` keyed by the
    exact bytes, the newest KALLSYMS_KEPT texts).

    Most cases leave the kallsyms section as it is, and a case opens its files three to five times (strict,
    lenient, the app's load, report, CLI): the same text was parsed each time, the largest single cost of
    the run (~40% of a chunk case).  The parse is a pure function of the bytes and its result is never
    changed, so this shares work only: every text a mutation changed is still parsed (once), and every
    path still resolves addresses in the table it gets."""
    from collections import OrderedDict

    from kshark_py.loaders import tracedat

    parse = tracedat.Kallsyms
    kept: OrderedDict[bytes, object] = OrderedDict()

    def shared(text):
        key = bytes(text)
        ks = kept.get(key)
        if ks is None:
            ks = kept[key] = parse(key)
            while len(kept) > KALLSYMS_KEPT:
                kept.popitem(last=False)
        kept.move_to_end(key)
        return ks

    tracedat.Kallsyms = shared


def _worker(rfd: int, wfd: int, depth: float, workdir: str, timeout: float, recycle: int) -> None:
    """A forked worker: runs the cases it reads (one JSON line each) in-process, answers one line each.

    In-process because a fresh child pays ~0.25 s of first-use costs per case; it exits after
    ``recycle`` cases or after a bug (a fresh heap), and the parent forks another."""
    _share_kallsyms()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open(f"/proc/{os.getpid()}/status") as fh:
        vm = next(int(ln.split()[1]) * 1024 for ln in fh if ln.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + MEMORY_LIMIT, hard))
    inp = os.fdopen(rfd, "r")
    for n, line in enumerate(inp):
        key, seed, index, kind = json.loads(line)
        msg = run_one(key, seed, index, kind, depth, workdir, timeout)
        msg["retire"] = n + 1 >= recycle or msg["outcome"] in ("hang", "blowup") or msg["outcome"].startswith("crash")
        os.write(wfd, (json.dumps(msg) + "\n").encode())
        if msg["retire"]:
            break


@dataclass
class Result:
    case: Case
    outcome: str
    sig: str = ""
    step: str = ""
    tb: str = ""
    seconds: float = 0.0
    times: dict = field(default_factory=dict)
    """Seconds per step in the child (mutate, strict load, lenient load, app load, report, ...)."""

    @property
    def bug(self) -> bool:
        return self.outcome.startswith("crash") or self.outcome in ("hang", "blowup")


@dataclass
class _Proc:
    pid: int
    wfd: int  # cases to the worker
    rfd: int  # results from it
    buf: bytearray = field(default_factory=bytearray)
    case: Case | None = None
    started: float = 0.0


class Runner:
    """Runs cases in ``jobs`` forked workers; call from a process that has no threads (a fresh one).

    A worker that does not answer within ``timeout`` + 10 s (stuck in native code, where SIGALRM
    cannot reach) is killed and its case counted as a hang; one that dies is a native crash."""

    def __init__(self, jobs: int = 2, timeout: float = CASE_SECONDS, workdir: str | None = None,
                 depth: float = 1.0, recycle: int = 300) -> None:
        self.jobs = jobs
        self.depth = depth
        self.timeout = timeout
        self.recycle = recycle
        self.workdir = workdir or tempfile.mkdtemp(prefix="kshark-fuzz-")
        self._procs: list[_Proc] = []
        self._warm()

    @staticmethod
    def _warm() -> None:
        """Import what the workers use once, in the parent (no threads are started by importing)."""
        import kshark_py.cli  # noqa: F401
        import kshark_py.export  # noqa: F401
        import kshark_py.loaders.tracedat  # noqa: F401
        import kshark_py.model.infotext  # noqa: F401
        import kshark_py.model.loading  # noqa: F401
        import kshark_py.model.lost  # noqa: F401
        import kshark_py.model.viewmodel  # noqa: F401
        import kshark_py.report  # noqa: F401

    def _spawn(self) -> _Proc:
        r1, w1 = os.pipe()  # parent -> worker
        r2, w2 = os.pipe()  # worker -> parent
        pid = os.fork()
        if pid == 0:
            try:
                os.close(w1)
                os.close(r2)
                for p in self._procs:
                    os.close(p.wfd)
                    os.close(p.rfd)
                _worker(r1, w2, self.depth, self.workdir, self.timeout, self.recycle)
            finally:
                os._exit(0)
        os.close(r1)
        os.close(w2)
        return _Proc(pid, w1, r2)

    def _reap(self, p: _Proc) -> int:
        os.close(p.wfd)
        os.close(p.rfd)
        _, status = os.waitpid(p.pid, 0)
        self._procs.remove(p)
        return status

    def run(self, cases: Iterable[tuple[str, int, int, str | None]], on_result: Callable[[Result], None]) -> None:
        it = iter(cases)
        done = False
        while True:
            for p in self._procs:
                if p.case is None and not done:
                    try:
                        key, seed, index, kind = next(it)
                    except StopIteration:
                        done = True
                        break
                    p.case = Case(key, seed, index, kind or "", forced=kind)
                    p.started = time.monotonic()
                    try:
                        os.write(p.wfd, (json.dumps([key, seed, index, kind]) + "\n").encode())
                    except BrokenPipeError:
                        pass  # the worker exited (recycled): its EOF is handled below
            if not done and len(self._procs) < self.jobs:
                self._procs.append(self._spawn())
                continue
            busy = [p for p in self._procs if p.case is not None]
            if done and not busy:
                break
            ready, _, _ = select.select([p.rfd for p in self._procs], [], [], 0.2)
            for p in [p for p in self._procs if p.rfd in ready]:
                chunk = os.read(p.rfd, 1 << 20)
                if chunk:
                    p.buf.extend(chunk)
                    while b"\n" in p.buf:
                        line, _, rest = bytes(p.buf).partition(b"\n")
                        p.buf[:] = rest
                        msg = json.loads(line)
                        self._answer(p, msg, on_result)
                        if msg.get("retire"):  # it exits: no case may be sent to it any more
                            self._reap(p)
                            break
                    continue
                case, t0 = p.case, p.started
                status = self._reap(p)
                if case is not None:
                    sig = (signal.Signals(-os.waitstatus_to_exitcode(status)).name
                           if os.WIFSIGNALED(status) else f"exit {os.waitstatus_to_exitcode(status)}")
                    on_result(Result(case, f"crash:{sig}", f"native {sig}", seconds=time.monotonic() - t0))
            now = time.monotonic()
            for p in list(self._procs):
                if p.case is not None and now - p.started > self.timeout + 10:
                    case = p.case
                    os.kill(p.pid, signal.SIGKILL)
                    self._reap(p)
                    on_result(Result(case, "hang", "hang (native, killed)", seconds=now - p.started))
        self.stop()

    def _answer(self, p: _Proc, msg: dict, on_result: Callable[[Result], None]) -> None:
        case, p.case = p.case, None
        case.kind, case.steps, case.params = msg["kind"], msg["steps"], msg["params"]
        on_result(Result(case, msg["outcome"], msg.get("sig", ""), msg.get("step", ""), msg.get("tb", ""),
                         time.monotonic() - p.started, msg.get("times", {})))

    def stop(self) -> None:
        """End the workers (idle ones exit on EOF; running ones are killed after an interrupt)."""
        for p in list(self._procs):
            if p.case is not None:
                os.kill(p.pid, signal.SIGKILL)
            self._reap(p)


def main(argv: list[str] | None = None) -> None:
    """Run cases and print one JSON line per result (tests/test_fuzz.py runs this in a fresh process,
    so the forked children start from a process without threads)."""
    import argparse
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--keys", default=",".join(CORPUS))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cases", type=int, default=5, help="cases per key")
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--kind", default=None, choices=(*KINDS, "none"))
    ap.add_argument("--depth", type=float, default=1.0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=CASE_SECONDS)
    a = ap.parse_args(argv)
    keys = a.keys.split(",")
    runner = Runner(jobs=a.jobs, timeout=a.timeout, depth=a.depth)

    def out(res: Result) -> None:
        print(json.dumps({"case": res.case.label(), "kind": res.case.kind, "forced": res.case.forced,
                          "steps": res.case.steps, "outcome": res.outcome, "sig": res.sig, "step": res.step,
                          "tb": res.tb, "seconds": res.seconds}), flush=True)

    runner.run(((k, a.seed, a.start + i, a.kind) for i in range(a.cases) for k in keys), out)


if __name__ == "__main__":
    main()
