"""``kshark-py record`` ends with each stream's events and lost events (host, each guest), as the capture
panel's total rows show them, and they are the written files' counts."""

from __future__ import annotations

import os
import re
import subprocess

from kshark_py.capture.control import CpuProgress, Progress, stream_totals, total_lines
from kshark_py.loaders.tracedat import open_trace

from .support.capture import ROOT, our_agent, our_cli


def test_total_lines_sum_each_source():
    p = Progress(1.0, [CpuProgress("host", 0, 10, 5, 0), CpuProgress("host", 1, 10, 7, 2),
                       CpuProgress("g", 0, 10, 3, 1, 1), CpuProgress("h", 0, 0, None, None)])
    assert total_lines(stream_totals(p)) == ["host: 12 events, 2 events lost", "guest g: 3 events, 1+ events lost",
                                             "guest h: ? events, ? events lost"]


def test_record_prints_events_and_lost_per_stream(env_ok, tmp_path):
    with our_agent(tmp_path) as ag:
        r = subprocess.run(our_cli("record", "-o", "trace.dat", "-e", "sched:sched_switch",
                                     "-A", f"g@127.0.0.1:{ag.port}", "-e", "sched:sched_switch",
                                     "-e", "sched:sched_wakeup", "sleep", "0.5"),
                           cwd=tmp_path, capture_output=True, text=True, timeout=90,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)))
        ag.proc.wait(timeout=30)
    assert r.returncode == 0, r.stderr
    got = {m.group(1): (int(m.group(2).replace(",", "")), int(m.group(3).replace(",", "")))
           for m in re.finditer(r"^(host|guest \S+): ([\d,]+) events, ([\d,]+) events lost$", r.stderr, re.M)}
    assert set(got) == {"host", "guest g"}, r.stderr
    for who, path in (("host", "trace.dat"), ("guest g", "trace-g.dat")):
        buf = open_trace(tmp_path / path).buffers[0]
        assert got[who] == (buf.events.num_rows, sum(s.lost_events for s in buf.stats)), (who, r.stderr)
        assert got[who][0] > 0
