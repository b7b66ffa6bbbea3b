"""Opening files as one session and decoding everything the timeline needs, with progress and cancel.

No Qt here: the app runs :func:`load_session` in a worker thread (``ui/loader``), tests and
screenshots call it directly. The work is split into steps (open each file, decode each buffer a
block of about 32 MB at a time, derive each stream's run intervals); ``progress`` hears the file
bytes done after every block and step, and the cancel flag is checked there, so a cancel takes
effect within one block.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ..loaders import loadcache
from ..loaders.buffer import Buffer
from ..loaders.errors import TraceDatError
from ..loaders.memory import release_free_memory
from ..loaders.tracedat import TraceFile, open_trace
from .distinct import TICK_BLOCK, cpu_block_counts
from .session import HOT_FIELDS, Session
from .vcpus import VcpuMapping, build_vcpu_map


class Cancelled(Exception):
    """The user cancelled the load."""


@dataclass
class LoadResult:
    session: Session
    vcpu_map: list[VcpuMapping]
    warnings: list[str] = field(default_factory=list)


def load_session(paths: list[str], user_map: dict[str, dict[int, int]] | None = None,
                 progress: Callable[[int, int, str], None] | None = None,
                 cancel: threading.Event | None = None,
                 time_offsets: dict[int | str, int] | None = None,
                 opened: Callable[[list[TraceFile]], None] | None = None,
                 decoded: Callable[[Buffer], None] | None = None, write_behind: bool = False) -> LoadResult:
    """Open ``paths`` as one session and decode everything the timeline needs (synchronous).

    ``progress(done, total, message)`` counts file bytes; a set ``cancel`` raises :class:`Cancelled`
    at the next step. ``time_offsets`` puts streams (by index or name) that many ns later
    (``--time-offset``), before anything is derived from their times. ``opened(files)`` hears the
    opened files before any is decoded (not when the load cache holds them all) and
    ``decoded(buffer)`` each buffer as soon as its events are (the progressive first view,
    ``model/preview``). ``write_behind``: a file the load cache did not hold is written to it by a
    background thread (the app; ``loaders.loadcache.flush`` before the process ends), else before
    returning."""
    total = sum(max(1, os.path.getsize(p)) for p in paths)
    done = 0

    def step(msg: str, nbytes: int = 0) -> None:
        nonlocal done
        done += nbytes
        if progress:
            progress(min(done, total), total, msg)
        if cancel is not None and cancel.is_set():
            raise Cancelled()

    files: list[TraceFile] = []
    cached: list[loadcache.Entry | None] = []
    for p in paths:
        step(f"opening {os.path.basename(p)}")
        tf = open_trace(p)
        tf.hot_fields = HOT_FIELDS  # read while decoding, not in a second pass
        cached.append(loadcache.lookup(tf))  # a hit installs the decoded buffers: nothing below decodes
        files.append(tf)
    if opened is not None and not all(e is not None and e.hit for e in cached):  # all cached: nothing to preview
        opened(files)
        step("opened")
    for tf in files:
        size = max(1, os.path.getsize(tf.path))
        reported = 0
        for b in tf.buffers:
            msg = f"decoding {os.path.basename(tf.path)} {b.name or 'top'}"
            step(msg)

            def block_done(nbytes: int, msg: str = msg) -> None:  # per decoded block: bytes, not stages
                nonlocal reported
                reported += nbytes
                step(msg, nbytes)

            tf.progress = block_done
            try:
                _ = b.events
            finally:
                tf.progress = None
            if decoded is not None:
                decoded(b)
        step(f"decoded {os.path.basename(tf.path)}", max(0, size - reported))  # headers, metadata
    session = Session.from_files(files)
    shifted = _cache_before_offsets(session, cached, time_offsets or {})
    for stream, ns in (time_offsets or {}).items():
        session.set_time_offset(stream, ns)
    step("reading sched and kvm fields")
    session.prefetch()
    vmap = build_vcpu_map(session, user_map)
    for st in session.streams:
        step(f"task intervals of {st.name}")
        session.runs(st.index)
    _cache_after_load(session, cached, shifted, write_behind)
    release_free_memory()  # the derived tables' temporaries: give the heap's free pages back
    step("done")
    return LoadResult(session, vmap, list(session.warnings))


def _cache_before_offsets(session: Session, cached: list[loadcache.Entry | None],
                          time_offsets: dict[int | str, int]) -> set[int]:
    """Seed each stream's task runs, task names, pid counts and CPU tick counts from the load cache; store now the
    files whose streams the user shifts (the cache keeps a file as it is: after the shift its times
    are not; the shift drops what was seeded of a shifted stream).  Returns those files' indices."""
    for st in session.streams:
        e = cached[st.file_index]
        x = e.extras.get(st.trace.buffers.index(st.buffer), {}) if e is not None and e.hit else {}
        if "runs" in x:
            session.adopt_runs(st.index, x["runs"])
        if "task_names" in x and "pid_counts" in x:
            try:
                names = loadcache.names_of(x["task_names"])
                pids = (x["pid_counts"].column("pid").to_numpy(), x["pid_counts"].column("count").to_numpy())
            except (ValueError, KeyError, pa.ArrowException):
                continue  # computed when asked
            session.adopt_tasks(st.index, names, pids)
        if "cpu_ticks" in x and "ts_sorted" in x:
            try:
                ticks = _ticks_of(x["cpu_ticks"], st.buffer.events.num_rows)
                ts_sorted = x["ts_sorted"].column("ts_sorted").to_pylist() == [True]
            except (ValueError, KeyError, pa.ArrowException):
                continue
            session.adopt_ticks(st.index, ticks, ts_sorted)
    shifted = {session.streams[session.stream_index(k)].file_index for k, ns in time_offsets.items() if ns}
    for i in shifted:
        e = cached[i]
        if e is not None and not (e.hit and e.complete):
            loadcache.store(e)
    return shifted


def _cache_after_load(session: Session, cached: list[loadcache.Entry | None], shifted: set[int],
                      behind: bool) -> None:
    """Store each file the cache did not hold whole: events, hot fields, and per buffer the task
    runs, task names and pid counts (computed here if not yet: the window asks for them next)."""
    for i, e in enumerate(cached):
        if e is None or i in shifted:
            continue
        streams = [st for st in session.streams if st.file_index == i]
        if e.hit and e.complete and all("runs" in e.extras.get(st.trace.buffers.index(st.buffer), {})
                                        for st in streams):
            continue  # whole (task names and ticks are kept when they can be: no rewrite for them)
        try:  # what building the window parses next (the load cache keeps it): parsed here once
            _ = e.tf.kallsyms, e.tf.cmdlines
        except TraceDatError:
            pass  # the window meets it again and says so, as without the cache
        extras: dict[int, dict[str, pa.Table]] = {}
        for st in streams:
            x = extras[st.trace.buffers.index(st.buffer)] = {"runs": session.runs(st.index)}
            names = loadcache.names_table(session.task_names(st.index))
            if names is not None:
                uniq, counts = session.pid_counts(st.index)
                x.update(task_names=names, pid_counts=pa.table({"pid": uniq, "count": counts}))
            if st.cpu_count <= TICK_CPUS:  # every CPU row's event ticks in one pass (the window draws them next)
                cum = cpu_block_counts(st.buffer, st.cpu_count)  # the progressive view may have counted them
                ticks = {c: cum[c] for c in range(st.cpu_count)}
                session.adopt_ticks(st.index, ticks, session.ts_sorted(st.index))
                x.update(cpu_ticks=pa.table({str(c): a for c, a in ticks.items()}),
                         ts_sorted=pa.table({"ts_sorted": [session.ts_sorted(st.index)]}))
        loadcache.store(e, extras, behind=behind)


TICK_CPUS = 16
"""Streams with at most this many CPUs keep every CPU row's event-tick counts in the load cache
(4 bytes per 64 events per CPU)."""


def _ticks_of(table: pa.Table, rows: int) -> dict[int, np.ndarray]:
    """The per-CPU tick counts a load stored (ValueError when they cannot be this stream's)."""
    want = -(-rows // TICK_BLOCK) + 1
    out = {}
    for name in table.column_names:
        a = table.column(name).to_numpy()
        if len(a) != want or (len(a) and (a[0] != 0 or a[-1] > rows)):
            raise ValueError("tick counts of another stream")
        out[int(name)] = a
    return out
