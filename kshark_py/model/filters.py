"""Event filters (KernelShark's model), evaluated with numpy over whole columns; no Qt.

KernelShark keeps, per stream, show/hide hash sets of event ids, task pids and CPUs; an entry passes
one kind iff ``(show set empty or contains the value) and value not in hide set``, and is visible
iff it passes all kinds (spec §5).  We keep the same sets and semantics, and compute the visibility of
every event at once: each test is a lookup table indexed by a column (``lut[event_id]``), so the cost
is a few passes over int arrays, never a Python loop over events.  On top of that:

* a stream on/off switch (a disabled stream shows nothing);
* an advanced *field filter* per event type, a small expression language close to libtraceevent's
  (``prev_pid == 0 && next_comm ~ "kworker*"``), evaluated with the vectorized field extraction of
  :mod:`kshark_py.model.columns`.  Events of other types pass unless the stream is in "only matching"
  mode (which is what KernelShark does as soon as any advanced filter is set);
* a change notification without Qt (:class:`Emitter`), fired only when a setter really changes
  something, so views redraw exactly when they must;
* :class:`TaskIndex`: the comm of each event as a dictionary-encoded array, so "task contains X" is
  answered by matching the few distinct names and mapping the answer back with one gather.

Masks are cached per stream and per merged view; a change to one stream's filter recomputes only
that stream.
"""

from __future__ import annotations

import contextlib
import fnmatch
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ..loaders.formats import EventFormat, EventFormats
from ..loaders.tasks import task_names
from ..loaders.text import decode, display
from .columns import event_columns

if TYPE_CHECKING:
    from ..loaders.tracedat import Buffer, TraceFile
    from .session import MergedView, Session, Stream

KINDS = ("event", "task", "cpu")
MODES = ("show", "hide")

# KernelShark's session keys ("filters" document of a stream, libkshark-configio.c)
_KS_KEYS = {
    ("event", "show"): "show event filter", ("event", "hide"): "hide event filter",
    ("task", "show"): "show task filter", ("task", "hide"): "hide task filter",
    ("cpu", "show"): "show cpu filter", ("cpu", "hide"): "hide cpu filter",
}
KS_ADV_KEY = "adv event filter"
KS_TEXT_VIEW, KS_GRAPH_VIEW, KS_EVENT_VIEW = 1 << 0, 1 << 1, 1 << 2
"""Bits of KernelShark's ``"filter mask"`` (libkshark.h): where filters apply."""
ONLY_MATCHING_KEY = "kshark-py adv only matching"
"""Our own key: KernelShark has no such switch (its advanced filter always hides other types)."""


# --------------------------------------------------------------------------------------------
# change notification
# --------------------------------------------------------------------------------------------

class Emitter:
    """A tiny signal: callbacks run in connection order when :meth:`emit` is called.

    Plain Python so the model stays importable and testable without a Qt event loop; Qt widgets
    connect a slot (or a lambda that emits a Qt signal) to it.
    """

    def __init__(self) -> None:
        self._callbacks: list[Callable[..., Any]] = []

    def connect(self, cb: Callable[..., Any]) -> Callable[..., Any]:
        self._callbacks.append(cb)
        return cb

    def disconnect(self, cb: Callable[..., Any]) -> None:
        with contextlib.suppress(ValueError):
            self._callbacks.remove(cb)

    def emit(self, *args: Any) -> None:
        for cb in list(self._callbacks):
            cb(*args)


# --------------------------------------------------------------------------------------------
# field-filter expressions
# --------------------------------------------------------------------------------------------

class FilterSyntaxError(ValueError):
    """A field-filter expression that does not parse or does not fit the event's fields."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message if position is None else f"{message} (at column {position + 1})")
        self.position = position


NUM_OPS = ("==", "!=", "<", "<=", ">", ">=")
STR_OPS = ("==", "!=", "~", "!~", "=~")
"""String ops: ``~`` glob match (fnmatch), ``=~`` regex search, ``!~`` negated glob."""

_TOKEN_RE = re.compile(r"""
    (?P<ws>\s+)
  | (?P<and>&&) | (?P<or>\|\|)
  | (?P<op>==|!=|<=|>=|=~|!~|<|>|~)
  | (?P<lp>\() | (?P<rp>\)) | (?P<not>!)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<num>[-+]?(?:0[xX][0-9a-fA-F]+|\d+)(?![\w.*?\[]))
  | (?P<word>[^\s()&|!=<>~"']+)
""", re.VERBOSE)


@dataclass(frozen=True)
class Cond:
    """``field op value``: the leaf of an expression."""

    field: str
    op: str
    value: int | str
    is_string: bool


@dataclass(frozen=True)
class BoolOp:
    op: str  # "&&" or "||"
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    inner: Node


Node = Cond | BoolOp | Not


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m:
            if text[pos] in "\"'":
                raise FilterSyntaxError("unterminated string", pos)
            raise FilterSyntaxError(f"unexpected character {text[pos]!r}", pos)
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append((kind, m.group(), pos))
        pos = m.end()
    return out


class _Parser:
    """Recursive descent: or := and ('||' and)*; and := unary ('&&' unary)*; unary := '!' unary |
    '(' or ')' | FIELD OP VALUE."""

    def __init__(self, text: str, event: EventFormat) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.event = event
        self.fields: set[str] = set()

    def peek(self) -> tuple[str, str, int] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, kind: str | None = None, what: str = "") -> tuple[str, str, int]:
        t = self.peek()
        if t is None:
            raise FilterSyntaxError(f"expression ends where {what or kind} was expected", len(self.text))
        if kind is not None and t[0] != kind:
            raise FilterSyntaxError(f"expected {what or kind}, found {t[1]!r}", t[2])
        self.i += 1
        return t

    def parse(self) -> Node:
        if not self.toks:
            raise FilterSyntaxError("empty expression", 0)
        node = self.parse_or()
        t = self.peek()
        if t is not None:
            raise FilterSyntaxError(f"unexpected {t[1]!r}", t[2])
        return node

    def parse_or(self) -> Node:
        node = self.parse_and()
        while (t := self.peek()) is not None and t[0] == "or":
            self.i += 1
            node = BoolOp("||", node, self.parse_and())
        return node

    def parse_and(self) -> Node:
        node = self.parse_unary()
        while (t := self.peek()) is not None and t[0] == "and":
            self.i += 1
            node = BoolOp("&&", node, self.parse_unary())
        return node

    def parse_unary(self) -> Node:
        t = self.peek()
        if t is not None and t[0] == "not":
            self.i += 1
            return Not(self.parse_unary())
        if t is not None and t[0] == "lp":
            self.i += 1
            node = self.parse_or()
            self.take("rp", "')'")
            return node
        return self.parse_cond()

    def parse_cond(self) -> Cond:
        kind, name, pos = self.take(None, "a field name")
        if kind != "word":
            raise FilterSyntaxError(f"expected a field name, found {name!r}", pos)
        f = self.event.field(name)
        if f is None:
            known = ", ".join(x.name for x in self.event.fields) or "(none)"
            raise FilterSyntaxError(f"{self.event.name} has no field {name!r}; its fields: {known}", pos)
        is_string = f.is_string
        if not is_string and (f.is_array or f.dynamic or f.size not in (1, 2, 4, 8)):
            raise FilterSyntaxError(f"field {name!r} is an array; only numbers and strings can be compared", pos)
        _, op, opos = self.take("op", "an operator (== != < <= > >= ~ =~ !~)")
        allowed = STR_OPS if is_string else NUM_OPS
        if op not in allowed:
            what = "string" if is_string else "numeric"
            raise FilterSyntaxError(f"operator {op!r} does not apply to {what} field {name!r} "
                                    f"(use {' '.join(allowed)})", opos)
        vkind, vtext, vpos = self.take(None, "a value")
        if vkind not in ("num", "str", "word"):
            raise FilterSyntaxError(f"expected a value, found {vtext!r}", vpos)
        value: int | str
        if vkind == "str":
            value = re.sub(r"\\(.)", r"\1", vtext[1:-1])
        else:
            value = vtext
        if is_string:
            if op == "=~":
                try:
                    re.compile(str(value))
                except re.error as e:
                    raise FilterSyntaxError(f"bad regular expression: {e}", vpos) from e
        else:
            if vkind == "str":
                raise FilterSyntaxError(f"field {name!r} is numeric; {vtext} is a string", vpos)
            try:
                value = int(str(value), 0)
            except ValueError:
                raise FilterSyntaxError(f"field {name!r} is numeric; {vtext!r} is not a number", vpos) from None
        self.fields.add(name)
        return Cond(name, op, value, is_string)


def _fmt_node(n: Node, top: bool = True) -> str:
    if isinstance(n, Cond):
        v = f'"{n.value}"' if n.is_string else str(n.value)
        return f"{n.field} {n.op} {v}"
    if isinstance(n, Not):
        return f"!({_fmt_node(n.inner)})"
    s = f"{_fmt_node(n.left, False)} {n.op} {_fmt_node(n.right, False)}"
    return s if top else f"({s})"


def _compare_int(arr: np.ndarray, op: str, value: int) -> np.ndarray:
    """``arr op value`` without numpy's out-of-range surprises (uint64 vs -1, int8 vs 300)."""
    info = np.iinfo(arr.dtype)
    if value < info.min or value > info.max:
        above = value > info.max  # value beyond every element on the high side
        const = {"==": False, "!=": True, "<": above, "<=": above, ">": not above, ">=": not above}[op]
        return np.full(len(arr), const, bool)
    v = arr.dtype.type(value)
    return {"==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal,
            ">": np.greater, ">=": np.greater_equal}[op](arr, v)


def _compare_str(arr: pa.Array, op: str, value: str) -> np.ndarray:
    """String test over the distinct values only, mapped back with one gather."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if len(arr) == 0:
        return np.zeros(0, bool)
    enc = arr.dictionary_encode()
    # string fields are bytes (loaders.fields): test the lossless text, and for a value that is not
    # UTF-8 also the text the user sees (U+FFFD in it), so what is shown can be typed
    uniq = [u if u is None or isinstance(u, str) else decode(u) for u in enc.dictionary.to_pylist()]
    if op in ("==", "!="):
        test = value.__eq__
    elif op in ("~", "!~"):
        def test(u: str) -> bool:
            return fnmatch.fnmatchcase(u, value)
    else:  # "=~"
        rx = re.compile(value)

        def test(u: str) -> bool:
            return rx.search(u) is not None
    hit = [u is not None and (test(u) or ((d := display(u)) is not u and test(d))) for u in uniq]
    lut = np.array(hit, bool)
    idx = enc.indices.to_numpy(zero_copy_only=False)
    out = lut[np.where(idx < 0, 0, idx)] if len(lut) else np.zeros(len(idx), bool)
    if op in ("!=", "!~"):
        out = ~out
    return out


@dataclass(frozen=True)
class FieldFilter:
    """A compiled field filter for one event type (parse it with :meth:`parse`)."""

    expr: str
    event_id: int
    event_name: str
    system: str
    tree: Node
    fields: frozenset[str]

    @classmethod
    def parse(cls, expr: str, event: EventFormat) -> FieldFilter:
        """Parse and check ``expr`` against ``event``'s fields; raise :class:`FilterSyntaxError`."""
        p = _Parser(expr, event)
        tree = p.parse()
        return cls(expr.strip(), event.id, event.name, event.system, tree, frozenset(p.fields))

    @property
    def condition(self) -> str:
        """Canonical text (what a session stores as KernelShark's ``condition``)."""
        return _fmt_node(self.tree)

    def evaluate(self, buffer: Buffer, rows: np.ndarray) -> np.ndarray:
        """bool per row of ``rows`` (all records of this event type in ``buffer``)."""
        _, cols = event_columns(buffer, self.event_name, sorted(self.fields), system=self.system, rows=rows)
        return self._eval(self.tree, cols, len(rows))

    def _eval(self, n: Node, cols: dict[str, Any], count: int) -> np.ndarray:
        if isinstance(n, Cond):
            col = cols.get(n.field)
            if col is None:
                return np.zeros(count, bool)
            if n.is_string:
                return _compare_str(col, n.op, str(n.value))
            return _compare_int(np.asarray(col), n.op, int(n.value))
        if isinstance(n, Not):
            return ~self._eval(n.inner, cols, count)
        a = self._eval(n.left, cols, count)
        b = self._eval(n.right, cols, count)
        return (a & b) if n.op == "&&" else (a | b)


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


def stream_column(stream: Stream, name: str) -> np.ndarray:
    """A column of a stream's events table as numpy (zero-copy for the loader's single-chunk tables)."""
    return stream.buffer.events.column(name).to_numpy()


def merged_gather(merged: MergedView, per_stream: list[np.ndarray | None], fill: Any = True,
                  dtype: Any = bool) -> np.ndarray:
    """Spread per-stream arrays (indexed by stream row) over the merged view, one gather per stream.

    ``None`` for a stream means "``fill`` for all its rows".
    """
    if merged.identity and len(per_stream) == 1 and per_stream[0] is not None:
        return np.array(per_stream[0], dtype)  # one stream in its own order: a plain copy
    out = np.full(len(merged), fill, dtype)
    for si, arr in enumerate(per_stream):
        if arr is None:
            continue
        sel = merged.stream == si
        out[sel] = arr[merged.row[sel]]
    return out


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

    def _replace(self, stream: int, new: StreamFilter) -> None:
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
        self._replace(stream, replace(cur, sets=sets))

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
        self._replace(stream.index, replace(cur, field_filters=ff))
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
        self._replace(stream, replace(cur, only_matching=bool(on)))

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

    # ---- serialization ------------------------------------------------------------------
    def export_stream(self, stream: Stream) -> dict[str, Any]:
        """One stream's KernelShark ``"filters"`` document (event ids as ``system/name``)."""
        doc: dict[str, Any] = {"type": "kshark.config.filter", "filter mask": self.filter_mask}
        sf = self._streams.get(stream.index, StreamFilter())
        fmts = stream.trace.formats
        for (kind, mode), key in _KS_KEYS.items():
            vals = sorted(sf.get(kind, mode))
            if not vals:
                continue
            if kind == "event":
                doc[key] = [f"{e.system}/{e.name}" for v in vals if (e := fmts.get(v)) is not None]
            else:
                doc[key] = vals
        if sf.field_filters:
            doc[KS_ADV_KEY] = [{"name": f"{ff.system}/{ff.event_name}", "condition": ff.condition}
                               for _, ff in sorted(sf.field_filters.items())]
        if sf.only_matching:
            doc[ONLY_MATCHING_KEY] = True
        return doc

    def import_stream(self, stream: Stream, doc: dict[str, Any]) -> list[str]:
        """Replace one stream's filters from a ``"filters"`` document; returns warnings (unknown events,
        invalid conditions), which are skipped rather than failing the whole session."""
        warnings: list[str] = []
        fmts = stream.trace.formats
        sets: dict[tuple[str, str], frozenset[int]] = {}
        for (kind, mode), key in _KS_KEYS.items():
            vals = doc.get(key) or []
            if kind == "event":
                ids = []
                for name in vals:
                    ev = _find_event(fmts, str(name))
                    if ev is None:
                        warnings.append(f"{stream.name}: {key}: unknown event {name!r}")
                    else:
                        ids.append(ev.id)
                vals = ids
            if vals:
                sets[(kind, mode)] = frozenset(int(v) for v in vals)
        ffs: dict[int, FieldFilter] = {}
        for item in doc.get(KS_ADV_KEY) or []:
            name, cond = str(item.get("name", "")), str(item.get("condition", ""))
            ev = _find_event(fmts, name)
            if ev is None:
                warnings.append(f"{stream.name}: advanced filter for unknown event {name!r}")
                continue
            try:
                ffs[ev.id] = FieldFilter.parse(cond, ev)
            except FilterSyntaxError as e:
                warnings.append(f"{stream.name}: advanced filter {name}: {e}")
        with self.batch():
            self._replace(stream.index, StreamFilter(sets, ffs, bool(doc.get(ONLY_MATCHING_KEY, False))))
            if "filter mask" in doc:
                fm = int(doc["filter mask"])
                self.apply_to_list = bool(fm & KS_TEXT_VIEW)
                self.apply_to_graph = bool(fm & KS_GRAPH_VIEW)
        return warnings

    def to_dict(self, session: Session) -> dict[str, Any]:
        """Everything, keyed like a session's ``"data streams"``: stream id -> filters document."""
        return {
            "type": "kshark-py.filters",
            "streams": [{"stream id": st.index, "filters": self.export_stream(st)} for st in session.streams],
            "disabled streams": sorted(self._disabled),
            "apply to list": self.apply_to_list,
            "apply to graph": self.apply_to_graph,
        }

    def from_dict(self, session: Session, d: dict[str, Any]) -> list[str]:
        """Restore :meth:`to_dict` output (one notification); returns warnings."""
        warnings: list[str] = []
        by_id = {st.index: st for st in session.streams}
        with self.batch():
            for s in list(self._streams):
                self.clear_stream(s)
            for item in d.get("streams", []):
                st = by_id.get(int(item.get("stream id", -1)))
                if st is None:
                    warnings.append(f"filters for unknown stream {item.get('stream id')!r}")
                    continue
                warnings += self.import_stream(st, item.get("filters", {}))
            disabled = frozenset(int(s) for s in d.get("disabled streams", []))
            if disabled != self._disabled:
                self._disabled = disabled
                self._touch(None)
            self.apply_to_list = bool(d.get("apply to list", True))
            self.apply_to_graph = bool(d.get("apply to graph", True))
        return warnings


def _check(kind: str, mode: str) -> None:
    if kind not in KINDS or mode not in MODES:
        raise ValueError(f"filter kind/mode must be one of {KINDS}/{MODES}, not {kind!r}/{mode!r}")


def _find_event(fmts: EventFormats, name: str) -> EventFormat | None:
    """``system/name`` (KernelShark's spelling), ``system:name`` or a bare name."""
    for sep in ("/", ":"):
        if sep in name:
            sysname, ev = name.split(sep, 1)
            return fmts.find(ev, sysname)
    return fmts.find(name)


# --------------------------------------------------------------------------------------------
# task names per event
# --------------------------------------------------------------------------------------------

def map_values(values: np.ndarray, per_distinct: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``per_distinct(distinct values)`` spread back over ``values``: the function runs once per
    distinct value (pids, event ids, CPUs), the spreading is one table lookup (no sort)."""
    uniq, _ = value_counts(values)
    res = np.asarray(per_distinct(uniq))
    if not len(uniq):
        return res[:0]
    lo, hi = int(uniq[0]), int(uniq[-1])
    if hi - lo > (1 << 24):
        return res[np.searchsorted(uniq, values)]
    lut = np.zeros(hi - lo + 1, res.dtype)
    lut[uniq - lo] = res
    return lut[values.astype(np.int64) - lo] if lo else lut[values]


def value_counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct values, count of each), ascending: ``np.unique(return_counts=True)`` in O(n) for the
    small-range int columns (event ids, CPUs, pids) that dialogs list."""
    if len(values) == 0:
        return values[:0].astype(np.int64), np.zeros(0, np.int64)
    lo, hi = int(values.min()), int(values.max())
    if hi - lo > (1 << 24):
        return np.unique(values, return_counts=True)
    counts = chunked_bincount(values, lo, hi)
    present = np.flatnonzero(counts)
    return present + lo, counts[present]


def chunked_bincount(values: np.ndarray, lo: int, hi: int, chunk: int = 1 << 20) -> np.ndarray:
    """``np.bincount(values - lo, minlength=hi - lo + 1)`` a chunk at a time: bincount converts its
    input to int64 first, a 136 MB temporary for a 17 M-row int32 column."""
    counts = np.zeros(hi - lo + 1, np.int64)
    for a in range(0, len(values), chunk):
        part = values[a:a + chunk].astype(np.int64)
        if lo:
            part -= lo
        counts += np.bincount(part, minlength=hi - lo + 1)
    return counts


MATCH_MODES = ("contains", "full match", "not contains")


def text_matcher(text: str, mode: str) -> Callable[[str], bool]:
    """The search/filter predicate for one mode: "contains" and "not contains" ignore case (what a
    user typing a fragment means); "full match" compares exactly."""
    if mode == "full match":
        return lambda s: s == text
    low = text.lower()
    if mode == "contains":
        return lambda s: low in s.lower()
    if mode == "not contains":
        return lambda s: low not in s.lower()
    raise ValueError(f"match mode must be one of {MATCH_MODES}, not {mode!r}")


class TaskIndex:
    """Who each event belongs to, by name: comm per merged row, dictionary-encoded.

    Names come from :func:`~kshark_py.loaders.tasks.task_names` (saved cmdlines, then sched event
    comms), computed once per file, so like KernelShark every event of a pid shows the pid's final
    name.  ``labels`` holds each distinct comm once; :meth:`merged_codes` indexes it per event.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        by_file: dict[int, dict[int, str]] = {}
        self.names: list[dict[int, str]] = []
        for st in session.streams:
            tf: TraceFile = st.trace
            if id(tf) not in by_file:
                by_file[id(tf)] = task_names(tf.buffers, tf.formats, tf.cmdlines)
            self.names.append(by_file[id(tf)])
        label_of: dict[str, int] = {}
        self.labels: list[str] = []
        self.stream_pids: list[np.ndarray] = []
        """Distinct pids of each stream (ascending)."""
        self.stream_pid_counts: list[np.ndarray] = []
        self.stream_pid_labels: list[np.ndarray] = []
        """Label index of each distinct pid of each stream (per-row codes are made on demand)."""
        for st in session.streams:
            uniq, counts = value_counts(stream_column(st, "pid"))
            codes = np.empty(len(uniq), np.int32)
            for i, p in enumerate(uniq.tolist()):
                c = self.comm(st.index, p)
                if c not in label_of:
                    label_of[c] = len(self.labels)
                    self.labels.append(c)
                codes[i] = label_of[c]
            self.stream_pids.append(uniq.astype(np.int64))
            self.stream_pid_counts.append(counts.astype(np.int64))
            self.stream_pid_labels.append(codes)
        self._merged_codes: np.ndarray | None = None

    def comm(self, stream: int, pid: int) -> str:
        """The task name of ``pid`` in ``stream`` (``<idle>`` for 0, ``<...>`` if nobody named it), as
        shown: bytes that are not UTF-8 read U+FFFD (:attr:`names` keeps them)."""
        if pid == 0:
            return "<idle>"
        return display(self.names[stream].get(pid, "<...>"))

    def tasks(self, stream: int) -> list[tuple[int, str, int]]:
        """(pid, comm, event count) of every pid with events in ``stream``, by pid."""
        return [(p, self.comm(stream, p), int(c))
                for p, c in zip(self.stream_pids[stream].tolist(), self.stream_pid_counts[stream].tolist(),
                                strict=True)]

    def merged_codes(self) -> np.ndarray:
        """int32 label index per merged row (computed on first use, then kept)."""
        if self._merged_codes is None:
            merged = self.session.merged()
            per_stream = []
            for st in self.session.streams:
                labels = self.stream_pid_labels[st.index]  # aligned with the pid column's distinct values
                per_stream.append(map_values(stream_column(st, "pid"), lambda _uniq, labels=labels: labels))
            self._merged_codes = merged_gather(merged, per_stream, fill=0, dtype=np.int32)
        return self._merged_codes

    def label_mask(self, pred: Callable[[str], bool]) -> np.ndarray:
        """bool per label: the predicate run once per distinct name."""
        return np.fromiter((pred(s) for s in self.labels), bool, len(self.labels))

    def match(self, text: str, mode: str = "contains") -> np.ndarray:
        """bool per merged row: does its task name match ``text`` in ``mode``."""
        return self.label_mask(text_matcher(text, mode))[self.merged_codes()]

    def pids_matching(self, stream: int, text: str, mode: str = "contains") -> list[int]:
        """pids of ``stream`` whose name matches (for "filter tasks named X")."""
        pred = text_matcher(text, mode)
        return [p for p in self.stream_pids[stream].tolist() if pred(self.comm(stream, p))]
