"""Load speed and memory of the reader, side by side with trace-cmd on the same file, in one run.

Usage: python benchmarks/bench_load.py BIG.dat [--no-trace-cmd]
Record BIG.dat with ../shared/tools/record-bench-trace.sh (about 14-17 million events, ~110 MB).

Prints, for the same file:
  * zstd/zlib only: decompressing every CPU chunk (two threads), the floor for any reader;
  * kshark-py load: open + decode into the Arrow events table (ts, cpu, pid, event id), in a fresh
    process, with its peak RSS;
  * trace-cmd report > /dev/null: wall time and peak RSS (GNU time);
and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from kshark_py.loaders.memory import return_memory_promptly
from kshark_py.loaders.tracedat import open_trace
return_memory_promptly()  # as the CLI and the app do
t_import = time.perf_counter()
tf = open_trace(sys.argv[1])
n = sum(len(b.events) for b in tf.buffers)
t1 = time.perf_counter()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
tables = sum(b.events.nbytes for b in tf.buffers)
print(json.dumps({"events": n, "load_s": t1 - t_import, "import_s": t_import - t0, "peak_rss": rss,
                  "table_bytes": tables}))
"""

DECOMP = r"""
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
from kshark_py.loaders.tracedat import open_trace
from kshark_py.loaders.compress import read_chunk_table, decompress_chunks  # the floor: all chunks, 2 threads
tf = open_trace(sys.argv[1])
t0 = time.perf_counter()
total = 0
with ThreadPoolExecutor(2) as pool:
    for b in tf.buffers:
        if not b.compressed:
            continue
        for cd in b.cpu_data:
            if cd.size:
                t = read_chunk_table(tf.buf, cd.offset, min(cd.offset + 4 + cd.size, tf.file_size), tf.lay,
                                     b.page_size, "cpu")
                arr, _ = decompress_chunks(tf.codec, tf.buf, t, "cpu", pool)
                total += len(arr)
print(json.dumps({"decompress_s": time.perf_counter() - t0, "bytes": total}))
"""


def _time_cmd(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of a command, output discarded."""
    t0 = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True)
    wall = time.perf_counter() - t0
    rss_kb = int(r.stderr.strip().splitlines()[-1])
    return wall, rss_kb * 1024


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--no-trace-cmd", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    dec = json.loads(subprocess.run([sys.executable, "-c", DECOMP, a.file], capture_output=True, text=True,
                                    env=env, check=True).stdout)
    runs = [json.loads(subprocess.run([sys.executable, "-c", CHILD, a.file], capture_output=True, text=True,
                                      env=env, check=True).stdout) for _ in range(a.repeat)]
    best = min(runs, key=lambda r: r["load_s"])
    n = best["events"]
    print(f"file: {a.file} ({os.path.getsize(a.file) / 1e6:.1f} MB), {n} events, CPUs: {os.cpu_count()}")
    print(f"decompress only      : {dec['decompress_s']:.2f} s ({dec['bytes'] / 1e6:.0f} MB out)")
    rate = n / best["load_s"] / 1e6
    print(f"kshark-py load       : {best['load_s']:.2f} s (best of {a.repeat}), {rate:.2f} M events/s,"
          f" peak RSS {best['peak_rss'] / 1e6:.0f} MB (events table {best['table_bytes'] / 1e6:.0f} MB);"
          f" python+imports {best['import_s']:.2f} s")
    print(f"load / decompress    : {best['load_s'] / max(dec['decompress_s'], 1e-9):.2f}x")
    if not a.no_trace_cmd:
        wall, rss = _time_cmd(["trace-cmd", "report", "-i", a.file])
        print(f"trace-cmd report     : {wall:.1f} s, peak RSS {rss / 1e6:.0f} MB")
        print(f"speedup vs trace-cmd : {wall / best['load_s']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
