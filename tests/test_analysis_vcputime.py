"""Where did the VCPU's time go (issue 12, item 5) on real files, against plain walks written here.

* external/doc-test: a real KVM host without sched events: the kvm view alone (guest from each
  kvm_entry to the kvm_exit closing it, exit handling by reason, halted after HLT, unknown);
* vm-tsync with its QMP map (a TCG VCPU thread without kvm events): the host's scheduling alone
  (guest while on a host CPU, preempted when switched out runnable, by the host tasks that ran,
  halted when asleep);
* vm-tsync without the map: the guest's own evidence (its CPU busy or idle);
* vm (no time sync): the guest's clock does not meet the host's window: unknown.
"""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from kshark_py.model.analysis.exits import guest_entries
from kshark_py.model.analysis.vcputime import STATE_ORDER, VCPU_INTERVALS, VCPU_TIME, vcpu_intervals, vcpu_time
from kshark_py.model.columns import event_columns

from .support.corpus import TRACES, TSYNC
from .support.kvmhost import (
    GUEST,
    HOST,
    OTHER_VM,
    VCPU0,
    kvm_totals,
    kvm_walk,
    named_exits,
    report_exits,
    session,
    span,
)
from .support.schedwalk import add_clipped, thread_walk


def _time_rows(t) -> dict[tuple, dict[str, int]]:
    out: dict[tuple, dict[str, int]] = defaultdict(dict)
    for r in t.to_pylist():
        out[(r["guest"], r["vcpu"], r["host_pid"])][r["state"]] = r["total_ns"]
    return dict(out)


def _check_tiling(iv, t0: int, t1: int) -> None:
    """Each VCPU's intervals follow each other without gap or overlap from t0 to t1."""
    by: dict[tuple, list] = defaultdict(list)
    for r in iv.to_pylist():
        by[(r["guest"], r["vcpu"], r["host_pid"])].append((r["start"], r["end"]))
    for spans in by.values():
        assert spans[0][0] == t0 and spans[-1][1] == t1
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
        assert all(e > s for s, e in spans)


@pytest.mark.parametrize("window", ["all", "middle"])
def test_kvm_host_every_state_against_the_walk(window):
    s = session(HOST, GUEST)
    t0, t1 = span(HOST)
    if window == "middle":
        t0, t1 = t0 + (t1 - t0) // 3, t0 + 2 * (t1 - t0) // 3
    vt = vcpu_time(s, t0, t1) if window == "middle" else vcpu_time(s)
    assert vt.schema == VCPU_TIME
    assert vt.column("state").to_pylist() == list(STATE_ORDER) * 3
    got = _time_rows(vt)
    want = kvm_totals(t0, t1)
    assert got == {("Salamander4", 0, VCPU0): want[VCPU0], **{("", v, p): want[p] for p, v in OTHER_VM.items()}}
    assert all(t["preempted"] == 0 for t in got.values())  # no sched events on this host
    mine = got[("Salamander4", 0, VCPU0)]
    assert mine["halted"] > 20 * mine["guest"] > 0  # an idle real-time guest
    # guest time is the sum over kvm_entry of the time to the kvm_exit that closes it (item 4's rule)
    g = guest_entries(s).to_pylist()
    assert mine["guest"] == sum(max(0, min(r["exit_ts"], t1) - max(r["entry_ts"], t0)) for r in g
                                if r["host_pid"] == VCPU0)
    iv = vcpu_intervals(s, t0, t1) if window == "middle" else vcpu_intervals(s)
    assert iv.schema == VCPU_INTERVALS
    _check_tiling(iv, t0, t1)


def test_kvm_host_exit_intervals_by_reason():
    s = session(HOST, GUEST)
    t0, t1 = span(HOST)
    iv = vcpu_intervals(s)
    exits, _ = kvm_walk()
    names = named_exits(exits, report_exits("trace.dat.report.txt.gz"))
    want = [(w["host_pid"], w["exit_ts"], w["entry_ts"], n[0]) for w, n in zip(exits, names, strict=True)
            if n[0] != "HLT"]
    got = [(r["host_pid"], r["start"], r["end"], r["reason"]) for r in iv.to_pylist() if r["state"] == "exit"]
    assert sorted(got) == sorted(want)
    assert {(r["by_pid"], r["by_comm"]) for r in iv.to_pylist() if r["state"] in ("guest", "exit")} == \
        {(VCPU0, "qemu-system-x86"), (453724, "CPU 0/KVM"), (453725, "CPU 1/KVM")}  # as trace-cmd names them
    assert all(r["reason"] is None for r in iv.to_pylist() if r["state"] != "exit")


def test_tcg_vcpu_thread_from_the_host_schedule():
    """vm-tsync with the QMP map: VCPU 0 is thread 27186 (TCG: no kvm events)."""
    vmap = json.loads((TSYNC / "vcpu-threads.json").read_text())
    pid = int(vmap["vcpus"][0]["thread-id"])
    s = session(TSYNC / "trace.dat", TSYNC / "trace-vmguest.dat")
    t0, t1 = span(TSYNC / "trace.dat")
    vt = _time_rows(vcpu_time(s, vcpu_map={"vmguest": {0: pid}}))
    want, runs, per_cpu = thread_walk(TSYNC / "trace.dat", pid, t0, t1)
    assert vt == {("vmguest", 0, pid): want}
    assert want["preempted"] > 0 and want["halted"] > 0 and want["guest"] > 0 and want["exit"] == 0
    # preempted: by the tasks the walk puts on the CPU the thread ran on next, piece by piece
    iv = vcpu_intervals(s, vcpu_map={"vmguest": {0: pid}})
    _check_tiling(iv, t0, t1)
    pre = [r for r in iv.to_pylist() if r["state"] == "preempted"]
    by_task: dict[tuple, int] = defaultdict(int)
    for r in pre:
        nxt = next(c for s_, _, c in runs if s_ >= r["end"])
        cur = [p for s_, e, p in per_cpu[nxt] if s_ <= r["start"] < e]
        assert [r["by_pid"]] == cur
        by_task[(r["by_comm"], r["by_pid"])] += r["end"] - r["start"]
    assert sum(by_task.values()) == want["preempted"]
    assert pid not in {p for _, p in by_task} and len(by_task) > 1


def test_guest_evidence_without_a_host_thread():
    """vm-tsync without a map: the host names no thread (TCP agent: pid -1) and has no kvm events,
    so the guest's CPU 0 says: a task running is guest time, idle (pid 0) is halted."""
    s = session(TSYNC / "trace.dat", TSYNC / "trace-vmguest.dat")
    t0, t1 = span(TSYNC / "trace.dat")
    gb = s.streams[1].buffer  # the guest, on the host clock (TIME_SHIFT)
    t = gb.events
    ts, cpu = t.column("ts").to_pylist(), t.column("cpu").to_pylist()
    rows, f = event_columns(gb, "sched_switch", ["prev_pid", "next_pid"], system="sched")
    tot = dict.fromkeys(STATE_ORDER, 0)
    first = min(x for x, c in zip(ts, cpu, strict=True) if c == 0)
    last = max(x for x, c in zip(ts, cpu, strict=True) if c == 0)
    sw = [(ts[r], pp, np_) for r, pp, np_ in zip(rows.tolist(), f["prev_pid"].tolist(), f["next_pid"].tolist(),
                                                 strict=True) if cpu[r] == 0]
    since, cur = first, sw[0][1]
    for x, _pp, np_ in sw:
        add_clipped(tot, "halted" if cur == 0 else "guest", since, x, t0, t1)
        since, cur = x, np_
    add_clipped(tot, "halted" if cur == 0 else "guest", since, last, t0, t1)
    tot["unknown"] = (t1 - t0) - tot["guest"] - tot["halted"]
    assert _time_rows(vcpu_time(s)) == {("vmguest", 0, -1): tot}
    assert tot["guest"] > 0 and tot["halted"] > 0 and tot["unknown"] > 0  # the guest's data ends first


def test_unsynchronized_guest_is_unknown_in_the_host_window():
    s = session(TRACES / "vm" / "trace.dat", TRACES / "vm" / "trace-vmguest.dat")
    t0, t1 = span(TRACES / "vm" / "trace.dat")
    got = _time_rows(vcpu_time(s))
    assert got == {("vmguest", v, -1): {**dict.fromkeys(STATE_ORDER, 0), "unknown": t1 - t0} for v in (0, 1)}


def test_empty_and_reversed_windows():
    s = session(HOST)
    t0, _ = span(HOST)
    assert vcpu_time(s, t0 + 10, t0 + 10).num_rows == 0 and vcpu_intervals(s, t0 + 10, t0).num_rows == 0
    one = _time_rows(vcpu_time(s, t0 - 1000, t0))  # before the host's data: all unknown
    assert all(v == {**dict.fromkeys(STATE_ORDER, 0), "unknown": 1000} for v in one.values()) and len(one) == 3
