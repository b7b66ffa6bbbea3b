"""``kshark-py export -i F -o X.parquet`` against ``trace-cmd report -i F > /dev/null``, whole
processes, on the same file, in one run (issue 13: export >= 10x faster).

Usage: python benchmarks/bench_export.py F.dat [--repeat N]
F.dat: 3 million events cut from record-bench-trace.sh output, e.g.
    ../shared/tools/record-bench-trace.sh /tmp/big.dat
    trace-cmd split -i /tmp/big.dat -o /tmp/bench3m.dat -e 3000000   # writes /tmp/bench3m.dat.1

The export runs from compiled bytecode, as an installed package does (see ``main``).
Prints for each command its wall time and CPU time (user + sys of the child process, from
``os.wait4``: on a shared machine wall time also counts the time other processes held the cores),
the median and the best of ``--repeat`` runs each (default 5; runs interleaved, so a busy spell
hits both commands), the load average, and the ratios of the medians.  The export runs cold (the
load cache off: ``KSHARK_PY_NO_CACHE=1``, the number the issue's target is about) and warm (a
second run over a cache the first one wrote, in a temp ``XDG_CACHE_HOME``).  Then, in one more
process, where a cold export's time goes, stage by stage (wall and CPU of each), in the order the
command runs them: the kernels' head start (:mod:`kshark_py.loaders.earlywarm`), interpreter and
imports, opening the file, indexing the event formats, decoding (waiting for the kernels as the
command does; when they were ready is printed too), the named columns, the Parquet write.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from kshark_py.loaders.aot import describe


def run(argv: list[str], env: dict | None = None) -> tuple[float, float]:
    """(wall s, cpu s) of one child process; exits with its stderr if it fails."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"{' '.join(argv)}: exit {p.returncode}: {err.strip()}")
    return wall, ru.ru_utime + ru.ru_stime


STAGES = r"""
import os, sys, threading, time
T = [(time.perf_counter(), time.process_time())]
def lap(name):
    T.append((time.perf_counter(), time.process_time()))
    print(f"  {name:36s} wall {T[-1][0] - T[-2][0]:6.3f} s   cpu {T[-1][1] - T[-2][1]:6.3f} s")
from kshark_py.loaders.earlywarm import warm_up_early
warm_up_early(sys.argv[1])  # as `kshark-py export` does before its imports
READY = []
def watch():
    from kshark_py.loaders import pages
    while pages._warm is None and time.perf_counter() - T[0][0] < 5:
        time.sleep(0.002)
    if pages.wait_kernels():
        READY.append(time.perf_counter() - T[0][0])
threading.Thread(target=watch, daemon=True).start()
import numpy, pyarrow  # noqa: F401
lap("import numpy, pyarrow")
from kshark_py.export import COLUMNS, events_with_names, prepare, write_table
from kshark_py.export_cli import KERNEL_WAIT_S
from kshark_py.loaders.pages import waiting_for_kernels
from kshark_py.loaders.tracedat import open_trace
from kshark_py.loaders.memory import return_memory_promptly
return_memory_promptly()
lap("import kshark_py's export path")
with waiting_for_kernels(KERNEL_WAIT_S):
    tf = prepare(open_trace(sys.argv[1]))
    lap("open_trace (headers, options)")
    tf.formats
    lap("event formats (index; parse on use)")
    tf.decode_all()
    lap("decode every buffer")
t = events_with_names(tf)
lap("named columns (comm, system, event)")
write_table(t, sys.argv[2], required=COLUMNS)
lap("Parquet write (zstd)")
print(f"  {'total':36s} wall {T[-1][0] - T[0][0]:6.3f} s   cpu {T[-1][1] - T[0][1]:6.3f} s")
print(f"  kernels ready at {READY[0]:.3f} s (started by the head start)" if READY else "  kernels not used")
"""
"""The cold export's stages in one process (after the interpreter's start, measured apart)."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    if not shutil.which("trace-cmd"):
        sys.exit("trace-cmd is not installed")
    exe = os.path.join(os.path.dirname(sys.executable), "kshark-py")
    with tempfile.TemporaryDirectory(prefix="bench-export-") as d:
        out = os.path.join(d, "x.parquet")
        # as an installed package runs: from compiled bytecode (kept outside the checkout), even where
        # PYTHONDONTWRITEBYTECODE is set (it made every run compile ~60 modules: 0.08 s)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = os.path.join(d, "pycache")
        import kshark_py

        run([sys.executable, "-m", "compileall", "-q", os.path.dirname(kshark_py.__file__)], env)
        cold_env = dict(env, KSHARK_PY_NO_CACHE="1")
        warm_env = dict(env, KSHARK_PY_NO_CACHE="", XDG_CACHE_HOME=os.path.join(d, "cache"))
        cold, theirs = [], []
        for _ in range(a.repeat):  # interleaved: a busy spell of the shared machine hits both
            cold.append(run([exe, "export", "-i", a.trace, "-o", out], cold_env))
            theirs.append(run(["trace-cmd", "report", "-i", a.trace]))
        run([exe, "export", "-i", a.trace, "-o", out], warm_env)  # writes the cache entry
        warm = [run([exe, "export", "-i", a.trace, "-o", out], warm_env) for _ in range(a.repeat)]
        size = os.path.getsize(out)
        print(f"file: {a.trace} ({os.path.getsize(a.trace) / 1e6:.1f} MB); parquet {size / 1e6:.1f} MB; "
              f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs; "
              f"{a.repeat} runs each, median (best)")
        print(describe())
        tw, tc = (statistics.median(x[k] for x in theirs) for k in (0, 1))
        for label, runs in (("cold (no cache)", cold), ("warm (cached)", warm)):
            ow, oc = (statistics.median(x[k] for x in runs) for k in (0, 1))
            bw, bc = (min(x[k] for x in runs) for k in (0, 1))
            print(f"kshark-py export -o X.parquet, {label:16s} wall {ow:5.2f} ({bw:4.2f}) s   cpu {oc:5.2f} "
                  f"({bc:4.2f}) s   ratio wall {tw / ow:5.1f}x   cpu {tc / oc:5.1f}x")
        bw, bc = (min(x[k] for x in theirs) for k in (0, 1))
        print(f"trace-cmd report > /dev/null{'':20s} wall {tw:5.2f} ({bw:4.2f}) s   cpu {tc:5.2f} ({bc:4.2f}) s")
        print("where a cold export's time goes (one more run, in process):")
        iw, ic = min(run([sys.executable, "-c", "pass"], env) for _ in range(max(a.repeat, 3)))
        print(f"  {'interpreter start (python -c pass)':36s} wall {iw:6.3f} s   cpu {ic:6.3f} s")
        sys.stdout.flush()
        subprocess.run([sys.executable, "-c", STAGES, a.trace, out], env=cold_env, check=True)


if __name__ == "__main__":
    main()
