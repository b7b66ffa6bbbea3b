"""The events of a recording while it runs: per stream (host, each guest) growing columns, on the host clock.

Why: the capture panel's counters say how much arrived, not what.  A :class:`LiveCapture` decodes, on each
:meth:`~LiveCapture.poll`, the complete pages added since the previous poll to every per-CPU page file of a
:class:`~kshark_py.capture.session.HostSession` (the host's spool files, each guest's received streams) with
the reader's own page decoder, exactly as :mod:`.livecount` counts them, and keeps each slice's records as
columns (raw time, payload place, common fields, missed-event marks).  The page bytes stay in the files: a
slice keeps a read-only map of the file region it decoded, so payloads are read on demand as from a file.

:meth:`LiveStream.snapshot` gives a stream's events table in the reader's schema and report order
(:mod:`kshark_py.loaders.schema`, :func:`~kshark_py.loaders.merge.merge_positions`), its times put through the
same pipeline the finished file's reader uses (:func:`~kshark_py.loaders.timestamps.to_trace_time` with the
TIME_SHIFT the file will hold, built from the time-sync samples received so far and parsed by the reader's
option parser, and TSC2NSEC): after the last poll the tables equal the written files' tables.  A guest without
samples yet is marked ``synced=False`` and shifted so its first event meets the host's first event.

Memory: ``keep_seconds`` / ``keep_events`` drop the oldest decoded slices from the live tables (a slice at a
time); the files keep everything and the lost-event counters count everything.
"""

from __future__ import annotations

import bisect
import contextlib
import mmap
import os
import shutil
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from ..loaders import schema
from ..loaders.buffer import common_fields
from ..loaders.layout import OptionId, layouts
from ..loaders.merge import merge_positions
from ..loaders.options import TimeShiftOption, TraceMetadata, Tsc2Nsec, parse_option
from ..loaders.pages import decode_pages
from ..loaders.timestamps import to_trace_time
from .livecount import POLL_BUDGET, SLICE_BYTES, PageFormat, StreamCounter, read_guest_metadata
from .tsync import CpuSamples, time_shift_payload
from .writer import metadata_stream

if TYPE_CHECKING:
    from .session import GuestSession, HostSession

HOST = "host"
SKIP_AHEAD = 16 << 20
"""A bounded live view's CPU this many bytes behind skips ahead."""
SKIP_KEEP = 2 << 20
"""... to its newest this many bytes."""
DECODE_SHARE = 0.1
"""A bounded live view decodes for at most about this share of a core (its poll budget adapts)."""
MIN_BUDGET = 256 << 10
FILL_GAPS_MAX = 128 << 20
"""The final poll decodes the pages a bounded view skipped if they are at most this many bytes in all (about a
second); beyond, Stop would wait for them: the view shows the newest events anyway, and the counters
say they are partial (the files hold everything)."""
MAP_MIN = 1 << 20
"""Slices at least this big are mapped from their file, smaller ones copied."""


@dataclass
class Slice:
    """The records of one decoded run of whole pages of one CPU file."""

    base: int
    """Where this slice's bytes start in the stream's virtual data (the ``offset`` column's origin)."""
    data: np.ndarray
    """The slice's page bytes (a read-only map of the file region)."""
    ts: np.ndarray  # uint64 raw
    off: np.ndarray  # int64 payload offset in ``data``
    length: np.ndarray  # int32
    eid: np.ndarray  # int32
    pid: np.ndarray  # int32
    flags: np.ndarray  # uint8
    preempt: np.ndarray  # uint8
    missed: np.ndarray  # int64 per record: 0, -1 unknown, > 0 count
    conv: np.ndarray | None = None
    conv_key: object = None


class LiveCpu(StreamCounter):
    """One growing per-CPU page file, decoded slice by slice: the counts of a :class:`StreamCounter`, and the
    records themselves.  :meth:`safe_update` decodes what arrived.

    Skipping ahead: with a bounded live view (``stream.skip_bytes``), a CPU more than that many bytes behind
    jumps to its newest :data:`SKIP_KEEP` bytes; the pages jumped over are a gap, decoded by the final,
    unbudgeted poll (after Stop), so the view stays current at full speed and the last tables are whole.
    Meanwhile :attr:`events` and :attr:`lost` count the decoded pages only (:attr:`gap_bytes` are not yet)."""

    def __init__(self, cpu: int, path: str | os.PathLike, fmt: PageFormat, stream: LiveStream) -> None:
        super().__init__(path, fmt)
        self.cpu = cpu
        self.stream = stream
        self.slices: list[Slice] = []
        """In file order (their ``base`` is the CPU's file position)."""
        self.gaps: list[tuple[int, int]] = []
        self._pos = 0

    @property
    def gap_bytes(self) -> int:
        return sum(b - a for a, b in self.gaps)

    def update(self, budget: int | None = None) -> int:
        ps = self.fmt.page_size
        if budget is None:  # the final poll: the gaps first (older than anything after them), if affordable
            done = 0
            if self.stream.fill_gaps:
                done = sum(self._decode_range(a, b) for a, b in self.gaps)
                self.gaps = []
            return done + super().update(None)
        skip = self.stream.skip_bytes
        if skip:
            with contextlib.suppress(FileNotFoundError):
                size = os.stat(self.path).st_size
                end = size - size % ps
                if end - self.counted_bytes > skip:
                    jump = end - (SKIP_KEEP - SKIP_KEEP % ps)
                    self.gaps.append((self.counted_bytes, jump))
                    self.counted_bytes = jump
        return super().update(budget)

    def _decode_range(self, a: int, b: int) -> int:
        step = SLICE_BYTES - SLICE_BYTES % self.fmt.page_size
        with open(self.path, "rb") as f:
            for pos in range(a, b, step):
                self._count(self._read(f, pos, min(step, b - pos)))
        return b - a

    def _read(self, f, pos: int, n: int) -> np.ndarray:
        """File bytes [pos, pos+n) that stay valid while the file grows: a read-only map when aligned and big
        (the bytes stay in the page cache, not in our heap), else a copy (a slow stream's small slices would
        otherwise take a map each: the kernel allows a process ~65,000)."""
        self._pos = pos
        if pos % mmap.ALLOCATIONGRANULARITY == 0 and n >= MAP_MIN:
            return np.frombuffer(mmap.mmap(f.fileno(), n, offset=pos, access=mmap.ACCESS_READ), np.uint8)
        f.seek(pos)
        return np.frombuffer(f.read(n), np.uint8)

    def _count(self, data: np.ndarray) -> None:
        fmt = self.fmt
        dec = decode_pages(data, fmt.page_size, fmt.lay, fmt.data_offset)
        self._tally(dec)
        if len(dec.ts):
            eid, pid, flags, preempt = common_fields(data, dec.offset, dec.length, fmt.lay)
            s = Slice((self.cpu << 44) + self._pos, data, dec.ts, dec.offset, dec.length, eid, pid, flags, preempt,
                      dec.missed)
            if self.slices and self.slices[-1].base > s.base:  # a gap decoded after newer pages
                self.slices.insert(bisect.bisect([x.base for x in self.slices], s.base), s)
            else:
                self.slices.append(s)

    def converted(self, s: Slice) -> np.ndarray:
        """A slice's times on the host clock (cached until the stream's conversion changes)."""
        key = self.stream.conv_key
        if s.conv is None or s.conv_key != key:
            ts = self.stream.convert(s.ts, self.cpu)
            s.conv, s.conv_key = ts, key
        return s.conv


@dataclass
class Snapshot:
    """One stream's live events as the reader would give them, and what was lost."""

    name: str
    events: pa.Table
    """Schema :data:`~kshark_py.loaders.schema.EVENTS`, report order, host-clock times."""
    lost: pa.Table
    """Schema :data:`~kshark_py.loaders.schema.LOST`."""
    synced: bool
    """Times are on the host clock (host; a guest with time-sync samples)."""
    align_ns: int
    """ns added to a guest not synchronized yet (its first event meets the host's first)."""
    cpu_lost: dict[int, tuple[int, int]] = field(default_factory=dict)
    """cpu -> (lost events counted so far, pages that lost an unknown number), trimmed slices included."""
    chunks: list[tuple[int, np.ndarray]] = field(default_factory=list)
    """(base, bytes) of every slice in the table: the ``offset`` column points into them."""
    role: str = HOST
    meta_path: Path | None = None
    """A trace file of the stream's metadata (formats, task names, trace id): the guest's received file, a
    header written for the host."""
    trace_id: int | None = None
    time_shift: TimeShiftOption | None = None
    """The TIME_SHIFT the guest's file will hold (None: none yet)."""
    vcpu_pids: tuple[int, ...] | None = None
    page_size: int = 0


class LiveStream:
    """The host or one guest: its CPUs' files, its page format and metadata file, its time conversion."""

    def __init__(self, name: str, role: str, meta_path: Path, trace_id: int | None) -> None:
        self.name = name
        self.role = role
        self.meta_path = meta_path
        self.trace_id = trace_id
        self.fmt: PageFormat | None = None
        self.cpus: dict[int, LiveCpu] = {}
        self.time_shift: TimeShiftOption | None = None
        self.tsc2nsec: Tsc2Nsec | None = None
        self.conv_key: object = None
        self.vcpu_pids: tuple[int, ...] | None = None
        self.skip_bytes: int | None = None
        """Backlog past which a CPU skips ahead (see :class:`LiveCpu`); None: decode every page in order."""
        self.fill_gaps = True
        """The final poll decodes the pages skipped (False: too many; the counts stay partial)."""
        self.error: str | None = None

    def convert(self, raw: np.ndarray, cpu: int) -> np.ndarray:
        return to_trace_time(raw, np.full(len(raw), cpu, np.int16), time_shift=self.time_shift,
                             tsc2nsec=self.tsc2nsec, ts_offset=0)

    def set_conversion(self, time_shift: TimeShiftOption | None, tsc2nsec: Tsc2Nsec | None, key: object) -> None:
        if key != self.conv_key:
            self.time_shift, self.tsc2nsec, self.conv_key = time_shift, tsc2nsec, key

    @property
    def synced(self) -> bool:
        return self.role == HOST or self.time_shift is not None

    def cpu(self, cpu: int, path: str | os.PathLike) -> LiveCpu | None:
        c = self.cpus.get(cpu)
        if c is None and self.fmt is not None:
            c = self.cpus[cpu] = LiveCpu(cpu, path, self.fmt, self)
        return c

    def first_ts(self) -> int | None:
        firsts = [int(c.converted(c.slices[0])[0]) for c in list(self.cpus.values()) if c.slices]
        return min(firsts) if firsts else None

    def trim(self, keep_ns: int | None, keep_events: int | None) -> None:
        """Drop the oldest slices past the limits (whole slices: the newest data always stays)."""
        cpus = list(self.cpus.values())
        if keep_ns is not None:
            last = [int(c.converted(c.slices[-1])[-1]) for c in cpus if c.slices]
            if last:
                cut = max(last) - keep_ns
                for c in cpus:
                    k = 0
                    while k < len(c.slices) - 1 and int(c.converted(c.slices[k])[-1]) < cut:
                        k += 1
                    if k:
                        c.slices = c.slices[k:]
        if keep_events is not None:
            while True:
                total = sum(len(s.ts) for c in cpus for s in c.slices)
                olds = [(int(c.converted(c.slices[0])[0]), c) for c in cpus if len(c.slices) > 1]
                if total <= keep_events or not olds:
                    break
                c = min(olds, key=lambda x: x[0])[1]
                c.slices = c.slices[1:]

    def snapshot(self, align_ns: int = 0) -> Snapshot:
        """The stream's events so far, merged in report order (trace-cmd's per-CPU merge, CPUs in order)."""
        cpus = sorted(self.cpus.values(), key=lambda c: c.cpu)
        per = [(c, list(c.slices)) for c in cpus]
        segs, cols, chunks = [], {k: [] for k in ("pid", "eid", "flags", "preempt", "off", "len")}, []
        cpu_col, missed = [], []
        for c, slices in per:
            segs.append(np.concatenate([c.converted(s) for s in slices]).view(np.int64) if slices
                        else np.zeros(0, np.int64))
            for s in slices:
                cols["pid"].append(s.pid)
                cols["eid"].append(s.eid)
                cols["flags"].append(s.flags)
                cols["preempt"].append(s.preempt)
                cols["off"].append(s.off + s.base)
                cols["len"].append(s.length)
                missed.append(s.missed)
                chunks.append((s.base, s.data))
            cpu_col.append(np.full(len(segs[-1]), c.cpu, np.int16))
        n = sum(len(s) for s in segs)
        cat = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in cols.items()}
        inv = merge_positions(segs).astype(np.int64) if n else np.zeros(0, np.int64)
        ts_src = np.concatenate(segs) if segs else np.zeros(0, np.int64)
        if align_ns:
            ts_src = ts_src + np.int64(align_ns)

        def place(a: np.ndarray, dtype) -> np.ndarray:
            out = np.empty(n, dtype)
            out[inv] = a
            return out

        ts = place(ts_src, np.int64)
        cpu = place(np.concatenate(cpu_col) if cpu_col else np.zeros(0, np.int16), np.int16)
        events = schema.events_table(ts=ts, cpu=cpu, pid=place(cat["pid"], np.int32),
                                     event_id=place(cat["eid"], np.int32),
                                     flags=place(cat["flags"], np.uint8), preempt=place(cat["preempt"], np.uint8),
                                     offset=place(cat["off"], np.int64), length=place(cat["len"], np.int32))
        m = np.concatenate(missed) if missed else np.zeros(0, np.int64)
        nz = np.flatnonzero(m)
        rows = inv[nz]
        o = np.argsort(rows, kind="stable")
        rows, count = rows[o], m[nz][o]
        lost = schema.lost_table(row=rows, ts=ts[rows], cpu=cpu[rows], count=count)
        return Snapshot(self.name, events, lost, self.synced, align_ns,
                        {c.cpu: (c.lost, c.lost_unknown_pages) for c in cpus}, chunks, self.role, self.meta_path,
                        self.trace_id, self.time_shift, self.vcpu_pids,
                        self.fmt.page_size if self.fmt is not None else 0)

    @property
    def events(self) -> int:
        return sum(c.events for c in list(self.cpus.values()))

    @property
    def lost(self) -> int:
        return sum(c.lost for c in list(self.cpus.values()))

    @property
    def lost_unknown_pages(self) -> int:
        return sum(c.lost_unknown_pages for c in list(self.cpus.values()))


class LiveCapture:
    """The live events of a :class:`~kshark_py.capture.session.HostSession`: poll it, then snapshot it.

    Thread-safe as :class:`~.livecount.GuestCounts`: one poll at a time (the recording thread's), snapshots
    from any thread at any time (they see the slices decoded so far).
    """

    def __init__(self, session: HostSession, *, keep_seconds: float | None = None,
                 keep_events: int | None = None) -> None:
        self.session = session
        self.keep_ns = int(keep_seconds * 1e9) if keep_seconds else None
        self.keep_events = int(keep_events) if keep_events else None
        self.streams: dict[str, LiveStream] = {}
        self._skip = SKIP_AHEAD if self.keep_ns is not None or self.keep_events is not None else None
        self._budget = POLL_BUDGET
        self._last_poll = 0.0
        """A bounded view shows the newest events only: far behind, it skips ahead (see :class:`LiveCpu`)."""
        self.agent_versions: dict[str, str | None] = {}
        """Guest name -> the VERSION its metadata carries (as :attr:`.livecount.GuestCounts.agent_versions`)."""
        self._dir = Path(tempfile.mkdtemp(prefix="kshark-live-"))
        """The host's metadata file: it must outlive the session's temp files (a view reads it after Stop)."""
        weakref.finalize(self, shutil.rmtree, self._dir, True)
        self._lock = threading.Lock()
        self._turn = 0
        self.generation = 0
        """Incremented by every poll that decoded something or changed a conversion."""

    # -- streams
    def _host(self) -> LiveStream | None:
        s = self.session
        if not s.record_host or s.recorder.meta is None or not s.recorder.cpu_files:
            return None
        st = self.streams.get(HOST)
        if st is None:
            rec = s.recorder
            path = self._dir / s.output.name  # the host file's name: the stream's label
            st = LiveStream(HOST, HOST, path, rec.trace_id)
            try:
                path.write_bytes(metadata_stream(rec.meta, trace_id=rec.trace_id, cpu_count=rec.ncpus,
                                                 compression=None))
                st.fmt = read_guest_metadata(path)[0]
            except Exception as e:  # shown as no live host rows; the recording is unaffected
                st.error = str(e) or type(e).__name__
            st.skip_bytes = self._skip
            self.streams[HOST] = st
        return st

    def _guest(self, g: GuestSession) -> LiveStream | None:
        if g.failed or g.resp is None or not g.receivers:
            return None
        st = self.streams.get(g.name)
        if st is None:
            st = LiveStream(g.name, "guest", g.file, g.resp.trace_id)
            st.vcpu_pids = tuple(g.vcpu_pids) if g.vcpu_pids else None
            try:
                st.fmt, self.agent_versions[g.name] = read_guest_metadata(g.file)
            except Exception as e:
                st.error = str(e) or type(e).__name__
            st.skip_bytes = self._skip
            self.streams[g.name] = st
        return st

    def _cpus(self) -> list[LiveCpu]:
        out = []
        host = self._host()
        if host is not None:
            for cpu, path in enumerate(list(self.session.recorder.cpu_files)):
                if (c := host.cpu(cpu, path)) is not None:
                    out.append(c)
        for g in self.session.guests:
            st = self._guest(g)
            if st is None:
                continue
            for r in list(g.receivers):
                if (c := st.cpu(r.cpu, r.path)) is not None:
                    out.append(c)
        return out

    # -- time
    def _update_conversions(self) -> bool:
        s = self.session
        tsc = Tsc2Nsec(s.tsc2nsec[0], s.tsc2nsec[1], 0) if s.tsc2nsec else None
        changed = False
        for name, st in self.streams.items():
            old = st.conv_key
            if name == HOST:
                st.set_conversion(None, tsc, ("host", s.tsc2nsec))
            else:
                g = next((g for g in s.guests if g.name == name), None)
                shift, key = guest_time_shift(g, s.recorder.trace_id)
                st.set_conversion(shift, tsc, (key, s.tsc2nsec))
            changed |= st.conv_key != old
        return changed

    def poll(self, budget: int | None = POLL_BUDGET, *, wait: bool = False) -> int:
        """Decode the new complete pages of every stream (``budget`` bytes in all, shared in turn; None:
        everything), take the latest time-sync samples, trim to the limits; returns the bytes decoded."""
        if not self._lock.acquire(blocking=wait):
            return 0
        try:
            cpus = self._cpus()
            changed = self._update_conversions()
            done = 0
            cpu0, now = time.thread_time(), time.monotonic()
            if budget is not None and self._skip:  # a bounded view: at most DECODE_SHARE of a core
                budget = min(budget, self._budget)
            if budget is None:  # the final poll: skipped pages are decoded only if that is quick
                gaps = sum(c.gap_bytes for c in cpus)
                for st in list(self.streams.values()):
                    st.fill_gaps = gaps <= FILL_GAPS_MAX
            if cpus:
                self._turn = (self._turn + 1) % len(cpus)
                cpus = cpus[self._turn:] + cpus[:self._turn]
                for k, c in enumerate(cpus):
                    if budget is None:
                        done += c.safe_update()
                    elif budget - done > 0:
                        done += c.safe_update(max((budget - done) // (len(cpus) - k), 1))
            if self.keep_ns is not None or self.keep_events is not None:
                for st in list(self.streams.values()):
                    st.trim(self.keep_ns, self.keep_events)
            if budget is not None and self._skip and done:
                self._adapt(done, time.thread_time() - cpu0, now)
            if done or changed:
                self.generation += 1
            return done
        finally:
            self._lock.release()

    def _adapt(self, done: int, cpu: float, now: float) -> None:
        """The next poll's byte budget: what this one decoded, scaled so decoding takes DECODE_SHARE of the
        time between polls (a bounded view far behind skips ahead anyway: decoding every page of a stream at
        full speed would take a core)."""
        interval = max(now - self._last_poll if self._last_poll else 0.25, 0.05)
        self._last_poll = now
        allowed = DECODE_SHARE * interval
        if cpu > allowed:  # too dear: decode less next time (the skip-ahead keeps the view at the newest)
            self._budget = max(MIN_BUDGET, min(POLL_BUDGET, int(done * allowed / cpu)))
        else:  # cheap enough: let it grow back (a slow stream never shrinks it)
            self._budget = min(POLL_BUDGET, self._budget * 2)

    def snapshots(self) -> list[Snapshot]:
        """Every stream's events now: the host first, then the guests in session order.  A guest not
        synchronized yet is shifted so its first event meets the host's first event."""
        host = self.streams.get(HOST)
        host_first = host.first_ts() if host is not None else None
        out = []
        for st in self.ordered():
            align = 0
            if not st.synced and host_first is not None:
                first = st.first_ts()
                align = host_first - first if first is not None else 0
            out.append(st.snapshot(align))
        return out

    def ordered(self) -> list[LiveStream]:
        names = [HOST] + [g.name for g in self.session.guests]
        return [self.streams[n] for n in names if n in self.streams and self.streams[n].fmt is not None]

    def counts(self) -> LiveCounts:
        """The guests' live event counts (what :class:`~.livecount.GuestCounts` gives) from this model's own
        decoding: with a live view the guest pages are decoded once, not twice."""
        return LiveCounts(self)

    def summary(self) -> list[tuple[str, int, int, int]]:
        """(stream, events, lost events, pages with an unknown loss) of every stream, counted so far."""
        return [(st.name, st.events, st.lost, st.lost_unknown_pages) for st in self.ordered()]


def guest_time_shift(g: GuestSession | None, peer_trace_id: int) -> tuple[TimeShiftOption | None, object]:
    """The TIME_SHIFT the guest's file will hold, from the samples so far, as the reader parses it
    (None until every VCPU has a sample, as the file gets none then); and a key that changes with them."""
    ts = g.tsync if g is not None else None
    if ts is None:
        return None, None
    samples = []
    for c in list(ts.samples):  # copied: the time-sync thread appends to them
        n = min(len(c.times), len(c.offsets), len(c.scalings), len(c.fractions))
        samples.append(CpuSamples(c.times[:n], c.offsets[:n], c.scalings[:n], c.fractions[:n]))
    key = tuple(len(c.times) for c in samples)
    with contextlib.suppress(Exception):
        if ts.complete():
            lay = layouts("<", 8)  # the host writes guest files little-endian with 8-byte longs
            payload = time_shift_payload(lay, peer_trace_id, ts.flags, samples)
            meta = TraceMetadata()
            parse_option(meta, OptionId.TIME_SHIFT, payload, 0, lay, 7)
            return meta.time_shift, key
    return None, key


class LiveCounts:
    """:class:`~.livecount.GuestCounts`'s interface over a :class:`LiveCapture` (its CPUs are counters too)."""

    def __init__(self, live: LiveCapture) -> None:
        self.live = live

    @property
    def agent_versions(self) -> dict[str, str | None]:
        return self.live.agent_versions

    def poll(self, budget: int | None = POLL_BUDGET, *, wait: bool = False) -> int:
        return self.live.poll(budget, wait=wait)

    def counter(self, guest: str, cpu: int) -> StreamCounter | None:
        st = self.live.streams.get(guest)
        return st.cpus.get(cpu) if st is not None and guest != HOST else None
