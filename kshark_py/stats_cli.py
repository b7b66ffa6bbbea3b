"""``kshark-py stats``: the analyses of :mod:`kshark_py.model.analysis` as a table, CSV or JSON.

One table per run, chosen by one flag: ``--wakeups`` (scheduling latency per task), ``--latency
START:END[:FIELD=FIELD]...`` (KernelShark's latency plot, per stream and match key), ``--exits``
(VM exits per VCPU and reason), ``--vcpus`` (where each VCPU's time went).  Every time is an
integer number of ns on the host clock (guests synchronized by TIME_SHIFT, or moved with
``--time-offset``).  The files are opened as ``vcpus`` and ``report`` open them: losses are
printed first, ``--strict`` stops on them, warnings go to stderr.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence

from .argtypes import whole_number
from .cliutil import (
    PROG,
    UsageError,
    add_strict_option,
    add_vcpu_map_options,
    check_inputs,
    parse_time_offsets,
    show_losses,
    user_vcpu_map,
)

WAKEUP_COLUMNS = ["stream", "pid", "comm", "count", "total_ns", "p50_ns", "p99_ns", "max_ns", "max_at_ns",
                  "across_loss"]
EXIT_COLUMNS = ["guest", "vcpu", "host_pid", "reason", "count", "total_ns", "p50_ns", "p99_ns", "max_ns"]
VCPU_COLUMNS = ["guest", "vcpu", "host_pid", "state", "total_ns"]


def parse_range(text: str) -> tuple[int | None, int | None]:
    """``A:B`` (host ns, either side may be empty: open) -> (t0, t1); UsageError when malformed or A > B."""
    a, sep, b = text.partition(":")
    if not sep:
        raise UsageError(f"--range takes A:B in ns on the host clock (A or B may be empty), not {text!r}")
    out = []
    for side in (a, b):
        if side.strip() == "":
            out.append(None)
            continue
        try:
            out.append(whole_number(side.strip(), 0, (1 << 63) - 1))
        except ValueError as e:
            raise UsageError(f"--range {text!r}: {e} (ns on the host clock)") from None
    if out[0] is not None and out[1] is not None and out[0] > out[1]:
        raise UsageError(f"--range {text!r}: the start is after the end")
    return out[0], out[1]


def parse_latency_spec(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    """``START:END[:FIELD=FIELD]...`` -> (event name words, match pairs).

    Events may be ``event`` or ``system:event``, so the words before the first ``FIELD=FIELD`` are
    2, 3 or 4; :func:`resolve_events` decides a 3-word spec by the events the files have.
    """
    words = text.split(":")
    names: list[str] = []
    match: list[tuple[str, str]] = []
    for w in words:
        if "=" in w:
            for item in w.split(","):
                s, _, e = item.partition("=")
                if not s.strip() or not e.strip():
                    raise UsageError(f"--latency {text!r}: a match is START_FIELD=END_FIELD, not {item!r}")
                match.append((s.strip(), e.strip()))
        elif match:
            raise UsageError(f"--latency {text!r}: event names come before the FIELD=FIELD matches")
        else:
            names.append(w.strip())
    if not 2 <= len(names) <= 4 or any(not n for n in names):
        raise UsageError(f"--latency takes START:END[:FIELD=FIELD]... (events as name or system:name), not {text!r}")
    return names, match


def resolve_events(session, names: list[str], text: str) -> tuple[str, str]:
    """The (start, end) event names of a parsed ``--latency`` spec."""
    from .model.analysis.latency import find_event

    if len(names) == 2:
        cands = [(names[0], names[1])]
    elif len(names) == 4:
        cands = [(f"{names[0]}:{names[1]}", f"{names[2]}:{names[3]}")]
    else:
        cands = [(f"{names[0]}:{names[1]}", names[2]), (names[0], f"{names[1]}:{names[2]}")]
    for s, e in cands:
        if find_event(session, s) and find_event(session, e):
            return s, e
    s, e = cands[0]
    missing = s if not find_event(session, s) else e
    raise UsageError(f"--latency {text!r}: no loaded file has the event {missing!r}")


def load_inputs(args: argparse.Namespace, example: str, prepare=None):
    """(session, user VCPU map) of ``-i`` files, ``--vcpu-map``/``--vcpu-threads``, ``--time-offset``
    and ``--strict`` (see :func:`add_input_options`); (None, map) when ``--strict`` stops on a loss.

    One loader for ``stats`` and ``sql``: losses printed first, the same one-line errors.
    ``example`` completes the message for missing files; ``prepare(files)`` runs after the files
    are opened and before their events are decoded (to set ``hot_fields``)."""
    from .loaders.tracedat import open_trace
    from .model.session import Session

    if not args.input:
        raise UsageError(f"{args.command} needs the trace files: {PROG} {args.command} -i HOST.dat "
                         f"[-i GUEST.dat]... {example}")
    check_inputs(args.input)
    user = user_vcpu_map(args.vcpu_map, args.vcpu_threads)
    offsets = parse_time_offsets(args.time_offset)
    files = [open_trace(p) for p in args.input]
    if prepare is not None:
        prepare(files)
    if show_losses(files, args.strict):
        return None, user
    session = Session.from_files(files)
    for key, ns in offsets.items():
        try:
            session.set_time_offset(key, ns)
        except ValueError as e:
            raise UsageError(f"--time-offset: {e}") from None
    return session, user


def _load(args: argparse.Namespace):
    session, user = load_inputs(args, "--wakeups")
    if session is not None and not any(len(st.buffer.events) for st in session.streams):
        raise UsageError(f"{', '.join(args.input)}: no events")
    return session, user


def _table_for(args: argparse.Namespace, session, user, t0, t1):
    from .model.analysis.latency import LatencyError, find_event, latency_pairs, latency_stats
    from .model.analysis.wakeups import wakeup_stats, wakeups

    if args.wakeups:
        if not _has_wakeup_events(session):
            raise UsageError("--wakeups: no stream has sched_switch with sched_waking or sched_wakeup events "
                             "(with numeric pid fields)")
        return wakeup_stats(wakeups(session, t0=t0, t1=t1)).select(WAKEUP_COLUMNS)
    if args.latency is not None:
        names, match = parse_latency_spec(args.latency)
        start, end = resolve_events(session, names, args.latency)
        for name in (start, end):
            if not any(len(session.streams[si].buffer.rows_of(ev.id)) for si, ev in find_event(session, name).items()):
                raise UsageError(f"--latency: the input has no {name!r} events (the event is known, none was recorded)")
        try:
            pairs = latency_pairs(session, start, end, match, t0=t0, t1=t1)
        except LatencyError as e:
            raise UsageError(f"--latency: {e}") from None
        return latency_stats(pairs)
    if args.explain is not None:
        return _explain(args.explain, session, user, t0, t1)
    if args.exits:
        from .model.analysis.exits import exit_stats

        return exit_stats(session, t0=t0, t1=t1, vcpu_map=user or None).select(EXIT_COLUMNS)
    from .model.analysis.vcputime import vcpu_time

    return vcpu_time(session, t0=t0, t1=t1, vcpu_map=user or None).select(VCPU_COLUMNS)


def parse_explain(text: str) -> tuple[str, int]:
    """``GUEST:PID`` -> (guest, pid); the guest name may itself hold colons (the pid is after the last)."""
    guest, sep, pid = text.rpartition(":")
    if not sep or not guest or not pid.isdigit():
        raise UsageError(f"--explain {text!r}: expected GUEST:PID (a guest's name and a task's pid)")
    return guest, int(pid)


def _explain(text: str, session, user, t0, t1):
    """Item 6's split of a guest task's wall time over [t0, t1] (default: the guest stream's first to
    last record), largest first."""
    import numpy as np

    from .model.analysis.crosslayer import cross_layer

    guest, pid = parse_explain(text)
    si = next((st.index for st in session.streams if st.guest is not None and st.buffer.name == ""
               and st.guest.name == guest), None)
    if si is None:
        names = ", ".join(sorted({st.guest.name for st in session.streams if st.guest is not None})) or "none"
        raise UsageError(f"--explain: no guest named {guest!r} is loaded (guests: {names})")
    m = session.merged()
    ts = m.ts[np.asarray(m.stream) == si]
    if not len(ts):
        raise UsageError(f"--explain: guest {guest!r} has no events")
    a = int(ts.min()) if t0 is None else t0
    b = int(ts.max()) if t1 is None else t1
    if b <= a:
        raise UsageError(f"--explain: empty range {a}:{b}")
    return cross_layer(session, guest, pid, a, b, vcpu_map=user or None)


def _has_wakeup_events(session) -> bool:
    """Some stream has sched_switch and waking records whose pid fields are numbers (a damaged format
    can declare them as chars: :func:`.model.analysis.wakeups.wakeups` then skips the stream)."""
    def usable(st, name: str, field: str) -> bool:
        ev = st.trace.formats.find(name, "sched")
        f = ev.field(field) if ev is not None else None
        return f is not None and not f.is_array and f.dynamic is None and len(st.buffer.rows_of(ev.id)) > 0

    for st in session.streams:
        ev = st.trace.formats.find("sched_waking", "sched")
        waking = "sched_waking" if ev is not None and len(st.buffer.rows_of(ev.id)) else None
        wakers = [waking] if waking else ["sched_wakeup", "sched_wakeup_new"]
        if usable(st, "sched_switch", "next_pid") and any(usable(st, n, "pid") for n in wakers):
            return True
    return False


def _text(v) -> str:
    return "" if v is None else str(v)


def write_table(table, fmt: str, out) -> None:
    """``table`` (pyarrow) as an aligned text table, CSV with a header row, or a JSON array of objects."""
    names = table.column_names
    rows = table.to_pylist()
    if fmt == "json":
        json.dump(rows, out, indent=1)
        out.write("\n")
    elif fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(names)
        for r in rows:
            w.writerow([_text(r[n]) for n in names])
    else:
        cells = [[_text(r[n]) for n in names] for r in rows]
        widths = [max([len(n), *(len(c[i]) for c in cells)]) for i, n in enumerate(names)]
        numeric = [not table.schema.field(n).type.equals("string") for n in names]

        def line(cs: Sequence[str]) -> str:
            return "  ".join(c.rjust(w) if num else c.ljust(w)
                             for c, w, num in zip(cs, widths, numeric, strict=True)).rstrip()
        out.write(line(names) + "\n")
        for c in cells:
            out.write(line(c) + "\n")


def cmd_stats(args: argparse.Namespace) -> int:
    t0, t1 = parse_range(args.range) if args.range is not None else (None, None)
    if args.latency is not None:
        parse_latency_spec(args.latency)  # a malformed spec fails before the files are read
    if args.explain is not None:
        parse_explain(args.explain)
    session, user = _load(args)
    if session is None:
        return 2
    table = _table_for(args, session, user, t0, t1)
    for w in session.warnings:
        print(f"{PROG}: warning: {w}", file=sys.stderr)
    write_table(table, args.format, sys.stdout)
    return 0


def register(sub) -> None:
    """Add ``stats`` to the ``kshark-py`` subparsers (called by :func:`kshark_py.cli.build_parser`)."""
    s = sub.add_parser(
        "stats", usage=f"{PROG} stats -i HOST [-i GUEST]... (--wakeups | --exits | --vcpus | "
                       "--latency START:END[:FIELD=FIELD] | --explain GUEST:PID) [--range A:B] "
                       "[--format table|csv|json]",
        help="latency, VM exit and VCPU time tables",
        description="Prints one analysis as a table, CSV (with a header row) or JSON. Times are integer ns on "
                    "the host clock.")
    s.add_argument("-i", dest="input", action="append", metavar="FILE",
                   help="host file, then guest files (bare FILE arguments are the same)")
    what = s.add_mutually_exclusive_group(required=True)
    what.add_argument("--wakeups", action="store_true",
                      help="scheduling latency per task: sched_waking (or sched_wakeup) to the switch in")
    what.add_argument("--exits", action="store_true", help="VM exits per VCPU and reason (kvm_exit -> kvm_entry)")
    what.add_argument("--vcpus", action="store_true", help="where each VCPU's time went: guest, exit, halted, "
                                                            "preempted, unknown")
    what.add_argument("--explain", metavar="GUEST:PID",
                      help="where a guest task's wall time went across the VM boundary (running with its VCPU in "
                           "guest, exit by reason, VCPU thread preempted on the host by whom, runnable, blocked and "
                           "who woke it), over --range or the guest's whole trace")
    what.add_argument("--latency", metavar="START:END[:FIELD=FIELD]",
                      help="latency from each START event to the next END event with equal fields, e.g. "
                           "irq_handler_entry:irq_handler_exit:irq=irq (events as name or system:name)")
    s.add_argument("--range", metavar="A:B", help="only what lies wholly inside [A, B] (ns on the host clock; "
                                                 "either side may be empty)")
    s.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format (default table)")
    add_input_options(s)
    s.set_defaults(func=cmd_stats)


def add_input_options(s: argparse.ArgumentParser) -> None:
    """``--vcpu-map``, ``--vcpu-threads``, ``--time-offset``, ``--strict``: what :func:`load_inputs` reads."""
    add_vcpu_map_options(s)
    s.add_argument("--time-offset", action="append", metavar="STREAM=NS",
                   help="shift a stream's timestamps by NS nanoseconds (for a guest without time sync)")
    add_strict_option(s)
