"""The ``kshark-py`` command: subcommands over the library; errors become one line and exit 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .loaders.errors import TraceDatError
from .loaders.memory import return_memory_promptly


def _cpu_list(text: str) -> list[int]:
    """``0,2-3`` -> [0, 2, 3] (trace-cmd's --cpu syntax)."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def _cmd_report(args: argparse.Namespace) -> int:
    from .loaders.tracedat import open_trace
    from .report import report

    files = [open_trace(p) for p in (args.input or ["trace.dat"])]
    cpus = None
    if args.cpu:
        cpus = [c for spec in args.cpu for c in _cpu_list(spec)]
    out = sys.stdout
    buf: list[str] = []
    for line in report(files, nsec=args.t, raw=args.R, cpus=cpus):
        buf.append(line)
        if len(buf) >= 4096:
            out.write("\n".join(buf) + "\n")
            buf.clear()
    if buf:
        out.write("\n".join(buf) + "\n")
    out.flush()
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import export_parquet
    from .loaders.tracedat import open_trace

    tf = open_trace(args.input)
    n = export_parquet(tf, args.output)
    print(f"{args.output}: {n} events", file=sys.stderr)
    return 0


def _vcpu_map(args: argparse.Namespace) -> dict[str, dict[int, int]]:
    from .model.vcpus import parse_vcpu_map_arg

    out: dict[str, dict[int, int]] = {}
    for spec in getattr(args, "vcpu_map", None) or []:
        for g, m in parse_vcpu_map_arg(spec).items():
            out.setdefault(g, {}).update(m)
    return out


def _cmd_gui(args: argparse.Namespace) -> int:
    from .ui.app import run

    return run(args.input or [], args.session, _vcpu_map(args), args.screenshot)


def gui_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kshark-py", description=(
        "Host + guest kernel trace viewer. With no arguments it opens the bundled demo. Subcommands: "
        + ", ".join(SUBCOMMANDS) + " (kshark-py SUBCOMMAND -h)."))
    p.add_argument("-i", dest="input", action="append", help="trace file (repeat: host then guests)")
    p.add_argument("--session", help="restore a session JSON")
    p.add_argument("--vcpu-map", action="append", help="GUEST:VCPU=PID,... host thread of each guest VCPU")
    p.add_argument("--screenshot", metavar="OUT.png", help="render the main window to a PNG and exit")
    p.set_defaults(func=_cmd_gui)
    return p


SUBCOMMANDS = ("report", "export", "vcpus", "record", "agent")


def _cmd_vcpus(args: argparse.Namespace) -> int:
    from .loaders.tracedat import open_trace
    from .model.session import Session
    from .model.timesync import sync_samples
    from .model.vcpus import build_vcpu_map, load_vcpu_threads_json, vcpu_summary

    files = [open_trace(p) for p in args.input]
    session = Session.from_files(files)
    user = _vcpu_map(args)
    for spec in args.vcpu_threads or []:
        guest, _, path = spec.partition("=")
        if not path:
            raise SystemExit("kshark-py: --vcpu-threads takes GUEST=FILE.json")
        user.setdefault(guest, {}).update(load_vcpu_threads_json(path))
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kshark-py", description="Host + guest kernel trace viewer")
    sub = p.add_subparsers(dest="command")
    v = sub.add_parser("vcpus", help="guest VCPU -> host thread map, time in guest, sync quality")
    v.add_argument("-i", dest="input", action="append", required=True, help="host file, then guest files")
    v.add_argument("--vcpu-map", action="append", help="GUEST:VCPU=PID,... (when the host did not record it)")
    v.add_argument("--vcpu-threads", action="append", metavar="GUEST=FILE.json",
                   help="a QMP query-cpus-fast dump giving each VCPU's thread id")
    v.add_argument("--tolerance-us", type=int, default=50, help="causality check tolerance (default 50 us)")
    v.set_defaults(func=_cmd_vcpus)
    r = sub.add_parser("report", help="print events like trace-cmd report")
    r.add_argument("-i", dest="input", action="append", help="input file (repeat for host + guests)")
    r.add_argument("-t", action="store_true", help="print timestamps in nanoseconds")
    r.add_argument("-R", action="store_true", help="raw format: print every field")
    r.add_argument("--cpu", action="append", help="only these CPUs (e.g. 0,2-3)")
    r.set_defaults(func=_cmd_report)
    e = sub.add_parser("export", help="write the events table to Parquet")
    e.add_argument("-i", dest="input", required=True)
    e.add_argument("-o", dest="output", required=True)
    e.set_defaults(func=_cmd_export)
    from .capture.cli import register as register_capture  # record, agent

    register_capture(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return_memory_promptly()  # big temporaries go back to the kernel when freed (see there)
    parser = build_parser() if argv and argv[0] in SUBCOMMANDS else gui_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except TraceDatError as e:
        print(f"kshark-py: {e.one_line()}", file=sys.stderr)
        return 2
    except ValueError as e:  # VcpuMapError, SessionFileError: bad user input, one line
        if type(e).__name__ not in ("VcpuMapError", "SessionFileError"):
            raise
        print(f"kshark-py: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except OSError as e:
        print(f"kshark-py: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
