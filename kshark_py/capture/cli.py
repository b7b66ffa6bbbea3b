"""``kshark-py record`` and ``kshark-py agent``, spelled like trace-cmd's.

Why a hand-written argument scan for ``record``: as in trace-cmd, options after ``-A GUEST`` belong to
that guest (its events, its name) until the next ``-A``, and the first non-option word starts the
command to run, which may itself contain options (``record -e sched ls -A``).  argparse cannot express
positional scoping like that, so the subparser only takes the raw words and :func:`parse_record_args`
scans them.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from ..argtypes import seconds, whole_number, writable_file
from . import leftovers, spool
from .commands import RECORD_HELP, RECORD_VALUE_OPTIONS
from .control import loss_lines, progress, stream_totals, total_lines
from .eventspec import EventSpec
from .livecount import GuestCounts
from .session import NO_EVENT_ERROR, GuestConfig, HostSession, guest_without_events_error, parse_guest_spec
from .tracefs import RecordError, find_tracefs
from .transport import VSOCK_DEFAULT_PORT, PeerError, check_port
from .writer import WriterError

log = logging.getLogger("kshark_py.capture")

_BUFFER_KB_MAX = (1 << 31) - 1  # trace-cmd reads -b with atoi()
_PID_MAX = 1 << 22  # the kernel's largest pid_max
_INTERVAL_MS = (1 << 31) - 1
EXIT_ERROR = 2
EXIT_LOST = 3
"""The file was written but events were lost (kernel overruns, pages a full temp dir could not take)."""
COMMAND_STOP_WAIT = 5.0
"""Seconds the recorded command gets to exit after the signal we pass on, before we say it still runs."""


def _number(option: str, text: str, parse, *bounds) -> int | float:
    """``parse(text, *bounds)`` or a ValueError naming the option (one line, exit 2 in cmd_record)."""
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
    recover: str | None = None
    output_given: bool = False
    given: set[str] = field(default_factory=set)
    """The options given (``--recover`` keeps the recording's own version and compression unless given)."""


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
        a.given.add(w)
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
                a.output_given = True
            case "--recover" if not guest:
                a.recover = v
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
    if a.recover is not None:
        if a.specs or a.guests or a.command:
            raise ValueError("--recover takes only -o, --file-version and --compression")
        if a.output_given:
            writable_file(a.output)
        return a
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


class _Signals:
    """SIGINT and SIGTERM raise KeyboardInterrupt while recording, remembering which came (passed on to the
    recorded command, as a terminal's Ctrl-C reaches it too)."""

    def __init__(self) -> None:
        self.last: int | None = None
        self._old: dict[int, object] = {}

    def _handler(self, signum: int, frame: object) -> None:
        self.last = signum
        raise KeyboardInterrupt(f"signal {signum}")

    def __enter__(self) -> _Signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, h in self._old.items():
            signal.signal(sig, h)  # type: ignore[arg-type]


def _same_terminal_group(proc: subprocess.Popen) -> bool:
    """The command is in the terminal's foreground process group (then a Ctrl-C reached it already)."""
    try:
        fg = os.tcgetpgrp(sys.stdin.fileno())
        return fg == os.getpgid(proc.pid)
    except (OSError, ValueError, AttributeError):
        return False


def _stop_command(proc: subprocess.Popen, sig: int, why: str) -> int | None:
    """Stop the recorded command with ``sig`` (as trace-cmd's Ctrl-C, which reaches its whole process group);
    its status, or None when it still runs after :data:`COMMAND_STOP_WAIT` s (then stderr says so).

    A command in our terminal's foreground group got a Ctrl-C already: it gets a moment to exit on its own
    before the signal is repeated (a second SIGINT often means "quit now" to a program shutting down)."""
    name = signal.Signals(sig).name
    try:
        if sig == signal.SIGINT and _same_terminal_group(proc):
            with contextlib.suppress(subprocess.TimeoutExpired):
                return proc.wait(1.0)
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.send_signal(sig)
        return proc.wait(COMMAND_STOP_WAIT)
    except subprocess.TimeoutExpired:
        waited = f"within {COMMAND_STOP_WAIT:g} s of {name}"
    except KeyboardInterrupt:  # another signal: stop waiting
        waited = "before a second signal"
    if proc.poll() is not None:
        return proc.returncode
    print(f"kshark-py record: {why}: {shlex.join(proc.args)} (pid {proc.pid}) did not exit {waited}: it still "
          "runs; writing the trace recorded so far", file=sys.stderr)
    return None


def _wait(args: RecordArgs, sigs: _Signals) -> int:
    """Run the command / sleep the duration / wait for Ctrl-C; returns the command's exit status (0 when the
    user stopped the recording)."""
    rc = 0
    proc: subprocess.Popen | None = None
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
                st = _stop_command(proc, signal.SIGTERM, f"-d {args.duration:g} s are over")
                rc = 0 if st is None or st == -signal.SIGTERM else st
        elif args.duration is not None:
            time.sleep(args.duration)
        else:
            print("kshark-py record: recording; press Ctrl-C to stop", file=sys.stderr)
            threading.Event().wait()
    except KeyboardInterrupt:
        if proc is not None and proc.poll() is None:
            sig = sigs.last or signal.SIGINT
            _stop_command(proc, sig, f"{signal.Signals(sig).name} received")
        rc = 0
    return rc


def _log_setup() -> None:
    logging.basicConfig(level=logging.INFO, format="kshark-py: %(message)s")
    # SIGTERM (kill, timeout) ends the recording like Ctrl-C, so finally-blocks remove our tracefs
    # instance and write what was received; Python's default would exit without cleanup.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _say(text: str, prog: str = "record") -> None:
    print(f"kshark-py {prog}: {text}", file=sys.stderr)


def _clean_leftovers(prog: str = "record", output: str | None = None) -> None:
    """Remove the tracefs instances of killed kshark-py processes (one line each) and list their spools (and
    the guest folders beside ``output``)."""
    try:
        tracefs = find_tracefs()
    except RecordError:
        return  # said by the recording itself
    if os.geteuid() == 0:
        for inst, why in leftovers.remove_stale_instances(tracefs):
            _say(f"removed {leftovers.instance_text(inst)}" if why is None else
                 f"left {leftovers.instance_text(inst)}: {why}", prog)
    for sp in leftovers.stale_spools():
        _say(leftovers.spool_text(sp), prog)
    if output is not None:
        from . import guestspool

        for g in guestspool.stale_folders(os.path.dirname(os.path.abspath(output))):
            _say(guestspool.stale_text(g), prog)


def _recover(args: RecordArgs) -> int:
    from . import guestspool

    if guestspool.is_guest_folder(args.recover or ""):
        try:
            g = guestspool.recover(args.recover or "", args.output if args.output_given else None)
        except (spool.SpoolError, spool.OutputError, WriterError) as e:
            _say(str(e))
            return EXIT_ERROR
        note = f"; {g.note}" if g.note else ""
        _say(f"wrote {g.path} (guest {g.name}): {g.pages:,} pages, {g.events:,} events, read back complete{note}; "
             f"removed {args.recover}")
        return 0
    try:
        r = spool.recover(args.recover or "", args.output if args.output_given else None,
                          version=args.version if "--file-version" in args.given else None,
                          compression=args.compression if "--compression" in args.given else False)
    except (spool.SpoolError, spool.OutputError, WriterError) as e:
        _say(str(e))
        return EXIT_ERROR
    torn = f"; {r.torn_bytes:,} bytes of torn last pages left out" if r.torn_bytes else ""
    _say(f"wrote {r.path}: {r.pages:,} pages, {r.events:,} events, read back complete{torn}; removed {args.recover}")
    return 0


def _say_kept_guests(session: HostSession) -> None:
    """One line per guest whose file a full disk stopped: where its data is and how to finish it."""
    for g in session.guests:
        if g.kept is not None:
            _say(f"guest {g.name}: {g.error}")


def _kept_text(session: HostSession) -> str:
    rec = session.recorder
    kept = rec.spool
    if kept is None or not rec.spool_kept:
        return "nothing was recorded"
    size = sum(r.stats.bytes for r in rec.readers)
    pages = sum(r.stats.pages for r in rec.readers)
    return (f"the recording ({pages:,} pages, {size / 1e6:,.1f} MB of raw data) is kept in {kept}: free space "
            f"and run: kshark-py record --recover {kept} (-o FILE: elsewhere)")


def cmd_record(ns: argparse.Namespace) -> int:
    """``kshark-py record`` (registered by :func:`.commands.register`)."""
    _log_setup()
    try:
        args = parse_record_args(list(ns.words))
    except ValueError as e:
        print(f"kshark-py record: {e}", file=sys.stderr)
        return 2
    if args.recover is not None:
        return _recover(args)
    _clean_leftovers(output=args.output)
    try:
        session = HostSession(args.output, args.specs, args.guests, buffer_kb=args.buffer_kb, clock=args.clock,
                              version=args.version, compression=args.compression,
                              tsync_interval=args.tsync_interval)
    except (RecordError, ValueError) as e:
        print(f"kshark-py record: {e}", file=sys.stderr)
        return 2
    failed = True
    try:
        try:
            session.start()
        except (RecordError, PeerError, OSError) as e:
            print(f"kshark-py record: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:  # Ctrl-C/SIGTERM while connecting: cleaned up by start(), nothing written
            print("kshark-py record: interrupted before recording started: nothing written", file=sys.stderr)
            return 130
        with _Signals() as sigs:
            rc = _wait(args, sigs)
        session.stop()
        counts = GuestCounts(session)
        counts.poll(None, wait=True)  # every guest page received: the events and losses in them
        files = session.write()
        failed = False
        rec = session.recorder
        if not session.record_host:
            print(f"host: not traced (no -e before -A, as trace-cmd): {args.output} not written", file=sys.stderr)
        for cpu, (r, lost) in enumerate(zip(rec.readers, rec.lost, strict=False)):
            print(f"CPU{cpu}: {r.stats.bytes:,} bytes, {lost:,} events lost", file=sys.stderr)
        for g in session.guests:
            got = sum(r.bytes for r in g.receivers)
            status = f" ({g.error})" if g.error else ""
            print(f"guest {g.name}: {g.metadata_bytes} metadata bytes, {got} data bytes{status}", file=sys.stderr)
            if g.tsync is not None:
                offs = [o for s in g.tsync.samples for o in s.offsets]
                print(f"guest {g.name}: {g.tsync.proto} time sync, {g.tsync.rounds} rounds, offsets (ns or clock "
                      f"units) {offs}" + (f" ({g.tsync.error})" if g.tsync.error else ""), file=sys.stderr)
        for line in total_lines(stream_totals(progress(session, counts))):  # as the capture panel's totals
            print(line, file=sys.stderr)
        print("wrote " + " ".join(str(f) for f in files), file=sys.stderr)
        for name in session.unfinished_guests:
            _say(f"guest {name}: its file was received but could not be completed (see above): its data is lost")
        _say_kept_guests(session)
        lost = loss_lines(rec) if session.record_host else []
        if lost:
            events = sum(c.kernel_events + c.unsaved_events for c in rec.losses())
            _say(f"data lost: {events:,} events on {len(lost)} CPU(s); {files[0]} holds the rest")
            for line in lost:
                _say(line)
            return EXIT_LOST
        if session.unfinished_guests:
            return EXIT_LOST
        if session.kept_guests:
            return EXIT_ERROR
        return 0 if rc == 0 else rc
    except spool.OutputError as e:
        _say(f"{e}; {_kept_text(session)}")
        _say_kept_guests(session)
        return EXIT_ERROR
    except (WriterError, RecordError, OSError) as e:
        _say(f"{e}; {_kept_text(session)}")
        _say_kept_guests(session)
        return EXIT_ERROR
    except KeyboardInterrupt:
        _say(f"interrupted while writing; {_kept_text(session)}")
        return 130
    finally:
        kept = session.close()
        if kept is not None and not failed:
            _say(f"the raw pages stay in {kept}: kshark-py record --recover {kept}")


def cmd_agent(ns: argparse.Namespace) -> int:
    """``kshark-py agent`` (registered by :func:`.commands.register`)."""
    from .agent import Agent
    from .gate import HOST_CID

    _log_setup()
    family = "tcp" if ns.N else "vsock"
    port = ns.p if ns.p is not None else VSOCK_DEFAULT_PORT
    try:
        check_port(family, port, listening=True)
        if ns.listen is not None and not ns.N:
            raise ValueError("--listen needs -N HOST (a TCP agent accepts only its host)")
        if ns.allow_cid and ns.N:
            raise ValueError("--allow-cid is for a vsock agent (without -N)")
    except ValueError as e:
        print(f"kshark-py agent: {e}", file=sys.stderr)
        return 2
    _clean_leftovers("agent")  # a killed agent's instance would go on recording in this guest (after the
    # options are checked: a bad one is one line, not a line after the leftovers' notes)
    try:
        agent = Agent(family=family, port=port, allowed_host=ns.N, listen_addr=ns.listen,
                      allowed_cids=[HOST_CID, *ns.allow_cid] if ns.allow_cid else None, once=ns.once)
        agent.bind()
    except OSError as e:
        print(f"kshark-py agent: cannot listen on {family} port {port}: {e.strerror or e}", file=sys.stderr)
        return 2
    where = f"vsock port {agent.port}" if family == "vsock" and not ns.allow_cid else agent.describe()
    print(f"kshark-py agent: listening on {where}", file=sys.stderr, flush=True)
    try:
        agent.serve()
    except KeyboardInterrupt:
        pass
    return 0
