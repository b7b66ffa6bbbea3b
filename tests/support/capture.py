"""Recording tests' helpers: whether this machine can record, tracefs instances, both reports of a file,
and agents (trace-cmd's or ours) run as process groups on free TCP ports."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kshark_py.capture.control import tcp_listening
from kshark_py.capture.tracefs import RecordError, find_tracefs

ROOT = Path(__file__).resolve().parents[2]


def require_recording() -> Path:
    """tracefs + root + trace-cmd, or fail in CI (where they are installed) / skip elsewhere."""
    why = None
    if os.geteuid() != 0:
        why = "recording needs root"
    elif shutil.which("trace-cmd") is None:
        why = "trace-cmd is not installed"
    else:
        try:
            return find_tracefs()
        except RecordError as e:
            why = str(e)
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


def instances(tracefs: Path) -> set[str]:
    return {p.name for p in (tracefs / "instances").iterdir()}


def ours(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "kshark_py.cli", *args], capture_output=True, text=True,
                          env=env, timeout=120, cwd=ROOT)


def report_both(*files: Path) -> tuple[str, str]:
    args = [a for f in files for a in ("-i", str(f))]
    tc = subprocess.run(["trace-cmd", "report", *args], capture_output=True, text=True, timeout=120)
    assert tc.returncode == 0, tc.stderr
    ks = ours("report", *args)
    assert ks.returncode == 0, ks.stderr
    return tc.stdout, ks.stdout


SHARED = ROOT.parent / "shared"


TC_NS = SHARED / "tools" / "tc-record-ns.sh"


FIFO_GUEST = SHARED / "tools" / "fifo-guest.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"agent exited early: {_read_log(proc)}")
        if tcp_listening(port):
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


def start(cmd: list[str], cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """An agent in a new session (its own process group), output to a file (a pipe could block us)."""
    log = open(cwd / "agent.log", "w")  # noqa: SIM115 - the child owns it
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})))
    finally:
        log.close()
    proc._kshark_cwd = cwd  # type: ignore[attr-defined]
    return proc


def stop(proc: subprocess.Popen) -> str:
    """End the agent's process group (created by :func:`start`; tc-record-ns.sh runs trace-cmd as a child)."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            proc.poll()
            time.sleep(0.1)
        else:
            continue
        break
    proc.wait(timeout=5)
    return _read_log(proc)


def _read_log(proc: subprocess.Popen) -> str:
    cwd = getattr(proc, "_kshark_cwd", None)
    return Path(cwd, "agent.log").read_text() if cwd else ""


class AgentRun:
    """Our ``agent --once`` on a free TCP port, for one session: ``proc``, ``port``, and its ``log`` once stopped."""

    def __init__(self, port: int, proc: subprocess.Popen) -> None:
        self.port, self.proc, self.log = port, proc, ""


@contextlib.contextmanager
def our_agent(cwd: Path):
    """Start our agent (``--once``, TCP from 127.0.0.1), wait until it listens; stop it on the way out."""
    port = free_port()
    run = AgentRun(port, start(our_cli("agent", "-N", "127.0.0.1", "-p", str(port), "--once"), cwd))
    try:
        wait_listening(port, run.proc)
        yield run
    finally:
        run.log = stop(run.proc)


def our_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "kshark_py.cli", *args]


@contextlib.contextmanager
def fifo_guest(name: str):
    """KVM's FIFO layout for guest ``name`` on this machine (shared/tools/fifo-guest.sh), removed afterwards."""
    subprocess.run(["sh", str(FIFO_GUEST), "up", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["sh", str(FIFO_GUEST), "down", name], check=True)


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    """A real small file system (tmpfs of ``size``) at ``path``, unmounted afterwards."""
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
