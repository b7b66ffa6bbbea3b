"""SQL over a session: an in-process DuckDB whose tables are the session's Arrow tables, built lazily.

Before a query runs, DuckDB names the tables it reads (``get_table_names``) and only those are
built and registered; a registered Arrow table is scanned in place (DuckDB reads the Arrow buffers,
it copies nothing when registering).  So ``SELECT event, count(*) FROM events GROUP BY event``
extracts no event's fields and names no task.

Tables (:data:`FIXED_TABLES`, plus one per event name):

* ``events`` and each event's table (``sched_switch``, ``kvm_exit``, ...; quote a name that is not
  a plain identifier: ``"my-event"``, or ``"sched:sched_switch"`` for the system-qualified name)
  are views over the Arrow tables of :mod:`.apitables` without ``comm``; their ``comm`` column is a
  vectorized function of (stream, pid), so a query that does not read ``comm`` never computes the
  task names (the optimizer drops the unused column), and one that does pays one pass;
* ``runs``, ``vcpus``, ``vcpu_states``, ``time_sync`` and the analysis tables are registered as
  they are when a query names them.

DuckDB's errors (a bad query, an unknown table) are ``duckdb.Error``; callers show their message.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .apitables import DERIVED_TABLES, EVENT_COLUMNS, Comms, derived_table, event_names, events_table, fields_table
from .session import Session

__all__ = ["FIXED_TABLES", "SqlCatalog", "one_line"]

FIXED_TABLES: dict[str, str] = {
    "events": "every event of every stream, merged in trace-cmd's order on the host clock", **DERIVED_TABLES}
"""The tables every session has (besides one per event name), with what they hold."""

_COMM_FN = "_kshark_comm"


def one_line(e: BaseException) -> str:
    """DuckDB's message on one line (its caret line under the query is dropped)."""
    lines = [ln.strip() for ln in str(e).splitlines()]
    return " ".join(ln for ln in lines if ln and set(ln) != {"^"})


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SqlCatalog:
    """One DuckDB connection over one session; tables are registered as queries name them."""

    def __init__(self, session: Session, vcpu_map: dict[str, dict[int, int]] | None = None, *,
                 comms: Comms | None = None) -> None:
        self.session = session
        self.vcpu_map = vcpu_map or None
        self.con = duckdb.connect()
        self.con.execute("SET enable_progress_bar = false")  # it writes into the output (CSV on stdout)
        self.comms = comms or Comms(session)
        self._done: set[str] = set()
        self._events: dict[str, str] | None = None
        self._comm_fn = False
        self.tables_built: list[str] = []
        """Names registered so far, in order (tests check that a query built only what it read)."""

    # ---- what exists -----------------------------------------------------------------------------
    def event_tables(self) -> dict[str, str]:
        """Table name -> event (``system:name``) for every event type some stream has records of: each
        event by its name (the first system wins a clash) and by ``system:name``.  An event the
        formats know without records is a table too (empty) once a query names it."""
        if self._events is None:
            out: dict[str, str] = {}
            for system, name in event_names(self.session):
                full = f"{system}:{name}"
                if name not in FIXED_TABLES:
                    out.setdefault(name, full)
                out.setdefault(full, full)
            self._events = out
        return self._events

    def table_names(self) -> list[str]:
        """Every table a query may read: the fixed ones, then the events'."""
        return [*FIXED_TABLES, *self.event_tables()]

    def _resolve(self, name: str) -> str | None:
        if name in FIXED_TABLES or name in self.event_tables():
            return name
        low = name.lower()  # SQL identifiers are case-insensitive
        hit = next((n for n in self.table_names() if n.lower() == low), None)
        if hit is None:  # an event the formats know but no stream recorded: an empty table, not an error
            ev = next((e for st in self.session.streams for e in [st.trace.formats.find(name)] if e is not None), None)
            if ev is not None:
                self.event_tables()[name] = f"{ev.system}:{ev.name}"
                hit = name
        return hit

    # ---- registering -----------------------------------------------------------------------------
    def _ensure_comm_fn(self) -> None:
        if self._comm_fn:
            return
        index = {st.name: st.index for st in self.session.streams}
        comms = self.comms

        def comm(stream: pa.Array | pa.ChunkedArray, pid: pa.Array | pa.ChunkedArray) -> pa.Array:
            if isinstance(stream, pa.ChunkedArray):
                stream, pid = stream.combine_chunks(), pid.combine_chunks()
            codes = pc.dictionary_encode(stream)
            which = np.array([index[s] for s in codes.dictionary.to_pylist()], np.int64)
            idx = which[codes.indices.to_numpy(zero_copy_only=False)]
            p = pid.to_numpy(zero_copy_only=False)
            arr = comms.column(idx if len(which) > 1 else int(which[0]) if len(which) else 0, p)
            return arr.cast(pa.binary())

        self.con.create_function(_COMM_FN, comm, [duckdb.sqltypes.VARCHAR, duckdb.sqltypes.INTEGER],
                                 duckdb.sqltypes.BLOB, type="arrow")
        self._comm_fn = True

    def _with_comm_view(self, name: str, table: pa.Table, before: str) -> None:
        """Register ``table`` under a hidden name and ``name`` as a view adding ``comm`` before column
        ``before``."""
        self._ensure_comm_fn()
        raw = f"_kshark_raw_{len(self._done)}"
        self.con.register(raw, table)
        cols = []
        stream_col = "common_stream" if "common_stream" in table.column_names else "stream"
        pid_col = "common_pid" if "common_pid" in table.column_names else "pid"
        comm_name = "common_comm" if pid_col == "common_pid" else "comm"
        for c in table.column_names:
            if c == before:
                cols.append(f"{_COMM_FN}({_quote(stream_col)}, {_quote(pid_col)}) AS {_quote(comm_name)}")
            if c != "_stream":
                cols.append(_quote(c))
        self.con.execute(f"CREATE VIEW {_quote(name)} AS SELECT {', '.join(cols)} FROM {_quote(raw)}")

    def register(self, name: str) -> None:
        """Build and register table ``name`` (a name of :meth:`table_names`) unless it already is."""
        if name in self._done:
            return
        s, vmap = self.session, self.vcpu_map
        if name == "events":
            t = events_table(s, [c for c in EVENT_COLUMNS if c != "comm"], comms=self.comms)
            self._with_comm_view(name, t, "system")
        elif name in DERIVED_TABLES:
            self.con.register(name, derived_table(s, name, vmap))
        else:
            t = fields_table(s, self.event_tables()[name], comm=False)
            after = [c for c in t.column_names if c not in ("ts", "common_ts", "stream", "common_stream", "cpu",
                                                             "common_cpu", "pid", "common_pid", "_stream")]
            self._with_comm_view(name, t, after[0] if after else "_stream")
        self._done.add(name)
        self.tables_built.append(name)

    # ---- querying --------------------------------------------------------------------------------
    def query(self, sql: str) -> pa.Table:
        """Run ``sql``; the result as an Arrow table.  Raises ``duckdb.Error`` (bad SQL, unknown table)."""
        for n in self.con.get_table_names(sql):
            real = self._resolve(n)  # DuckDB itself matches names case-insensitively
            if real is not None:
                self.register(real)
        rel = self.con.sql(sql)
        return rel.to_arrow_table() if rel is not None else pa.table({})
