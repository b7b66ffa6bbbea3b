"""What every ``kshark-py`` command shares: the program name, the one-line usage error, input and
output checks, the user's VCPU map and time offsets, the data-loss lines, and the help texts of the
options several commands take.

Why a module of its own: ``cli.py`` imports each command module to register it, and the command
modules (``stats_cli``, ``sql_cli``, ``export_cli``) need these helpers; kept in ``cli.py`` they
made an import cycle at the top floor.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from collections.abc import Sequence

from .argtypes import whole_number, writable_file
from .model.errors import UserInputError

PROG = "kshark-py"


class UsageError(UserInputError):
    """Bad command-line input: printed as ``kshark-py: ...`` on one line, exit status 2."""


_quick_exit = False


def end_without_teardown(yes: bool = True) -> None:
    """Ask the ``kshark-py`` command (:func:`kshark_py.cli.run`) to end the process as soon as this
    command returns, without the interpreter's teardown: freeing a 3 M-event table and every module
    is 0.03 s of a 0.5 s export.  Only for a command whose output files are all written and closed;
    :func:`kshark_py.cli.run` still flushes stdout, stderr and the load cache's writes.  ``main()``
    called in a process of its own (tests) never ends it; each ``main()`` starts with ``yes=False``."""
    global _quick_exit
    _quick_exit = yes


def teardown_skipped() -> bool:
    """Whether the command asked for :func:`end_without_teardown`."""
    return _quick_exit


def check_inputs(paths: Sequence[str]) -> None:
    """Refuse a missing file, a directory, a FIFO or a device before opening anything.

    Why here: the app loads in a worker and would only show a dialog over no window, and open() of a
    FIFO waits for a writer forever.
    """
    for p in paths:
        try:
            mode = os.stat(p).st_mode
        except OSError as e:
            raise UsageError(f"{p}: cannot open: {e.strerror or e}") from None
        if stat.S_ISDIR(mode):
            raise UsageError(f"{p}: cannot open: Is a directory")
        if not stat.S_ISREG(mode):
            kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
            raise UsageError(f"{p}: not a regular file ({kind}): give a trace.dat file")


def check_output(path: str) -> None:
    try:
        writable_file(path)
    except ValueError as e:
        raise UsageError(str(e)) from None


def user_vcpu_map(map_specs: Sequence[str] | None, thread_specs: Sequence[str] | None) -> dict[str, dict[int, int]]:
    """``--vcpu-map`` and ``--vcpu-threads`` merged into {guest: {vcpu: host thread}}.

    One function for the app and ``vcpus``, so both give a guest the same map. TCP guests always need
    one: the host's GUEST record carries pid -1 for them. A later item for the same VCPU wins.
    """
    out: dict[str, dict[int, int]] = {}
    if not map_specs and not thread_specs:
        return out  # without importing the VCPU model (and the session model beneath it)
    from .model.vcpus import load_vcpu_threads_json, parse_vcpu_map_arg

    for spec in map_specs or []:
        for g, m in parse_vcpu_map_arg(spec).items():
            out.setdefault(g, {}).update(m)
    for spec in thread_specs or []:
        guest, _, path = spec.partition("=")
        if not guest or not path:
            raise UsageError(f"--vcpu-threads takes GUEST=FILE.json (a QMP query-cpus-fast dump), not {spec!r}")
        out.setdefault(guest, {}).update(load_vcpu_threads_json(path))
    return out


def parse_time_offsets(specs: Sequence[str] | None) -> dict[str | int, int]:
    """``--time-offset STREAM=NS`` items -> {stream name, or index when all digits: nanoseconds}.

    ``NS`` is a whole number of nanoseconds, negative allowed (``guest=-2600000000000``); a later item
    for the same stream wins. The app checks that the streams exist once the files are loaded.
    """
    out: dict[str | int, int] = {}
    for spec in specs or []:
        stream, sep, ns = spec.rpartition("=")
        if not sep or not stream:
            raise UsageError(f"--time-offset takes STREAM=NS (a stream name or index, nanoseconds), not {spec!r}")
        try:
            value = whole_number(ns, -(1 << 63) + 1, (1 << 63) - 1)
        except ValueError as e:
            raise UsageError(f"--time-offset {spec!r}: {e} (nanoseconds)") from None
        out[int(stream) if stream.isascii() and stream.isdigit() else stream] = value
    return out


def show_losses(files: Sequence, strict: bool) -> bool:
    """Decode every buffer and print one line per :class:`~.loaders.errors.DataLoss` on stderr.

    Returns True when ``--strict`` must stop the command (exit 2) before it prints or writes
    anything. Why before: the lines are then the first thing a reader of the terminal sees, and a
    strict run leaves no partial output. The decoding is what the command does next anyway (it is
    cached). What trace-cmd 3.1.6 does with the same files: a v6 file cut inside its CPU data is
    refused ("File possibly truncated. Need at least N, but file size is M", exit 22, nothing
    reported); a v7 file cut inside its data prints nothing at all and exits 0.
    """
    from .loaders import loadcache

    entries = [loadcache.lookup(tf) for tf in files]  # a hit installs the decoded buffers
    lost = [x for tf in files for x in tf.decode_all()]
    for e in entries:
        if e is not None and not e.hit:
            loadcache.store(e)
    for x in lost:
        print(f"{PROG}: {x.one_line()}", file=sys.stderr)
    return strict and bool(lost)


STRICT_HELP = "exit with status 2 if any data of the input is lost (a cut or damaged file) instead of using the rest"


VCPU_MAP_HELP = "GUEST:VCPU=PID,... the host thread of each guest VCPU"


VCPU_THREADS_HELP = ("a QMP query-cpus-fast dump giving each VCPU's thread id (TCP guests need this or "
                      "--vcpu-map: their host record has no pid)")


def add_vcpu_map_options(p: argparse.ArgumentParser) -> None:
    """``--vcpu-map`` and ``--vcpu-threads``, worded alike in every command (read by :func:`user_vcpu_map`)."""
    p.add_argument("--vcpu-map", action="append", metavar="G:V=PID,...", help=VCPU_MAP_HELP)
    p.add_argument("--vcpu-threads", action="append", metavar="GUEST=FILE.json", help=VCPU_THREADS_HELP)


NO_CACHE_HELP = ("neither read nor write the load cache ($XDG_CACHE_HOME/kshark-py, default ~/.cache/kshark-py; "
                 "also KSHARK_PY_NO_CACHE=1): decode the files afresh")


def add_cache_option(p: argparse.ArgumentParser) -> None:
    """``--no-cache`` for every command that loads trace files (see :func:`apply_cache_option`)."""
    p.add_argument("--no-cache", action="store_true", help=NO_CACHE_HELP)


def apply_cache_option(args: argparse.Namespace) -> None:
    """``--no-cache`` given: turn the load cache off for this process and its children.

    Why the environment: ``loaders.loadcache`` reads it, so nothing is imported here (the command
    line starts fast), and a process this one starts is off too."""
    if getattr(args, "no_cache", False):
        os.environ["KSHARK_PY_NO_CACHE"] = "1"


def add_strict_option(p: argparse.ArgumentParser) -> None:
    """``--strict``: lost data is an error (see :func:`show_losses`)."""
    p.add_argument("--strict", action="store_true", help=STRICT_HELP)
