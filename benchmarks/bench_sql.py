"""``kshark-py sql -i F "SELECT event, count(*) FROM events GROUP BY event"`` against the load alone,
whole processes, on the same file, in one run (issue 13: within the load + 1 s; registering the
tables copies no event data: peak RSS within 1.2x of the load alone).

Usage: nice python benchmarks/bench_sql.py F.dat [--repeat N] [--query SQL]
F.dat: a big recording, e.g. /tmp/bench/mid.dat (19 M events, from ../shared/tools/record-bench-trace.sh).

"The load alone" is a process that opens F and decodes every buffer (what any command must do
before it can answer; the app's load also extracts the sched fields and task runs, which this
query needs neither of).  Prints for each its wall and CPU time (user + sys of the child, from
``os.wait4``: on a shared machine wall time also counts other processes' turns) and peak RSS
(``ru_maxrss``), the best of ``--repeat`` runs, and the differences.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

LOAD = ("import sys\nfrom kshark_py.loaders.memory import return_memory_promptly\n"
        "from kshark_py.loaders.tracedat import open_trace\nreturn_memory_promptly()\n"
        "tf = open_trace(sys.argv[1])\nprint(sum(len(b.events) for b in tf.buffers))\n")
"""The load alone, set up as ``kshark-py`` sets itself up (cli.main returns freed memory promptly)."""
QUERY = "SELECT event, count(*) AS n FROM events GROUP BY event ORDER BY n DESC"


def run(argv: list[str]) -> tuple[float, float, float, str]:
    """(wall s, cpu s, peak RSS MB, stdout) of one child process; exits with its stderr if it fails."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = p.stdout.read().decode(errors="replace")
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace")
    p.stdout.close()
    p.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(argv)}: exit {os.waitstatus_to_exitcode(status)}: {err.strip()}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--query", default=QUERY)
    a = ap.parse_args()
    exe = os.path.join(os.path.dirname(sys.executable), "kshark-py")
    load = [run([sys.executable, "-c", LOAD, a.trace]) for _ in range(a.repeat)]
    sql = [run([exe, "sql", "-i", a.trace, "--format", "csv", a.query]) for _ in range(a.repeat)]
    events = int(load[0][3].strip())
    rows = len(sql[0][3].splitlines()) - 1
    lw, lc, lm = min(x[0] for x in load), min(x[1] for x in load), min(x[2] for x in load)
    sw, sc, sm = min(x[0] for x in sql), min(x[1] for x in sql), min(x[2] for x in sql)
    print(f"{a.trace}: {events} events; query: {a.query} ({rows} rows)")
    print(f"load alone : wall {lw:7.2f} s  cpu {lc:7.2f} s  peak RSS {lm:8.1f} MB")
    print(f"kshark sql : wall {sw:7.2f} s  cpu {sc:7.2f} s  peak RSS {sm:8.1f} MB")
    print(f"sql - load : wall {sw - lw:+7.2f} s  cpu {sc - lc:+7.2f} s  RSS x{sm / lm:.2f} "
          f"(targets: <= +1 s, <= x1.2)")


if __name__ == "__main__":
    main()
