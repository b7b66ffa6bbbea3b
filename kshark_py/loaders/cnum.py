"""C integer semantics the file's texts and values are read with: fixed-width wrap-around and strtoll.

trace-cmd and libtraceevent are C: a value printed as ``int`` wraps at 32 bits, a number in an option,
a print format or a tracefs file is read with ``strtoull``/``strtoll`` (base 0: decimal, 0x hex, 0
octal; the leading number only; clamped on overflow).  One copy of each, so every reader of such a
text agrees with trace-cmd and with each other.
"""

from __future__ import annotations

import re

__all__ = ["U64", "s32", "s64", "strtoull", "strtoll", "c_isspace"]

U64 = 0xFFFFFFFFFFFFFFFF
_DIGITS = {8: re.compile(r"[0-7]*"), 10: re.compile(r"[0-9]*"), 16: re.compile(r"[0-9a-fA-F]*")}


def s32(v: int) -> int:
    """``(int)v``: the low 32 bits as two's complement."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def s64(v: int) -> int:
    """``(long long)v``: the low 64 bits as two's complement."""
    v &= U64
    return v - (1 << 64) if v >> 63 else v


def c_isspace(c: str) -> bool:
    """C ``isspace`` in the C locale (not Python's Unicode notion)."""
    return c in " \t\n\v\f\r"


def strtoull(s: str) -> int:
    """C ``strtoull(s, NULL, 0)``: leading number only, '-' negates modulo 2**64, 0 if none, ULLONG_MAX on overflow."""
    i = 0
    n = len(s)
    while i < n and c_isspace(s[i]):
        i += 1
    neg = False
    if i < n and s[i] in "+-":
        neg = s[i] == "-"
        i += 1
    base = 10
    if s[i:i + 2].lower() == "0x" and i + 2 < n and s[i + 2] in "0123456789abcdefABCDEF":
        base = 16
        i += 2
    elif s[i:i + 1] == "0":
        base = 8
    j = _DIGITS[base].match(s, i).end()  # a regex: linear and in C, however long the run
    if j == i:
        return 0
    run = s[i:j].lstrip("0") or "0"
    if len(run) > 22:  # past 2**64 in any of the bases; int() of a long decimal run raises ValueError
        return U64
    v = int(run, base)
    if v > U64:
        return U64
    return (-v) & U64 if neg else v


def strtoll(s: str) -> int:
    """C ``strtoll(s, NULL, 0)``: as :func:`strtoull`, clamped to the long long range (LLONG_MIN/MAX)."""
    t = s.lstrip(" \t\n\v\f\r")
    neg = t.startswith("-")
    mag = strtoull(t[1:] if t[:1] in "+-" else t)
    if neg:
        return max(-mag, -(1 << 63))
    return min(mag, (1 << 63) - 1)
