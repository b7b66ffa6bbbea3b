"""``kshark-py sql``: a DuckDB query over a host trace and its guests, as a table, CSV or JSON.

The tables are :mod:`kshark_py.model.sqltables`' (``events``, one per event name, ``runs``,
``vcpus``, ``vcpu_states``, ``time_sync`` and the analyses), registered in place and only those the
query reads.  The files are opened as ``stats`` opens them: losses are printed first, ``--strict``
stops on them.  Bad SQL or an unknown table: DuckDB's message on one line, exit 2.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

from .argtypes import writable_file
from .cliutil import PROG, UsageError
from .stats_cli import add_input_options, load_inputs, write_table

USAGE = (f'{PROG} sql -i HOST [-i GUEST]... [--format table|csv|json] [-o OUT] [--vcpu-map G:V=PID,...] '
         '[--time-offset S=NS] [--strict] "QUERY"   |   ' + f"{PROG} sql -i HOST [-i GUEST]... --tables")


def printable(table: pa.Table) -> pa.Table:
    """``table`` with every column in a type the writers print as it means: binary (a comm, a BLOB)
    as text (U+FFFD for bytes that are not UTF-8), whole decimals (DuckDB's sums) as integers,
    other decimals, times, intervals and the like as their text, bytes inside lists and structs
    decoded."""
    import pyarrow as pa  # here, not at the top: every command builds this module's parser

    return pa.Table.from_arrays([_printable_column(c) for c in table.columns], names=table.column_names)


def _printable_column(col: pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    import pyarrow as pa

    from .loaders.text import display_array

    t = col.type
    if pa.types.is_dictionary(t):
        col, t = col.cast(t.value_type), t.value_type
    try:
        if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
            return display_array(col.cast(pa.large_binary())).cast(pa.string())
        if pa.types.is_large_string(t):
            return col.cast(pa.string())
        if pa.types.is_decimal(t):
            return col.cast(pa.int64()) if t.scale == 0 else col.cast(pa.string())
        if pa.types.is_temporal(t) or pa.types.is_interval(t):
            return col.cast(pa.string())
        if pa.types.is_nested(t) and _has_binary(t):  # e.g. list(comm): bytes inside lists or structs
            return pa.array([_shown(v) for v in col.to_pylist()])
        return col
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # a decimal past int64, an interval, a map of bytes
        return pa.array([None if v is None else str(_shown(v)) for v in col.to_pylist()], pa.string())


_READS_NAMES = re.compile(r"\bcomm\b|select\s+\*|\.\*|\bcolumns\s*\(", re.IGNORECASE)
"""A query that may read a ``comm`` column (needs the task names, from the sched fields)."""


def decode_plan(query: str):
    """``prepare(files)`` for :func:`~.stats_cli.load_inputs`: the fields the query will read (its event
    tables' fields; the sched fields that name tasks when it may read ``comm``; the sched and kvm
    fields of the derived tables), extracted while each block is decoded instead of in a second pass
    that decompresses every block again (8 s of 9 for ``comm`` on a 19 M-event file).  Speed only:
    a field missed here is extracted when asked."""
    import duckdb

    from .loaders.tasks import NAME_FIELDS
    from .model.session import HOT_FIELDS
    from .model.sqltables import FIXED_TABLES

    try:
        names = duckdb.connect().get_table_names(query)
    except duckdb.Error:
        return None  # the query's own run reports it
    derived = any(n.lower() in FIXED_TABLES and n.lower() != "events" for n in names)

    def prepare(files) -> None:
        for tf in files:
            want: dict[tuple[str, str], dict[str, None]] = {}
            for system, name, fields in [*NAME_FIELDS, *HOT_FIELDS] if derived or _READS_NAMES.search(query) else []:
                want.setdefault((system, name), {}).update(dict.fromkeys(fields))
            for n in names:
                ev = tf.formats.find(n) if n.lower() not in FIXED_TABLES else None
                if ev is not None:
                    want.setdefault((ev.system, ev.name), {}).update(dict.fromkeys(f.name for f in ev.fields))
            tf.hot_fields = [(system, name, list(fields)) for (system, name), fields in want.items()]
    return prepare


def _has_binary(t: pa.DataType) -> bool:
    import pyarrow as pa

    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return True
    return any(_has_binary(t.field(i).type) for i in range(t.num_fields))


def _shown(v: object) -> object:
    """A nested value with every bytes decoded for showing (U+FFFD), the rest as it is."""
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, list):
        return [_shown(x) for x in v]
    if isinstance(v, dict):
        return {k: _shown(x) for k, x in v.items()}
    if isinstance(v, tuple):  # a map's (key, value) pairs
        return tuple(_shown(x) for x in v)
    return v


def cmd_sql(args: argparse.Namespace) -> int:
    import duckdb
    import pyarrow as pa

    from .api import TraceSession
    from .model.sqltables import FIXED_TABLES, one_line

    words = list(args.words or [])
    # bare words: trace files (a bare FILE is -i FILE, as for the other commands), then the query
    query = None if args.tables or not words else words.pop()
    args.input = [*(args.input or []), *words]
    if args.input and query is None and not args.tables:
        raise UsageError(f'sql needs a query: {PROG} sql -i HOST.dat "SELECT event, count(*) FROM events '
                         'GROUP BY event" (--tables lists the tables)')
    if args.output:
        try:
            writable_file(args.output)
        except ValueError as e:
            raise UsageError(str(e)) from None
    session, user = load_inputs(args, '"QUERY"', None if args.tables else decode_plan(query))
    if session is None:
        return 2
    s = TraceSession(session, user)
    if args.tables:
        table = pa.table({"table": s.tables(), "holds": [FIXED_TABLES.get(n, "event records with their fields")
                                                         for n in s.tables()]})
    else:
        try:
            table = s.sql(query)
        except duckdb.Error as e:
            raise UsageError(one_line(e)) from None
    for w in session.warnings:
        print(f"{PROG}: warning: {w}", file=sys.stderr)
    table = printable(table)
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as out:
            write_table(table, args.format, out)
    else:
        write_table(table, args.format, sys.stdout)
    return 0


class _Intermixed:
    """A parser mixin: positional words anywhere among the options (argparse's intermixed parsing),
    so ``sql HOST --format csv GUEST "QUERY"`` or ``sql -i HOST "QUERY" --format csv`` is one list of
    words (files, then the query) however the options split it.  Plain argparse gives the ``*``
    positional only the first run of bare words and refuses the rest.

    The subparsers action calls :meth:`parse_known_args`; it turns into
    ``parse_known_intermixed_args``, which calls it back for its two passes (the flag lets those
    through).  Errors stay the parser's own: one line, exit 2."""

    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):
        if self._intermixing:
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def register(sub) -> None:
    """Add ``sql`` to the ``kshark-py`` subparsers (called by :func:`kshark_py.cli.build_parser`)."""
    s = sub.add_parser(
        "sql", usage=USAGE, help="a DuckDB SQL query over the merged host + guest tables",
        description="Runs a DuckDB query over the session's tables: events (every stream merged on the host "
                    "clock), one table per event name with its fields (quote a name that is not a plain "
                    'identifier: "sched:sched_switch"), runs, vcpus, vcpu_states, time_sync, wakeups, '
                    "wakeup_stats, vm_exits, exit_stats, guest_entries, vcpu_time. Times are int64 ns on the host "
                    "clock. CSV has a header row.")
    s.add_argument("-i", dest="input", action="append", metavar="FILE",
                   help="host file, then guest files (repeat)")
    s.add_argument("words", nargs="*", metavar="QUERY",
                   help="the SQL query (DuckDB's dialect), last; bare words before it are more trace files")
    s.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format (default table)")
    s.add_argument("-o", dest="output", metavar="OUT", help="write the result to OUT instead of stdout")
    s.add_argument("--tables", action="store_true", help="list the tables a query can read and exit")
    add_input_options(s)
    s.set_defaults(func=cmd_sql)
    # add_parser builds every command with one class: this one alone gets the intermixed parsing
    s.__class__ = type("SqlParser", (_Intermixed, type(s)), {})
