"""Walks over trace-cmd 3.1.6's saved reports (the corpus' *.report.txt[.gz]): event lines, wakeups,
start/end pairs and per-file counts, read from the printed text with plain loops, so that nothing of
kshark-py's field extraction or pairing is used by the reference."""

from __future__ import annotations

import gzip
import math
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from kshark_py.loaders.tracedat import open_trace
from kshark_py.model.session import Session

from ..reference import LINE_RE, read_reference

CASES = {
    "host-sched-v7": (["host-sched-v7.dat"], "host-sched-v7.dat.report.txt"),
    "host-sched-v6": (["host-sched-v6.dat"], "host-sched-v6.dat.report.txt"),
    "vm-tsync": (["vm-tsync/trace.dat", "vm-tsync/trace-vmguest.dat"], "vm-tsync/merged.report.txt"),
}


WAKING_PID = re.compile(r"\bpid=(\d+)\b")


WAKEUP_TASK = re.compile(r"^(.*):(\d+) \[\d+\]")  # sched_wakeup: "comm:pid [prio] CPU:nnn"


SWITCH_NEXT = re.compile(r"==> (.*):(\d+) \[\d+\]$")


def report_events(traces, ref: str) -> list[dict]:
    """Every event line of a saved report: event, common pid, cpu, time in us, info text."""
    out = []
    for line in read_reference(traces / ref):
        m = LINE_RE.match(line)
        if m:
            out.append({"event": m["event"], "pid": int(m["pid"]), "cpu": int(m["cpu"]),
                        "us": int(m["ts"].replace(".", "")), "info": m["info"].strip()})
    return out


def load(traces, files: list[str]) -> Session:
    return Session.from_files([open_trace(traces / f) for f in files])


def merged_map(session: Session, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(stream, row, ts) of merged row k for k < n."""
    m = session.merged()
    assert len(m) == n  # the report's event lines are the merged rows, one for one
    return np.asarray(m.stream).astype(np.int64), np.asarray(m.row).astype(np.int64), np.asarray(m.ts)


def walk_wakeups(traces, files: list[str], ref: str):
    """The reference: [(stream, pid, comm, waking k, switch k)] in report order, k = merged row."""
    session = load(traces, files)
    ev = report_events(traces, ref)
    stream, _row, _ts = merged_map(session, len(ev))
    has_waking = defaultdict(bool)
    for k, e in enumerate(ev):
        if e["event"] == "sched_waking":
            has_waking[int(stream[k])] = True
    pending: dict[tuple[int, int], tuple[int, str]] = {}
    out = []
    for k, e in enumerate(ev):
        s = int(stream[k])
        woken = None
        if e["event"] == "sched_waking" or (not has_waking[s] and e["event"] in ("sched_wakeup", "sched_wakeup_new")):
            if e["event"] == "sched_waking":
                pid = int(WAKING_PID.search(e["info"]).group(1))
                comm = e["info"].split("comm=", 1)[1].rsplit(" pid=", 1)[0]
            else:
                m = WAKEUP_TASK.match(e["info"])
                comm, pid = m.group(1), int(m.group(2))
            woken = (s, pid)
            if pid != 0 and woken not in pending:  # a second waking before the switch: the first stands
                pending[woken] = (k, comm)
        elif e["event"] == "sched_switch":
            m = SWITCH_NEXT.search(e["info"])
            key = (s, int(m.group(2)))
            if key in pending:
                wk, comm = pending.pop(key)
                out.append((s, key[1], comm, wk, k))
    return session, ev, out


def reference_stats(session, ev, walk, t0=None, t1=None):
    stream, row, ts = merged_map(session, len(ev))
    groups: dict[tuple[int, int], list[tuple[int, int, int, str]]] = defaultdict(list)
    for s, pid, comm, wk, sk in walk:
        a, b = int(ts[wk]), int(ts[sk])
        if (t0 is None or a >= t0) and (t1 is None or b <= t1):
            groups[(s, pid)].append((b - a, a, wk, comm))
    out = {}
    for key, items in groups.items():
        lats = sorted(x[0] for x in items)
        n = len(lats)
        worst = max(x[0] for x in items)
        out[key] = {"count": n, "total_ns": sum(lats), "p50_ns": lats[math.ceil(0.5 * n) - 1],
                    "p99_ns": lats[math.ceil(0.99 * n) - 1], "max_ns": worst,
                    "max_at_ns": min(x[1] for x in items if x[0] == worst),
                    "comm": max(items, key=lambda x: x[2])[3]}
    return out


IRQ = re.compile(r"\birq=(\d+)")


def irq_of(e):
    return int(IRQ.search(e["info"]).group(1))


def walk_pairs(ev, stream, start, end, skey, ekey):
    """[(stream, start k, end k, key)] by the rule in the module doc."""
    pending: dict = {}
    out = []
    for k, e in enumerate(ev):
        s = int(stream[k])
        if e["event"] == end:
            key = (s, ekey(e))
            if key in pending:
                out.append((s, pending.pop(key), k, key[1]))
        if e["event"] == start:
            pending[(s, skey(e))] = k
    return out


PAIRS = {  # folder: (host, guest)
    "vm-tsync": ("trace.dat", "trace-vmguest.dat"),
    "vm": ("trace.dat", "trace-vmguest.dat"),
    "external/doc-test": ("trace.dat", "trace-Salamander4.dat"),
}


LINE = re.compile(r"^\s*(\S+?):\s+(.*?)-(-?\d+)\s+\[(\d+)\]\s+(\d+\.\d+):\s+(\S+?):\s?(.*)$")


DROPPED = re.compile(r"^\s*(\S+?): CPU:\d+ \[.*EVENTS DROPPED\]")


BARE = re.compile(r"^()\s*(.*?)-(-?\d+)\s+\[(\d+)\]\s+(\d+\.\d+):\s+(\S+?):\s?(.*)$")
"""An event line without the file label: trace-cmd printed the label before a DROPPED message."""


NEXT_PID = re.compile(r"==> .*:(-?\d+) \[")


def report_walk(lines) -> dict:
    """Per file label of a merged report: count, first and last time text, sum of sched_switch's
    next_pid (from its info text), and every line's (label, time text, event) in order."""
    out: dict = defaultdict(lambda: {"n": 0, "first": None, "last": None, "next_pid": 0})
    order = []
    dropped = None
    for line in lines:
        m = LINE.match(line)
        if m is None and dropped is not None:
            m = BARE.match(line)
        if m is None:
            d = DROPPED.match(line)
            dropped = d.group(1) if d else None
            continue  # "cpus=N", "CPU:0 [N EVENTS DROPPED]"
        label, _comm, _pid, _cpu, t, event, info = m.groups()
        label, dropped = label or dropped, None
        d = out[label]
        d["n"] += 1
        d["first"] = d["first"] or t
        d["last"] = t
        if event == "sched_switch":
            d["next_pid"] += int(NEXT_PID.search(info).group(1))
        order.append((label, t, event))
    return {"streams": dict(out), "order": order}


def saved_report(folder: Path) -> dict:
    with gzip.open(folder / "merged.report.txt.gz", "rt", encoding="utf-8", errors="surrogateescape") as f:
        return report_walk(f)
