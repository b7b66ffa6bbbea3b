"""What killed kshark-py processes left behind: tracefs instances still recording, spool folders of raw pages.

Why: SIGKILL (kill -9, the OOM killer, a container stopped) runs no cleanup.  The process's tracefs instance
then goes on recording (``tracing_on`` 1, its ring buffers full, events still enabled: memory and CPU for
nothing) and its raw pages stay in the temp dir.  Every instance and spool folder we make carries the pid of
its process (``kshark-py-PID-XXXX``, ``kshark-py-PURPOSE-PID-N-XXXXXX``, ``kshark-rec-PID-XXXXXXXX``), so a
later run can tell the leftovers of dead processes from those in use.

An instance is never touched while its process runs.  A process of another pid namespace (a container)
has a pid that means nothing here; its instance, though, has files open while it records, and the kernel
then refuses to remove it (EBUSY): such an instance is reported as in use and left alone.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from .spool import SpoolInfo, pid_running, stale_spools

INSTANCE_RE = re.compile(r"^kshark-py-(?:[a-z][a-z_-]*-)?(\d+)-[0-9a-f]")
"""Our instance names (tracefs.instance_name, rawevents.TempInstance); group 1 is the pid."""


@dataclass(frozen=True)
class StaleInstance:
    """A tracefs instance of ours whose process no longer runs."""

    path: Path
    pid: int
    recording: bool
    """Its tracing_on was 1 (it was still filling its ring buffers)."""

    @property
    def name(self) -> str:
        return self.path.name


def instance_pid(name: str) -> int | None:
    m = INSTANCE_RE.match(name)
    return int(m.group(1)) if m else None


def stale_instances(tracefs: Path) -> list[StaleInstance]:
    """Our instances whose process is gone (an instance of a running process is never listed)."""
    out = []
    try:
        names = sorted(p.name for p in (tracefs / "instances").iterdir())
    except OSError:
        return []
    for name in names:
        pid = instance_pid(name)
        if pid is None or pid_running(pid):
            continue
        path = tracefs / "instances" / name
        try:
            on = (path / "tracing_on").read_text().strip() == "1"
        except OSError:
            continue  # removed meanwhile
        out.append(StaleInstance(path, pid, on))
    return out


def remove_instance(inst: StaleInstance, tries: int = 10, wait: float = 0.05) -> str | None:
    """rmdir a stale instance; None when it is gone, else why not.  Nothing is written to it first: an
    instance with a file open (in use by a process we cannot see) makes rmdir fail with EBUSY and stays
    exactly as it was."""
    if pid_running(inst.pid):  # looked up again: the pid may have been taken since the listing
        return f"process {inst.pid} runs"
    err: OSError | None = None
    for _ in range(tries):
        try:
            os.rmdir(inst.path)
            return None
        except FileNotFoundError:
            return None
        except OSError as e:
            err = e
            time.sleep(wait)
    assert err is not None
    if err.errno == 16:  # EBUSY
        return "in use (a file of it is open: a process of another pid namespace?)"
    return err.strerror or str(err)


def remove_stale_instances(tracefs: Path) -> list[tuple[StaleInstance, str | None]]:
    """Remove every stale instance; (instance, None or why it stays) each."""
    return [(inst, remove_instance(inst)) for inst in stale_instances(tracefs)]


def instance_text(inst: StaleInstance) -> str:
    """``tracefs instance NAME of process PID, which no longer runs (still recording)``."""
    state = "still recording" if inst.recording else "not recording"
    return f"tracefs instance {inst.name} of process {inst.pid}, which no longer runs ({state})"


def spool_text(s: SpoolInfo) -> str:
    """A stale spool folder in one line, with the command that writes it into a trace.dat."""
    size = f"{s.size / 1e6:,.1f} MB" if s.size >= 100_000 else f"{s.size:,} bytes"
    if s.state is None:
        return (f"{s.path}: {size} of raw pages of process {s.pid}, which no longer runs, without the metadata "
                "to make a trace.dat of them: remove the folder")
    dest = f" (meant for {s.output})" if s.output else ""
    who = f"of process {s.pid}, which no longer runs" if not pid_running(s.pid) else \
        f"kept by process {s.pid} after its write failed"
    return (f"{s.path}: {size} of raw pages of a recording{dest} {who}: "
            f"kshark-py record --recover {s.path} writes its trace.dat (or remove the folder)")


__all__ = ["StaleInstance", "instance_pid", "instance_text", "remove_instance", "remove_stale_instances",
           "spool_text", "stale_instances", "stale_spools"]
