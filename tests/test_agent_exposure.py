"""Who can reach the agent, and that no peer can keep a host from its session (kshark_py/capture/gate.py).

* Where it listens: ``-N HOST`` binds the control, data and time-sync sockets to the local address the
  kernel routes to HOST (not 0.0.0.0), IPv4 and IPv6; ``--listen ADDR`` overrides.  Checked with real
  sockets and the kernel's own listening table (/proc/net/tcp, tcp6).
* Whom it accepts: HOST's addresses at the time of each connection (re-resolved); over vsock only CID 2
  unless allowed (decision logic as a unit: this machine has no vsock peer to connect from).
* Starvation: silent connections are dropped after the handshake timeout (scaled down from 5 s to
  0.2 s here) without holding the session slot; peers reconnecting every 0.2 s during a real session are
  refused at once and the session still finishes; garbage and slow peers are closed, never waited on.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
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

from kshark_py.capture import agent as A
from kshark_py.capture import gate as G
from kshark_py.capture import msg as M
from kshark_py.capture import session as S
from kshark_py.capture import transport as X
from kshark_py.capture.eventspec import EventSpec

from .support.capture import ROOT, TC_NS, free_port, instances, our_cli, require_recording, start, stop, wait_listening

HANDSHAKE = 0.2
"""The handshake timeout of the starvation tests: trace-cmd's 5 s scaled down."""
WAIT = 0.6
"""The handshake timeout elsewhere: long enough to tell "closed at once" (< WAIT/2) from "waited for"
on a loaded machine."""
TRACE_REQ = M.encode(M.TraceReq(0, 1, ("-e", "sched:sched_switch"), None))


# --- helpers --------------------------------------------------------------------------------------------
def listeners(port: int) -> set[str]:
    """The addresses sockets LISTEN on at ``port``, from the kernel's tables (0.0.0.0 / :: = every)."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for ln in Path(table).read_text().splitlines()[1:]:
            f = ln.split()
            addr, p = f[1].split(":")
            if f[3] == "0A" and int(p, 16) == port:
                raw = bytes.fromhex(addr)
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # host-order words
                out.add(str(ipaddress.ip_address(raw)))
    return out


@contextlib.contextmanager
def running_agent(**kw):
    """Our agent serving in a thread (``bind`` first, so the port is known); stopped on the way out."""
    agent = A.Agent(**{"family": "tcp", "port": 0, "handshake_timeout": WAIT, **kw})
    agent.bind()
    t = threading.Thread(target=agent.serve, daemon=True)
    t.start()
    deadline = time.monotonic() + 5
    while agent.gate is None and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield agent
    finally:
        agent.stop()
        t.join(20)
        assert not t.is_alive(), "the agent does not stop"


def connect(port: int, host: str = "127.0.0.1", source: str | None = None) -> socket.socket:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    if source:
        s.bind((source, 0))
    s.settimeout(5)
    s.connect((host, port))
    return s


def closed_after(s: socket.socket, limit: float = 5.0) -> tuple[float, bytes]:
    """(seconds until the agent closed ``s``, what it sent before)."""
    t0 = time.monotonic()
    got = b""
    s.settimeout(limit)
    with contextlib.suppress(OSError):
        while chunk := s.recv(4096):
            got += chunk
    return time.monotonic() - t0, got


def host_session(tmp: Path, port: int, host: str = "127.0.0.1", *, tsync: int = -1) -> S.HostSession:
    return S.HostSession(tmp / "trace.dat", [], [S.GuestConfig(f"g@{host}:{port}", specs=[
        EventSpec("sched", "sched_switch")])], timeout=5.0, tsync_interval=tsync)


def record_guest(tmp: Path, port: int, host: str = "127.0.0.1", *, seconds: float = 0.3, tsync: int = -1,
                 during=None) -> int:
    """A whole host session with our agent; the guest's events as trace-cmd reports them.
    ``during(session)`` runs once the session has started."""
    hs = host_session(tmp, port, host, tsync=tsync)
    try:
        hs.start()
        if during is not None:
            during(hs)
        time.sleep(seconds)
        hs.stop()
        files = hs.write()
    finally:
        hs.close()
    guest = tmp / "trace-g.dat"
    assert guest in files
    r = subprocess.run(["trace-cmd", "report", "-i", str(guest)], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr  # bytes: comms need not be UTF-8
    return sum(b" sched_switch: " in ln for ln in r.stdout.splitlines())


def own_instances(tracefs: Path) -> set[str]:
    """This process's tracefs instances (other engineers record on this machine at the same time)."""
    return {n for n in instances(tracefs) if f"-{os.getpid()}-" in n}


@pytest.fixture
def recording():
    tracefs = require_recording()
    before = own_instances(tracefs)
    yield tracefs
    assert own_instances(tracefs) == before, "tracefs instance left behind"


# --- allow-lists and the vsock decision -----------------------------------------------------------------
def test_peer_keys_normalize():
    assert G.normalize_ip("::ffff:127.0.0.1") == "127.0.0.1"  # IPv4 peer of a dual-stack listener
    assert G.normalize_ip("fe80:0::1%eth0") == "fe80::1"
    assert G.normalize_ip("0:0::1") == "::1"
    vs = getattr(socket, "AF_VSOCK", 40)
    assert X.peer_key(vs, (3, 1024)) == 3
    assert X.peer_key(socket.AF_INET6, ("::ffff:10.0.0.1", 5, 0, 0)) == "10.0.0.1"
    assert X.peer_key(socket.AF_UNIX, "") is None


def test_vsock_accepts_only_the_host_cid(caplog):
    """A vsock agent takes CID 2 (the host) only; CID 1 (vsock_loopback: any local user of the guest) and
    other guests' CIDs are closed at once with a log line; ``allowed_cids`` (--allow-cid) changes the set.
    The decision runs through the gate as for a real accept (socketpairs stand in for vsock connections)."""
    caplog.set_level(logging.INFO, "kshark_py.capture")
    default = A.Agent(family="vsock", port=X.VSOCK_DEFAULT_PORT)
    assert default.allow == G.CidAllow(frozenset({2}))
    assert default.allow.check(2) is None
    for cid in (0, 1, 3, X.VMADDR_CID_ANY):
        why = default.allow.check(cid)
        assert why is not None and f"CID {cid} is not an allowed CID" in why and "--allow-cid" in why
    assert A.Agent(family="vsock", port=823, allowed_cids=[3, 4]).allow.check(2) is not None
    assert A.Agent(family="vsock", port=823, allowed_cids=[3, 4]).allow.check(4) is None
    with pytest.raises(ValueError, match="vsock agent has no host name"):
        A.Agent(family="vsock", port=823, allowed_host="h")
    with pytest.raises(ValueError, match="needs its host"):
        A.Agent(family="tcp", port=823)

    gate = G.Gate([], default.allow, handshake_timeout=WAIT)
    stranger, agent_end = socket.socketpair()
    with stranger:
        assert not gate.offer(agent_end, 3)
        took, got = closed_after(stranger)
        assert took < 0.5 and got == b""
    assert "refused the connection from vsock CID 3: CID 3 is not an allowed CID (2" in caplog.text
    host, agent_end = socket.socketpair()
    with host:
        assert gate.offer(agent_end, 2)
        host.sendall(TRACE_REQ)
        gate.step(1.0)
        r = gate.requests.get(timeout=1)
        assert r.key == 2 and r.req.args == ("-e", "sched:sched_switch") and gate.busy.is_set()
        other, agent_end2 = socket.socketpair()  # the host asks again while its session runs: refused at once
        with other:
            assert gate.offer(agent_end2, 2)
            other.sendall(TRACE_REQ)
            gate.step(1.0)
            took, got = closed_after(other)
            assert took < 0.5 and got == b"" and gate.requests.empty()
        assert "busy with the session of vsock CID 2: closed the connection from vsock CID 2" in caplog.text
        r.sock.close()


def test_host_name_resolved_at_each_connection(monkeypatch, caplog):
    """``-N NAME``: NAME's addresses are looked up per connection, so a changed DNS answer counts at once
    (results reused for at most the TTL); a name that stops resolving refuses connections, naming why."""
    answers = {"now": ["127.0.0.1"]}

    def fake(host):
        if not answers["now"]:
            raise socket.gaierror(-2, "Name or service not known")
        return [(socket.AF_INET, (a, 0)) for a in answers["now"]]

    allow = G.HostAllow("guesthost", ttl=0, resolver=fake)
    assert allow.check("127.0.0.1") is None
    answers["now"] = ["127.0.0.2"]
    assert allow.check("127.0.0.1") == "not guesthost (127.0.0.2)"
    answers["now"] = []
    assert "cannot resolve guesthost" in allow.check("127.0.0.2")
    cached = G.HostAllow("guesthost", ttl=60, resolver=fake)
    answers["now"] = ["127.0.0.3"]
    assert cached.check("127.0.0.3") is None
    answers["now"] = ["127.0.0.4"]
    assert cached.check("127.0.0.3") is None  # within the TTL

    # the same with real connections: the agent binds where guesthost was at start (127.0.0.1)
    caplog.set_level(logging.INFO, "kshark_py.capture")
    answers["now"] = ["127.0.0.1"]
    monkeypatch.setattr(G, "resolve", fake)
    monkeypatch.setattr(G, "RESOLVE_TTL", 0.0)
    with running_agent(allowed_host="guesthost") as agent:
        agent.allow.ttl = 0
        assert agent.addresses == ["127.0.0.1"] and listeners(agent.port) == {"127.0.0.1"}
        with connect(agent.port) as s:  # guesthost: pending until the handshake timeout
            took, _ = closed_after(s)
            assert WAIT * 0.8 < took < WAIT + 1.0
        assert f"closed the connection from 127.0.0.1: no request within {WAIT:g} s" in caplog.text
        answers["now"] = ["127.0.0.2"]  # DNS changed: the old address is a stranger now
        with connect(agent.port) as s:
            took, _ = closed_after(s)
            assert took < WAIT / 2
        assert "refused the connection from 127.0.0.1: not guesthost (127.0.0.2)" in caplog.text
        with connect(agent.port, source="127.0.0.2") as s:  # and the new one is the host
            took, _ = closed_after(s)
            assert took > WAIT * 0.8
        assert "refused the connection from 127.0.0.2" not in caplog.text
    # a name with IPv4 and IPv6 addresses: one listening socket on each route source, one port
    answers["now"] = ["127.0.0.1"]
    monkeypatch.setattr(G, "resolve", lambda host: [(socket.AF_INET, ("127.0.0.1", 0)),
                                                     (socket.AF_INET6, ("::1", 0, 0, 0))])
    with running_agent(allowed_host="dualhost") as agent:
        assert agent.addresses == ["127.0.0.1", "::1"] and listeners(agent.port) == {"127.0.0.1", "::1"}
        for host in ("127.0.0.1", "::1"):
            with connect(agent.port, host) as s:
                assert closed_after(s)[0] > WAIT * 0.8  # admitted: waited for its request


# --- where it listens -----------------------------------------------------------------------------------
def test_binds_to_the_address_that_reaches_the_host(caplog):
    """-N 127.0.0.2: the kernel reaches it from 127.0.0.1, so the agent listens there and only there; a
    connection from 127.0.0.1 is not the host and is closed at once, one from 127.0.0.2 is admitted.
    -N ::1 listens on ::1 only (IPv4 cannot reach it); --listen :: listens on every address, both families,
    and an IPv4 host (seen as ::ffff:127.0.0.1) is recognised."""
    caplog.set_level(logging.INFO, "kshark_py.capture")
    with running_agent(allowed_host="127.0.0.2") as agent:
        assert agent.addresses == [G.route_source(socket.AF_INET, ("127.0.0.2", 0))] == ["127.0.0.1"]
        assert listeners(agent.port) == {"127.0.0.1"}
        with connect(agent.port) as s:
            assert closed_after(s)[0] < WAIT / 2
        assert "refused the connection from 127.0.0.1: not 127.0.0.2 (127.0.0.2)" in caplog.text
        with connect(agent.port, source="127.0.0.2") as s:
            assert closed_after(s)[0] > WAIT * 0.8
    with running_agent(allowed_host="::1") as agent:
        assert agent.addresses == ["::1"] and listeners(agent.port) == {"::1"}
        with pytest.raises(ConnectionRefusedError):
            connect(agent.port, "127.0.0.1")
        with connect(agent.port, "::1") as s:
            assert closed_after(s)[0] > WAIT * 0.8
    with running_agent(allowed_host="127.0.0.1", listen_addr="::") as agent:
        assert listeners(agent.port) == {"::"}
        with connect(agent.port, "127.0.0.1") as s:
            assert closed_after(s)[0] > WAIT * 0.8  # admitted (waited for its request)
        with connect(agent.port, "::1") as s:
            assert closed_after(s)[0] < WAIT / 2
        assert "refused the connection from ::1: not 127.0.0.1" in caplog.text


def test_cli_agent_options(tmp_path):
    """``agent -N HOST`` says where it listens and whom it takes; bad combinations are one line, exit 2."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cli = [sys.executable, "-m", "kshark_py.cli", "agent"]
    for args, msg in ((["--listen", "::"], "--listen needs -N HOST"),
                      (["-N", "127.0.0.1", "--allow-cid", "3"], "--allow-cid is for a vsock agent"),
                      (["--allow-cid", "-1"], "out of range"),
                      (["-N", "no-such-host.invalid"], "cannot resolve no-such-host.invalid"),
                      (["-N", "127.0.0.1", "--listen", "192.0.2.254"], "cannot listen on tcp port")):
        r = subprocess.run([*cli, *args, "-p", "0"], capture_output=True, text=True, env=env, timeout=30)
        assert r.returncode == 2 and msg in r.stderr and len(r.stderr.splitlines()) == 1, (args, r.stderr)
    with open(tmp_path / "log", "w") as out:
        p = subprocess.Popen([*cli, "-N", "::1", "-p", "0"], stderr=out, env=env)
    try:
        deadline = time.monotonic() + 15
        while "listening" not in (tmp_path / "log").read_text():
            assert p.poll() is None and time.monotonic() < deadline, (tmp_path / "log").read_text()
            time.sleep(0.05)
    finally:
        p.terminate()
        assert p.wait(10) == 0
    line = (tmp_path / "log").read_text().splitlines()[0]
    assert line.startswith("kshark-py agent: listening on TCP port ") and line.endswith(" on ::1, only from ::1")
    if hasattr(socket, "AF_VSOCK"):  # --allow-cid adds to the host's CID
        r = subprocess.run(["timeout", "-s", "INT", "2", *cli, "--allow-cid", "7", "--allow-cid", "3", "-p",
                            str(X.VMADDR_PORT_ANY)], capture_output=True, text=True, env=env, timeout=30)
        assert r.stderr.startswith("kshark-py agent: listening on vsock port "), r.stderr
        assert r.stderr.splitlines()[0].endswith(", only from CID 2, 3, 7"), r.stderr


# --- hostile and silent peers ---------------------------------------------------------------------------
def test_hostile_peers_are_closed_never_waited_on(caplog):
    """Garbage framing: closed at once.  A valid message that is not TRACE_REQ: NOT_SUPP, then closed.
    A peer trickling bytes: closed at the handshake deadline, which bytes do not extend.  More silent
    connections than the table holds: the oldest are closed first.  The agent serves on afterwards."""
    caplog.set_level(logging.INFO, "kshark_py.capture")
    with running_agent(allowed_host="127.0.0.1") as agent:
        with connect(agent.port) as s:
            s.sendall(b"\xff" * 12)
            took, got = closed_after(s)
            assert took < WAIT / 2 and got == b""
        assert "closed the connection from 127.0.0.1: not a trace request (" in caplog.text
        with connect(agent.port) as s:
            s.sendall(M.encode(M.Close()))
            took, got = closed_after(s)
            assert took < WAIT / 2 and got == struct.pack(">III", 12, 5, 0)  # NOT_SUPP
        assert "it sent Close instead of a trace request (answered NOT_SUPP)" in caplog.text
        with connect(agent.port) as s:
            t0 = time.monotonic()
            s.settimeout(0.05)
            ended = None
            for b in TRACE_REQ[:-1]:
                try:
                    s.sendall(bytes([b]))
                    if s.recv(1) == b"":
                        ended = time.monotonic() - t0
                        break
                except TimeoutError:
                    continue
                except OSError:
                    ended = time.monotonic() - t0
                    break
            assert ended is not None and WAIT * 0.8 < ended < WAIT + 1.0
        socks = [connect(agent.port) for _ in range(G.MAX_PENDING + 3)]
        try:
            time.sleep(WAIT / 4)
            closed, _, _ = select.select(socks, [], [], 0)  # end of stream waiting: closed by the agent
            assert closed == socks[:3]
        finally:
            for s in socks:
                s.close()
        assert f"{G.MAX_PENDING} connections wait for their request: closed the oldest" in caplog.text
        assert agent.sessions == 0  # none of these was a session


def test_silent_reconnectors_do_not_starve_the_host(recording, tmp_path, caplog):
    """trace-cmd's agent gives its one session slot to whoever connects first, for up to 5 s of silence: a
    peer reconnecting every 5 s keeps a host out for ever.  Here 3 peers reconnect as soon as they are
    dropped (a harsher 0.2 s version of that) while a real host records: it gets its session at once and
    it finishes; each silent connection was held only for the handshake timeout (before and during the
    session), and with --once the silent ones do not count as the one session."""
    caplog.set_level(logging.INFO, "kshark_py.capture")
    stop = threading.Event()
    held: list[float] = []

    def silent(port: int) -> None:
        while not stop.is_set():
            try:
                s = connect(port)
            except OSError:
                time.sleep(0.02)
                continue
            with s:
                took, got = closed_after(s)
                held.append(took)

    with running_agent(allowed_host="127.0.0.1", once=True, handshake_timeout=HANDSHAKE) as agent:
        threads = [threading.Thread(target=silent, args=(agent.port,), daemon=True) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(4 * HANDSHAKE)
        before = len(held)
        t0 = time.monotonic()
        events = record_guest(tmp_path, agent.port)
        took = time.monotonic() - t0
        stop.set()
        for t in threads:
            t.join(10)
    assert events > 0 and agent.sessions == 1
    assert took < 15
    assert before >= 6
    assert all(HANDSHAKE * 0.8 < h < HANDSHAKE + 1.0 for h in held[:-3]), held  # dropped at the timeout
    assert "host closed the session" in caplog.text


def test_reconnecting_host_during_a_session(recording, tmp_path, caplog):
    """While a real session records, a peer asks for a session every 0.2 s: each connection is closed at
    once (never queued), our host's second ``record`` is told the agent is busy, the running session
    finishes with its events, and the next session is served."""
    caplog.set_level(logging.INFO, "kshark_py.capture")
    refused: list[tuple[float, bytes]] = []
    second: list[str] = []
    stop = threading.Event()

    def knock(port: int) -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError), connect(port) as s:
                s.sendall(TRACE_REQ)
                refused.append(closed_after(s))
            stop.wait(0.2)

    def during(hs: S.HostSession) -> None:
        knocker.start()
        (tmp_path / "second").mkdir()
        other = host_session(tmp_path / "second", agent.port)
        t0 = time.monotonic()
        try:
            other.start()
        except X.PeerError as e:
            second.append(f"{time.monotonic() - t0:.1f} s: {e}")
        finally:
            other.close()
        time.sleep(1.0)  # the session records on, with 5 knocks
        stop.set()  # before the session ends: a knock on the idle agent would be served (and hold it)
        knocker.join(10)

    with running_agent(allowed_host="127.0.0.1") as agent:
        knocker = threading.Thread(target=knock, args=(agent.port,), daemon=True)
        events = record_guest(tmp_path, agent.port, during=during, tsync=0)
        deadline = time.monotonic() + 10
        while agent.gate.busy.is_set() and time.monotonic() < deadline:  # the agent finishes its side
            time.sleep(0.05)
        again = record_guest(tmp_path / "second", agent.port)
    assert events > 0 and again > 0 and agent.sessions == 2
    assert len(refused) >= 4
    assert all(t < 0.5 and got == b"" for t, got in refused), refused
    assert len(second) == 1 and "its agent closed the connection without answering the request" in second[0]
    assert "busy with another host" in second[0] and float(second[0].split(" s:")[0]) < 2.0
    assert "busy with the session of 127.0.0.1: closed the connection from 127.0.0.1" in caplog.text


def test_session_over_ipv6_binds_its_ports_there(recording, tmp_path):
    """A whole session over IPv6 (-N ::1, PTP time sync): the data and time-sync ports the agent announces
    listen on ::1, the control connection's address, not on every address."""
    seen: dict[int, set[str]] = {}

    def during(hs: S.HostSession) -> None:
        resp = hs.guests[0].resp
        assert resp is not None and resp.tsync_port
        for p in (*resp.ports, resp.tsync_port):
            seen[p] = listeners(p)

    with running_agent(allowed_host="::1", once=True) as agent:
        events = record_guest(tmp_path, agent.port, "::1", during=during, tsync=0)
    assert events > 0 and agent.sessions == 1
    assert seen and all(v == {"::1"} for v in seen.values()), seen


# --- with the real trace-cmd 3.1.6 host ----------------------------------------------------------------
def _tc_record(tmp: Path, spec: str, name: str, hosts: str, *extra: str) -> subprocess.CompletedProcess:
    """trace-cmd record -A SPEC --name NAME in its own session (it signals its process group when it
    stops).  It connects the data ports to NAME, so ``hosts`` maps NAME to the agent's address."""
    (tmp / "hosts").write_text(hosts)
    return subprocess.run(["sh", str(TC_NS), "record", "-o", "trace.dat", *extra, "-A", spec, "--name", name,
                           "-e", "sched:sched_switch", "sleep", "0.5"],
                          cwd=tmp, capture_output=True, timeout=90, start_new_session=True,
                          env=dict(os.environ, TC_HOSTS=str(tmp / "hosts")))


@pytest.mark.usefixtures("env_ok")
def test_trace_cmd_host_over_ipv6(tmp_path):
    """trace-cmd record -A ::1:PORT with our agent -N ::1: the session (PTP time sync, data) runs over
    IPv6 and trace-cmd reads the guest file it wrote."""
    port = free_port()
    agent = start(our_cli("agent", "-N", "::1", "-p", str(port), "--once"), tmp_path)
    try:
        wait_listening(port, agent)
        assert listeners(port) == {"::1"}
        r = _tc_record(tmp_path, f"::1:{port}", "g6", "127.0.0.1 localhost\n::1 g6\n")
        assert r.returncode == 0, r.stderr
        assert b"Negotiated ptp time sync protocol" in r.stdout, r.stdout
        agent.wait(timeout=30)
    finally:
        log = stop(agent)
    assert "session for ::1" in log and "host closed the session" in log, log
    rep = subprocess.run(["trace-cmd", "report", "-i", str(tmp_path / "trace-g6.dat")], capture_output=True,
                         timeout=60)
    assert rep.returncode == 0 and b" sched_switch: " in rep.stdout


@pytest.mark.usefixtures("env_ok")
def test_trace_cmd_host_refused_while_busy(tmp_path, caplog):
    """trace-cmd's host asking while our host's session runs: refused at once, as trace-cmd's own busy
    agent does (it says "Failed to receive trace response", exit status 2); the session finishes."""
    caplog.set_level(logging.INFO, "kshark_py.capture")
    runs: list[tuple[float, subprocess.CompletedProcess]] = []

    def during(hs: S.HostSession) -> None:
        (tmp_path / "tc").mkdir()
        t0 = time.monotonic()
        r = _tc_record(tmp_path / "tc", f"127.0.0.1:{agent.port}", "g7", "127.0.0.1 localhost g7\n",
                       "--tsync-interval", "-1")
        runs.append((time.monotonic() - t0, r))

    with running_agent(allowed_host="127.0.0.1", once=True) as agent:
        events = record_guest(tmp_path, agent.port, during=during)
    assert events > 0 and agent.sessions == 1
    (took, r), = runs
    assert r.returncode != 0 and b"Failed to receive trace response" in r.stderr, r.stderr
    assert took < 10
    assert not (tmp_path / "tc" / "trace-g7.dat").exists()
    assert "busy with the session of 127.0.0.1: closed the connection from 127.0.0.1" in caplog.text
