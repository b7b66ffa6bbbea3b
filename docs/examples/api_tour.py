"""A tour of the kshark-py Python API on a host trace and its guest (docs/api.md).

    .venv/bin/python docs/examples/api_tour.py trace.dat trace-vmguest.dat

Without arguments it reads the bundled demo (resources/demo).  tests/test_api.py runs it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.compute as pc

import kshark_py as ks


def main(paths: list[str]) -> None:
    if not paths:
        demo = Path(__file__).resolve().parents[2] / "resources" / "demo"
        paths = [str(demo / "trace.dat"), str(demo / "trace-vmguest.dat")]
    s = ks.open(*paths)
    print("streams:", ", ".join(s.streams))

    # Every event of every stream, merged on the host clock (a pyarrow Table: .to_pandas() works too)
    events = s.events()
    print(f"\n{events.num_rows} events; events per stream:")
    for row in events.group_by("stream").aggregate([("ts", "count"), ("ts", "min"), ("ts", "max")]).to_pylist():
        print(f"  {row['stream']:<10} {row['ts_count']:>8}  first {row['ts_min']}  last {row['ts_max']} (ns)")

    # One event's records with every field, typed; the info text trace-cmd prints for some rows
    sw = s.fields("sched_switch")
    print(f"\nsched_switch: {sw.num_rows} records; columns {', '.join(sw.column_names)}")
    first = pc.index(events.column("event").cast("string"), "sched_switch").as_py()
    print("  first one says:", s.info([first])[0].as_py())

    # The same tables in SQL (DuckDB, in process): the busiest tasks per stream
    top = s.sql("SELECT stream, comm, count(*) AS n FROM events GROUP BY ALL ORDER BY n DESC LIMIT 5")
    print("\nbusiest tasks:")
    for r in top.to_pylist():
        print(f"  {r['stream']:<10} {r['comm'].decode('utf-8', 'replace'):<20} {r['n']:>8}")

    # Derived tables: scheduling latency per task, where the VCPUs' time went, the time sync samples
    worst = s.wakeup_stats().sort_by([("max_ns", "descending")]).slice(0, 3)
    print("\nworst wakeup latencies:")
    for r in worst.to_pylist():
        print(f"  {r['stream']:<10} {r['comm']:<20} max {r['max_ns'] / 1e6:8.3f} ms over {r['count']} wakeups")
    print("\nVCPU time (ms):")
    for r in s.vcpu_time().to_pylist():
        if r["total_ns"]:
            print(f"  {r['guest']} vcpu {r['vcpu']}  {r['state']:<10} {r['total_ns'] / 1e6:10.3f}")
    print(f"\ntime sync samples: {s.time_sync().num_rows}")


if __name__ == "__main__":
    main(sys.argv[1:])
