"""Protocol-buffer wire encoding of many messages at once, with numpy: one row, one message.

Why: a Perfetto trace holds one ``FtraceEvent`` message per record; building them as protobuf
objects costs a Python call per field per record (13 s for 3 M records).  Here a column of values
becomes a *ragged* byte array (``Ragged``: all rows' bytes in one flat ``uint8`` array, plus each
row's length) with whole-array operations, and messages are assembled by concatenating ragged
columns row by row.  Only the wire format's basics are needed: varints, length-delimited fields.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VARINT, LEN = 0, 2


@dataclass
class Ragged:
    """Row i's bytes are ``flat[start[i]:start[i] + lens[i]]``, rows stored one after another."""

    flat: np.ndarray  # uint8
    lens: np.ndarray  # int64
    _starts: np.ndarray | None = None

    @property
    def starts(self) -> np.ndarray:
        """Where each row begins in ``flat`` (computed once)."""
        if self._starts is None:
            self._starts = np.concatenate(([0], np.cumsum(self.lens)[:-1])).astype(np.int64) if len(self.lens) \
                else self.lens
        return self._starts

    def take(self, rows: np.ndarray) -> Ragged:
        """Rows ``rows`` in that order (a ragged gather)."""
        lens = self.lens[rows]
        src = self.starts[rows]
        return Ragged(self.flat[_ragged_index(src, lens)], lens)


def _ragged_index(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Indices ``starts[i] .. starts[i] + lens[i] - 1`` for every i, concatenated."""
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    out_starts = np.concatenate(([0], np.cumsum(lens)[:-1]))
    return np.repeat(starts - out_starts, lens) + np.arange(total, dtype=np.int64)


def constant(data: bytes, n: int) -> Ragged:
    """The same bytes in each of ``n`` rows."""
    return Ragged(np.tile(np.frombuffer(data, np.uint8), n), np.full(n, len(data), np.int64))


def varint_bytes(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def tag(field: int, wire: int) -> bytes:
    return varint_bytes((field << 3) | wire)


def varints(values: np.ndarray) -> Ragged:
    """Each value (uint64; a negative int64 as its two's complement, 10 bytes) as a varint."""
    v = np.asarray(values).astype(np.int64).view(np.uint64)
    n = len(v)
    groups = np.zeros((n, 10), np.uint8)
    lens = np.ones(n, np.int64)
    rest = v.copy()
    for i in range(10):
        groups[:, i] = (rest & np.uint64(0x7F)).astype(np.uint8)
        rest >>= np.uint64(7)
        more = rest != 0
        groups[more, i] |= 0x80
        lens += more
    keep = np.arange(10)[None, :] < lens[:, None]
    return Ragged(groups[keep], lens)


def concat(*parts: Ragged) -> Ragged:
    """Row i of the result is row i of each part, one after another."""
    n = len(parts[0].lens)
    lens = np.zeros(n, np.int64)
    for p in parts:
        lens += p.lens
    out = np.empty(int(lens.sum()), np.uint8)
    row_start = np.concatenate(([0], np.cumsum(lens)[:-1])).astype(np.int64) if n else lens
    off = row_start.copy()
    for p in parts:
        out[_ragged_index(off, p.lens)] = p.flat
        off += p.lens
    return Ragged(out, lens)


def empty(n: int) -> Ragged:
    return Ragged(np.zeros(0, np.uint8), np.zeros(n, np.int64))


def select(mask: np.ndarray, part: Ragged) -> Ragged:
    """``part`` where ``mask``, nothing elsewhere (rows of ``part`` are the rows where mask is set)."""
    lens = np.zeros(len(mask), np.int64)
    lens[mask] = part.lens
    return Ragged(part.flat, lens)
