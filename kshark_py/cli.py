"""The ``kshark-py`` command: subcommands over the library; errors become one line and exit 2.

One parser: the app's options at the top, one subparser per command. Before argparse sees the
words, :func:`arrange` moves the command to the front wherever it stands (``kshark-py -i x.dat
report`` = ``kshark-py report -i x.dat``: options before a command apply to it) and turns bare file
names into ``-i FILE`` in their place (``kshark-py trace.dat``, ``kshark-py report trace.dat`` as
``trace-cmd report trace.dat``), so the host-then-guests order is the order typed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from .argtypes import arg_type, whole_number
from .cliutil import (
    PROG,
    UsageError,
    add_cache_option,
    add_strict_option,
    add_vcpu_map_options,
    apply_cache_option,
    check_inputs,
    check_output,
    end_without_teardown,
    parse_time_offsets,
    show_losses,
    teardown_skipped,
    user_vcpu_map,
)
from .loaders.errors import TraceDatError
from .loaders.memory import return_memory_promptly
from .model.errors import UserInputError

FILE_COMMANDS = ("report", "vcpus", "export", "stats")
LOADING_COMMANDS = ("report", "vcpus", "export", "stats", "sql")
"""Commands that decode trace files (and so read the load cache; ``--no-cache`` turns it off)."""
"""Commands whose bare words are input files (``record`` runs its bare words; ``agent`` takes none)."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and no abbreviated long options.

    One line: every other error of the command is one line (README "Errors"), not argparse's usage
    block. No abbreviations: :func:`arrange` must know which words are option values, and
    ``--sess F`` would hide that ``F`` belongs to ``--session``.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.commands: dict[str, argparse.ArgumentParser] = {}

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} -h)\n")


# --- --cpu: trace-cmd's CPU list, kept as ranges -------------------------------------------------

_BLANK = " \t\n\v\f\r"  # C isspace()
_HUGE = 1 << 62  # a CPU number this large is past every file's CPUs; ranges are clipped anyway


def parse_cpu_list(text: str) -> list[tuple[int, int]]:
    """``--cpu`` text -> inclusive ``(first, last)`` ranges, with trace-cmd 3.1.6's syntax and meaning.

    As its ``parse_cpulist()``: numbers or ``A-B`` ranges, separated by ``,`` or ``:`` (or only blanks),
    blanks allowed before each number; ``1-`` / ``-1`` / ``a`` / ``0x1`` / a trailing blank are errors and
    so is ``5-2``. Why ranges and not a list: ``0-999999999999`` is valid and means "every CPU"
    (trace-cmd allocates the whole list and crashes; expanding it here was a MemoryError); the
    caller clips the ranges to the CPUs the files have (:func:`cpus_in`).
    """
    n = len(text)

    def number(i: int) -> tuple[int, int]:
        while i < n and text[i] in _BLANK:
            i += 1
        if i >= n:
            raise UsageError(f"--cpu {text!r}: a CPU number is missing at the end")
        j = i
        while j < n and "0" <= text[j] <= "9":
            j += 1
        if j == i:
            raise UsageError(f"--cpu {text!r}: invalid character {text[i]!r} where a CPU number is expected "
                             "(give CPUs as 0,2-3)")
        digits = text[i:j].lstrip("0")
        return (_HUGE if len(digits) > 18 else int(digits or "0")), j

    out: list[tuple[int, int]] = []
    i = 0
    while True:
        first, i = number(i)
        last = first
        if i < n and text[i] == "-":
            last, i = number(i + 1)
        if last < first:
            raise UsageError(f"--cpu {text!r}: the range {first}-{last} goes down (lower CPU first)")
        out.append((first, last))
        if i < n and text[i] in ",:":
            i += 1
        if i >= n:
            return out


def cpus_in(ranges: Sequence[tuple[int, int]], ncpu: int) -> list[int]:
    """The CPUs below ``ncpu`` that ``ranges`` select, sorted; never more than ``ncpu`` numbers."""
    keep: set[int] = set()
    for first, last in ranges:
        keep.update(range(first, min(last, ncpu - 1) + 1))
    return sorted(keep)


def cpu_slots(files: Sequence) -> int:
    """How many ``--cpu`` numbers the files have: trace-cmd counts every buffer's CPUs in turn
    (see :func:`kshark_py.report.report`), so a host + guest pair of 2 + 1 CPUs has 0-2."""
    return sum(b.cpu_count for tf in files for b in tf.buffers)


# --- inputs and user maps --------------------------------------------------------------------------


def check_streams(paths: Sequence[str], offsets: dict[str | int, int]) -> None:
    """Every ``--time-offset`` stream exists in ``paths``, checked before the app starts.

    Why here: the app loads in a worker and a wrong name would only fail there. Opening the files
    reads their headers and metadata only; the events are decoded later, by the app.
    """
    from .loaders.tracedat import open_trace
    from .model.session import Session

    session = Session.from_files([open_trace(p) for p in paths])
    for key in offsets:
        try:
            session.stream_index(key)
        except ValueError as e:
            raise UsageError(f"--time-offset: {e}") from None


# --- data loss -------------------------------------------------------------------------------------


# --- commands --------------------------------------------------------------------------------------


def _cmd_report(args: argparse.Namespace) -> int:
    from .loaders.tracedat import open_trace
    from .report import report, write_lines

    ranges = [r for spec in args.cpu for r in parse_cpu_list(spec)] if args.cpu else None
    paths = args.input or ["trace.dat"]
    check_inputs(paths)
    files = [open_trace(p) for p in paths]
    if show_losses(files, args.strict):
        return 2
    cpus = None
    if ranges is not None:
        ncpu = cpu_slots(files)
        cpus = cpus_in(ranges, ncpu)
        if not cpus:  # trace-cmd prints only the "cpus=N" lines then; say why
            print(f"{PROG}: warning: --cpu {' '.join(args.cpu)} selects none of the input's CPUs 0-{ncpu - 1}"
                  + (" (counted across files and instances, as trace-cmd does)"
                                     if ncpu > max(tf.cpus or 0 for tf in files) else ""), file=sys.stderr)
    sys.stdout.flush()  # the report goes to the byte stream beneath: comms are bytes, not UTF-8
    write_lines(report(files, nsec=args.t, raw=args.R, cpus=cpus), sys.stdout.buffer)
    return 0


def _cmd_gui(args: argparse.Namespace) -> int:
    paths = args.input or []
    check_inputs(paths)
    if args.screenshot:
        check_output(args.screenshot)
    user = user_vcpu_map(args.vcpu_map, args.vcpu_threads)
    offsets = parse_time_offsets(args.time_offset)
    if offsets and paths:
        check_streams(paths, offsets)
    from .ui.app import run  # Qt only once the arguments are known to be good

    return run(paths, args.session, user, args.screenshot, time_offsets=offsets)


def _cmd_vcpus(args: argparse.Namespace) -> int:
    from .loaders.tracedat import open_trace
    from .model.session import Session
    from .model.timesync import sync_samples
    from .model.vcpus import build_vcpu_map, vcpu_summary

    if not args.input:
        raise UsageError(f"vcpus needs the trace files: {PROG} vcpus HOST.dat GUEST.dat...")
    check_inputs(args.input)
    user = user_vcpu_map(args.vcpu_map, args.vcpu_threads)
    files = [open_trace(p) for p in args.input]
    if show_losses(files, args.strict):
        return 2
    session = Session.from_files(files)
    mappings = build_vcpu_map(session, user)
    t = vcpu_summary(session, mappings, args.tolerance_us * 1000)
    head = ["guest", "vcpu", "host pid", "host comm", "source", "guest events", "in guest (s)", "basis",
            "causality (outside/judged)"]
    rows = [[r["guest"], str(r["vcpu"]), str(r["host_pid"]) if r["host_pid"] >= 0 else "?", r["host_comm"],
             r["source"], str(r["guest_events"]), f"{r['in_guest_ns'] / 1e9:.6f}", r["in_guest_basis"],
             f"{r['outside']}/{r['judged']}" if r["judged"] else "-"] for r in t.to_pylist()]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip())
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    for g in session.guests:
        samples = sync_samples(g.trace)
        state = "on the host clock" if g.synced else "NOT synchronized (own clock)"
        print(f"\n{g.name}: {state}; {samples.num_rows} TIME_SHIFT samples")
        for s in samples.to_pylist():
            drift = "" if s["drift_ppm"] != s["drift_ppm"] else f"  drift {s['drift_ppm']:+.1f} ppm"
            print(f"  vcpu {s['vcpu']}  guest {s['guest_time']}  host {s['host_time'] / 1e9:.9f}  "
                  f"offset {s['offset']}  scaling {s['scaling']}>>{s['fraction']}{drift}")
    for w in session.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return 0


def _cmd_record(args: argparse.Namespace) -> int:
    from .capture.cli import cmd_record  # the recorder, only when it runs

    return cmd_record(args)


def _cmd_agent(args: argparse.Namespace) -> int:
    from .capture.cli import cmd_agent

    return cmd_agent(args)


# --- the parser ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """``kshark-py``: the app's options, then one subparser per command (listed by ``-h``)."""
    p = _Parser(prog=PROG, usage=f"{PROG} [-i FILE]... [FILE]... [options]   (the desktop app)\n"
                                 f"       {PROG} COMMAND [options]",
                description="Host + guest kernel trace viewer. With no files it opens the bundled demo. "
                            "Options given before COMMAND apply to it.")
    p.add_argument("-i", dest="input", action="append", metavar="FILE",
                   help="trace file (repeat: host, then guests; bare FILE arguments are the same)")
    p.add_argument("--session", metavar="S.json", help="restore a session JSON (kshark-py's or KernelShark's)")
    add_vcpu_map_options(p)
    p.add_argument("--time-offset", action="append", metavar="STREAM=NS",
                   help="shift a stream's timestamps by NS nanoseconds (STREAM: its name or index; repeatable)")
    p.add_argument("--screenshot", metavar="OUT.png", help="render the main window to a PNG and exit")
    p.set_defaults(func=_cmd_gui)
    sub = p.add_subparsers(dest="command", title="commands", metavar="COMMAND", prog=PROG,
                           description=f"{PROG} COMMAND -h shows a command's options")
    r = sub.add_parser("report", usage=f"{PROG} report [FILE]... [-i FILE]... [-t] [-R] [--cpu LIST]... [--strict]",
                       help="print events as trace-cmd report does, line for line",
                       description="Prints what trace-cmd report prints for the same arguments.")
    r.add_argument("-i", dest="input", action="append", metavar="FILE",
                   help="input file (repeat for host + guests; bare FILE arguments are the same; "
                        "default trace.dat)")
    r.add_argument("-t", action="store_true", help="print timestamps in nanoseconds")
    r.add_argument("-R", action="store_true", help="raw format: print every field")
    add_strict_option(r)
    r.add_argument("--cpu", action="append", metavar="LIST",
                   help="only these CPUs: numbers and ranges such as 0,2-3 (as trace-cmd, repeatable; with "
                        "several files or instances the numbers go on: host 0-1, then the guest's 2, ...)")
    r.set_defaults(func=_cmd_report)
    v = sub.add_parser("vcpus", usage=f"{PROG} vcpus HOST.dat GUEST.dat... [--vcpu-map G:V=PID,...] "
                                      "[--vcpu-threads GUEST=FILE.json] [--tolerance-us US] [--strict]",
                       help="guest VCPU -> host thread, time in guest, sync quality",
                       description="Each guest VCPU's host thread and where that came from, events, time in "
                                   "guest, the causality check of the time sync, and the TIME_SHIFT samples.")
    v.add_argument("-i", dest="input", action="append", metavar="FILE",
                   help="host file, then guest files (bare FILE arguments are the same)")
    add_vcpu_map_options(v)
    v.add_argument("--tolerance-us", type=arg_type(whole_number, 0, 10**9), default=50, metavar="US",
                   help="causality check tolerance (default 50 us)")
    add_strict_option(v)
    v.set_defaults(func=_cmd_vcpus)
    from .export_cli import register as register_export

    register_export(sub)
    from .stats_cli import register as register_stats

    register_stats(sub)
    from .sql_cli import register as register_sql

    register_sql(sub)
    from .capture.commands import register as register_capture  # record, agent (not the recorder)

    register_capture(sub, _cmd_record, _cmd_agent)
    from .cache_cli import register as register_cache

    register_cache(sub)
    for parser in (p, *(sub.choices[name] for name in LOADING_COMMANDS)):
        add_cache_option(parser)
    p.commands = dict(sub.choices)
    return p


def _value_options(parser: argparse.ArgumentParser) -> tuple[set[str], set[str]]:
    """(every option that takes a value, every command name), over the parser and its commands."""
    from .capture.commands import RECORD_VALUE_OPTIONS

    values: set[str] = set(RECORD_VALUE_OPTIONS)
    commands: set[str] = set()
    todo = [parser]
    while todo:
        p = todo.pop()
        for action in p._actions:  # argparse keeps no public list of its options
            if isinstance(action, argparse._SubParsersAction):
                commands.update(action.choices)
                todo.extend(action.choices.values())
            elif action.option_strings and action.nargs != 0:
                values.update(action.option_strings)
    return values, commands


def arrange(argv: Sequence[str], value_options: set[str], commands: set[str]) -> list[str]:
    """The words in the order argparse needs: the command first, bare file names as ``-i FILE``.

    The command is the first word that is neither an option nor an option's value; the words before it
    follow it (they apply to it). Words after ``--`` are file names. ``record`` and ``agent`` get their
    words unchanged (``record``'s bare words are the command it runs).
    """
    words = list(argv)
    command = None
    i = 0
    while i < len(words):
        w = words[i]
        if w == "--":
            break
        if w in value_options:
            i += 2
            continue
        if not w.startswith("-") and w in commands:
            command = w
            del words[i]
            break
        i += 1
    if command is not None and command not in FILE_COMMANDS:
        return [command, *words]
    out: list[str] = [] if command is None else [command]
    i = 0
    files_only = False
    while i < len(words):
        w = words[i]
        if files_only or not w.startswith("-") or w == "-":
            out.extend([f"-i{w}"] if w.startswith("-") else ["-i", w])  # "-i-x.dat": a file named -x.dat
        elif w == "--":
            files_only = True
        elif w in value_options:
            out.extend(words[i:i + 2])
            i += 1
        else:
            out.append(w)
        i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    end_without_teardown(False)
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(arrange(argv, *_value_options(parser)))
        if extra:  # name the command whose options these are not (argparse names the top level)
            (parser.commands.get(args.command) or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as e:  # -h, or a usage error already printed as one line
        return e.code if isinstance(e.code, int) else 2
    apply_cache_option(args)
    early = getattr(args, "early", None)
    if early is not None:  # a command's head start, before the imports below (export: the kernels)
        early(args)
    # big temporaries go back to the kernel when freed (see there); after parsing: it imports
    # pyarrow, which -h and a usage error do not need
    return_memory_promptly()
    try:
        return args.func(args)
    except TraceDatError as e:
        print(f"{PROG}: {e.one_line()}", file=sys.stderr)
        return 2
    except UserInputError as e:  # bad user input (UsageError, a VCPU map, a session file...): one line
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:  # Ctrl-C in report/export/vcpus: no traceback
        return 130
    except OSError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2


def run() -> NoReturn:
    """The ``kshark-py`` console script: :func:`main`, then the process ends with its status; at
    once (``os._exit``) when the command asked to skip the interpreter's teardown
    (:func:`~kshark_py.cliutil.end_without_teardown`), after flushing stdout, stderr and any load
    cache entry still being written."""
    code = main()
    if teardown_skipped():
        if "kshark_py.loaders.loadcache" in sys.modules:
            from .loaders import loadcache

            loadcache.flush()
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (BrokenPipeError, ValueError):  # a closed pipe: nothing more to say
            pass
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
