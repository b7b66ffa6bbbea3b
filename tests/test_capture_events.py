"""Which events the host records with ``-A``: ours must do what trace-cmd 3.1.6's ``record`` does.

trace-cmd (tracecmd/trace-record.c): every option after ``-A`` goes to that guest, so ``-e`` before the
first ``-A`` is the host's and ``-e`` after it the guest's; a host instance without events is dropped
from the session (``record_trace``: "If top_instance doesn't have any plugins or events...") and
``record_data`` writes no host file when no local instance is left; the agent runs ``record`` with the
guest's arguments, which dies with "no event or plugin was specified" when they have no ``-e``.

The recording cases run the same three command lines through trace-cmd (its host and its agent) and
through ours (our host and our agent), over TCP on loopback, and assert the same outcome for both:
which files exist and which events each holds.  ``--tsync-interval -1``: trace-cmd 3.1.6's host hangs at
the end of a PTP-synchronized session that has no host events (seen on this machine), which is not
what is tested here.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from kshark_py.capture.cli import parse_record_args
from kshark_py.capture.eventspec import EventSpec
from kshark_py.capture.session import GuestConfig, HostSession
from kshark_py.capture.tracefs import RecordError
from kshark_py.loaders.tracedat import open_trace

from .support.capture import ROOT, TC_NS, free_port, our_cli, require_recording, start, stop, wait_listening

HOST_EV = ["-e", "sched:sched_switch"]
GUEST_EV = ["-e", "sched:sched_wakeup"]
LOAD = ["sh", "-c", "for i in 1 2 3 4 5 6; do ls / >/dev/null; sleep 0.05; done"]
CASES = {
    "both": (HOST_EV, GUEST_EV),
    "guest_only": ([], GUEST_EV),
    "host_only": (HOST_EV, []),
}


def test_event_scoping_in_the_arguments():
    a = parse_record_args(["-e", "sched:sched_switch", "-A", "g@127.0.0.1:5", "-e", "sched:sched_wakeup", "ls"])
    assert a.specs == [EventSpec("sched", "sched_switch")]
    assert a.guests[0].specs == [EventSpec("sched", "sched_wakeup")]
    a = parse_record_args(["-A", "g@127.0.0.1:5", "-e", "all", "-A", "h@127.0.0.1:6", "-e", "irq"])
    assert a.specs == [] and [g.specs for g in a.guests] == [[EventSpec(None, None)], [EventSpec(None, "irq")]]
    with pytest.raises(ValueError, match="no event or plugin"):
        parse_record_args(["sleep", "1"])
    with pytest.raises(ValueError, match="guest g: no event"):
        parse_record_args(["-e", "sched", "-A", "g@127.0.0.1:5", "sleep", "1"])
    with pytest.raises(ValueError, match="guest h: no event"):
        parse_record_args(["-A", "g@127.0.0.1:5", "-e", "irq", "-A", "h@127.0.0.1:6"])


def test_session_refuses_what_trace_cmd_refuses():
    require_recording()
    with pytest.raises(RecordError, match="no event or plugin"):
        HostSession("x.dat", [], [])
    with pytest.raises(RecordError, match="guest g: no event"):
        HostSession("x.dat", [EventSpec.parse("sched")], [GuestConfig("g@127.0.0.1:5")])
    s = HostSession("x.dat", [], [GuestConfig("g@127.0.0.1:5", specs=[EventSpec.parse("sched")])])
    try:
        assert not s.record_host
    finally:
        s.close()


def event_names(path: Path) -> set[str]:
    tf = open_trace(path)
    ids = np.unique(tf.buffers[0].events.column("event_id").to_numpy())
    return {tf.formats.get(int(i)).name for i in ids}


def _run(host: str, agent: str, tmp: Path, host_ev: list[str], guest_ev: list[str],
         ) -> tuple[subprocess.CompletedProcess, str]:
    """One recording: ``host`` and ``agent`` are "ours" or "trace-cmd"; returns the host's result, the agent's log."""
    port = free_port()
    if agent == "ours":
        a = start(our_cli("agent", "-N", "127.0.0.1", "-p", str(port), "--once"), tmp)
    else:
        a = start(["sh", str(TC_NS), "agent", "-N", "127.0.0.1", "-p", str(port)], tmp)
    if host == "ours":
        cmd = our_cli("record", "-o", "trace.dat", "--tsync-interval", "-1", *host_ev,
                      "-A", f"g@127.0.0.1:{port}", *guest_ev, *LOAD)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
    else:
        (tmp / "hosts").write_text("127.0.0.1 localhost g\n")
        cmd = ["sh", str(TC_NS), "record", "-o", "trace.dat", "--tsync-interval", "-1", *host_ev,
               "-A", f"127.0.0.1:{port}", "--name", "g", *guest_ev, *LOAD]
        env = dict(os.environ, TC_HOSTS=str(tmp / "hosts"))
    try:
        wait_listening(port, a)
        r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=90, env=env, start_new_session=True)
    finally:
        log = stop(a)
    return r, log


@pytest.mark.parametrize("host", ["trace-cmd", "ours"])
@pytest.mark.parametrize("case", list(CASES))
def test_host_events_with_guests(env_ok, tmp_path, case, host):
    """Both hosts with our agent (which records in its own tracefs instance: trace-cmd's agent would share the
    top instance with trace-cmd's host on this one kernel, and reconfigure the host's events)."""
    host_ev, guest_ev = CASES[case]
    r, log = _run(host, "ours", tmp_path, host_ev, guest_ev)
    hfile, gfile = tmp_path / "trace.dat", tmp_path / "trace-g.dat"
    if case == "host_only":  # the guest has nothing to record: refused, nothing is written
        assert r.returncode != 0
        assert not hfile.exists() and not gfile.exists()
        if host == "ours":  # refused before contacting the agent
            assert "guest g: no event was specified" in r.stderr, r.stderr
        else:  # our agent ends the session as trace-cmd's does (see the next test)
            assert "no event or plugin was specified" in log, log
        return
    assert r.returncode == 0, (r.stdout, r.stderr, log)
    assert event_names(gfile) == {"sched_wakeup"}
    if case == "guest_only":  # the host is not traced: no host file at all
        assert not [p for p in tmp_path.iterdir() if p.name.startswith("trace.dat")], \
            sorted(p.name for p in tmp_path.iterdir())
    else:
        assert event_names(hfile) == {"sched_switch"}
        assert [g.name for g in open_trace(hfile).meta.guests] == ["g"]


def test_trace_cmd_agent_aborts_a_request_without_events(env_ok, tmp_path):
    """The reference for the host_only case: trace-cmd's own agent dies on it, the host fails and writes no
    trace file (it leaves an empty trace-g.dat and its temp trace.dat.cpuN files behind)."""
    r, log = _run("trace-cmd", "trace-cmd", tmp_path, HOST_EV, [])
    assert r.returncode != 0
    assert "no event or plugin was specified" in log, log
    assert not (tmp_path / "trace.dat").exists()
    g = tmp_path / "trace-g.dat"
    assert not g.exists() or g.stat().st_size == 0
