"""Local recording from tracefs into per-CPU page streams, in a private tracefs instance.

Why an instance of our own (``instances/kshark-py-<pid>``): other users of tracing (a trace-cmd run,
perf, another kshark-py as guest agent on the same kernel) keep their top-level buffer and event
settings untouched, and cleanup is a single rmdir.  Why raw pages: ``per_cpu/cpuN/trace_pipe_raw``
yields the ring buffer's own pages, which are exactly what a trace.dat flyrecord section stores, so
recording is a copy with no decoding (shared/spec/trace-dat-format.md §8-9).

Each CPU has a reader thread (:mod:`.cpureader`) that drains its trace_pipe_raw (non-blocking reads, short sleeps when
empty) into a sink: a file in the recording's spool folder (:mod:`.spool`: kept until the trace.dat is
verified) for local recording, a socket or FIFO for the guest agent.  Stopping turns tracing off first,
then each reader drains what is left (the kernel hands out the partial last page), so no event recorded
before the stop is lost.  A file that cannot take more (a full temp dir) does not stop its reader: the
CPU is still drained and what is dropped is counted exactly (:class:`~.sinks.DiscardSink`, :meth:`Recorder.losses`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .cpureader import CpuReader
from .eventspec import EventSpec, resolve_events
from .sinks import FileSink, Sink
from .tracefs import (
    Instance,
    RecordError,
    collect_metadata,
    cpu_count_online,
    find_tracefs,
    instance_name,
    parse_lost,
    read_tracefs_file,
)
from .writer import CpuData, Metadata

log = logging.getLogger("kshark_py.capture")

STOP_TIMEOUT = 20.0
"""Seconds a CPU reader may take to flush after tracing stops (a sink that is not read blocks it)."""


def new_trace_id() -> int:
    """A random 64-bit session id, as trace-cmd's tracecmd_generate_traceid()."""
    return random.getrandbits(64)


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
            self.meta.cmdlines = read_tracefs_file(self.tracefs / "saved_cmdlines")
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
