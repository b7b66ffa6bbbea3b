"""The Python API: a host trace and its guests as Arrow tables, merged and on the host clock.

    import kshark_py as ks
    s = ks.open("trace.dat", "trace-vmguest.dat")
    s.events()                 # every event of every stream, in trace-cmd's merged order
    s.fields("sched_switch")   # that event's rows with every field of its format, typed
    s.sql("SELECT event, count(*) FROM events GROUP BY event")

Every table is a ``pyarrow.Table`` (``.to_pandas()``, ``polars.from_arrow(...)`` take it without a
copy of the numbers); times are int64 ns on the host clock (a guest synchronized by TIME_SHIFT, or
moved with ``time_offsets``); ``stream`` is the stream's name (``host``, the guest's name,
``host:instance``); ``comm`` is the task's name as the kernel's bytes (binary: a comm need not be
UTF-8; ``.decode("utf-8", "replace")`` shows it).  The tables are the ones ``kshark-py sql``
queries, built by :mod:`kshark_py.model.apitables` (see there for what is copied and what is not);
the full reference is docs/api.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa

from .loaders.errors import DataLoss, TraceDatError
from .loaders.tracedat import open_trace
from .model import apitables
from .model.session import HOT_FIELDS, Session

__all__ = ["DataLossError", "TraceSession", "open"]


class DataLossError(TraceDatError):
    """``open(..., strict=True)`` of a file that is cut or damaged (data was lost while decoding)."""

VcpuMap = Mapping[str, Mapping[int, int]]
"""``{guest name: {vcpu: host thread id}}``: the host thread of VCPUs the files do not name."""


class TraceSession:
    """A host trace and its guests (build it with :func:`open`).  Tables are built on first use and
    kept; every method returns a ``pyarrow.Table`` unless it says otherwise."""

    def __init__(self, session: Session, vcpu_map: VcpuMap | None = None, losses: Sequence[DataLoss] = ()) -> None:
        self.model = session
        """The underlying :class:`kshark_py.model.session.Session` (what the app draws)."""
        self.vcpu_map: dict[str, dict[int, int]] = {g: dict(m) for g, m in (vcpu_map or {}).items()}
        self.losses = list(losses)
        """What could not be read of a cut or damaged file (one :class:`DataLoss` per piece)."""
        self._comms = apitables.Comms(session)
        self._cache: dict[str, object] = {}
        """Derived tables by name, and the info renderers."""
        self._sql = None

    # ---- what is loaded --------------------------------------------------------------------------
    @property
    def streams(self) -> list[str]:
        """Stream names in stream order: the host's top buffer, the guests', then instances."""
        return [st.name for st in self.model.streams]

    @property
    def warnings(self) -> list[str]:
        """What the session noticed while pairing files (a guest not synchronized, ...)."""
        return list(self.model.warnings)

    def event_names(self) -> list[str]:
        """``system:name`` of every event type some stream has records of (each a :meth:`fields` name)."""
        return [f"{s}:{n}" for s, n in apitables.event_names(self.model)]

    # ---- the events ------------------------------------------------------------------------------
    def events(self, columns: Sequence[str] | None = None) -> pa.Table:
        """Every event of every stream, merged in trace-cmd's order on the host clock.

        Columns ``ts`` (int64 ns), ``stream``, ``cpu``, ``pid``, ``comm`` (binary), ``system``,
        ``event``, ``flags`` (common_flags), ``preempt`` (common_preempt_count); ``columns`` picks
        some (leaving out ``comm`` skips naming the tasks).  Row i is merged row i: give such
        numbers to :meth:`info`."""
        return apitables.events_table(self.model, columns, self._comms)

    def fields(self, event: str, *, binary: bool = False) -> pa.Table:
        """Every record of ``event`` (``sched_switch`` or ``sched:sched_switch``) in merged order:
        ``ts``, ``stream``, ``cpu``, ``pid``, ``comm``, then every field of its format, typed:
        integers as declared, char arrays as strings (bytes that are not UTF-8 shown as U+FFFD;
        ``binary=True`` keeps the kernel's bytes), other arrays as lists.  A field named like one of
        the first five (``sched_waking``'s ``pid``, ``comm``) keeps its name; the common column is
        then ``common_pid`` (``common_comm``, ...).  KeyError when no stream has the event."""
        try:
            return apitables.fields_table(self.model, event, binary=binary, comms=self._comms)
        except KeyError:
            raise KeyError(f"no loaded file has the event {event!r}") from None

    def info(self, rows: Sequence[int] | np.ndarray) -> pa.Array:
        """trace-cmd's info text (what ``trace-cmd report`` prints after the event name) of merged
        rows ``rows`` (row numbers of :meth:`events`), as a string array in that order; a comm or
        ``%s`` argument that is not UTF-8 shows U+FFFD."""
        from .model.infotext import BlockInfo

        rows = np.asarray(rows, np.int64).reshape(-1)
        m = self.model.merged()
        if len(rows) and (rows.min() < 0 or rows.max() >= len(m)):
            raise IndexError(f"merged rows are 0..{len(m) - 1}")
        out = np.empty(len(rows), dtype=object)
        stream = np.asarray(m.stream[rows]) if len(rows) else np.zeros(0, np.int16)
        for si in np.unique(stream).tolist():
            sel = np.flatnonzero(stream == si)
            st = self.model.streams[si]
            bi = self._cache.get(f"blockinfo:{si}")
            if bi is None:  # its per-event-type plans are made once
                bi = self._cache[f"blockinfo:{si}"] = BlockInfo(st.buffer, self._renderer(st))
            texts = bi.render(np.asarray(m.row[rows[sel]], np.int64))
            out[sel] = texts.to_numpy(zero_copy_only=False)
        return pa.array(out, pa.string())

    def _renderer(self, st):
        from .loaders.printfmt import InfoRenderer
        from .model.eventtext import guest_funcs, render_context

        key = f"renderer:{id(st.trace)}"
        r = self._cache.get(key)
        if r is None:
            gf = guest_funcs(self.model) if st.trace is self.model.host else None
            r = self._cache[key] = InfoRenderer(st.trace.formats, render_context(st.trace, gf))
        return r

    # ---- derived tables --------------------------------------------------------------------------
    def _derived(self, name: str) -> pa.Table:
        if name not in self._cache:
            self._cache[name] = apitables.derived_table(self.model, name, self.vcpu_map)
        return self._cache[name]

    def runs(self) -> pa.Table:
        """Which task ran on which CPU from when to when, every stream: ``stream``, ``cpu``, ``pid``,
        ``comm``, ``start``, ``end``, ``end_state`` (prev_state of the switch that ended it; -1 still
        running, -2 ended by a switch the trace lacks)."""
        return self._derived("runs")

    def vcpus(self) -> pa.Table:
        """Per guest VCPU: its host thread and where that came from, guest events, time in guest and
        the causality check of the time sync (``kshark-py vcpus``)."""
        return self._derived("vcpus")

    def vcpu_states(self) -> pa.Table:
        """Every VCPU's state intervals over the whole trace: ``guest``, ``vcpu``, ``host_pid``,
        ``state`` (guest, exit, halted, preempted, unknown), ``reason`` (of an exit), ``start``,
        ``end``, ``by_pid``/``by_comm`` (the host task that ran instead of a preempted VCPU)."""
        return self._derived("vcpu_states")

    def time_sync(self) -> pa.Table:
        """Every guest's TIME_SHIFT samples: ``guest``, ``vcpu``, ``guest_time``, ``host_time``,
        ``offset``, ``scaling``, ``fraction``, ``drift_ppm``."""
        return self._derived("time_sync")

    def wakeups(self) -> pa.Table:
        """Every completed wakeup (sched_waking, or sched_wakeup without it, to the switch in)."""
        return self._derived("wakeups")

    def wakeup_stats(self) -> pa.Table:
        """Scheduling latency per task: count, total, p50, p99 (nearest rank), max, where the max is."""
        return self._derived("wakeup_stats")

    def vm_exits(self) -> pa.Table:
        """Every closed VM exit (kvm_exit to the kvm_entry of the same host thread): who, reason as
        trace-cmd prints it, times, duration, guest RIP and its symbol."""
        return self._derived("vm_exits")

    def exit_stats(self) -> pa.Table:
        """VM exits per VCPU and reason: count, total, p50, p99, max (``kshark-py stats --exits``)."""
        return self._derived("exit_stats")

    def guest_entries(self) -> pa.Table:
        """Every closed stay in guest mode (kvm_entry to the kvm_exit that ends it)."""
        return self._derived("guest_entries")

    def vcpu_time(self) -> pa.Table:
        """ns per VCPU and state over the whole trace (``kshark-py stats --vcpus``)."""
        return self._derived("vcpu_time")

    def cross_layer(self, guest: str, pid: int, t0: int, t1: int) -> pa.Table:
        """Where guest task ``pid`` of ``guest`` spent [t0, t1] (host ns) across the VM boundary:
        ``state``, ``detail``, ``total_ns``, largest first (``kshark-py stats --explain``)."""
        from .model.analysis.crosslayer import cross_layer

        return cross_layer(self.model, guest, int(pid), int(t0), int(t1), vcpu_map=self.vcpu_map or None)

    # ---- SQL -------------------------------------------------------------------------------------
    def tables(self) -> list[str]:
        """Every table :meth:`sql` can read: ``events``, the derived ones, one per event name."""
        return self._catalog().table_names()

    def sql(self, query: str) -> pa.Table:
        """Run a DuckDB query over :meth:`tables` (the same tables as the methods above; built only
        when a query reads them).  Raises ``duckdb.Error`` for bad SQL or an unknown table."""
        return self._catalog().query(query)

    def _catalog(self):
        if self._sql is None:
            from .model.sqltables import SqlCatalog

            self._sql = SqlCatalog(self.model, self.vcpu_map, comms=self._comms)
        return self._sql


def open(*paths: str | os.PathLike, vcpu_map: VcpuMap | str | None = None,  # noqa: A001 (ks.open, as the issue asks)
         time_offsets: Mapping[str | int, int] | None = None, strict: bool = False,
         prefetch: bool = True, cache: bool = True) -> TraceSession:
    """Open a host trace and its guests (``open("trace.dat", "trace-guest.dat")``), decode them and
    pair them as ``kshark-py`` does: guests by the host's GUEST records, on the host clock.

    ``vcpu_map``: ``{guest: {vcpu: host pid}}`` or ``"GUEST:VCPU=PID,..."`` for VCPUs the files do
    not map (TCP guests).  ``time_offsets``: ns added to a stream (name or index), for a guest
    recorded without time sync.  A cut or damaged file is used as far as it reads (its losses in
    :attr:`TraceSession.losses`); ``strict=True`` raises the first loss instead.  Raises the
    loaders' ``TraceDatError`` family for a file that cannot be read at all.

    ``prefetch``: extract the sched and kvm fields that name tasks (``comm``) and feed the derived
    tables while the events are decoded (about a tenth more decoding time; reading them later
    decompresses every block again, several times that on a big compressed file).  ``False`` when
    only ``events(columns)`` without ``comm`` will be read.

    ``cache``: use the load cache the app and the commands share (``$XDG_CACHE_HOME/kshark-py``,
    keyed by each file's path, size, time and content): a file opened before is mapped from it
    instead of decoded, and one that is not is stored there for the next time (a script run again
    and again over the same traces).  ``False``, or ``KSHARK_PY_NO_CACHE=1``: decode afresh, store
    nothing."""
    from .loaders import loadcache
    from .model.vcpus import parse_vcpu_map_arg

    if not paths:
        raise ValueError("open() needs the host trace file (then any guest files)")
    if isinstance(vcpu_map, str):
        vcpu_map = parse_vcpu_map_arg(vcpu_map)
    files = [open_trace(p) for p in paths]
    for tf in files if prefetch else []:
        tf.hot_fields = list(HOT_FIELDS)
    entries = [loadcache.lookup(tf) for tf in files] if cache else []  # a hit installs the decoded buffers
    losses = [x for tf in files for x in tf.decode_all()]
    for e in entries:
        if e is not None and not e.hit:
            loadcache.store(e)
    if strict and losses:
        x = losses[0]
        raise DataLossError(x.what, path=x.path, section=f"buffer {x.buffer!r}" if x.buffer is not None else None,
                            offset=x.offset)
    session = Session.from_files(files)
    for key, ns in (time_offsets or {}).items():
        session.set_time_offset(key, int(ns))
    return TraceSession(session, vcpu_map, losses)
