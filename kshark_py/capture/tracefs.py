"""tracefs: where it is, the instances we own (create, configure, remove), lost-event counts and
the metadata trace-cmd copies from it into a trace.dat.

Why an instance of our own (``instances/kshark-py-<pid>``): other users of tracing (a trace-cmd run,
perf, another kshark-py as guest agent on the same kernel) keep their top-level buffer and event
settings untouched, and cleanup is a single rmdir.  Everything that touches tracefs files other
than the per-CPU ``trace_pipe_raw`` (read by :mod:`.cpureader`) lives here, so :mod:`.kvm` and
:mod:`.rawevents` use it without pulling in the recorder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .writer import Metadata, kernel_long_size, uname_text

log = logging.getLogger("kshark_py.capture")

TRACEFS_CANDIDATES = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


class RecordError(Exception):
    """Recording cannot start or continue (no tracefs, not root, unknown event...)."""


def find_tracefs() -> Path:
    """The tracefs mount point, or a RecordError saying what is missing."""
    for c in TRACEFS_CANDIDATES:
        if os.path.isfile(os.path.join(c, "trace_clock")):
            return Path(c)
    raise RecordError("tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)")


def cpu_count_online() -> int:
    return os.cpu_count() or 1


def read_tracefs_file(path: Path | str, default: bytes = b"") -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return default


def collect_metadata(tracefs: Path, instance: Path, events: Sequence[tuple[str, str, str | None]],
                     *, cmdlines: bool = True) -> Metadata:
    """What trace-cmd stores from tracefs: headers, formats of ftrace and the recorded events, symbols."""
    ev = tracefs / "events"
    hp = read_tracefs_file(ev / "header_page")
    ftrace = [read_tracefs_file(p / "format") for p in sorted((ev / "ftrace").iterdir()) if (p / "format").is_file()]
    systems: dict[str, list[bytes]] = {}
    for s, e, _f in events:
        systems.setdefault(s, []).append(read_tracefs_file(ev / s / e / "format"))
    page_size = os.sysconf("SC_PAGE_SIZE")
    sub = read_tracefs_file(instance / "buffer_subbuf_size_kb").strip()
    if sub.isdigit():
        page_size = int(sub) * 1024
    return Metadata(
        header_page=hp, header_event=read_tracefs_file(ev / "header_event"), ftrace_formats=ftrace,
        event_formats=list(systems.items()), kallsyms=read_tracefs_file("/proc/kallsyms"),
        printk=read_tracefs_file(tracefs / "printk_formats"),
        cmdlines=read_tracefs_file(tracefs / "saved_cmdlines") if cmdlines else b"",
        trace_clock=read_tracefs_file(instance / "trace_clock", b"[local]\n").decode().strip(),
        uname=uname_text(), page_size=page_size, long_size=kernel_long_size(hp))


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
        return read_tracefs_file(self.path / "per_cpu" / f"cpu{cpu}" / "stats").decode(errors="replace")

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


def instance_name(pid: int | None = None) -> str:
    """``kshark-py-PID-XXXX``: the pid lets a later run tell an instance left by a dead process
    (:mod:`.leftovers`) from one in use."""
    return f"kshark-py-{pid or os.getpid()}-{random.getrandbits(16):04x}"
