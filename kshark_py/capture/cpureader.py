"""The per-CPU reader: a thread draining one CPU's ``trace_pipe_raw`` into a sink.

``trace_pipe_raw`` yields the ring buffer's own pages, exactly what a trace.dat flyrecord section
stores (shared/spec/trace-dat-format.md §8-9), so recording is a copy with no decoding.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from .sinks import DiscardSink, FileSink, Sink
from .transport import F_SETPIPE_SZ, close_pipe

log = logging.getLogger("kshark_py.capture")

POLL_INTERVAL = 0.02
SPLICE_PIPE_SIZE = 1 << 20
"""Bytes the reader's pipe is enlarged to (the default /proc/sys/fs/pipe-max-size): one splice moves up to
this much, so a busy CPU costs a few syscalls per MiB instead of a few per 64 KiB."""
SPLICE_BATCH_PAGES = 16
"""Pages per splice when the pipe cannot be enlarged (the default pipe holds 16 pages)."""


def _read_pipe(fd: int, n: int | None = None) -> bytes:
    """``n`` bytes waiting in the non-blocking pipe ``fd`` (None: all there is)."""
    out = bytearray()
    while n is None or len(out) < n:
        try:
            data = os.read(fd, SPLICE_PIPE_SIZE if n is None else n - len(out))
        except BlockingIOError:
            break
        except InterruptedError:
            continue
        if not data:
            break
        out += data
    return bytes(out)


@dataclass
class CpuStats:
    cpu: int
    bytes: int = 0
    """Bytes passed on to the sink (after a sink error: what it holds)."""
    pages: int = 0
    error: str | None = None
    unsaved_pages: int = 0
    """Pages read from the kernel that the sink could not take (counted and dropped after ``error``)."""
    unsaved_events: int = 0


class CpuReader(threading.Thread):
    """Drains one CPU's trace_pipe_raw into a sink until told to stop, then drains the rest.

    While recording, pages are taken with splice(), which hands out only *full* pages (as trace-cmd's
    recorder does); read() would return the partly filled page on every poll, so a slow CPU would send
    a mostly empty 4 KiB page every 20 ms.  After the stop, read() collects the partial last page.
    """

    def __init__(self, path: Path, cpu: int, sink: Sink, page_size: int, *, splice: bool = True,
                 long_size: int = 8) -> None:
        super().__init__(name=f"kshark-cpu{cpu}", daemon=True)
        self.path = path
        self.sink = sink
        self.page_size = page_size
        self.long_size = long_size
        self.stats = CpuStats(cpu)
        self.discard: DiscardSink | None = None
        """Set once the sink failed (a ``keeps_going`` sink): pages go here, counted and dropped."""
        self._stop_evt = threading.Event()
        self._fd_lock = threading.Lock()
        self.fd: int | None = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self._pipe: tuple[int, int] | None = None
        self._batch = page_size * SPLICE_BATCH_PAGES
        if splice and hasattr(os, "splice"):
            self._pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            with contextlib.suppress(OSError):
                size = fcntl.fcntl(self._pipe[1], F_SETPIPE_SZ, SPLICE_PIPE_SIZE)
                self._batch = max(self._batch, size // page_size * page_size)

    def stop(self) -> None:
        self._stop_evt.set()

    def close_trace_fd(self) -> None:
        """Release trace_pipe_raw even if the thread is stuck writing to a sink nobody reads.

        Without this a wedged peer would keep the instance busy (rmdir fails with EBUSY).
        """
        with self._fd_lock:
            if self.fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self.fd)
                self.fd = None

    def _drain_full_pages(self) -> bool:
        """Splice the full pages available into our pipe and pass them on; True if any."""
        assert self._pipe is not None
        pr, pw = self._pipe
        got = False
        while True:
            with self._fd_lock:
                if self.fd is None:
                    return got
                try:
                    n = os.splice(self.fd, pw, self._batch, flags=os.SPLICE_F_NONBLOCK)
                except BlockingIOError:
                    return got
                except InterruptedError:
                    continue
                except OSError as e:  # e.g. EINVAL: no splice on this file: plain reads from now on
                    log.info("CPU %d: splice unavailable (%s): reading pages", self.stats.cpu, e)
                    self._close_pipe()
                    return got
            if n == 0:
                return got
            self._pass_on(n=n)
            got = True

    def _close_pipe(self) -> None:
        if self._pipe is not None:
            close_pipe(self._pipe)
            self._pipe = None

    def _drain(self, final: bool = False) -> bool:
        """Read what is available; True if anything was read."""
        if self._pipe is not None and not final:
            return self._drain_full_pages()
        got = False
        while True:
            with self._fd_lock:
                if self.fd is None:
                    return got
                try:
                    data = os.read(self.fd, self.page_size)
                except BlockingIOError:
                    return got
                except InterruptedError:
                    continue
            if not data:
                return got
            self._pass_on(data=data)
            got = True

    def _pass_on(self, *, n: int = 0, data: bytes = b"") -> None:
        """Give the sink ``data``, or the ``n`` bytes waiting in our pipe; count them where they went."""
        if self.discard is not None:
            if not data and self._pipe is not None:
                data = _read_pipe(self._pipe[0], n)
            self.discard.write(data)
            self._sync_discard()
            return
        size = n or len(data)
        try:
            if data:
                self.sink.write(data)
            else:
                assert self._pipe is not None
                self.sink.write_from_pipe(self._pipe[0], n)
        except OSError as e:
            if not self.sink.keeps_going:
                raise
            self._sink_failed(e)
            return
        self.stats.bytes += size
        self.stats.pages += -(-size // self.page_size)

    def _sink_failed(self, e: OSError) -> None:
        """The sink refused a write (a full disk): keep what it holds as whole pages, count the rest as lost,
        and drop (but count) every later page of this CPU."""
        lost = b""
        with contextlib.suppress(OSError):
            if isinstance(self.sink, FileSink):
                lost = self.sink.cut_to_pages(self.page_size) + self.sink.unwritten
                self.stats.bytes = os.fstat(self.sink.splice_fd).st_size
                self.stats.pages = self.stats.bytes // self.page_size
        if self._pipe is not None:  # what a failed splice left in our pipe
            lost += _read_pipe(self._pipe[0])
        self.stats.error = e.strerror or str(e)
        where = getattr(self.sink, "path", "the sink")
        log.error("CPU %d: cannot save pages to %s: %s; this CPU's pages are counted and dropped from now on",
                  self.stats.cpu, where, self.stats.error)
        self.discard = DiscardSink(self.page_size, self.long_size)
        if lost:
            self.discard.write(lost)
        self._sync_discard()

    def _sync_discard(self) -> None:
        assert self.discard is not None
        self.stats.unsaved_pages = self.discard.pages
        self.stats.unsaved_events = self.discard.events

    def run(self) -> None:
        try:
            while not self._stop_evt.is_set():
                if not self._drain():
                    self._stop_evt.wait(POLL_INTERVAL)
            self._drain(final=True)
        except Exception as e:  # reported to the caller through stats, logged once
            self.stats.error = str(e)
            log.error("CPU %d reader stopped: %s", self.stats.cpu, e)
        finally:
            self.close_trace_fd()
            self._close_pipe()
            with contextlib.suppress(Exception):
                self.sink.close()
