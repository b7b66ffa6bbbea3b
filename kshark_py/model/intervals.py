"""Intervals derived from events: task runs per CPU, in-guest time per VCPU thread, VCPU state lanes.

Everything here is computed with whole-array numpy operations (no per-event Python loop) and
returned as pyarrow Tables that a caller computes once per stream and keeps (see
:class:`StreamIntervals`).

Task runs (:func:`cpu_runs`)
    Built from ``sched_switch`` and, where the trace lacks a switch, from ``common_pid``.  Every
    record is written by the task that is current on its CPU, so a record whose pid differs from
    the task the CPU was last known to run shows a context switch the trace does not hold.  Real
    traces do miss switches: on the corpus kernel many ``swapper ==> task`` switches out of idle are
    absent (the next record on that CPU is the task's own), and tasks hidden from tracing are
    switched to but never switched out.  Such a *missing switch* is placed right after the last
    record of the outgoing task (the incoming task gets the uncertain gap) and the run it closes
    gets ``end_state`` :data:`END_MISSING`.  When every switch is present this is exactly "each
    switch starts a run of ``next_pid`` until the next switch on that CPU".

kvm events (:func:`kvm_events`) and in-guest intervals (:func:`in_guest_intervals`)
    Each ``kvm_entry``/``kvm_exit`` with the next kvm event of its host thread: an exit closed by an
    entry was handled in the host that long, an entry closed by an exit ran guest code that long
    (issue 12's rule; VM exit analyses build on it).  In-guest intervals are ``kvm_entry`` to the next
    ``kvm_exit`` (or ``kvm_entry``) of the same host thread.  An exit whose reason is HLT (the guest
    idles) is flagged: the VCPU is halted until its next entry, not busy in the host.

VCPU states (:func:`vcpu_states`)
    One contiguous lane over the whole trace for one host VCPU thread, combining the scheduling
    view (on CPU / switched out runnable / switched out sleeping) with the kvm view (in guest /
    exited to the host).  The last known state lasts until something changes it or the trace ends.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..loaders.buffer import Buffer
from ..loaders.printfmt.plugins import SVM_EXIT_REASONS, VMX_EXIT_REASONS
from .columns import event_columns

__all__ = [
    "CPU_RUNS", "IN_GUEST", "KVM_EVENTS", "VCPU_STATES", "STATES", "END_OPEN", "END_MISSING",
    "cpu_runs", "task_runs", "kvm_events", "in_guest_intervals", "vcpu_states", "state_totals", "is_hlt_exit",
    "sleeping_mask", "is_runnable", "StreamIntervals",
]

END_OPEN = -1
"""``end_state`` of a run still on its CPU when that CPU's records end."""
END_MISSING = -2
"""``end_state`` of a run closed by a context switch the trace does not hold (see module doc)."""

CPU_RUNS = pa.schema([("cpu", pa.int16()), ("start", pa.int64()), ("end", pa.int64()),
                      ("pid", pa.int32()), ("end_state", pa.int64())])
IN_GUEST = pa.schema([("pid", pa.int32()), ("vcpu", pa.int32()), ("start", pa.int64()), ("end", pa.int64()),
                      ("exit_reason", pa.int64()), ("cpu", pa.int16()), ("halt", pa.bool_())])
KVM_EVENTS = pa.schema([("row", pa.int64()), ("pid", pa.int32()), ("ts", pa.int64()), ("cpu", pa.int16()),
                        ("entry", pa.bool_()), ("vcpu", pa.int32()), ("exit_reason", pa.int64()),
                        ("isa", pa.int64()), ("rip", pa.uint64()), ("closed", pa.bool_()),
                        ("next_ts", pa.int64())])
STATES = ("guest", "exit", "preempted", "halted", "unknown")
"""Every value of ``vcpu_states(...)["state"]``; the dictionary of that column is always this tuple."""
VCPU_STATES = pa.schema([("start", pa.int64()), ("end", pa.int64()),
                         ("state", pa.dictionary(pa.int8(), pa.string())), ("reason", pa.int64())])

_GUEST, _EXIT, _PREEMPTED, _HALTED, _UNKNOWN = range(5)
_STATE_DICT = pa.array(STATES, pa.string())

ISA_VMX, ISA_SVM = 1, 2
"""``kvm_exit``'s ``isa`` field: which table ``exit_reason`` is from (libtraceevent's kvm plugin
reads VMX when the field is absent, as on kernels before it existed)."""
HLT_VMX = next(k for k, v in VMX_EXIT_REASONS.items() if v == "HLT")  # 12: trace-cmd prints "reason HLT"
HLT_SVM = next(k for k, v in SVM_EXIT_REASONS.items() if v == "EXIT_HLT")  # 0x78: "reason EXIT_HLT"


def is_hlt_exit(exit_reason: np.ndarray, isa: np.ndarray | None) -> np.ndarray:
    """True where a ``kvm_exit`` left guest mode because the guest executed HLT (it idles).

    Compares as trace-cmd's kvm plugin does: the reason as a signed 32-bit number, in the table of
    the exit's ``isa`` (VMX when there is no ``isa`` field).
    """
    r = np.asarray(exit_reason, np.int64).astype(np.int32)
    if isa is None:
        return r == HLT_VMX
    isa = np.asarray(isa, np.int64) & 0xFFFFFFFF
    return ((isa == ISA_VMX) & (r == HLT_VMX)) | ((isa == ISA_SVM) & (r == HLT_SVM))


# prev_state bits meaning "not runnable" when the format cannot be read: TASK_REPORT | TASK_REPORT_IDLE
# of kernels >= 4.14, whose "R+" (preempted) bit is TASK_REPORT_MAX = 0x100.
_DEFAULT_SLEEPING = 0xFF


def _table(schema: pa.Schema, **cols: np.ndarray) -> pa.Table:
    return pa.Table.from_arrays([pa.array(np.asarray(cols[f.name], dtype=f.type.to_pandas_dtype()), f.type)
                                 for f in schema], schema=schema)


def _empty(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()


def sleeping_mask(buffer: Buffer) -> int:
    """The ``prev_state`` bits that mean the task went to sleep (not runnable) in this trace.

    Read from the flag table of ``sched_switch``'s print fmt (``{ 0x1, "S" }, { 0x2, "D" }, ...``), so
    that both ``R`` (0) and ``R+`` (the preempted bit past the table, 0x100 on kernels >= 4.14) count
    as runnable on any kernel.  Falls back to 0xff when the format has no table.
    """
    ev = buffer.trace.formats.find("sched_switch", "sched")
    fmt = getattr(ev, "print_fmt", None) or ""
    i = fmt.find("__print_flags")
    if i < 0:
        return _DEFAULT_SLEEPING
    j = fmt.find(")", fmt.find("}", i))  # the flags call ends at the first ')' after its first entry
    mask = 0
    for m in re.finditer(r"\{\s*(0x[0-9a-fA-F]+|\d+)\s*,\s*\"[^\"]*\"\s*\}", fmt[i:j if j > 0 else None]):
        mask |= int(m.group(1), 0)
    return mask or _DEFAULT_SLEEPING


def is_runnable(end_state: np.ndarray, mask: int) -> np.ndarray:
    """True where a (real, >= 0) ``prev_state`` says the task was still runnable (R or R+: preempted)."""
    end_state = np.asarray(end_state, np.int64)
    return (end_state >= 0) & ((end_state & mask) == 0)


# --------------------------------------------------------------------------------------------------
# cpu_runs


def _compiled_cuts(eid: np.ndarray, cpu: np.ndarray, pid: np.ndarray, ts: np.ndarray, sw_rows: np.ndarray,
                   prev_pid: np.ndarray, next_pid: np.ndarray, prev_state: np.ndarray) -> tuple[np.ndarray, ...]:
    """The cuts between task runs of every CPU by the loader's compiled pass
    (:func:`kshark_py.loaders.kernels.cut_pass`, two calls: count, then fill): (cpu, time, pid of
    the run a cut starts, end_state of the run it ends, whether it is a CPU's end), in row order per CPU."""
    from ..loaders.pages import compiled_kernels

    cut_pass = compiled_kernels().cut_pass
    ncpu = int(cpu.max()) + 1 if len(cpu) else 0
    args = (eid, cpu, pid, ts, sw_rows, prev_pid, next_pid, prev_state, ncpu, END_MISSING, END_OPEN)
    e = np.zeros(0, np.int64)
    m = cut_pass(False, *args, e.astype(np.int16), e, e.astype(np.int32), e, e.astype(np.bool_),
                 *np.zeros((3, ncpu), np.int64))
    out = (np.empty(m, np.int16), np.empty(m, np.int64), np.empty(m, np.int32), np.empty(m, np.int64),
           np.empty(m, np.bool_))
    cut_pass(True, *args, *out, *np.zeros((3, ncpu), np.int64))  # per CPU: records, last pid, last time
    return out


def cpu_runs(buffer: Buffer) -> pa.Table:
    """Which task ran on which CPU from when to when, from ``sched_switch``.

    Columns: ``cpu`` int16, ``start``/``end`` int64 ns, ``pid`` int32, ``end_state`` int64: the
    ``prev_state`` of the switch that ended the run, :data:`END_OPEN` (-1) if the run is still open
    where the CPU's records end, :data:`END_MISSING` (-2) if it was ended by a switch the trace does
    not hold (see the module doc).

    Per CPU the runs tile [the CPU's first record, its last record] without gaps or overlaps: the
    first run belongs to the task that wrote the CPU's first record (``prev_pid`` of the first switch
    when nothing else precedes it), each ``sched_switch`` starts a run of ``next_pid``, and the last
    run ends at the CPU's last record.  Idle (pid 0) runs are included; zero-length runs are kept
    (a switch at the very first or last record, two switches at one timestamp).  Sorted by
    (cpu, start).  Without any ``sched_switch`` record: an empty table with that schema.
    """
    sw_rows, f = event_columns(buffer, "sched_switch", ["prev_pid", "prev_state", "next_pid"], system="sched",
                               numbers_only=True)
    if len(sw_rows) == 0 or not {"prev_pid", "prev_state", "next_pid"} <= f.keys():
        return _empty(CPU_RUNS)
    t = buffer.events
    eid = t.column("event_id").to_numpy()
    cpu_all = t.column("cpu").to_numpy()
    pid_all = t.column("pid").to_numpy()
    ts_all = t.column("ts").to_numpy()
    prev_pid = f["prev_pid"].astype(np.int32)
    next_pid = f["next_pid"].astype(np.int32)
    prev_state = f["prev_state"].astype(np.int64)
    if buffer.compiled:  # the loader's compiled loops are loaded: the same rules in one pass
        c, time, newpid, endst, is_end = _compiled_cuts(eid, cpu_all, pid_all, ts_all, np.asarray(sw_rows, np.int64),
                                                        prev_pid, next_pid, prev_state)
        o = np.argsort(c, kind="stable")  # by CPU, each CPU's cuts in order, its end last
        c, time, newpid, endst, is_end = c[o], time[o], newpid[o], endst[o], is_end[o]
        begins = np.flatnonzero(~is_end)
        return _table(CPU_RUNS, cpu=c[begins], start=time[begins], end=time[begins + 1], pid=newpid[begins],
                      end_state=endst[begins + 1])
    cuts: dict[int, _CpuCuts] = {}
    # the table a block at a time, every CPU in one pass: temporaries stay a few MB whatever the
    # trace's size or CPU count
    for a in range(0, t.num_rows, _BLOCK_ROWS):
        b = min(t.num_rows, a + _BLOCK_ROWS)
        rows = a + np.flatnonzero(eid[a:b] >= 0)
        cpu = cpu_all[rows]
        order = np.argsort(cpu, kind="stable")  # by CPU, each CPU's own record order kept
        bounds = np.flatnonzero(np.diff(cpu[order])) + 1
        for part in np.split(order, bounds) if len(order) else []:
            c = int(cpu[part[0]])
            cc = cuts.get(c)
            if cc is None:
                cc = cuts[c] = _CpuCuts(c)
            cc.add(rows[part], pid_all, ts_all, sw_rows, prev_pid, next_pid, prev_state)
    parts = [cuts[c].runs() for c in sorted(cuts)]
    if not parts:
        return _empty(CPU_RUNS)
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return _table(CPU_RUNS, **cols)


_BLOCK_ROWS = 1 << 20


class _CpuCuts:
    """Cut points of one CPU's runs, collected block by block (see :func:`cpu_runs`).

    A cut ends one run and starts the next; its key 4*index + kind orders them, index counting
    the CPU's records: kind 0: the CPU's first record (begins a run); 1: missing switch between
    index-1 and index; 2: sched_switch at index; 3: the CPU's last record (ends a run).  Between
    blocks only the last record's task, time and running-maximum time are carried.
    """

    def __init__(self, cpu: int) -> None:
        self.cpu = cpu
        self.n = 0
        self.keys: list[np.ndarray] = []
        self.times: list[np.ndarray] = []
        self.pids: list[np.ndarray] = []
        self.states: list[np.ndarray] = []
        self.last_after = 0  # task current after the previous block's last record
        self.last_ts = 0  # running maximum time at that record

    def add(self, rows: np.ndarray, pid_all: np.ndarray, ts_all: np.ndarray, sw_rows: np.ndarray,
            prev_pid: np.ndarray, next_pid: np.ndarray, prev_state: np.ndarray) -> None:
        m = len(rows)
        base = self.n
        before = pid_all[rows].astype(np.int32)  # task current just before each record
        k_all = np.searchsorted(sw_rows, rows)
        is_sw = (k_all < len(sw_rows)) & (sw_rows[np.minimum(k_all, len(sw_rows) - 1)] == rows)
        swi = np.flatnonzero(is_sw)
        k = k_all[swi]
        before[swi] = prev_pid[k]
        after_last = int(next_pid[k[-1]]) if len(swi) and swi[-1] == m - 1 else int(before[-1])
        ts = ts_all[rows]
        if base:
            ts = np.maximum(ts, self.last_ts) if int(ts[0]) < self.last_ts else ts
        if m > 1 and bool((ts[1:] < ts[:-1]).any()):
            ts = np.maximum.accumulate(ts)
        # task current just after each record: its own pid, or next_pid at a switch
        after_prev = np.empty(m, np.int32)  # after[i-1], the previous block's last for i = 0
        after_prev[0] = self.last_after
        after_prev[1:] = before[:-1]
        nxt = swi + 1
        nxt_ok = nxt < m
        after_prev[nxt[nxt_ok]] = next_pid[k[nxt_ok]]
        hid = np.flatnonzero(before != after_prev)
        if base == 0:
            hid = hid[hid > 0]  # the first record begins a run; nothing before it to miss
            self._cut(np.array([0]), ts[:1], before[:1], np.array([0]))
        prev_ts = np.concatenate(([self.last_ts], ts[:-1]))  # time of record index-1
        self._cut(4 * (base + hid) + 1, prev_ts[hid], before[hid], np.full(len(hid), END_MISSING, np.int64))
        self._cut(4 * (base + swi) + 2, ts[swi], next_pid[k], prev_state[k])
        self.n += m
        self.last_after = after_last
        self.last_ts = int(ts[-1])

    def _cut(self, key, time, pid, state) -> None:
        self.keys.append(np.asarray(key, np.int64))
        self.times.append(np.asarray(time, np.int64))
        self.pids.append(np.asarray(pid, np.int32))
        self.states.append(np.asarray(state, np.int64))

    def runs(self) -> dict[str, np.ndarray]:
        self._cut(np.array([4 * (self.n - 1) + 3]), np.array([self.last_ts]), np.array([0]), np.array([END_OPEN]))
        key, time = np.concatenate(self.keys), np.concatenate(self.times)
        newpid, endst = np.concatenate(self.pids), np.concatenate(self.states)
        o = np.argsort(key, kind="stable")
        key, time, newpid, endst = key[o], time[o], newpid[o], endst[o]
        begins = np.flatnonzero((key & 3) != 3)  # every cut but the CPU's end starts a run that the next cut ends
        return {"cpu": np.full(len(begins), self.cpu, np.int16), "start": time[begins], "end": time[begins + 1],
                "pid": newpid[begins], "end_state": endst[begins + 1]}


def task_runs(runs: pa.Table, pid: int) -> pa.Table:
    """The rows of ``runs`` (a :func:`cpu_runs` table) for one task, sorted by start (then CPU)."""
    sel = runs.filter(pc.equal(runs.column("pid"), pa.scalar(pid, pa.int32())))
    return sel.take(pc.sort_indices(sel, [("start", "ascending"), ("cpu", "ascending")]))


# --------------------------------------------------------------------------------------------------
# in_guest_intervals


def _last_ts_per_pid(buffer: Buffer, pids: np.ndarray) -> np.ndarray:
    """Latest record time of each pid of ``pids`` (sorted, unique) in ``buffer``."""
    t = buffer.events
    pid = t.column("pid").to_numpy()
    ts = t.column("ts").to_numpy()
    m = np.isin(pid, pids)
    sub, subts = pid[m], ts[m]
    o = np.argsort(sub, kind="stable")
    sub, subts = sub[o], subts[o]
    starts = np.flatnonzero(np.r_[True, sub[1:] != sub[:-1]])
    out = np.maximum.reduceat(subts, starts)
    return out[np.searchsorted(sub[starts], pids)]


def kvm_events(buffer: Buffer) -> pa.Table:
    """Every ``kvm_entry`` and ``kvm_exit`` of ``buffer``, per host thread in report order, each paired
    with the next kvm event of its thread (issue 12's rule for VM exits and in-guest time).

    Columns (schema :data:`KVM_EVENTS`): ``row`` int64 (in ``buffer.events``), ``pid`` int32 (host
    thread), ``ts`` int64, ``cpu`` int16, ``entry`` bool (kvm_entry; else kvm_exit), ``vcpu`` int32
    (the event's ``vcpu_id``; -1 where the event has none, as kvm_exit before Linux 5.x), ``exit_reason``
    int64 (raw; -1 for entries or without the field), ``isa`` int64 (kvm_exit's ``isa``: 1 VMX, 2 SVM;
    1 where the field is absent, as libtraceevent reads it), ``rip`` uint64 (kvm_entry's ``rip``,
    kvm_exit's ``guest_rip``), ``closed`` bool: the next kvm event of the same thread is of the other
    kind, so this one has a duration (an exit closed by an entry is handled in the host for
    ``next_ts - ts``; an entry closed by an exit ran guest code that long).  An exit followed by
    another exit, an entry followed by another entry, or the last event of a thread is not closed.
    ``next_ts`` int64: time of the thread's next kvm event (-1 if none).  Sorted by (pid, row).
    """
    er, ef = event_columns(buffer, "kvm_entry", ["vcpu_id", "rip"], system="kvm", numbers_only=True)
    xr, xf = event_columns(buffer, "kvm_exit", ["exit_reason", "isa", "guest_rip", "vcpu_id"], system="kvm",
                           numbers_only=True)
    if len(er) + len(xr) == 0:
        return _empty(KVM_EVENTS)
    t = buffer.events

    def col(fields: dict, name: str, n: int, default: int, dtype=np.int64) -> np.ndarray:
        return fields[name].astype(dtype) if name in fields else np.full(n, default, dtype)

    rows = np.concatenate([er, xr]).astype(np.int64)
    entry = np.r_[np.ones(len(er), bool), np.zeros(len(xr), bool)]
    vcpu = np.r_[col(ef, "vcpu_id", len(er), -1), col(xf, "vcpu_id", len(xr), -1)]
    reason = np.r_[np.full(len(er), -1, np.int64), col(xf, "exit_reason", len(xr), -1)]
    isa = np.r_[np.ones(len(er), np.int64), col(xf, "isa", len(xr), ISA_VMX)]
    rip = np.r_[col(ef, "rip", len(er), 0, np.uint64), col(xf, "guest_rip", len(xr), 0, np.uint64)]
    pid = t.column("pid").to_numpy()[rows]
    o = np.lexsort((rows, pid))  # per thread, in report order
    rows, entry, vcpu, reason, isa, rip, pid = rows[o], entry[o], vcpu[o], reason[o], isa[o], rip[o], pid[o]
    ts = t.column("ts").to_numpy()[rows]
    same = np.r_[pid[1:] == pid[:-1], False]  # the next kvm event is of the same thread
    nxt = np.minimum(np.arange(1, len(rows) + 1), len(rows) - 1)
    closed = same & (entry != entry[nxt])
    next_ts = np.where(same, ts[nxt], -1)
    return _table(KVM_EVENTS, row=rows, pid=pid, ts=ts, cpu=t.column("cpu").to_numpy()[rows], entry=entry,
                  vcpu=vcpu, exit_reason=reason, isa=isa, rip=rip, closed=closed, next_ts=next_ts)


def in_guest_intervals(buffer: Buffer, kvm: pa.Table | None = None) -> pa.Table:
    """Host side: each ``kvm_entry`` -> next ``kvm_exit`` of the same thread (the VCPU running guest code).

    Columns: ``pid`` int32 (host thread), ``vcpu`` int32 (the entry's ``vcpu_id``, -1 if the event has
    none), ``start``/``end`` int64, ``exit_reason`` int64 (of the ``kvm_exit`` that closed the interval;
    -1 if another ``kvm_entry`` of that thread came first, which then closes it, or if the trace ends
    first, in which case ``end`` is that thread's last record), ``cpu`` int16 (host CPU of the entry),
    ``halt`` bool (the closing exit's reason is HLT: see :func:`is_hlt_exit`).
    An exit without a preceding entry is ignored.  Sorted by (pid, start).  Empty without kvm_entry.
    ``kvm``: :func:`kvm_events` of ``buffer`` if already computed.
    """
    k = kvm_events(buffer) if kvm is None else kvm
    entry = k.column("entry").to_numpy(zero_copy_only=False)
    ent = np.flatnonzero(entry)
    if len(ent) == 0:
        return _empty(IN_GUEST)
    c = {n: k.column(n).to_numpy() for n in ("pid", "ts", "vcpu", "exit_reason", "isa", "cpu", "next_ts")}
    closed = k.column("closed").to_numpy(zero_copy_only=False)
    p = c["pid"][ent]
    upids = np.unique(p)
    last_ts = _last_ts_per_pid(buffer, upids)[np.searchsorted(upids, p)]
    nts = c["next_ts"][ent]
    end = np.where(nts >= 0, nts, last_ts)
    by_exit = closed[ent]
    nxt = np.minimum(ent + 1, len(entry) - 1)
    why = np.where(by_exit, c["exit_reason"][nxt], -1)
    hlt = by_exit & is_hlt_exit(c["exit_reason"][nxt], c["isa"][nxt])
    return _table(IN_GUEST, pid=p, vcpu=c["vcpu"][ent], start=c["ts"][ent], end=end, exit_reason=why,
                  cpu=c["cpu"][ent], halt=hlt)


# --------------------------------------------------------------------------------------------------
# vcpu_states

# scheduling view codes
_S_UNKNOWN, _S_ON, _S_PREEMPTED, _S_HALTED = range(4)
# kvm view codes
_K_UNKNOWN, _K_GUEST, _K_EXIT, _K_HALT, _K_OPEN = range(5)  # _K_OPEN: after an event nothing closes


def _bool_column(t: pa.Table, name: str, n: int) -> np.ndarray:
    """A bool column of ``t`` as numpy (nulls and a missing column read as False)."""
    if name not in t.column_names:
        return np.zeros(n, bool)
    return t.column(name).fill_null(False).to_numpy(zero_copy_only=False).astype(bool)


def _state_at(x: np.ndarray, times: np.ndarray, codes: np.ndarray, default: int) -> np.ndarray:
    """Code of the latest change point at or before each x (``times`` sorted; later index wins ties)."""
    if len(times) == 0:
        return np.full(len(x), default, np.int64)
    i = np.searchsorted(times, x, side="right") - 1
    return np.where(i >= 0, codes[np.maximum(i, 0)], default)


def vcpu_states(buffer: Buffer, pid: int, runs: pa.Table | None = None, kvm: pa.Table | None = None) -> pa.Table:
    """The VCPU state lane of one host VCPU thread, covering [first record of the trace, last record].

    Columns: ``start``/``end`` int64, ``state`` dictionary<string> (dictionary always :data:`STATES`),
    ``reason`` int64 (for ``"exit"``: the ``exit_reason`` of the ``kvm_exit`` that began it; else -1).

    The kvm view follows issue 12's rule (:func:`kvm_events`): only a ``kvm_entry`` closed by a
    ``kvm_exit`` of its thread is time in guest, only an exit closed by an entry is time handling
    that exit; the time after an event its thread's next kvm event does not close (two entries or
    two exits in a row: events were lost; the thread's last kvm event) is unknown to it.

    States:

    * ``guest``: on a host CPU inside a closed in-guest interval; for a thread without any
      ``kvm_entry`` (software-emulated VCPU, e.g. TCG), all of its time on a host CPU.
    * ``exit``: on a host CPU handling a closed VM exit other than HLT.
    * ``halted``: after a HLT exit until the next ``kvm_entry``, on a host CPU (it only polls for a
      wake-up) or switched out; a thread without kvm events: switched out sleeping (S, D, I, ...).
    * ``preempted`` (steal): switched out still runnable (``prev_state`` R / R+), waiting for a CPU;
      a thread with kvm events also when switched out sleeping while its kvm view says guest or a
      (non-HLT) exit: off its CPU although its guest did not halt.
    * ``unknown``: before the first information about the thread, after a run that a switch missing
      from the trace ended (see :func:`cpu_runs`) until the next information, and a thread with kvm
      events while its kvm view knows nothing (before its first kvm event, after one not closed).

    Switched out beats the kvm view where the two disagree.  Without scheduling information (no
    ``sched_switch`` for the thread), the kvm view alone decides.  The last known state lasts to the
    end of the trace (a run open at the end of its CPU's records stays on CPU).  Intervals are
    contiguous, non-overlapping, non-empty, and consecutive ones differ in (state, reason).
    ``runs``/``kvm`` are :func:`cpu_runs` / :func:`kvm_events` of ``buffer`` if already computed.
    """
    ts_col = buffer.events.column("ts")
    if len(ts_col) == 0:
        return _empty(VCPU_STATES)
    t0, t1 = int(pc.min(ts_col).as_py()), int(pc.max(ts_col).as_py())
    if runs is None:
        runs = cpu_runs(buffer)
    if kvm is None:
        kvm = kvm_events(buffer)

    # scheduling view: change points (time, code) in order; ties resolved by order
    r = task_runs(runs, pid)
    rs = r.column("start").to_numpy().astype(np.int64)
    re_ = r.column("end").to_numpy().astype(np.int64)
    st = r.column("end_state").to_numpy().astype(np.int64)
    mask = sleeping_mask(buffer) if len(r) else _DEFAULT_SLEEPING
    off = np.where(st == END_MISSING, _S_UNKNOWN,
                   np.where(is_runnable(st, mask), _S_PREEMPTED, _S_HALTED))
    keep_end = st != END_OPEN  # an open run stays on CPU to the end of the trace
    s_times = np.concatenate([rs, re_[keep_end]])
    s_codes = np.concatenate([np.full(len(rs), _S_ON), off[keep_end]])
    s_seq = np.concatenate([2 * np.arange(len(rs)), 2 * np.flatnonzero(keep_end) + 1])
    o = np.lexsort((s_seq, s_times))
    s_times, s_codes = s_times[o], s_codes[o]

    # kvm view: every kvm event of the thread is a change point (see kvm_events for "closed")
    kv = kvm.filter(pc.equal(kvm.column("pid"), pa.scalar(pid, pa.int32())))
    k_times = kv.column("ts").to_numpy().astype(np.int64)
    entry = _bool_column(kv, "entry", len(k_times))
    closed = _bool_column(kv, "closed", len(k_times))
    xr = kv.column("exit_reason").to_numpy().astype(np.int64)
    hlt = ~entry & is_hlt_exit(xr, kv.column("isa").to_numpy())
    k_codes = np.where(closed, np.select([entry, hlt], [_K_GUEST, _K_HALT], _K_EXIT), _K_OPEN)
    k_reason = np.where(entry, -1, xr)
    o = np.argsort(k_times, kind="stable")  # the thread's own order breaks ties
    k_times, k_codes, k_reason = k_times[o], k_codes[o], k_reason[o]
    has_kvm = len(k_times) > 0

    bounds = np.unique(np.clip(np.concatenate([[t0, t1], s_times, k_times]), t0, t1))
    if len(bounds) < 2:
        return _empty(VCPU_STATES)
    x = bounds[:-1]
    s = _state_at(x, s_times, s_codes, _S_UNKNOWN)
    k = _state_at(x, k_times, k_codes, _K_UNKNOWN)
    kr = _state_at(x, k_times, k_reason, -1)

    kvm_state = np.select([k == _K_GUEST, k == _K_EXIT, k == _K_HALT], [_GUEST, _EXIT, _HALTED], _UNKNOWN)
    if has_kvm:
        on_cpu_state = kvm_state
        asleep_state = np.select([k == _K_HALT, (k == _K_GUEST) | (k == _K_EXIT)], [_HALTED, _PREEMPTED], _UNKNOWN)
    else:
        on_cpu_state, asleep_state = np.full(len(x), _GUEST), np.full(len(x), _HALTED)
    state = np.select([s == _S_ON, s == _S_PREEMPTED, s == _S_HALTED], [on_cpu_state, _PREEMPTED, asleep_state],
                      kvm_state)
    reason = np.where(state == _EXIT, kr, -1)

    change = np.r_[True, (state[1:] != state[:-1]) | (reason[1:] != reason[:-1])]
    idx = np.flatnonzero(change)
    starts = x[idx]
    ends = np.r_[starts[1:], t1]
    return pa.Table.from_arrays([
        pa.array(starts, pa.int64()), pa.array(ends, pa.int64()),
        pa.DictionaryArray.from_arrays(pa.array(state[idx].astype(np.int8), pa.int8()), _STATE_DICT),
        pa.array(reason[idx], pa.int64()),
    ], schema=VCPU_STATES)


def state_totals(states: pa.Table) -> dict[str, int]:
    """Nanoseconds per state of a :func:`vcpu_states` lane; every name of :data:`STATES` is present."""
    out = dict.fromkeys(STATES, 0)
    if states.num_rows == 0:
        return out
    col = states.column("state").combine_chunks()
    dur = states.column("end").to_numpy() - states.column("start").to_numpy()
    idx = col.indices.to_numpy()
    for i, name in enumerate(col.dictionary.to_pylist()):
        out[name] = out.get(name, 0) + int(dur[idx == i].sum())  # integer sums: exact at any trace length
    return out


# --------------------------------------------------------------------------------------------------
# cache


class StreamIntervals:
    """Lazily computed, cached interval tables of one buffer (one per stream; no invalidation needed:
    a loaded buffer never changes)."""

    def __init__(self, buffer: Buffer) -> None:
        self.buffer = buffer
        self._runs: pa.Table | None = None
        self._guest: pa.Table | None = None
        self._kvm: pa.Table | None = None
        self._lanes: dict[int, pa.Table] = {}

    @property
    def runs(self) -> pa.Table:
        if self._runs is None:
            self._runs = cpu_runs(self.buffer)
        return self._runs

    @property
    def kvm(self) -> pa.Table:
        if self._kvm is None:
            self._kvm = kvm_events(self.buffer)
        return self._kvm

    @property
    def in_guest(self) -> pa.Table:
        if self._guest is None:
            self._guest = in_guest_intervals(self.buffer, self.kvm)
        return self._guest

    def task_runs(self, pid: int) -> pa.Table:
        return task_runs(self.runs, pid)

    def vcpu_states(self, pid: int) -> pa.Table:
        lane = self._lanes.get(pid)
        if lane is None:
            lane = self._lanes[pid] = vcpu_states(self.buffer, pid, self.runs, self.kvm)
        return lane
