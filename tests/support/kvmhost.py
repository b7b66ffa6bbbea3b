"""external/doc-test, a real KVM host (three VCPU threads of two VMs) with its guest Salamander4: its
paths, plain walks over its kvm_exit/kvm_entry rows and the exits trace-cmd's saved report names."""

from __future__ import annotations

import gzip
import math
import re
from collections import Counter, defaultdict
from functools import cache
from pathlib import Path

import pytest

from kshark_py.loaders.tracedat import open_trace
from kshark_py.model.analysis.vcputime import STATE_ORDER
from kshark_py.model.columns import event_columns
from kshark_py.model.session import Session

from .corpus import TRACES
from .schedwalk import add_clipped

DOC = TRACES / "external" / "doc-test"
HOST, GUEST = DOC / "trace.dat", DOC / "trace-Salamander4.dat"


VCPU0 = 483882  # the GUEST record's thread of Salamander4's VCPU 0


OTHER_VM = {453724: 0, 453725: 1}  # threads of a VM no record names, with their kvm_entry vcpu_id


def session(*paths: Path) -> Session:
    for p in paths:
        if not p.is_file():
            pytest.fail(f"corpus file missing: {p}")
    return Session.from_files([open_trace(str(p)) for p in paths])


@cache
def kvm_walk(path: Path = HOST) -> tuple[list[dict], list[dict]]:
    """(closed exits, closed entries) of a host file, by a plain loop over its rows in report order:
    a kvm event is closed when the next kvm event of its thread is of the other kind."""
    b = open_trace(str(path)).buffers[0]
    t = b.events
    ts, pid = t.column("ts").to_pylist(), t.column("pid").to_pylist()
    er, ef = event_columns(b, "kvm_entry", ["vcpu_id"], system="kvm")
    xr, xf = event_columns(b, "kvm_exit", ["exit_reason", "guest_rip", "isa"], system="kvm")
    kvm = {int(r): ("entry", {"vcpu": int(v)}) for r, v in zip(er, ef["vcpu_id"], strict=True)}
    kvm.update({int(r): ("exit", {"reason": int(x), "rip": int(g), "isa": int(i)})
                for r, x, g, i in zip(xr, xf["exit_reason"], xf["guest_rip"], xf["isa"], strict=True)})
    last: dict[int, tuple[int, str, dict]] = {}
    exits, entries = [], []
    for row in sorted(kvm):
        kind, f = kvm[row]
        p = pid[row]
        if p in last:
            prow, pkind, pf = last[p]
            if pkind == "exit" and kind == "entry":
                exits.append({"host_pid": p, "exit_ts": ts[prow], "entry_ts": ts[row], "exit_row": prow,
                              "exit_reason": pf["reason"], "guest_rip": pf["rip"], "isa": pf["isa"],
                              "entry_vcpu": f["vcpu"]})
            elif pkind == "entry" and kind == "exit":
                entries.append({"host_pid": p, "entry_ts": ts[prow], "exit_ts": ts[row], "entry_row": prow,
                                "exit_row": row, "vcpu": pf["vcpu"]})
        last[p] = (row, kind, f)
    return sorted(exits, key=lambda w: w["exit_row"]), sorted(entries, key=lambda w: w["entry_row"])


@cache
def report_exits(name: str) -> dict[int, list[tuple[str, str | None]]]:
    """pid -> [(reason, guest symbol or None)] of each kvm_exit line trace-cmd printed, in order."""
    out: dict[int, list] = defaultdict(list)
    pat = re.compile(r"-(\d+)\s+\[\d+\].*kvm_exit:\s+reason (.+?) rip 0x[0-9a-f]+ (\S+)")
    with gzip.open(DOC / name, "rt") as f:
        for line in f:
            m = pat.search(line)
            if m:
                out[int(m.group(1))].append((m.group(2), None if m.group(3) == "info" else m.group(3)))
    return out


def named_exits(exits: list[dict], report: dict[int, list]) -> list[tuple[str, str | None]]:
    """(reason, symbol) trace-cmd printed for each closed exit: the exit's rank among its thread's exits."""
    b = open_trace(str(HOST)).buffers[0]
    xr, _ = event_columns(b, "kvm_exit", [], system="kvm")
    pid = b.events.column("pid").to_pylist()
    rank, seen = {}, Counter()
    for r in xr.tolist():
        rank[r] = seen[pid[r]]
        seen[pid[r]] += 1
    return [report[e["host_pid"]][rank[e["exit_row"]]] for e in exits]


def nearest_rank(sorted_vals: list[int], q: int) -> int:
    return sorted_vals[max(1, math.ceil(q * len(sorted_vals) / 100)) - 1]


def walk_stats(walk: list[dict], names: list, guest_of) -> list[tuple]:
    groups: dict[tuple, list[int]] = defaultdict(list)
    for w, n in zip(walk, names, strict=True):
        g, v = guest_of(w)
        groups[(g, v, w["host_pid"], n[0])].append(w["entry_ts"] - w["exit_ts"])
    rows = []
    for (g, v, p, r), d in groups.items():
        d.sort()
        rows.append((g, v, p, r, len(d), sum(d), nearest_rank(d, 50), nearest_rank(d, 99), d[-1]))
    return sorted(rows, key=lambda x: (x[0], x[1], x[2], -x[5]))


def span(path) -> tuple[int, int]:
    ts = open_trace(str(path)).buffers[0].events.column("ts").to_numpy()
    return int(ts.min()), int(ts.max())


def kvm_totals(t0: int, t1: int) -> dict[int, dict[str, int]]:
    """host pid -> ns per state over [t0, t1], from the closed entries and exits of the walk and
    trace-cmd's printed reasons; what they do not cover is unknown."""
    exits, entries = kvm_walk()
    names = named_exits(exits, report_exits("trace.dat.report.txt.gz"))
    out: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(STATE_ORDER, 0))
    for w in entries:
        add_clipped(out[w["host_pid"]], "guest", w["entry_ts"], w["exit_ts"], t0, t1)
    for w, n in zip(exits, names, strict=True):
        add_clipped(out[w["host_pid"]], "halted" if n[0] == "HLT" else "exit", w["exit_ts"], w["entry_ts"], t0, t1)
    for tot in out.values():
        tot["unknown"] = (t1 - t0) - sum(tot.values())
    return out


def exits_with_names() -> tuple[list[dict], list[tuple[str, str | None]]]:
    """The host's closed exits (:func:`kvm_walk`) and the (reason, symbol) trace-cmd printed for each."""
    walk, _ = kvm_walk()
    return walk, named_exits(walk, report_exits("trace.dat.report.txt.gz"))
