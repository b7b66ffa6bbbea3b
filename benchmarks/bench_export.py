"""``kshark-py export -i F -o X.parquet`` against ``trace-cmd report -i F > /dev/null``, whole
processes, on the same file, in one run (issue 13: export >= 10x faster).

Usage: python benchmarks/bench_export.py F.dat [--repeat N]
F.dat: 3 million events cut from record-bench-trace.sh output, e.g.
    ../shared/tools/record-bench-trace.sh /tmp/big.dat
    trace-cmd split -i /tmp/big.dat -o /tmp/bench3m.dat -e 3000000   # writes /tmp/bench3m.dat.1

The export runs from compiled bytecode, as an installed package does (see ``main``).
Prints for each command its wall time and CPU time (user + sys of the child process, from
``os.wait4``: on a shared machine wall time also counts the time other processes held the cores),
the best of ``--repeat`` runs each (default 1), and both ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace")
    ap.add_argument("--repeat", type=int, default=1)
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
        ours = [run([exe, "export", "-i", a.trace, "-o", out], env) for _ in range(a.repeat)]
        theirs = [run(["trace-cmd", "report", "-i", a.trace]) for _ in range(a.repeat)]
        size = os.path.getsize(out)
    ow, oc = min(w for w, _ in ours), min(c for _, c in ours)
    tw, tc = min(w for w, _ in theirs), min(c for _, c in theirs)
    print(f"file: {a.trace} ({os.path.getsize(a.trace) / 1e6:.1f} MB); parquet {size / 1e6:.1f} MB")
    print(f"kshark-py export -o X.parquet   wall {ow:7.2f} s   cpu {oc:7.2f} s")
    print(f"trace-cmd report > /dev/null    wall {tw:7.2f} s   cpu {tc:7.2f} s")
    print(f"ratio (trace-cmd / export)      wall {tw / ow:7.1f}x   cpu {tc / oc:7.1f}x")


if __name__ == "__main__":
    main()
