"""The load cache: a trace's decoded buffers kept on disk, so opening it again decodes nothing.

Why: decoding 19 M events takes seconds every time, and a developer opens the same trace again and
again.  What one load computed per buffer (the events and lost-marks tables, the hot fields read
while decoding, the rows of each hot event, the chunk index of compressed data, per-CPU stats,
losses and warnings, plus whatever the caller adds, such as the task runs) is written once as
Arrow IPC files in one checked container (:mod:`.cachefile`) under
``$XDG_CACHE_HOME/kshark-py/`` (default ``~/.cache/kshark-py/``).  The next open maps it
(:mod:`.cachefile`): the tables are views of the page cache, nothing is decoded or copied.
The event formats are not kept: opening indexes them and parses only those a lookup reaches
(:mod:`.formats`), cheaper than rebuilding all 2,300 of a kernel from a table.

Trust: an entry is used only if its key equals the file's now: real path, size, mtime_ns, inode,
a digest of the header, option and metadata sections and of the buffers' layout, a word sum of the
whole file (a rewrite within one mtime tick), ``strict`` and :data:`FORMAT_VERSION`; and only if
the container checks whole (:func:`.cachefile.read`) and every table has the schema and row count
the buffers need.  Anything else (stale, cut short, edited, foreign, unreadable) is deleted and the
trace decoded as if there were no cache; a failure to write is ignored.  Never an error for the user.

Sharing: entries are written to a temp file and renamed (two processes opening one trace both
succeed; the last rename wins); a use touches the entry's mtime, and after each write the oldest
entries go until the folder holds at most :func:`max_bytes` (``KSHARK_PY_CACHE_MAX``, default
4 GiB).  ``KSHARK_PY_NO_CACHE=1`` or :func:`set_enabled` (``--no-cache``) turns it off: nothing is
read or written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from . import cachefile, schema, text
from .buffer import CpuStats
from .errors import DataLoss, TraceDatError
from .layout import OptionId
from .memory import drop_mapped_pages
from .metablocks import sized_block
from .metadata import Kallsyms
from .pages import BadPage
from .store import ChunkStore, FlatStore, decompress_pool

if TYPE_CHECKING:
    from .buffer import Buffer

TraceFile = Any
"""A :class:`~.tracedat.TraceFile`, not imported even for typing: tracedat imports this module
(:func:`likely_hit`)."""

FORMAT_VERSION = 2
"""The reader's decoded layout: bump it whenever what a load computes changes (the events schema,
hot-field extraction, stats, the meaning of a column), so older entries are never read."""

ENV_OFF = "KSHARK_PY_NO_CACHE"
ENV_MAX = "KSHARK_PY_CACHE_MAX"
DEFAULT_MAX = 4 << 30
SUFFIX = ".kscache"
STALE_TEMP_S = 3600
"""A temp file this old belongs to a writer that died (killed mid-write): removed at eviction."""

CHUNKS = pa.schema([("file_offset", pa.int64()), ("csize", pa.int64()), ("usize", pa.int64()),
                    ("ustart", pa.int64())])
ROW = "#row"
"""The rows column of a hot event's table (not a C identifier: no field can be named so)."""

_enabled = True


def set_enabled(on: bool) -> None:
    """Turn the cache on or off for this process (``--no-cache``, the app's setting)."""
    global _enabled
    _enabled = bool(on)


def enabled() -> bool:
    """Whether loads read and write the cache: not turned off here nor by ``KSHARK_PY_NO_CACHE``."""
    return _enabled and os.environ.get(ENV_OFF, "").strip().lower() in ("", "0", "no", "false")


def cache_dir() -> str:
    """``$XDG_CACHE_HOME/kshark-py`` (an absolute XDG_CACHE_HOME only, as the XDG spec says)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "kshark-py")


def max_bytes() -> int:
    """The folder's size cap: ``KSHARK_PY_CACHE_MAX`` (bytes, or with a K/M/G suffix), else 4 GiB."""
    text = os.environ.get(ENV_MAX, "").strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(text[-1:], 1)
    try:
        return max(0, int(float(text.rstrip("KMGT")) * mult)) if text else DEFAULT_MAX
    except ValueError:
        return DEFAULT_MAX


# --- keys ------------------------------------------------------------------------------------------


def _layout(tf: TraceFile) -> list:
    return [[b.name, b.page_size, b.compressed, b.clock, [[c.cpu, c.offset, c.size] for c in b.cpu_data],
             repr(b.lost_index)] for b in tf.buffers] + [tf.truncated_options]


def header_digest(tf: TraceFile) -> str:
    """Digest of what opening read: the file header, the option and metadata sections, the buffers'
    layout (where each CPU's data lies)."""
    h = hashlib.blake2b(digest_size=16)
    fs = tf.file_size
    with memoryview(tf.buf) as mv:
        if tf.version < 7:  # v6: everything before the first CPU's data is header, options, metadata
            first = min((c.offset for b in tf.buffers for c in b.cpu_data), default=fs)
            h.update(mv[:max(0, min(first, fs))])
        else:
            h.update(mv[:min(tf.first_section or 0, fs)])
            hdr = tf.lay.section_header
            for off in tf.options_sections:
                size = hdr.unpack_from(tf.buf, off)[3] if off + hdr.size <= fs else 0
                h.update(mv[off:min(fs, off + hdr.size + size)])
    for oid in sorted(tf.sections):
        body = tf.sections[oid]
        h.update(struct.pack("<IQ", int(oid), len(body)))
        h.update(body)
    h.update(json.dumps(_layout(tf)).encode())
    return h.hexdigest()


def trace_key(tf: TraceFile) -> dict[str, Any]:
    """What an entry must match to be used (see the module doc), but the whole file's word sum
    (:func:`trace_sum`, the one part that reads every byte)."""
    fh = getattr(tf, "_fh", None)
    st = os.fstat(fh.fileno()) if fh is not None else os.stat(tf.path)  # the file as opened
    return {"version": FORMAT_VERSION, "path": os.path.realpath(tf.path), "size": st.st_size,
            "mtime_ns": st.st_mtime_ns, "inode": st.st_ino, "header": header_digest(tf),
            "strict": bool(tf.strict)}


def trace_sum(tf: TraceFile) -> int:
    """The word sum of the whole trace file: a rewrite that keeps size and mtime (one tick) changes it."""
    total = cachefile.word_sum(np.frombuffer(tf.buf, np.uint8))
    drop_mapped_pages(tf.buf)  # the pass touched every page: not ours to keep resident
    return total


def entry_path(real_path: str) -> str:
    """One entry per trace path: a newer version of the trace replaces the old entry."""
    name = hashlib.blake2b(real_path.encode("utf-8", "surrogateescape"), digest_size=12).hexdigest()
    return os.path.join(cache_dir(), name + SUFFIX)


def likely_hit(fd: int, path: str) -> bool:
    """Whether the cache probably holds the file open as ``fd`` (its entry's key names this path,
    size, mtime and inode): a hint only, read from the entry's directory, nothing verified.  Why:
    work that only decoding needs (loading the compiled kernels, ~0.3 s) need not start then."""
    if not enabled():
        return False
    try:
        st = os.fstat(fd)
        key = cachefile.peek(entry_path(os.path.realpath(path)))["key"]
        return (key["size"], key["mtime_ns"], key["inode"]) == (st.st_size, st.st_mtime_ns, st.st_ino)
    except (cachefile.CacheFileError, KeyError, TypeError, OSError):
        return False


# --- restore ---------------------------------------------------------------------------------------


@dataclass
class Entry:
    """One trace file's cache entry: found and installed (``hit``), or to be written after decoding."""

    tf: TraceFile
    path: str
    key: dict[str, Any]
    hit: bool = False
    complete: bool = True
    """Hit only: the entry held every hot field the file asks for (else they are read on demand, and
    storing again adds them)."""
    extras: dict[int, dict[str, pa.Table]] = field(default_factory=dict)
    """Hit only: the caller's tables stored beside each buffer (by buffer index)."""
    open_warnings: int = 0
    """How many of ``tf.warnings`` opening made (the rest are the decode's, stored with the entry)."""


def lookup(tf: TraceFile) -> Entry | None:
    """Install ``tf``'s buffers from the cache when a valid entry exists (nothing decoded then).

    None when the cache is off.  A bad entry is deleted; the returned miss is for :func:`store`,
    after the caller has decoded."""
    if not enabled():
        return None
    try:
        key = trace_key(tf)
    except (OSError, ValueError):
        return None
    entry = Entry(tf, entry_path(key["path"]), key, open_warnings=len(tf.warnings))
    # the passes over every byte (the trace's sum; the entry's, in two halves, one of them on this
    # thread) run at once: numpy releases the GIL, so two cores share them
    pool = decompress_pool()
    summed = pool.submit(trace_sum, tf)
    try:
        if not os.path.exists(entry.path):
            return entry
        try:
            c = cachefile.Container(entry.path)
            meta = c.meta
            stored = dict(meta.get("key") or {})
            if stored.pop("sum", None) is None or stored != key:
                raise cachefile.CacheFileError("stale: the trace or the reader changed")
            other_half = pool.submit(c.sum_part, 0, 2)
            tables = c.tables()
            states = [_buffer_state(tf, i, b, m, tables) for i, (b, m) in enumerate(_pairs(tf, meta))]
            warnings = [str(w) for w in meta["warnings"]]
            want = _spec(tf.hot_fields)
            have = _spec(meta["hot"])
            parsed = _file_state(tf, meta, tables)
            c.check([other_half.result(), c.sum_part(1, 2)])  # this thread sums the other half
            if meta["key"]["sum"] != summed.result():
                raise cachefile.CacheFileError("stale: the trace's bytes changed")
        except (cachefile.CacheFileError, KeyError, TypeError, ValueError, IndexError, AttributeError,
                pa.ArrowException, OSError, TraceDatError):
            _remove(entry.path)
            return entry
    finally:
        try:
            key["sum"] = summed.result()
        except (OSError, ValueError, BufferError):  # never an error of the load: an entry with no sum is never used
            key["sum"] = None
    for b, (st, extras) in zip(tf.buffers, states, strict=True):
        b.adopt(**st)
        entry.extras[len(entry.extras)] = extras
    tf.warnings.extend(warnings)
    for name, value in parsed.items():
        if name not in tf.__dict__:
            setattr(tf, name, value)  # a functools.cached_property of TraceFile: this is its value now
    entry.hit = True
    entry.complete = all(have.get(k, set()) >= names for k, names in want.items())
    _touch(entry.path)
    return entry


def _spec(hot) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for system, name, names in hot:
        out.setdefault((str(system), str(name)), set()).update(str(n) for n in names)
    return out


def _pairs(tf: TraceFile, meta: dict) -> list[tuple[Buffer, dict]]:
    bufs = meta["buffers"]
    if len(bufs) != len(tf.buffers):
        raise cachefile.CacheFileError("buffer count differs")
    for b, m in zip(tf.buffers, bufs, strict=True):
        if m["name"] != b.name or bool(m["compressed"]) != b.compressed or \
                m["cpus"] != [c.cpu for c in b.cpu_data]:
            raise cachefile.CacheFileError(f"buffer {b.name!r} differs")
    return list(zip(tf.buffers, bufs, strict=True))


def _table(tables: dict[str, pa.Table], name: str, want: pa.Schema | None = None) -> pa.Table:
    t = tables.get(name)
    if t is None:
        raise cachefile.CacheFileError(f"table {name!r} missing")
    if want is not None and not t.schema.equals(want):
        raise cachefile.CacheFileError(f"table {name!r} has another schema")
    return t


def _np(col: pa.ChunkedArray) -> np.ndarray:
    return col.to_numpy() if col.num_chunks != 1 else col.chunk(0).to_numpy(zero_copy_only=False)


def _buffer_state(tf: TraceFile, i: int, b: Buffer, m: dict,
                  tables: dict[str, pa.Table]) -> tuple[dict[str, Any], dict[str, pa.Table]]:
    """Everything :meth:`Buffer.adopt` takes for buffer ``i``, checked; and the caller's extras."""
    events = _table(tables, f"{i}/events", schema.EVENTS)
    lost = _table(tables, f"{i}/lost", schema.LOST)
    n = events.num_rows
    if b.compressed:
        ch = _table(tables, f"{i}/chunks", CHUNKS)
        fo, cs, us, ust = (_np(ch.column(k)) for k in range(4))
        store: FlatStore | ChunkStore = ChunkStore(tf.codec, tf.buf, fo, cs, us, ust)
        if len(fo) and (fo.min() < 0 or int((fo + cs).max()) > tf.file_size):
            raise cachefile.CacheFileError("chunk index points outside the trace")
    else:
        store = FlatStore(np.frombuffer(tf.buf, dtype=np.uint8))
    rows: dict[int, np.ndarray] = {}
    fields: dict[tuple[int, str], pa.Array] = {}
    for eid_text, names in m["fields"].items():
        eid = int(eid_text)
        t = _table(tables, f"{i}/ev/{eid}")
        if t.column_names != [ROW, *names] or t.schema.field(ROW).type != pa.int64():
            raise cachefile.CacheFileError(f"fields of event {eid} differ")
        r = _np(t.column(ROW))
        if len(r) and (r.min() < 0 or r.max() >= n):
            raise cachefile.CacheFileError(f"rows of event {eid} outside the events")
        rows[eid] = r
        for name in names:
            fields[(eid, name)] = t.column(name).combine_chunks()
    lr = _np(lost.column("row"))
    if len(lr) and (lr.min() < 0 or lr.max() >= max(n, 1)):
        raise cachefile.CacheFileError("lost marks outside the events")
    stats = [CpuStats(**{**s, "bad_pages": [BadPage(**p) for p in s["bad_pages"]]}) for s in m["stats"]]
    losses = [DataLoss(path=tf.path, **x) for x in m["losses"]]
    extras = {name: _table(tables, f"{i}/x/{name}") for name in m["extras"]}
    return {"events": events, "lost": lost, "stats": stats, "losses": losses, "fields": fields, "rows": rows,
            "store": store}, extras


# --- store -----------------------------------------------------------------------------------------


def store(entry: Entry, extras: dict[int, dict[str, pa.Table]] | None = None, *, behind: bool = False) -> bool:
    """Write ``entry``'s trace, decoded (every buffer), with the caller's ``extras`` per buffer index.

    False when not written (cache off, too big for the cap or the disk, a write error): the load
    does not care.  ``behind``: what to write is gathered now and written by a background thread
    (the app shows its window meanwhile; :func:`flush` waits for it before the process ends); the
    tables are immutable, so the session may go on using them."""
    if entry is None or not enabled() or entry.key.get("sum") is None:
        return False
    tf = entry.tf
    tables: dict[str, pa.Table] = {}
    bufs = []
    for i, b in enumerate(tf.buffers):
        fields, rows = b.decoded_fields()
        tables[f"{i}/events"] = b.events
        tables[f"{i}/lost"] = b.lost
        if b.compressed:
            s = b.store
            tables[f"{i}/chunks"] = pa.table([pa.array(np.asarray(a, np.int64)) for a in
                                              (s.file_offsets, s.csizes, s.usizes, s.ustarts)], schema=CHUNKS)
        by_event: dict[int, list[str]] = {eid: [] for eid in rows}
        for (eid, name) in fields:
            if eid in rows:
                by_event[eid].append(name)
        for eid, names in by_event.items():
            tables[f"{i}/ev/{eid}"] = pa.table([pa.array(np.asarray(rows[eid], np.int64)),
                                                *(fields[(eid, nm)] for nm in names)], names=[ROW, *names])
        x = (extras or {}).get(i, {})
        for name, t in x.items():
            tables[f"{i}/x/{name}"] = t
        bufs.append({"name": b.name, "compressed": b.compressed, "cpus": [c.cpu for c in b.cpu_data],
                     "stats": [asdict(s) for s in b.stats],
                     "losses": [{k: v for k, v in asdict(x).items() if k != "path"} for x in b.losses],
                     "fields": {str(eid): names for eid, names in by_event.items()}, "extras": list(x)})
    for name, t in _file_tables(tf).items():
        tables[f"file/{name}"] = t
    meta: dict[str, Any] = {"key": entry.key, "trace": tf.path, "buffers": bufs, "file": sorted(FILE_PARSED),
                            "warnings": tf.warnings[entry.open_warnings:],
                            "hot": [[s, e, list(f)] for s, e, f in tf.hot_fields]}
    if not behind:
        return _write(entry.path, meta, tables)
    global _writer
    with _writes_lock:
        if _writer is None:
            _writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kshark-cache-write")
        _writes.append(_writer.submit(_write, entry.path, meta, tables))
    return True


_writer: ThreadPoolExecutor | None = None
_writes: list[Future] = []
_writes_lock = threading.Lock()


def _write(path: str, meta: dict[str, Any], tables: dict[str, pa.Table]) -> bool:
    need = sum(t.nbytes for t in tables.values()) + (1 << 20)
    folder = cache_dir()
    try:
        os.makedirs(folder, exist_ok=True)
        if need > max_bytes() or shutil.disk_usage(folder).free < need + (256 << 20):
            return False
        cachefile.write(path, meta, tables)
    except (OSError, pa.ArrowException, ValueError, TypeError):
        return False
    evict(keep=path)
    return True


def flush(timeout: float | None = None) -> None:
    """Wait for the entries being written behind (``store(behind=True)``): call it before the
    process ends with ``os._exit``, which would leave a half-written temp file instead."""
    while True:
        with _writes_lock:
            if not _writes:
                return
            f = _writes.pop(0)
        try:
            f.result(timeout)
        except Exception:  # noqa: BLE001 - a cache write that failed is no error of the app's
            pass


# --- what the file's metadata parses into -----------------------------------------------------------

FILE_PARSED = {"kallsyms", "cmdlines"}
"""TraceFile's parsed metadata the window needs at once (kernel symbols and saved comms: 0.1 s to
parse on a big kernel), kept when the load has parsed them."""


def _file_tables(tf: TraceFile) -> dict[str, pa.Table]:
    out = {}
    ks = tf.__dict__.get("kallsyms")
    if ks is not None:
        out["kallsyms"] = pa.table(ks.index())
    cl = tf.__dict__.get("cmdlines")
    if cl is not None and (t := names_table(cl)) is not None:
        out["cmdlines"] = t
    return out


def _file_state(tf: TraceFile, meta: dict, tables: dict[str, pa.Table]) -> dict[str, Any]:
    """TraceFile attributes to set from the entry (only those it holds), checked."""
    if sorted(meta["file"]) != sorted(FILE_PARSED):
        raise cachefile.CacheFileError("another set of file tables")
    out: dict[str, Any] = {}
    if "file/kallsyms" in tables:
        t = tables["file/kallsyms"]
        text = sized_block(tf.sections.get(OptionId.KALLSYMS), tf.lay.u32)
        out["kallsyms"] = Kallsyms.from_index(text, {c: _np(t.column(c)) for c in t.column_names})
    if "file/cmdlines" in tables:
        out["cmdlines"] = names_of(tables["file/cmdlines"])
    return out


# --- what callers add: task names ----------------------------------------------------------------


def names_table(names: dict[int, str]) -> pa.Table | None:
    """pid -> lossless task name as a table (the kernel's bytes), in the dict's order; None when a
    name would not come back identical (text made elsewhere with a stray surrogate)."""
    raw = [text.encode(n) for n in names.values()]
    if any(text.decode(r) != n for r, n in zip(raw, names.values(), strict=True)):
        return None
    return pa.table({"pid": pa.array(list(names), pa.int64()), "name": pa.array(raw, pa.binary())})


def names_of(table: pa.Table) -> dict[int, str]:
    """The dict :func:`names_table` was given (ValueError for a table of another shape)."""
    if table.column_names != ["pid", "name"] or table.schema.field("name").type != pa.binary():
        raise ValueError("not a task-names table")
    return dict(zip(table.column("pid").to_pylist(), map(text.decode, table.column("name").to_pylist()), strict=True))


# --- the folder ------------------------------------------------------------------------------------


@dataclass
class Listed:
    """One entry as ``kshark-py cache --list`` shows it."""

    path: str
    trace: str
    size: int
    last_used: float
    valid: bool


def entries() -> list[Listed]:
    """Every entry of the folder, most recently used first (each one's directory checked, not its data)."""
    folder = cache_dir()
    out = []
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    for name in names:
        if not name.endswith(SUFFIX):
            continue
        p = os.path.join(folder, name)
        try:
            st = os.stat(p)
        except OSError:
            continue
        try:
            meta = cachefile.peek(p)
            trace, valid = str(meta["key"]["path"]), meta["key"].get("version") == FORMAT_VERSION
        except (cachefile.CacheFileError, KeyError, TypeError):
            trace, valid = "?", False
        out.append(Listed(p, trace, st.st_size, st.st_mtime, valid))
    return sorted(out, key=lambda e: -e.last_used)


def clear() -> tuple[int, int]:
    """Remove every entry and temp file of the folder: (files removed, bytes freed)."""
    n = freed = 0
    folder = cache_dir()
    try:
        names = os.listdir(folder)
    except OSError:
        return 0, 0
    for name in names:
        if name.endswith(SUFFIX) or name.startswith(cachefile.TEMP_PREFIX):
            p = os.path.join(folder, name)
            try:
                size = os.stat(p).st_size
                os.unlink(p)
            except OSError:
                continue
            n += 1
            freed += size
    return n, freed


def evict(keep: str | None = None) -> None:
    """Remove the least recently used entries until the folder is within :func:`max_bytes`, and temp
    files of dead writers."""
    folder = cache_dir()
    cap = max_bytes()
    now = time.time()
    found = []
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        p = os.path.join(folder, name)
        try:
            st = os.stat(p)
        except OSError:
            continue
        if name.startswith(cachefile.TEMP_PREFIX):
            if now - st.st_mtime > STALE_TEMP_S:
                _remove(p)
        elif name.endswith(SUFFIX):
            found.append((st.st_mtime, st.st_size, p))
    total = sum(s for _m, s, _p in found)
    for _m, size, p in sorted(found):
        if total <= cap:
            break
        if p != keep:
            _remove(p)
            total -= size


def _touch(path: str) -> None:
    try:
        os.utime(path)
    except OSError:
        pass


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
