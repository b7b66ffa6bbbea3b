"""KVM time sync ("kvm") and the host's knowledge of a KVM guest, against a real tiny KVM VM on this machine.

* codec: REQUEST/RESPONSE payloads (32 bytes, native order), malformed ones are typed peer errors;
* debugfs parsing exactly as trace-cmd (strtoll base 0, default scaling ratios, frac bits only when scaled);
* the tiny VM (tests/tinyvm.py: N VCPU threads looping on OUT) gives a real ``kvm/<pid>-<fd>/`` directory;
* sessions: our host (``record -A NAME@127.0.0.1:PORT --guest-pid PID``) with our agent and with trace-cmd's
  agent negotiating kvm, then `trace-cmd report` and `kshark-py report` must read the files identically.

Guest and host share this kernel, so the "guest" timestamps are really host TSC readings and the offsets
are whatever KVM says about the tiny VM: fine for the protocol, meaningless as a clock correction.

This machine's KVM is unusual, which decides what the tests can see (measured, not assumed):
* it keeps every VCPU's TSC offset at 0 (KVM_VCPU_TSC_OFFSET and IA32_TSC writes are traced by
  kvm_write_tsc_offset but not kept: debugfs and KVM_GET_DEVICE_ATTR read 0, the guest TSC stays the host's);
  with a real offset of 0 the host answers offset 0, which trace-cmd (and we) never record as a sample, so
  no TIME_SHIFT is written.  The non-zero path is tested with a copy of the VM's debugfs directory whose
  tsc-offset files hold non-zero values (the session still runs against the real VM process and threads);
* it emits no kvm_entry/kvm_exit (it emulates: kvm_emulate_insn, kvm_pio...), so trace-cmd's VCPU mapping by
  kvm_entry finds nothing; the VCPU threads come from debugfs ``vcpuN/pid`` (our fallback);
* perf's mmap page has time_mult 0 (paravirtual sched_clock), so there is no TSC2NSEC and trace-cmd would
  keep the default clock: the forced-x86-tsc path is tested with injected (mult, shift).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kshark_py.capture import kvm as K
from kshark_py.capture import msg as M
from kshark_py.capture import tsync as S
from kshark_py.capture import tsync_msg as T
from kshark_py.loaders.cnum import s64
from kshark_py.loaders.tracedat import open_trace

from .support.capture import (
    ROOT,
    TC_NS,
    free_port,
    instances,
    report_both,
    require_recording,
    start,
    stop,
    wait_listening,
)

TINYVM = Path(__file__).with_name("tinyvm.py")
MIRROR_OFFSET = -5_000_000_000
"""tsc-offset of VCPU i in the mirrored debugfs directory: MIRROR_OFFSET - i * 1000 (ticks)."""
TSC2NSEC = (826_814_363, 31)
"""Injected (mult, shift) ~ 2.6 GHz, where the kernel gives none (see the module docstring)."""


# --- codec ---------------------------------------------------------------------------------------------------
def test_kvm_codec_roundtrip():
    req = T.KvmClock(False, 123456789)
    m = T.encode_tsync(req)
    assert (m.proto, m.command) == ("kvm", T.KVM_REQUEST)
    assert m.payload == struct.pack("=qqqq", 123456789, 0, 0, 0) and len(m.payload) == 32
    resp = T.KvmClock(True, 123456789, -(1 << 63), 1 << 48, 48)
    m2 = T.encode_tsync(resp)
    assert m2.command == T.KVM_RESPONSE and m2.payload == struct.pack("=qqqq", 123456789, -(1 << 63), 1 << 48, 48)
    for p in (req, resp):
        assert T.decode_tsync(T.encode_tsync(p)) == p
        assert M.decode(M.encode(T.encode_tsync(p))) == T.encode_tsync(p)  # framed as trace-cmd frames it


@pytest.mark.parametrize("payload,command", [(b"\0" * 31, 1), (b"\0" * 33, 2), (b"", 1), (b"\0" * 32, 3),
                                             (b"\0" * 32, 0)])
def test_kvm_codec_malformed(payload, command):
    with pytest.raises(M.PeerProtocolError):
        T.decode_tsync(M.TimeSync("kvm", command, payload))


def test_kvm_codec_unsendable():
    with pytest.raises(M.LocalProtocolError):
        T.encode_tsync(T.KvmClock(True, 1, 1 << 63))
    with pytest.raises(M.LocalProtocolError):
        T.encode_tsync(T.KvmClock(False, -(1 << 63) - 1))


# --- debugfs parsing -----------------------------------------------------------------------------------------
def test_strtoll_is_c():
    cases = {"123\n": 123, "  -5": -5, "+7x": 7, "0x1f": 31, "0X10": 16, "010": 8, "0": 0, "08": 0, "0x": 0,
             "abc": 0, "": 0, "-0x10": -16, "99999999999999999999": K.LLONG_MAX,
             "-99999999999999999999": K.LLONG_MIN}
    assert {k: K.strtoll(k) for k in cases} == cases
    assert s64(-K.LLONG_MIN) == K.LLONG_MIN


def _vm(root: Path, name: str, vcpus: dict[str, dict[str, str]]) -> Path:
    d = root / name
    for vcpu, files in vcpus.items():
        (d / vcpu).mkdir(parents=True)
        for f, text in files.items():
            (d / vcpu / f).write_text(text)
    return d


def test_read_clock_like_trace_cmd(tmp_path):
    amd, intel = str(1 << 32), str(1 << 48)
    frac = "tsc-scaling-ratio-frac-bits"
    _vm(tmp_path, "42-7", {"vcpu0": {"tsc-offset": "-1000\n"},
                           "vcpu1": {"tsc-offset": "5", "tsc-scaling-ratio": amd, frac: "32"},
                           "vcpu2": {"tsc-offset": "6", "tsc-scaling-ratio": intel, frac: "48"},
                           "vcpu10": {"tsc-offset": "0x10", "tsc-scaling-ratio": "0x1000000000001", frac: "48"}})
    files = K.open_clock_files(42, 4, tmp_path)
    assert [f.vcpu for f in files] == [0, 1, 2, 10]  # sorted by number, not by name
    got = [K.read_clock(f) for f in files]
    # a hardware-default ratio means "unscaled" (1) and its frac bits are not read (0)
    assert got == [(-1000, 1, 0), (5, 1, 0), (6, 1, 0), (16, (1 << 48) + 1, 48)]
    assert K.host_supported(tmp_path)
    assert K.kvm_unavailable_reason(42, "x86-tsc", tmp_path) is None
    assert "x86-tsc" in K.kvm_unavailable_reason(42, "local", tmp_path)
    assert "unknown" in K.kvm_unavailable_reason(None, "x86-tsc", tmp_path)
    assert "43-*" in K.kvm_unavailable_reason(43, "x86-tsc", tmp_path)
    with pytest.raises(K.KvmError, match="4 VCPU directories"):
        K.open_clock_files(42, 2, tmp_path)
    (files[0].offset).write_text("")
    with pytest.raises(K.KvmError, match="cannot read"):
        K.read_clock(files[0])


def test_inconsistent_scaling_files(tmp_path):
    _vm(tmp_path, "9-1", {"vcpu0": {"tsc-offset": "1", "tsc-scaling-ratio": "3"}})  # ratio without frac bits
    assert not K.host_supported(tmp_path)
    assert "only one of" in K.kvm_unavailable_reason(9, "x86-tsc", tmp_path)
    _vm(tmp_path, "8-1", {"vcpu0": {"scaling": "x"}})
    with pytest.raises(K.KvmError, match="no tsc-offset"):
        K.open_clock_files(8, 1, tmp_path)
    assert not K.host_supported(tmp_path / "nothing")


def test_protocol_selection_kvm():
    both = ("kvm", "ptp")
    assert S.select_protocol(("ptp", "kvm"), "x86-tsc", both) == "kvm"  # lowest accuracy, not list order
    assert S.select_protocol(both, None, both) == "kvm"
    assert S.select_protocol(both, "local", both) == "ptp"  # kvm offsets are TSC ticks
    assert S.select_protocol(both, "x86-tsc", ("ptp",)) == "ptp"  # no x86-tsc clock on this guest
    assert S.select_protocol(("kvm",), "local", both) is None


def test_vcpu_mapping_and_pid_chain():
    entries = [(99, 0), (11, 1), (10, 0), (12, 0), (11, 7)]  # (thread, vcpu_id); 99 is not a guest thread
    assert K.map_vcpus(entries, [0, 1], [10, 11, 12]) == [10, 11]
    assert K.map_vcpus(entries, [0, 1, 2], [10, 11, 12]) == [10, 11, -1]
    me = 1
    ev = [("waking", 1, 0x08, 5),  # in an interrupt: ignored
          ("waking", 1, 0, 2), ("kvm_exit", 7, 0, 0), ("waking", 2, 0, 3), ("kvm_exit", 3, 0, 0)]
    assert K.pid_from_wakeups(ev, me) == 3
    assert K.pid_from_wakeups(ev[:3], me) is None


# --- the tiny VM -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tinyvm():
    """A real KVM VM with one VCPU thread per CPU of this machine (the agent reports that many CPUs)."""
    n = os.cpu_count() or 1
    proc = subprocess.Popen([sys.executable, str(TINYVM), "--vcpus", str(n), "--tsc-offset", str(MIRROR_OFFSET)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ready, _w, _x = select.select([proc.stdout], [], [], 20)
        line = proc.stdout.readline() if ready else ""
        info = json.loads(line) if line else {"error": "tiny VM did not start in 20 s"}
        if "error" in info:
            proc.wait(5)
            if proc.returncode == 3:
                pytest.skip(info["error"])  # no usable /dev/kvm: this kernel truly cannot run a VM
            pytest.fail(info["error"])
        yield info
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="module")
def root_ok():
    return require_recording()


def _clock(path: Path) -> str:
    text = path.read_text()
    return text[text.index("[") + 1:text.index("]")]


@pytest.fixture
def top_clock(root_ok):
    """trace-cmd leaves x86-tsc behind: on the top instance (its agent's recording) and on its clock_synch-N
    instances (which it cannot remove, and reuses with their clock when it is not given one: a later
    ptp session would then mix clocks).  Put the old clocks back, remove the instances it added."""
    before = instances(root_ok)
    synch = {n: _clock(root_ok / "instances" / n / "trace_clock") for n in before if n.startswith("clock_synch-")}
    top = _clock(root_ok / "trace_clock")
    yield
    (root_ok / "trace_clock").write_text(top)
    for name in instances(root_ok) - before:
        if name.startswith("clock_synch-"):
            with contextlib.suppress(OSError):
                (root_ok / "instances" / name).rmdir()
    for name, clock in synch.items():
        with contextlib.suppress(OSError):
            (root_ok / "instances" / name / "trace_clock").write_text(clock)


def leaked(tracefs: Path, before: set[str]) -> list[str]:
    """Our tracefs instances made since ``before`` whose process is gone (other test runs may use tracefs
    at the same time, so the whole set of instances can change).  Names: kshark-py-[purpose-]PID-..."""
    out = []
    for name in instances(tracefs) - before:
        if name.startswith("kshark-py-"):
            pid = next((t for t in name.split("-")[2:] if t.isdigit()), None)
            if pid is not None and not Path(f"/proc/{pid}").exists():
                out.append(name)
    return out


def test_debugfs_of_the_tiny_vm(tinyvm, root_ok):
    pid, n = tinyvm["pid"], len(tinyvm["vcpus"])
    assert Path(tinyvm["vm_dir"]).parent == K.kvm_debug_dir() and K.vm_dir(pid) == Path(tinyvm["vm_dir"])
    assert K.host_supported() and K.kvm_unavailable_reason(pid, "x86-tsc") is None
    files = K.open_clock_files(pid, n)
    for f, v in zip(files, tinyvm["vcpus"], strict=True):
        offset, scaling, frac = K.read_clock(f)
        assert (offset, scaling, frac) == (v["tsc_offset"], 1, 0)  # no TSC scaling on this host
    assert K.vcpu_numbers(pid, n) == list(range(n))
    tids = [v["tid"] for v in tinyvm["vcpus"]]
    assert set(tids) <= set(K.guest_tasks(pid)) and K.tgid(tids[0]) == pid
    m = K.VcpuMapper(pid, K.guest_tasks(pid))
    assert m.start(), m.error
    path = m.inst.path
    time.sleep(0.1)
    assert m.stop(n) == tids, m.error
    assert not path.exists()
    assert K.find_pid_by_cid(3) is None  # no vsock guest here
    mine = [x for x in instances(root_ok) if f"-{os.getpid()}-" in x]
    assert not mine, mine


def _mirror(tinyvm: dict, root: Path) -> Path:
    """A copy of the tiny VM's debugfs directory with non-zero tsc-offsets (this KVM keeps them at 0)."""
    real = Path(tinyvm["vm_dir"])
    for v in tinyvm["vcpus"]:
        d = root / real.name / f"vcpu{v['vcpu']}"
        d.mkdir(parents=True)
        (d / "tsc-offset").write_text(f"{MIRROR_OFFSET - v['vcpu'] * 1000}\n")
        (d / "pid").write_text((real / f"vcpu{v['vcpu']}" / "pid").read_text())
    return root


def test_kvm_roles_over_a_socket(tinyvm, root_ok, tmp_path):
    """Our guest role (x86-tsc markers) and host role (debugfs) over a socketpair: samples are -tsc-offset."""
    mirror = _mirror(tinyvm, tmp_path)
    n = len(tinyvm["vcpus"])
    files = K.open_clock_files(tinyvm["pid"], n, mirror)
    a, b = socket.socketpair()
    host = S.HostTimeSync(a, "kvm", n, 0, "x86-tsc", "tiny", kvm_files=files)
    guest = S.GuestTimeSync(b, "kvm", "x86-tsc")
    t0 = time.perf_counter()
    guest.start()
    host.start()
    assert host.wait_first_round(10)
    first = time.perf_counter() - t0
    host.stop(10)
    guest.join(10)
    assert not host.error and not guest.error, (host.error, guest.error)
    assert host.rounds == 2 and host.flags == 0 and host.complete()
    for i, s in enumerate(host.samples):
        assert s.offsets == [-(MIRROR_OFFSET - i * 1000)] * 2
        assert s.scalings == [1, 1] and s.fractions == [0, 0]
        assert 0 < s.times[0] < s.times[1]  # x86-tsc times of the guest's markers
    assert sorted((c, o) for c, o, _t in guest.samples) == sorted(
        (i, -(MIRROR_OFFSET - i * 1000)) for i in range(n) for _ in range(2))
    # one probe = marker write + raw-page read-back on the guest side, debugfs read + REPLY on the host side
    c, d = socket.socketpair()
    hch, gch = S.SyncChannel(c, "host", 5), S.SyncChannel(d, "guest", 5)
    clock = S.MarkerClock("x86-tsc")
    times = []
    try:
        assert clock.available, clock.error
        for _ in range(50):
            t = threading.Thread(target=S.kvm_host, args=(hch, files[0]))
            t.start()
            t1 = time.perf_counter()
            r = S.kvm_guest(gch, clock)
            times.append(time.perf_counter() - t1)
            t.join()
            assert r.offset == -MIRROR_OFFSET and r.ts > 0
    finally:
        clock.close()
        c.close()
        d.close()
    times.sort()
    print(f"kvm: first round of {n} probes (incl. thread and instance setup) {first * 1e3:.1f} ms; one probe: "
          f"median {times[25] * 1e6:.0f} us, max {times[-1] * 1e6:.0f} us")
    assert times[25] < 0.05


def test_kvm_not_offered_without_x86_tsc_and_no_hang_on_bad_files(tinyvm, root_ok, tmp_path):
    """A host whose VCPU count disagrees cannot sync: it says STOP at once and the guest ends cleanly."""
    a, b = socket.socketpair()
    with pytest.raises(ValueError):
        S.HostTimeSync(a, "kvm", 2, 0, "x86-tsc", kvm_files=[])
    guest = S.GuestTimeSync(b, "kvm", "x86-tsc")
    guest.start()
    S.SyncChannel(a, "host", 5).send(T.encode_tsync(T.SyncStop()))
    guest.join(5)
    assert not guest.is_alive() and guest.samples == []
    a.close()


# --- sessions ----------------------------------------------------------------------------------------------------
def _cli(*args: str, mirror: Path | None = None, tsc2nsec: tuple[int, int] | None = None) -> list[str]:
    """kshark-py, optionally with the KVM debugfs directory and the perf TSC factors replaced (see above)."""
    patch = "import sys, pathlib; import kshark_py.capture.kvm as K; "
    if mirror is not None:
        patch += f"K.kvm_debug_dir = lambda: pathlib.Path({str(mirror)!r}); "
    if tsc2nsec is not None:
        patch += f"K.tsc2nsec = lambda: {tsc2nsec!r}; "
    patch += "from kshark_py.cli import main; sys.exit(main(sys.argv[1:]))"
    return [sys.executable, "-c", patch, *args]


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


def _record(tmp: Path, port: int, pid: int, *extra: str, mirror=None, tsc2nsec=None):
    return _run(_cli("record", "-o", "trace.dat", *extra, "-e", "sched:sched_switch",
                     "-A", f"g@127.0.0.1:{port}", "--guest-pid", str(pid), "-e", "sched:sched_switch",
                     "sleep", "0.3", mirror=mirror, tsc2nsec=tsc2nsec), tmp)


def _check(tmp: Path, tinyvm: dict, offsets: list[int] | None, tsc2nsec: tuple[int, int] | None):
    """Reports agree; GUEST maps VCPUs to the tiny VM's threads; TIME_SHIFT (kvm: flags 0) and TSC2NSEC."""
    host, guest = tmp / "trace.dat", tmp / "trace-g.dat"
    tc, ks = report_both(host, guest)
    assert tc.splitlines() == ks.splitlines()
    assert any(ln.startswith("trace-g.dat:") and "sched_switch" in ln for ln in tc.splitlines())
    hmeta, gmeta = open_trace(host).meta, open_trace(guest).meta
    assert [g.trace_id for g in hmeta.guests] == [gmeta.trace_id]
    assert list(hmeta.guests[0].vcpu_pids) == [v["tid"] for v in tinyvm["vcpus"]]
    assert gmeta.trace_clock == hmeta.trace_clock == "x86-tsc"
    buffer_clock = "tsc2nsec" if tsc2nsec else "x86-tsc"  # trace-cmd's output clock with TSC2NSEC
    assert [b.clock for b in hmeta.buffers] == [b.clock for b in gmeta.buffers] == [buffer_clock]
    for m in (hmeta, gmeta):
        assert (m.tsc2nsec is not None and (m.tsc2nsec.mult, m.tsc2nsec.shift)) == (tsc2nsec or False)
    shift = gmeta.time_shift
    if offsets is None:
        assert shift is None
        return
    assert shift is not None and shift.peer_trace_id == hmeta.trace_id
    assert shift.flags == 0  # kvm: no interpolation
    assert [list(set(c.offsets)) for c in shift.cpus] == [[o] for o in offsets]
    assert all(len(c.times) >= 2 and set(c.scalings) == {1} and set(c.fractions) == {0} for c in shift.cpus)


@pytest.fixture
def agent_port(tmp_path):
    port = free_port()
    yield port


def test_ours_with_ours_real_debugfs(tinyvm, root_ok, tmp_path, agent_port):
    """The real debugfs: kvm is negotiated, VCPUs mapped; TIME_SHIFT only if KVM reports non-zero offsets."""
    before = instances(root_ok)
    agent = start(_cli("agent", "-N", "127.0.0.1", "-p", str(agent_port), "--once"), tmp_path)
    try:
        wait_listening(agent_port, agent)
        r = _record(tmp_path, agent_port, tinyvm["pid"], "-C", "x86-tsc")
        assert r.returncode == 0, r.stderr
        assert "Negotiated kvm time sync protocol with guest g" in r.stderr, r.stderr
        agent.wait(timeout=30)
    finally:
        log = stop(agent)
    assert "time sync with the host: kvm" in log, log
    real = [v["tsc_offset"] for v in tinyvm["vcpus"]]
    _check(tmp_path, tinyvm, [-o for o in real] if all(real) else None, None)
    assert not leaked(root_ok, before)


def test_ours_with_ours_forced_tsc_clock(tinyvm, root_ok, tmp_path, agent_port):
    """No -C: kvm possible + TSC->ns factors -> x86-tsc everywhere, TSC2NSEC in both files, TIME_SHIFT = -offset."""
    mirror = _mirror(tinyvm, tmp_path / "debugfs-kvm")
    agent = start(_cli("agent", "-N", "127.0.0.1", "-p", str(agent_port), "--once"), tmp_path)
    try:
        wait_listening(agent_port, agent)
        r = _record(tmp_path, agent_port, tinyvm["pid"], mirror=mirror, tsc2nsec=TSC2NSEC)
        assert r.returncode == 0, r.stderr
        assert "session clock: x86-tsc for host and guests" in r.stderr, r.stderr
        assert "Negotiated kvm time sync protocol" in r.stderr, r.stderr
        agent.wait(timeout=30)
    finally:
        stop(agent)
    _check(tmp_path, tinyvm, [-(MIRROR_OFFSET - v["vcpu"] * 1000) for v in tinyvm["vcpus"]], TSC2NSEC)


def test_ours_host_with_trace_cmd_agent_kvm(tinyvm, root_ok, top_clock, tmp_path, agent_port):
    """trace-cmd's agent offered kvm + ptp with -C x86-tsc picks kvm and timestamps its markers; our host
    answers from (mirrored) debugfs."""
    mirror = _mirror(tinyvm, tmp_path / "debugfs-kvm")
    agent = start(["sh", str(TC_NS), "agent", "-N", "127.0.0.1", "-p", str(agent_port)], tmp_path)
    try:
        wait_listening(agent_port, agent)
        r = _record(tmp_path, agent_port, tinyvm["pid"], "-C", "x86-tsc", mirror=mirror)
        assert r.returncode == 0, r.stderr
        assert "Negotiated kvm time sync protocol" in r.stderr, r.stderr
    finally:
        stop(agent)
    _check(tmp_path, tinyvm, [-(MIRROR_OFFSET - v["vcpu"] * 1000) for v in tinyvm["vcpus"]], None)


def test_trace_cmd_host_offers_no_kvm_over_tcp(tinyvm, root_ok, top_clock, tmp_path, agent_port):
    """trace-cmd 3.1.6 registers kvm for the HOST role only (a TCP guest is a CLIENT role: ptp only), so even
    with -C x86-tsc and a VM running it offers ptp to our agent; both record x86-tsc and the reports agree."""
    agent = start(_cli("agent", "-N", "127.0.0.1", "-p", str(agent_port), "--once"), tmp_path)
    try:
        wait_listening(agent_port, agent)
        (tmp_path / "hosts").write_text("127.0.0.1 localhost g\n")
        r = subprocess.run(["sh", str(TC_NS), "record", "-o", "trace.dat", "-C", "x86-tsc", "-e", "sched:sched_switch",
                            "-A", f"127.0.0.1:{agent_port}", "--name", "g", "-e", "sched:sched_switch", "sleep", "0.3"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60, start_new_session=True,
                           env=dict(os.environ, TC_HOSTS=str(tmp_path / "hosts")))
        assert r.returncode == 0, r.stderr
        assert "Negotiated ptp time sync protocol" in r.stdout, r.stdout
        agent.wait(timeout=30)
    finally:
        log = stop(agent)
    assert "host offers time sync ['ptp'] (clock x86-tsc): ptp" in log, log
    tc, ks = report_both(tmp_path / "trace.dat", tmp_path / "trace-g.dat")
    assert tc.splitlines() == ks.splitlines()
    assert open_trace(tmp_path / "trace-g.dat").meta.trace_clock == "x86-tsc"


def test_record_args_guest_pid():
    from kshark_py.capture.cli import parse_record_args

    a = parse_record_args(["-e", "sched", "-A", "g@1.2.3.4:5", "--guest-pid", "77", "-e", "irq"])
    assert a.guests[0].guest_pid == 77
    with pytest.raises(ValueError, match="guest-pid"):
        parse_record_args(["-e", "sched", "-A", "g@1.2.3.4:5", "--guest-pid", "x", "-e", "irq"])
    with pytest.raises(ValueError):
        parse_record_args(["-e", "sched", "--guest-pid", "7"])  # only after -A
