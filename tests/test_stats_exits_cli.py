"""``kshark-py stats --exits / --vcpus``: CSV, JSON and table output against the plain walks of
test_analysis_exits and test_analysis_vcputime (doc-test's real KVM exits, vm-tsync's TCG thread)."""

from __future__ import annotations

import csv
import io
import json

from kshark_py.cli import main

from .support.corpus import TSYNC
from .support.kvmhost import GUEST, HOST, OTHER_VM, VCPU0, exits_with_names, kvm_totals, span, walk_stats
from .support.schedwalk import thread_walk

EXIT_HEADER = "guest,vcpu,host_pid,reason,count,total_ns,p50_ns,p99_ns,max_ns"
VCPU_HEADER = "guest,vcpu,host_pid,state,total_ns"


def _run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _csv(out: str) -> list[tuple]:
    rows = list(csv.reader(io.StringIO(out)))
    return [tuple(int(c) if c.lstrip("-").isdigit() else c for c in r) for r in rows[1:]]


def _exit_walk(guest_name: str) -> list[tuple]:
    walk, names = exits_with_names()
    return walk_stats(walk, names, lambda w: (guest_name, 0) if w["host_pid"] == VCPU0
                       else ("", OTHER_VM[w["host_pid"]]))


def test_exits_csv_host_and_guest(capsys):
    rc, out, err = _run(capsys, "stats", "-i", str(HOST), "-i", str(GUEST), "--exits", "--format", "csv")
    assert rc == 0, err
    assert out.splitlines()[0] == EXIT_HEADER
    assert _csv(out) == _exit_walk("Salamander4")


def test_exits_host_alone_json_and_table(capsys):
    """Without the guest file the GUEST record names the thread (its name is empty in this file)."""
    rc, out, err = _run(capsys, "stats", "-i", str(HOST), "--exits", "--format", "json")
    assert rc == 0, err
    rows = json.loads(out)
    want = _exit_walk("")
    assert [tuple(r[k] for k in EXIT_HEADER.split(",")) for r in rows] == want
    rc, out, err = _run(capsys, "stats", "-i", str(HOST), "--exits")
    lines = out.splitlines()
    assert lines[0].split() == EXIT_HEADER.split(",")
    first = want[0]  # an empty guest name: the row starts at the VCPU
    assert lines[1].split() == [str(x) for x in first[1:]]
    assert len(lines) == 1 + len(want)


def test_exits_range(capsys):
    walk, names = exits_with_names()
    t0, t1 = walk[100]["exit_ts"], walk[2000]["entry_ts"]
    rc, out, err = _run(capsys, "stats", "-i", str(HOST), "-i", str(GUEST), "--exits", "--range", f"{t0}:{t1}",
                        "--format", "csv")
    assert rc == 0, err
    inside = [(w, n) for w, n in zip(walk, names, strict=True)
              if t0 <= w["exit_ts"] and w["entry_ts"] <= t1]
    want = walk_stats([w for w, _ in inside], [n for _, n in inside],
                       lambda w: ("Salamander4", 0) if w["host_pid"] == VCPU0 else ("", OTHER_VM[w["host_pid"]]))
    assert _csv(out) == want and sum(r[4] for r in want) < len(walk)


def test_vcpus_csv_kvm_host(capsys):
    rc, out, err = _run(capsys, "stats", "-i", str(HOST), "-i", str(GUEST), "--vcpus", "--format", "csv")
    assert rc == 0, err
    assert out.splitlines()[0] == VCPU_HEADER
    t0, t1 = span(HOST)
    tot = kvm_totals(t0, t1)
    order = ("guest", "exit", "halted", "preempted", "unknown")
    want = [(g, v, p, st, tot[p][st]) for g, v, p in [("", 0, 453724), ("", 1, 453725), ("Salamander4", 0, VCPU0)]
            for st in order]
    assert _csv(out) == want


def test_vcpus_tcg_with_the_qmp_threads_file_and_range(capsys):
    """``--vcpu-threads GUEST=FILE.json`` names the TCG thread; its time comes from the host schedule."""
    t0, t1 = span(TSYNC / "trace.dat")
    a, b = t0 + (t1 - t0) // 4, t0 + (t1 - t0) // 2
    rc, out, err = _run(capsys, "stats", "-i", str(TSYNC / "trace.dat"), "-i", str(TSYNC / "trace-vmguest.dat"),
                        "--vcpus", "--vcpu-threads", f"vmguest={TSYNC / 'vcpu-threads.json'}", "--range", f"{a}:{b}",
                        "--format", "csv")
    assert rc == 0, err
    want, _, _ = thread_walk(TSYNC / "trace.dat", 27186, a, b)
    assert _csv(out) == [("vmguest", 0, 27186, st, want[st])
                         for st in ("guest", "exit", "halted", "preempted", "unknown")]
    assert sum(want.values()) == b - a and want["preempted"] > 0
