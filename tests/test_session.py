"""Host + guest sessions: pairing from metadata, VCPU maps and their sources, sync quality."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from kshark_py.loaders.tracedat import open_trace
from kshark_py.model.session import Session
from kshark_py.model.timesync import sync_samples
from kshark_py.model.vcpus import (
    SOURCE_RECORD,
    SOURCE_USER,
    VcpuMapError,
    build_vcpu_map,
    load_vcpu_threads_json,
    parse_vcpu_map_arg,
    vcpu_summary,
)


def _session(traces, *names):
    return Session.from_files([open_trace(traces / n) for n in names])


def test_pairing_by_trace_id_not_order_or_name(traces, tmp_path):
    # guest first, host second: the host is still found from the metadata
    s = _session(traces, "vm-tsync/trace-vmguest.dat", "vm-tsync/trace.dat")
    assert s.host.path.endswith("vm-tsync/trace.dat")
    (g,) = s.guests
    assert g.name == "vmguest" and g.synced and g.vcpu_count == 1
    assert [st.name for st in s.streams] == ["vmguest", "host"]
    assert s.warnings == []
    # a renamed guest file still pairs (the name comes from the host's record)
    renamed = tmp_path / "whatever.dat"
    renamed.write_bytes((traces / "vm-tsync/trace-vmguest.dat").read_bytes())
    s2 = Session.from_files([open_trace(traces / "vm-tsync/trace.dat"), open_trace(renamed)])
    assert s2.guests[0].name == "vmguest" and s2.guests[0].synced


def test_unmatched_guest_opens_unsynchronized_with_warning(traces):
    s = _session(traces, "vm-tsync/trace.dat", "vm/trace-vmguest.dat")
    (g,) = s.guests
    assert not g.synced and g.record is None
    assert any("matches no GUEST record" in w for w in s.warnings)
    assert any("not loaded" in w for w in s.warnings)  # the host's own guest is missing
    assert len(s.merged()) == 127829 + 68921


def test_unsynced_pair_keeps_guest_clock(traces):
    s = _session(traces, "vm/trace.dat", "vm/trace-vmguest.dat")
    (g,) = s.guests
    assert g.record is not None and not g.synced
    assert any("no TIME_SHIFT" in w for w in s.warnings)
    gts = s.streams[1].buffer.events.column("ts").to_numpy()
    assert gts.min() < 100e9  # guest uptime clock (~20 s), not the host's ~2869 s


def test_merged_view_is_time_ordered_and_complete(traces):
    s = _session(traces, "vm-tsync/trace.dat", "vm-tsync/trace-vmguest.dat")
    m = s.merged()
    assert len(m) == 127829 + 62306
    assert (np.diff(m.ts) >= 0).all()
    for st in s.streams:
        rows = np.sort(m.row[m.stream == st.index])
        assert (rows == np.arange(len(st.buffer.events))).all()


def test_vcpu_map_sources(traces):
    ext = _session(traces, "external/doc-test/trace.dat", "external/doc-test/trace-Salamander4.dat")
    (m,) = build_vcpu_map(ext)
    assert (m.guest, m.vcpu, m.host_pid, m.source) == ("Salamander4", 0, 483882, SOURCE_RECORD)
    vm = _session(traces, "vm/trace.dat", "vm/trace-vmguest.dat")
    assert build_vcpu_map(vm) == []  # TCP guest: the host recorded -1, no kvm events
    user = {"vmguest": load_vcpu_threads_json(traces / "vm/vcpu-threads.json")}
    maps = build_vcpu_map(vm, user)
    assert [(x.vcpu, x.host_pid, x.source) for x in maps] == [(0, 16748, SOURCE_USER), (1, 16749, SOURCE_USER)]
    build_vcpu_map(vm, {"nosuch": {0: 1}, "vmguest": {5: 1}})
    assert any("nosuch" in w for w in vm.warnings) and any("VCPUs [5]" in w for w in vm.warnings)


def test_parse_vcpu_map_arg():
    assert parse_vcpu_map_arg("vmguest:0=16748,1=16749") == {"vmguest": {0: 16748, 1: 16749}}
    assert parse_vcpu_map_arg("a:0=1;b:0=2") == {"a": {0: 1}, "b": {0: 2}}
    with pytest.raises(VcpuMapError):
        parse_vcpu_map_arg("0=16748")
    with pytest.raises(VcpuMapError):
        parse_vcpu_map_arg("g:x=1")
    assert parse_vcpu_map_arg("g: 3 = 42 ") == {"g": {3: 42}}
    # Huge or negative numbers were taken silently (a VCPU the guest cannot have, a pid no thread has).
    for bad in ("g:99999999999999999999999=1", "g:70000=1", "g:0=0", "g:0=4194305", "g:-1=5", "g:0=-5",
                "g:0=0x10", "g:1_0=5"):
        with pytest.raises(VcpuMapError, match="out of range|whole numbers"):
            parse_vcpu_map_arg(bad)


def test_vcpu_summary_and_causality(traces):
    ext = _session(traces, "external/doc-test/trace.dat", "external/doc-test/trace-Salamander4.dat")
    (r,) = vcpu_summary(ext, build_vcpu_map(ext), tolerance_ns=0).to_pylist()
    assert r["host_comm"] == "qemu-system-x86" and r["guest_events"] == 90029
    assert r["in_guest_basis"] == "kvm_entry/kvm_exit" and r["in_guest_ns"] > 0
    # a real KVM guest with TSC-offset sync: every judged guest event lies inside kvm_entry..kvm_exit
    assert r["judged"] > 80000 and r["outside"] == 0
    tcg = _session(traces, "vm-tsync/trace.dat", "vm-tsync/trace-vmguest.dat")
    maps = build_vcpu_map(tcg, {"vmguest": load_vcpu_threads_json(traces / "vm-tsync/vcpu-threads.json")})
    (r,) = vcpu_summary(tcg, maps).to_pylist()
    assert r["in_guest_basis"] == "thread on host CPU"
    assert 0 < r["judged"] <= 62306 and r["outside"] < 0.05 * r["judged"]


def test_sync_samples(traces):
    t = sync_samples(open_trace(traces / "vm-tsync/trace-vmguest.dat")).to_pylist()
    assert [x["offset"] for x in t] == [3297002207353, 3296982634918]
    assert t[1]["drift_ppm"] == pytest.approx((3296982634918 - 3297002207353) / (47252342210 - 27531925447) * 1e6)
    assert sync_samples(open_trace(traces / "vm/trace-vmguest.dat")).num_rows == 0


def test_vcpus_command(traces):
    r = subprocess.run([sys.executable, "-m", "kshark_py.cli", "vcpus", "-i", str(traces / "vm-tsync/trace.dat"),
                        "-i", str(traces / "vm-tsync/trace-vmguest.dat"), "--vcpu-map", "vmguest:0=27186"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    line = r.stdout.splitlines()[1].split()
    assert line[:5] == ["vmguest", "0", "27186", "qemu-system-x86", "user"]
    bad = subprocess.run([sys.executable, "-m", "kshark_py.cli", "vcpus", "-i", str(traces / "vm-tsync/trace.dat"),
                          "--vcpu-map", "nonsense"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
