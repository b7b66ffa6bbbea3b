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

__all__ = ["LostEvents", "lost_events", "lost_text", "lost_near"]

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
