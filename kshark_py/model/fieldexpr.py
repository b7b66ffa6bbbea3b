"""The field-filter expression language: parse and evaluate ``prev_pid == 0 && next_comm ~ "kworker*"``.

A small language close to libtraceevent's filters, checked against one event type's fields when
parsed (an unknown field or an operator that does not fit the field's type is a
:class:`FilterSyntaxError` naming the column), and evaluated over whole columns with the vectorized
field extraction of :mod:`kshark_py.model.columns`: integer tests are numpy comparisons, string
tests run once per distinct value and are spread back with one gather.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ..loaders.formats import EventFormat
from ..loaders.text import decode, display
from .columns import event_columns

if TYPE_CHECKING:
    from ..loaders.tracedat import Buffer


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

