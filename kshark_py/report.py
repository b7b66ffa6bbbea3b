"""``kshark-py report``: print trace files the way ``trace-cmd report`` (3.1.6) prints them.

The loaders give columns; this module only decides order and wording:
  * streams (every buffer of every file) merge like ``tracecmd_iterate_events_multi()``;
  * the task column resolves pids like libtraceevent: saved cmdlines first, then the comms that
    the sched_switch / sched_wakeup plugin registers *as it prints* (so a pid first seen before
    any switch naming it prints as ``<...>``), computed with array operations;
  * times print with trace-cmd's formats (``%6.1000d`` usecs, ``%9.1d`` with -t);
  * the info text comes from the print-fmt renderer, only for the rows printed;
  * comms, ``%s`` arguments and every other kernel text are lossless ``str``
    (:mod:`.loaders.text`): :func:`write_lines` writes the bytes trace-cmd writes, and the task
    column is padded to 16 *bytes*, as ``%16s`` does in C.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import numpy as np

from .loaders.metadata import CmdlineTable
from .loaders.printfmt import InfoRenderer
from .loaders.tasks import is_int_array, is_text_array
from .loaders.text import decode_array, encode, pad
from .loaders.tracedat import TraceFile
from .model.eventtext import guest_funcs, render_context, trace_cmd_time
from .model.session import Session, Stream, merged_view

_PLUGIN_COMMS = (("sched_switch", (("prev_pid", "prev_comm"), ("next_pid", "next_comm"))),
                 ("sched_wakeup", (("pid", "comm"),)), ("sched_wakeup_new", (("pid", "comm"),)))
"""What libtraceevent's sched plugin registers (tep_register_comm) while printing these events,
in the order it does."""


def _registered_comms(streams: list[Stream], file_index: int, s_idx: np.ndarray, rows: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(print position, pid, comm) of every registration the sched plugin makes in one file, in
    the order it makes them."""
    pos_l, pid_l, comm_l, sub_l = [], [], [], []
    positions = np.arange(len(rows))
    for si, st in enumerate(streams):
        if st.file_index != file_index:
            continue
        mine = s_idx == si
        if not mine.any():
            continue
        t = st.buffer.events
        eid = t.column("event_id").to_numpy()
        tf = st.trace
        for name, pairs in _PLUGIN_COMMS:
            ev = tf.formats.find(name, "sched")
            if ev is None:
                continue
            sel = mine & (eid[np.clip(rows, 0, len(eid) - 1)] == ev.id) if len(eid) else mine & False
            if not sel.any():
                continue
            r = rows[sel]
            vals = st.buffer.field_arrays(ev, [f for pair in pairs for f in pair], r)
            for k, (pf, cf) in enumerate(pairs):
                # a damaged format can give these fields other types (a pid of chars, a comm of u64s):
                # such a pair registers nobody, as the plugin finds no pid/comm there (loaders.tasks too)
                if pf not in vals or cf not in vals or not is_int_array(vals[pf]) or not is_text_array(vals[cf]):
                    continue
                pos_l.append(positions[sel])
                pid_l.append(np.asarray(vals[pf]).astype(np.int64))
                sub_l.append(np.full(int(sel.sum()), k))
                comm_l.append(decode_array(vals[cf]))
    if not pos_l:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, object)
    pos = np.concatenate(pos_l)
    order = np.lexsort((np.concatenate(sub_l), pos))  # print order; prev before next within a row
    return pos[order], np.concatenate(pid_l)[order], np.concatenate(comm_l)[order]


def _names_as_printed(saved: list[tuple[int, str]], pids: np.ndarray, pos: np.ndarray, reg_pos: np.ndarray,
                      reg_pid: np.ndarray, reg_comm: np.ndarray) -> np.ndarray:
    """The comm trace-cmd prints for each row of one file (rows at print positions ``pos``).

    The table only changes when a new pid is inserted, so rows are named per epoch (insertions
    printed before them), not one by one: a pid named once has one name before and one after its
    insertion; only pids the early list holds twice are looked up again per epoch.
    """
    nz = np.flatnonzero(pids != 0)
    first_lookup = int(pos[nz[0]]) if len(nz) else np.iinfo(np.int64).max
    early = reg_pos < first_lookup
    table = CmdlineTable(saved + [(p, reg_comm[i]) for i, p in zip(np.flatnonzero(early).tolist(),
                                                                    reg_pid[early].tolist(), strict=True)])
    dup = sorted({p for i, p in enumerate(table.keys) if i and table.keys[i - 1] == p and p != 0})
    uniq, inv = np.unique(pids, return_inverse=True)
    before = np.array([table.lookup(p) for p in uniq.tolist()], dtype=object)
    after = before.copy()
    inserted_at = np.full(len(uniq), np.iinfo(np.int64).max)
    # insertions in print order: a pid's first registration once the table exists, if it is new
    ins_pos: list[int] = []
    dup_names: dict[int, list[str]] = {p: [table.lookup(p)] for p in dup}
    late = np.flatnonzero(~early)
    if len(late):
        lp = reg_pid[late]
        _, first = np.unique(lp, return_index=True)
        for j in np.sort(first).tolist():
            p = int(lp[j])
            if table.insert(p, reg_comm[int(late[j])]):
                ins_pos.append(int(reg_pos[late[j]]))
                k = int(np.searchsorted(uniq, p))
                if k < len(uniq) and uniq[k] == p:
                    inserted_at[k] = ins_pos[-1]
                    after[k] = reg_comm[int(late[j])]
                for d in dup:
                    dup_names[d].append(table.lookup(d))
    out = np.where(pos > inserted_at[inv], after[inv], before[inv])
    ins_pos_a = np.array(ins_pos, np.int64)
    for d in dup:
        rows_d = np.flatnonzero(pids == d)
        epoch = np.searchsorted(ins_pos_a, pos[rows_d], side="left")  # insertions printed before each
        out[rows_d] = np.array(dup_names[d], dtype=object)[epoch]
    return out


class TaskNames:
    """pid -> comm for each printed row, with libtraceevent's registration order."""

    def __init__(self, streams: list[Stream], s_idx: np.ndarray, rows: np.ndarray, *, plugins: bool) -> None:
        self.n = len(rows)
        self.comm = np.empty(len(rows), dtype=object)
        files = sorted({st.file_index for st in streams})
        pid_all = np.empty(len(rows), np.int64)
        for si, st in enumerate(streams):
            sel = s_idx == si
            if sel.any():
                pid_all[sel] = st.buffer.events.column("pid").to_numpy()[rows[sel]]
        positions = np.arange(len(rows))
        for fi in files:
            tf = next(st.trace for st in streams if st.file_index == fi)
            in_file = np.isin(s_idx, [si for si, st in enumerate(streams) if st.file_index == fi])
            pids = pid_all[in_file]
            pos = positions[in_file]
            if plugins:
                reg_pos, reg_pid, reg_comm = _registered_comms(streams, fi, s_idx, rows)
            else:
                reg_pos, reg_pid, reg_comm = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, object)
            self.comm[in_file] = _names_as_printed(tf.cmdline_entries, pids, pos, reg_pos, reg_pid, reg_comm)



def report(files: list[TraceFile], *, nsec: bool = False, raw: bool = False,
           cpus: Iterable[int] | None = None) -> Iterator[str]:
    """Yield the lines of ``trace-cmd report [-t] [-R] [--cpu LIST]`` for ``files``.

    ``cpus`` are trace-cmd 3.1.6's ``--cpu`` numbers, which count the CPUs of every stream in turn
    (``tracecmd_iterate_events_multi()`` hands the callback that running index): with a 2-CPU host and
    a 1-CPU guest, 2 is the guest's CPU 0; with one plain file they are the CPUs. As there, events are
    merged first and the others skipped (:func:`report_slots`).
    """
    session = Session.from_files(files)
    streams = session.streams
    multi = len(files) > 1
    any_instances = any(st.label for st in streams if st.buffer.name != "")
    labels = [st.label for st in streams]
    width = max((len(lb) for lb in labels if lb), default=0)
    prefixed = multi or any_instances

    def prefix(label: str | None) -> str:
        if not prefixed:
            return ""
        return f"{label:>{width}}: " if label else " " * width + "  "

    for i, tf in enumerate(files):
        top = next((st for st in streams if st.file_index == i and st.buffer.name == ""), None)
        ncpu = tf.cpus or (top.buffer.cpu_count if top else 0)
        # trace-cmd learns about instances only after printing this line: no prefix for one file
        yield f"{prefix(os.path.basename(tf.path)) if multi else ''}cpus={ncpu}"

    merged = merged_view(streams)
    s_idx, rows = merged.stream.astype(np.int64), merged.row
    if cpus is not None:
        keep = np.isin(report_slots(streams, s_idx, rows), np.fromiter(cpus, np.int64))
        s_idx, rows = s_idx[keep], rows[keep]
    names = TaskNames(streams, s_idx, rows, plugins=not raw)
    renderers = {}
    gfuncs = guest_funcs(session)
    for i, tf in enumerate(files):
        ctx = render_context(tf, gfuncs if tf is session.host else None)
        ctx.time_text = lambda t, tf=tf: trace_cmd_time(t, usecs=tf.in_usecs, nsec=nsec)  # func_repeats' last_ts
        renderers[i] = InfoRenderer(tf.formats, ctx)
    cols = []
    for st in streams:
        t = st.buffer.events
        lost = st.buffer.lost
        lost_map = dict(zip(lost.column("row").to_pylist(), lost.column("count").to_pylist(), strict=True))
        cols.append((t.column("ts").to_numpy(), t.column("cpu").to_numpy(), t.column("pid").to_numpy(),
                     t.column("event_id").to_numpy(), lost_map))
    for k in range(len(rows)):
        si = int(s_idx[k])
        r = int(rows[k])
        st = streams[si]
        ts, cpu, pid, eid, lost_map = cols[si]
        tf = st.trace
        c = int(cpu[r])
        e = int(eid[r])
        ev = tf.formats.get(e)
        name = ev.name if ev else "(NULL)"
        payload = st.buffer.payload(r)
        rend = renderers[st.file_index]
        info = rend.raw(e, payload, c) if raw else rend.info(e, payload, c, int(ts[r]))
        head = prefix(st.label)
        missed = lost_map.get(r)
        if missed:
            head += f"CPU:{c} [{missed} EVENTS DROPPED]\n" if missed > 0 else f"CPU:{c} [EVENTS DROPPED]\n"
        if ev is None:  # each tep_print_event() call (comm/pid/cpu, then time) prints only this
            line = f"{head}[UNKNOWN EVENT][UNKNOWN EVENT] {name}: " + " " * max(0, 20 - len(name)) + info
            yield line[:-1] if line.endswith("\n") else line
            continue
        comm = names.comm[k]
        sep = " " if tf.in_usecs else ""  # trace-cmd's time formats: " %6.1000d:" / " %9.1d:" but "%12d:"
        task = comm.rjust(16) if comm.isascii() else pad(comm, 16)  # "%16s": bytes, not characters
        line = (f"{head}{task}-{int(pid[r]):<5d} [{c:03d}]{sep}"
                f"{trace_cmd_time(int(ts[r]), usecs=tf.in_usecs, nsec=nsec)}: {name}: "
                + " " * max(0, 20 - len(name)) + info)
        if line.endswith("\n"):
            line = line[:-1]
        yield line


def write_lines(lines: Iterable[str], out: BinaryIO, *, batch: int = 4096) -> None:
    """Write report lines to a byte stream, each followed by a newline, as the bytes they stand for
    (:func:`.loaders.text.encode`: a comm that is not UTF-8 comes out as the kernel wrote it)."""
    buf: list[str] = []
    for line in lines:
        buf.append(line)
        if len(buf) >= batch:
            out.write(encode("\n".join(buf) + "\n"))
            buf.clear()
    if buf:
        out.write(encode("\n".join(buf) + "\n"))
    out.flush()


def report_slots(streams: list[Stream], s_idx: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """trace-cmd's CPU index of each merged event: its CPU plus the CPU counts of the streams before."""
    base = np.cumsum([0] + [st.cpu_count for st in streams[:-1]]).astype(np.int64)
    out = np.empty(len(rows), np.int64)
    for i, st in enumerate(streams):
        sel = np.flatnonzero(s_idx == i)
        out[sel] = st.buffer.events.column("cpu").to_numpy()[rows[sel]].astype(np.int64) + base[i]
    return out
