"""Live event and lost-event counts of guest page streams, while they are being received.

The host receives each guest CPU's ring-buffer pages as a byte stream that a
:class:`~kshark_py.capture.transport.StreamReceiver` splices into a temp file; the pages never enter
Python on the data path.  To show how many events (and lost events) arrived, a :class:`StreamCounter`
decodes, on each poll, only the *complete pages added since the previous poll* with the reader's own
page decoder (:func:`kshark_py.loaders.pages.decode_pages`), using the page size and page layout the
reader finds in the metadata the guest sent.  Pages are independent (each carries its own timestamp and
commit), so counting them in slices gives exactly what the reader finds in the finished file.

Why on poll and not in the receiver: the data path stays kernel-to-kernel; whoever runs the session
(:class:`~kshark_py.capture.control.Recording`) polls off the data path and off any GUI thread, with a
per-poll byte budget so a burst cannot hold it up, and counts the rest once the streams have ended.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..loaders.layout import Layouts
from ..loaders.pages import DecodedPages, decode_pages

if TYPE_CHECKING:
    from .session import GuestSession, HostSession
    from .transport import StreamReceiver

log = logging.getLogger("kshark_py.capture")

SLICE_BYTES = 16 << 20
"""Pages decoded per decode_pages call (bounds the temporary per-record arrays)."""
POLL_BUDGET = 16 << 20
"""Bytes of new pages one poll decodes at most, all streams together (~60 ms; the rest waits for later polls)."""


@dataclass(frozen=True)
class PageFormat:
    """How the guest's pages are laid out, as the reader sees them."""

    page_size: int
    lay: Layouts
    data_offset: int


def read_guest_metadata(path: str | os.PathLike) -> tuple[PageFormat, str | None]:
    """(page format, VERSION option: which program wrote it, e.g. trace-cmd's "3.1.6 ...") of a guest's
    streamed metadata, opened with our reader."""
    from ..loaders.tracedat import open_trace

    tf = open_trace(path)
    try:
        fmt = PageFormat(tf.page_size, tf.lay, tf.header_page.data_offset)
        try:
            version = tf.meta.version
        except Exception:  # the version only feeds a hint; the counts do not need it
            version = None
        return fmt, version
    finally:
        tf.close()


def is_trace_cmd_agent(version: str | None) -> bool:
    """Did trace-cmd's agent write this guest metadata?  (Its VERSION option starts with its version number;
    ours says "kshark-py ...".)

    Why it matters: trace-cmd's agent reads each guest CPU's ring buffer with blocking reads, which the kernel
    wakes only once the buffer is ``buffer_percent`` full (50 % by default, the guest's tracefs setting), so
    its pages arrive in bursts and a quiet guest sends nothing until Stop; ours sends every full page.
    """
    return bool(version) and version[:1].isdigit()  # type: ignore[index]


class StreamCounter:
    """Events and lost events in the complete pages of one growing per-CPU page file."""

    def __init__(self, path: str | os.PathLike, fmt: PageFormat) -> None:
        self.path = path
        self.fmt = fmt
        self.counted_bytes = 0
        """Bytes (whole pages) from the start of the file already counted."""
        self.pages = 0
        self.events = 0
        self.lost = 0
        """Sum of the missed-event counts the pages store (as the reader's ``lost_events``)."""
        self.lost_unknown_pages = 0
        """Pages flagged as following dropped events without a count (as the reader's ``lost_unknown_pages``)."""
        self.bad_pages = 0
        self.error: str | None = None

    def update(self, budget: int | None = None) -> int:
        """Count the complete pages added since the last call (at most ``budget`` bytes); returns bytes counted."""
        ps = self.fmt.page_size
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return 0
        end = size - size % ps
        if budget is not None:
            end = min(end, self.counted_bytes + max(ps, budget - budget % ps))
        start = self.counted_bytes
        if end <= start:
            return 0
        with open(self.path, "rb") as f:
            pos = start
            while pos < end:
                n = min(SLICE_BYTES - SLICE_BYTES % ps, end - pos)
                data = self._read(f, pos, n)
                n = len(data) - len(data) % ps
                if n == 0:
                    break
                self._count(data[:n])
                pos += n
        self.counted_bytes = pos
        return pos - start

    @staticmethod
    def _read(f, pos: int, n: int) -> np.ndarray:
        """Bytes [pos, pos+n) of the open file (a subclass that keeps them maps them instead)."""
        f.seek(pos)
        return np.frombuffer(f.read(n), np.uint8)

    def safe_update(self, budget: int | None = None) -> int:
        """:meth:`update`, but a failure stops this counter (logged once) instead of the caller."""
        if self.error is not None:
            return 0
        try:
            return self.update(budget)
        except Exception as e:  # counting must never break a recording
            self.error = str(e) or type(e).__name__
            log.warning("live event count of %s stopped: %s", self.path, self.error)
            return 0

    def _count(self, data: np.ndarray) -> None:
        self._tally(decode_pages(data, self.fmt.page_size, self.fmt.lay, self.fmt.data_offset))

    def _tally(self, dec: DecodedPages) -> None:
        m = dec.missed
        self.pages += dec.n_pages
        self.events += len(dec.ts)
        self.lost += int(m[m > 0].sum())
        self.lost_unknown_pages += int((m < 0).sum())
        self.bad_pages += len(dec.bad_pages)


class GuestCounts:
    """Per guest CPU counters of a :class:`~kshark_py.capture.session.HostSession`'s guests.

    Thread-safe: :meth:`poll` may be called from a front end's timer and from the recording thread (the
    final, unbudgeted count after the streams ended); a poll that finds another in progress returns at
    once, and the counts read meanwhile are those of the pages counted so far.
    """

    def __init__(self, session: HostSession) -> None:
        self.session = session
        self._formats: dict[str, PageFormat | None] = {}
        self.agent_versions: dict[str, str | None] = {}
        """Guest name -> the VERSION its metadata carries (see :func:`is_trace_cmd_agent`), once read."""
        self._counters: dict[tuple[str, int], StreamCounter] = {}
        self._lock = threading.Lock()
        self._turn = 0

    def poll(self, budget: int | None = POLL_BUDGET, *, wait: bool = False) -> int:
        """Count the new complete pages of every guest stream, ``budget`` bytes in all (None: everything).

        A budget is shared by the streams in turn, starting one further on each poll, so a busy CPU does
        not starve the others.  Returns the bytes counted.  With ``wait`` it waits for a poll in progress
        instead of skipping.
        """
        if not self._lock.acquire(blocking=wait):
            return 0
        try:
            counters = [c for g in self.session.guests for r in list(g.receivers)
                        if (c := self._counter(g, r)) is not None]
            if not counters:
                return 0
            self._turn = (self._turn + 1) % len(counters)
            counters = counters[self._turn:] + counters[:self._turn]
            done = 0
            for k, c in enumerate(counters):
                if budget is None:
                    done += c.safe_update()
                    continue
                left = budget - done
                if left <= 0:
                    break
                done += c.safe_update(max(left // (len(counters) - k), 1))
            if budget is not None and done < budget:  # what the quiet streams left over
                for c in counters:
                    if done >= budget:
                        break
                    done += c.safe_update(budget - done)
            return done
        finally:
            self._lock.release()

    def counter(self, guest: str, cpu: int) -> StreamCounter | None:
        return self._counters.get((guest, cpu))

    def _counter(self, g: GuestSession, r: StreamReceiver) -> StreamCounter | None:
        key = (g.name, r.cpu)
        c = self._counters.get(key)
        if c is not None:
            return c
        if g.name not in self._formats:
            # receivers exist only once the guest's metadata is complete in its file
            try:
                self._formats[g.name], self.agent_versions[g.name] = read_guest_metadata(g.file)
            except Exception as e:  # shown as unknown counts; the recording itself is unaffected
                log.warning("guest %s: cannot read the page layout from its metadata (%s): no live event counts",
                            g.name, e)
                self._formats[g.name] = None
        fmt = self._formats[g.name]
        if fmt is None:
            return None
        c = self._counters[key] = StreamCounter(r.path, fmt)
        return c


def cpu_lost_text(lost: int | None, unknown_pages: int = 0) -> str:
    """"12", or "12+" when some pages say events were dropped without saying how many."""
    if lost is None:
        return "—"
    return f"{lost}+" if unknown_pages else str(lost)
