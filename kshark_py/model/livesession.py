"""A :class:`~kshark_py.model.session.Session` of a recording in progress, from its live tables.

Why a real Session: the main window, its rows, the event list and the analyses all read sessions.  A
recording's live model (``kshark_py.capture.live``, which this layer cannot import: it is handed over as
:class:`LiveTables`) already has each stream's events in the reader's schema and order; here each stream
becomes a :class:`~kshark_py.loaders.tracedat.TraceFile` opened on the stream's metadata (the guest's
received file header, a header written for the host: formats, task names, trace id) whose one buffer is a
:class:`LiveBuffer` holding the live table, with the payloads read from the page files' mapped slices.
The host's GUEST records and each guest's TIME_SHIFT are those the files will hold, so the session pairs
and places the streams as it will after Stop.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np
import pyarrow as pa

from ..loaders.buffer import Buffer, CpuStats
from ..loaders.options import CpuData, GuestOption, TimeShiftOption
from ..loaders.tracedat import TraceFile, open_trace
from .session import Session


class LiveTables(Protocol):
    """One stream of a recording in progress (``kshark_py.capture.live.Snapshot``)."""

    name: str
    role: str
    """``"host"`` or ``"guest"``."""
    meta_path: os.PathLike | str
    trace_id: int | None
    events: pa.Table
    lost: pa.Table
    synced: bool
    time_shift: TimeShiftOption | None
    vcpu_pids: tuple[int, ...] | None
    page_size: int
    cpu_lost: dict[int, tuple[int, int]]
    chunks: list[tuple[int, np.ndarray]]


class SliceStore:
    """Record bytes of a live buffer: the decoded slices' pages, each at its base in the stream's data."""

    def __init__(self, chunks: Sequence[tuple[int, np.ndarray]]) -> None:
        self.bases = np.array([b for b, _ in chunks], np.int64)
        self.datas = [d for _, d in chunks]
        order = np.argsort(self.bases, kind="stable")
        self.bases = self.bases[order]
        self.datas = [self.datas[k] for k in order.tolist()]

    def read(self, off: int, n: int) -> bytes:
        k = int(np.searchsorted(self.bases, off, side="right")) - 1
        if k < 0:
            return b""
        rel = off - int(self.bases[k])
        return self.datas[k][rel:rel + n].tobytes()

    def blocks(self, offsets: np.ndarray) -> Iterator[tuple[np.ndarray, int, np.ndarray]]:
        """(indices into ``offsets``, base offset, bytes): one block per slice that holds some."""
        if len(offsets) == 0 or len(self.bases) == 0:
            return
        k = np.searchsorted(self.bases, offsets, side="right") - 1
        order = np.argsort(k, kind="stable")
        ks = k[order]
        for kk in np.unique(ks).tolist():
            if kk < 0:
                continue
            lo, hi = np.searchsorted(ks, [kk, kk + 1])
            yield order[lo:hi], int(self.bases[kk]), self.datas[kk]


class LiveBuffer(Buffer):
    """A buffer whose events are a live table (nothing to decode): the top buffer of a live stream."""

    def __init__(self, tf: TraceFile, t: LiveTables) -> None:
        cpus = t.events.column("cpu").to_numpy()
        seen = sorted(set(t.cpu_lost) | set(np.unique(cpus).tolist()))
        n = max([tf.cpus, *(c + 1 for c in seen)])
        super().__init__(tf, "", tf.meta.trace_clock, t.page_size, [CpuData(c, 0, 0) for c in range(n)], False)
        self._table = t.events
        self._lost = t.lost
        self.store = SliceStore(t.chunks)
        counts = np.bincount(cpus.astype(np.int64), minlength=n) if len(cpus) else np.zeros(n, np.int64)
        self.stats = [CpuStats(c, 0, 0, 0, int(counts[c]), *t.cpu_lost.get(c, (0, 0))) for c in range(n)]


class LiveSessionBuilder:
    """Sessions of one recording's successive live tables; each stream's metadata is opened once."""

    def __init__(self) -> None:
        self._traces: dict[str, TraceFile] = {}

    def _trace(self, path: os.PathLike | str) -> TraceFile:
        key = os.fspath(path)
        tf = self._traces.get(key)
        if tf is None:
            tf = self._traces[key] = open_trace(key)
        return tf

    def build(self, tables: Sequence[LiveTables]) -> Session:
        """The session of these tables (the host's first): as the written files will pair and place them."""
        files = []
        guests = []
        for t in tables:
            tf = self._trace(t.meta_path)
            tf.buffers = [LiveBuffer(tf, t)]
            if t.role == "guest":
                tf.meta.time_shift = t.time_shift if t.synced else None
                vcpus = tf.buffers[0].cpu_count
                pids = t.vcpu_pids if t.vcpu_pids and len(t.vcpu_pids) == vcpus else (-1,) * vcpus
                guests.append(GuestOption(t.name, t.trace_id or 0, tuple(pids)))
            files.append(tf)
        for t, tf in zip(tables, files, strict=True):
            if t.role == "host":
                tf.meta.guests = guests
        return Session.from_files(files)

    def close(self) -> None:
        for tf in self._traces.values():
            tf.close()
        self._traces.clear()
