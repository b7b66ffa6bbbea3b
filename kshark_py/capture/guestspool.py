"""A guest's received data, kept when its ``trace-<guest>.dat`` cannot be completed (a full disk).

Why: the host completes a guest's file after the recording, appending the CPU data it received (and the
time-sync options) to the metadata the agent sent.  If that append fails, the received pages are the only
copy of the guest's recording, so they must outlive the session, like the host's own pages
(:mod:`.spool`), and ``kshark-py record --recover DIR`` must finish the file later.

A guest folder, ``kshark-guest-NAME-PID-XXXXXXXX/`` beside the output file (the same file system: keeping
it is a rename, which a full disk allows):

* ``cpuN``: what the guest's CPU N sent (raw ring-buffer pages), written there while recording;
* ``head.dat``: the agent's file (header, metadata, first options), moved there when the append failed;
* ``guest.json``: the guest's name, the file it was meant to become, the recording process, and (once
  kept) the options and clock the host was appending.

Removed when the guest's file is complete, or once ``--recover`` has written and verified it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .spool import OutputError, SpoolError, count_pages, cpu_data, partial_name, pid_running, verify
from .writer import append_to_v7, inspect_v7

GUEST_PREFIX = "kshark-guest-"
RECIPE = "guest.json"
HEAD = "head.dat"
FORMAT = 1
_CPU_RE = re.compile(r"^cpu(\d+)$")


def create(parent: str | os.PathLike, name: str, output: str | os.PathLike) -> Path:
    """A new guest folder in ``parent`` for guest ``name`` whose file is ``output``; its recipe written now
    (while the disk has room)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:40] or "guest"
    d = Path(tempfile.mkdtemp(prefix=f"{GUEST_PREFIX}{safe}-{os.getpid()}-", dir=parent))
    _write_recipe(d, {"format": FORMAT, "name": name, "output": str(Path(output).absolute()), "pid": os.getpid(),
                      "kept": False})
    return d


RESERVE = 256 << 10
"""Bytes the recipe takes from the start (JSON, then spaces): room to note the options later in place, on a
disk that is full by then (rewriting a file's own bytes needs no free space)."""


def _write_recipe(d: Path, doc: dict) -> None:
    """The recipe written in place within its reserved bytes (or, when it outgrows them, anew)."""
    data = json.dumps(doc, indent=1).encode()
    p = d / RECIPE
    if len(data) <= RESERVE and p.exists() and p.stat().st_size == RESERVE:
        with open(p, "r+b", buffering=0) as f:
            f.write(data.ljust(RESERVE))
        return
    tmp = d / f".{RECIPE}.tmp"
    tmp.write_bytes(data.ljust(RESERVE) if len(data) <= RESERVE else data)
    os.replace(tmp, p)


def read_recipe(d: Path) -> dict:
    try:
        doc = json.loads((d / RECIPE).read_text())
    except (OSError, ValueError) as e:
        raise SpoolError(f"{d}: not a kshark-py guest folder ({RECIPE}: {e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("name"), str):
        raise SpoolError(f"{d}: not a kshark-py guest folder ({RECIPE} of another format)")
    return doc


def is_guest_folder(d: str | os.PathLike) -> bool:
    return (Path(d) / RECIPE).is_file()


def keep(d: Path, head: Path, options: list[tuple[int, bytes]], clock: str) -> str | None:
    """The guest's file could not be completed: move its head into ``d`` and note what was being appended.

    Returns what could not be kept (None: all of it): the options need a few bytes of free space, which a
    full disk may not have; the pages and the head are kept by renames."""
    os.replace(head, d / HEAD)
    doc = read_recipe(d)
    doc.update(kept=True, clock=clock, options=[[int(oid), payload.hex()] for oid, payload in options])
    try:
        _write_recipe(d, doc)
    except OSError as e:
        with_opts = ", ".join(f"option {oid}" for oid, _ in options)
        return f"the time-sync options ({with_opts}) could not be saved: {e.strerror or e}" if options else None
    return None


@dataclass(frozen=True)
class StaleGuest:
    """A guest folder no recording uses: kept after a full disk, or left by a killed process."""

    path: Path
    name: str
    pid: int
    size: int
    """Bytes of received pages (cpuN files)."""
    output: str | None


def stale_folders(parent: str | os.PathLike) -> list[StaleGuest]:
    """The guest folders in ``parent`` whose recording is over (kept, or its process gone), oldest first."""
    out = []
    base = Path(parent)
    try:
        found = sorted(base.glob(f"{GUEST_PREFIX}*"), key=lambda p: p.stat().st_mtime)
    except OSError:
        return []
    for p in found:
        try:
            doc = read_recipe(p)
            pid = int(doc.get("pid", 0))
            if not doc.get("kept") and pid_running(pid):
                continue  # a live recording's
            size = sum(c.stat().st_size for c in p.iterdir() if _CPU_RE.match(c.name))
        except (SpoolError, OSError, ValueError, TypeError):
            continue
        out.append(StaleGuest(p, str(doc["name"]), pid, size, doc.get("output")))
    return out


def stale_text(s: StaleGuest) -> str:
    """A stale guest folder in one line, with the command that finishes its file."""
    size = f"{s.size / 1e6:,.1f} MB" if s.size >= 100_000 else f"{s.size:,} bytes"
    dest = f" (for {s.output})" if s.output else ""
    return (f"{s.path}: {size} of guest {s.name}'s recording{dest}, not written into its file: "
            f"kshark-py record --recover {s.path} writes it (or remove the folder)")


def cpus_of(d: Path, page_size: int) -> list:
    """Each ``cpuN`` file's whole pages (:func:`.spool.cpu_data`)."""
    n = max((int(m.group(1)) + 1 for p in d.iterdir() if (m := _CPU_RE.match(p.name))), default=0)
    return cpu_data(d, n, page_size)


def _head_only(path: Path) -> bool:
    """``path`` is a guest's file as its agent sent it: a v7 file without CPU data (a kill stopped it there)."""
    from ..loaders.errors import TraceDatError
    from ..loaders.tracedat import open_trace

    try:
        with open_trace(path) as tf:
            return tf.version == 7 and not any(cd.size for b in tf.buffers for cd in b.cpu_data)
    except (TraceDatError, OSError):
        return False


@dataclass(frozen=True)
class RecoveredGuest:
    path: Path
    name: str
    pages: int
    events: int
    note: str | None
    """What the file lacks (its time-sync options were not saved), None: complete."""


def recover(folder: str | os.PathLike, output: str | os.PathLike | None = None) -> RecoveredGuest:
    """Write a kept guest folder into the guest's trace.dat, verified as the host's recovery is; the folder is
    then removed.  ``output`` defaults to the file the guest's data was meant for (refused if it exists)."""
    d = Path(folder)
    doc = read_recipe(d)
    pid = int(doc.get("pid", 0))
    if not doc.get("kept") and pid != os.getpid() and pid_running(pid):
        raise SpoolError(f"{d}: process {pid} is still recording into it")
    head = d / HEAD
    meant = Path(doc.get("output") or f"trace-{doc['name']}.dat")
    target = Path(output) if output is not None else meant
    if not head.is_file():  # its process was killed: the agent's file is still where it was being written
        if not _head_only(meant):
            raise SpoolError(f"{d}: the guest's metadata is neither in it ({HEAD}) nor in {meant} (a file the "
                             "agent sent, with no data yet): nothing to complete")
        head = meant
    elif output is None and target.exists():
        raise SpoolError(f"{target} exists: choose another output with -o FILE")
    st = inspect_v7(head)
    cpus = cpus_of(d, st.page_size)
    expected = count_pages(cpus, st.page_size, st.long_size)
    opts = [(int(oid), bytes.fromhex(h)) for oid, h in doc.get("options") or []]
    tmp = partial_name(target)
    try:
        shutil.copyfile(head, tmp)
        if opts:
            append_to_v7(tmp, options=opts)
        append_to_v7(tmp, buffer=("", str(doc.get("clock") or ""), cpus))
        verify(tmp, expected)
        os.replace(tmp, target)
    except BaseException as e:
        written = tmp.stat().st_size if tmp.exists() else 0
        tmp.unlink(missing_ok=True)
        if isinstance(e, OutputError):
            raise OutputError(target, e.reason, written=written, removed=True) from None
        if isinstance(e, OSError):
            raise OutputError(target, e.strerror or str(e), written=written, removed=True) from None
        raise
    shutil.rmtree(d, ignore_errors=True)
    note = None if doc.get("kept") else ("the options being appended (time sync, if any) were not saved: the file "
                                         "may lack its time sync")
    return RecoveredGuest(target, str(doc["name"]), sum(p for p, _ in expected.values()),
                          sum(e for _, e in expected.values()), note)
