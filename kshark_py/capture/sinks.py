"""Sinks: where a CPU reader's pages go (a spool file, a counted discard, a FIFO or a socket).

Pages move with splice() where the destination allows it, so they never enter Python; a file that
cannot take more (a full temp dir) keeps its reader going, and what is dropped is counted exactly
(:class:`DiscardSink`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import select
import socket
import tempfile
import threading
import time

from .transport import F_SETPIPE_SZ

log = logging.getLogger("kshark_py.capture")


def splice_all(src: int, dst: int, n: int, timeout: float | None = None) -> None:
    """Move exactly ``n`` bytes that are waiting in the pipe ``src`` to ``dst`` (file or socket) in the kernel.

    ``dst`` may be non-blocking (a socket with a timeout): then we wait for it to drain, at most
    ``timeout`` seconds without progress (TimeoutError, as ``sendall`` would raise).  OSError (EINVAL:
    no splice to this file) is raised before any byte has moved only; callers fall back to read/write.
    """
    while n:
        try:
            m = os.splice(src, dst, n, flags=os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK)
        except InterruptedError:
            continue
        except BlockingIOError:
            _r, w, _x = select.select([], [dst], [], timeout)
            if not w:
                raise TimeoutError(f"peer did not read for {timeout:.0f} s") from None
            continue
        if m == 0:  # the pipe holds the bytes, so 0 means the destination is gone
            raise BrokenPipeError("splice: destination closed")
        n -= m


class Sink:
    """Where a CPU's pages go."""

    splice_fd: int | None = None
    """A file descriptor splice() can write to (pages then never enter Python), or None."""
    splice_timeout: float | None = None
    keeps_going: bool = False
    """After a write error the reader goes on draining the CPU, counting and dropping its pages (a file
    on a full disk); False: the reader ends (a peer that went away)."""

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def write_from_pipe(self, pipe_r: int, n: int) -> None:
        """Pass on the ``n`` bytes waiting in the non-blocking pipe ``pipe_r``."""
        if self.splice_fd is not None:
            try:
                splice_all(pipe_r, self.splice_fd, n, self.splice_timeout)
                return
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
                log.info("splice to the sink unavailable (%s): copying pages", e)
                self.splice_fd = None  # EINVAL comes before any byte moves: copy them instead
        while n:
            data = os.read(pipe_r, n)
            n -= len(data)
            self.write(data)

    def close(self) -> None:
        pass


class FileSink(Sink):
    """A temp file of raw pages.  On a write error (a full temp dir) :meth:`cut_to_pages` and
    ``unwritten`` give back exactly the bytes that did not make it, so the reader can count what is lost."""

    keeps_going = True

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = str(path)
        self._f = open(path, "wb", buffering=0)  # noqa: SIM115 - closed in close(); unbuffered: splice shares the fd
        self.splice_fd = self._f.fileno()
        self.unwritten = b""
        """What the last failed :meth:`write` did not write."""

    def write(self, data: bytes) -> None:
        mv = memoryview(data)
        while mv:
            try:
                n = os.write(self.splice_fd, mv)
            except InterruptedError:
                continue
            except OSError:
                self.unwritten = bytes(mv)
                raise
            mv = mv[n:]

    def cut_to_pages(self, page_size: int) -> bytes:
        """Truncate the file to whole pages; returns the bytes of the torn page cut off."""
        fd = self._f.fileno()
        size = os.fstat(fd).st_size
        whole = size - size % page_size
        torn = os.pread(fd, size - whole, whole) if size > whole else b""
        os.ftruncate(fd, whole)
        os.lseek(fd, whole, os.SEEK_SET)
        return torn

    def close(self) -> None:
        self._f.close()


class DiscardSink(Sink):
    """Counts and drops pages: what a CPU reader uses once its file could not take more (a full temp dir).

    Why drain at all: a CPU that is no longer read overruns its ring buffer, and the loss would then be
    known only as the kernel's overrun count; draining keeps counting exactly which pages and events were
    not saved, and the other CPUs keep recording."""

    def __init__(self, page_size: int, long_size: int) -> None:
        self.page_size = page_size
        self.long_size = long_size
        self.pages = 0
        self.events = 0

    def write(self, data: bytes) -> None:
        from .spool import count_events

        self.pages += -(-len(data) // self.page_size)
        self.events += count_events(data, self.page_size, self.long_size)


class FdSink(Sink):
    """A FIFO (KVM virtio-serial port): never blocks the CPU reader, whoever reads the other end.

    Why: trace-cmd 3.1.6's host (with libtracefs 1.6.4) reads its ``.out`` FIFOs only when its recorders
    flush, after the agent's CLOSE_RESP (while recording it splices 0 bytes at a time).  A blocking write
    therefore stalls as soon as the FIFO is full (64 KiB), the CPU reader stops draining trace_pipe_raw and
    the session hangs (trace-cmd's own agent hangs the same way once a CPU has written more than that).
    So pages that do not fit are spooled to an unlinked temp file and a writer thread feeds the FIFO as
    it empties; the FIFO is enlarged (F_SETPIPE_SZ) so short sessions fit entirely.  Writes are whole pages
    (<= PIPE_BUF, hence atomic), so a reader that stops at an empty FIFO never sees half a page.
    """

    PIPE_SIZES = (16 << 20, 4 << 20, 1 << 20)

    def __init__(self, fd: int, page_size: int = 4096, tmpdir: str | None = None) -> None:
        self.fd = fd
        self.page_size = page_size
        os.set_blocking(fd, False)
        self.pipe_size = 0
        for size in self.PIPE_SIZES:
            try:
                self.pipe_size = fcntl.fcntl(fd, F_SETPIPE_SZ, size)
                break
            except OSError:
                continue
        self.delivered = 0
        self.spooled = 0
        self.error: str | None = None
        self._spool_fd = -1
        self._spool_w = 0  # bytes appended to the spool
        self._spool_r = 0  # bytes of the spool delivered
        self._cond = threading.Condition()
        self._closing = False
        self._tmpdir = tmpdir
        self._thread: threading.Thread | None = None
        self._released = False

    @property
    def pending(self) -> int:
        return self._spool_w - self._spool_r

    def _write_pages(self, mv: memoryview) -> int:
        """Non-blocking page-sized writes; bytes written (stops at a full FIFO)."""
        done = 0
        ps = self.page_size
        while done < len(mv):
            try:
                n = os.write(self.fd, mv[done:done + ps])
            except BlockingIOError:
                break
            done += n
        return done

    def write(self, data: bytes) -> None:
        if self.error:
            return
        mv = memoryview(data)
        with self._cond:
            if self.pending == 0:
                try:
                    n = self._write_pages(mv)
                except OSError as e:  # EPIPE: the reader went away; what follows cannot be delivered
                    self.error = str(e)
                    return
                self.delivered += n
                mv = mv[n:]
            if not mv:
                return
            if self._spool_fd < 0:
                self._spool_fd, path = tempfile.mkstemp(prefix="kshark-fifo-", dir=self._tmpdir)
                os.unlink(path)
                self._thread = threading.Thread(target=self._feed, name="kshark-fifo-writer", daemon=True)
                self._thread.start()
            os.pwrite(self._spool_fd, mv, self._spool_w)
            self._spool_w += len(mv)
            self.spooled += len(mv)
            self._cond.notify()

    def _feed(self) -> None:
        while True:
            with self._cond:
                while self.pending == 0 and not self._closing:
                    self._cond.wait(0.5)
                if self.pending == 0 and self._closing:
                    return
            try:
                _r, w, _x = select.select([], [self.fd], [], 0.2)
                if not w:
                    continue
                with self._cond:
                    chunk = os.pread(self._spool_fd, min(self.pending, 16 * self.page_size), self._spool_r)
                    n = self._write_pages(memoryview(chunk))
                    self._spool_r += n
                    self.delivered += n
            except OSError as e:
                self.error = str(e)
                with self._cond:
                    self._spool_r = self._spool_w
                return

    def flush(self, idle_timeout: float, total_timeout: float = 3600.0) -> bool:
        """Wait until everything is in the FIFO; give up after ``idle_timeout`` s without progress."""
        deadline = time.monotonic() + total_timeout
        last, since = self.delivered, time.monotonic()
        while self.pending and not self.error:
            time.sleep(0.02)
            now = time.monotonic()
            if self.delivered != last:
                last, since = self.delivered, now
            elif now - since > idle_timeout or now > deadline:
                return False
        return not self.pending

    def close(self) -> None:
        """Called by the CPU reader when its stream ends: the feeder keeps going until :meth:`release`."""

    def release(self) -> None:
        """Stop feeding and close the FIFO and spool (undelivered bytes are logged by the caller)."""
        if self._released:
            return
        self._released = True
        with self._cond:
            self._closing = True
            self._spool_r = self._spool_w if self.error else self._spool_r
            self._cond.notify()
        if self._thread is not None and self.pending == 0:
            self._thread.join(1)
        with contextlib.suppress(OSError):
            os.close(self.fd)
        if self._spool_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._spool_fd)


class SocketSink(Sink):
    """A connected socket with a send timeout, so a host that stops reading cannot hang us forever."""

    def __init__(self, sock: socket.socket, timeout: float = 30.0) -> None:
        self.sock = sock
        sock.settimeout(timeout)
        self.splice_fd = sock.fileno()
        self.splice_timeout = timeout

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
        self.sock.close()
