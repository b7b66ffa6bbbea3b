"""Plain sequential walks over a file's sched_switch records: every task's runs per CPU, and the time
of a VCPU thread without kvm events by the host's schedule."""

from __future__ import annotations

from collections import defaultdict

from kshark_py.loaders.tracedat import open_trace
from kshark_py.model.analysis.vcputime import STATE_ORDER
from kshark_py.model.columns import event_columns
from kshark_py.model.intervals import END_MISSING, END_OPEN


def slow_runs(b) -> list[tuple[int, int, int, int, int]]:
    """Per CPU, record by record: the documented rule, written as a plain sequential walk."""
    t = b.events
    ts, cpu, pid = (t.column(n).to_numpy().tolist() for n in ("ts", "cpu", "pid"))
    rows, f = event_columns(b, "sched_switch", ["prev_pid", "prev_state", "next_pid"], system="sched")
    sw = {int(r): (int(p), int(s), int(n)) for r, p, s, n in
          zip(rows, f["prev_pid"], f["prev_state"], f["next_pid"], strict=True)}
    per_cpu: dict[int, list[int]] = defaultdict(list)
    for i, c in enumerate(cpu):
        per_cpu[c].append(i)
    out = []
    for c in sorted(per_cpu):
        cur = start = prev_ts = None
        for i in per_cpu[c]:
            before = sw[i][0] if i in sw else pid[i]
            if cur is None:
                cur, start = before, ts[i]
            elif before != cur:  # a switch the trace lacks: placed after the old task's last record
                out.append((c, start, prev_ts, cur, END_MISSING))
                cur, start = before, prev_ts
            if i in sw:
                out.append((c, start, ts[i], cur, sw[i][1]))
                cur, start = sw[i][2], ts[i]
            prev_ts = ts[i]
        out.append((c, start, prev_ts, cur, END_OPEN))
    return out


def add_clipped(tot: dict, state: str, s: int, e: int, t0: int, t1: int) -> None:
    s, e = max(s, t0), min(e, t1)
    if e > s:
        tot[state] += e - s


def thread_walk(path, pid: int, t0: int, t1: int) -> tuple[dict[str, int], list[tuple], dict[int, list]]:
    """Totals of a VCPU thread without kvm events from the host's schedule, walked from the runs of
    ``slow_runs`` (sched_switch records, plus the switches a record of another
    task shows are missing): on a CPU is guest; after a run, preempted (R, R+), halted (asleep) or
    unknown (a missing switch) until the next run; unknown before the first.  Also its runs
    (start, end, cpu) and every CPU's runs (start, end, pid)."""
    b = open_trace(str(path)).buffers[0]
    every = slow_runs(b)
    per_cpu: dict[int, list] = defaultdict(list)
    for c, s_, e, p, _st in every:
        per_cpu[c].append((s_, e, p))
    mine = sorted((s_, e, c, st) for c, s_, e, p, st in every if p == pid)
    tot = dict.fromkeys(STATE_ORDER, 0)
    add_clipped(tot, "unknown", t0, mine[0][0], t0, t1)
    for i, (s_, e, _c, st) in enumerate(mine):
        nxt = mine[i + 1][0] if i + 1 < len(mine) else t1
        if st == -1:  # still on its CPU where that CPU's records end
            e = nxt
        add_clipped(tot, "guest", s_, e, t0, t1)
        add_clipped(tot, "unknown" if st == -2 else "preempted" if st in (0, 0x100) else "halted", e, nxt, t0, t1)
    return tot, [(s_, e, c) for s_, e, c, _ in mine], per_cpu
