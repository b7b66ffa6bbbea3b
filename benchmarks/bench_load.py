"""Cold load speed and memory, side by side with trace-cmd on the same file, in one run.

Usage: python benchmarks/bench_load.py BIG.dat [--no-trace-cmd] [--no-screenshot] [--repeat N]
Record BIG.dat with ../shared/tools/record-bench-trace.sh (about 14-19 million events, ~110 MB).

Prints, for the same file, each in a fresh process (best of ``--repeat``, wall and CPU seconds):
  * zstd/zlib only: decompressing every CPU chunk (two threads), the floor for any reader;
  * the reader: open + decode into the Arrow events table, with its peak RSS against the table;
  * the app's load (``model.loading.load_session``: reader, fields, task intervals), cache off;
  * the whole process ``kshark-py -i F --screenshot`` cold (no load cache: ``KSHARK_PY_NO_CACHE``)
    and on a first open that writes the cache (an empty ``XDG_CACHE_HOME``), then warm: the second
    open of the file (``--screenshot`` and the app's load from the cache, with resident memory);
  * trace-cmd report > /dev/null: wall time and peak RSS (GNU time);
and the ratios, with the machine's load average before and after (other work inflates wall times;
the CPU seconds show what the load itself cost).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from kshark_py.loaders.aot import describe

READER = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from kshark_py.loaders.memory import return_memory_promptly
from kshark_py.loaders.tracedat import open_trace
return_memory_promptly()  # as the CLI and the app do
t_import = time.perf_counter()
c0 = time.process_time()
tf = open_trace(sys.argv[1])
n = sum(len(b.events) for b in tf.buffers)
t1 = time.perf_counter()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
tables = sum(b.events.nbytes for b in tf.buffers)
print(json.dumps({"events": n, "s": t1 - t_import, "cpu": time.process_time() - c0, "import_s": t_import - t0,
                  "peak_rss": rss, "table_bytes": tables}))
"""

FEED = r"""
import json, resource, sys, time
from kshark_py.loaders.memory import return_memory_promptly
from kshark_py.loaders.tracedat import open_trace
return_memory_promptly()
t0, c0 = time.perf_counter(), time.process_time()
tf = open_trace(sys.argv[1])
first, parts, early = [], [0], [0]
def rows(p):  # what the progressive view is handed: kept, as the window keeps it
    parts[0] += 1
    if len(p) and not first:
        first.append(time.perf_counter() - t0)
    if not p.done:
        early[0] += len(p)
    keep.append(p)
keep = []
tf.on_rows = rows
n = sum(len(b.events) for b in tf.buffers)
t1 = time.perf_counter()
print(json.dumps({"s": t1 - t0, "cpu": time.process_time() - c0, "first": first[0] if first else None,
                  "parts": parts[0], "early": early[0], "events": n,
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""
"""The reader with the row feed (``TraceFile.on_rows``, the progressive view's exact rows while it
decodes): when the first rows come, how many before the end, what the feed costs."""

APP = r"""
import json, os, resource, sys, time
os.environ["KSHARK_PY_NO_CACHE"] = "1"
from kshark_py.loaders.memory import return_memory_promptly
from kshark_py.model.loading import load_session
return_memory_promptly()
t0, c0 = time.perf_counter(), time.process_time()
res = load_session([sys.argv[1]])
t1 = time.perf_counter()
tables = sum(st.buffer.events.nbytes for st in res.session.streams)
print(json.dumps({"s": t1 - t0, "cpu": time.process_time() - c0,
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "table_bytes": tables}))
"""

WARM = r"""
import json, resource, sys, time
from kshark_py.loaders.memory import return_memory_promptly
from kshark_py.model.loading import load_session
return_memory_promptly()
t0, c0 = time.perf_counter(), time.process_time()
res = load_session([sys.argv[1]])
t1 = time.perf_counter()
st = {k: int(v.split()[0]) * 1024 for k, v in (ln.split(":", 1) for ln in open("/proc/self/status"))
      if k in ("RssAnon", "RssFile")}
print(json.dumps({"s": t1 - t0, "cpu": time.process_time() - c0, "anon": st["RssAnon"], "file": st["RssFile"],
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""
"""The app's load again, from the load cache (XDG_CACHE_HOME of the first open): time and where its
resident memory is (anonymous, or file pages of the mapped cache)."""

DECOMP = r"""
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
from kshark_py.loaders.tracedat import open_trace
from kshark_py.loaders.compress import read_chunk_table, decompress_chunks  # the floor: all chunks, 2 threads
tf = open_trace(sys.argv[1])
t0, c0 = time.perf_counter(), time.process_time()
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
print(json.dumps({"s": time.perf_counter() - t0, "cpu": time.process_time() - c0, "bytes": total}))
"""


def _child(code: str, path: str, env: dict) -> dict:
    r = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, env=env, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def _best(code: str, path: str, env: dict, n: int) -> dict:
    return min((_child(code, path, env) for _ in range(n)), key=lambda r: r["s"])


def _time_cmd(cmd: list[str], env: dict | None = None) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and peak RSS (bytes) of a command, output discarded."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode:
        raise SystemExit(f"{cmd[0]} failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, int(r.stderr.strip().splitlines()[-1]) * 1024


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--no-trace-cmd", action="store_true")
    ap.add_argument("--no-screenshot", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=repo)
    load0 = _load()
    dec = _best(DECOMP, a.file, env, a.repeat)
    rd = _best(READER, a.file, env, a.repeat)
    feed = _best(FEED, a.file, env, a.repeat)
    app = _best(APP, a.file, env, a.repeat)
    n = rd["events"]
    print(f"file: {a.file} ({os.path.getsize(a.file) / 1e6:.1f} MB), {n} events, CPUs: {os.cpu_count()}; "
          f"load average before: {load0}")
    print(describe())
    print(f"zstd pass only       : {dec['s']:.2f} s wall, {dec['cpu']:.2f} s CPU ({dec['bytes'] / 1e6:.0f} MB out)")
    print(f"reader               : {rd['s']:.2f} s wall, {rd['cpu']:.2f} s CPU (best of {a.repeat}), "
          f"{n / rd['s'] / 1e6:.1f} M events/s; peak RSS {rd['peak_rss'] / 1e6:.0f} MB = "
          f"{rd['peak_rss'] / rd['table_bytes']:.2f}x the events table ({rd['table_bytes'] / 1e6:.0f} MB); "
          f"python+imports {rd['import_s']:.2f} s")
    print(f"reader / zstd pass   : {rd['s'] / max(dec['s'], 1e-9):.2f}x")
    first = "none" if feed["first"] is None else f"{feed['first']:.2f} s"
    print(f"reader + row feed    : {feed['s']:.2f} s wall, {feed['cpu']:.2f} s CPU; first exact rows at {first}, "
          f"{feed['early'] / max(feed['events'], 1):.0%} of the rows before the end in {feed['parts']} deliveries; "
          f"peak RSS {feed['peak_rss'] / 1e6:.0f} MB (the deliveries kept)")
    print(f"app load (no cache)  : {app['s']:.2f} s wall, {app['cpu']:.2f} s CPU; peak RSS "
          f"{app['peak_rss'] / 1e6:.0f} MB = {app['peak_rss'] / app['table_bytes']:.2f}x the events table")
    shot = None
    if not a.no_screenshot:
        exe = [sys.executable, "-m", "kshark_py.cli"]  # as the kshark-py script, from this checkout
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "shot.png")
            senv = dict(env, QT_QPA_PLATFORM="offscreen", KSHARK_PY_NO_CACHE="1")
            shot = min((_time_cmd([*exe, "-i", a.file, "--screenshot", out], senv) for _ in range(a.repeat)),
                       key=lambda x: x[0])
            print(f"cold --screenshot    : {shot[0]:.2f} s wall, {shot[1]:.2f} s CPU, peak RSS "
                  f"{shot[2] / 1e6:.0f} MB (whole process, no load cache)")
            fenv = dict(senv, XDG_CACHE_HOME=os.path.join(tmp, "cache"))
            fenv.pop("KSHARK_PY_NO_CACHE")
            first = _time_cmd([*exe, "-i", a.file, "--screenshot", out], fenv)
            print(f"first open (writes the cache): {first[0]:.2f} s wall, {first[1]:.2f} s CPU, "
                  f"peak RSS {first[2] / 1e6:.0f} MB")
            warm = min((_time_cmd([*exe, "-i", a.file, "--screenshot", out], fenv) for _ in range(a.repeat)),
                       key=lambda x: x[0])
            print(f"warm --screenshot    : {warm[0]:.2f} s wall, {warm[1]:.2f} s CPU, peak RSS {warm[2] / 1e6:.0f} MB "
                  f"(second open: the load cache)")
            wl = _best(WARM, a.file, dict(env, XDG_CACHE_HOME=fenv["XDG_CACHE_HOME"], KSHARK_PY_NO_CACHE=""),
                       a.repeat)
            print(f"warm app load        : {wl['s']:.2f} s wall, {wl['cpu']:.2f} s CPU; peak RSS "
                  f"{wl['peak_rss'] / 1e6:.0f} MB; resident {wl['anon'] / 1e6:.0f} MB anonymous + "
                  f"{wl['file'] / 1e6:.0f} MB file pages (the mapped cache, shared with the page cache)")
    if not a.no_trace_cmd:
        wall, cpu, rss = _time_cmd(["trace-cmd", "report", "-i", a.file])
        print(f"trace-cmd report     : {wall:.1f} s wall, {cpu:.1f} s CPU, peak RSS {rss / 1e6:.0f} MB")
        print(f"reader vs trace-cmd  : {wall / rd['s']:.1f}x")
        if shot:
            print(f"cold --screenshot vs trace-cmd: {wall / shot[0]:.1f}x")
    print(f"load average after: {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
