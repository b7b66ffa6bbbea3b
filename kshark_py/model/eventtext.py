"""What trace-cmd prints for an event besides its fields: the time column and the info renderer's
context (symbols, printk strings, comms, a guest's functions for the host's kvm events).

Shared by ``kshark-py report`` and the app's event list, so both print the same text; neither
imports the other.
"""

from __future__ import annotations

from collections.abc import Callable

from ..loaders.printfmt import Evaluator, RenderContext
from ..loaders.tasks import task_comm
from ..loaders.tracedat import TraceFile
from .session import Session

GuestFuncs = Callable[[int, int], "tuple[str, int] | None"]
"""(host pid, guest rip) -> (the guest function's name, its start address), or None."""


def trace_cmd_time(ts: int, *, usecs: bool, nsec: bool) -> str:
    """One timestamp as trace-cmd's report column prints it (libtraceevent's TEP_PRINT_TIME, no
    trailing colon): ``%5d.%06d`` rounded to µs, ``%5d.%09d`` with ``-t`` (``nsec``), or the raw
    count right-aligned in 12 when the file's clock does not count ns (``usecs`` false: x86-tsc,
    counter)."""
    if usecs:
        if nsec:
            return f"{ts // 1000000000:5d}.{ts % 1000000000:09d}"
        t = (ts + 500) // 1000
        return f"{t // 1000000:5d}.{t % 1000000:06d}"
    # "%12d": libtraceevent reads the 12 as a precision and computes 10^12 in an int, which wraps to a
    # negative value, so its "p10 > 1" test fails and it prints "%12llu" (raw clocks like x86-tsc)
    return f"{ts & 0xFFFFFFFFFFFFFFFF:12d}"


def render_context(tf: TraceFile, guest_func: GuestFuncs | None = None) -> RenderContext:
    """What the info renderer needs from one file."""
    cmd = tf.cmdlines
    return RenderContext(endian=tf.endian, long_size=tf.lay.long_size, kallsyms=tf.kallsyms,
                         printk=tf.printk, comm_of=lambda pid: task_comm(cmd, pid),
                         guest_func=guest_func)


def guest_funcs(session: Session) -> GuestFuncs | None:
    """(host pid, guest rip) -> guest function, as trace-cmd's kvm plugin does in merged reports.

    trace-cmd maps host VCPU threads to guests only through the host's GUEST records
    (``map_vcpus()``), so only pids recorded there (never -1) resolve. None without such records.
    """
    by_pid = {}
    for g in session.guests:
        if g.record is None:
            continue
        for pid in g.record.vcpu_pids:
            if pid >= 0:
                by_pid[pid] = g.trace
    if not by_pid:
        return None
    evaluators: dict[int, Evaluator] = {}

    def lookup(pid: int, rip: int) -> tuple[str, int] | None:
        tf = by_pid.get(pid)
        if tf is None:
            return None
        ev = evaluators.get(id(tf))
        if ev is None:
            ev = evaluators[id(tf)] = Evaluator(render_context(tf))
        return ev.find_func(rip)

    return lookup
