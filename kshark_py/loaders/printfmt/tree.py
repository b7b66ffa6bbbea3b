"""The parse tree of a print fmt's arguments (``struct tep_print_arg``) and the helper functions
plugins register for print fmts (``FuncDef``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .field import TField

__all__ = ["A_NULL", "A_ATOM", "A_FIELD", "A_FLAGS", "A_SYMBOL", "A_HEX", "A_INT_ARRAY", "A_TYPE", "A_STRING",
           "A_BSTRING", "A_DYNAMIC_ARRAY", "A_OP", "A_FUNC", "A_BITMASK", "A_DYNAMIC_ARRAY_LEN", "A_HEX_STR",
           "A_CPUMASK", "Arg", "FuncDef"]


A_NULL, A_ATOM, A_FIELD, A_FLAGS, A_SYMBOL, A_HEX, A_INT_ARRAY, A_TYPE, A_STRING, A_BSTRING = range(10)
A_DYNAMIC_ARRAY, A_OP, A_FUNC, A_BITMASK, A_DYNAMIC_ARRAY_LEN, A_HEX_STR, A_CPUMASK = range(10, 17)


class Arg:
    """A print-fmt argument node; attributes depend on ``kind`` (mirrors tep_print_arg)."""

    def __init__(self, kind: int = A_NULL) -> None:
        self.kind = kind
        self.atom = ""
        self.name = ""
        self.field: TField | None = None
        self.op = ""
        self.left: Arg | None = None
        self.right: Arg | None = None
        self.prio = 0
        self.ctype = ""
        self.item: Arg | None = None
        self.delim: str | None = None
        self.syms: list[tuple[str, str]] = []
        self.a1: Arg | None = None
        self.a2: Arg | None = None
        self.a3: Arg | None = None
        self.func: FuncDef | None = None
        self.fargs: list[Arg] = []
        self.value: int = 0

    def copy_from(self, other: Arg) -> None:
        self.__dict__.update(other.__dict__)


@dataclass
class FuncDef:
    """A helper function a plugin registers for print fmts (tep_register_print_function)."""

    name: str
    params: list[str]  # 'int' | 'long' | 'ptr' | 'string'
    fn: Callable[[list, int], tuple[str, int]]
    """fn(args, long_size) -> (text printed, return value).  Numbers arrive as unsigned ints, strings
    as str, pointers as the bytes they point at in the record, or None (:meth:`Evaluator.pointee`)."""
