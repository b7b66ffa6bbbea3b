"""Event filters (KernelShark's model), evaluated with numpy over whole columns; no Qt.

KernelShark keeps, per stream, show/hide hash sets of event ids, task pids and CPUs; an entry passes
one kind iff ``(show set empty or contains the value) and value not in hide set``, and is visible
iff it passes all kinds (spec §5).  We keep the same sets and semantics, and compute the visibility of
every event at once: each test is a lookup table indexed by a column (``lut[event_id]``), so the cost
is a few passes over int arrays, never a Python loop over events.  On top of that:

* a stream on/off switch (a disabled stream shows nothing);
* an advanced *field filter* per event type (:mod:`kshark_py.model.fieldexpr`).  Events of other
  types pass unless the stream is in "only matching" mode (which is what KernelShark does as soon as
  any advanced filter is set);
* :attr:`Filters.changed` (an :class:`~kshark_py.model.emitter.Emitter`), fired only when a setter
  really changes something, so views redraw exactly when they must.

KernelShark's filter documents are read and written by :mod:`kshark_py.model.filterfile`.  Masks are
cached per stream and per merged view; a change to one stream's filter recomputes only that stream.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from .emitter import Emitter
from .fieldexpr import FieldFilter, FilterSyntaxError
from .merged import merged_gather, stream_column

if TYPE_CHECKING:
    from .session import Session, Stream

KINDS = ("event", "task", "cpu")
MODES = ("show", "hide")

KS_TEXT_VIEW, KS_GRAPH_VIEW, KS_EVENT_VIEW = 1 << 0, 1 << 1, 1 << 2
"""Bits of KernelShark's ``"filter mask"`` (libkshark.h): where filters apply."""


# --------------------------------------------------------------------------------------------
# per-stream filter state
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StreamFilter:
    """The filter state of one stream (immutable: setters replace it, so changes are detectable)."""

    sets: dict[tuple[str, str], frozenset[int]] = field(default_factory=dict)
    field_filters: dict[int, FieldFilter] = field(default_factory=dict)
    only_matching: bool = False

    def get(self, kind: str, mode: str) -> frozenset[int]:
        return self.sets.get((kind, mode), frozenset())

    @property
    def empty(self) -> bool:
        return not any(self.sets.values()) and not self.field_filters


def _lut_pass(values: np.ndarray, show: frozenset[int], hide: frozenset[int]) -> np.ndarray | None:
    """KernelShark's (show empty or in show) and not in hide, as one gather; None when no test."""
    if not show and not hide:
        return None
    if len(values) == 0:
        return np.zeros(0, bool)
    lo = int(values.min())
    hi = int(values.max())
    lut = np.full(hi - lo + 1, not show, bool) if hi - lo < (1 << 24) else None
    if lut is None:  # sparse huge range: fall back to isin
        ok = np.isin(values, list(show)) if show else np.ones(len(values), bool)
        if hide:
            ok &= ~np.isin(values, list(hide))
        return ok
    for v in show:
        if lo <= v <= hi:
            lut[v - lo] = True
    for v in hide:
        if lo <= v <= hi:
            lut[v - lo] = False
    return lut[values.astype(np.int64) - lo] if lo else lut[values]



class Filters:
    """Show/hide sets per stream, stream switches and field filters, with cached masks.

    Streams are named by their index (``Stream.index``).  Every setter notifies :attr:`changed`
    only when it changed something; use :meth:`batch` to group several changes into one
    notification (a dialog applying many sets at once).
    """

    def __init__(self) -> None:
        self._streams: dict[int, StreamFilter] = {}
        self._disabled: frozenset[int] = frozenset()
        self._apply_list = True
        self._apply_graph = True
        self.changed = Emitter()
        """Fired with no arguments after each real change (or once at the end of a batch)."""
        self.version = 0
        self._stream_version: dict[int, int] = {}
        self._batch = 0
        self._pending = False
        self._stream_masks: dict[int, tuple[tuple, np.ndarray | None]] = {}
        self._merged_cache: tuple[tuple, np.ndarray] | None = None
        self._visible_cache: tuple[tuple, np.ndarray] | None = None
        self._field_cache: dict[tuple, np.ndarray] = {}

    # ---- notification -----------------------------------------------------------------
    @contextlib.contextmanager
    def batch(self) -> Iterator[Filters]:
        """Group changes: one :attr:`changed` notification at the end (if anything changed)."""
        self._batch += 1
        try:
            yield self
        finally:
            self._batch -= 1
            if self._batch == 0 and self._pending:
                self._pending = False
                self.changed.emit()

    def _touch(self, stream: int | None) -> None:
        self.version += 1
        if stream is not None:
            self._stream_version[stream] = self._stream_version.get(stream, 0) + 1
        if self._batch:
            self._pending = True
        else:
            self.changed.emit()

    def set_stream_filter(self, stream: int, new: StreamFilter) -> None:
        """Replace one stream's whole filter state (notifies only on a real change)."""
        old = self._streams.get(stream, StreamFilter())
        if new == old:
            return
        if new.empty and not new.only_matching:
            self._streams.pop(stream, None)
        else:
            self._streams[stream] = new
        self._touch(stream)

    # ---- where filters apply ------------------------------------------------------------
    @property
    def apply_to_list(self) -> bool:
        """KernelShark's "Apply filters to List" (the list view honours it)."""
        return self._apply_list

    @apply_to_list.setter
    def apply_to_list(self, on: bool) -> None:
        if bool(on) != self._apply_list:
            self._apply_list = bool(on)
            self._touch(None)

    @property
    def apply_to_graph(self) -> bool:
        """KernelShark's "Apply filters to Graph" (the graph honours it)."""
        return self._apply_graph

    @apply_to_graph.setter
    def apply_to_graph(self, on: bool) -> None:
        if bool(on) != self._apply_graph:
            self._apply_graph = bool(on)
            self._touch(None)

    @property
    def filter_mask(self) -> int:
        """KernelShark's ``"filter mask"`` bits: text view 1, graph view 2, event view 4 (always)."""
        return (KS_TEXT_VIEW if self._apply_list else 0) | (KS_GRAPH_VIEW if self._apply_graph else 0) | KS_EVENT_VIEW

    # ---- show/hide sets -----------------------------------------------------------------
    def get(self, stream: int, kind: str, mode: str) -> frozenset[int]:
        """The ``mode`` ("show"/"hide") set of ``kind`` ("event"/"task"/"cpu") for ``stream``."""
        _check(kind, mode)
        return self._streams.get(stream, StreamFilter()).get(kind, mode)

    def set(self, stream: int, kind: str, mode: str, values: Iterable[int]) -> None:
        """Replace one set (event ids, pids or CPUs)."""
        _check(kind, mode)
        cur = self._streams.get(stream, StreamFilter())
        sets = dict(cur.sets)
        new = frozenset(int(v) for v in values)
        if new:
            sets[(kind, mode)] = new
        else:
            sets.pop((kind, mode), None)
        self.set_stream_filter(stream, replace(cur, sets=sets))

    def add(self, stream: int, kind: str, mode: str, *values: int) -> None:
        """Add values to one set (a context menu's "hide this task")."""
        self.set(stream, kind, mode, self.get(stream, kind, mode) | {int(v) for v in values})

    def discard(self, stream: int, kind: str, mode: str, *values: int) -> None:
        self.set(stream, kind, mode, self.get(stream, kind, mode) - {int(v) for v in values})

    def clear_stream(self, stream: int) -> None:
        """Drop every set and field filter of one stream."""
        if stream in self._streams:
            del self._streams[stream]
            self._touch(stream)

    def clear(self) -> None:
        """KernelShark's "Clear all filters" (also re-enables every stream)."""
        if not self._streams and not self._disabled:
            return
        with self.batch():
            for s in list(self._streams):
                self.clear_stream(s)
            if self._disabled:
                self._disabled = frozenset()
                self._touch(None)

    # ---- stream switch ------------------------------------------------------------------
    def stream_enabled(self, stream: int) -> bool:
        return stream not in self._disabled

    def set_stream_enabled(self, stream: int, enabled: bool) -> None:
        new = self._disabled - {stream} if enabled else self._disabled | {stream}
        if new != self._disabled:
            self._disabled = new
            self._touch(None)

    @property
    def disabled_streams(self) -> frozenset[int]:
        return self._disabled

    def set_disabled_streams(self, streams: Iterable[int]) -> None:
        """Replace the set of switched-off streams (a restored session)."""
        new = frozenset(int(s) for s in streams)
        if new != self._disabled:
            self._disabled = new
            self._touch(None)

    @property
    def filtered_streams(self) -> list[int]:
        """Indices of the streams that have any filter state."""
        return list(self._streams)

    def stream_filter(self, stream: int) -> StreamFilter:
        """The whole filter state of one stream (immutable)."""
        return self._streams.get(stream, StreamFilter())

    # ---- field filters ------------------------------------------------------------------
    def set_field_filter(self, stream: Stream, event_id: int, expr: str | None) -> FieldFilter | None:
        """Set (or with ``None``/blank remove) the field filter of one event type of ``stream``.

        Raises :class:`FilterSyntaxError` (and changes nothing) if ``expr`` is invalid.
        """
        cur = self._streams.get(stream.index, StreamFilter())
        ff = dict(cur.field_filters)
        compiled = None
        if expr is None or not expr.strip():
            ff.pop(event_id, None)
        else:
            ev = stream.trace.formats.get(event_id)
            if ev is None:
                raise FilterSyntaxError(f"stream {stream.name} has no event with id {event_id}")
            compiled = FieldFilter.parse(expr, ev)
            ff[event_id] = compiled
        self.set_stream_filter(stream.index, replace(cur, field_filters=ff))
        return compiled

    def field_matches(self, stream: Stream, event_id: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(rows of that event type, bool per row) for the field filter set on it (cached), or None."""
        ff = self._streams.get(stream.index, StreamFilter()).field_filters.get(event_id)
        if ff is None:
            return None
        rows = np.flatnonzero(stream_column(stream, "event_id") == event_id)
        return rows, self._field_result(stream, ff, rows)

    def _field_result(self, stream: Stream, ff: FieldFilter, rows: np.ndarray) -> np.ndarray:
        ckey = (id(stream.buffer), ff.event_id, ff.condition)
        res = self._field_cache.get(ckey)
        if res is None:
            res = ff.evaluate(stream.buffer, rows)
            self._field_cache[ckey] = res
        return res

    def field_filters(self, stream: int) -> dict[int, FieldFilter]:
        return dict(self._streams.get(stream, StreamFilter()).field_filters)

    def only_matching(self, stream: int) -> bool:
        return self._streams.get(stream, StreamFilter()).only_matching

    def set_only_matching(self, stream: int, on: bool) -> None:
        """With field filters set, also hide events of the types that have none (KernelShark's way)."""
        cur = self._streams.get(stream, StreamFilter())
        self.set_stream_filter(stream, replace(cur, only_matching=bool(on)))

    # ---- state queries ------------------------------------------------------------------
    def is_active(self) -> bool:
        """True when some event may be hidden."""
        return bool(self._disabled) or any(not sf.empty for sf in self._streams.values())

    # ---- masks --------------------------------------------------------------------------
    def stream_mask(self, stream: Stream) -> np.ndarray | None:
        """bool per row of ``stream``'s events table, or None when nothing of it is filtered."""
        key = (self._stream_version.get(stream.index, 0), stream.index in self._disabled, id(stream.buffer))
        hit = self._stream_masks.get(stream.index)
        if hit is not None and hit[0] == key:
            return hit[1]
        mask = self._compute_stream_mask(stream)
        self._stream_masks[stream.index] = (key, mask)
        return mask

    def _compute_stream_mask(self, stream: Stream) -> np.ndarray | None:
        n = len(stream.buffer.events)
        if stream.index in self._disabled:
            return np.zeros(n, bool)
        sf = self._streams.get(stream.index)
        if sf is None or sf.empty:
            return None
        mask: np.ndarray | None = None
        for kind, col in (("event", "event_id"), ("task", "pid"), ("cpu", "cpu")):
            m = _lut_pass(stream_column(stream, col), sf.get(kind, "show"), sf.get(kind, "hide"))
            if m is not None:
                mask = m if mask is None else (mask & m)
        if sf.field_filters:
            eid = stream_column(stream, "event_id")
            if sf.only_matching:
                ff_mask = np.zeros(n, bool)
            else:
                ff_mask = np.ones(n, bool)
            for ev_id, ff in sf.field_filters.items():
                rows = np.flatnonzero(eid == ev_id)
                ff_mask[rows] = self._field_result(stream, ff, rows)
            mask = ff_mask if mask is None else (mask & ff_mask)
        return mask

    def _merged_key(self, session: Session) -> tuple:
        return (id(session), id(session.merged()), self.version)

    def mask(self, session: Session) -> np.ndarray:
        """bool per row of ``session.merged()``: True where the event passes every filter (cached)."""
        key = self._merged_key(session)
        if self._merged_cache is not None and self._merged_cache[0] == key:
            return self._merged_cache[1]
        merged = session.merged()
        mask = merged_gather(merged, [self.stream_mask(st) for st in session.streams])
        self._merged_cache = (key, mask)
        return mask

    def visible(self, session: Session) -> np.ndarray:
        """Merged indices (int64, ascending) of the events that pass (cached)."""
        key = self._merged_key(session)
        if self._visible_cache is not None and self._visible_cache[0] == key:
            return self._visible_cache[1]
        rows = np.flatnonzero(self.mask(session)).astype(np.int64)
        self._visible_cache = (key, rows)
        return rows



def _check(kind: str, mode: str) -> None:
    if kind not in KINDS or mode not in MODES:
        raise ValueError(f"filter kind/mode must be one of {KINDS}/{MODES}, not {kind!r}/{mode!r}")

