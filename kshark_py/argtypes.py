"""Checked numbers and output paths for command-line options.

Why: ``int("abc")`` says "invalid literal for int() with base 10", ``float("nan")`` is accepted and
later breaks ``time.sleep``, and ``int()`` also takes "1_000", " 7 " or Arabic-Indic digits. Options
of ``kshark-py`` and ``kshark-py record`` take plain ASCII numbers in a stated range, and a bad one
is refused with one line naming the value and what was expected. An output file whose directory is
missing is refused before any work (``record`` would record first; ``--screenshot`` failed silently).
No dependencies: the CLI floors
(``cli.py`` and ``capture/cli.py``) both use it.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable

_WHOLE = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _range_text(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"{lo:g}..{hi:g}" if isinstance(lo, float) else f"{lo}..{hi}"
    return f">= {lo}" if lo is not None else f"<= {hi}"


def whole_number(text: str, lo: int | None = None, hi: int | None = None) -> int:
    """``text`` as an int in ``lo..hi``; ValueError with a one-line reason otherwise."""
    if not _WHOLE.fullmatch(text):
        raise ValueError(f"not a whole number: {text!r}")
    digits = text.lstrip("+-").lstrip("0")
    if len(digits) > 40:  # past every range used here; int() of thousands of digits is refused anyway
        raise ValueError(f"{text[:20]}... is out of range ({_range_text(lo, hi)})")
    n = int(text)
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        raise ValueError(f"{n} is out of range ({_range_text(lo, hi)})")
    return n


def seconds(text: str, lo: float = 0.0, hi: float = 1e9) -> float:
    """A duration in seconds, finite, ``lo < value <= hi`` (``time.sleep`` fails on nan/inf/huge)."""
    if not _DECIMAL.fullmatch(text):
        raise ValueError(f"not a number of seconds: {text!r}")
    v = float(text)
    if not math.isfinite(v) or not lo < v <= hi:
        raise ValueError(f"{text} seconds is out of range (more than {lo:g}, at most {hi:g})")
    return v


def writable_file(path: str) -> str:
    """``path`` if a file can be created or replaced there; ValueError naming what is wrong otherwise."""
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a directory (give a file name)")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ValueError(f"{path}: cannot write: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{path}: cannot write: no permission in {parent}")
    return path


def arg_type(parse: Callable[..., object], *bounds: float | None) -> Callable[[str], object]:
    """An argparse ``type=`` that reports ``parse``'s message (argparse adds "argument -X: ")."""

    def convert(text: str) -> object:
        try:
            return parse(text, *bounds)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = parse.__name__
    return convert
