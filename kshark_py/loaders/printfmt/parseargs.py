"""``parse_args``: the format string split into literal text and conversions, each conversion bound
to its argument (``tep_print_parse``), as libtraceevent matches them."""

from __future__ import annotations

from collections.abc import Callable

from .printf import parse_spec
from .tree import Arg

__all__ = ["P_STRING", "P_DIGIT", "P_POINTER", "P_ARGSTR", "ParseItem", "parse_args"]


P_STRING, P_DIGIT, P_POINTER, P_ARGSTR = range(4)


class ParseItem:
    """One piece of the format (tep_print_parse): literal text or a conversion with its arg."""

    __slots__ = ("kind", "format", "arg", "len_arg", "ls", "spec", "run")

    def __init__(self, kind: int, fmt: str, arg: Arg | None = None, len_arg: Arg | None = None,
                 ls: int = 0) -> None:
        self.kind = kind
        self.format = fmt
        self.arg = arg
        self.len_arg = len_arg
        self.ls = ls
        self.spec = parse_spec(fmt) if kind != P_STRING else None
        self.run: Callable[[bytes, int], str] | None = None


def _pointer_ext_len(f: str) -> int:
    """parse_arg_format_pointer: how many chars after 'p' belong to the conversion."""
    c = f[:1]
    ret = 0
    if c in ("F", "S", "f", "s"):
        ret += 1
    elif c in ("M", "m"):
        if f[1:2] in ("R", "F"):
            ret += 1
        ret += 1
    elif c in ("I", "i"):
        index = 2
        c1 = f[1:2]
        if c1 == "S":
            while f[index:index + 1] in ("p", "f", "s") and f[index:index + 1]:
                ret += 1
                index += 1
        if c1 in ("S", "4"):
            if f[index:index + 1] in ("h", "n", "l", "b") and f[index:index + 1]:
                ret += 1
                index += 1
            if c1 == "4":
                ret += 1
                return ret + 1
        if c1 in ("S", "6"):
            if f[index:index + 1] == "c":
                ret += 1
            ret += 1
        ret += 1
    elif c == "U":
        if f[1:2] in ("L", "l", "B", "b"):
            ret += 1
        ret += 1
    elif c == "h":
        if f[1:2] in ("C", "D", "N"):
            ret += 1
        ret += 1
    return ret


def parse_args(fmt: str, args: list[Arg], long_size: int) -> tuple[list[ParseItem], bool]:
    """Split ``fmt`` into ParseItems, binding args in order; returns (items, failed)."""
    items: list[ParseItem] = []
    failed = False
    it = iter(args)
    pending: list[Arg | None] = [next(it, None)]

    def cur() -> Arg | None:
        return pending[0]

    def advance() -> None:
        pending[0] = next(it, None)

    n = len(fmt)
    pos = 0
    remaining = n
    while pos < n:
        if fmt[pos] == "%" and fmt[pos + 1:pos + 2] != "%":
            ret, f = _parse_arg_format(fmt, pos, items, cur, advance)
            failed = failed or f
        else:
            ret = _parse_arg_string(fmt, pos, items)
        remaining -= ret
        if remaining > 0:
            pos += ret
        else:
            break
    return items, failed


def _parse_arg_format(fmt: str, start: int, items: list[ParseItem], cur, advance) -> tuple[int, bool]:
    ret = 1
    ls = 0
    len_arg: Arg | None = None
    i = start + 1
    n = len(fmt)
    while i < n:
        c = fmt[i]
        if c == "#":
            pass
        elif c == "h":
            ls -= 1
        elif c == "l":
            ls += 1
        elif c == "L":
            ls = 2
        elif c in "zZ":
            ls = 1
        elif c in ".-0123456789":
            pass
        elif c == "*":
            if cur() is None or len_arg is not None:
                return ret, True
            len_arg = cur()
            advance()
        elif c == "p":
            if cur() is None:
                return ret, True
            res = _pointer_ext_len(fmt[i + 1:])
            if res > 0:
                i += res
                ret += res
            pf = fmt[start:i + 1]
            items.append(ParseItem(P_POINTER, pf[:31], cur(), len_arg, ls))
            advance()
            return ret + 1, False
        elif c in "duixXo":
            if cur() is None:
                return ret, True
            pf = fmt[start:i + 1]
            bad = ls < -2 or ls > 2
            items.append(ParseItem(P_DIGIT, pf, cur(), len_arg, ls))
            advance()
            return ret + 1, bad
        elif c == "s":
            if cur() is None:
                return ret, True
            items.append(ParseItem(P_ARGSTR, fmt[start:i + 1], cur(), len_arg, 0))
            advance()
            return ret + 1, False
        else:
            items.append(ParseItem(P_STRING, f">{c}<"))
            return ret + 1, False
        ret += 1
        i += 1
    return ret, False


_ESC = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}


def _parse_arg_string(fmt: str, pos: int, items: list[ParseItem]) -> int:
    out = []
    ret = 0
    n = len(fmt)
    i = pos
    while i < n:
        c = fmt[i]
        if c == "\\":
            i += 1
            ret += 1
            if i < n:
                out.append(_ESC.get(fmt[i], fmt[i]))
            else:
                break
        elif c == "%":
            if fmt[i + 1:i + 2] == "%":
                out.append("%")
                i += 1
                ret += 1
            else:
                break
        else:
            out.append(c)
        ret += 1
        i += 1
    items.append(ParseItem(P_STRING, "".join(out)))
    return ret
