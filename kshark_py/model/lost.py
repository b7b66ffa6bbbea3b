"""Where the kernel dropped events (ring buffer full), in the merged view, with the counts.

The loader records each loss as (stream row of the first event after it, time, CPU, count; -1 when
the page header did not say how many).  The event list shows a row there (KernelShark's
``missed_events`` entry, worded as ``trace-cmd report`` prints it) and the graph's red marks
explain themselves on hover; both read this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .merged import merged_gather
from .session import Session

__all__ = ["LostEvents", "lost_events", "lost_text", "lost_near", "loss_gaps", "spans_loss"]

LOST_EVENT_NAME = "missed_events"
"""The event column of a loss row: KernelShark's name for its custom overflow entry."""


def lost_text(count: int) -> str:
    """What ``trace-cmd report`` prints after ``CPU:N`` where events were dropped."""
    return f"[{count} EVENTS DROPPED]" if count >= 0 else "[EVENTS DROPPED]"


@dataclass
class LostEvents:
    """Every loss of a session, sorted by the merged index of the event that follows it."""

    merged: np.ndarray  # int64 merged index of the first event after the loss
    stream: np.ndarray  # int16
    cpu: np.ndarray  # int16
    count: np.ndarray  # int64, -1: unknown

    def __len__(self) -> int:
        return len(self.merged)


def lost_events(session: Session) -> LostEvents:
    """The losses of every stream placed in the merged view (array operations only)."""
    m = session.merged()
    per: list[np.ndarray | None] = []
    tables = []
    for st in session.streams:
        lost = st.buffer.lost
        tables.append(lost)
        if lost.num_rows == 0:
            per.append(None)
            continue
        mask = np.zeros(len(st.buffer.events), bool)
        rows = lost.column("row").to_numpy()
        mask[rows[(rows >= 0) & (rows < len(mask))]] = True
        per.append(mask)
    if all(p is None for p in per):
        z = np.zeros(0, np.int64)
        return LostEvents(z, z.astype(np.int16), z.astype(np.int16), z)
    at = np.flatnonzero(merged_gather(m, per, fill=False))
    stream = np.asarray(m.stream[at], np.int16) if len(at) else np.zeros(0, np.int16)
    row = np.asarray(m.row[at], np.int64) if len(at) else np.zeros(0, np.int64)
    cpu = np.zeros(len(at), np.int16)
    count = np.zeros(len(at), np.int64)
    for si, lost in enumerate(tables):
        sel = stream == si
        if not sel.any():
            continue
        lrow = lost.column("row").to_numpy()
        o = np.argsort(lrow, kind="stable")
        k = o[np.searchsorted(lrow, row[sel], sorter=o)]
        cpu[sel] = lost.column("cpu").to_numpy()[k]
        count[sel] = lost.column("count").to_numpy()[k]
    return LostEvents(at.astype(np.int64), stream, cpu, count)


def lost_near(session: Session, stream: int, cpu: int, ts: int, tolerance: int) -> list[tuple[int, int]]:
    """(time, count) of the losses on one CPU of one stream within ``tolerance`` ns of ``ts``."""
    lost = session.streams[stream].buffer.lost
    if lost.num_rows == 0:
        return []
    t = lost.column("ts").to_numpy()
    sel = (lost.column("cpu").to_numpy() == cpu) & (np.abs(t - ts) <= tolerance)
    return list(zip(t[sel].tolist(), lost.column("count").to_numpy()[sel].tolist(), strict=True))


def loss_gaps(buffer) -> tuple[np.ndarray, np.ndarray]:
    """(from, to) in the buffer's ns of each stretch where the kernel dropped events, sorted by ``from``.

    A mark sits on the first record after the loss, but the dropped events came anywhere after
    the CPU's previous record: the stretch runs from that record's time (the int64 minimum when the
    mark opens the CPU's data) to the mark's.  An interval measured across such a stretch (a
    wakeup, a latency pair) may have lost the event that ended it earlier, so the analyses flag it
    with :func:`spans_loss`.  One pass over the CPU column per CPU that lost events."""
    lost = buffer.lost
    if lost.num_rows == 0:
        z = np.zeros(0, np.int64)
        return z, z
    rows = lost.column("row").to_numpy().astype(np.int64)
    to = lost.column("ts").to_numpy().astype(np.int64)
    lcpu = lost.column("cpu").to_numpy()
    t = buffer.events
    ev_cpu = t.column("cpu").to_numpy()
    ev_ts = t.column("ts").to_numpy()
    frm = np.full(len(rows), np.iinfo(np.int64).min, np.int64)
    for c in np.unique(lcpu).tolist():
        sel = np.flatnonzero(lcpu == c)
        crow = np.flatnonzero(ev_cpu == c)
        k = np.searchsorted(crow, rows[sel]) - 1
        ok = k >= 0
        frm[sel[ok]] = ev_ts[crow[k[ok]]]
    o = np.argsort(frm, kind="stable")
    return frm[o], to[o]


def spans_loss(gaps: tuple[np.ndarray, np.ndarray], start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Which intervals [start, end] meet a stretch of :func:`loss_gaps` (bounds included): a
    stretch that begins by ``end`` and ends at or after ``start``.  Vectorized: among the stretches
    begun by ``end`` (a prefix, they are sorted), the latest end decides."""
    frm, to = gaps
    out = np.zeros(len(start), bool)
    if not len(frm) or not len(start):
        return out
    latest = np.maximum.accumulate(to)
    k = np.searchsorted(frm, end, side="right")
    has = k > 0
    out[has] = latest[k[has] - 1] >= start[has]
    return out
