"""A buffer's exact rows handed out while it decodes (the progressive view's list and rows).

The loader decodes a buffer's blocks in time order (each block's first page timestamp; a CPU's
blocks in their order, ties to the lower CPU), so after each block every record earlier than the
next block's first page is decoded: that time is the *watermark*.  The rows below it are already
exactly what the final events table starts with: the final merge orders each CPU's records by
their running maximum (trace-cmd's k-way merge), and no record still to decode can have a smaller
one.  :class:`RowFeed` cuts each CPU's decoded records at the watermark, converts their times
(``TraceFile.convert_ts``) and merges them as :func:`.merge.merge_order` does (the same tie rule as
the table), so the :class:`PartialRows` of a buffer, concatenated, are the first rows of its
events table.  The last one (``done``) comes from the table itself and holds the rest.

Why a watermark from page headers: a page's timestamp is the time its first record's delta starts
from, so no record of the page (nor, per CPU, of a later page) is earlier.  A block whose first
pages hold nothing gets the smallest key of the CPU's later blocks (a lower bound is always safe).
What would break that promise stops the feed for the buffer (only the ``done`` rows follow): a
decoded record earlier than its block's key, or times that the conversion makes go back (a
guest's TIME_SHIFT samples).  Such a break may show only after rows were handed out (a damaged
file: a record before its page's time, on a CPU decoded late, belongs before rows already sent), so
the feed keeps a fingerprint of what it sent (:func:`fingerprint`, position by position) and checks
it against the table's first rows at the end: when they differ, the ``done`` rows are the whole
table, marked ``restart``, and a consumer drops what it had.  No cost without a callback: the
loader makes no feed then.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["EMIT_SECONDS", "PartialRows", "RowFeed", "fingerprint"]

EMIT_SECONDS = 0.1
"""At most one :class:`PartialRows` per this many seconds while a buffer decodes."""

_SLICE = 1 << 18
_CPU_MIX = 0x9E3779B97F4A7C15


@cache
def _weights() -> np.ndarray:
    """1, 2, ... :data:`_SLICE` (uint64), made on the first fingerprint, not at import (2 MB)."""
    return np.arange(1, _SLICE + 1, dtype=np.uint64)


def fingerprint(ts: np.ndarray, cpu: np.ndarray, first: int = 0) -> int:
    """A checksum of rows ``first, first + 1, ...``: the sum of each time and (times an odd
    constant) each CPU weighted by its position + 1, modulo 2**64.  Equal for the same rows in the
    same places; the sum of two consecutive runs' is the whole's; two rows swapped, or one time or
    CPU changed, change it.  Why: the feed cannot keep what it sent (9 bytes a row, alive through
    the final merge, the load's peak) but must know at the end whether it was the table's start.
    Two dot products a slice (0.04 s per 19 M rows)."""
    total = 0
    weights = _weights()
    for a in range(0, len(ts), _SLICE):
        t = np.asarray(ts[a:a + _SLICE]).astype(np.int64, copy=False).view(np.uint64)
        c = np.asarray(cpu[a:a + _SLICE]).astype(np.uint64)
        w = weights[:len(t)]
        base = first + a  # row first + a + j weighs (j + 1) + base
        total += int(np.dot(t, w)) + base * int(t.sum(dtype=np.uint64))
        total += _CPU_MIX * (int(np.dot(c, w)) + base * int(c.sum(dtype=np.uint64)))
    return total & 0xFFFFFFFFFFFFFFFF


@dataclass(frozen=True, eq=False)
class PartialRows:
    """The rows of ``buffer`` with ``previous watermark <= ts < watermark``, in report order.

    Every column is what the final events table holds at those rows (``ts`` on the table's clock:
    converted, a guest's on the host clock); the concatenation of a buffer's PartialRows is its
    table's first rows.  ``done``: the last one of the buffer (the table is built; ``watermark`` is
    past its last row)."""

    buffer: Any
    """The :class:`~.buffer.Buffer` (typed loosely: :mod:`.buffer` imports this module)."""
    ts: np.ndarray
    """int64, the table's ``ts``."""
    cpu: np.ndarray
    """int16."""
    pid: np.ndarray
    """int32."""
    event_id: np.ndarray
    """int32."""
    watermark: int
    """Every row of the buffer earlier than this (converted time) has been handed out."""
    done: bool
    restart: bool = False
    """The rows handed out before were not the table's first rows after all (a damaged file, see the
    module): drop them; this one (``done``) holds every row of the buffer."""

    def __len__(self) -> int:
        return len(self.ts)


class RowFeed:
    """Hands a buffer's rows below the watermark to ``callback`` while it decodes (see the module).

    The loader tells it each decoded block (:meth:`block`) or each block it skips (:meth:`skip`),
    in its decode order; :meth:`emit` sends what the watermark now covers (at most every
    :data:`EMIT_SECONDS`); :meth:`finish` sends the rest from the built table."""

    def __init__(self, buffer: Any, callback: Callable[[PartialRows], None],
                 convert: Callable[[np.ndarray, np.ndarray], np.ndarray], arrays: dict[str, np.ndarray],
                 cpus: list[int], starts: list[int], keys: list[np.ndarray]) -> None:
        """``cpus``: each region's CPU (slot order); ``starts``: where its records begin in
        ``arrays`` (the loader's columns); ``keys``: the keys of its blocks in their order, on the
        table's clock (converted, int64)."""
        self.buffer, self.callback, self.convert, self.arrays = buffer, callback, convert, arrays
        self.cpus = cpus
        self.keys = [np.asarray(k, np.int64) for k in keys]
        self.ok = all(not len(k) or bool((np.diff(k) >= 0).all()) for k in self.keys)
        self.next = [0] * len(cpus)
        self.sent = list(starts)  # per region: its first record not handed out
        self.top: list[int | None] = [None] * len(cpus)  # per region: running maximum of what was sent
        self.watermark: int | None = None
        self.rows = 0
        self.last = 0.0
        self.doubt = False
        """The promise broke after rows went out: the table may not start with them (:meth:`finish` checks)."""
        self.sent_print = 0
        """:func:`fingerprint` of every row sent."""

    def _broken(self) -> None:
        """The promise no longer holds: no more rows until the table."""
        self.ok = False
        self.doubt = self.doubt or self.rows > 0

    def block(self, slot: int, ts: np.ndarray) -> None:
        """Region ``slot``'s next block is decoded: its records' raw times ``ts``."""
        j = self.next[slot]
        if self.ok and len(ts) and j < len(self.keys[slot]):
            conv = self.convert(ts, np.full(len(ts), self.cpus[slot], np.int16))
            if int(conv.min()) < int(self.keys[slot][j]):
                self._broken()  # a record before its page: the watermark promised too much
        self.next[slot] = j + 1

    def skip(self, slot: int) -> None:
        """Region ``slot``'s next block yields nothing (its CPU's data ended at a bad chunk)."""
        self.next[slot] += 1

    def _mark(self) -> int | None:
        """The watermark now: the smallest key of the blocks still to decode (None: all decoded)."""
        left = [int(k[j]) for k, j in zip(self.keys, self.next, strict=True) if j < len(k)]
        return min(left) if left else None

    def emit(self, fill: list[int]) -> None:
        """Send the rows the watermark covers now (``fill``: each region's end of decoded records)."""
        now = time.monotonic()
        if not self.ok or now - self.last < EMIT_SECONDS:
            return
        w = self._mark()
        if w is None or (self.watermark is not None and w <= self.watermark):
            return
        parts = []
        for s, c in enumerate(self.cpus):
            a, b = self.sent[s], fill[s]
            if a == b:
                continue
            raw = self.arrays["ts"][a:b]
            conv = self.convert(raw, np.full(b - a, c, np.int16))
            key = conv
            back = conv[1:] < conv[:-1]
            if bool(back.any()):
                if bool((back & (raw[1:] >= raw[:-1])).any()):
                    self._broken()  # the conversion sends this CPU's times back: no promise holds
                    return
                key = np.maximum.accumulate(conv)  # the raw times went back: the merge's running maximum
            if self.top[s] is not None and int(key[0]) < self.top[s]:
                key = np.maximum(key, self.top[s])
            k = int(np.searchsorted(key, w, side="left"))
            if k:
                parts.append((s, a, conv[:k], key[:k]))
        self._send(parts, w)
        self.last = now

    def _send(self, parts: list[tuple[int, int, np.ndarray, np.ndarray]], w: int) -> None:
        """Merge each region's rows below ``w`` as the table does and hand them out."""
        if parts:
            # the keys are each region's running maximum: a stable sort of the runs put one after
            # the other is trace-cmd's merge (ties to the lower CPU), and timsort merges sorted runs
            # in linear time
            keys = np.concatenate([key for _, _, _, key in parts])
            order = np.argsort(keys, kind="stable") if len(parts) > 1 else slice(None)
            ts = np.concatenate([conv for _, _, conv, _ in parts])[order]
            cpu = np.repeat(np.array([self.cpus[s] for s, _, _, _ in parts], np.int16),
                            [len(conv) for _, _, conv, _ in parts])[order]
            pid, eid = (np.concatenate([self.arrays[k][a:a + len(conv)] for _, a, conv, _ in parts])[order]
                        for k in ("pid", "eid"))
        else:
            ts, cpu = np.zeros(0, np.int64), np.zeros(0, np.int16)
            pid = eid = np.zeros(0, np.int32)
        for s, a, conv, key in parts:
            self.sent[s] = a + len(conv)
            self.top[s] = int(key[-1])
        self.watermark = w
        self.sent_print = (self.sent_print + fingerprint(ts, cpu, self.rows)) & 0xFFFFFFFFFFFFFFFF
        self.rows += len(ts)
        self.callback(PartialRows(self.buffer, ts.astype(np.int64, copy=False), cpu, pid, eid, w, False))

    def finish(self, table: pa.Table) -> None:
        """The table is built: send its rows not sent yet, as the last PartialRows (``done``); all of
        them (``restart``) when what was sent is not its first rows."""
        restart = False
        if self.doubt:
            head = table.slice(0, self.rows)
            restart = self.rows > table.num_rows or fingerprint(
                head.column("ts").to_numpy(), head.column("cpu").to_numpy()) != self.sent_print
        rest = table if restart else table.slice(self.rows)
        col = {k: rest.column(k).to_numpy() for k in ("ts", "cpu", "pid", "event_id")}
        last = int(col["ts"].max()) + 1 if len(rest) else None
        w = max(x for x in (self.watermark, last, 0) if x is not None)
        self.callback(PartialRows(self.buffer, col["ts"], col["cpu"], col["pid"], col["event_id"], w, True,
                                  restart))
