"""A numeric field of one event over time (KernelShark's event_field_plot): sched_stat_runtime.runtime,
rss_stat.size, kvm_exit.exit_reason, ...

:func:`field_series` gives every record's (time, value); :func:`minmax_bins` reduces it to a min and a
max per pixel column, so a zoomed-out row draws a few thousand vertical bars however many records
there are and still shows every spike (an average or a sample would hide them).
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from ..columns import event_columns

__all__ = ["FieldPlotError", "field_series", "minmax_bins", "numeric_fields"]


class FieldPlotError(ValueError):
    """The event or field is unknown in the stream, or the field is not a number."""


def numeric_fields(session, stream: int, event: str) -> list[str]:
    """Names of the event's fields that :func:`field_series` can plot (integers, not arrays)."""
    ev = session.streams[stream].trace.formats.find(event)
    if ev is None:
        return []
    return [f.name for f in ev.fields if not f.is_array and f.dynamic is None]


def field_series(session, stream: int, event: str, field: str) -> tuple[np.ndarray, np.ndarray]:
    """(ts, values) of ``field`` over every ``event`` record of one stream, in record order.

    ``event`` is ``name`` or ``system:name``.  ``ts`` is int64 ns on the host clock (the stream's
    ``ts`` column: time sync and the user's offset applied); ``values`` is the field as the format
    declares it (int64 for signed fields, uint64 for unsigned ones of 8 bytes, ...), so a pointer or
    a byte count above 2**63 is not wrapped.  ``common_pid`` is the records' task.  Raises
    :class:`FieldPlotError` for an unknown event or field, or one that is not a number.
    """
    st = session.streams[stream]
    ev = st.trace.formats.find(event)
    if ev is None:
        raise FieldPlotError(f"stream {st.name!r} has no event {event!r}")
    buf = st.buffer
    rows = buf.rows_of(ev.id)
    ts = buf.events.column("ts").to_numpy()[rows]
    if field == "common_pid":
        return ts, buf.events.column("pid").to_numpy()[rows]
    f = ev.field(field)
    if f is None:
        have = ", ".join(x.name for x in ev.fields) or "none"
        raise FieldPlotError(f"event {ev.full_name} has no field {field!r} (fields: {have})")
    _, cols = event_columns(buf, ev.name, [field], system=ev.system, rows=rows)
    v = cols.get(field)
    if v is None or isinstance(v, pa.Array) and not (pa.types.is_integer(v.type) or pa.types.is_floating(v.type)):
        raise FieldPlotError(f"field {field!r} of {ev.full_name} is not a number")
    if isinstance(v, pa.Array):
        v = v.to_numpy(zero_copy_only=False)
    return ts, np.asarray(v)


_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


def bin_edges(t0: int, t1: int, nbins: int) -> np.ndarray:
    """``nbins + 1`` int64 edges from t0 to t1, exact in integers: edge i = t0 + floor(i * (t1 - t0) / nbins).

    A window wider than int64 allows (a guest moved by a wild TIME_SHIFT) is computed in Python
    integers and its edges clipped to the int64 range, which no timestamp lies outside of."""
    t0, t1 = int(t0), int(t1)
    span = t1 - t0
    if _I64_MIN <= t0 and t1 <= _I64_MAX and span < 1 << 62:
        q, r = divmod(span, nbins)
        i = np.arange(nbins + 1, dtype=np.int64)
        return np.int64(t0) + i * np.int64(q) + (i * np.int64(r)) // np.int64(nbins)
    return np.array([min(max(t0 + (i * span) // nbins, _I64_MIN), _I64_MAX) for i in range(nbins + 1)], np.int64)


def minmax_bins(ts: np.ndarray, values: np.ndarray, t0: int, t1: int, nbins: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centers, lo, hi): per each of ``nbins`` equal bins of [t0, t1], the smallest and largest value.

    Bin i is [edge i, edge i+1) with integer edges (:func:`bin_edges`); the last bin also holds t1.
    ``centers`` are the bins' mid times (float64 ns); ``lo``/``hi`` are float64, NaN where a bin has
    no record.  ``ts`` need not be sorted (a stream's records interleave CPUs).
    """
    if nbins <= 0 or t1 <= t0:
        raise ValueError(f"minmax_bins needs nbins > 0 and t1 > t0 (got {nbins}, [{t0}, {t1}])")
    ts = np.asarray(ts, np.int64)
    values = np.asarray(values)
    t0, t1 = math.floor(t0), math.ceil(t1)  # whole ns (the view may hand floats)
    edges = bin_edges(t0, t1, nbins)
    span = t1 - t0
    centers = np.array([t0 + (2 * i + 1) * span / (2 * nbins) for i in range(nbins)], np.float64) \
        if edges[0] != t0 or edges[-1] != t1 else (edges[:-1].astype(np.float64) + edges[1:].astype(np.float64)) / 2
    lo = np.full(nbins, np.nan)
    hi = np.full(nbins, np.nan)
    inside = (ts >= edges[0]) & (ts <= edges[-1])
    if not inside.all():
        ts, values = ts[inside], values[inside]
    if not len(ts):
        return centers, lo, hi
    if len(ts) > 1 and (ts[1:] < ts[:-1]).any():
        o = np.argsort(ts, kind="stable")
        ts, values = ts[o], values[o]
    cut = np.searchsorted(ts, edges[1:-1], side="left")  # first record of bins 1..nbins-1
    starts = np.concatenate([[0], cut])
    ends = np.append(cut, len(ts))
    full = np.flatnonzero(ends > starts)
    lo[full] = np.minimum.reduceat(values, starts[full]).astype(np.float64)
    hi[full] = np.maximum.reduceat(values, starts[full]).astype(np.float64)
    return centers, lo, hi
