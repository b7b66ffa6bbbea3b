"""The timestamp pipeline of libtracecmd's ``timestamp_calc()``, vectorized (spec §11).

raw ring-buffer ts -> guest TIME_SHIFT correction (per VCPU) -> TSC2NSEC -> + file offset.

All arithmetic reproduces C's 64-bit behaviour: unsigned wrap-around for the scaling and
``mul_u64_u32_shr``, signed 64-bit with truncating division for the PTP interpolation, so results
equal trace-cmd's to the nanosecond.  ``model/timesync`` builds sync-quality views on top of this.
"""

from __future__ import annotations

import numpy as np

from .layout import TSYNC_FLAG_INTERPOLATE
from .options import TimeShiftCpu, TimeShiftOption, Tsc2Nsec

_U32 = np.uint64(0xFFFFFFFF)


def mul_u64_u32_shr(ts: np.ndarray, mult: int, shift: int) -> np.ndarray:
    """``(lo32(ts)*mult >> shift) + (hi32(ts)*mult << (32-shift))`` with uint64 wrap-around."""
    ts = ts.astype(np.uint64, copy=False)
    m = np.uint64(mult)
    lo = ts & _U32
    hi = ts >> np.uint64(32)
    with np.errstate(over="ignore"):
        ret = (lo * m) >> np.uint64(shift)
        if shift <= 32:
            ret = ret + ((hi * m) << np.uint64(32 - shift))
        else:  # C shifts by a negative amount here (undefined); trace-cmd never writes shift > 32
            ret = ret + ((hi * m) >> np.uint64(shift - 32))
    return ret


def _trunc_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """C integer division (toward zero) for int64 arrays."""
    q = np.abs(num) // np.abs(den)
    return np.where((num < 0) ^ (den < 0), -q, q)


def correct_vcpu(ts: np.ndarray, samples: TimeShiftCpu, flags: int) -> np.ndarray:
    """Guest -> host for the records of one VCPU, as ``timestamp_host_sync()`` does."""
    ts = ts.astype(np.uint64, copy=False)
    n = len(samples.times)
    if n == 0:
        return ts
    times = np.array(samples.times, np.int64)
    offs = np.array(samples.offsets, np.int64)
    with np.errstate(over="ignore"):
        if n == 1:
            return ts + offs[0].astype(np.uint64)
        # pick (k, k+1): first two below the range, last two above, else time[k] <= ts < time[k+1]
        k = np.searchsorted(times.astype(np.uint64), ts, side="right").astype(np.int64) - 1
        k = np.clip(k, 0, n - 2)
        t_min, t_max = times[k], times[k + 1]
        o_min, o_max = offs[k], offs[k + 1]
        if flags & TSYNC_FLAG_INTERPOLATE:
            delta = t_max - t_min
            num = (ts.astype(np.int64) - t_min) * (o_max - o_min)
            tscor = o_min + _trunc_div(num + _trunc_div(delta, np.int64(2)), delta)
        else:
            tscor = o_min
        # C converts the s64 scaling to u64 for "ts * scaling" (a negative one wraps); the reader
        # refuses fractions outside 0..63
        scal = np.array(samples.scalings, np.int64).view(np.uint64)[k]
        frac = np.array(samples.fractions, np.uint64)[k]
        out = (ts * scal) >> frac
        return out + tscor.astype(np.uint64)  # two's complement add == C's "ts - llabs(tscor)"


def apply_time_shift(ts: np.ndarray, cpu: np.ndarray, shift: TimeShiftOption) -> np.ndarray:
    """Correct every record whose CPU has samples; CPUs beyond the option's count stay as they are."""
    out = ts.astype(np.uint64, copy=True)
    for c, samples in enumerate(shift.cpus):
        sel = np.flatnonzero(cpu == c)
        if len(sel):
            out[sel] = correct_vcpu(out[sel], samples, shift.flags)
    return out


def to_trace_time(raw: np.ndarray, cpu: np.ndarray, *, time_shift: TimeShiftOption | None,
                  tsc2nsec: Tsc2Nsec | None, ts_offset: int, raw_ts: bool = False) -> np.ndarray:
    """The whole pipeline; returns int64 (nanoseconds when the clock is a ns clock)."""
    ts = raw.astype(np.uint64, copy=False)
    if raw_ts:
        return ts.view(np.int64) if ts.dtype == np.uint64 else ts.astype(np.int64)
    if time_shift is not None and time_shift.cpus:
        ts = apply_time_shift(ts, cpu, time_shift)
    if tsc2nsec is not None and tsc2nsec.mult:
        ts = mul_u64_u32_shr(ts, tsc2nsec.mult, tsc2nsec.shift)
    with np.errstate(over="ignore"):
        if ts_offset:
            ts = ts + np.uint64(ts_offset & 0xFFFFFFFFFFFFFFFF)
    return ts.view(np.int64)
