"""A session: one host trace and any number of guest traces, as streams on one time line.

Which file is the host and which guest belongs to it is decided from the files' own metadata:
the host's GUEST options carry each guest's trace id, and a synchronized guest's TIME_SHIFT
names the host's trace id as its peer.  File names are only used to name a guest the host did not
name.  Guest timestamps are already on the host clock when the reader hands them over (the
reader applies TIME_SHIFT exactly as libtracecmd does); a guest without usable sync data stays on
its own clock and is marked ``synced=False`` with a warning.

The merged view orders all events of all streams the way ``trace-cmd report`` does, as two
index arrays (stream, row): no column of any stream is copied.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import numpy as np

from ..loaders.buffer import Buffer
from ..loaders.merge import merge_order
from ..loaders.options import GuestOption
from ..loaders.tracedat import TraceFile

HOT_FIELDS = [
    ("sched", "sched_switch", ["prev_comm", "prev_pid", "prev_prio", "prev_state", "next_comm", "next_pid",
                               "next_prio"]),
    ("sched", "sched_wakeup", ["comm", "pid", "prio", "target_cpu"]),
    ("sched", "sched_waking", ["comm", "pid"]),
    ("sched", "sched_wakeup_new", ["comm", "pid"]),
    ("sched", "sched_process_fork", ["parent_comm", "parent_pid", "child_comm", "child_pid"]),
    ("kvm", "kvm_entry", ["vcpu_id", "rip"]),
    ("kvm", "kvm_exit", ["exit_reason", "isa", "guest_rip", "vcpu_id"]),
]
"""Fields the session's derived tables read; fetched together so each data block is read once."""


@dataclass
class Stream:
    """One buffer of one file: the unit the timeline draws and the merged view indexes."""

    index: int
    trace: TraceFile
    buffer: Buffer
    file_index: int
    role: str
    """``"host"`` or ``"guest"`` (a lone file is a host)."""
    name: str
    """Display name: ``host``, the guest's name, or ``host:instance``."""
    label: str
    """What trace-cmd prefixes this stream's lines with in a multi-file report."""
    guest: GuestInfo | None = None

    @property
    def cpu_count(self) -> int:
        return self.buffer.cpu_count


@dataclass
class GuestInfo:
    """What the session knows about one guest file."""

    name: str
    trace: TraceFile
    record: GuestOption | None
    """The host's GUEST option for this guest, if the host has one."""
    synced: bool
    """Timestamps are on the host clock (TIME_SHIFT whose peer is the loaded host)."""
    vcpu_count: int


class Arange:
    """The rows 0..n-1 of one stream, answered without storing them.

    A session of one stream has the identity as its merged order; an ``arange`` of 17 M rows
    would cost 68 MB for nothing.  Indexing gives what indexing the arange would (ints, arrays);
    anything else converts through ``__array__``.
    """

    ndim = 1

    def __init__(self, n: int, dtype: type = np.int32) -> None:
        self.n = n
        self.dtype = np.dtype(dtype)

    @property
    def shape(self) -> tuple[int]:
        return (self.n,)

    def __len__(self) -> int:
        return self.n

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.arange(self.n, dtype=dtype or self.dtype)

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            k = int(key)
            if not -self.n <= k < self.n:
                raise IndexError(f"index {k} is out of bounds for size {self.n}")
            return self.dtype.type(k % self.n)
        if isinstance(key, slice):
            return np.arange(*key.indices(self.n), dtype=self.dtype)
        key = np.asarray(key)
        if key.dtype == bool:
            if key.shape != (self.n,):
                raise IndexError(f"boolean index of shape {key.shape} for size {self.n}")
            return np.flatnonzero(key).astype(self.dtype)
        if key.size and (key.min() < -self.n or key.max() >= self.n):
            raise IndexError(f"index out of bounds for size {self.n}")
        return (key % max(self.n, 1)).astype(self.dtype)


@dataclass
class MergedView:
    """All events of all streams in report order, as indices; nothing copied."""

    stream: np.ndarray  # int16 stream index per merged row (read-only; a broadcast for one stream)
    row: np.ndarray | Arange  # int32 (int64 past 2**31 events) row in that stream's table; Arange for one stream
    ts: np.ndarray  # int64 timestamp per merged row (host clock for synced guests)

    def __len__(self) -> int:
        return len(self.row)

    @property
    def identity(self) -> bool:
        """One stream, in its own order: merged row i is that stream's row i."""
        return isinstance(self.row, Arange)

    def index_of(self, stream: int, row: int) -> int:
        """Where table row ``row`` of ``stream`` sits in the merged order (-1: no such row)."""
        if self.identity:
            return int(row) if 0 <= row < len(self) else -1
        hit = np.flatnonzero((self.row == row) & (self.stream == stream))
        return int(hit[0]) if len(hit) else -1


def _guest_name_from_path(path: str) -> str | None:
    m = re.match(r"^trace-(.+)\.dat$", os.path.basename(path))
    return m.group(1) if m else None


@dataclass
class Session:
    """Host + guests. Build it with :meth:`from_files`."""

    files: list[TraceFile]
    host: TraceFile | None
    guests: list[GuestInfo]
    streams: list[Stream]
    warnings: list[str] = field(default_factory=list)
    time_offsets: dict[int, int] = field(default_factory=dict)
    """ns added to a stream's timestamps by the user (:meth:`set_time_offset`), by stream index."""
    _merged: MergedView | None = None
    _derived: dict = field(default_factory=dict)

    @classmethod
    def from_files(cls, files: list[TraceFile]) -> Session:
        """Pair files by trace ids; the first file that names guests (or is named as peer) is the host."""
        warnings: list[str] = []
        by_id = {tf.meta.trace_id: tf for tf in files if tf.meta.trace_id is not None}
        host = None
        for tf in files:
            if any(g.trace_id in by_id and by_id[g.trace_id] is not tf for g in tf.meta.guests):
                host = tf
                break
        if host is None:
            for tf in files:
                peers = {o.meta.time_shift.peer_trace_id for o in files if o.meta.time_shift and o is not tf}
                if tf.meta.trace_id is not None and tf.meta.trace_id in peers:
                    host = tf
                    break
        if host is None:
            host = next((tf for tf in files if tf.meta.time_shift is None), files[0] if files else None)
        guests: list[GuestInfo] = []
        for tf in files:
            if tf is host:
                continue
            rec = next((g for g in host.meta.guests if g.trace_id == tf.meta.trace_id), None) if host else None
            ts = tf.meta.time_shift
            synced = bool(ts is not None and host is not None and ts.peer_trace_id == host.meta.trace_id
                          and any(len(c.times) for c in ts.cpus))
            name = (rec.name if rec and rec.name else None) or _guest_name_from_path(tf.path) \
                or (tf.meta.uname.split()[1] if tf.meta.uname and len(tf.meta.uname.split()) > 1 else None) \
                or os.path.basename(tf.path)
            if rec is None:
                warnings.append(f"{os.path.basename(tf.path)}: its trace id matches no GUEST record of the host; "
                                f"opened as guest {name!r}, not synchronized")
            elif not synced:
                why = "has no TIME_SHIFT data" if ts is None else "has TIME_SHIFT with no samples or another peer"
                warnings.append(f"guest {name!r} {why}: its events stay on the guest clock")
            vcount = len(rec.vcpu_pids) if rec else 0
            top = next((b for b in tf.buffers if b.name == ""), None)
            fcpus = top.cpu_count if top else 0
            if rec and vcount != fcpus:
                warnings.append(f"guest {name!r}: host record lists {vcount} VCPUs, guest file has {fcpus} CPUs")
            guests.append(GuestInfo(name, tf, rec, synced, max(vcount, fcpus)))
        if host is not None:
            loaded = {g.trace.meta.trace_id for g in guests}
            for g in host.meta.guests:
                if g.trace_id not in loaded:
                    warnings.append(f"host records guest {g.name or '(unnamed)'!r} "
                                    f"(trace id {g.trace_id:#x}) whose file is not loaded")
        streams = _make_streams(files, host, guests)
        return cls(files, host, guests, streams, warnings)

    def stream_index(self, key: int | str) -> int:
        """A stream by index, or by name (``host``, a guest's name, ``host:instance``) or file name."""
        if isinstance(key, (int, np.integer)) or (isinstance(key, str) and key.lstrip("-").isdigit()):
            i = int(key)
            if 0 <= i < len(self.streams):
                return i
        else:
            for st in self.streams:
                if key == st.name or (st.buffer.name == "" and key in (st.trace.path, os.path.basename(st.trace.path))):
                    return st.index
        names = ", ".join(f"{st.index}={st.name}" for st in self.streams)
        raise ValueError(f"no stream {key!r} (streams: {names})")

    def set_time_offset(self, stream: int | str, ns: int) -> None:
        """Put stream ``stream`` (index or name) ``ns`` nanoseconds later than its file says.

        KernelShark's "Add Time Offset": for a guest opened without time sync, whose clock is
        unrelated to the host's.  ``ns`` is absolute, as KernelShark's calibration (0 undoes it).
        The stream's ``ts`` column is shifted in one vectorized add, what was derived from its
        times (task runs, in-guest intervals) is dropped and the merged order is recomputed."""
        i = self.stream_index(stream)
        delta = int(ns) - self.time_offsets.get(i, 0)
        if delta == 0:
            return
        self.streams[i].buffer.shift_time(delta)
        if int(ns):
            self.time_offsets[i] = int(ns)
        else:
            self.time_offsets.pop(i, None)
        for key in [k for k in self._derived if k[1] == i]:
            del self._derived[key]
        old = self._merged
        self._merged = None
        if old is not None:
            # built while the old view is alive: caches keyed by id(merged view) cannot confuse them
            self.merged()

    def stream_of(self, tf: TraceFile, name: str = "") -> Stream | None:
        return next((s for s in self.streams if s.trace is tf and s.buffer.name == name), None)

    @property
    def host_stream(self) -> Stream | None:
        return self.stream_of(self.host) if self.host else None

    def prefetch(self) -> None:
        """Extract, in one pass per stream, every field the timeline, task names and VCPU lanes read."""
        for st in self.streams:
            fmts = st.trace.formats
            req = []
            for system, name, fields in HOT_FIELDS:
                ev = fmts.find(name, system)
                if ev is not None:
                    req.append((ev, fields))
            st.buffer.prefetch(req)

    def runs(self, stream: int):
        """Task run intervals per CPU of one stream (``intervals.cpu_runs``), computed once."""
        key = ("runs", stream)
        if key not in self._derived:
            from .intervals import cpu_runs

            self._derived[key] = cpu_runs(self.streams[stream].buffer)
        return self._derived[key]

    def adopt_runs(self, stream: int, runs) -> None:
        """Use ``runs`` as :meth:`runs` of ``stream`` (what the load cache kept of an earlier load);
        a table of another schema is ignored (computed again when asked)."""
        from .intervals import CPU_RUNS

        if runs.schema.equals(CPU_RUNS):
            self._derived[("runs", stream)] = runs

    def adopt_tasks(self, stream: int, names: dict[int, str], pids: tuple[np.ndarray, np.ndarray]) -> None:
        """Use ``names`` and ``pids`` as :meth:`task_names` and :meth:`pid_counts` of ``stream`` (what
        the load cache kept of an earlier load)."""
        self._derived[("task_names", stream)] = names
        self._derived[("pid_counts", stream)] = pids

    def cpu_ticks(self, stream: int, cpu: int) -> np.ndarray:
        """Events of ``cpu`` before each block of the stream's table (``distinct.block_counts``: what
        a CPU row's unfiltered event ticks count with), computed once per CPU."""
        d = self._derived.setdefault(("cpu_ticks", stream), {})
        if cpu not in d:
            from .distinct import block_counts

            d[cpu] = block_counts(self.streams[stream].buffer.events.column("cpu").to_numpy(), cpu)
        return d[cpu]

    def ts_sorted(self, stream: int) -> bool:
        """Whether the stream's ``ts`` column never goes down (else a CPU's clock went backwards), computed once."""
        key = ("ts_sorted", stream)
        if key not in self._derived:
            ts = self.streams[stream].buffer.events.column("ts").to_numpy()
            self._derived[key] = not (len(ts) > 1 and bool((ts[1:] < ts[:-1]).any()))
        return self._derived[key]

    def adopt_ticks(self, stream: int, ticks: dict[int, np.ndarray], ts_sorted: bool) -> None:
        """Use these as :meth:`cpu_ticks` and :meth:`ts_sorted` of ``stream`` (the load cache's)."""
        self._derived[("cpu_ticks", stream)] = dict(ticks)
        self._derived[("ts_sorted", stream)] = bool(ts_sorted)

    def pid_counts(self, stream: int) -> tuple[np.ndarray, np.ndarray]:
        """(distinct pids ascending, events of each) of one stream, computed once."""
        key = ("pid_counts", stream)
        if key not in self._derived:
            from .distinct import value_counts

            self._derived[key] = value_counts(self.streams[stream].buffer.events.column("pid").to_numpy())
        return self._derived[key]

    def task_names(self, stream: int) -> dict[int, str]:
        """pid -> comm as one stream's file names its tasks (``loaders.tasks.task_names``), computed once."""
        key = ("task_names", stream)
        if key not in self._derived:
            from ..loaders.tasks import task_names

            tf = self.streams[stream].trace
            self._derived[key] = task_names(tf.buffers, tf.formats, tf.cmdlines)
        return self._derived[key]

    def kvm_events(self, stream: int):
        """kvm_entry/kvm_exit records of one (host) stream, each with the event closing it
        (``intervals.kvm_events``), computed once."""
        key = ("kvm", stream)
        if key not in self._derived:
            from .intervals import kvm_events

            self._derived[key] = kvm_events(self.streams[stream].buffer)
        return self._derived[key]

    def in_guest(self, stream: int):
        """kvm_entry -> kvm_exit intervals of one (host) stream, computed once."""
        key = ("in_guest", stream)
        if key not in self._derived:
            from .intervals import in_guest_intervals

            self._derived[key] = in_guest_intervals(self.streams[stream].buffer, self.kvm_events(stream))
        return self._derived[key]

    def merged(self) -> MergedView:
        """Every event of every stream in trace-cmd's report order (computed once, cached)."""
        if self._merged is None:
            self._merged = merged_view(self.streams)
        return self._merged


def _make_streams(files: list[TraceFile], host: TraceFile | None, guests: list[GuestInfo]) -> list[Stream]:
    """Streams in trace-cmd's handle order: each file's top buffer, then every instance."""
    multi = len(files) > 1
    ginfo = {id(g.trace): g for g in guests}
    out: list[Stream] = []

    def add(i: int, tf: TraceFile, b: Buffer, label: str) -> None:
        g = ginfo.get(id(tf))
        role = "guest" if g else "host"
        base = g.name if g else "host"
        name = base if b.name == "" else f"{base}:{b.name}"
        out.append(Stream(len(out), tf, b, i, role, name, label, g))

    for i, tf in enumerate(files):
        for b in tf.buffers:
            if b.name == "":
                add(i, tf, b, os.path.basename(tf.path) if multi else "")
    for i, tf in enumerate(files):
        for b in tf.buffers:
            if b.name != "":
                add(i, tf, b, b.name)
    return out


def merged_view(streams: list[Stream], cpus: set[int] | None = None) -> MergedView:
    """Merge streams like ``tracecmd_iterate_events_multi``: slots are (stream, cpu) in order."""
    keys, rows = [], []
    total = sum(len(st.buffer.events) for st in streams)
    row_type = np.int32 if total < 2**31 else np.int64  # half the memory for the usual sizes
    if len(streams) == 1 and cpus is None:
        # one stream: report order is the stream's own order; share its ts column, no copies
        ts = streams[0].buffer.events.column("ts").to_numpy()
        return MergedView(np.broadcast_to(np.int16(streams[0].index), len(ts)), Arange(len(ts), row_type), ts)
    for st in streams:
        t = st.buffer.events
        ts = t.column("ts").to_numpy()
        cpu = t.column("cpu").to_numpy()
        r = np.arange(len(ts), dtype=row_type)
        if cpus is not None:
            keep = np.isin(cpu, list(cpus))
            r, ts, cpu = r[keep], ts[keep], cpu[keep]
        # per-CPU running maximum: the merge key of trace-cmd's smallest-head pick (see merge_order)
        key = ts
        if len(ts) > 1 and (ts[1:] < ts[:-1]).any():
            key = ts.copy()
            for c in np.unique(cpu):
                sel = np.flatnonzero(cpu == c)
                seg = ts[sel]
                if len(seg) > 1 and (seg[1:] < seg[:-1]).any():
                    key[sel] = np.maximum.accumulate(seg)
        keys.append(key)
        rows.append(r)
    if not keys:
        return MergedView(np.zeros(0, np.int16), np.zeros(0, np.int64), np.zeros(0, np.int64))

    order = merge_order(keys)
    sidx = [np.full(len(r), st.index, np.int16) for st, r in zip(streams, rows, strict=True)]
    all_ts = np.concatenate([st.buffer.events.column("ts").to_numpy()[r] for st, r in zip(streams, rows,
                                                                                          strict=True)])
    return MergedView(np.concatenate(sidx)[order], np.concatenate(rows)[order], all_ts[order])
