"""C value semantics of the argument tree without a record: constant folding (``consolidate_op_arg``),
casts (``eval_type_str``), unsigned binary operators, and the signed constant evaluation of
``__print_flags``/``__print_symbolic`` tables (``arg_num_eval``)."""

from __future__ import annotations

import functools

from ..cnum import U64, s64, strtoll, strtoull
from .tree import A_ATOM, A_NULL, A_OP, A_TYPE, Arg

__all__ = ["arg_eval", "binop", "consolidate", "eval_flag", "eval_type_str"]


def consolidate(arg: Arg) -> None:
    """consolidate_op_arg: fold ATOM op ATOM into an ATOM ("%lld" of the unsigned result)."""
    if arg.kind != A_OP:
        return
    if arg.left is not None:
        consolidate(arg.left)
    if arg.right is not None:
        consolidate(arg.right)
    if arg.left is None or arg.right is None:
        return
    if arg.left.kind != A_ATOM or arg.right.kind != A_ATOM:
        return
    left = strtoull(arg.left.atom)
    right = strtoull(arg.right.atom)
    op = arg.op
    if op in ("/", "%") and right == 0:
        return
    v = binop(op, left, right)
    if v is None:
        return
    arg.kind = A_ATOM
    arg.atom = str(s64(v))


def binop(op: str, left: int, right: int) -> int | None:
    if op == ">>":
        return left >> (right & 63)
    if op == ">=":
        return int(left >= right)
    if op == ">":
        return int(left > right)
    if op == "<<":
        return (left << (right & 63)) & U64
    if op == "<=":
        return int(left <= right)
    if op == "<":
        return int(left < right)
    if op == "&&":
        return int(bool(left) and bool(right))
    if op == "&":
        return left & right
    if op == "||":
        return int(bool(left) or bool(right))
    if op == "|":
        return left | right
    if op == "-":
        return (left - right) & U64
    if op == "+":
        return (left + right) & U64
    if op == "*":
        return (left * right) & U64
    if op == "^":
        return left ^ right
    if op == "/":
        return left // right if right else 0
    if op == "%":
        return left % right if right else 0
    if op == "==":
        return int(left == right)
    if op == "!=":
        return int(left != right)
    return None


def eval_type_str(val: int, ctype: str, pointer: bool) -> int:
    """eval_type_str: apply a cast to an unsigned 64-bit value."""
    if len(ctype) < 2:
        return val
    if pointer:
        if ctype[-1] != "*":
            return val
        return eval_type_str(val, ctype[:-2], False)
    if ctype[-1] == "*":
        return val
    if ctype.startswith("struct"):
        return val
    if ctype == "u8":
        return val & 0xFF
    if ctype == "u16":
        return val & 0xFFFF
    if ctype == "u32":
        return val & 0xFFFFFFFF
    if ctype in ("u64", "s64"):
        return val
    if ctype == "s8":
        return val & 0xFF
    if ctype == "s16":
        return val & 0xFFFF
    if ctype == "s32":
        return val & 0xFFFFFFFF
    if ctype.startswith("unsigned "):
        ctype = ctype[9:]
    if ctype == "char":
        return val & 0xFF
    if ctype == "short":
        return val & 0xFFFF
    if ctype == "int":
        return val & 0xFFFFFFFF
    return val


def _arg_num_eval(arg: Arg) -> int | None:
    """arg_num_eval: signed constant evaluation used for __print_flags/symbolic values."""
    k = arg.kind
    if k == A_ATOM:
        return strtoll(arg.atom)
    if k == A_TYPE:
        v = _arg_num_eval(arg.item)
        if v is None:
            return None
        return s64(eval_type_str(v & U64, arg.ctype, False))
    if k != A_OP:
        return None
    op = arg.op
    if op == "~":
        r = _arg_num_eval(arg.right)
        return None if r is None else ~r
    if op in ("-", "+") and arg.left is not None and arg.left.kind == A_NULL:
        left = 0
    else:
        if op[:1] not in "|&<>=!-+":
            return None
        left = _arg_num_eval(arg.left)
        if left is None:
            return None
    right = _arg_num_eval(arg.right)
    if right is None:
        return None
    if op == "|":
        return left | right
    if op == "||":
        return int(bool(left or right))
    if op == "&":
        return left & right
    if op == "&&":
        return int(bool(left and right))
    if op == "<":
        return int(left < right)
    if op == "<<":
        return s64(left << (right & 63))
    if op == "<=":
        return int(left <= right)
    if op == ">":
        return int(left > right)
    if op == ">>":
        return left >> (right & 63)
    if op == ">=":
        return int(left >= right)
    if op == "==":
        return int(left == right)
    if op == "!=":
        return int(left != right)
    if op == "-":
        return s64(left - right)
    if op == "+":
        return s64(left + right)
    return None


def arg_eval(arg: Arg) -> str | None:
    if arg.kind == A_ATOM:
        return arg.atom
    if arg.kind == A_TYPE:
        return arg_eval(arg.item)
    if arg.kind == A_OP:
        v = _arg_num_eval(arg)
        return None if v is None else str(s64(v))
    return None


_FLAG_NAMES = {"HI_SOFTIRQ": 0, "TIMER_SOFTIRQ": 1, "NET_TX_SOFTIRQ": 2, "NET_RX_SOFTIRQ": 3,
               "BLOCK_SOFTIRQ": 4, "IRQ_POLL_SOFTIRQ": 5, "TASKLET_SOFTIRQ": 6, "SCHED_SOFTIRQ": 7,
               "HRTIMER_SOFTIRQ": 8, "RCU_SOFTIRQ": 9, "HRTIMER_NORESTART": 0, "HRTIMER_RESTART": 1}


@functools.lru_cache(maxsize=4096)
def eval_flag(s: str) -> int:
    """A flag/symbol table value (pure: cached, it ran strtoull for every entry of every table)."""
    if s[:1].isdigit():
        return s64(strtoull(s))
    return _FLAG_NAMES.get(s, -1)
