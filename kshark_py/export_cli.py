"""``kshark-py export``: one file's events to one Parquet file, a host + guests session to a
Hive-partitioned Parquet folder (many runs, one dataset), or to a Perfetto trace.

Which one is decided by ``--format`` and ``-o``: ``--format perfetto`` writes a ``.pftrace``; else an
``-o`` ending in ``.parquet`` is the single file (one input, every buffer, as before) and any other
``-o`` is a folder (:mod:`kshark_py.export.hive`).  The inputs are opened as ``vcpus`` and ``stats``
open them: losses are printed first and ``--strict`` stops on them; session warnings go to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable

from .cliutil import (
    PROG,
    UsageError,
    add_strict_option,
    add_vcpu_map_options,
    check_inputs,
    check_output,
    end_without_teardown,
    show_losses,
    user_vcpu_map,
)

USAGE = (f"{PROG} export FILE -o OUT.parquet | {PROG} export -i HOST [-i GUEST]... -o DIR [--run-id ID] | "
         f"{PROG} export -i HOST [-i GUEST]... --format perfetto -o OUT.pftrace  [--strict]")


def _check_dir(path: str) -> None:
    """A folder that exists or can be made (its parent is a folder); not a file."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"{path}: exists and is not a directory (a single file must end in .parquet)")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"{path}: cannot write: {parent} is not a directory")


def _run_id_ok(run_id: str) -> bool:
    from .export.hive import RUN_ID_RE  # the folder export's module: not for the one-file form

    return RUN_ID_RE.fullmatch(run_id) is not None


def _open(paths: list[str], strict: bool, extra_fields: bool, after_first_block: Callable[[], None] | None = None):
    """Open the files, fields read while decoding; None when --strict stops on a loss.

    ``after_first_block``: called (once) when the first block is decoded, from the decoding thread."""
    from .export import prepare
    from .loaders.tracedat import open_trace

    extra = None
    if extra_fields:
        from .model.session import HOT_FIELDS as extra
    files = [prepare(open_trace(p), extra) for p in paths]
    if after_first_block is not None:
        once = [after_first_block]

        def progress(_nbytes: int) -> None:
            if once:
                once.pop()()

        for tf in files:
            tf.progress = progress
    return None if show_losses(files, strict) else files


KERNEL_WAIT_S = 1.0
"""How long a one-file export waits for the compiled kernels before decoding a block with numpy
(:func:`~kshark_py.loaders.pages.waiting_for_kernels`): loading them from numba's cache takes
~0.2 s; only the first run on a machine compiles them (seconds), and then numpy goes on."""


def _single(args: argparse.Namespace) -> bool:
    """Whether the export is the one-file form (``-o OUT.parquet``)."""
    return args.format == "parquet" and args.output.endswith(".parquet")


def start_early(args: argparse.Namespace) -> None:
    """Before anything is imported: start loading the compiled kernels for the one-file export's
    input (:mod:`~kshark_py.loaders.earlywarm`, which decides from the file's size and header)."""
    if _single(args) and args.input and len(args.input) == 1:
        from .loaders.earlywarm import warm_up_early

        warm_up_early(args.input[0])


def _import_writer() -> None:
    """What the one-file export needs only after the decode (Parquet's writer, Arrow's compute
    functions: ~0.05 s of imports, nearly all on the GIL), imported by a thread of its own while the
    decode runs: started after the first block, when this thread's Python work (imports, the file's
    metadata) is done and the decode's threads hold no GIL (zstd and the kernels)."""
    def imports() -> None:
        import pyarrow.compute  # noqa: F401
        import pyarrow.parquet  # noqa: F401

    threading.Thread(target=imports, name="kshark-import-writer", daemon=True).start()


def cmd_export(args: argparse.Namespace) -> int:
    paths = args.input or []
    single = _single(args)
    if single and len(paths) != 1:
        raise UsageError(f"export to one .parquet file takes one input file, not {len(paths)}: {PROG} export FILE "
                         "-o OUT.parquet (host + guests: -o DIR, or --format perfetto)")
    if not paths:
        raise UsageError(f"export needs the trace files: {USAGE}")
    if args.run_id is not None and (single or args.format != "parquet"):
        raise UsageError("--run-id names a run in an export folder (-o DIR), not in a single file")
    check_inputs(paths)
    if args.run_id is not None and not _run_id_ok(args.run_id):
        raise UsageError(f"--run-id {args.run_id!r}: letters, digits, '.', '_' and '-' only (1-128, a letter or "
                         "digit first): it becomes a folder name")
    if single or args.format == "perfetto":
        check_output(args.output)
    else:
        _check_dir(args.output)
    user = user_vcpu_map(args.vcpu_map, args.vcpu_threads)
    if args.format == "perfetto":
        from .export.perfetto import protos

        protos()  # a missing package is refused before the files are decoded
    if single:  # nothing else to do while the kernels load: decode with them (see KERNEL_WAIT_S)
        from .loaders.pages import waiting_for_kernels

        with waiting_for_kernels(KERNEL_WAIT_S):
            files = _open(paths, args.strict, False, _import_writer)
    else:
        files = _open(paths, args.strict, True)
    if files is None:
        return 2
    if single:
        from .export import export_parquet

        n = export_parquet(files[0], args.output)
        print(f"{args.output}: {n} events", file=sys.stderr)
        end_without_teardown()  # the file is written and closed: nothing else to free or finish
        return 0
    from .model.session import Session

    session = Session.from_files(files)
    for w in session.warnings:
        print(f"{PROG}: warning: {w}", file=sys.stderr)
    if args.format == "perfetto":
        from .export.perfetto import export_perfetto

        n = export_perfetto(session, args.output, vcpu_map=user)
        print(f"{args.output}: {n} events", file=sys.stderr)
        return 0
    from .export.hive import default_run_id, export_hive

    run = args.run_id or default_run_id(session.host or files[0])
    counts = export_hive(session, args.output, run, vcpu_map=user)
    print(f"{args.output}: run={run}: " + ", ".join(f"{k} {v}" for k, v in counts.items()), file=sys.stderr)
    return 0


def register(sub) -> None:
    """Add ``export`` to the ``kshark-py`` subparsers (called by :func:`kshark_py.cli.build_parser`)."""
    e = sub.add_parser("export", usage=USAGE, help="events and tables to Parquet or Perfetto",
                       description="One file's events to OUT.parquet; host + guests (merged, guests on the host "
                                   "clock) to a Hive-partitioned folder DIR/events/run=ID/stream=NAME/, "
                                   "DIR/fields/event=NAME/run=ID/ and the derived tables; or to a Perfetto trace.")
    e.add_argument("-i", dest="input", action="append", metavar="FILE",
                   help="host file, then guest files (bare FILE arguments are the same)")
    e.add_argument("-o", dest="output", required=True, metavar="OUT",
                   help="OUT.parquet (one file's events), a folder, or OUT.pftrace with --format perfetto")
    e.add_argument("--format", choices=("parquet", "perfetto"), default="parquet",
                   help="parquet (default) or perfetto")
    e.add_argument("--run-id", metavar="ID", help="the run's partition value in a folder export (default: the host "
                                                  "file's trace id, so a re-export replaces the run)")
    add_vcpu_map_options(e)
    add_strict_option(e)
    e.set_defaults(func=cmd_export, early=start_early)
