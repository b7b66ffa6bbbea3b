"""A recording's raw pages, and everything needed to make a trace.dat of them, kept until that file is verified.

Why: a recording is a copy of the kernel's pages into temp files, then one write of the trace.dat.  If that
write fails (the output disk is full) or kshark-py dies (SIGKILL, power), the pages are the only copy of the
recording.  So the spool folder also holds the metadata the writer needs (the tracefs texts at the start,
cmdlines and per-CPU stats at the stop, the output choices), and it is removed only once the output file has
been re-read by our own reader with the expected page and event counts.  ``kshark-py record --recover DIR``
writes a spool into a trace.dat later (:func:`recover`).

A spool folder, ``$TMPDIR/kshark-rec-PID-XXXXXXXX/`` (PID: the recording process, so leftovers of dead
processes can be told from live ones):

* ``cpuN``: CPU N's raw ring-buffer pages (whole pages; a torn last page, e.g. after SIGKILL, is ignored);
* ``meta/``: the metadata texts (header_page, header_event, kallsyms, printk, cmdlines; ftrace_formats and
  event_formats concatenated, their sizes in recording.json);
* ``recording.json``: the rest: page and long size, clock, uname, trace id, CPU count, event format order,
  per-CPU stats, the output file and its version/compression/clock/extra options, and the state
  (``recording``, ``stopped``, ``written``).
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..loaders.errors import TraceDatError
from ..loaders.layout import layouts
from ..loaders.pages import decode_pages
from .writer import CpuData, Metadata, write_trace_file

SPOOL_PREFIX = "kshark-rec-"
STATE_FILE = "recording.json"
FORMAT = 1
_NAME_RE = re.compile(rf"^{SPOOL_PREFIX}(\d+)-")
_COUNT_PAGES = 8192
"""Pages decoded at a time when counting a spool's events (bounded memory for any recording size)."""


class SpoolError(Exception):
    """A spool folder that cannot be read or recovered (not one, damaged, still in use)."""


class OutputError(Exception):
    """The output file could not be written completely, or did not read back as written.

    ``path``: the file; ``written``: bytes of it written before the failure; ``removed``: the incomplete file
    was deleted (it is not readable); the caller keeps the spool and says how to finish with ``--recover``.
    """

    def __init__(self, path: str | os.PathLike, reason: str, *, written: int = 0, removed: bool = False) -> None:
        self.path = Path(path)
        self.reason = reason
        self.written = written
        self.removed = removed
        what = f"{written:,} bytes written, the incomplete file was removed" if removed else f"{written:,} bytes"
        super().__init__(f"cannot write {self.path}: {reason} ({what})")


def pid_running(pid: int) -> bool:
    """Whether process ``pid`` exists in our pid namespace and is not a zombie (a zombie holds no files)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return True
    return stat[stat.rfind(b")") + 2:][:1] != b"Z"


def create(tmpdir: str | os.PathLike | None = None) -> Path:
    """A new, empty spool folder for this process."""
    return Path(tempfile.mkdtemp(prefix=f"{SPOOL_PREFIX}{os.getpid()}-", dir=tmpdir))


def owner_pid(path: str | os.PathLike) -> int | None:
    """The pid in a spool folder's name, or None for a name that is not a spool's."""
    m = _NAME_RE.match(Path(path).name)
    return int(m.group(1)) if m else None


# --- metadata and state ---------------------------------------------------------------------------------
def _write_file(path: Path, data: bytes | str) -> None:
    """Write whole or raise: through a temp name and rename, so a full disk never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def save_metadata(spool: Path, meta: Metadata, **state: object) -> None:
    """The metadata texts into ``meta/`` and the rest (plus ``state``) into recording.json (OSError when full)."""
    md = spool / "meta"
    md.mkdir(exist_ok=True)
    for name in ("header_page", "header_event", "kallsyms", "printk", "cmdlines"):
        _write_file(md / name, getattr(meta, name))
    # formats concatenated, their sizes in recording.json (hundreds of tiny files would take a block each)
    _write_file(md / "ftrace_formats", b"".join(meta.ftrace_formats))
    _write_file(md / "event_formats", b"".join(t for _s, texts in meta.event_formats for t in texts))
    update_state(spool, format=FORMAT, pid=os.getpid(), created=time.time(), state="recording",
                 ftrace_formats=[len(t) for t in meta.ftrace_formats],
                 event_formats=[(system, [len(t) for t in texts]) for system, texts in meta.event_formats],
                 trace_clock=meta.trace_clock, uname=meta.uname, page_size=meta.page_size,
                 long_size=meta.long_size, **state)


def read_state(spool: Path) -> dict:
    try:
        st = json.loads((spool / STATE_FILE).read_text())
    except FileNotFoundError:
        raise SpoolError(f"{spool}: no {STATE_FILE}: not a kshark-py recording folder (or one made before "
                         "kshark-py kept recordings' metadata)") from None
    except (OSError, ValueError) as e:
        raise SpoolError(f"{spool}/{STATE_FILE}: unreadable ({e})") from None
    if not isinstance(st, dict) or st.get("format") != FORMAT:
        raise SpoolError(f"{spool}/{STATE_FILE}: unknown format {st.get('format') if isinstance(st, dict) else st!r}")
    return st


def update_state(spool: Path, **changes: object) -> None:
    """Merge ``changes`` into recording.json (written whole through a rename; OSError when the disk is full)."""
    path = spool / STATE_FILE
    st: dict = {}
    if path.exists():
        with contextlib.suppress(OSError, ValueError):
            st = json.loads(path.read_text())
    st.update(changes)
    _write_file(path, json.dumps(st, indent=1))


def load_metadata(spool: Path, st: dict | None = None) -> Metadata:
    st = st if st is not None else read_state(spool)
    md = spool / "meta"
    try:
        def rd(name: str) -> bytes:
            return (md / name).read_bytes()

        def split(blob: bytes, sizes: list[int]) -> list[bytes]:
            if sum(sizes) != len(blob):
                raise ValueError(f"{len(blob)} bytes of formats, {sum(sizes)} announced")
            ends = np.cumsum([0, *sizes]).tolist()
            return [blob[a:b] for a, b in zip(ends, ends[1:], strict=False)]

        ftrace = split(rd("ftrace_formats"), [int(n) for n in st["ftrace_formats"]])
        flat = split(rd("event_formats"), [int(n) for _s, sizes in st["event_formats"] for n in sizes])
        events, k = [], 0
        for system, sizes in st["event_formats"]:
            events.append((str(system), flat[k:k + len(sizes)]))
            k += len(sizes)
        return Metadata(
            header_page=rd("header_page"), header_event=rd("header_event"), ftrace_formats=ftrace,
            event_formats=events, kallsyms=rd("kallsyms"), printk=rd("printk"), cmdlines=rd("cmdlines"),
            trace_clock=st["trace_clock"], uname=st["uname"], page_size=int(st["page_size"]),
            long_size=int(st["long_size"]))
    except (OSError, KeyError, TypeError, ValueError) as e:
        raise SpoolError(f"{spool}: metadata incomplete ({e})") from None


# --- the pages ------------------------------------------------------------------------------------------
def cpu_data(spool: Path, ncpus: int, page_size: int) -> list[CpuData]:
    """Each CPU's pages as whole pages (a torn last page, cut by a kill or a full disk, is left out)."""
    out = []
    for cpu in range(ncpus):
        p = spool / f"cpu{cpu}"
        size = p.stat().st_size if p.exists() else 0
        if p.exists():
            out.append(CpuData(cpu, p, 0, size - size % page_size))
    return out


def count_events(data: bytes | memoryview | np.ndarray, page_size: int, long_size: int) -> int:
    """Data records in whole raw pages (the reader's own page decoder; padding is not counted)."""
    arr = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data
    if len(arr) < page_size:
        return 0
    lay = layouts("<" if sys.byteorder == "little" else ">", long_size)
    return int(decode_pages(arr, page_size, lay).ts.size)


def count_pages(cpus: Sequence[CpuData], page_size: int, long_size: int) -> dict[int, tuple[int, int]]:
    """cpu -> (pages, events) of the raw data, decoded :data:`_COUNT_PAGES` pages at a time."""
    out = {}
    for cd in cpus:
        n = cd.length()
        events = 0
        if n:
            with open(cd.path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                arr = np.frombuffer(m, np.uint8)
                step = _COUNT_PAGES * page_size
                for lo in range(cd.offset, cd.offset + n, step):
                    events += count_events(arr[lo:min(lo + step, cd.offset + n)], page_size, long_size)
                del arr
        out[cd.cpu] = (n // page_size, events)
    return out


# --- writing and verifying ------------------------------------------------------------------------------
def verify(path: str | os.PathLike, expected: dict[int, tuple[int, int]]) -> None:
    """Re-read ``path`` with our reader: every CPU's page and event count must be the raw data's."""
    from ..loaders.tracedat import open_trace

    try:
        with open_trace(path) as tf:
            got_rows, got = 0, {}
            if tf.buffers:
                buf = tf.buffers[0]
                got_rows = buf.events.num_rows
                got = {st.cpu: (st.pages, st.events) for st in buf.stats}
            warnings = list(tf.warnings)
    except TraceDatError as e:
        raise OutputError(path, f"the written file does not read back: {e}") from None
    if warnings:
        raise OutputError(path, f"the written file reads back damaged: {warnings[0]}")
    want_events = sum(e for _p, e in expected.values())
    for cpu, (pages, events) in expected.items():
        if pages and got.get(cpu, (0, 0)) != (pages, events):
            g = got.get(cpu, (0, 0))
            raise OutputError(path, f"CPU {cpu} reads back as {g[0]:,} pages, {g[1]:,} events instead of {pages:,} "
                                    f"pages, {events:,} events")
    if got_rows != want_events:
        raise OutputError(path, f"{got_rows:,} events read back instead of {want_events:,}")


def partial_name(path: str | os.PathLike) -> Path:
    """Where ``path`` is written before it is verified: ``.NAME.partial-PID`` beside it."""
    p = Path(path)
    return p.with_name(f".{p.name}.partial-{os.getpid()}")


def write_verified(path: str | os.PathLike, meta: Metadata, cpus: Sequence[CpuData], *, trace_id: int,
                   cpu_count: int, version: int = 7, compression: str | None = "zstd",
                   cpustats: Sequence[str] | None = None, extra_options: Iterable[tuple[int, bytes]] = (),
                   clock: str | None = None) -> dict[int, tuple[int, int]]:
    """Write the trace.dat, flush it to the disk, read it back and compare; returns cpu -> (pages, events).

    The file is written under :func:`partial_name` and renamed to ``path`` once verified, so ``path`` is
    either complete or untouched (an older file of that name survives a failure), even if we are killed
    while writing.  OutputError when anything fails; the incomplete file is removed.
    """
    expected = count_pages(cpus, meta.page_size, meta.long_size)
    tmp = partial_name(path)
    try:
        write_trace_file(tmp, meta, cpus, version=version, compression=compression, trace_id=trace_id,
                         cpu_count=cpu_count, cpustats=cpustats, extra_options=extra_options, clock=clock,
                         sync=True)
        verify(tmp, expected)
        os.replace(tmp, path)
    except BaseException as e:  # a full disk, or Ctrl-C while writing: the spool stays, the incomplete file goes
        written = 0
        with contextlib.suppress(OSError):
            written = os.path.getsize(tmp)
        removed = False
        with contextlib.suppress(OSError):
            os.unlink(tmp)
            removed = True
        if isinstance(e, OutputError):
            raise OutputError(path, e.reason, written=written, removed=removed) from None
        if isinstance(e, OSError):
            raise OutputError(path, e.strerror or str(e), written=written, removed=removed) from None
        raise
    return expected


# --- finding and recovering spools ----------------------------------------------------------------------
@dataclass(frozen=True)
class SpoolInfo:
    """A spool folder on disk: whose it is and how much it holds."""

    path: Path
    pid: int
    running: bool
    """Its process runs and has not released it: in use, never touched."""
    size: int
    """Bytes of raw pages (cpuN files)."""
    state: str | None
    """recording.json's state, or None when it has none (unrecoverable)."""
    output: str | None


def spool_info(path: Path) -> SpoolInfo | None:
    pid = owner_pid(path)
    if pid is None or not path.is_dir():
        return None
    size = 0
    with contextlib.suppress(OSError):
        size = sum(p.stat().st_size for p in path.iterdir() if re.fullmatch(r"cpu\d+", p.name))
    state = output = None
    with contextlib.suppress(SpoolError):
        st = read_state(path)
        state, output = st.get("state"), st.get("output")
    return SpoolInfo(path, pid, pid_running(pid) and not released(path), size, state, output)


def find_spools(tmpdir: str | os.PathLike | None = None) -> list[SpoolInfo]:
    """Every spool folder in ``tmpdir`` (default: the temp dir), newest last."""
    base = Path(tmpdir or tempfile.gettempdir())
    out = []
    with contextlib.suppress(OSError):
        for p in sorted(base.glob(f"{SPOOL_PREFIX}*"), key=lambda p: p.stat().st_mtime):
            info = spool_info(p)
            if info is not None:
                out.append(info)
    return out


def stale_spools(tmpdir: str | os.PathLike | None = None) -> list[SpoolInfo]:
    """Spool folders no process uses: left by killed processes, or kept after a failed write."""
    return [s for s in find_spools(tmpdir) if not s.running]


RELEASED = "released"
"""An empty file: the recording process is done with the spool (kept after a failed write) although it may
still run (the app): the spool may be recovered.  Empty, so even a full disk takes it."""


def release(spool: Path) -> None:
    """Mark a kept spool as no longer in use by its process (best effort)."""
    with contextlib.suppress(OSError):
        (spool / RELEASED).touch()


def released(spool: Path) -> bool:
    return (spool / RELEASED).exists()


@dataclass(frozen=True)
class Recovered:
    path: Path
    pages: int
    events: int
    torn_bytes: int
    """Bytes of torn last pages left out (a recording killed in the middle of a page)."""


def recover(spool: str | os.PathLike, output: str | os.PathLike | None = None, *, version: int | None = None,
            compression: str | None | bool = False) -> Recovered:
    """Write a spool's pages into a trace.dat (verified as a recording's is); the spool is then removed.

    ``output`` defaults to the file the recording was meant for, refused if it exists (give another);
    ``version``/``compression`` to what the recording used.  SpoolError or OutputError say why not.
    """
    d = Path(spool)
    if not d.is_dir():
        raise SpoolError(f"{d}: no such folder")
    st = read_state(d)
    pid = int(st.get("pid", 0))
    if pid != os.getpid() and pid_running(pid) and not released(d):
        raise SpoolError(f"{d}: process {pid} is still recording into it")
    meta = load_metadata(d, st)
    target = Path(output) if output is not None else Path(st.get("output") or "trace.dat")
    if output is None and target.exists():
        raise SpoolError(f"{target} exists: choose another output with -o FILE")
    ncpus = int(st.get("cpu_count") or 0) or len(list(d.glob("cpu*")))
    cpus = cpu_data(d, ncpus, meta.page_size)
    torn = sum(os.path.getsize(c.path) - c.length() for c in cpus)
    extra = [(int(oid), bytes.fromhex(h)) for oid, h in st.get("extra_options", [])]
    comp = st.get("compression", "zstd") if compression is False else compression
    counts = write_verified(target, meta, cpus, trace_id=int(st.get("trace_id", 0)), cpu_count=ncpus,
                            version=version or int(st.get("version", 7)), compression=comp,  # type: ignore[arg-type]
                            cpustats=st.get("cpustats") or None, extra_options=extra, clock=st.get("out_clock"))
    shutil.rmtree(d, ignore_errors=True)
    return Recovered(target, sum(p for p, _e in counts.values()), sum(e for _p, e in counts.values()), torn)


def remove(spool: str | os.PathLike) -> None:
    shutil.rmtree(spool, ignore_errors=True)
