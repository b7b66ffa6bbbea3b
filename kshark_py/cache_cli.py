"""``kshark-py cache --list | --clear``: what the load cache holds, and emptying it.

The cache itself is :mod:`kshark_py.loaders.loadcache`; this module only words it for a terminal.
"""

from __future__ import annotations

import argparse
import time

from .cliutil import PROG

USAGE = f"{PROG} cache (--list | --clear)"


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover (the loop returns)


def cmd_cache(args: argparse.Namespace) -> int:
    from .loaders import loadcache

    folder = loadcache.cache_dir()
    if args.clear:
        n, freed = loadcache.clear()
        print(f"removed {n} file{'s' if n != 1 else ''} ({_size(freed)}) from {folder}")
        return 0
    entries = loadcache.entries()
    total = sum(e.size for e in entries)
    state = "" if loadcache.enabled() else " (turned off: KSHARK_PY_NO_CACHE)"
    print(f"{folder}: {len(entries)} entr{'ies' if len(entries) != 1 else 'y'}, {_size(total)} of "
          f"{_size(loadcache.max_bytes())}{state}")
    if entries:
        print(f"{'size':>9}  {'last used':19}  trace")
    for e in entries:
        used = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.last_used))
        print(f"{_size(e.size):>9}  {used}  {e.trace}{'' if e.valid else '  (unreadable or old: rebuilt on use)'}"
              f"\n{'':>9}  {'':19}  {e.path}")
    return 0


def register(sub) -> None:
    """Add ``cache`` to the ``kshark-py`` subparsers (called by :func:`kshark_py.cli.build_parser`)."""
    c = sub.add_parser("cache", usage=USAGE, help="list or clear the load cache of decoded traces",
                       description="A trace's decoded tables are kept in $XDG_CACHE_HOME/kshark-py (default "
                                   "~/.cache/kshark-py) so opening it again is instant; an entry whose trace "
                                   "changed is rebuilt. KSHARK_PY_CACHE_MAX caps the folder (default 4G; least "
                                   "recently used entries go first), KSHARK_PY_NO_CACHE=1 or --no-cache turns it "
                                   "off.")
    what = c.add_mutually_exclusive_group(required=True)
    what.add_argument("--list", action="store_true", help="each entry: size, when last used, its trace, its file")
    what.add_argument("--clear", action="store_true", help="remove every entry")
    c.set_defaults(func=cmd_cache)
