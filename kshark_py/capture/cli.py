"""``kshark-py record`` and ``kshark-py agent``, spelled like trace-cmd's.

Why a hand-written argument scan for ``record``: as in trace-cmd, options after ``-A GUEST`` belong to
that guest (its events, its name) until the next ``-A``, and the first non-option word starts the
command to run, which may itself contain options (``record -e sched ls -A``).  argparse cannot express
positional scoping like that, so the subparser only takes the raw words and :func:`parse_record_args`
scans them.
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from ..argtypes import arg_type, seconds, whole_number, writable_file
from .recorder import EventSpec, RecordError
from .session import NO_EVENT_ERROR, GuestConfig, HostSession, guest_without_events_error, parse_guest_spec
from .transport import VSOCK_DEFAULT_PORT, PeerError, check_port
from .writer import WriterError

log = logging.getLogger("kshark_py.capture")

RECORD_HELP = """\
usage: kshark-py record [HOST OPTIONS] [-A GUEST [GUEST OPTIONS]]... [COMMAND [ARGS...]]

Records this kernel's events (and each guest agent's) into FILE (default trace.dat) and
trace-NAME.dat per guest. Without COMMAND or -d it records until Ctrl-C. Needs root.
Options after -A apply to that guest, until the next -A.

host options (before the first -A):
  -o FILE               output file (default trace.dat)
  -e EVENT              SYSTEM, SYSTEM:EVENT, EVENT or all (repeatable)
  -f FILTER             tracefs filter for the -e before it
  -b KB                 per-CPU ring buffer size in KB (1..2147483647)
  -C CLOCK              trace clock (local, global, x86-tsc, ...: /sys/kernel/tracing/trace_clock)
  --nofifos             connect to every guest over vsock/TCP even where FIFOs exist
any position:
  -d SECONDS            stop after SECONDS (a COMMAND still running then is terminated)
  --file-version 6|7    trace.dat version (default 7; guests need 7)
  --compression zstd|zlib|none   (default zstd)
  --tsync-interval MS   guest time-sync period (default 0: at start and stop; negative: none)
  -h, --help            this text
a guest:
  -A NAME@CID[:PORT]    a vsock agent (port 823 by default)
  -A NAME@HOST:PORT     a TCP agent (kshark-py agent -N, trace-cmd agent -N)
  -e EVENT [-f FILTER]  the guest's events (at least one)
  -b KB                 the guest's buffer size
  --name NAME           the guest's name (its file: trace-NAME.dat)
  --nofifos             this guest over vsock/TCP even where FIFOs exist
  --guest-pid PID       the host process running the guest (QEMU's pid; vsock guests are found by
                        their CID): maps each VCPU to its thread (GUEST option) and, with -C x86-tsc,
                        offers KVM time sync (TSC offsets from /sys/kernel/debug/kvm/PID-*/)

Which events, as trace-cmd 3.1.6 record:
  -e before the first -A      the host's events (-e all: every event)
  -e after -A NAME            that guest's events; a guest needs at least one (trace-cmd's agent
                              aborts a request without -e)
  no -e before -A             the host is not traced at all and FILE is not written: only the
                              guests' trace-NAME.dat files
  no -e at all, no -A         error: nothing to record
  -e X -A g -e Y              host records X into FILE, guest g records Y into trace-g.dat
"""

RECORD_VALUE_OPTIONS = frozenset({"-o", "-e", "-f", "-b", "-C", "--file-version", "--compression", "-d",
                                  "--tsync-interval", "-A", "--name", "--guest-pid"})
"""``record``'s options that take a value (kshark_py.cli also needs them to find the command word)."""

RECORD_SUMMARY = "record the host and guest agents (trace-cmd record)"
AGENT_SUMMARY = "the guest side of record (as trace-cmd agent)"
_BUFFER_KB_MAX = (1 << 31) - 1  # trace-cmd reads -b with atoi()
_PID_MAX = 1 << 22  # the kernel's largest pid_max
_INTERVAL_MS = (1 << 31) - 1


def _number(option: str, text: str, parse, *bounds) -> int | float:
    """``parse(text, *bounds)`` or a ValueError naming the option (one line, exit 2 in _cmd_record)."""
    try:
        return parse(text, *bounds)
    except ValueError as e:
        raise ValueError(f"{option}: {e}") from None


@dataclass
class RecordArgs:
    output: str = "trace.dat"
    specs: list[EventSpec] = field(default_factory=list)
    buffer_kb: int | None = None
    clock: str | None = None
    version: int = 7
    compression: str | None = "zstd"
    duration: float | None = None
    tsync_interval: int = 0
    guests: list[GuestConfig] = field(default_factory=list)
    command: list[str] = field(default_factory=list)


def parse_record_args(words: list[str]) -> RecordArgs:
    """Scan ``record``'s words; raises ValueError with a message for bad input."""
    a = RecordArgs()
    no_fifos = False
    i = 0
    guest: GuestConfig | None = None
    while i < len(words):
        w = words[i]
        if w == "--":
            a.command = words[i + 1:]
            break
        if not w.startswith("-") or w == "-":
            a.command = words[i:]
            break
        if w in RECORD_VALUE_OPTIONS:
            if i + 1 >= len(words):
                raise ValueError(f"option {w} needs a value")
            v = words[i + 1]
            i += 2
        else:
            v = None
            i += 1
        specs = guest.specs if guest else a.specs
        match w:
            case "-A":
                guest = GuestConfig(v)  # type: ignore[arg-type]
                a.guests.append(guest)
            case "--name" if guest:
                guest.name = v
            case "--guest-pid" if guest:
                guest.guest_pid = _number("--guest-pid", v, whole_number, 1, _PID_MAX)  # type: ignore[arg-type]
            case "--nofifos" if guest:
                guest.use_fifos = False
            case "--nofifos":  # before any -A: for every guest (applied below)
                no_fifos = True
            case "-e":
                specs.append(EventSpec.parse(v))  # type: ignore[arg-type]
            case "-f":
                if not specs:
                    raise ValueError("-f must follow an -e")
                last = specs[-1]
                specs[-1] = EventSpec(last.system, last.event, v)
            case "-o" if not guest:
                a.output = v  # type: ignore[assignment]
            case "-b":
                kb = _number("-b (buffer size in KB)", v, whole_number, 1, _BUFFER_KB_MAX)  # type: ignore[arg-type]
                if guest:
                    guest.extra_args += ["-b", str(kb)]
                else:
                    a.buffer_kb = kb  # type: ignore[assignment]
            case "-C" if not guest:
                a.clock = v
            case "--file-version":
                if v not in ("6", "7"):
                    raise ValueError("--file-version must be 6 or 7")
                a.version = int(v)
            case "--compression":
                a.compression = None if v == "none" else v
            case "-d":
                a.duration = _number("-d", v, seconds)  # type: ignore[arg-type]
            case "--tsync-interval":
                a.tsync_interval = _number("--tsync-interval (ms; negative: no time sync)", v,  # type: ignore
                                           whole_number, -_INTERVAL_MS, _INTERVAL_MS)
            case "-h" | "--help":
                raise SystemExit(print(RECORD_HELP) or 0)
            case _:
                raise ValueError(f"unknown or misplaced option {w}")
    writable_file(a.output)  # FILE and the guests' trace-NAME.dat beside it: before anything is recorded
    for g in a.guests if no_fifos else ():
        g.use_fifos = False
    if a.guests and a.version != 7:
        raise ValueError("guest recording writes version 7 files")
    if not a.specs and not a.guests:
        raise ValueError(NO_EVENT_ERROR)
    for g in a.guests:
        if not g.specs:
            name = g.name or parse_guest_spec(g.spec)[0] or g.spec
            raise ValueError(guest_without_events_error(name))
    return a


def _wait(args: RecordArgs) -> int:
    """Run the command / sleep the duration / wait for Ctrl-C; returns the command's exit status."""
    rc = 0
    try:
        if args.command:
            try:
                proc = subprocess.Popen(args.command)
            except OSError as e:
                log.error("cannot run %s: %s", args.command[0], e)
                return 127
            try:
                rc = proc.wait(timeout=args.duration)
            except subprocess.TimeoutExpired:
                proc.terminate()
                rc = proc.wait()
        elif args.duration is not None:
            time.sleep(args.duration)
        else:
            print("kshark-py: recording; press Ctrl-C to stop", file=sys.stderr)
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    return rc


def _log_setup() -> None:
    logging.basicConfig(level=logging.INFO, format="kshark-py: %(message)s")
    # SIGTERM (kill, timeout) ends the recording like Ctrl-C, so finally-blocks remove our tracefs
    # instance and write what was received; Python's default would exit without cleanup.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _cmd_record(ns: argparse.Namespace) -> int:
    _log_setup()
    try:
        args = parse_record_args(list(ns.words))
    except ValueError as e:
        print(f"kshark-py record: {e}", file=sys.stderr)
        return 2
    try:
        session = HostSession(args.output, args.specs, args.guests, buffer_kb=args.buffer_kb, clock=args.clock,
                              version=args.version, compression=args.compression,
                              tsync_interval=args.tsync_interval)
    except (RecordError, ValueError) as e:
        print(f"kshark-py record: {e}", file=sys.stderr)
        return 2
    try:
        try:
            session.start()
        except (RecordError, PeerError, OSError) as e:
            print(f"kshark-py record: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:  # Ctrl-C/SIGTERM while connecting: cleaned up by start(), nothing written
            print("kshark-py record: interrupted before recording started: nothing written", file=sys.stderr)
            return 130
        old = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            rc = _wait(args)
        finally:
            signal.signal(signal.SIGINT, old)
        session.stop()
        files = session.write()
        rec = session.recorder
        if not session.record_host:
            print(f"host: not traced (no -e before -A, as trace-cmd): {args.output} not written", file=sys.stderr)
        for cpu, (r, lost) in enumerate(zip(rec.readers, rec.lost, strict=False)):
            print(f"CPU{cpu}: {r.stats.bytes} bytes, {lost} events lost", file=sys.stderr)
        for g in session.guests:
            got = sum(r.bytes for r in g.receivers)
            status = f" ({g.error})" if g.error else ""
            print(f"guest {g.name}: {g.metadata_bytes} metadata bytes, {got} data bytes{status}", file=sys.stderr)
            if g.tsync is not None:
                offs = [o for s in g.tsync.samples for o in s.offsets]
                print(f"guest {g.name}: {g.tsync.proto} time sync, {g.tsync.rounds} rounds, offsets (ns or clock "
                      f"units) {offs}" + (f" ({g.tsync.error})" if g.tsync.error else ""), file=sys.stderr)
        print("wrote " + " ".join(str(f) for f in files), file=sys.stderr)
        return 0 if rc == 0 else rc
    except (WriterError, RecordError, OSError) as e:
        print(f"kshark-py record: {e}", file=sys.stderr)
        return 2
    finally:
        session.close()


def _cmd_agent(ns: argparse.Namespace) -> int:
    from .agent import Agent

    _log_setup()
    family = "tcp" if ns.N else "vsock"
    port = ns.p if ns.p is not None else VSOCK_DEFAULT_PORT
    try:
        check_port(family, port, listening=True)
    except ValueError as e:
        print(f"kshark-py agent: {e}", file=sys.stderr)
        return 2
    try:
        agent = Agent(family=family, port=port, allowed_host=ns.N, once=ns.once)
        agent.bind()
    except OSError as e:
        print(f"kshark-py agent: cannot listen on {family} port {port}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"kshark-py agent: listening on {family} port {agent.port}", file=sys.stderr, flush=True)
    try:
        agent.serve()
    except KeyboardInterrupt:
        pass
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``record`` and ``agent`` to the kshark-py command (called from kshark_py.cli.build_parser)."""
    r = subparsers.add_parser("record", help=RECORD_SUMMARY,
                              usage=RECORD_HELP, add_help=False, prefix_chars="\x01")
    r.add_argument("words", nargs=argparse.REMAINDER)
    r.set_defaults(func=_cmd_record)
    a = subparsers.add_parser("agent", help=AGENT_SUMMARY,
                              description="Serves host sessions until Ctrl-C or SIGTERM, then exits with "
                                          "status 0 (2: cannot listen).")
    a.add_argument("-p", type=arg_type(whole_number), metavar="PORT",
                   help=f"port (default {VSOCK_DEFAULT_PORT}; vsock 0..4294967295, 4294967295: any free port; "
                        "TCP 0..65535, 0: any)")
    a.add_argument("-N", metavar="HOST", help="listen on TCP and accept only HOST (default: vsock)")
    a.add_argument("--once", action="store_true", help="exit after one session")
    a.set_defaults(func=_cmd_agent)
