"""One Parquet file written by several threads: each encodes a slice of the rows as its own row group
in memory, and the parts are joined under one footer.

Why: pyarrow (26) writes a file's column chunks on one thread (Arrow's ``use_threads`` writer property
is not reachable from Python), and encoding plus zstd is a quarter of ``kshark-py export``'s time;
``pq.write_table`` releases the GIL, so slices encode in parallel.  A Parquet file is ``PAR1``, the
column chunks of each row group, the footer (a Thrift ``FileMetaData``), its length and ``PAR1``.
The parts' chunks are concatenated as they are; the footer is the first part's with every part's row
groups, each absolute byte offset in them moved by where the part's chunks now start, ``num_rows``
summed and the ordinals renumbered.  Parts with page indexes, bloom filters or encryption (which
carry more offsets) are never made here: :func:`write_spliced` writes with none of them.

The footer is read and written with a small Thrift compact-protocol codec (:func:`_read_struct`,
:func:`_write_struct`) that keeps every field it does not know as it was.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

import pyarrow as pa

from .protowire import varint_bytes

MAGIC = b"PAR1"

# Thrift compact protocol type ids
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)

# absolute file offsets, by struct (Thrift field ids of parquet.thrift)
_ROW_GROUP_OFFSETS = (5,)  # RowGroup.file_offset
_CHUNK_OFFSETS = (2, 4, 6)  # ColumnChunk.file_offset, offset_index_offset, column_index_offset
_META_OFFSETS = (9, 10, 11, 14)  # ColumnMetaData data_page, index_page, dictionary_page, bloom_filter
_REFUSED_CHUNK_FIELDS = (8, 9)  # ColumnChunk crypto_metadata, encrypted_column_metadata


class SpliceError(ValueError):
    """A part's footer is not what this module writes (it then writes the file on one thread)."""


# --- Thrift compact protocol -------------------------------------------------------------------------

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise SpliceError("bad varint in a Parquet footer")
        b = buf[pos]
        pos += 1
        out |= (b & 0x7F) << shift
        if not b & 0x80:
            return out, pos
        shift += 7


def _put_varint(out: bytearray, n: int) -> None:
    out += varint_bytes(n)  # the same base-128 varint as protobuf's


def _unzig(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


def _zig(n: int) -> int:
    return (n << 1) ^ (n >> 63)


def _read_value(buf: bytes, pos: int, t: int):
    if t in (_TRUE, _FALSE):  # inside a list or map: one byte
        return buf[pos] == 1, pos + 1
    if t == _BYTE:
        return buf[pos], pos + 1
    if t in (_I16, _I32, _I64):
        n, pos = _varint(buf, pos)
        return _unzig(n), pos
    if t == _DOUBLE:
        return buf[pos:pos + 8], pos + 8
    if t == _BINARY:
        n, pos = _varint(buf, pos)
        if pos + n > len(buf):
            raise SpliceError("a Parquet footer string runs past its end")
        return buf[pos:pos + n], pos + n
    if t in (_LIST, _SET):
        head = buf[pos]
        pos += 1
        et, n = head & 0x0F, head >> 4
        if n == 15:
            n, pos = _varint(buf, pos)
        items = []
        for _ in range(n):
            v, pos = _read_value(buf, pos, et)
            items.append(v)
        return (et, items), pos
    if t == _MAP:
        n, pos = _varint(buf, pos)
        if n == 0:
            return (0, 0, []), pos
        kv = buf[pos]
        pos += 1
        pairs = []
        for _ in range(n):
            k, pos = _read_value(buf, pos, kv >> 4)
            v, pos = _read_value(buf, pos, kv & 0x0F)
            pairs.append((k, v))
        return (kv >> 4, kv & 0x0F, pairs), pos
    if t == _STRUCT:
        return _read_struct(buf, pos)
    raise SpliceError(f"unknown Thrift type {t} in a Parquet footer")


def _read_struct(buf: bytes, pos: int) -> tuple[list[list], int]:
    """A struct -> ``[[field id, type, value], ...]`` in wire order (bools: type _TRUE, value)."""
    fields: list[list] = []
    fid = 0
    while True:
        if pos >= len(buf):
            raise SpliceError("a Parquet footer ends inside a struct")
        head = buf[pos]
        pos += 1
        if head == 0:
            return fields, pos
        t, delta = head & 0x0F, head >> 4
        if delta:
            fid += delta
        else:
            n, pos = _varint(buf, pos)
            fid = _unzig(n)
        if t in (_TRUE, _FALSE):
            fields.append([fid, _TRUE, t == _TRUE])
        else:
            v, pos = _read_value(buf, pos, t)
            fields.append([fid, t, v])


def _write_value(out: bytearray, t: int, v) -> None:
    if t in (_TRUE, _FALSE):
        out.append(1 if v else 2)
    elif t == _BYTE:
        out.append(v & 0xFF)
    elif t in (_I16, _I32, _I64):
        _put_varint(out, _zig(v))
    elif t == _DOUBLE:
        out += v
    elif t == _BINARY:
        _put_varint(out, len(v))
        out += v
    elif t in (_LIST, _SET):
        et, items = v
        if len(items) < 15:
            out.append(len(items) << 4 | et)
        else:
            out.append(0xF0 | et)
            _put_varint(out, len(items))
        for x in items:
            _write_value(out, et, x)
    elif t == _MAP:
        kt, vt, pairs = v
        _put_varint(out, len(pairs))
        if pairs:
            out.append(kt << 4 | vt)
            for k, x in pairs:
                _write_value(out, kt, k)
                _write_value(out, vt, x)
    elif t == _STRUCT:
        _write_struct(out, v)
    else:  # pragma: no cover (only types _read_value made)
        raise SpliceError(f"unknown Thrift type {t}")


def _write_struct(out: bytearray, fields: list[list]) -> None:
    last = 0
    for fid, t, v in fields:
        wt = (_TRUE if v else _FALSE) if t == _TRUE else t
        if 0 < fid - last <= 15:
            out.append((fid - last) << 4 | wt)
        else:
            out.append(wt)
            _put_varint(out, _zig(fid))
        last = fid
        if t != _TRUE:
            _write_value(out, t, v)
    out.append(0)


def _field(fields: list[list], fid: int) -> list | None:
    return next((f for f in fields if f[0] == fid), None)


# --- splicing -------------------------------------------------------------------------------------

def _footer(part) -> tuple[list[list], int]:
    """(FileMetaData fields, where the footer starts) of a whole in-memory Parquet file."""
    if len(part) < 12 or part[:4] != MAGIC or part[-4:] != MAGIC:
        raise SpliceError("not a Parquet file")
    (n,) = struct.unpack_from("<I", part, len(part) - 8)
    start = len(part) - 8 - n
    if start < 4:
        raise SpliceError("a Parquet footer longer than its file")
    meta, end = _read_struct(bytes(part[start:]), 0)
    end += start
    if end != len(part) - 8:
        raise SpliceError("a Parquet footer with bytes after its end")
    return meta, start


def _shift(fields: list[list], ids: tuple[int, ...], by: int) -> None:
    for f in fields:
        if f[0] in ids and f[1] == _I64:
            f[2] += by


def splice(parts: list) -> bytes:
    """Whole Parquet files of one schema (bytes-like), each of whole row groups -> one file with all
    their rows, in order."""
    out = io.BytesIO()
    splice_to(parts, out)
    return out.getvalue()


def splice_to(parts: list, out: BinaryIO) -> None:
    """:func:`splice`, written to ``out`` piece by piece (the parts' chunks are not copied)."""
    metas = [_footer(memoryview(p)) for p in parts]
    out.write(MAGIC)
    pos = len(MAGIC)
    groups: list = []
    rows = 0
    for part, (meta, start) in zip(parts, metas, strict=True):
        by = pos - 4  # the part's chunks start at 4 in it, at pos here
        rg = _field(meta, 4)
        nr = _field(meta, 3)
        if rg is None or nr is None or rg[1] != _LIST or rg[2][0] != _STRUCT:
            raise SpliceError("a Parquet footer without row groups")
        for group in rg[2][1]:
            _shift(group, _ROW_GROUP_OFFSETS, by)
            cols = _field(group, 1)
            for chunk in cols[2][1] if cols else []:
                if any(_field(chunk, fid) for fid in _REFUSED_CHUNK_FIELDS):
                    raise SpliceError("an encrypted column chunk")
                _shift(chunk, _CHUNK_OFFSETS, by)
                md = _field(chunk, 3)
                if md is not None:
                    _shift(md[2], _META_OFFSETS, by)
            ordinal = _field(group, 7)
            if ordinal is not None:
                ordinal[2] = len(groups)
            groups.append(group)
        rows += nr[2]
        out.write(memoryview(part)[4:start])
        pos += start - 4
    meta = metas[0][0]
    _field(meta, 3)[2] = rows
    rg = _field(meta, 4)
    rg[2] = (_STRUCT, groups)
    footer = bytearray()
    _write_struct(footer, meta)
    out.write(footer)
    out.write(struct.pack("<I", len(footer)))
    out.write(MAGIC)


def write_spliced(table: pa.Table, path: str | os.PathLike, write: Callable[[pa.Table, object], None],
                  parts: int) -> None:
    """``write(slice, sink)`` for ``parts`` slices of ``table`` on as many threads, spliced into
    ``path`` (row order kept; one row group per slice).  ``write`` must write no page index, bloom
    filter or encryption (their offsets are not moved)."""
    n = table.num_rows
    bounds = [n * i // parts for i in range(parts + 1)]

    def encode(i: int) -> pa.Buffer:
        sink = pa.BufferOutputStream()
        write(table.slice(bounds[i], bounds[i + 1] - bounds[i]), sink)
        return sink.getvalue()

    with ThreadPoolExecutor(max_workers=parts, thread_name_prefix="kshark-parquet") as pool:
        encoded = list(pool.map(encode, range(parts)))
    with open(path, "wb") as f:
        splice_to(encoded, f)
