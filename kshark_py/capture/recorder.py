"""Local recording from tracefs into per-CPU page streams, in a private tracefs instance.

Why an instance of our own (``instances/kshark-py-<pid>``): other users of tracing (a trace-cmd run,
perf, another kshark-py as guest agent on the same kernel) keep their top-level buffer and event
settings untouched, and cleanup is a single rmdir.  Why raw pages: ``per_cpu/cpuN/trace_pipe_raw``
yields the ring buffer's own pages, which are exactly what a trace.dat flyrecord section stores, so
recording is a copy with no decoding (shared/spec/trace-dat-format.md §8-9).

Each CPU has a reader thread that drains its trace_pipe_raw (non-blocking reads, short sleeps when
empty) into a sink: a file in the recording's spool folder (:mod:`.spool`: kept until the trace.dat is
verified) for local recording, a socket or FIFO for the guest agent.  Stopping turns tracing off first,
then each reader drains what is left (the kernel hands out the partial last page), so no event recorded
before the stop is lost.  A file that cannot take more (a full temp dir) does not stop its reader: the
CPU is still drained and what is dropped is counted exactly (:class:`DiscardSink`, :meth:`Recorder.losses`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import random
import select
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .transport import F_SETPIPE_SZ, close_pipe
from .writer import CpuData, Metadata, kernel_long_size, uname_text

log = logging.getLogger("kshark_py.capture")

TRACEFS_CANDIDATES = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
POLL_INTERVAL = 0.02
SPLICE_PIPE_SIZE = 1 << 20
"""Bytes the reader's pipe is enlarged to (the default /proc/sys/fs/pipe-max-size): one splice moves up to
this much, so a busy CPU costs a few syscalls per MiB instead of a few per 64 KiB."""
SPLICE_BATCH_PAGES = 16
"""Pages per splice when the pipe cannot be enlarged (the default pipe holds 16 pages)."""
STOP_TIMEOUT = 20.0
"""Seconds a CPU reader may take to flush after tracing stops (a sink that is not read blocks it)."""


class RecordError(Exception):
    """Recording cannot start or continue (no tracefs, not root, unknown event...)."""


def find_tracefs() -> Path:
    """The tracefs mount point, or a RecordError saying what is missing."""
    for c in TRACEFS_CANDIDATES:
        if os.path.isfile(os.path.join(c, "trace_clock")):
            return Path(c)
    raise RecordError("tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)")


def new_trace_id() -> int:
    """A random 64-bit session id, as trace-cmd's tracecmd_generate_traceid()."""
    return random.getrandbits(64)


def cpu_count_online() -> int:
    return os.cpu_count() or 1


# --- event selection --------------------------------------------------------------------------------
@dataclass(frozen=True)
class EventSpec:
    """``-e SYSTEM``, ``-e SYSTEM:EVENT``, ``-e EVENT`` or ``-e all``, with an optional filter (``-f``)."""

    system: str | None
    event: str | None
    filter: str | None = None

    @classmethod
    def parse(cls, text: str, filt: str | None = None) -> EventSpec:
        if text == "all":
            return cls(None, None, filt)
        if ":" in text:
            s, e = text.split(":", 1)
            return cls(s or None, None if e in ("", "*") else e, filt)
        if "/" in text:
            s, e = text.split("/", 1)
            return cls(s, e or None, filt)
        return cls(None, text, filt) if text else cls(None, None, filt)

    def __str__(self) -> str:
        return f"{self.system or '*'}:{self.event or '*'}"


def resolve_events(events_dir: Path, specs: Sequence[EventSpec]) -> list[tuple[str, str, str | None]]:
    """(system, event, filter) for every event the specs name; unknown names raise RecordError."""
    out: dict[tuple[str, str], str | None] = {}
    systems = sorted(p.name for p in events_dir.iterdir() if p.is_dir())
    for spec in specs:
        found = False
        if spec.system is None and spec.event is not None and (events_dir / spec.event).is_dir():
            spec = EventSpec(spec.event, None, spec.filter)  # "-e sched" names a system
        for s in systems:
            if spec.system is not None and s != spec.system:
                continue
            if s == "ftrace" and spec.system is None:
                continue
            sdir = events_dir / s
            for e in sorted(p.name for p in sdir.iterdir() if p.is_dir()):
                if spec.event is not None and e != spec.event:
                    continue
                out[(s, e)] = spec.filter
                found = True
        if not found:
            raise RecordError(f"event {spec} not found in {events_dir}")
    return [(s, e, f) for (s, e), f in out.items()]


def missing_events(tracefs: Path, specs: Sequence[EventSpec]) -> list[str]:
    """The specs that name nothing on this kernel (for a preflight check)."""
    bad = []
    for spec in specs:
        try:
            resolve_events(tracefs / "events", [spec])
        except RecordError:
            bad.append(str(spec))
    return bad


# --- metadata -----------------------------------------------------------------------------------------
def _read(path: Path | str, default: bytes = b"") -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return default


def collect_metadata(tracefs: Path, instance: Path, events: Sequence[tuple[str, str, str | None]],
                     *, cmdlines: bool = True) -> Metadata:
    """What trace-cmd stores from tracefs: headers, formats of ftrace and the recorded events, symbols."""
    ev = tracefs / "events"
    hp = _read(ev / "header_page")
    ftrace = [_read(p / "format") for p in sorted((ev / "ftrace").iterdir()) if (p / "format").is_file()]
    systems: dict[str, list[bytes]] = {}
    for s, e, _f in events:
        systems.setdefault(s, []).append(_read(ev / s / e / "format"))
    page_size = os.sysconf("SC_PAGE_SIZE")
    sub = _read(instance / "buffer_subbuf_size_kb").strip()
    if sub.isdigit():
        page_size = int(sub) * 1024
    return Metadata(
        header_page=hp, header_event=_read(ev / "header_event"), ftrace_formats=ftrace,
        event_formats=list(systems.items()), kallsyms=_read("/proc/kallsyms"),
        printk=_read(tracefs / "printk_formats"),
        cmdlines=_read(tracefs / "saved_cmdlines") if cmdlines else b"",
        trace_clock=_read(instance / "trace_clock", b"[local]\n").decode().strip(),
        uname=uname_text(), page_size=page_size, long_size=kernel_long_size(hp))


# --- sinks --------------------------------------------------------------------------------------------
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


# --- per-CPU readers ----------------------------------------------------------------------------------
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


# --- the instance ---------------------------------------------------------------------------------------
@dataclass
class Instance:
    """A tracefs instance we own: created, configured, and always removed (see :meth:`remove`)."""

    tracefs: Path
    name: str
    path: Path = field(init=False)
    enabled: list[tuple[str, str, str | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.path = self.tracefs / "instances" / self.name

    def create(self) -> None:
        try:
            os.mkdir(self.path)
        except PermissionError as e:
            raise RecordError(f"cannot create tracefs instance {self.path}: recording needs root") from e
        except FileExistsError as e:
            raise RecordError(f"tracefs instance {self.path} already exists") from e
        self.write("tracing_on", "0")

    def write(self, rel: str, value: str) -> None:
        with open(self.path / rel, "w") as f:
            f.write(value)

    def configure(self, events: Sequence[tuple[str, str, str | None]], *, buffer_kb: int | None = None,
                  clock: str | None = None) -> None:
        if buffer_kb:
            self.write("buffer_size_kb", str(buffer_kb))
        if clock:
            try:
                self.write("trace_clock", clock)
            except OSError as e:
                raise RecordError(f"trace clock {clock!r} not available: {e}") from e
        for s, e, filt in events:
            if filt:
                try:
                    self.write(f"events/{s}/{e}/filter", filt)
                except OSError as err:
                    raise RecordError(f"bad filter for {s}:{e}: {filt!r} ({err})") from err
            self.write(f"events/{s}/{e}/enable", "1")
            self.enabled.append((s, e, filt))

    def cpu_stats(self, cpu: int) -> str:
        return _read(self.path / "per_cpu" / f"cpu{cpu}" / "stats").decode(errors="replace")

    def remove(self) -> None:
        """Tracing off, events off, rmdir; best effort, never raises (called from finally blocks)."""
        if not self.path.exists():
            return
        if not remove_instance_dir(self.path):
            log.error("could not remove tracefs instance %s", self.path)


def remove_instance_dir(path: Path, tries: int = 50, wait: float = 0.05) -> bool:
    """Turn a tracefs instance off (tracing, events) and remove it; never raises.  True when it
    is gone.  rmdir fails with EBUSY for a moment after the last reader closed, hence the retries.

    Ctrl-C or SIGTERM arriving meanwhile waits until the instance is gone (an agent stopped while
    it cleans up would otherwise leave its instance behind)."""
    with signals_deferred():
        for rel in ("tracing_on", "events/enable"):
            with contextlib.suppress(OSError), open(path / rel, "w") as f:
                f.write("0")
        for _ in range(tries):
            try:
                os.rmdir(path)
                return True
            except FileNotFoundError:
                return True
            except OSError:
                time.sleep(wait)
        return False


@contextlib.contextmanager
def signals_deferred():
    """Hold SIGINT and SIGTERM until the block ends; one that came meanwhile is then handled as
    it would have been.  Python-level (handlers swapped, main thread only): blocking the signal
    with a mask would not do, since the kernel hands it to any other thread of the process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    sigs = (signal.SIGINT, signal.SIGTERM)
    old = {s: signal.signal(s, lambda signum, frame: got.append(signum)) for s in sigs}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        for s in dict.fromkeys(got):
            h = old[s]
            if callable(h):
                h(s, None)
            elif h == signal.SIG_DFL:
                os.kill(os.getpid(), s)


def parse_lost(stats: str) -> int:
    """Events lost on a CPU: ``overrun`` (overwritten) + ``dropped events`` (buffer full)."""
    lost = 0
    for line in stats.splitlines():
        key, _, val = line.partition(":")
        if key.strip() in ("overrun", "dropped events"):
            with contextlib.suppress(ValueError):
                lost += int(val.strip())
    return lost


@dataclass(frozen=True)
class CpuLoss:
    """What one CPU of a recording lost, and why."""

    cpu: int
    kernel_events: int
    """Events the kernel overwrote or dropped (its ring buffer was full: ``overrun`` + ``dropped events``)."""
    unsaved_pages: int = 0
    unsaved_events: int = 0
    """Pages (and the events in them) read from the kernel that could not be saved (``reason``)."""
    reason: str | None = None


class Recorder:
    """Records the chosen events on every CPU of this kernel in its own tracefs instance.

    ``sink_factory(cpu)`` chooses where pages go (default: files in a spool folder, see :mod:`.spool`, for
    :meth:`write_file`).  Use as a context manager, or call :meth:`close` in a finally block: the instance is
    always removed.  With ``keep_unwritten`` (the record command and the capture panel) the spool is kept by
    :meth:`cleanup_files` until a trace.dat of it has been written and verified, so nothing recorded is lost
    to a full output disk or an interrupted write (``kshark-py record --recover``).
    """

    def __init__(self, specs: Sequence[EventSpec], *, buffer_kb: int | None = None, clock: str | None = None,
                 tracefs: Path | None = None, name: str | None = None, tmpdir: str | None = None,
                 sink_factory: Callable[[int], Sink] | None = None, cpus: int | None = None,
                 keep_unwritten: bool = False) -> None:
        self.tracefs = tracefs or find_tracefs()
        if os.geteuid() != 0:
            raise RecordError("recording needs root (tracefs instances and events are root-only)")
        self.specs = list(specs) or [EventSpec(None, None)]
        self.events = resolve_events(self.tracefs / "events", self.specs)
        self.instance = Instance(self.tracefs, name or instance_name())
        self.buffer_kb = buffer_kb
        self.clock = clock
        self.ncpus = cpus or cpu_count_online()
        self.tmpdir = tmpdir
        self.spool: Path | None = None
        """The folder of raw pages and metadata (None with a ``sink_factory``, or before :meth:`setup`)."""
        self.keep_unwritten = keep_unwritten
        self.written: Path | None = None
        """The last trace.dat written from the spool and verified."""
        self._sink_factory = sink_factory
        self._note_failed = False
        self.readers: list[CpuReader] = []
        self.cpu_files: list[str] = []
        self.trace_id = new_trace_id()
        self.meta: Metadata | None = None
        self.cpustats: list[str] = []
        self.started = 0.0
        self.stopped = 0.0

    # -- lifecycle
    def setup(self, **spool_state: object) -> Metadata:
        """Create and configure the instance; returns the metadata (the agent streams it before starting).

        Recording to files: the spool folder is made and the metadata saved in it now (``spool_state``: more
        for its recording.json, e.g. the output file), so a full temp dir fails here, before recording."""
        self.instance.create()
        try:
            self.instance.configure(self.events, buffer_kb=self.buffer_kb, clock=self.clock)
            self.meta = collect_metadata(self.tracefs, self.instance.path, self.events)
            if self._sink_factory is None:
                self._make_spool(spool_state)
        except BaseException:
            self.instance.remove()
            raise
        return self.meta

    def _make_spool(self, state: dict) -> None:
        from . import spool

        assert self.meta is not None
        try:
            self.spool = spool.create(self.tmpdir)
            spool.save_metadata(self.spool, self.meta, trace_id=self.trace_id, cpu_count=self.ncpus,
                                instance=self.instance.name, **state)
        except OSError as e:
            where = self.spool or self.tmpdir or tempfile.gettempdir()
            if self.spool is not None:
                spool.remove(self.spool)
                self.spool = None
            raise RecordError(f"cannot save the recording's metadata in {where}: {e.strerror or e} (the temp "
                              "dir for raw pages: TMPDIR)") from e

    def note(self, **state: object) -> None:
        """Add to the spool's recording.json (output choices...); best effort: a full disk only loses the note."""
        from . import spool

        if self.spool is not None:
            try:
                spool.update_state(self.spool, **state)
            except OSError as e:
                if not self._note_failed:  # once: a full temp dir refuses every later note too
                    log.warning("could not update %s: %s", self.spool / spool.STATE_FILE, e.strerror or e)
                self._note_failed = True

    def start(self) -> None:
        if self.meta is None:
            self.setup()
        assert self.meta is not None
        try:
            for cpu in range(self.ncpus):
                if self._sink_factory:
                    sink = self._sink_factory(cpu)
                else:
                    assert self.spool is not None
                    path = str(self.spool / f"cpu{cpu}")
                    self.cpu_files.append(path)
                    sink = FileSink(path)
                r = CpuReader(self.instance.path / "per_cpu" / f"cpu{cpu}" / "trace_pipe_raw", cpu, sink,
                              self.meta.page_size, long_size=self.meta.long_size)
                self.readers.append(r)
            for r in self.readers:
                r.start()
            self.instance.write("tracing_on", "1")
            self.started = time.monotonic()
        except BaseException:
            self.close()
            raise

    def stop(self) -> None:
        """Tracing off, then every reader drains its CPU and ends; stats are read before removal."""
        if self.stopped:
            return
        with contextlib.suppress(OSError):
            self.instance.write("tracing_on", "0")
        self.stopped = time.monotonic()
        for r in self.readers:
            r.stop()
        for r in self.readers:
            r.join(timeout=STOP_TIMEOUT)
            if r.is_alive():
                log.error("CPU %d reader did not finish within %.0f s (its sink is not being read): "
                          "giving up on it", r.stats.cpu, STOP_TIMEOUT)
                r.close_trace_fd()
        self.cpustats = [self.instance.cpu_stats(c) for c in range(self.ncpus)]
        if self.meta is not None:
            self.meta.cmdlines = _read(self.tracefs / "saved_cmdlines")
        if self.spool is not None and self.meta is not None:
            from . import spool

            with contextlib.suppress(OSError):
                spool._write_file(self.spool / "meta" / "cmdlines", self.meta.cmdlines)
            self.note(state="stopped", cpustats=self.cpustats)

    def close(self) -> None:
        """Stop (if running), remove the instance (the spool stays until :meth:`cleanup_files`)."""
        try:
            if self.readers and not self.stopped:
                self.stop()
        finally:
            for r in self.readers:
                if r.is_alive():
                    r.close_trace_fd()
            self.instance.remove()

    @property
    def spool_kept(self) -> bool:
        """:meth:`cleanup_files` keeps the spool: pages were recorded and no verified file holds them."""
        return (self.spool is not None and self.keep_unwritten and self.written is None
                and any(r.stats.bytes for r in self.readers))

    def cleanup_files(self) -> Path | None:
        """Remove the spool, unless :attr:`spool_kept`; returns the folder kept (None: removed)."""
        from . import spool

        if self.spool is None:
            return None
        if self.spool_kept:
            spool.release(self.spool)
            return self.spool
        spool.remove(self.spool)
        return None

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
        self.cleanup_files()

    # -- results
    @property
    def lost(self) -> list[int]:
        """Events lost per CPU: the kernel's overruns and drops plus the events that could not be saved."""
        return [parse_lost(s) + (self.readers[i].stats.unsaved_events if i < len(self.readers) else 0)
                for i, s in enumerate(self.cpustats)]

    def losses(self) -> list[CpuLoss]:
        """The CPUs that lost anything, with counts and the reason (empty: a complete recording)."""
        out = []
        for cpu, text in enumerate(self.cpustats):
            r = self.readers[cpu] if cpu < len(self.readers) else None
            k = parse_lost(text)
            up, ue = (r.stats.unsaved_pages, r.stats.unsaved_events) if r else (0, 0)
            if k or up or (r and r.stats.error):
                out.append(CpuLoss(cpu, k, up, ue, r.stats.error if r else None))
        return out

    @property
    def total_bytes(self) -> int:
        return sum(r.stats.bytes for r in self.readers)

    def write_file(self, path: str | os.PathLike, *, version: int = 7, compression: str | None = "zstd",
                   extra_options: Sequence[tuple[int, bytes]] = (), clock: str | None = None) -> None:
        """The recording as a trace.dat, like trace-cmd record's output (``clock``: the buffer's clock
        name if not the instance's, e.g. "tsc2nsec"), flushed to disk and read back to check the page and
        event counts of every CPU (:class:`~kshark_py.capture.spool.OutputError` if anything is missing)."""
        from . import spool

        if self.meta is None:
            raise RecordError("nothing recorded")
        extra = list(extra_options)
        self.note(output=str(Path(path).absolute()), version=version, compression=compression, out_clock=clock,
                  extra_options=[(int(o), p.hex()) for o, p in extra])
        cpus = spool.cpu_data(self.spool, self.ncpus, self.meta.page_size) if self.spool is not None else \
            [CpuData(c, p) for c, p in enumerate(self.cpu_files)]
        spool.write_verified(path, self.meta, cpus, version=version, compression=compression,
                             trace_id=self.trace_id, cpu_count=self.ncpus, cpustats=self.cpustats,
                             extra_options=extra, clock=clock)
        self.written = Path(path)
        self.note(state="written")


def instance_name(pid: int | None = None) -> str:
    """``kshark-py-PID-XXXX``: the pid lets a later run tell an instance left by a dead process
    (:mod:`.leftovers`) from one in use."""
    return f"kshark-py-{pid or os.getpid()}-{random.getrandbits(16):04x}"
