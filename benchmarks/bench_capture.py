"""Guest -> host trace-data throughput, ours vs trace-cmd 3.1.6 on the same transport, in one run.

Why a load-driven measurement: the data that moves is a real guest role's ring-buffer pages.  The guest
role records ``raw_syscalls`` while ``dd bs=1`` issues millions of syscalls for DURATION seconds, with a
large per-CPU buffer; the host writes trace-NAME.dat.  Throughput = uncompressed guest data in that
file / recording time, and lost events are reported (a pair that does not keep up loses events).

Pairs per transport: our host + our agent, trace-cmd host + trace-cmd agent (both on this kernel, via
shared/tools/tc-record-ns.sh).  vsock cannot run here (no AF_VSOCK peer on one machine); FIFOs use
shared/tools/fifo-guest.sh.  Note: trace-cmd 3.1.6's host reads its FIFOs only after CLOSE_RESP (libtracefs
1.6.4 splices 0 bytes while recording), so its FIFO number is whatever fits the pipe, with its agent
blocking once the FIFO is full: a timeout ends that run and it is reported as such.

Run as root:  python benchmarks/bench_capture.py [--duration 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
TC_NS = SHARED / "tools" / "tc-record-ns.sh"
FIFO_GUEST = SHARED / "tools" / "fifo-guest.sh"
sys.path.insert(0, str(ROOT))

from kshark_py.loaders.tracedat import open_trace  # noqa: E402

EVENTS = ["-e", "raw_syscalls:sys_enter", "-e", "raw_syscalls:sys_exit"]
HOST_EVENTS = ["-e", "sched:sched_process_exec"]
"""The hosts' own events, the same quiet one for both pairs, so that both also write a host file.  (Without
a host ``-e`` neither host traces its kernel and only the guest file is written, as trace-cmd does; ours
used to record every host event then, which on this shared kernel recorded every guest syscall twice.)"""
BUFFER_KB = "65536"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for ln in Path(table).read_text().splitlines()[1:]:
                f = ln.split()
                if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                    return True
        time.sleep(0.05)
    return False


def _kill_group(p: subprocess.Popen) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            return
        try:
            p.wait(5)
            return
        except subprocess.TimeoutExpired:
            continue


def run_pair(impl: str, transport: str, duration: float, tmp: Path) -> dict:
    name = "gb" if transport == "fifo" else "gt"
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    load = f"timeout {duration} dd if=/dev/zero of=/dev/null bs=1 count=100000000"
    if impl == "ours":
        agent_cmd = [sys.executable, "-m", "kshark_py.cli", "agent", "-N", "127.0.0.1", "-p", str(port), "--once"]
        host_cmd = [sys.executable, "-m", "kshark_py.cli", "record", "-o", "trace.dat", "--tsync-interval", "-1",
                    *HOST_EVENTS, "-A", f"{name}@127.0.0.1:{port}", *EVENTS, "-b", BUFFER_KB, "sh", "-c", load]
    else:
        (tmp / "hosts").write_text(f"127.0.0.1 localhost {name}\n")
        env["TC_HOSTS"] = str(tmp / "hosts")
        agent_cmd = ["sh", str(TC_NS), "agent", "-N", "127.0.0.1", "-p", str(port)]
        host_cmd = ["sh", str(TC_NS), "record", "-o", "trace.dat", "--tsync-interval", "-1", *HOST_EVENTS,
                    "-A", f"127.0.0.1:{port}", "--name", name, *EVENTS, "-b", BUFFER_KB, "sh", "-c", load]
    with open(tmp / "agent.log", "w") as log:
        agent = subprocess.Popen(agent_cmd, cwd=tmp, stdout=log, stderr=subprocess.STDOUT, env=env,
                                 start_new_session=True)
    status = "ok"
    try:
        if not _listening(port):
            return {"status": "agent did not start"}
        t0 = time.monotonic()
        host = subprocess.Popen(host_cmd, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, text=True)
        try:
            out, _ = host.communicate(timeout=duration + 60)
        except subprocess.TimeoutExpired:
            _kill_group(host)
            out, status = "", "timed out (hang)"
        wall = time.monotonic() - t0
    finally:
        _kill_group(agent)
    gfile = tmp / f"trace-{name}.dat"
    if status != "ok" or not gfile.exists():
        return {"status": status if status != "ok" else f"no guest file: {out[-300:]}"}
    try:
        buf = open_trace(gfile).buffers[0]
        _ = buf.events
        data = sum(s.data_bytes for s in buf.stats)
        lost = sum(s.lost_events for s in buf.stats)
        events = buf.events.num_rows
    except Exception as e:  # a broken file is a result too
        return {"status": f"unreadable guest file: {e}"}
    return {"status": "ok", "bytes": data, "events": events, "lost": lost, "seconds": duration, "wall": wall,
            "mbps": data / duration / 1e6}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--transports", default="tcp,fifo")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2
    results = {}
    for transport in args.transports.split(","):
        for impl in ("ours", "trace-cmd"):
            with tempfile.TemporaryDirectory(prefix="kshark-bench-") as d:
                if transport == "fifo":
                    subprocess.run(["sh", str(FIFO_GUEST), "up", "gb"], check=True)
                try:
                    r = run_pair(impl, transport, args.duration, Path(d))
                finally:
                    if transport == "fifo":
                        subprocess.run(["sh", str(FIFO_GUEST), "down", "gb"], check=True)
                # trace-cmd leaves clock_synch-* only with time sync; nothing to clean with --tsync-interval -1
            results[(transport, impl)] = r
            if r["status"] == "ok":
                print(f"{transport:5s} {impl:10s} {r['mbps']:8.1f} MB/s  {r['bytes'] / 1e6:8.1f} MB  "
                      f"{r['events']:>10,} events  lost {r['lost']:,}  (wall {r['wall']:.1f} s)", flush=True)
            else:
                print(f"{transport:5s} {impl:10s} {r['status']}", flush=True)
    print()
    for transport in args.transports.split(","):
        a, b = results[(transport, "ours")], results[(transport, "trace-cmd")]
        if a["status"] == "ok" and b["status"] == "ok" and b["mbps"]:
            print(f"{transport}: ours / trace-cmd = {a['mbps'] / b['mbps']:.2f}")
        else:
            print(f"{transport}: no ratio (ours: {a['status']}, trace-cmd: {b['status']})")
    print("vsock: not measurable here (no AF_VSOCK peer on one machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
