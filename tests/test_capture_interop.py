"""Host/guest sessions over TCP on loopback and over FIFOs, against the real trace-cmd 3.1.6 and ourselves.

Guest and host share this kernel; each role records in its own tracefs instance (trace-cmd's roles use
the top instance).  Every case checks that `trace-cmd report` and `kshark-py report` read the pair of
files identically (both apply the guest's TIME_SHIFT) and that the guest file has events.  Sessions use
PTP time sync (the default, ``--tsync-interval 0``) unless the case says otherwise: the guest file must
then carry TIME_SHIFT with >= 2 samples per vCPU whose peer is the host's TRACEID, and since both roles
read one kernel clock, every measured offset must be ~0 (< 1 ms), which checks the sync arithmetic.
Agents run in their own session (start_new_session) because trace-cmd's host signals its whole process
group when it stops, and are always terminated by pid.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from kshark_py.capture.eventspec import EventSpec
from kshark_py.capture.session import guest_file_name, parse_guest_spec
from kshark_py.capture.transport import Address
from kshark_py.loaders.tracedat import open_trace

from .support.capture import (
    FIFO_GUEST,
    ROOT,
    TC_NS,
    AgentRun,
    free_port,
    our_agent,
    our_cli,
    report_both,
    start,
    stop,
    wait_listening,
)

MAX_OFFSET_NS = 1_000_000


def check_pair(tmp: Path, name: str, *, tsync: bool = True, min_samples: int = 2) -> list[int]:
    """Both reports agree and show guest events; with tsync, TIME_SHIFT is right. Returns the offsets."""
    host, guest = tmp / "trace.dat", tmp / f"trace-{name}.dat"
    assert host.is_file() and guest.is_file()
    tc, ks = report_both(host, guest)
    assert tc.splitlines() == ks.splitlines()
    guest_lines = [ln for ln in tc.splitlines() if ln.startswith(f"trace-{name}.dat:") and "sched_switch" in ln]
    assert guest_lines, "no guest events"
    hmeta, gmeta = open_trace(host).meta, open_trace(guest).meta
    assert [g.trace_id for g in hmeta.guests] == [gmeta.trace_id]
    if not tsync:
        assert gmeta.time_shift is None
        return []
    shift = gmeta.time_shift
    assert shift is not None, "no TIME_SHIFT in the guest file"
    assert shift.peer_trace_id == hmeta.trace_id
    assert shift.flags == 1  # ptp: INTERPOLATE
    assert len(shift.cpus) == gmeta.cpu_count
    offsets = []
    for cpu in shift.cpus:
        assert len(cpu.times) >= min_samples
        assert set(cpu.scalings) == {1} and set(cpu.fractions) == {0}
        offsets += cpu.offsets
    assert all(abs(o) < MAX_OFFSET_NS for o in offsets), offsets
    return offsets


@pytest.fixture
def fifos():
    subprocess.run(["sh", str(FIFO_GUEST), "up", "gf"], check=True)
    try:
        yield "gf"
    finally:
        subprocess.run(["sh", str(FIFO_GUEST), "down", "gf"], check=True)


def _ours_host(tmp: Path, name: str, port: int, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(our_cli("record", "-o", "trace.dat", *extra, "-e", "sched:sched_switch",
                                  "-A", f"{name}@127.0.0.1:{port}", "-e", "sched:sched_switch",
                                  "-e", "sched:sched_wakeup", "sleep", "0.5"),
                          cwd=tmp, capture_output=True, text=True, timeout=90,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


def _tc_host(tmp: Path, name: str, port: int, *extra: str) -> subprocess.CompletedProcess:
    (tmp / "hosts").write_text(f"127.0.0.1 localhost {name}\n")
    return subprocess.run(["sh", str(TC_NS), "record", "-o", "trace.dat", *extra,
                           "-e", "sched:sched_switch", "-A", f"127.0.0.1:{port}", "--name", name,
                           "-e", "sched:sched_switch", "sleep", "0.5"],
                          cwd=tmp, capture_output=True, text=True, timeout=90,
                          env=dict(os.environ, TC_HOSTS=str(tmp / "hosts")), start_new_session=True)


@pytest.mark.parametrize("transport", ["tcp", "fifo"])
def test_ours_host_with_trace_cmd_agent(env_ok, tmp_path, transport, request):
    name = "gt"
    if transport == "fifo":
        name = request.getfixturevalue("fifos")
    port = free_port()
    agent = start(["sh", str(TC_NS), "agent", "-N", "127.0.0.1", "-p", str(port)], tmp_path)
    try:
        wait_listening(port, agent)
        r = _ours_host(tmp_path, name, port)
        assert r.returncode == 0, r.stderr
        assert ("FIFOs" in r.stderr) == (transport == "fifo"), r.stderr
        assert "Negotiated ptp time sync protocol" in r.stderr, r.stderr
    finally:
        stop(agent)
    check_pair(tmp_path, name)


@pytest.mark.parametrize("transport", ["tcp", "fifo"])
def test_trace_cmd_host_with_our_agent(env_ok, tmp_path, transport, request):
    """trace-cmd record -A with our agent, PTP both ways; over FIFOs this used to hang (see FdSink)."""
    name = "gt"
    if transport == "fifo":
        name = request.getfixturevalue("fifos")
    with our_agent(tmp_path) as ag:
        t0 = time.monotonic()
        r = _tc_host(tmp_path, name, ag.port)
        assert r.returncode == 0, r.stderr
        assert "Negotiated ptp time sync protocol" in r.stdout, r.stdout
        assert time.monotonic() - t0 < 30
        ag.proc.wait(timeout=30)
    log = ag.log
    assert "host closed the session" in log, log
    assert "did not read" not in log, log
    check_pair(tmp_path, name)


def test_no_time_sync_both_ways(env_ok, tmp_path):
    """--tsync-interval -1: no protocol offered, no TIME_SHIFT (trace-cmd host -> our agent -> our host)."""
    with our_agent(tmp_path) as ag:
        r = _tc_host(tmp_path, "gt", ag.port, "--tsync-interval", "-1")
        assert r.returncode == 0, r.stderr
        assert "Negotiated" not in r.stdout
        ag.proc.wait(timeout=30)
    check_pair(tmp_path, "gt", tsync=False)
    with our_agent(tmp_path) as ag:
        r = _ours_host(tmp_path, "gt", ag.port, "--tsync-interval", "-1")
        assert r.returncode == 0, r.stderr
        ag.proc.wait(timeout=30)
    check_pair(tmp_path, "gt", tsync=False)


def test_tsync_interval(env_ok, tmp_path):
    """--tsync-interval 100 over 0.5 s: periodic rounds plus the first and last (ours with ours)."""
    with our_agent(tmp_path) as ag:
        r = _ours_host(tmp_path, "gt", ag.port, "--tsync-interval", "100")
        assert r.returncode == 0, r.stderr
        ag.proc.wait(timeout=30)
    check_pair(tmp_path, "gt", min_samples=4)


@pytest.mark.parametrize("transport", ["tcp", "fifo"])
def test_ours_with_ours(env_ok, tmp_path, transport, request):
    name = "gt"
    if transport == "fifo":
        name = request.getfixturevalue("fifos")
    with our_agent(tmp_path) as ag:
        r = _ours_host(tmp_path, name, ag.port)
        assert r.returncode == 0, r.stderr
        assert ("FIFOs" in r.stderr) == (transport == "fifo"), r.stderr
        ag.proc.wait(timeout=30)
    log = ag.log
    assert "host closed the session" in log, log
    check_pair(tmp_path, name)


def test_agent_that_stops_answering(env_ok, tmp_path):
    """A peer that accepts but never answers ends the session with a clear error, no hang."""
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(1)
        port = lsock.getsockname()[1]
        t0 = time.monotonic()
        r = subprocess.run(our_cli("record", "-o", "trace.dat", "-e", "sched:sched_switch",
                                   "-A", f"mute@127.0.0.1:{port}", "-e", "sched:sched_switch", "sleep", "0.1"),
                           cwd=tmp_path, capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 2
    assert "sent nothing" in r.stderr
    assert time.monotonic() - t0 < 30


def test_guest_spec_and_names():
    assert parse_guest_spec("vm@3:900") == ("vm", Address("vsock", 3, 900))
    assert parse_guest_spec("7") == (None, Address("vsock", 7, 823))
    assert parse_guest_spec("g@127.0.0.1:18000") == ("g", Address("tcp", "127.0.0.1", 18000))
    assert parse_guest_spec("g@[::1]:18000") == ("g", Address("tcp", "::1", 18000))
    assert parse_guest_spec("[fe80::2]:9", "tcp") == (None, Address("tcp", "fe80::2", 9))
    for bad in ("g@localhost", "g@[]:5", "g@[::1]"):
        with pytest.raises(ValueError):
            parse_guest_spec(bad)
    assert guest_file_name("out/trace.dat", "vm") == Path("out/trace-vm.dat")
    assert guest_file_name("t", "vm") == Path("t-vm")


def test_record_args():
    from kshark_py.capture.cli import parse_record_args

    a = parse_record_args(["-o", "x.dat", "-e", "sched", "-f", "pid>1", "-A", "g@1.2.3.4:5", "--name", "n",
                           "-e", "irq", "ls", "-A"])
    assert a.output == "x.dat" and a.specs == [EventSpec(None, "sched", "pid>1")]
    assert a.guests[0].name == "n" and a.guests[0].specs == [EventSpec(None, "irq")]
    assert a.command == ["ls", "-A"]
    with pytest.raises(ValueError):
        parse_record_args(["-f", "x"])


def test_ours_with_ours_over_ipv6(env_ok, tmp_path):
    """``-A NAME@[::1]:PORT``: an IPv6 agent address in brackets, as the agent's ``-N ::1`` listens."""
    port = free_port()
    run = AgentRun(port, start(our_cli("agent", "-N", "::1", "-p", str(port), "--once"), tmp_path))
    try:
        wait_listening(port, run.proc)
        r = subprocess.run(our_cli("record", "-o", "trace.dat", "-e", "sched:sched_switch",
                                   "-A", f"g6@[::1]:{port}", "-e", "sched:sched_switch", "-e", "sched:sched_wakeup",
                                   "sleep", "0.5"),
                           cwd=tmp_path, capture_output=True, text=True, timeout=90,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert r.returncode == 0, r.stderr
        run.proc.wait(timeout=30)
    finally:
        run.log = stop(run.proc)
    assert "host closed the session" in run.log, run.log
    check_pair(tmp_path, "g6")
