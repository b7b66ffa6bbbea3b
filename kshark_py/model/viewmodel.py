"""What each timeline row looks like between two times at N pixels: the visualization model.

Redrawing costs in proportion to pixels, not events.  Every row is backed by sorted interval
arrays (task runs, in-guest intervals, VCPU states) and sorted event timestamps; a render samples
each pixel column with ``searchsorted`` (a few probes per pixel) and counts events per column from
the bin edges.  The result is one image of integer codes for all rows (rows x sub-rows x pixels):
what each pixel shows (``PX_*``), the row's key there (a pid, a CPU, a VCPU state) and its opacity;
``plots/colors`` maps the codes to colours through lookup tables and the plot layer shows a single
image: ten million events never reach Qt, and the model knows no colour.

Zoomed far out, a CPU row still says something: each pixel takes the colour of the task that
dominates it (most probes), its opacity is the exact busy fraction of the column (from cumulative
busy time), and the tick strip above it shades by event density; lost-event marks stay visible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .distinct import TICK_BLOCK, block_counts
from .emitter import Emitter
from .session import Session

SUBROWS = 10
"""Image rows per timeline row: 2 for the event-tick strip, 7 for the body, 1 gap."""
TICK_ROWS = slice(0, 2)
BODY_ROWS = slice(2, 9)
SAMPLES = 6
"""Probes per pixel column for the dominant-task choice."""

STATE_ORDER = ["guest", "exit", "preempted", "halted", "unknown"]
"""VCPU state codes of a state lane (the row's key): index in this list."""

PX_EMPTY, PX_TASK, PX_CPU, PX_STATE, PX_TICK, PX_LOST = range(6)
"""What an image pixel shows: nothing; a task (key: pid); the CPU a task ran on (key: CPU + 1); a VCPU
state (key: code in :data:`STATE_ORDER`); the event-tick strip; a lost-events mark."""
CPU_KEY_SHIFT = 7
"""Added to a CPU key before it is coloured as a pid would be, so CPU colours stand apart."""


@dataclass
class Intervals:
    """Sorted, non-overlapping intervals with an integer key each (pid, state, CPU...)."""

    start: np.ndarray  # int64
    end: np.ndarray  # int64
    key: np.ndarray  # int64
    busy_cum: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        busy = np.where(self.key != 0, self.end - self.start, 0).astype(np.int64)
        self.busy_cum = np.concatenate(([0], np.cumsum(busy)))

    @classmethod
    def empty(cls) -> Intervals:
        z = np.zeros(0, np.int64)
        return cls(z, z, z)

    def at(self, t: np.ndarray) -> np.ndarray:
        """Key of the interval containing each t, -1 where none does."""
        if len(self.start) == 0:
            return np.full(t.shape, -1, np.int64)
        i = np.searchsorted(self.start, t, side="right") - 1
        ic = np.clip(i, 0, len(self.start) - 1)
        ok = (i >= 0) & (t < self.end[ic])
        return np.where(ok, self.key[ic], -1)

    def busy_until(self, t: np.ndarray) -> np.ndarray:
        """Total length of non-zero-key intervals before each t (exact, piecewise linear)."""
        if len(self.start) == 0:
            return np.zeros(t.shape, np.int64)
        i = np.searchsorted(self.start, t, side="right") - 1
        ic = np.clip(i, 0, len(self.start) - 1)
        part = np.clip(t - self.start[ic], 0, self.end[ic] - self.start[ic])
        part = np.where((i >= 0) & (self.key[ic] != 0), part, 0)
        return np.where(i >= 0, self.busy_cum[ic] + part, 0)


class EventTicks:
    """Where one row's events are, without a copy of their timestamps.

    A row ticks for the events of its stream whose ``key`` column (CPU or pid) equals ``value``
    and which pass the stream's filter mask.  Copying those timestamps out per row would hold the
    whole ``ts`` column a second time (136 MB for 17 M events); instead we keep, per block of
    :attr:`BLOCK` table rows, the running count of matching events (4 bytes per 64 rows) and
    answer "how many between two times" exactly: binary search the stream's shared, monotone
    time column for the two table positions, take whole blocks from the running count and count
    the partial block at each end from the key column.  A render asks this for its pixel edges,
    so the cost is (pixels x BLOCK) whatever the number of events.
    """

    BLOCK = TICK_BLOCK

    def __init__(self, times: np.ndarray, key: np.ndarray, value: int, mask: np.ndarray | None = None,
                 cum: np.ndarray | None = None) -> None:
        self.times = times
        """The stream's event times in table order, non-decreasing (shared, not copied)."""
        self.key = key
        self.value = value
        self.mask = mask
        self.cum = block_counts(key, value, mask, self.BLOCK) if cum is None else cum
        """Matching events before each block boundary (``cum``: given, e.g. the session's unfiltered
        CPU counts, :meth:`Session.cpu_ticks`)."""

    def __len__(self) -> int:
        return int(self.cum[-1])

    def _hits(self, idx: np.ndarray) -> np.ndarray:
        ok = self.key[idx] == self.value
        if self.mask is not None:
            ok &= self.mask[idx]
        return ok

    def before(self, pos: np.ndarray) -> np.ndarray:
        """Matching events among table rows ``[0, pos)`` for each position (exact)."""
        pos = np.asarray(pos, np.int64)
        if len(self.key) == 0:
            return np.zeros(len(pos), np.int64)
        blk = pos // self.BLOCK
        start = blk * self.BLOCK
        idx = start[:, None] + np.arange(self.BLOCK)
        inside = idx < pos[:, None]
        idx = np.minimum(idx, max(len(self.key) - 1, 0))
        part = (self._hits(idx) & inside).sum(axis=1)
        return self.cum[blk].astype(np.int64) + part

    def positions(self, t: np.ndarray) -> np.ndarray:
        """Table positions of times ``t`` (first row at or after each)."""
        return np.searchsorted(self.times, t, side="left")

    def counts(self, edges: np.ndarray, pos: np.ndarray | None = None) -> np.ndarray:
        """Matching events in each ``[edges[k], edges[k+1])``; ``pos`` = :meth:`positions` of the
        edges when the caller shares it among the rows of one stream."""
        if pos is None:
            pos = self.positions(edges)
        return np.diff(self.before(pos))

    def nearest(self, t: int, within: float) -> int | None:
        """Time of the matching event nearest ``t`` if one lies within ``within`` ns."""
        a = int(np.searchsorted(self.times, t - within, side="left"))
        b = int(np.searchsorted(self.times, t + within, side="right"))
        idx = np.arange(a, b)
        idx = idx[self._hits(idx)] if len(idx) else idx
        if not len(idx):
            return None
        tt = self.times[idx].astype(np.int64)
        return int(tt[np.argmin(np.abs(tt - t))])

    def nth(self, k: int) -> int:
        """Table position of the ``k``-th matching event (0-based): the running count per block
        finds the block, one block of the key column finds the row."""
        blk = int(np.searchsorted(self.cum, k, side="right")) - 1
        idx = blk * self.BLOCK + np.arange(self.BLOCK)
        idx = idx[idx < len(self.key)]
        return int(idx[np.flatnonzero(self._hits(idx))[k - int(self.cum[blk])]])

    def nearest_position(self, t: int) -> int | None:
        """Table position of the matching event nearest ``t`` in time (ties: the earlier one),
        however far; None when the row has no events.  Costs two block scans, not a pass."""
        n = len(self)
        if n == 0:
            return None
        c = int(self.before(self.positions(np.array([t], np.int64)))[0])
        cand = [self.nth(k) for k in (c - 1, c) if 0 <= k < n]
        return min(cand, key=lambda i: abs(int(self.times[i]) - t))

    def timestamps(self) -> np.ndarray:
        """The matching events' times (a copy: for tests and small rows)."""
        hit = self.key == self.value
        if self.mask is not None:
            hit &= self.mask
        return self.times[hit]


@dataclass
class Row:
    """One timeline row: what it shows and where its data comes from."""

    kind: str
    """``cpu`` | ``task`` | ``vcpu_host`` | ``vcpu_guest`` | ``vcpu_state``."""
    stream: int
    label: str
    cpu: int | None = None
    pid: int | None = None
    guest: str | None = None
    vcpu: int | None = None
    intervals: Intervals | None = None
    overlay: Intervals | None = None
    """vcpu_host rows: in-guest intervals, shaded over the thread's runs."""
    events: EventTicks | None = None
    """The events this row ticks for (after filters)."""
    lost: np.ndarray | None = None
    color_by: str = "pid"
    """``pid`` (task colours), ``cpu`` (task rows: colour by the CPU it ran on), ``state``."""
    data: object | None = None
    """What an analysis row (:meth:`TimelineModel.add_custom_row`) shows; a plots layer draws it."""


@dataclass
class RenderResult:
    kind: np.ndarray
    """uint8 (nrows*SUBROWS, npix): what each image pixel shows (``PX_*``)."""
    alpha: np.ndarray
    """uint8 (nrows*SUBROWS, npix): its opacity (busy fraction, event density, highlight dimming)."""
    overlay: np.ndarray
    """bool (nrows*SUBROWS, npix): in-guest time shaded over a VCPU thread's run."""
    t0: int
    t1: int
    counts: np.ndarray  # int64 (nrows, npix) events per pixel column per row
    dominant: np.ndarray  # int64 (nrows, npix) key drawn in each column (-1: nothing)
    first: int = 0
    """Index in :attr:`TimelineModel.rows` of the first rendered row (image row 0)."""

    @property
    def npix(self) -> int:
        """Pixel columns of the render."""
        return int(self.kind.shape[1])


_I64_MAX_F = float(np.nextafter(2.0 ** 63, 0))  # the largest float64 below 2**63: casts of it fit int64


def _column_grid(t0: int, t1: int, npix: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``npix + 1`` column edges of [t0, t1] and :data:`SAMPLES` probe times per column, int64 ns.

    Exact integer offsets from ``t0`` while the view fits comfortably in int64; a view over the whole
    int64 range (a guest placed by a wild TIME_SHIFT) is computed in float64 and clipped, so no cast
    overflows (numpy's cast of an out-of-range float is undefined: garbage columns and a warning).
    """
    step = (t1 - t0) / npix
    if -2**62 < t0 and t1 < 2**62:
        edges = t0 + (np.arange(npix + 1, dtype=np.float64) * step).astype(np.int64)
        probes = (edges[:-1, None] + (np.arange(SAMPLES) + 0.5) / SAMPLES * step).astype(np.int64)
        return edges, probes
    fedges = float(t0) + np.arange(npix + 1, dtype=np.float64) * step
    fprobes = fedges[:-1, None] + (np.arange(SAMPLES) + 0.5) / SAMPLES * step
    return (np.clip(fedges, -2.0 ** 63, _I64_MAX_F).astype(np.int64),
            np.clip(fprobes, -2.0 ** 63, _I64_MAX_F).astype(np.int64))


class TimelineModel:
    """The rows of a session's timeline and how to render them (no Qt).

    Which rows show is state a session file saves, in KernelShark's terms: per stream, the CPUs
    whose rows show (a guest's CPU row is its "VCPUn (guest CPU)" row); per mapped guest VCPU, its
    pair rows (the host thread and its state lane, KernelShark's "combo"); and the task rows, in
    the order they were added.  :attr:`rows` is derived from that state, top to bottom: host CPUs,
    then each guest VCPU (pair rows, then guest CPU), then instances' CPUs, then tasks.  Every
    change rebuilds :attr:`rows` and emits :attr:`rows_changed`; views re-read the rows from it.
    Built rows are cached, so showing a row again costs nothing.
    """

    def __init__(self, session: Session, sources: RowSources) -> None:
        self.session = session
        self.src = sources
        self.rows: list[Row] = []
        """What is drawn, top to bottom (read-only: change it through the methods below)."""
        self.highlight_pid: tuple[int, int] | None = None
        """(stream, pid) whose runs are emphasized on CPU rows (others dimmed)."""
        self.rows_changed = Emitter()
        """Emitted (no arguments) after :attr:`rows` changed."""
        self._vcpu_map: list = []
        self._hidden_cpus: dict[int, set[int]] = {}
        self._hidden_pairs: set[tuple[str, int]] = set()
        self._tasks: list[tuple[int, int]] = []
        self._custom: list[Row] = []
        self._cache: dict[tuple, Row] = {}

    # -- which rows show ------------------------------------------------------------------------
    def default_rows(self, vcpu_map: list | None = None) -> None:
        """Every CPU of every stream and every mapped VCPU pair; no task rows."""
        self._vcpu_map = list(vcpu_map or [])
        self._hidden_cpus, self._hidden_pairs, self._tasks = {}, set(), []
        self._rebuild()

    def set_sources(self, sources: RowSources, vcpu_map: list) -> None:
        """Rebuild every row from new sources and VCPU map (a stream's times changed: a time
        offset); the CPU, pair and task choices are kept."""
        self.src = sources
        self._vcpu_map = list(vcpu_map)
        self._cache = {}
        self._rebuild()

    def set_vcpu_map(self, vcpu_map: list) -> None:
        """A new VCPU map (new pair rows); the CPU, pair and task choices are kept."""
        self._vcpu_map = list(vcpu_map)
        self._rebuild()

    def cpu_streams(self) -> list[tuple[int, int]]:
        """(stream index, CPU count) of every stream that has CPU rows, in row order."""
        return [(st.index, st.cpu_count) for st in self._cpu_stream_order()]

    def visible_cpus(self, stream: int) -> list[int]:
        """The CPUs of ``stream`` whose rows show."""
        hidden = self._hidden_cpus.get(stream, set())
        return [c for c in range(self.session.streams[stream].cpu_count) if c not in hidden]

    def set_visible_cpus(self, stream: int, cpus) -> None:
        """Show exactly these CPU rows of ``stream`` (KernelShark's Plots > CPUs)."""
        n = self.session.streams[stream].cpu_count
        shown = {int(c) for c in cpus}
        self._hidden_cpus[stream] = {c for c in range(n) if c not in shown}
        self._rebuild()

    def pairs(self) -> list[tuple[str, int]]:
        """Every mapped (guest, vcpu) that has pair rows (host thread + state lane)."""
        return [(m.guest, m.vcpu) for m in self._mapped()]

    def visible_pairs(self) -> list[tuple[str, int]]:
        return [p for p in self.pairs() if p not in self._hidden_pairs]

    def set_visible_pairs(self, pairs) -> None:
        """Show exactly these VCPU pairs' host thread and state rows."""
        shown = {(str(g), int(v)) for g, v in pairs}
        self._hidden_pairs = {p for p in self.pairs() if p not in shown}
        self._rebuild()

    def visible_tasks(self) -> list[tuple[int, int]]:
        """(stream, pid) of the task rows, in row order."""
        return list(self._tasks)

    def set_visible_tasks(self, tasks) -> None:
        """Show exactly these task rows, in this order (KernelShark's Plots > Tasks)."""
        out: list[tuple[int, int]] = []
        for s, p in tasks:
            if (int(s), int(p)) not in out:
                out.append((int(s), int(p)))
        self._tasks = out
        self._rebuild()

    def add_task_row(self, stream: int, pid: int) -> Row:
        """Show the task row of (stream, pid) (at the end; where it is if already shown)."""
        key = (int(stream), int(pid))
        if key not in self._tasks:
            self._tasks.append(key)
            self._rebuild()
        return self._cache[("task", *key)]

    def add_custom_row(self, row: Row) -> Row:
        """Show an analysis row (a field plot) below the task rows, drawn by a plots layer from
        ``row.data``; a shown row with the same kind and label is replaced in place."""
        at = next((i for i, r in enumerate(self._custom) if (r.kind, r.label) == (row.kind, row.label)), None)
        if at is None:
            self._custom.append(row)
        else:
            self._custom[at] = row
        self._rebuild()
        return row

    def custom_rows(self) -> list[Row]:
        return list(self._custom)

    def remove_row(self, index: int) -> None:
        """Hide row ``index``: its CPU, its VCPU pair (both pair rows), its task or analysis row."""
        r = self.rows[index]
        if any(c is r for c in self._custom):
            self._custom = [c for c in self._custom if c is not r]
        elif r.kind in ("cpu", "vcpu_guest"):
            self._hidden_cpus.setdefault(r.stream, set()).add(int(r.cpu))
        elif r.kind in ("vcpu_host", "vcpu_state"):
            self._hidden_pairs.add((r.guest, int(r.vcpu)))
        else:
            self._tasks.remove((r.stream, int(r.pid)))
        self._rebuild()

    def refresh_events(self) -> None:
        """Re-read event ticks after a filter change (hidden rows are rebuilt when shown again)."""
        for r in self.rows:
            self.src.fill_events(r)
        self._cache = {_row_key(r): r for r in self.rows}

    def _mapped(self) -> list:
        ss = self.session
        if ss.host_stream is None:
            return []
        guests = {st.name: st.cpu_count for st in ss.streams if st.role == "guest" and st.buffer.name == ""}
        return [m for m in self._vcpu_map if 0 <= m.vcpu < guests.get(m.guest, 0)]

    def _cpu_stream_order(self) -> list:
        ss = self.session
        out = [ss.host_stream] if ss.host_stream is not None else []
        out += [st for st in ss.streams if st.role == "guest" and st.buffer.name == ""]
        out += [st for st in ss.streams if st.buffer.name != ""]
        return out

    def _row(self, key: tuple, make: Callable[[], Row]) -> Row:
        row = self._cache.get(key)
        if row is None:
            row = self._cache[key] = make()
        return row

    def _rebuild(self) -> None:
        src, rows = self.src, []
        host = self.session.host_stream
        mapped = {(m.guest, m.vcpu): m.host_pid for m in self._mapped()}
        for st in self._cpu_stream_order():
            hidden = self._hidden_cpus.get(st.index, set())
            guest = st.role == "guest" and st.buffer.name == ""
            for c in range(st.cpu_count):
                if guest:
                    pid = mapped.get((st.name, c))
                    if pid is not None and (st.name, c) not in self._hidden_pairs:
                        rows.append(self._row(("vcpu_host", host.index, pid, st.name, c),
                                              lambda p=pid, g=st.name, v=c: src.vcpu_host_row(host.index, p, g, v)))
                        rows.append(self._row(("vcpu_state", host.index, pid, st.name, c),
                                              lambda p=pid, g=st.name, v=c: src.vcpu_state_row(host.index, p, g, v)))
                if c not in hidden:
                    rows.append(self._row(("vcpu_guest" if guest else "cpu", st.index, c),
                                          lambda s=st.index, c=c, g=guest, n=st.name:
                                          src.cpu_row(s, c, vcpu_of=n if g else None)))
        for s, p in self._tasks:
            rows.append(self._row(("task", s, p), lambda s=s, p=p: src.task_row(s, p)))
        rows += self._custom
        self.rows = rows
        self.rows_changed.emit()

    # -- picking ---------------------------------------------------------------------------------
    def nearest_event(self, index: int, ts: int) -> tuple[int, int, int] | None:
        """(stream, table position, time) of the event of row ``index`` nearest ``ts``: a CPU
        row's CPU, a task row's task, a VCPU state lane's host thread.  None if it has none."""
        r = self.rows[index]
        ticks = r.events
        if ticks is None and r.pid is not None:  # the state lane: its thread's events
            t = self.session.streams[r.stream].buffer.events
            ticks = EventTicks(self.src.times(r.stream), t.column("pid").to_numpy(), r.pid,
                               self.src.mask(r.stream))
        if ticks is None:
            return None
        pos = ticks.nearest_position(int(ts))
        if pos is None:
            return None
        t = self.session.streams[r.stream].buffer.events.column("ts")
        return r.stream, pos, int(t[pos].as_py())

    def merged_index(self, stream: int, position: int) -> int:
        """Where table row ``position`` of ``stream`` sits in the session's merged order."""
        m = self.session.merged()
        return int(position) if m.identity else m.index_of(stream, position)

    # -- rendering --------------------------------------------------------------------------
    def render(self, t0: int, t1: int, npix: int, first: int = 0, count: int | None = None) -> RenderResult:
        """Rows ``first`` .. ``first + count`` (default: all) between ``t0`` and ``t1`` (ns) at
        ``npix`` columns: a view renders only the rows on screen."""
        npix = max(1, int(npix))
        t1 = max(t1, t0 + npix)
        first = max(0, min(int(first), len(self.rows)))
        shown = self.rows[first:] if count is None else self.rows[first:first + max(0, int(count))]
        nrows = len(shown)
        kind = np.zeros((nrows * SUBROWS, npix), np.uint8)
        alpha = np.zeros((nrows * SUBROWS, npix), np.uint8)
        overlay = np.zeros((nrows * SUBROWS, npix), bool)
        counts = np.zeros((nrows, npix), np.int64)
        dominant = np.full((nrows, npix), -1, np.int64)
        edges, probes = _column_grid(int(t0), int(t1), npix)
        positions: dict[int, np.ndarray] = {}  # table positions of the edges, once per stream
        for k, row in enumerate(shown):
            base = k * SUBROWS
            body = slice(base + BODY_ROWS.start, base + BODY_ROWS.stop)
            if row.intervals is not None:
                code, opacity, shaded, dom = self._body(row, edges, probes)
                kind[body] = code[None, :]
                alpha[body] = opacity[None, :]
                overlay[body] = shaded[None, :]
                dominant[k] = dom
            if row.events is not None and len(row.events):
                pos = positions.get(row.stream)
                if pos is None:
                    pos = positions[row.stream] = row.events.positions(edges)
                c = row.events.counts(edges, pos)
                counts[k] = c
                level = np.where(c > 0, 60 + np.minimum(160, (np.log2(c + 1) * 25)).astype(np.int64), 0)
                tick = slice(base + TICK_ROWS.start, base + TICK_ROWS.stop)
                kind[tick] = PX_TICK
                alpha[tick] = level.astype(np.uint8)[None, :]
            if row.lost is not None and len(row.lost):
                hit = np.diff(np.searchsorted(row.lost, edges)) > 0
                if hit.any():
                    cols = np.flatnonzero(hit)
                    # a lost-events mark: a red bar through the whole row, at least 2 px wide
                    cols = np.unique(np.clip(np.concatenate([cols, cols + 1]), 0, npix - 1))
                    kind[base: base + BODY_ROWS.stop, cols] = PX_LOST
                    alpha[base: base + BODY_ROWS.stop, cols] = 255
                    overlay[base: base + BODY_ROWS.stop, cols] = False
        return RenderResult(kind, alpha, overlay, t0, t1, counts, dominant, first)

    def _body(self, row: Row, edges: np.ndarray, probes: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(pixel code, opacity, in-guest shading, key) of each column of a row's body."""
        iv = row.intervals
        npix = len(edges) - 1
        keys = iv.at(probes)  # (npix, SAMPLES)
        code = np.zeros(npix, np.uint8)
        opacity = np.zeros(npix, np.uint8)
        shaded = np.zeros(npix, bool)
        if row.color_by == "state":
            dom = _mode(keys, ignore=-1)
            known = (dom >= 0) & (dom < len(STATE_ORDER))
            code[known] = PX_STATE
            opacity[known] = 255
            return code, opacity, shaded, dom
        dom = _mode(keys, ignore=0)
        busy = (iv.busy_until(edges[1:]) - iv.busy_until(edges[:-1])) / np.maximum(np.diff(edges), 1)
        # runs shorter than the gap between probes: the column was busy but no probe hit a run;
        # take the key of its first busy run, so a short run never vanishes when zoomed out.
        # First run ending after the column start (ends are sorted too), then the first busy one
        # from there: where the cumulative busy time first grows.
        missed = np.flatnonzero((busy > 0) & (dom <= 0))
        if len(missed):
            i0 = np.searchsorted(iv.end, edges[missed], "right")
            k = np.searchsorted(iv.busy_cum, iv.busy_cum[i0], "right") - 1
            kc = np.minimum(k, len(iv.start) - 1)
            ok = (k < len(iv.start)) & (iv.start[kc] < edges[missed + 1]) & (iv.key[kc] > 0)
            dom[missed[ok]] = iv.key[kc[ok]]
        has = dom > 0
        code[has] = PX_CPU if row.color_by == "cpu" else PX_TASK
        alpha = np.clip(0.35 + 0.65 * busy, 0, 1)
        if self.highlight_pid is not None and row.kind == "cpu" and row.color_by == "pid":
            hs, hp = self.highlight_pid
            if hs == row.stream:
                alpha = np.where(dom == hp, 1.0, alpha * 0.25)
        opacity[has] = (alpha[has] * 255).astype(np.uint8)
        if row.overlay is not None:
            # in-guest time over a VCPU thread's runs: shaded in the guest's colour by plots/colors
            g = row.overlay.at(probes)
            frac = (g >= 0).mean(axis=1)
            shaded = frac > 0
            opacity[shaded] = np.maximum(opacity[shaded], (120 + 135 * frac[shaded]).astype(np.uint8))
        return code, opacity, shaded, dom


def _row_key(r: Row) -> tuple:
    """The cache key :meth:`TimelineModel._rebuild` gives a row."""
    if r.kind in ("vcpu_host", "vcpu_state"):
        return (r.kind, r.stream, r.pid, r.guest, r.vcpu)
    if r.kind == "task":
        return ("task", r.stream, r.pid)
    return (r.kind, r.stream, r.cpu)


def _mode(keys: np.ndarray, ignore: int) -> np.ndarray:
    """Most frequent key per row of a (n, S) matrix, ignoring one value (-1 if only that value)."""
    valid = keys != ignore
    if ignore != -1:
        valid &= keys != -1
    counts = np.zeros(keys.shape, np.int64)
    for j in range(keys.shape[1]):
        counts[:, j] = ((keys == keys[:, j:j + 1]) & valid).sum(axis=1)
    counts[~valid] = -1
    best = np.argmax(counts, axis=1)
    out = keys[np.arange(len(keys)), best]
    return np.where(counts[np.arange(len(keys)), best] > 0, out, -1)


class RowSources:
    """Builds rows from a session's derived tables (runs, in-guest intervals, states), cached."""

    def __init__(self, session: Session, names: Callable[[int, int], str],
                 mask: Callable[[int], np.ndarray | None] | None = None) -> None:
        from . import intervals as iv

        self.iv = iv
        self.session = session
        self.names = names
        self.mask = mask or (lambda stream: None)
        """Filter mask per stream (bool per row of its events table), None when unfiltered."""
        self._times: dict[int, np.ndarray] = {}

    def runs(self, stream: int) -> pa.Table:
        return self.session.runs(stream)

    def in_guest(self, stream: int) -> pa.Table:
        return self.session.in_guest(stream)

    def _intervals(self, t: pa.Table, key: str) -> Intervals:
        if t.num_rows == 0:
            return Intervals.empty()
        s = t.column("start").to_numpy().astype(np.int64)
        e = t.column("end").to_numpy().astype(np.int64)
        k = t.column(key).to_numpy().astype(np.int64)
        o = np.argsort(s, kind="stable")
        return Intervals(s[o], e[o], k[o])

    def cpu_row(self, stream: int, cpu: int, vcpu_of: str | None = None) -> Row:
        st = self.session.streams[stream]
        runs = self.runs(stream)
        sel = runs.filter(pc.equal(runs.column("cpu"), cpu))
        label = f"{st.name} VCPU{cpu} (guest CPU)" if vcpu_of else f"{st.name} CPU {cpu}"
        row = Row("vcpu_guest" if vcpu_of else "cpu", stream, label, cpu=cpu, guest=vcpu_of,
                  vcpu=cpu if vcpu_of else None, intervals=self._intervals(sel, "pid"))
        self.fill_events(row)
        return row

    def task_row(self, stream: int, pid: int) -> Row:
        st = self.session.streams[stream]
        runs = self.runs(stream)
        sel = runs.filter(pc.equal(runs.column("pid"), pid))
        iv = self._intervals(sel, "cpu")
        iv = Intervals(iv.start, iv.end, iv.key + 1)  # CPU 0 must not read as idle
        row = Row("task", stream, f"{st.name} {self.names(stream, pid)}-{pid}", pid=pid, intervals=iv,
                  color_by="cpu")
        self.fill_events(row)
        return row

    def vcpu_host_row(self, host: int, pid: int, guest: str, vcpu: int) -> Row:
        """The host thread of a VCPU, in its own task colour (as on the host CPU rows), so the eye
        links the two; the CPU it ran on is in the tooltip."""
        row = self.task_row(host, pid)
        row.kind = "vcpu_host"
        row.guest, row.vcpu = guest, vcpu
        row.intervals = Intervals(row.intervals.start, row.intervals.end, np.full(len(row.intervals.start), pid))
        row.color_by = "pid"
        row.label = f"{guest} VCPU{vcpu} host {pid}"
        g = self.in_guest(host)
        sel = g.filter(pc.equal(g.column("pid"), pid))
        if sel.num_rows:
            row.overlay = self._intervals(sel, "vcpu")
        return row

    def vcpu_state_row(self, host: int, pid: int, guest: str, vcpu: int) -> Row:
        st = self.iv.vcpu_states(self.session.streams[host].buffer, pid, runs=self.runs(host),
                                 kvm=self.session.kvm_events(host))
        if st.num_rows:
            iv = Intervals(st.column("start").to_numpy().astype(np.int64),
                           st.column("end").to_numpy().astype(np.int64), _state_codes(st))
        else:
            iv = Intervals.empty()
        return Row("vcpu_state", host, f"{guest} VCPU{vcpu} state", pid=pid, guest=guest, vcpu=vcpu,
                   intervals=iv, color_by="state")

    def fill_events(self, row: Row) -> None:
        """The (filtered) events this row ticks for, and its lost-event marks."""
        st = self.session.streams[row.stream]
        t = st.buffer.events
        if row.kind in ("cpu", "vcpu_guest"):
            key, value = t.column("cpu").to_numpy(), row.cpu
        elif row.kind in ("task", "vcpu_host"):
            key, value = t.column("pid").to_numpy(), row.pid
        else:
            return
        mask = self.mask(row.stream)
        cum = self.session.cpu_ticks(row.stream, value) if mask is None and row.kind in ("cpu", "vcpu_guest") else None
        row.events = EventTicks(self.times(row.stream), key, value, mask, cum)
        lost = st.buffer.lost
        if lost.num_rows and row.kind in ("cpu", "vcpu_guest"):
            lc = lost.column("cpu").to_numpy()
            row.lost = np.sort(lost.column("ts").to_numpy()[lc == row.cpu])

    def times(self, stream: int) -> np.ndarray:
        """The stream's event times, non-decreasing, for binary search (cached per stream).

        The table is in report order, which is time order except where a CPU's clock went
        backwards; then the running maximum stands in (the report's own merge key), a copy made
        only for such a trace."""
        hit = self._times.get(stream)
        if hit is None:
            ts = self.session.streams[stream].buffer.events.column("ts").to_numpy()
            if not self.session.ts_sorted(stream):
                ts = np.maximum.accumulate(ts)
            hit = self._times[stream] = ts
        return hit


def _state_codes(st: pa.Table) -> np.ndarray:
    col = st.column("state")
    if pa.types.is_dictionary(col.type):
        col = col.combine_chunks()
        dict_names = col.dictionary.to_pylist()
        lut = np.array([STATE_ORDER.index(n) if n in STATE_ORDER else len(STATE_ORDER) - 1 for n in dict_names])
        return lut[col.indices.to_numpy()]
    names = np.array(col.to_pylist())
    out = np.full(len(names), len(STATE_ORDER) - 1, np.int64)
    for i, n in enumerate(STATE_ORDER):
        out[names == n] = i
    return out
