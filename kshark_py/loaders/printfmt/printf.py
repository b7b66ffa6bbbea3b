"""C printf emulation for the conversions libtraceevent passes through to the C library: a parsed
conversion (:class:`Spec`), integers (:func:`c_int`) and strings (:func:`c_str`) with flags, width
and precision, and C strings read out of a record (:func:`cstring`)."""

from __future__ import annotations

from dataclasses import dataclass

from .. import text as ktext

__all__ = ["Spec", "c_int", "c_str", "cstring", "parse_spec"]


@dataclass
class Spec:
    """A parsed printf conversion: flags, width, precision (None = absent, '*' = from arg)."""

    flags: str = ""
    width: int | str | None = None
    prec: int | str | None = None
    conv: str = "d"


def parse_spec(fmt: str) -> Spec:
    i = 1
    n = len(fmt)
    flags = ""
    while i < n and fmt[i] in "-+ #0":
        flags += fmt[i]
        i += 1
    width: int | str | None = None
    if i < n and fmt[i] == "*":
        width = "*"
        i += 1
    else:
        j = i
        while i < n and fmt[i].isdigit():
            i += 1
        if i > j:
            width = int(fmt[j:i])
    prec: int | str | None = None
    if i < n and fmt[i] == ".":
        i += 1
        if i < n and fmt[i] == "*":
            prec = "*"
            i += 1
        else:
            j = i
            while i < n and fmt[i].isdigit():
                i += 1
            prec = int(fmt[j:i]) if i > j else 0
    while i < n and fmt[i] in "hlLqjzZt":
        i += 1
    conv = fmt[i] if i < n else ""
    return Spec(flags, width, prec, conv)


def _resolve_star(sp: Spec, plen: int) -> tuple[str, int | None, int | None]:
    flags = sp.flags
    width = sp.width
    prec = sp.prec
    if width == "*":
        width = plen
        if width < 0:
            flags += "-"
            width = -width
    if prec == "*":
        prec = plen if plen >= 0 else None
    return flags, width, prec  # type: ignore[return-value]


def c_int(sp: Spec, val: int, bits: int, plen: int = -1) -> str:
    """printf of an integer conversion with the value truncated to ``bits``."""
    flags, width, prec = _resolve_star(sp, plen) if (sp.width == "*" or sp.prec == "*") else (
        sp.flags, sp.width, sp.prec)
    mask = (1 << bits) - 1
    v = val & mask
    conv = sp.conv
    neg = False
    if conv in "di":
        if v >> (bits - 1):
            v = (1 << bits) - v
            neg = True
        digits = str(v)
    elif conv == "u":
        digits = str(v)
    elif conv == "x":
        digits = format(v, "x")
    elif conv == "X":
        digits = format(v, "X")
    elif conv == "o":
        digits = format(v, "o")
    else:
        digits = str(v)
    prefix = ""
    if prec is not None:
        if prec == 0 and v == 0:
            digits = ""
        elif len(digits) < prec:
            digits = "0" * (prec - len(digits)) + digits
    if "#" in flags:
        if conv in "xX" and v != 0:
            prefix = "0x" if conv == "x" else "0X"
        elif conv == "o" and not digits.startswith("0"):
            digits = "0" + digits
    sign = "-" if neg else ("+" if ("+" in flags and conv in "di") else (" " if (" " in flags and conv in "di")
                                                                           else ""))
    body = sign + prefix + digits
    if width is not None and len(body) < width:
        if "-" in flags:
            return body + " " * (width - len(body))
        if "0" in flags and prec is None:
            return sign + prefix + "0" * (width - len(body)) + digits
        return " " * (width - len(body)) + body
    return body


def c_str(sp: Spec, s: str, plen: int = -1) -> str:
    """printf %s with flags/width/precision."""
    flags, width, prec = _resolve_star(sp, plen) if (sp.width == "*" or sp.prec == "*") else (
        sp.flags, sp.width, sp.prec)
    if prec is not None:  # C counts bytes: a comm that is not UTF-8 is as wide as its bytes
        s = ktext.truncate(s, max(prec, 0))
    if width is not None:
        return ktext.pad(s, width, left="-" in flags)
    return s


def cstring(data: bytes, off: int, limit: int | None = None) -> str:
    end = len(data) if limit is None else min(limit, len(data))
    if off >= end:
        return ""
    nul = data.find(b"\0", off, end)
    if nul < 0:
        nul = end
    return ktext.decode(data[off:nul])
