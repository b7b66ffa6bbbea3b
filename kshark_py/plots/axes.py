"""Axes for the timeline: time in seconds with units that fit the zoom, and row labels."""

from __future__ import annotations

import math

import pyqtgraph as pg


def time_unit(span_s: float) -> tuple[float, str, int]:
    """(scale, suffix, decimals) to print offsets within a window of ``span_s`` seconds."""
    if span_s >= 10:
        return 1.0, "s", 1
    if span_s >= 0.01:
        return 1e3, "ms", max(0, 2 - int(math.floor(math.log10(span_s * 1e3))) + 1)
    if span_s >= 1e-5:
        return 1e6, "µs", max(0, 2 - int(math.floor(math.log10(span_s * 1e6))) + 1)
    return 1e9, "ns", 0


def seconds_text(ts_ns: int, decimals: int = 6) -> str:
    """Absolute time in seconds with a fixed number of decimals, truncated (``4647.356419``): labels,
    tooltips and tables. Not :func:`kshark_py.model.eventtext.trace_cmd_time`, which pads and rounds
    like the report's time column and knows raw clocks."""
    s, ns = divmod(int(ts_ns), 1_000_000_000)
    if decimals >= 9:
        return f"{s}.{ns:09d}"
    return f"{s}.{ns // 10 ** (9 - decimals):0{decimals}d}"


def window_text(t0: int, t1: int) -> str:
    """``start 4647.356419 s ... end 4647.949700 s (window 593.281 ms)``: what the time axis says
    below its ticks."""
    span = max(t1 - t0, 0)
    dec = 9 if span < 10_000 else 6
    mult, unit, d = time_unit(max(span, 1) / 1e9)
    return (f"start {seconds_text(t0, dec)} s \u2003\u2026\u2003 end {seconds_text(t1, dec)} s"
            f" \u2003(window {span / 1e9 * mult:.{d}f} {unit})")


class TimeAxis(pg.AxisItem):
    """Bottom axis: ticks are absolute seconds; the labels show the time since the window start in
    units that fit the zoom (s, ms, µs, ns); the label below them gives the window's absolute start
    and end (:func:`window_text`), so an offset always has something to count from."""

    def __init__(self, **kw) -> None:
        super().__init__("bottom", **kw)
        self.window = (0, 0)
        self.setLabel("")

    def set_window(self, t0: int, t1: int) -> None:
        """Show the window's absolute start and end under the ticks, in trace-cmd's seconds (µs
        decimals, ns when the window is under 10 µs): the ticks only give offsets from the start."""
        if (t0, t1) == self.window:
            return
        self.window = (t0, t1)
        self.setLabel(window_text(t0, t1))

    def tickStrings(self, values, scale, spacing):  # noqa: N802 (pyqtgraph API)
        if not values:
            return []
        lo, hi = self.range
        span = max(hi - lo, 1e-12)
        mult, unit, dec = time_unit(span)
        out = []
        for v in values:
            if span >= 10:
                out.append(f"{v:.{max(0, 2 - int(math.log10(spacing)) if spacing < 1 else 0)}f} s")
            else:
                out.append(f"+{(v - lo) * mult:.{dec}f} {unit}")
        return out


class RowAxis(pg.AxisItem):
    """Left axis: one label per timeline row, at the row's centre."""

    def __init__(self, **kw) -> None:
        super().__init__("left", **kw)
        self.labels: list[str] = []
        self.setWidth(250)

    def set_labels(self, labels: list[str]) -> None:
        self.labels = list(labels)
        self.picture = None
        self.update()

    def tickValues(self, minVal, maxVal, size):  # noqa: N802, N803 (pyqtgraph API)
        lo, hi = sorted((minVal, maxVal))  # an inverted view hands the range over reversed
        vals = [i + 0.55 for i in range(len(self.labels)) if lo - 1 <= i <= hi]  # the body's middle
        return [(1.0, vals)]

    def tickStrings(self, values, scale, spacing):  # noqa: N802
        out = []
        for v in values:
            i = int(v)
            out.append(self.labels[i] if 0 <= i < len(self.labels) else "")
        return out
