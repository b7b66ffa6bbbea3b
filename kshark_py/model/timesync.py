"""Guest-to-host time sync, as data: the samples behind each VCPU's conversion, and a check.

The conversion itself is the reader's (``loaders.timestamps``, exactly libtracecmd's arithmetic):
guest timestamps arrive on the host clock.  This module shows how far to trust that:
  * :func:`sync_samples`: per VCPU, the TIME_SHIFT samples (guest time, offset, scaling) with the
    drift between consecutive samples, in ppm;
  * :func:`causality_check`: guest events whose (converted) time falls where the host says that
    VCPU was *not* in guest mode, beyond a tolerance.  A healthy sync gives (almost) none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..loaders.tracedat import TraceFile

SAMPLES_SCHEMA = pa.schema([
    ("vcpu", pa.int32()), ("guest_time", pa.int64()), ("host_time", pa.int64()), ("offset", pa.int64()),
    ("scaling", pa.int64()), ("fraction", pa.int64()), ("drift_ppm", pa.float64()),
])


def sync_samples(guest: TraceFile) -> pa.Table:
    """One row per TIME_SHIFT sample of a guest file: where it was taken (guest raw time, and host
    time through the file's whole pipeline incl. TSC2NSEC), the offset, and the drift since the
    previous sample of the same VCPU (ppm of offset units per guest clock unit; NaN for the first)."""
    rows = []
    shift = guest.meta.time_shift
    if shift is None:
        return pa.Table.from_pylist([], schema=SAMPLES_SCHEMA)
    for v, c in enumerate(shift.cpus):
        times = np.array(c.times, np.int64)
        offs = np.array(c.offsets, np.int64)
        host = guest.convert_ts(times.astype(np.uint64), np.full(len(times), v, np.int16))
        drift = np.full(len(times), np.nan)
        if len(times) > 1:
            dt = np.diff(times).astype(np.float64)
            drift[1:] = np.where(dt != 0, np.diff(offs) / np.where(dt == 0, 1, dt) * 1e6, np.nan)
        for k in range(len(times)):
            rows.append({"vcpu": v, "guest_time": int(times[k]), "host_time": int(host[k]),
                         "offset": int(offs[k]), "scaling": int(c.scalings[k]), "fraction": int(c.fractions[k]),
                         "drift_ppm": float(drift[k])})
    return pa.Table.from_pylist(rows, schema=SAMPLES_SCHEMA)


@dataclass
class CausalityResult:
    vcpu: int
    events: int
    """Guest events on this VCPU that the check could judge (within the host's recorded span)."""
    outside: int
    """Of those, events at host times when the VCPU was not in guest mode (beyond the tolerance)."""
    out_of_span: int
    """Guest events before the host's first or after its last event (not judged)."""


def causality_check(guest_ts: np.ndarray, guest_cpu: np.ndarray, vcpu: int, starts: np.ndarray,
                    ends: np.ndarray, span: tuple[int, int], tolerance_ns: int = 50_000) -> CausalityResult:
    """Count guest events of ``vcpu`` outside the host's in-guest intervals ``[starts, ends)``.

    ``starts``/``ends`` must be sorted and non-overlapping (one VCPU thread's intervals).  An event
    within ``tolerance_ns`` of an interval counts as inside: sync is only as good as its samples.
    """
    ts = guest_ts[guest_cpu == vcpu]
    lo, hi = span
    judged = ts[(ts >= lo) & (ts <= hi)]
    out_of_span = len(ts) - len(judged)
    if len(starts) == 0:
        return CausalityResult(vcpu, len(judged), len(judged), out_of_span)
    s = starts - tolerance_ns
    e = ends + tolerance_ns
    k = np.searchsorted(s, judged, side="right") - 1
    inside = (k >= 0) & (judged < e[np.clip(k, 0, len(e) - 1)])
    return CausalityResult(vcpu, len(judged), int((~inside).sum()), out_of_span)
