"""Print-fmt argument trees evaluated for a whole column of records at once.

:meth:`kshark_py.loaders.printfmt.evaluator.Evaluator.num` evaluates one record's argument (a field, a cast,
``REC->args[2]``, ``REC->pfn != -1UL ? ... : 0``...) with libtraceevent's unsigned 64-bit rules.
:func:`compile_num` turns the same tree into a function of a block of records that does the same
with numpy ``uint64`` arithmetic (which wraps exactly like the ``& U64`` of the scalar code), or
returns None for what it does not cover (functions, dynamic arrays, computed indices): the caller
then falls back to the scalar evaluator.  :func:`find_funcs` is ``Evaluator.find_func`` for an
array of addresses, bsearch probing included.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..loaders.printfmt.consteval import eval_type_str
from ..loaders.printfmt.evaluator import Evaluator, unwrap_casts
from ..loaders.printfmt.tree import A_DYNAMIC_ARRAY, A_DYNAMIC_ARRAY_LEN, A_FIELD, A_FUNC, A_OP, A_TYPE, Arg

__all__ = ["Reader", "compile_num", "find_funcs"]

U64 = (1 << 64) - 1
Reader = Callable[[int, int], np.ndarray]
"""reader(offset, size) -> uint64 per record: ``Evaluator.read`` (0 past a record's end or for a
size other than 1, 2, 4, 8)."""
Num = Callable[[Reader, int], np.ndarray]
"""fn(reader, n) -> uint64 values of n records."""


def _has_data(arg: Arg | None) -> bool:
    """Does the tree read the record (a field, a dynamic array, a function of anything)?"""
    if arg is None:
        return False
    if arg.kind in (A_FIELD, A_DYNAMIC_ARRAY, A_DYNAMIC_ARRAY_LEN, A_FUNC):
        return True
    return any(_has_data(a) for a in (arg.left, arg.right, arg.item))


def _const(v: int) -> Num:
    c = np.uint64(v & U64)
    return lambda rd, n: np.full(n, c, np.uint64)


def compile_num(arg: Arg | None, ev: Evaluator) -> Num | None:
    """A column version of ``ev.num(arg, data)``, or None where it is not covered."""
    if arg is None:
        return _const(0)
    if not _has_data(arg):
        return _const(ev.num(arg, b""))  # constants, symbols, sizeof: the scalar code, once
    k = arg.kind
    if k == A_FIELD:
        f = arg.field
        off, size = f.offset, f.size
        return lambda rd, n: rd(off, size)
    if k == A_TYPE:
        inner = compile_num(arg.item, ev)
        if inner is None:
            return None
        mask = np.uint64(eval_type_str(U64, arg.ctype, False))  # a cast only ever truncates
        return lambda rd, n: inner(rd, n) & mask
    if k != A_OP:
        return None  # functions, dynamic arrays: scalar
    op = arg.op
    if op == "[":
        return _index(arg, ev)
    if op == "?":
        cond = compile_num(arg.left, ev)
        r = arg.right
        if r is None:
            return _const(0)
        a, b = compile_num(r.left, ev), compile_num(r.right, ev)
        if cond is None or a is None or b is None:
            return None
        return lambda rd, n: np.where(cond(rd, n) != 0, a(rd, n), b(rd, n))
    left, right = compile_num(arg.left, ev), compile_num(arg.right, ev)
    if left is None or right is None:
        return None
    fn = _BINOPS.get(op)
    if fn is None:
        return None
    return lambda rd, n: fn(left(rd, n), right(rd, n))


def _index(arg: Arg, ev: Evaluator) -> Num | None:
    """``Evaluator._index`` for a fixed array and a constant index."""
    if _has_data(arg.right):
        return None
    right = ev.num(arg.right, b"")
    typearg, larg = unwrap_casts(arg.left)
    if larg is None or larg.kind != A_FIELD or larg.field is None:
        return None
    f = larg.field
    size = f.elementsize
    off = (f.offset + right * size) & U64
    if off >= 1 << 31:
        return _const(0)
    mask = np.uint64(eval_type_str(U64, typearg.ctype, True) if typearg is not None else U64)
    return lambda rd, n: rd(off, size) & mask


def _b(x: np.ndarray) -> np.ndarray:
    return x.astype(np.uint64)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    z = b == 0
    return np.where(z, np.uint64(0), a // np.where(z, np.uint64(1), b))


def _mod(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    z = b == 0
    return np.where(z, np.uint64(0), a % np.where(z, np.uint64(1), b))


_63 = np.uint64(63)
_BINOPS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    ">>": lambda a, b: a >> (b & _63),
    "<<": lambda a, b: a << (b & _63),
    ">=": lambda a, b: _b(a >= b), ">": lambda a, b: _b(a > b),
    "<=": lambda a, b: _b(a <= b), "<": lambda a, b: _b(a < b),
    "==": lambda a, b: _b(a == b), "!=": lambda a, b: _b(a != b),
    "&&": lambda a, b: _b((a != 0) & (b != 0)), "||": lambda a, b: _b((a != 0) | (b != 0)),
    "&": lambda a, b: a & b, "|": lambda a, b: a | b, "^": lambda a, b: a ^ b,
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "/": _div, "%": _mod,
    "!": lambda a, b: _b(b == 0), "~": lambda a, b: ~b,
}


def find_funcs(ev: Evaluator, addr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(symbol index or -1, symbol start) per address: ``ev.find_func`` probe for probe, for all at once."""
    if ev._fmap is None:
        ev._build_fmap()
    addrs, which = ev._fmap
    n = len(addrs)
    m = len(addr)
    sym = np.full(m, -1, np.int64)
    start = np.zeros(m, np.uint64)
    if n == 0 or m == 0:
        return sym, start
    addrs = np.asarray(addrs, np.uint64)
    nxt_all = np.r_[addrs[1:], np.uint64(0)]
    lo = np.zeros(m, np.int64)
    hi = np.full(m, n, np.int64)
    active = np.ones(m, bool)
    while active.any():
        act = np.flatnonzero(active)
        i = (lo[act] + hi[act]) // 2
        a = addrs[i]
        x = addr[act]
        hit = (x == a) | ((x > a) & (x < nxt_all[i]))
        sym[act[hit]] = which[i[hit]]
        start[act[hit]] = a[hit]
        miss = ~hit
        down = miss & (x < a)
        up = miss & ~(x < a)
        hi[act[down]] = i[down]
        lo[act[up]] = i[up] + 1
        active[act[hit]] = False
        active[act] &= lo[act] < hi[act]
    return sym, start
