"""What a front end needs to drive a recording: a preflight check, live progress, a background run.

Why here and not in the GUI: the capture package has no Qt, and the same checks and counters serve the
CLI, the capture panel and tests.  Progress is read, never pushed: a front end polls :func:`progress`
from its own thread while :class:`Recording` runs the session off that thread, so a slow disk or a
silent guest can never freeze the interface.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..loaders.text import trace_clocks
from . import kvm, leftovers
from .eventspec import EventSpec, missing_events
from .live import LiveCapture, LiveCounts
from .livecount import GuestCounts
from .recorder import Recorder
from .session import GuestConfig, HostSession, parse_guest_spec
from .tracefs import RecordError, find_tracefs, parse_lost
from .transport import host_fifos

# --- preflight ------------------------------------------------------------------------------------------
FIX_STALE_INSTANCES = "remove-stale-instances"
"""A :attr:`Check.fix`: :func:`~kshark_py.capture.leftovers.remove_stale_instances` removes what it reports."""


@dataclass(frozen=True)
class Check:
    """One preflight finding: ``level`` is "ok", "info", "warn" or "error" (errors block recording).

    ``fix`` names what a front end can offer to do about it (:data:`FIX_STALE_INSTANCES`), or None."""

    level: str
    message: str
    fix: str | None = None


def leftover_checks(tracefs: Path, tmpdir: str | os.PathLike | None = None) -> list[Check]:
    """Instances of killed kshark-py processes (offered for removal) and the raw pages they left."""
    out = []
    for inst in leftovers.stale_instances(tracefs):
        out.append(Check("warn", f"Leftover {leftovers.instance_text(inst)}: remove it (kshark-py record also "
                                 "removes such instances when it starts).", FIX_STALE_INSTANCES))
    for sp in leftovers.stale_spools(tmpdir):
        out.append(Check("warn", f"Leftover recording: {leftovers.spool_text(sp)}."))
    return out


def available_clocks(tracefs: Path | None = None) -> tuple[list[str], str | None]:
    """(clocks, selected) from tracefs ``trace_clock``."""
    try:
        text = ((tracefs or find_tracefs()) / "trace_clock").read_text()
    except (OSError, RecordError):
        return [], None
    return trace_clocks(text)


def available_events(tracefs: Path | None = None) -> dict[str, list[str]]:
    """system -> events, from ``available_events`` (what this kernel can record)."""
    out: dict[str, list[str]] = {}
    try:
        text = ((tracefs or find_tracefs()) / "available_events").read_text()
    except (OSError, RecordError):
        return out
    for line in text.splitlines():
        s, _, e = line.partition(":")
        if e:
            out.setdefault(s, []).append(e)
    for evs in out.values():
        evs.sort()
    return dict(sorted(out.items()))


def probe_agent(spec: str, timeout: float = 1.0, transport: str | None = None) -> str | None:
    """None if something accepts connections at the guest's address, else why not.

    ``transport`` ("vsock", "tcp" or None) as for :func:`~kshark_py.capture.session.parse_guest_spec`.
    Over TCP on this machine the listening table is read instead of connecting, because a connection
    would count as a host session for an agent started with ``--once``.
    """
    try:
        _name, addr = parse_guest_spec(spec, transport)
    except ValueError as e:
        return str(e)
    if addr.family == "tcp" and str(addr.host) in ("127.0.0.1", "localhost", "::1"):
        return None if tcp_listening(addr.port) else f"nothing listens on TCP port {addr.port} on this machine"
    try:
        if addr.family == "tcp":  # IPv4, IPv6 or a name: create_connection tries each address
            socket.create_connection((str(addr.host), addr.port), timeout=timeout).close()
        else:
            with socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                s.connect((int(addr.host), addr.port))
    except (OSError, AttributeError, ValueError) as e:
        return f"cannot connect to {addr}: {e}"
    return None


def tcp_listening(port: int) -> bool:
    """Is a TCP socket listening on ``port``? (/proc/net/tcp, so the probe does not connect to an agent)"""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for ln in lines:
            f = ln.split()
            if len(f) > 3 and f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def preflight(specs: Sequence[EventSpec], guests: Sequence[GuestConfig], *, clock: str | None = None,
              tsync_interval: int = 0, output_dir: str | os.PathLike | None = None,
              tracefs: Path | None = None, probe: Callable[[GuestConfig], str | None] | None = None) -> list[Check]:
    """What will happen and what is wrong, before anything is started.

    ``probe`` checks that a guest's agent answers (default :func:`probe_agent` on its address); a front end
    that re-checks on every change passes one that caches, so typing never waits for a connect timeout.
    """
    out: list[Check] = []
    if os.geteuid() != 0:
        out.append(Check("error", "Recording needs root: run kshark-py as root (tracefs instances and events "
                                  "are root-only)."))
    else:
        out.append(Check("ok", "Running as root."))
    try:
        tfs = tracefs or find_tracefs()
        out.append(Check("ok", f"tracefs is mounted at {tfs}."))
    except RecordError as e:
        out.append(Check("error", str(e)))
        tfs = None
    if tfs is not None:
        bad = missing_events(tfs, list(specs)) if specs else []
        for b in bad:
            out.append(Check("error", f"Event {b} does not exist on this kernel."))
        if not specs and guests:
            out.append(Check("info", "No host event: as trace-cmd, the host is not traced and no host file is "
                                     "written, only the guests' files."))
        elif not specs:
            out.append(Check("error", "No event selected (-e all records every event)."))
        out += leftover_checks(tfs)
        clocks, sel = available_clocks(tfs)
        use = clock or sel or "local"
        if clock and clock not in clocks:
            out.append(Check("error", f"Trace clock {clock!r} is not available (have: {' '.join(clocks)})."))
        else:
            out.append(Check("info", f"Trace clock: {use} (host and guests record with it; guest timestamps are "
                                     "converted with the time-sync samples)."))
    if output_dir is not None:
        d = Path(output_dir)
        if not d.is_dir():
            out.append(Check("error", f"Output folder {d} does not exist."))
        elif not os.access(d, os.W_OK):
            out.append(Check("error", f"Output folder {d} is not writable."))
    names = [g.display_name() for g in guests]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        out.append(Check("error", f"Guest name {dup} is used twice: each guest needs its own name (its file is "
                                  f"trace-{dup}.dat)."))
    for g in guests:
        name = g.display_name()
        try:
            addr = g.address()[1]
        except ValueError as e:
            out.append(Check("error", f"Guest {name}: bad address: {e}."))
            continue
        why = probe(g) if probe is not None else probe_agent(g.spec, transport=g.transport)
        if why:
            out.append(Check("error", f"Guest {name}: agent not reachable ({why})."))
        else:
            out.append(Check("ok", f"Guest {name}: an agent answers at {g.spec}."))
        if not g.specs:
            out.append(Check("error", f"Guest {name}: no event selected for it (trace-cmd's agent aborts such a "
                                      "request)."))
        if g.use_fifos:
            fifos = host_fifos(name)
            if fifos:
                out.append(Check("info", f"Guest {name}: {len(fifos)} FIFOs found: trace data goes through them."))
            elif g.fifos_required:
                out.append(Check("error", f"Guest {name}: FIFO transport chosen but /var/lib/trace-cmd/virt/{name}/"
                                          "trace-pipe-cpu0.out does not exist."))
        if tsync_interval < 0:
            out.append(Check("info", f"Guest {name}: no time sync (interval < 0): guest times stay on the guest "
                                     "clock."))
        else:
            every = "at start and stop" if tsync_interval == 0 else f"every {tsync_interval} ms, at start and stop"
            if g.guest_pid is None and addr.family == "vsock":
                out.append(Check("info", f"Guest {name}: time sync {every}: kvm (the guest's TSC offsets) if its "
                                         "CID's process is found and the clock is x86-tsc, else ptp."))
            else:
                forecast = clock or (kvm.TSC_CLOCK if not clock and kvm.host_supported() and kvm.tsc2nsec()
                                     and all(x.guest_pid is not None for x in guests) else None)
                why_not_kvm = kvm.kvm_unavailable_reason(g.guest_pid, forecast)
                out.append(Check("info", f"Guest {name}: time sync {every}: " + (
                    "kvm, from the guest's TSC offsets in debugfs (if the agent supports it; else ptp)."
                    if why_not_kvm is None else f"ptp over the agent connection (not kvm: {why_not_kvm}).")))
    return out


def new_recording_dir(parent: str | os.PathLike, now: float | None = None) -> Path:
    """Create ``PARENT/kshark-YYYYmmdd-HHMMSS`` (``-2``, ``-3``... if taken) for one recording's files.

    Why a folder per recording: readers pair ``trace.dat`` with every ``trace-NAME.dat`` beside it, so a new
    recording in the same folder would be read together with guest files left by an older one.
    """
    base = Path(parent) / time.strftime("kshark-%Y%m%d-%H%M%S", time.localtime(now))
    for k in range(1, 1000):
        d = base if k == 1 else base.with_name(f"{base.name}-{k}")
        try:
            d.mkdir()
        except FileExistsError:
            continue
        return d
    raise FileExistsError(f"{base}: no free name")


# --- live progress --------------------------------------------------------------------------------------
@dataclass
class CpuProgress:
    where: str  # "host" or the guest's name
    cpu: int
    bytes: int
    events: int | None  # None: not known (a guest's counts need a GuestCounts that is polled)
    lost: int | None
    lost_unknown_pages: int = 0
    """Guest pages flagged as following dropped events without a count (``lost`` is then a lower bound)."""
    partial: bool = False
    """A live view skipped some of this CPU's pages: ``events`` and ``lost`` count the others (lower bounds)."""


@dataclass
class Progress:
    elapsed: float
    cpus: list[CpuProgress] = field(default_factory=list)
    state: str = ""


def _stat_value(stats: str, key: str) -> int | None:
    for line in stats.splitlines():
        k, _, v = line.partition(":")
        if k.strip() == key:
            with contextlib.suppress(ValueError):
                return int(v.strip())
    return None


def progress(session: HostSession, counts: GuestCounts | LiveCounts | None = None) -> Progress:
    """Counters of a running (or finished) session; cheap enough to poll several times a second.

    Host CPUs: bytes, and events and lost events from tracefs ``per_cpu/cpuN/stats``.  Guest CPUs: bytes
    received and, with ``counts`` (polled by whoever runs the session, e.g. :class:`Recording`), the events
    and lost events in the pages counted so far; nothing is decoded here.
    """
    rec = session.recorder
    t0 = rec.started or time.monotonic()
    t1 = rec.stopped or time.monotonic()
    p = Progress(max(0.0, t1 - t0) if rec.started else 0.0)
    for i, r in enumerate(rec.readers):
        stats = rec.cpustats[i] if i < len(rec.cpustats) else rec.instance.cpu_stats(i)
        ev = _stat_value(stats, "read events")
        lost = parse_lost(stats) + r.stats.unsaved_events if stats else None  # + what a full temp dir dropped
        p.cpus.append(CpuProgress("host", i, r.stats.bytes, ev, lost))
    for g in session.guests:
        for r in list(g.receivers):
            c = counts.counter(g.name, r.cpu) if counts is not None else None
            if c is None:
                p.cpus.append(CpuProgress(g.name, r.cpu, r.bytes, None, None))
            else:
                p.cpus.append(CpuProgress(g.name, r.cpu, r.bytes, c.events, c.lost, c.lost_unknown_pages,
                                          bool(getattr(c, "gap_bytes", 0))))
    return p


@dataclass(frozen=True)
class StreamTotal:
    """One source's events and lost events (host, or a guest), summed over its CPUs."""

    where: str
    events: int | None
    """None: some CPU's count is unknown (a guest's metadata could not be read)."""
    lost: int | None
    lost_unknown_pages: int = 0


def stream_totals(p: Progress) -> list[StreamTotal]:
    """Per source, in the order of :func:`progress`'s rows: what the capture panel's total rows show."""
    by: dict[str, list[CpuProgress]] = {}
    for c in p.cpus:
        by.setdefault(c.where, []).append(c)
    out = []
    for where, cs in by.items():
        ev = None if any(c.events is None for c in cs) else sum(c.events or 0 for c in cs)
        lost = None if any(c.lost is None for c in cs) else sum(c.lost or 0 for c in cs)
        out.append(StreamTotal(where, ev, lost, sum(c.lost_unknown_pages for c in cs)))
    return out


def total_lines(totals: list[StreamTotal]) -> list[str]:
    """``host: 1,234 events, 0 events lost`` per source (``guest NAME: ...`` for guests)."""
    out = []
    for t in totals:
        who = t.where if t.where == "host" else f"guest {t.where}"
        ev = "? events" if t.events is None else f"{t.events:,} events"
        lost = "? events lost" if t.lost is None else f"{t.lost:,}{'+' if t.lost_unknown_pages else ''} events lost"
        out.append(f"{who}: {ev}, {lost}")
    return out


def loss_lines(rec: Recorder) -> list[str]:
    """One line per CPU of a stopped recording that lost events: how many, and why (empty: nothing lost)."""
    out = []
    for c in rec.losses():
        parts = []
        if c.unsaved_pages or c.reason:
            where = f" in {rec.spool}" if rec.spool is not None else ""
            parts.append(f"{c.unsaved_pages:,} pages ({c.unsaved_events:,} events) not saved: "
                         f"{c.reason or 'write error'}{where} (the temp dir for raw pages: TMPDIR)")
        if c.kernel_events:
            parts.append(f"{c.kernel_events:,} events dropped by the kernel (its ring buffer was full: a bigger "
                         "buffer (-b KB), fewer events, or a faster disk)")
        out.append(f"CPU{c.cpu}: " + "; ".join(parts))
    return out


def _guest_text(name: str, text: str) -> str:
    """``guest NAME: text``, once (channel errors already start with it)."""
    return text if text.startswith(f"guest {name}:") else f"guest {name}: {text}"


# --- a recording in a background thread -------------------------------------------------------------------
COUNT_INTERVAL = 0.25
"""Seconds between two counts of the guests' new pages while recording."""


class Recording(threading.Thread):
    """start -> (command | duration | stop()) -> stop -> write, off the caller's thread.

    ``files`` holds the written paths when done; ``error`` the reason it failed; ``warnings`` what went wrong
    with guests while the rest was recorded (a guest dropped at start, one that stopped answering).  Always cleans up
    (tracefs instance, temp files), whatever happens.  ``counts`` holds the guests' live event counts:
    this thread counts the new guest pages every :data:`COUNT_INTERVAL` s (so a front end that shows them
    never decodes anything), and all the rest once the streams have ended, before the files are written.
    """

    def __init__(self, session: HostSession, *, command: str | None = None, duration: float | None = None,
                 live: LiveCapture | None = None) -> None:
        super().__init__(name="kshark-recording", daemon=True)
        self.session = session
        self.command = shlex.split(command) if command else []
        self.duration = duration
        self.files: list[Path] = []
        self.error: str | None = None
        self.warnings: list[str] = []
        self.state = "starting"
        self._stop_req = threading.Event()
        self._proc: subprocess.Popen | None = None
        self.counts: GuestCounts | LiveCounts = live.counts() if live is not None else GuestCounts(session)
        """The guests' live event counts (with a live model: its own decoding, each page decoded once)."""
        self.live = live
        """The events themselves as they arrive (a live view's source), polled with the counts; None: off."""
        self.kept: Path | None = None
        self.losses: list[str] = []
        """One line per host CPU that lost events (how many, why), once written."""
        """The host's raw pages kept after a failed write (a full disk): ``kshark-py record --recover`` it."""

    def request_stop(self) -> None:
        self._stop_req.set()
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(OSError):
                self._proc.terminate()

    def run(self) -> None:
        s = self.session
        try:
            s.start()
            self.state = "recording"
            deadline = time.monotonic() + self.duration if self.duration else None
            if self.command:
                self._proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL)
            next_count = 0.0
            while not self._stop_req.is_set():
                if self._proc is not None and self._proc.poll() is not None:
                    break
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                if now >= next_count:
                    self.counts.poll()
                    next_count = now + COUNT_INTERVAL
                self._stop_req.wait(0.05)
            if self._proc is not None and self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
            self.state = "stopping"
            s.stop()
            self.state = "counting"
            self.counts.poll(None, wait=True)  # the streams have ended: the final counts (and live events)
            self.state = "writing"
            self.files = s.write()
            self.warnings = [g.error if g.failed else
                             _guest_text(g.name, g.error if g.kept else f"{g.error} (its data so far is kept)")
                             for g in s.guests if g.error]
            if s.record_host:
                self.losses = [f"Host {line}" for line in loss_lines(s.recorder)]
            self.state = "done"
        except Exception as e:  # shown to the user; the session is cleaned up below
            self.error = str(e) or type(e).__name__
            self.warnings = [_guest_text(g.name, g.error) for g in s.guests if g.kept is not None and g.error]
            self.state = "failed"
            with contextlib.suppress(Exception):
                s.abort()
        finally:
            with contextlib.suppress(Exception):
                self.kept = s.close()
            if self.kept is not None and self.error:
                self.error += (f"; the recording is kept in {self.kept}: kshark-py record --recover {self.kept} "
                               "writes its trace.dat")
