"""Field extraction: event payload bytes -> typed Arrow columns, vectorized per event type.

Given the rows of one event type, every field becomes one Arrow array, built with numpy gathers
over the buffer's data (no per-event Python).  Integers keep their declared size and sign;
``char[N]`` and ``__data_loc char[]`` become ``large_binary`` (the bytes as the kernel wrote them,
cut at the first NUL, as C prints them: never ``string``, whose UTF-8 the kernel does not promise;
:mod:`.text` decodes them); other arrays become list arrays.  Work is done in blocks so a
multi-million-row extraction never materializes a giant index matrix.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .formats import EventFormat, Field

BLOCK = 1 << 20

_INT_TYPES = {
    (1, False): (np.uint8, pa.uint8()), (1, True): (np.int8, pa.int8()),
    (2, False): (np.uint16, pa.uint16()), (2, True): (np.int16, pa.int16()),
    (4, False): (np.uint32, pa.uint32()), (4, True): (np.int32, pa.int32()),
    (8, False): (np.uint64, pa.uint64()), (8, True): (np.int64, pa.int64()),
}


def _gather(data: np.ndarray, starts: np.ndarray, size: int) -> np.ndarray:
    """bytes data[s:s+size] for each start -> (n, size) uint8 (out-of-range bytes read as 0)."""
    n = len(starts)
    out = np.zeros((n, size), np.uint8)
    if n == 0 or size == 0:
        return out
    lim = len(data)
    for a in range(0, n, max(1, BLOCK // max(size, 1))):
        s = starts[a:a + BLOCK // max(size, 1)]
        idx = s[:, None] + np.arange(size)
        ok = (idx >= 0) & (idx < lim)
        block = data[np.where(ok, idx, 0)]
        block[~ok] = 0
        out[a:a + len(s)] = block
    return out


def int_values(data: np.ndarray, starts: np.ndarray, size: int, signed: bool, endian: str) -> np.ndarray:
    """Integers of ``size`` bytes at ``starts`` (file byte order) -> native numpy array."""
    if (size, signed) not in _INT_TYPES:
        size = 8 if size > 4 else 4
    np_t, _ = _INT_TYPES[(size, signed)]
    raw = _gather(data, starts, size)
    return raw.view(np.dtype(np_t).newbyteorder(endian)).reshape(-1).astype(np_t)


def _cstrings(flat: np.ndarray, offsets: np.ndarray) -> pa.Array:
    """Variable-length byte runs (flat bytes + offsets) -> ``large_binary`` cut at the first NUL.

    Always binary, whatever the bytes: one block of a column must have the type of every other
    (a comm that is not UTF-8 in one block made that block binary and the rest string)."""
    n = len(offsets) - 1
    lens = np.diff(offsets)
    if len(flat):
        zero_pos = np.where(flat == 0, np.arange(len(flat)), np.iinfo(np.int64).max)
        # first NUL in each run: reduceat over non-empty runs
        first = np.full(n, np.iinfo(np.int64).max)
        nonempty = lens > 0
        if nonempty.any():
            first[nonempty] = np.minimum.reduceat(zero_pos, offsets[:-1][nonempty])
        cut = np.minimum(first - offsets[:-1], lens)
        cut = np.where(nonempty, cut, 0)
    else:
        cut = np.zeros(n, np.int64)
    # rebuild contiguous runs of the cut lengths
    new_off = np.concatenate(([0], np.cumsum(cut))).astype(np.int64)
    idx = np.repeat(offsets[:-1] - new_off[:-1], cut) + np.arange(int(new_off[-1]))
    body = flat[idx] if len(idx) else np.zeros(0, np.uint8)
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(new_off),
                                                                    pa.py_buffer(body.tobytes())])


def _runs(data: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lens = np.clip(lens, 0, None)
    offsets = np.concatenate(([0], np.cumsum(lens))).astype(np.int64)
    total = int(offsets[-1])
    if total == 0:
        return np.zeros(0, np.uint8), offsets
    idx = np.repeat(starts - offsets[:-1], lens) + np.arange(total)
    idx = np.clip(idx, 0, len(data) - 1)
    return data[idx], offsets


def field_array(data: np.ndarray, rec_off: np.ndarray, rec_len: np.ndarray, f: Field, endian: str,
                long_size: int = 8) -> pa.Array:
    """One field of every record (records start at ``rec_off`` in ``data``) as an Arrow array."""
    n = len(rec_off)
    if f.dynamic:
        loc = int_values(data, rec_off + f.offset, 4, False, endian).astype(np.int64)
        start = loc & 0xFFFF
        ln = loc >> 16
        if f.dynamic == "rel_loc":
            start = start + f.offset + f.size
        ln = np.minimum(ln, np.maximum(rec_len - start, 0))
        flat, offsets = _runs(data, rec_off + start, ln)
        if f.is_string:
            return _cstrings(flat, offsets)
        return _list_of_ints(flat, offsets, f.elem_size, f.signed, endian)
    if f.array_len == 0:  # flexible array: to the end of the record
        ln = np.maximum(rec_len - f.offset, 0)
        flat, offsets = _runs(data, rec_off + f.offset, ln)
        if f.is_string:
            return _cstrings(flat, offsets)
        return _list_of_ints(flat, offsets, f.elem_size, f.signed, endian)
    if f.is_array:
        if f.is_string:
            raw = _gather(data, rec_off + f.offset, f.size)
            offsets = np.arange(n + 1, dtype=np.int64) * f.size
            return _cstrings(raw.reshape(-1), offsets)
        es = max(1, f.elem_size)
        vals = int_values(data, (rec_off[:, None] + f.offset + np.arange(f.array_len) * es).reshape(-1), es,
                          f.signed, endian)
        return pa.FixedSizeListArray.from_arrays(pa.array(vals), f.array_len)
    if f.size in (1, 2, 4, 8):
        np_t, pa_t = _INT_TYPES[(f.size, f.signed)]
        return pa.array(int_values(data, rec_off + f.offset, f.size, f.signed, endian), type=pa_t)
    raw = _gather(data, rec_off + f.offset, f.size)
    return pa.array(list(map(bytes, raw)), type=pa.binary(f.size))


def _list_of_ints(flat: np.ndarray, offsets: np.ndarray, es: int, signed: bool, endian: str) -> pa.Array:
    es = es if es in (1, 2, 4, 8) else 1
    counts = np.diff(offsets) // es
    new_off = np.concatenate(([0], np.cumsum(counts))).astype(np.int32)
    idx = np.repeat(offsets[:-1] - new_off[:-1] * es, counts * es) + np.arange(int(new_off[-1]) * es)
    body = flat[idx] if len(idx) else np.zeros(0, np.uint8)
    np_t, pa_t = _INT_TYPES[(es, signed)]
    vals = body.view(np.dtype(np_t).newbyteorder(endian)).astype(np_t)
    return pa.ListArray.from_arrays(pa.array(new_off), pa.array(vals, type=pa_t))


def event_fields(data: np.ndarray, rec_off: np.ndarray, rec_len: np.ndarray, ev: EventFormat, endian: str,
                 names: list[str] | None = None) -> pa.Table:
    """The event-specific fields (or ``names``) of records of type ``ev`` as one Arrow table."""
    fields = [f for f in ev.fields if names is None or f.name in names]
    if names is not None:
        fields += [f for f in ev.common_fields if f.name in names]
    cols = {f.name: field_array(data, rec_off, rec_len, f, endian) for f in fields}
    return pa.table(cols) if cols else pa.table({"_": pa.nulls(len(rec_off))}).drop(["_"])
