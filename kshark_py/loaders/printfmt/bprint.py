"""``bprint`` (trace_printk) records: the binary ``vbin_printf`` arguments decoded as the format
string describes them (``make_bprint_args``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import text as ktext
from ..cnum import s64
from .lexer import isprint
from .tree import A_ATOM, A_BSTRING, Arg

if TYPE_CHECKING:
    from .evaluator import Evaluator

__all__ = ["bprint_args"]


def bprint_args(ev: Evaluator, fmt: str, data: bytes, buf_off: int, ip: int) -> list[Arg]:
    """make_bprint_args: decode the binary printk arguments the format string describes."""
    args: list[Arg] = []
    a = Arg(A_ATOM)
    a.atom = str(s64(ip))
    args.append(a)
    size = len(data)
    bptr = buf_off
    n = len(fmt)
    i = 5

    def ch(k: int) -> str:
        return fmt[k] if k < n else ""

    while bptr < size and i < n:
        if fmt[i] == "%":
            ls = 0
            while True:  # process_again
                i += 1
                c = ch(i)
                if c == "%":
                    break
                if c == "l":
                    ls += 1
                    continue
                if c == "L":
                    ls = 2
                    continue
                if c and c in "0123456789.#":
                    continue
                if c and c in "zZ":
                    ls = 1
                    continue
                as_string = False
                number = False
                if c == "p":
                    ls = 1
                    nx = ch(i + 1)
                    if nx and nx.isascii() and nx.isalnum():
                        i += 1
                        c2 = fmt[i]
                        special = c2 in "sSx" or (c2 in "fF" and ch(i + 1) != "w")
                        if not special and bptr < size and isprint(chr(data[bptr])):
                            as_string = True
                    number = not as_string
                elif c and c in "duixXo":
                    number = True
                if number or c == "*":
                    if number:
                        vsize = {0: 4, 1: ev.long_size, 2: 8}.get(ls, ls)
                    if c == "*":
                        vsize = 4
                    bptr = (bptr + 3) & ~3
                    val = ev.read(data, bptr, vsize)
                    bptr += vsize
                    na = Arg(A_ATOM)
                    na.atom = str(s64(val))
                    args.append(na)
                    if c == "*":
                        continue
                    break
                if c == "s" or as_string:
                    end = data.find(b"\0", bptr)
                    if end < 0:
                        end = size
                    na = Arg(A_BSTRING)
                    na.atom = ktext.decode(data[bptr:end])
                    args.append(na)
                    bptr = end + 1
                break
        i += 1
    return args
