"""The vsock (AF_VSOCK) parts of the agent protocol, tested for real up to the point a peer is needed.

A vsock session needs a peer CID: a guest (the host runs vhost_vsock) or this machine itself
(vsock_loopback).  A VM without both (a Firecracker guest: virtio transport only) can bind and listen on
AF_VSOCK, but connecting to its own CID gives ENODEV, to CID 2 (the hypervisor) ECONNRESET when
nothing listens there, and to an absent CID ETIMEDOUT after the kernel's 2 s connect timeout.  So these
tests check everything short of a connected vsock pair:

* ``kshark-py agent`` really listens on AF_VSOCK (default port 823, or -p), stops on SIGINT/SIGTERM
  promptly with status 0 and leaves no tracefs instance; bad ports are one-line errors (status 2).
* ``kshark-py record -A NAME@CID:PORT`` to an unreachable CID fails within seconds with one line and
  status 2, writing nothing.  trace-cmd 3.1.6 does the same (``Failed to connect to vsocket @3:PORT``,
  exit status = the errno, no file written).
* The transport's vsock pieces (address parsing, port ranges, AF_VSOCK listen/accept/connect with
  timeouts) and the host/agent roles over a vsock agent: our real agent (vsock family) serves a real
  host session over a socketpair control channel and announces data / time-sync ports that are really
  listening on AF_VSOCK; the host connects to exactly those, at the -A CID, and looks up the guest's
  process by that CID (the kvm time-sync prerequisite).  The data connection itself is the one thing
  that cannot happen here, so it is made to fail, which also checks the cleanup of a failed start.

The data path after the connection (pages spliced kernel -> pipe -> socket, socket -> pipe -> file) is
family-independent code, covered over TCP by test_capture_interop.py.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kshark_py.capture import agent as A
from kshark_py.capture import kvm
from kshark_py.capture import session as S
from kshark_py.capture import transport as X
from kshark_py.capture.cli import parse_record_args
from kshark_py.capture.control import probe_agent
from kshark_py.capture.eventspec import EventSpec
from kshark_py.capture.tracefs import cpu_count_online, find_tracefs

ROOT = Path(__file__).resolve().parents[1]
VSOCK_MISSING = "AF_VSOCK missing from the kernel"
ABSENT_CID = 12345
HOST_CID = 2


# --- helpers --------------------------------------------------------------------------------------------
@pytest.fixture
def vsock() -> int:
    """AF_VSOCK, or skip the test (the kernel has no vsock at all)."""
    fam = getattr(socket, "AF_VSOCK", None)
    if fam is None:
        pytest.skip(VSOCK_MISSING)
    try:
        socket.socket(fam, socket.SOCK_STREAM).close()
    except OSError as e:
        if e.errno in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
            pytest.skip(VSOCK_MISSING)
        raise
    return fam


def local_cid() -> int | None:
    """This machine's CID (IOCTL_VM_SOCKETS_GET_LOCAL_CID on /dev/vsock), or None."""
    try:
        with open("/dev/vsock", "rb") as f:
            return struct.unpack("I", fcntl.ioctl(f, socket.IOCTL_VM_SOCKETS_GET_LOCAL_CID, b"\0" * 4))[0]
    except (OSError, AttributeError):
        return None


def free_vsock_port() -> int:
    with socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM) as s:
        s.bind((X.VMADDR_CID_ANY, X.VMADDR_PORT_ANY))
        return s.getsockname()[1]


def vsock_port_bound(port: int) -> bool:
    """Is a vsock socket bound to ``port`` on this machine? (binding it ourselves gives EADDRINUSE)"""
    with socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM) as s:
        try:
            s.bind((X.VMADDR_CID_ANY, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def ss_lists_vsock() -> str | None:
    """``ss --vsock -l -n`` output if it lists any socket (needs vsock_diag), else None."""
    if shutil.which("ss") is None:
        return None
    r = subprocess.run(["ss", "--vsock", "-l", "-n"], capture_output=True, text=True, timeout=5)
    rows = r.stdout.splitlines()[1:] if r.returncode == 0 else []
    return r.stdout if rows else None


def tracefs_or_none() -> Path | None:
    with contextlib.suppress(Exception):
        return find_tracefs()
    return None


def instances_of(pid: int) -> list[str]:
    """Our tracefs instances made by process ``pid`` (kshark-py-PID-x, kshark-py-PURPOSE-PID-x)."""
    tfs = tracefs_or_none()
    if tfs is None:
        return []
    return [p.name for p in (tfs / "instances").iterdir() if p.name.startswith("kshark-py-") and f"-{pid}-" in p.name]


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("recording needs root")
    if tracefs_or_none() is None:
        pytest.skip("tracefs is not mounted")


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "kshark_py.cli", *args]


ENV = dict(os.environ, PYTHONPATH=str(ROOT))


# --- pure: addresses and ports ---------------------------------------------------------------------------
def test_vsock_addresses_and_ports():
    """-A spellings: a numeric host is a vsock CID (default port 823), out-of-range values are refused."""
    assert X.VSOCK_DEFAULT_PORT == 823
    P = S.parse_guest_spec
    assert P("vm@3:900") == ("vm", X.Address("vsock", 3, 900))
    assert P("vm@3") == ("vm", X.Address("vsock", 3, 823))
    assert P("vm@3:") == ("vm", X.Address("vsock", 3, 823))
    assert P("7") == (None, X.Address("vsock", 7, 823))
    assert P("7:1024") == (None, X.Address("vsock", 7, 1024))
    assert P("g@4294967295:4294967295") == ("g", X.Address("vsock", 0xFFFFFFFF, 0xFFFFFFFF))
    assert P("g@10.0.0.2:823") == ("g", X.Address("tcp", "10.0.0.2", 823))
    assert isinstance(P("g@3:5")[1].host, int)
    # Python packs AF_VSOCK addresses without a range check (2**32 + 5 would become port 5): refused here
    for bad, why in (("g@4294967296:5", "CID 4294967296 out of range"), ("g@3:4294967296", "port 4294967296 out"),
                     ("g@3:-5", "bad port '-5'"), ("g@3:0x10", "bad port '0x10'"), ("g@h:70000", "TCP port 70000"),
                     ("g@h:0", "TCP port 0"), ("g@localhost", "needs HOST:PORT"), ("g@:5", "needs HOST:PORT")):
        with pytest.raises(ValueError, match=why):
            P(bad)
    # the record command line refuses them before anything starts
    with pytest.raises(ValueError, match="out of range"):
        parse_record_args(["-A", "g@3:4294967296"])
    a = parse_record_args(["-A", "vm@5", "-e", "sched:sched_switch", "--guest-pid", "42", "-A", "9:77", "-e", "irq"])
    assert [(S.parse_guest_spec(g.spec), g.guest_pid) for g in a.guests] == [
        (("vm", X.Address("vsock", 5, 823)), 42), ((None, X.Address("vsock", 9, 77)), None)]
    X.check_port("vsock", 0, listening=True)
    X.check_port("vsock", 0xFFFFFFFF)
    X.check_port("tcp", 0, listening=True)
    for fam, port, listening in (("vsock", -1, True), ("vsock", 1 << 32, False), ("tcp", 65536, True),
                                 ("tcp", 0, False)):
        with pytest.raises(ValueError, match="out of range"):
            X.check_port(fam, port, listening=listening)
    assert X.Address("vsock", 3, 823).describe() == "vsock CID 3 port 823"
    assert X.Address("tcp", "h", 5).describe() == "TCP h:5"
    assert S.guest_file_name("out/trace.dat", "3") == Path("out/trace-3.dat")  # an unnamed guest is its CID


def test_transport_listens_on_vsock(vsock):
    """listen()/listen_data_port() bind AF_VSOCK on any CID; accept() gives up after its timeout."""
    port = free_vsock_port()
    ls = X.listen("vsock", port)
    try:
        assert ls.family == vsock and ls.type == socket.SOCK_STREAM
        assert ls.getsockname() == (X.VMADDR_CID_ANY, port)
        assert vsock_port_bound(port)
        d1, p1 = X.listen_data_port("vsock")
        d2, p2 = X.listen_data_port("vsock")
        with d1, d2:
            assert d1.family == d2.family == vsock
            assert p1 == d1.getsockname()[1] and p2 == d2.getsockname()[1]
            assert X.VMADDR_PORT_ANY not in (p1, p2) and len({p1, p2, port}) == 3
            assert vsock_port_bound(p1) and vsock_port_bound(p2)
        assert not vsock_port_bound(p1) and not vsock_port_bound(p2)
        with pytest.raises(OSError) as ei:
            X.listen("vsock", port)  # taken: the socket is closed, the error is EADDRINUSE
        assert ei.value.errno == errno.EADDRINUSE
        t0 = time.monotonic()
        with pytest.raises(X.PeerError, match=f"no connection on port {port}"):
            X.accept(ls, 0.3, allowed={"192.0.2.1"})  # the IP allow-list does not apply to vsock
        assert time.monotonic() - t0 < 1.5
    finally:
        ls.close()
    assert not vsock_port_bound(port)
    with pytest.raises(ValueError, match="out of range"):
        X.listen("vsock", 1 << 32)


@pytest.mark.parametrize("target", ["own", "host"])
def test_connect_refused_fast(vsock, target):
    """Our own CID (no vsock_loopback: ENODEV) and CID 2 (nothing listens: ECONNRESET) fail at once,
    with the address and a reason; the control-panel probe says the same."""
    cid = local_cid() if target == "own" else HOST_CID
    if cid is None:
        pytest.skip("no /dev/vsock to ask for this machine's CID")
    port = free_vsock_port()
    t0 = time.monotonic()
    try:
        s = X.connect(X.Address("vsock", cid, port), timeout=3.0)
    except X.PeerError as e:
        msg = str(e)
    else:  # a machine with vsock_loopback / a listening hypervisor: nothing to check here
        s.close()
        pytest.skip(f"CID {cid} accepts vsock connections on this machine")
    assert time.monotonic() - t0 < 3.5
    assert msg.startswith(f"cannot connect to vsock CID {cid} port {port}: ")
    assert "(" in msg and "\n" not in msg  # a reason in words after the kernel's
    why = probe_agent(f"g@{cid}:{port}", timeout=1.0)  # the capture dialog's check before a session
    assert why is not None and str(cid) in why and str(port) in why


def test_connect_honours_timeout(vsock):
    """An absent CID: the kernel would wait 2 s; our timeout (0.3 s) ends it first, with a reason."""
    t0 = time.monotonic()
    with pytest.raises(X.PeerError, match=f"vsock CID {ABSENT_CID} port 823: .*no answer"):
        X.connect(X.Address("vsock", ABSENT_CID, 823), timeout=0.3)
    assert time.monotonic() - t0 < 1.0
    with pytest.raises(X.PeerError, match="out of range"):
        X.connect(X.Address("vsock", 1 << 32, 823))
    with pytest.raises(X.PeerError, match="out of range"):
        X.connect(X.Address("vsock", 3, 1 << 32))


# --- the agent command ---------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["port-SIGINT", "default-SIGTERM"])
def test_agent_listens_on_vsock(vsock, tmp_path, how):
    """``kshark-py agent [-p PORT]`` listens on AF_VSOCK (823 by default), says so in one line, and a
    SIGINT/SIGTERM ends it within a second with status 0, the port released and no tracefs instance."""
    if how.startswith("default"):
        port, args, sig = X.VSOCK_DEFAULT_PORT, [], signal.SIGTERM
        if vsock_port_bound(port):
            pytest.skip("vsock port 823 is taken on this machine (an agent runs?)")
    else:
        port = free_vsock_port()
        args, sig = ["-p", str(port)], signal.SIGINT
    log = tmp_path / "agent.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cli("agent", *args), stdout=out, stderr=subprocess.STDOUT, env=ENV, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 10
        while not vsock_port_bound(port):
            assert proc.poll() is None, f"agent exited: {log.read_text()}"
            assert time.monotonic() < deadline, "the agent does not listen"
            time.sleep(0.02)
        listed = ss_lists_vsock()
        if listed is not None:  # ss can see vsock sockets here (vsock_diag): ours is among them
            assert f":{port} " in listed, listed
        deadline = time.monotonic() + 5
        while "listening" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        t0 = time.monotonic()
        proc.send_signal(sig)
        rc = proc.wait(timeout=5)
        assert time.monotonic() - t0 < 1.0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert rc == 0, text
    assert text.splitlines() == [f"kshark-py agent: listening on vsock port {port}"]
    assert not vsock_port_bound(port)
    assert instances_of(proc.pid) == []


def test_agent_bad_port():
    """Ports that do not fit the family are one line and status 2 (no traceback, no silent wrap-around)."""
    runs = {
        "vsock": subprocess.Popen(cli("agent", "-p", str(1 << 32)), stderr=subprocess.PIPE, text=True, env=ENV),
        "tcp": subprocess.Popen(cli("agent", "-N", "127.0.0.1", "-p", "70000"), stderr=subprocess.PIPE, text=True,
                                env=ENV),
    }
    for fam, p in runs.items():
        try:
            _out, err = p.communicate(timeout=20)
        except subprocess.TimeoutExpired:  # it listens on a wrapped-around port
            p.kill()
            p.communicate()
            pytest.fail(f"{fam}: the agent accepted the port")
        assert p.returncode == 2, err
        assert len(err.splitlines()) == 1 and "out of range" in err, err
        assert err.startswith("kshark-py agent: " + ("vsock port 4294967296" if fam == "vsock" else "TCP port 70000"))


# --- the host side: unreachable CIDs -------------------------------------------------------------------
def test_record_unreachable_cid(vsock, tmp_path):
    """``record -A g@CID:PORT -e EV`` to our own CID, CID 2 and an absent CID (and with host events too):
    status 2 within a few seconds, exactly one stderr line naming the guest, CID and port, an empty
    output folder (no trace.dat, no trace-g.dat, no temp folder) and no tracefs instance left."""
    need_root()
    port = free_vsock_port()
    own = local_cid()
    cids = [c for c in (own, HOST_CID, ABSENT_CID) if c is not None]
    cases = {f"cid{c}": ["-A", f"g@{c}:{port}", "-e", "sched:sched_switch"] for c in cids}
    if own is not None:  # with host events: the host's instance is set up first and must go again
        cases["host+own"] = ["-e", "sched:sched_switch", "-A", f"g@{own}:{port}", "-e", "sched:sched_switch"]
    procs = {}
    t0 = time.monotonic()
    for name, args in cases.items():  # concurrently: the absent CID takes ~3 s (1 s CID lookup + 2 s connect)
        d = tmp_path / name
        d.mkdir()
        procs[name] = (d, subprocess.Popen(cli("record", *args), cwd=d, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True, env=ENV))
    results = {}
    for name, (d, p) in procs.items():
        try:
            out, err = p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            pytest.fail(f"{name}: record hangs")
        results[name] = (d, p, out, err, time.monotonic() - t0)
    for name, (d, p, out, err, took) in results.items():
        cid = own if name == "host+own" else int(name[3:])
        assert p.returncode == 2, (name, err)
        assert took < 8, (name, took)
        lines = err.splitlines()
        assert len(lines) == 1 and "Traceback" not in err, (name, err)
        assert lines[0].startswith(f"kshark-py record: guest g: cannot connect to vsock CID {cid} port {port}: "), err
        assert out == ""
        assert sorted(os.listdir(d)) == [], (name, os.listdir(d))
        assert instances_of(p.pid) == [], name


# --- host and agent roles over vsock, short of the data connection -------------------------------------
class FakeVsockNet:
    """Stands in for connect() on the host: the control connection is a socketpair to our real agent
    (serving as a vsock agent), every other connection is recorded and checked, then refused."""

    def __init__(self, cid: int, control_port: int, agent: A.Agent) -> None:
        self.cid = cid
        self.control_port = control_port
        self.agent = agent
        self.calls: list[tuple[X.Address, bool]] = []
        self.agent_error: BaseException | None = None
        self.thread: threading.Thread | None = None
        self.guest_file: Path | None = None
        self.file_at_connect: int | None = None

    def connect(self, addr: X.Address, timeout: float = X.MSG_TIMEOUT) -> socket.socket:
        if addr.port == self.control_port and self.thread is None:
            host_end, agent_end = socket.socketpair()
            self.thread = threading.Thread(target=self._serve, args=(agent_end,), daemon=True)
            self.thread.start()
            self.calls.append((addr, True))
            return host_end
        self.calls.append((addr, vsock_port_bound(addr.port)))
        if self.guest_file is not None and self.guest_file.exists():
            self.file_at_connect = self.guest_file.stat().st_size
        raise X.PeerError(f"cannot connect to {addr.describe()}: simulated (no vsock peer on this machine)")

    def _serve(self, sock: socket.socket) -> None:
        try:
            self.agent.serve_connection(sock)
        except BaseException as e:  # noqa: BLE001 - reported to the test
            self.agent_error = e
        finally:
            sock.close()


@pytest.mark.parametrize("tsync", ["data", "timesync"])
def test_host_and_agent_over_vsock(vsock, tmp_path, monkeypatch, tsync):
    """Our agent as a vsock agent and our host with ``-A g@CID:PORT``: TRACE_REQ/TRACE_RESP and the
    metadata pass over the control channel; the agent's data (and time-sync) ports are AF_VSOCK sockets
    listening on the announced ports; the host connects to exactly those at the spec's CID, after
    looking the guest's process up by that CID.  The refused connection then ends both sides cleanly:
    one error naming guest and connection, the half-written trace-g.dat removed, the agent's accept
    timing out and its tracefs instance and vsock ports gone."""
    need_root()
    cid, port = 7, free_vsock_port()
    lookups: list[int] = []
    monkeypatch.setattr(kvm, "find_pid_by_cid", lambda c, timeout=1.0: lookups.append(c))
    agent = A.Agent(family="vsock", port=port, timeout=0.25)
    net = FakeVsockNet(cid, port, agent)
    monkeypatch.setattr(S, "connect", net.connect)
    before = set(instances_of(os.getpid()))
    host = S.HostSession(tmp_path / "trace.dat", [], [S.GuestConfig(f"g@{cid}:{port}", specs=[
        EventSpec("sched", "sched_switch")])], timeout=2.0, tsync_interval=0 if tsync == "timesync" else -1)
    g = host.guests[0]
    net.guest_file = g.file
    t0 = time.monotonic()
    try:
        with pytest.raises(X.PeerError) as ei:
            host.start()
    finally:
        host.close()
    assert net.thread is not None
    net.thread.join(10)
    assert not net.thread.is_alive()
    took = time.monotonic() - t0
    assert lookups == [cid]  # the kvm CID lookup ran for the vsock guest, with the CID as a number
    assert g.addr == X.Address("vsock", cid, port) and g.name == "g"
    resp = g.resp
    assert resp is not None and resp.cpus == cpu_count_online() and not resp.use_fifos
    (ctl, _), (addr, listening) = net.calls
    assert ctl == X.Address("vsock", cid, port)
    if tsync == "timesync":
        assert resp.tsync_proto == "ptp" and resp.tsync_port not in (0, X.VMADDR_PORT_ANY)
        assert addr == X.Address("vsock", cid, resp.tsync_port) and listening
        assert str(ei.value).startswith(f"guest g: time sync: cannot connect to vsock CID {cid} port {resp.tsync_port}")
        assert net.file_at_connect is None  # before the metadata, as trace-cmd
        waited = resp.tsync_port
    else:
        assert resp.tsync_proto == "" and len(resp.ports) == resp.cpus and len(set(resp.ports)) == resp.cpus
        assert addr == X.Address("vsock", cid, resp.ports[0]) and listening
        assert str(ei.value).startswith(f"guest g: CPU 0 data: cannot connect to vsock CID {cid} port {resp.ports[0]}")
        assert net.file_at_connect and net.file_at_connect == g.metadata_bytes > 0
        waited = resp.ports[0]
    assert not g.file.exists()  # the metadata-only file of the failed start is gone
    assert sorted(os.listdir(tmp_path)) == []  # and the host's temp folder
    assert isinstance(net.agent_error, X.PeerError)
    assert f"no connection on port {waited} within 0.5 s" in str(net.agent_error)
    assert took < 5
    for p in (*resp.ports, resp.tsync_port):
        if p:
            assert not vsock_port_bound(p)
    assert set(instances_of(os.getpid())) == before
