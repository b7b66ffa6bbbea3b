"""Guest -> host time conversion and host+guest merge speed, on 10 million guest events.

Usage: python benchmarks/bench_timesync.py [GUEST.dat HOST.dat] [--events N]
Default: the real vm-tsync pair in ../shared/traces (PTP, interpolated TIME_SHIFT).  No large guest
recording is at hand on this machine (no hardware KVM), so the guest file's real raw timestamps are
tiled to N events (each copy shifted by the file's span, so they stay increasing) and converted with
the file's real TIME_SHIFT samples; the merge joins them with the host's events tiled the same way.
Targets (issue): conversion >= 20 M events/s, merge >= 10 M events/s.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kshark_py.loaders.merge import merge_order  # noqa: E402
from kshark_py.loaders.timestamps import to_trace_time  # noqa: E402
from kshark_py.loaders.tracedat import open_trace  # noqa: E402

TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces"


def raw_timestamps(tf, buf) -> np.ndarray:
    """Raw ring-buffer timestamps of a buffer's events (undoing nothing: re-decoded from the pages)."""
    from kshark_py.loaders.pages import decode_pages

    out = []
    for cd in buf.cpu_data:
        st = next(s for s in buf.stats if s.cpu == cd.cpu)
        if not st.events:
            continue
        if buf.compressed:
            t = buf._chunks[cd.cpu]
            k0 = int(np.searchsorted(buf.store.file_offsets, t.file_offsets[0]))
            arr = buf.store.decompress_range(k0, k0 + len(t.usizes))
        else:
            arr = buf.store.data[cd.offset:cd.offset + cd.size]
        out.append(decode_pages(arr, buf.page_size, tf.lay, tf.header_page.data_offset).ts.view(np.int64))
    return np.concatenate(out)


def tile(ts: np.ndarray, n: int) -> np.ndarray:
    reps = -(-n // len(ts))
    span = int(ts.max() - ts.min()) + 1
    return (ts[None, :] + (np.arange(reps, dtype=np.int64) * span)[:, None]).reshape(-1)[:n]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("guest", nargs="?", default=str(TRACES / "vm-tsync/trace-vmguest.dat"))
    ap.add_argument("host", nargs="?", default=str(TRACES / "vm-tsync/trace.dat"))
    ap.add_argument("--events", type=int, default=10_000_000)
    a = ap.parse_args()
    g = open_trace(a.guest)
    h = open_trace(a.host)
    m = g.meta
    # the guest's raw (unconverted) timestamps: the same file read with --raw-ts semantics
    gb = g.buffers[0]
    ev = gb.events
    cpu = ev.column("cpu").to_numpy()
    raws = [raw_timestamps(g, gb)]
    cpus = [cpu]
    raw_ts = tile(np.concatenate(raws), a.events).view(np.uint64)
    raw_cpu = np.resize(np.concatenate(cpus), a.events)
    best = 1e9
    for _ in range(3):
        t0 = time.perf_counter()
        conv = to_trace_time(raw_ts, raw_cpu, time_shift=m.time_shift, tsc2nsec=m.tsc2nsec, ts_offset=m.ts_offset)
        best = min(best, time.perf_counter() - t0)
    print(f"guest events: {a.events} (tiled from {sum(len(r) for r in raws)} real ones of {Path(a.guest).name}),"
          f" TIME_SHIFT: {len(m.time_shift.cpus) if m.time_shift else 0} VCPUs")
    print(f"conversion: {best:.3f} s = {a.events / best / 1e6:.1f} M events/s (target >= 20)")
    host_ts = tile(h.buffers[0].events.column("ts").to_numpy(), a.events)
    segs = [np.sort(host_ts), np.sort(conv)]
    best = 1e9
    for _ in range(3):
        t0 = time.perf_counter()
        order = merge_order(segs)
        best = min(best, time.perf_counter() - t0)
    n = len(order)
    print(f"merge host+guest: {n} events in {best:.3f} s = {n / best / 1e6:.1f} M events/s (target >= 10)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
