"""One copy of C's integer semantics (loaders/cnum.py) and of the trace_clock parser, checked against C."""

from __future__ import annotations

import pytest

from kshark_py.loaders.cnum import s32, s64, strtoll, strtoull
from kshark_py.loaders.text import trace_clocks

C_STRTOLL = {"123\n": 123, "  -5": -5, "+7x": 7, "0x1f": 31, "0X10": 16, "010": 8, "0": 0, "08": 0, "0x": 0,
             "0xg": 0, "abc": 0, "": 0, "-": 0, "-0x10": -16, "99999999999999999999": (1 << 63) - 1,
             "-99999999999999999999": -(1 << 63), "\t\v42": 42, "0" * 3000 + "17": 15}
C_STRTOULL = {"-1": 2**64 - 1, "18446744073709551615": 2**64 - 1, "18446744073709551616": 2**64 - 1,
              "0x8000000000000000": 1 << 63, "9" * 5000: 2**64 - 1, " +12": 12}


@pytest.mark.parametrize("text,want", C_STRTOLL.items())
def test_strtoll(text, want):
    assert strtoll(text) == want


@pytest.mark.parametrize("text,want", C_STRTOULL.items())
def test_strtoull(text, want):
    assert strtoull(text) == want


def test_wraps():
    assert s32(0xFFFFFFFF) == -1 and s32(1 << 31) == -(1 << 31) and s32((1 << 32) + 5) == 5
    assert s64(1 << 63) == -(1 << 63) and s64(2**64 - 2) == -2 and s64(7) == 7


@pytest.mark.parametrize("text,want", [
    ("[local] global counter uptime perf mono mono_raw boot x86-tsc\n", "local"),
    ("local global [x86-tsc]", "x86-tsc"),
    ("local global", None),
    ("[] local", None),
    ("[local]\0garbage [boot]", "local"),
])
def test_trace_clocks(text, want):
    clocks, selected = trace_clocks(text)
    assert selected == want
    assert "local" in clocks
