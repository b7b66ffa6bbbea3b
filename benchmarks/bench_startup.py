"""Start-up cost of ``kshark-py`` (issue 14, goal 4): whole processes, this checkout and, with
``--baseline REV``, a commit before, in one run.

Usage: python benchmarks/bench_startup.py [--repeat N] [--baseline REV]

Runs, each as its own process, the best of ``--repeat`` (default 3):

* ``kshark-py --screenshot OUT.png``: the app opening the bundled demo (no files: the demo, as the
  README says) and rendering its window offscreen, the whole way to the PNG;
* ``kshark-py --help``; ``kshark-py export -i demo/trace.dat -o X.parquet``;
  ``kshark-py stats -i demo/trace.dat --wakeups``.

Prints wall and CPU time (user + sys of the child, ``os.wait4``: wall on a shared machine also counts
time others held the cores) and the modules' import time (``python -X importtime``, summed by top
package: numpy, pyarrow, PySide6, pyqtgraph, kshark_py, ...).  Every run reads compiled bytecode
(kept outside the checkout, as an installed package does) and has the load cache turned off, so the
demo is decoded each time.  ``--baseline REV`` extracts REV's ``kshark_py`` and ``resources`` with
``git archive`` into a temp folder and runs the same commands from there.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def commands(out: str) -> dict[str, list[str]]:
    demo = os.path.join("resources", "demo", "trace.dat")
    return {
        "demo --screenshot": ["--screenshot", os.path.join(out, "shot.png")],
        "--help": ["--help"],
        "export demo -o X.parquet": ["export", "-i", demo, "-o", os.path.join(out, "x.parquet")],
        "stats demo --wakeups": ["stats", "-i", demo, "--wakeups", "--format", "csv"],
    }


def run(argv: list[str], env: dict, cwd: str) -> tuple[float, float, str]:
    """(wall s, cpu s, stderr) of one child process; exits with its stderr if it fails."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd)
    err = p.stderr.read().decode(errors="replace")
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"{' '.join(argv)}: exit {code}: {err.strip()[-2000:]}")
    return wall, ru.ru_utime + ru.ru_stime, err


def import_costs(stderr: str) -> dict[str, float]:
    """``-X importtime`` lines -> seconds of self time per top-level package."""
    out: collections.Counter = collections.Counter()
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = line.split(":", 1)[1].split("|")
        out[name.strip().split(".")[0]] += int(self_us) / 1e6
    return out


def measure(label: str, root: str, repeat: int, out: str, base_env: dict) -> None:
    env = dict(base_env, PYTHONPATH=root, PYTHONPYCACHEPREFIX=os.path.join(out, "pycache", label))
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(root, "kshark_py")], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    print(f"== {label} ({root})")
    print(f"{'command':28s} {'wall s':>7s} {'cpu s':>7s}   imports (s, -X importtime self time by package)")
    for name, args in commands(out).items():
        argv = [sys.executable, "-c", "import sys; from kshark_py.cli import main; sys.exit(main())", *args]
        runs = [run(argv, env, root) for _ in range(repeat)]
        wall, cpu = min(r[0] for r in runs), min(r[1] for r in runs)
        _, _, err = run([sys.executable, "-X", "importtime", *argv[1:]], env, root)
        costs = import_costs(err)
        top = sorted(costs.items(), key=lambda kv: -kv[1])[:6]
        shown = "  ".join(f"{k} {v:.2f}" for k, v in top)
        print(f"{name:28s} {wall:7.2f} {cpu:7.2f}   total {sum(costs.values()):.2f}: {shown}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline", metavar="REV", help="also measure this commit (git archive of kshark_py, resources)")
    a = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    env.update(QT_QPA_PLATFORM="offscreen", KSHARK_PY_NO_CACHE="1")
    try:
        load = os.getloadavg()
        print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    except OSError:
        pass
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as d:
        if a.baseline:
            base = os.path.join(d, "baseline")
            os.makedirs(base)
            tar = subprocess.run(["git", "-C", REPO, "archive", a.baseline, "kshark_py", "resources"],
                                 capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", base], input=tar, check=True)
            measure(f"baseline {a.baseline}", base, a.repeat, d, env)
        measure("this checkout", REPO, a.repeat, d, env)


if __name__ == "__main__":
    main()
