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

``--live``: the live view's cost instead (capture panel's "Live view"): our host in this process with our agent
over TCP, the same load, once without and once with the live model decoding every page as it arrives and a
viewer taking a snapshot session every 0.5 s (``--gui``: the live main window itself, offscreen); prints the
live view's CPU (decoding + refreshes) as a share of one core and the throughput change.

Run as root:  python benchmarks/bench_capture.py [--duration 3] [--live [--gui]]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
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


class _Timed:
    """A callable's CPU time in the threads that call it (``time.thread_time``), summed."""

    def __init__(self, fn) -> None:
        self.fn, self.cpu, self.calls = fn, 0.0, 0

    final_cpu = 0.0
    """Of :attr:`cpu`: the calls with a budget of None (the live model's last poll, after Stop)."""

    def __call__(self, *a, **k):
        t = time.thread_time()
        try:
            return self.fn(*a, **k)
        finally:
            dt = time.thread_time() - t
            if (a[0] if a else k.get("budget", 0)) is None:
                self.final_cpu += dt
            else:
                self.cpu += dt
                self.calls += 1


def run_live(live_on: bool, duration: float, tmp: Path, gui: bool) -> dict:
    """Our host in this process (as the capture panel runs it) and our agent over TCP, raw_syscalls at full
    speed in the guest role; with ``live_on`` the live model decodes every page as it arrives and a viewer
    takes a snapshot session every 0.5 s (``gui``: the capture panel's live window itself, offscreen).
    Returns throughput, events, lost events and the live view's CPU seconds (decoding + refreshes)."""
    from kshark_py.capture.control import Recording
    from kshark_py.capture.eventspec import EventSpec
    from kshark_py.capture.live import LiveCapture
    from kshark_py.capture.session import GuestConfig, HostSession
    from kshark_py.model.livesession import LiveSessionBuilder
    from kshark_py.ui.capturepanel import LIVE_MAX_EVENTS

    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    agent_cmd = [sys.executable, "-m", "kshark_py.cli", "agent", "-N", "127.0.0.1", "-p", str(port), "--once"]
    with open(tmp / "agent.log", "w") as log:
        agent = subprocess.Popen(agent_cmd, cwd=tmp, stdout=log, stderr=subprocess.STDOUT, env=env,
                                 start_new_session=True)
    try:
        if not _listening(port):
            return {"status": "agent did not start"}
        g = GuestConfig(f"gt@127.0.0.1:{port}", specs=[EventSpec.parse(e) for e in EVENTS[1::2]],
                        extra_args=["-b", BUFFER_KB])
        session = HostSession(tmp / "trace.dat", [EventSpec.parse(e) for e in HOST_EVENTS[1::2]], [g],
                              tsync_interval=-1)
        live = LiveCapture(session, keep_events=LIVE_MAX_EVENTS) if live_on else None  # as the panel's
        poll = None
        if live is not None:
            poll = live.poll = _Timed(live.poll)
        load = f"timeout {duration} dd if=/dev/zero of=/dev/null bs=1 count=100000000"
        rec = Recording(session, command=f"sh -c '{load}'", live=live)
        refresh = None
        t0 = time.monotonic()
        rec.start()
        if live is not None and gui:
            refresh = _gui_viewer(rec, live)
        elif live is not None:
            builder = LiveSessionBuilder()
            refresh = _Timed(lambda: builder.build(live.snapshots()) if live.streams else None)
            while rec.is_alive():
                if rec.state == "recording":
                    refresh()
                    refresh.backlog = (*_backlog(rec, live), time.monotonic() - t0)
                rec.join(0.5)
        rec.join()
        wall = time.monotonic() - t0
        if rec.error:
            return {"status": rec.error}
    finally:
        _kill_group(agent)
    buf = open_trace(tmp / "trace-gt.dat").buffers[0]
    _ = buf.events
    data = sum(s.data_bytes for s in buf.stats)
    out = {"status": "ok", "bytes": data, "events": buf.events.num_rows, "lost": sum(s.lost_events for s in buf.stats),
           "mbps": data / duration / 1e6, "wall": wall, "live_cpu": 0.0, "poll_cpu": 0.0, "refresh_cpu": 0.0,
           "refreshes": 0}
    if poll is not None:
        got, behind, elapsed = getattr(refresh, "backlog", (0, 0, 1.0))
        out.update(poll_cpu=poll.cpu, final_cpu=poll.final_cpu, refresh_cpu=refresh.cpu, refreshes=refresh.calls,
                   live_cpu=poll.cpu + refresh.cpu, behind_mb=behind / 1e6,
                   behind_s=behind / max(got / max(elapsed, 1e-9), 1.0))
    return out


def _backlog(rec, live) -> tuple[int, int]:
    """(bytes received so far, bytes of them the live model has not decoded yet)."""
    got = sum(r.bytes for g in rec.session.guests for r in list(g.receivers))
    got += sum(r.stats.bytes for r in rec.session.recorder.readers)
    done = sum(c.counted_bytes for st in list(live.streams.values()) for c in list(st.cpus.values()))
    return got, max(0, got - done)


def _gui_viewer(rec, live) -> _Timed:
    """The capture panel's live view (a main window, offscreen) refreshed by its timer until the recording ends."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from kshark_py.ui.app import app_instance
    from kshark_py.ui.capturelive import LiveView
    from kshark_py.ui.mainwindow import MainWindow

    app = app_instance()
    view = LiveView(live, MainWindow)
    timed = view.refresh = _Timed(view.refresh)
    view.timer.timeout.disconnect()
    view.timer.timeout.connect(timed)
    view.start()
    t0 = time.monotonic()
    while rec.is_alive():
        app.processEvents()
        time.sleep(0.01)
        if rec.state == "recording":
            timed.backlog = (*_backlog(rec, live), time.monotonic() - t0)
    view.timer.stop()
    return timed


def main_live(args) -> int:
    """Throughput with the live view off and on (alternating, ``--repeat`` times each, medians compared), and
    the live view's CPU share, printed."""
    runs: dict[bool, list[dict]] = {False: [], True: []}
    for _ in range(args.repeat):
        for on in (False, True):
            with tempfile.TemporaryDirectory(prefix="kshark-bench-live-") as d:
                r = run_live(on, args.duration, Path(d), args.gui)
            if r["status"] != "ok":
                print(f"live {'on ' if on else 'off'}: {r['status']}", flush=True)
                continue
            runs[on].append(r)
            extra = ""
            if on:
                extra = (f"  live view CPU while recording {r['live_cpu']:.2f} s = "
                         f"{100 * r['live_cpu'] / args.duration:.1f} % of one core (decoding {r['poll_cpu']:.2f} s, "
                         f"{r['refreshes']} refreshes {r['refresh_cpu']:.2f} s); "
                         f"undecoded at Stop {r['behind_mb']:.1f} MB = {r['behind_s']:.1f} s of data; "
                         f"after Stop {r['final_cpu']:.2f} s")
            print(f"live {'on ' if on else 'off'}: {r['mbps']:8.1f} MB/s  {r['events']:>11,} events  "
                  f"lost {r['lost']:,}{extra}", flush=True)
    if runs[False] and runs[True]:
        off = statistics.median(r["mbps"] for r in runs[False])
        on = statistics.median(r["mbps"] for r in runs[True])
        cpu = statistics.median(100 * r["live_cpu"] / args.duration for r in runs[True])
        print(f"medians: off {off:.1f} MB/s, on {on:.1f} MB/s: throughput with the live view "
              f"{100 * (on / off - 1):+.1f} %; live view CPU {cpu:.1f} % of one core")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--transports", default="tcp,fifo")
    ap.add_argument("--live", action="store_true", help="measure the live view instead: our host in this process "
                    "with the live model off, then on (CPU it takes, throughput it costs)")
    ap.add_argument("--repeat", type=int, default=1, help="with --live: runs of each (medians compared)")
    ap.add_argument("--gui", action="store_true", help="with --live: refresh the capture panel's live window "
                    "(offscreen) instead of building snapshot sessions only")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2
    if args.live:
        return main_live(args)
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
