"""kshark_py.model.intervals on the real corpus: task runs, in-guest intervals, VCPU state lanes.

Every expectation is computed independently here (slow Python loops over the records, trace-cmd's
own report text, the corpus README facts), never by calling the code under test twice.
"""

from __future__ import annotations

import gzip
import re
from collections import Counter, defaultdict
from functools import cache

import numpy as np
import pyarrow as pa
import pytest

from kshark_py.loaders.tracedat import open_trace
from kshark_py.model.columns import event_columns
from kshark_py.model.intervals import (
    CPU_RUNS,
    END_MISSING,
    END_OPEN,
    IN_GUEST,
    KVM_EVENTS,
    STATES,
    VCPU_STATES,
    StreamIntervals,
    cpu_runs,
    in_guest_intervals,
    is_hlt_exit,
    is_runnable,
    kvm_events,
    sleeping_mask,
    state_totals,
    task_runs,
    vcpu_states,
)

from .support.corpus import TRACES
from .support.schedwalk import slow_runs

DOC_TEST = "external/doc-test/trace.dat"
VCPU_DOC = 483882  # the host thread of VCPU 0 in the doc-test GUEST option
VCPU_TSYNC = 27186  # vm-tsync/vcpu-threads.json
VCPUS_VM = (16748, 16749)  # vm/vcpu-threads.json


@cache
def _buffer(name: str):
    path = TRACES / name
    if not path.is_file():
        pytest.fail(f"corpus file missing: {path}")
    b = open_trace(str(path)).buffers[0]
    b.events  # noqa: B018 (decode once, outside any timing)
    return b


@cache
def _runs(name: str) -> pa.Table:
    return cpu_runs(_buffer(name))


@cache
def _guest(name: str) -> pa.Table:
    return in_guest_intervals(_buffer(name))


@cache
def _kvm(name: str) -> pa.Table:
    return kvm_events(_buffer(name))


def _cols(t: pa.Table) -> dict[str, np.ndarray]:
    return {n: t.column(n).to_numpy() for n in t.column_names if not pa.types.is_dictionary(t.schema.field(n).type)}


def span(b) -> tuple[int, int]:
    ts = b.events.column("ts").to_numpy()
    return int(ts.min()), int(ts.max())


# ---------------------------------------------------------------------------------------------- runs


@pytest.mark.parametrize("name", ["host-sched-v7.dat", "vm-tsync/trace.dat", "host-lost-events.dat"])
def test_runs_equal_slow_walk(name):
    r = _runs(name)
    assert r.schema == CPU_RUNS
    got = list(zip(*(r.column(n).to_pylist() for n in ("cpu", "start", "end", "pid", "end_state")), strict=True))
    assert got == slow_runs(_buffer(name))


@pytest.mark.parametrize("block", [1, 7, 1000])
def test_runs_do_not_depend_on_block_size(block, monkeypatch):
    """cpu_runs walks the table a block at a time (bounded temporaries): any cut gives the slow walk's runs."""
    import kshark_py.model.intervals as iv

    monkeypatch.setattr(iv, "_BLOCK_ROWS", block)
    b = _buffer("host-lost-events.dat")
    r = cpu_runs(b)
    got = list(zip(*(r.column(n).to_pylist() for n in ("cpu", "start", "end", "pid", "end_state")), strict=True))
    assert got == slow_runs(b)


@pytest.mark.parametrize("name", ["host-sched-v7.dat", "host-sched-v6.dat", "vm/trace.dat", "host-instances.dat"])
def test_runs_tile_each_cpu(name):
    b = _buffer(name)
    c = _cols(_runs(name))
    ts = b.events.column("ts").to_numpy()
    ecpu = b.events.column("cpu").to_numpy()
    assert (c["end"] >= c["start"]).all()
    assert set(np.unique(c["cpu"])) == set(np.unique(ecpu))
    for k in np.unique(c["cpu"]):
        s = c["cpu"] == k
        start, end = c["start"][s], c["end"][s]
        assert (start[1:] >= start[:-1]).all()  # sorted by (cpu, start)
        assert (end[:-1] == start[1:]).all()  # no gap, no overlap
        assert start[0] == ts[ecpu == k].min() and end[-1] == ts[ecpu == k].max()
        assert int((end - start).sum()) == int(ts[ecpu == k].max() - ts[ecpu == k].min())
        assert c["end_state"][s][-1] == END_OPEN and (c["end_state"][s][:-1] != END_OPEN).all()


def test_runs_begin_and_end_at_switches():
    """Each switch ends a run of prev_pid with its prev_state and begins a run of next_pid (host-sched-v7)."""
    name = "host-sched-v7.dat"
    b = _buffer(name)
    c = _cols(_runs(name))
    rows, f = event_columns(b, "sched_switch", ["prev_pid", "prev_state", "next_pid"], system="sched")
    ts = b.events.column("ts").to_numpy()[rows]
    cpu = b.events.column("cpu").to_numpy()[rows]
    o = np.argsort(cpu, kind="stable")  # switches per CPU in record order
    ended = np.flatnonzero(c["end_state"] >= 0)  # runs are per CPU in time order too
    assert len(ended) == len(rows) == 39596
    assert (c["cpu"][ended] == cpu[o]).all()
    assert (c["end"][ended] == ts[o]).all()
    assert (c["pid"][ended] == f["prev_pid"][o]).all()
    assert (c["end_state"][ended] == f["prev_state"][o]).all()
    nxt = ended + 1  # the run after a switch is on the same CPU (a CPU's last run is open, not switch-ended)
    assert (c["cpu"][nxt] == cpu[o]).all()
    assert (c["start"][nxt] == ts[o]).all()
    assert (c["pid"][nxt] == f["next_pid"][o]).all()


def test_missing_switches_are_real():
    """Runs closed by a missing switch: the next record on that CPU is really another task's own record."""
    name = "vm-tsync/trace.dat"
    c = _cols(_runs(name))
    miss = np.flatnonzero(c["end_state"] == END_MISSING)
    assert len(miss) > 8000  # this kernel drops many "swapper ==> task" switches (README: TCG pair)
    assert (c["pid"][miss] != c["pid"][miss + 1]).all()
    assert (c["cpu"][miss] == c["cpu"][miss + 1]).all()
    # most of them are idle runs ended by the VCPU / qemu threads' own records
    assert Counter(c["pid"][miss].tolist()).most_common(1)[0][0] == 0
    assert VCPU_TSYNC in set(c["pid"][miss + 1].tolist())


def _switch_only_runs(b) -> tuple[dict[int, list[tuple[int, int, int]]], set[int]]:
    """Runs per pid from sched_switch rows alone (switch in -> next switch on that CPU), and the pids
    this walk cannot account fully: a switch chain broken somewhere (a switch-out by another pid than
    the one switched in), or a run before a CPU's first switch or after its last."""
    rows, f = event_columns(b, "sched_switch", ["prev_pid", "prev_state", "next_pid"], system="sched")
    ts = b.events.column("ts").to_numpy()[rows].tolist()
    cpu = b.events.column("cpu").to_numpy()[rows].tolist()
    runs: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    broken: set[int] = set()
    on: dict[int, tuple[int, int]] = {}
    for t, c, p, n in zip(ts, cpu, f["prev_pid"].tolist(), f["next_pid"].tolist(), strict=True):
        if c in on:
            q, since = on[c]
            if q == p:
                runs[p].append((c, since, t))
            else:
                broken.update((p, q))
        else:
            broken.add(p)
        on[c] = (n, t)
    broken.update(n for n, _ in on.values())
    return runs, broken


def test_known_task_runtime_matches_switch_walk():
    """Tasks the switch walk accounts for completely (every record of theirs inside one of their walked
    runs; host-sched-v7 lost 193 events on CPU 1, which can hide a whole run) have the same runtime."""
    name = "host-sched-v7.dat"
    b = _buffer(name)
    walked, broken = _switch_only_runs(b)
    ts, cpu, pid = (b.events.column(n).to_numpy() for n in ("ts", "cpu", "pid"))
    o = np.argsort(pid, kind="stable")
    cut = np.flatnonzero(np.diff(pid[o])) + 1
    recs = {int(pid[g[0]]): (ts[g], cpu[g]) for g in np.split(o, cut)}
    runs = _runs(name)
    checked = 0
    for p, lst in sorted(walked.items(), key=lambda kv: -sum(e - s for _, s, e in kv[1])):
        if p == 0 or p in broken:
            continue
        pts, pcpu = recs[p]
        covered = np.zeros(len(pts), bool)
        for c, s, e in lst:
            covered |= (pcpu == c) & (pts >= s) & (pts <= e)
        if not covered.all():
            continue
        tr = _cols(task_runs(runs, p))
        assert int((tr["end"] - tr["start"]).sum()) == sum(e - s for _, s, e in lst), p
        assert len(tr["start"]) == len(lst)
        assert (tr["pid"] == p).all() and (np.diff(tr["start"]) >= 0).all()
        checked += 1
    assert checked >= 100


def test_prev_state_classification_matches_trace_cmd_letters():
    """R / R+ (runnable) versus the rest, against trace-cmd's printed state of every sched_switch."""
    name = "host-sched-v7.dat"
    b = _buffer(name)
    assert sleeping_mask(b) == 0xFF
    _, f = event_columns(b, "sched_switch", ["prev_state"], system="sched")
    with gzip.open(TRACES / (name + ".report.txt.gz"), "rt") as fh:
        letters = [m.group(1) for line in fh if " sched_switch: " in line
                   for m in [re.search(r"\] (\S+) ==> ", line)] if m]
    assert len(letters) == len(f["prev_state"])
    assert (is_runnable(f["prev_state"], sleeping_mask(b)) == np.array([s.startswith("R") for s in letters])).all()
    assert is_runnable(np.array([0, 0x100, 1, 2, 0x80, 0x101, -1, -2]), 0xFF).tolist() == \
        [True, True, False, False, False, False, False, False]


def test_without_sched_switch_runs_are_empty():
    r = _runs(DOC_TEST)  # the doc-test host recorded only kvm events
    assert r.num_rows == 0 and r.schema == CPU_RUNS
    assert task_runs(r, VCPU_DOC).num_rows == 0


# ---------------------------------------------------------------------------------------- in guest


def _kvm_records(b):
    t = b.events
    er, ef = event_columns(b, "kvm_entry", ["vcpu_id"], system="kvm")
    xr, xf = event_columns(b, "kvm_exit", ["exit_reason"], system="kvm")
    recs = sorted([(int(r), "entry", int(v)) for r, v in zip(er, ef["vcpu_id"], strict=True)]
                  + [(int(r), "exit", int(x)) for r, x in zip(xr, xf["exit_reason"], strict=True)])
    ts, pid, cpu = (t.column(n).to_numpy() for n in ("ts", "pid", "cpu"))
    return [(int(ts[r]), int(pid[r]), int(cpu[r]), kind, v) for r, kind, v in recs]


def test_in_guest_intervals_doc_test():
    b = _buffer(DOC_TEST)
    g = _guest(DOC_TEST)
    assert g.schema == IN_GUEST
    recs = _kvm_records(b)
    assert Counter(k for *_, k, _ in recs) == {"entry": 5861, "exit": 5860}  # corpus README
    # slow walk: per pid, an entry opens, the next kvm event of that pid closes
    open_: dict[int, tuple] = {}
    want = []
    for ts, pid, cpu, kind, v in recs:
        if pid in open_:
            s, vc, c = open_.pop(pid)
            want.append((pid, vc, s, ts, v if kind == "exit" else -1, c))
        if kind == "entry":
            open_[pid] = (ts, v, cpu)
    pid_all = b.events.column("pid").to_numpy()
    ts_all = b.events.column("ts").to_numpy()
    for pid, (s, vc, c) in open_.items():
        want.append((pid, vc, s, int(ts_all[pid_all == pid].max()), -1, c))
    want.sort(key=lambda w: (w[0], w[2]))
    got = list(zip(*(g.column(n).to_pylist() for n in ("pid", "vcpu", "start", "end", "exit_reason", "cpu")),
                   strict=True))
    assert got == want
    counts = Counter(g.column("pid").to_pylist())
    assert counts == {VCPU_DOC: 5357, 453724: 265, 453725: 239}
    c = _cols(g)
    mine = c["pid"] == VCPU_DOC
    assert set(c["vcpu"][mine].tolist()) == {0}
    assert (c["exit_reason"][mine] == -1).sum() == 1 and c["exit_reason"][mine][-1] == -1  # last entry: no exit
    assert c["end"][mine][-1] == ts_all.max()
    # the exit reasons, in order, are the kvm_exit records of that thread
    exits = [v for _, pid, _, kind, v in recs if pid == VCPU_DOC and kind == "exit"]
    assert c["exit_reason"][mine][:-1].tolist() == exits
    assert set(exits) >= {12, 49, 52, 56}  # VMX: HLT, EPT misconfig, preemption timer, APIC write


def test_in_guest_intervals_empty_without_kvm_entry():
    for name in ("host-kvm.dat", "vm-tsync/trace.dat"):  # formats present, no entry/exit fired
        g = _guest(name)
        assert g.num_rows == 0 and g.schema == IN_GUEST


# ------------------------------------------------------------------------------------------- lanes


def _check_lane(lane: pa.Table, b) -> dict[str, int]:
    assert lane.schema == VCPU_STATES
    c = _cols(lane)
    t0, t1 = span(b)
    assert c["start"][0] == t0 and c["end"][-1] == t1
    assert (c["end"][:-1] == c["start"][1:]).all() and (c["end"] > c["start"]).all()
    state = lane.column("state").to_pylist()
    assert set(state) <= set(STATES)
    assert lane.column("state").type.value_type == pa.string()
    same = [(state[i], c["reason"][i]) == (state[i + 1], c["reason"][i + 1]) for i in range(len(state) - 1)]
    assert not any(same)  # merged
    assert all(r == -1 for s, r in zip(state, c["reason"], strict=True) if s != "exit")
    tot = state_totals(lane)
    assert set(tot) == set(STATES) and sum(tot.values()) == t1 - t0
    return tot


def _report_exit_names(name: str, pid: int) -> list[str]:
    """The exit reason trace-cmd 3.1.6 printed for each ``kvm_exit`` of thread ``pid``, in order."""
    with gzip.open(TRACES / f"{name}.report.txt.gz", "rt") as f:
        return [m.group(1) for line in f if f"-{pid} " in line and " kvm_exit: " in line
                for m in [re.search(r"kvm_exit:\s+reason (\S+)", line)] if m]


def test_kvm_events_pair_each_event_with_the_next_of_its_thread():
    """Issue 12's rule, walked record by record: an event is closed when its thread's next kvm event
    is of the other kind; the exits' reasons and guest RIPs are what trace-cmd printed."""
    b = _buffer(DOC_TEST)
    k = _kvm(DOC_TEST)
    assert k.schema == KVM_EVENTS
    recs = _kvm_records(b)
    last: dict[int, int] = {}
    want = []
    for i, (ts, pid, cpu, kind, _v) in enumerate(recs):
        want.append([pid, ts, cpu, kind == "entry", False, -1])
        if pid in last:
            j = last[pid]
            want[j][4] = want[j][3] != (kind == "entry")
            want[j][5] = ts
        last[pid] = i
    want.sort(key=lambda w: w[0])  # stable: each thread's records stay in report order
    got = list(zip(*(k.column(n).to_pylist() for n in ("pid", "ts", "cpu", "entry", "closed", "next_ts")),
                   strict=True))
    assert got == [tuple(w) for w in want]
    c = _cols(k)
    mine = (c["pid"] == VCPU_DOC) & ~c["entry"]
    with gzip.open(TRACES / f"{DOC_TEST}.report.txt.gz", "rt") as f:
        rips = [int(m.group(1), 16) for line in f if f"-{VCPU_DOC} " in line
                for m in [re.search(r"kvm_exit:.* rip (0x[0-9a-f]+)", line)] if m]
    assert c["rip"][mine].tolist() == rips
    assert set(c["isa"].tolist()) == {1}  # VMX


def _kvm_walk(b, pid: int, names: list[str], t1: int) -> dict[str, int]:
    """Totals of a thread with kvm events and no sched_switch, walked event by event: an event its
    thread's next one closes lasts to it (entry: guest; exit: halted after HLT, else exit); else the
    time to the next event (or the end) is unknown, as is the time before the first."""
    recs = [(ts, kind) for ts, p, _, kind, _ in _kvm_records(b) if p == pid]
    tot = dict.fromkeys(STATES, 0)
    tot["unknown"] += recs[0][0] - span(b)[0]
    names = iter(names)
    for i, (ts, kind) in enumerate(recs):
        name = next(names) if kind == "exit" else None
        nxt = recs[i + 1] if i + 1 < len(recs) else None
        end = nxt[0] if nxt else t1
        if nxt is None or nxt[1] == kind:
            tot["unknown"] += end - ts
        elif kind == "entry":
            tot["guest"] += end - ts
        else:
            tot["halted" if name == "HLT" else "exit"] += end - ts
    return tot


def test_vcpu_lane_kvm_host_without_sched():
    """Without scheduling events the kvm view decides: in guest from an entry to the exit that closes
    it, halted after an exit trace-cmd prints as ``reason HLT`` (the guest idles until the next entry),
    VM exit (host) after any other exit, unknown after an event its thread's next does not close."""
    b = _buffer(DOC_TEST)
    lane = vcpu_states(b, VCPU_DOC, _runs(DOC_TEST), _kvm(DOC_TEST))
    tot = _check_lane(lane, b)
    t0, t1 = span(b)
    names = _report_exit_names(DOC_TEST, VCPU_DOC)
    assert len(names) == 5356 and names.count("HLT") == 1488
    assert tot == _kvm_walk(b, VCPU_DOC, names, t1)
    # its first record is an entry, its last entry (nothing closes it) is the trace's last record
    assert tot["preempted"] == 0 and tot["unknown"] == 0
    assert tot["halted"] > 10 * tot["exit"]  # an idle guest: the halts, not the exits, fill the time
    state = lane.column("state").to_pylist()
    reasons = [r for s, r in zip(state, lane.column("reason").to_pylist(), strict=True) if s == "exit"]
    exits = [v for _, pid, _, kind, v in _kvm_records(b) if pid == VCPU_DOC and kind == "exit"]
    assert reasons == [v for v, n in zip(exits, names, strict=True) if n != "HLT"]  # one interval per non-HLT exit
    assert set(state) == {"guest", "exit", "halted"}
    # another VCPU thread: unknown until its first kvm event, then the kvm view alone
    other = vcpu_states(b, 453724, _runs(DOC_TEST), _kvm(DOC_TEST))
    tot2 = _check_lane(other, b)
    assert tot2 == _kvm_walk(b, 453724, _report_exit_names(DOC_TEST, 453724), t1)
    assert other.column("state")[other.num_rows - 1].as_py() == "unknown"  # its last kvm event: nothing closes it


def test_hlt_exit_codes_vmx_and_svm():
    """HLT is 12 in VMX's table and 0x78 (printed EXIT_HLT) in SVM's; no isa field means VMX."""
    r = np.array([12, 0x78, 12, 0x78, 30, 12])
    isa = np.array([1, 2, 2, 1, 1, 3])
    assert is_hlt_exit(r, isa).tolist() == [True, True, False, False, False, False]
    assert is_hlt_exit(r, None).tolist() == [True, False, True, False, False, True]


def _lane_from_runs(runs: pa.Table, pid: int, t0: int, t1: int) -> dict[str, int]:
    """Expected totals of a software-emulated VCPU, by walking that thread's runs."""
    tot = dict.fromkeys(STATES, 0)
    rows = sorted(zip(*(task_runs(runs, pid).column(n).to_pylist() for n in ("start", "end", "end_state")),
                      strict=True))
    tot["unknown"] += rows[0][0] - t0
    for i, (s, e, st) in enumerate(rows):
        nxt = rows[i + 1][0] if i + 1 < len(rows) else t1
        if st == END_OPEN:  # still on CPU when its CPU's records end: stays on CPU
            e = nxt
        tot["guest"] += e - s
        gap = nxt - e
        if st == END_MISSING:
            tot["unknown"] += gap
        elif st in (0, 0x100):  # R, R+
            tot["preempted"] += gap
        else:
            tot["halted"] += gap
    return tot


@pytest.mark.parametrize(("name", "pid"), [("vm-tsync/trace.dat", VCPU_TSYNC), ("vm/trace.dat", VCPUS_VM[0]),
                                           ("vm/trace.dat", VCPUS_VM[1])])
def test_vcpu_lane_software_emulated(name, pid):
    b = _buffer(name)
    runs = _runs(name)
    lane = vcpu_states(b, pid, runs, _kvm(name))
    tot = _check_lane(lane, b)
    t0, t1 = span(b)
    tr = _cols(task_runs(runs, pid))
    on_cpu = int((tr["end"] - tr["start"]).sum())
    tail = t1 - int(tr["end"][-1]) if tr["end_state"][-1] == END_OPEN else 0
    assert tot["guest"] == on_cpu + tail  # the thread's own time on a host CPU is guest time
    assert tot["exit"] == 0
    assert tot == _lane_from_runs(runs, pid, t0, t1)
    assert tot["halted"] > 0 and tot["preempted"] > 0


def test_lane_for_unknown_thread_and_cache():
    b = _buffer("host-sched-v7.dat")
    lane = vcpu_states(b, 999_999_999)
    assert lane.num_rows == 1 and lane.column("state")[0].as_py() == "unknown"
    _check_lane(lane, b)
    si = StreamIntervals(_buffer("vm-tsync/trace.dat"))
    a = si.vcpu_states(VCPU_TSYNC)
    assert si.vcpu_states(VCPU_TSYNC) is a
    assert a.equals(vcpu_states(si.buffer, VCPU_TSYNC))
    assert si.task_runs(VCPU_TSYNC).equals(task_runs(_runs("vm-tsync/trace.dat"), VCPU_TSYNC))


def test_state_totals_empty():
    assert state_totals(VCPU_STATES.empty_table()) == dict.fromkeys(STATES, 0)


def test_lane_combines_sched_and_kvm_views():
    """Real runs of the TCG VCPU thread with hand-placed kvm events: on-CPU splits into guest / exit,
    switched out beats the kvm view (sleeping while the guest did not halt is steal: preempted), an
    event nothing closes (the last entry) leaves the kvm view unknown."""
    name = "vm-tsync/trace.dat"
    b = _buffer(name)
    t0, t1 = span(b)
    runs = task_runs(_runs(name), VCPU_TSYNC).slice(0, 3)
    (a0, a1, a2), (b0, b1, _b2) = runs.column("start").to_pylist(), runs.column("end").to_pylist()
    assert runs.column("end_state").to_pylist() == [1, 1, 1]  # S: sleeping
    assert b0 + 500 < a1

    def kvm(first_exit: int) -> pa.Table:
        ev = [(VCPU_TSYNC, a0 + 1000, True, -1, True), (VCPU_TSYNC, a0 + 2000, False, first_exit, True),
              (VCPU_TSYNC, a0 + 3000, True, -1, True), (VCPU_TSYNC, b0 + 500, False, 30, True),
              (VCPU_TSYNC, a2 + 100, True, -1, False),  # the last entry: no exit closes it
              (VCPU_TSYNC + 1, t0, True, -1, True), (VCPU_TSYNC + 1, t1, False, 12, False)]  # another thread
        return pa.Table.from_pylist([dict(row=i, pid=p, ts=ts, cpu=0, entry=e, vcpu=0, exit_reason=r, isa=1,
                                          rip=0, closed=c, next_ts=-1) for i, (p, ts, e, r, c) in enumerate(ev)],
                                    schema=KVM_EVENTS)

    lane = vcpu_states(b, VCPU_TSYNC, runs, kvm(30))
    _check_lane(lane, b)
    got = list(zip(*(lane.column(n).to_pylist() for n in ("start", "end", "state", "reason")), strict=True))
    assert got == [
        (t0, a0 + 1000, "unknown", -1),  # on CPU before its first kvm event too
        (a0 + 1000, a0 + 2000, "guest", -1),
        (a0 + 2000, a0 + 3000, "exit", 30),
        (a0 + 3000, b0, "guest", -1),
        (b0, a1, "preempted", -1),  # switched out (S) although the kvm view says guest, then exit 30
        (a1, b1, "exit", 30),
        (b1, a2, "preempted", -1),  # sleeping during a non-HLT exit
        (a2, a2 + 100, "exit", 30),
        (a2 + 100, t1, "unknown", -1),  # open entry: unknown, on CPU or not
    ]
    # the first exit a HLT (VMX 12): on a host CPU until the next entry, yet halted (it only polls)
    lane = vcpu_states(b, VCPU_TSYNC, runs, kvm(12))
    _check_lane(lane, b)
    got2 = list(zip(*(lane.column(n).to_pylist() for n in ("start", "end", "state", "reason")), strict=True))
    assert got2[2] == (a0 + 2000, a0 + 3000, "halted", -1)
    assert got2[:2] == got[:2] and got2[3:] == got[3:]
