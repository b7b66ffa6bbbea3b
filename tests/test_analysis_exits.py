"""VM exits (issue 12, item 4) on real files, against plain walks written here.

external/doc-test is a real KVM host (5,860 kvm_exit, 5,861 kvm_entry on three VCPU threads of two
VMs) with its guest Salamander4; reasons and symbols are checked against trace-cmd's own reports
(host alone, and host + guest merged).  The corpus' other host files hold no kvm_exit/kvm_entry
(TCG guests; the KVM of host-kvm.dat only emulated): their tables are empty.
"""

from __future__ import annotations

from collections import Counter

import pytest

from kshark_py.loaders.printfmt.plugin_kvm import exit_reason_name
from kshark_py.loaders.tracedat import open_trace
from kshark_py.model.analysis.exits import (
    EXIT_STATS,
    GUEST_ENTRIES,
    REASON_HISTOGRAM,
    TOP_RIPS,
    VM_EXITS,
    exit_stats,
    guest_entries,
    reason_histogram,
    stats_of,
    top_rips,
    vm_exits,
)
from kshark_py.model.columns import event_columns

from .support.corpus import TRACES
from .support.kvmhost import GUEST, HOST, OTHER_VM, VCPU0, kvm_walk, named_exits, report_exits, session, walk_stats


def _rows(t, names: list[str]) -> list[tuple]:
    return list(zip(*(t.column(n).to_pylist() for n in names), strict=True))


def test_every_closed_exit_host_alone():
    s = session(HOST)
    e = vm_exits(s)
    assert e.schema == VM_EXITS
    walk, _ = kvm_walk()
    assert len(walk) == e.num_rows == 5858  # of 5,860 kvm_exit: the other VM's threads end with an exit
    names = named_exits(walk, report_exits("trace.dat.report.txt.gz"))
    want = [("", {VCPU0: 0, **OTHER_VM}[w["host_pid"]], w["host_pid"], n[0], w["exit_reason"], w["exit_ts"],
             w["entry_ts"], w["entry_ts"] - w["exit_ts"], w["guest_rip"], None, w["exit_row"])
            for w, n in zip(walk, names, strict=True)]
    assert _rows(e, VM_EXITS.names) == want
    assert {w["entry_vcpu"] for w in walk if w["host_pid"] in OTHER_VM} == {0, 1}  # vcpu: from kvm_entry
    # the reasons trace-cmd printed for this file, every one of them present
    assert set(e.column("reason").to_pylist()) == {"APIC_WRITE", "CPUID", "EOI_INDUCED", "EPT_MISCONFIG",
                                                   "EPT_VIOLATION", "EXTERNAL_INTERRUPT", "HLT", "MSR_READ",
                                                   "MSR_WRITE", "PAUSE_INSTRUCTION", "PREEMPTION_TIMER"}


def test_guest_loaded_names_the_vcpu_and_symbolizes_rips():
    s = session(HOST, GUEST)
    e = vm_exits(s)
    walk, _ = kvm_walk()
    merged = named_exits(walk, report_exits("merged.report.txt.gz"))
    got = _rows(e, ["guest", "host_pid", "rip_symbol"])
    # trace-cmd symbolizes only the GUEST record's thread; so do we (the other VM's file is not here)
    assert got == [("Salamander4" if w["host_pid"] == VCPU0 else "", w["host_pid"], m[1])
                   for w, m in zip(walk, merged, strict=True)]
    syms = Counter(sym for g, _, sym in got if g)
    assert syms.most_common(2) == [("native_apic_mem_write+0x8", 3225), ("default_idle+0xf", 1488)]  # HLT


def test_exit_stats_per_vcpu_and_reason():
    s = session(HOST, GUEST)
    st = exit_stats(s)
    assert st.schema == EXIT_STATS
    walk, _ = kvm_walk()
    names = named_exits(walk, report_exits("trace.dat.report.txt.gz"))
    want = walk_stats(walk, names, lambda w: ("Salamander4", 0) if w["host_pid"] == VCPU0
                       else ("", OTHER_VM[w["host_pid"]]))
    assert _rows(st, EXIT_STATS.names) == want
    hlt = [r for r in want if r[0] == "Salamander4" and r[3] == "HLT"][0]
    assert hlt[4] == 1488  # as many as trace-cmd printed "reason HLT" for that thread
    assert stats_of(vm_exits(s)).equals(st)


def test_a_range_keeps_the_exits_wholly_inside_it():
    s = session(HOST)
    walk, _ = kvm_walk()
    t0, t1 = walk[1000]["exit_ts"], walk[3000]["entry_ts"]
    e = vm_exits(s, t0, t1)
    inside = [w for w in walk if t0 <= w["exit_ts"] and w["entry_ts"] <= t1]
    assert e.column("exit_row").to_pylist() == [w["exit_row"] for w in inside]
    assert e.num_rows == 1999  # of the 2,001 exits from #1000 to #3000, two HLTs end after #3000
    assert vm_exits(s, t0, t1 - 1).num_rows == 1998  # #3000 itself ends after that range
    assert sum(e.column("duration_ns").to_pylist()) == sum(w["entry_ts"] - w["exit_ts"] for w in inside)
    assert exit_stats(s, t0, t1).column("count").to_pylist() != [] and \
        sum(exit_stats(s, t0, t1).column("count").to_pylist()) == 1999
    assert vm_exits(s, t1 + 10**12, None).num_rows == 0


def test_reason_histogram_and_top_rips():
    s = session(HOST, GUEST)
    e = vm_exits(s)
    walk, _ = kvm_walk()
    names = named_exits(walk, report_exits("merged.report.txt.gz"))
    h = reason_histogram(e)
    assert h.schema == REASON_HISTOGRAM
    count, total = Counter(), Counter()
    for w, n in zip(walk, names, strict=True):
        count[n[0]] += 1
        total[n[0]] += w["entry_ts"] - w["exit_ts"]
    assert _rows(h, ["reason", "count", "total_ns"]) == sorted(((r, count[r], total[r]) for r in count),
                                                                key=lambda x: (-x[1], x[0]))
    top = top_rips(e, 5)
    assert top.schema == TOP_RIPS and top.num_rows == 5
    rc, rt, sym = Counter(), Counter(), {}
    for w, n in zip(walk, names, strict=True):
        rc[w["guest_rip"]] += 1
        rt[w["guest_rip"]] += w["entry_ts"] - w["exit_ts"]
        sym.setdefault(w["guest_rip"], n[1])
    want = sorted(rc, key=lambda r: (-rc[r], -rt[r], r))[:5]
    assert _rows(top, ["guest_rip", "count", "total_ns"]) == [(r, rc[r], rt[r]) for r in want]
    assert top.column("rip_symbol")[0].as_py() == sym[want[0]] == "native_apic_mem_write+0x8"
    assert top_rips(e, 0).num_rows == 0 and reason_histogram(e.slice(0, 0)).num_rows == 0


def test_guest_entries_the_same_rule_for_time_in_guest():
    s = session(HOST, GUEST)
    g = guest_entries(s)
    assert g.schema == GUEST_ENTRIES
    _, walk = kvm_walk()
    exits, _ = kvm_walk()
    assert len(walk) == g.num_rows
    b = open_trace(str(HOST)).buffers[0]
    xr, xf = event_columns(b, "kvm_exit", ["exit_reason", "isa"], system="kvm")
    reason = {int(r): exit_reason_name(int(x), int(i))
              for r, x, i in zip(xr, xf["exit_reason"], xf["isa"], strict=True)}
    want = [("Salamander4" if w["host_pid"] == VCPU0 else "", w["vcpu"], w["host_pid"], w["entry_ts"], w["exit_ts"],
             w["exit_ts"] - w["entry_ts"], reason[w["exit_row"]], w["entry_row"]) for w in walk]
    assert _rows(g, GUEST_ENTRIES.names) == want
    assert Counter(r for *_, r, _ in want) .most_common(1)[0][0] == "APIC_WRITE"
    assert (len(exits), len(walk)) == (5858, 5860)  # VCPU0's trace ends on an entry, the other two on an exit


@pytest.mark.parametrize("paths", [("host-kvm.dat",), ("vm-tsync/trace.dat", "vm-tsync/trace-vmguest.dat"),
                                   ("vm/trace.dat", "vm/trace-vmguest.dat"), ("host-sched-v7.dat",)])
def test_files_without_kvm_exits_give_empty_tables(paths):
    s = session(*(TRACES / p for p in paths))
    assert vm_exits(s).equals(VM_EXITS.empty_table())
    assert exit_stats(s).equals(EXIT_STATS.empty_table())
    assert guest_entries(s).equals(GUEST_ENTRIES.empty_table())
    assert reason_histogram(vm_exits(s)).num_rows == top_rips(vm_exits(s)).num_rows == 0


def test_user_vcpu_map_and_its_warning_once():
    """A user map names a thread the files do not (here: the other VM's VCPU 1 as Salamander4's VCPU 1,
    which that guest lacks: the map's warning, said once however often the analyses run)."""
    s = session(HOST, GUEST)
    before = list(s.warnings)
    for _ in range(3):
        e = vm_exits(s, vcpu_map={"Salamander4": {1: 453725}})
    assert len(s.warnings) == len(before) + 1 and "VCPUs [1]" in s.warnings[-1]
    assert set(_rows(e, ["guest", "vcpu", "host_pid"])) == {("Salamander4", 0, VCPU0), ("", 0, 453724),
                                                           ("", 1, 453725)}


def test_exit_reason_names_as_the_kvm_plugin_prints_them():
    assert [exit_reason_name(12), exit_reason_name(12, 1), exit_reason_name(0x78, 2), exit_reason_name(0x400, 2),
            exit_reason_name(99, 1), exit_reason_name(12, 3), exit_reason_name(0xFFFFFFFF, 2)] == \
        ["HLT", "HLT", "EXIT_HLT", "EXIT_NPF", "UNKNOWN (99)", "UNKNOWN-ISA", "EXIT_ERR"]
