"""`kshark-py report` against trace-cmd 3.1.6's saved reports of every file in the corpus.

Columns (task, pid, cpu, timestamp, event name, file/instance prefix) must match on 100% of
lines; whole lines (with the info text) on at least 99.9%.  Lines that still differ are listed,
with the reason, in KNOWN_DIFFERENCES.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from kshark_py.loaders.tracedat import open_trace
from kshark_py.report import report

from .reference import columns, read_reference

CASES = [
    # (inputs, reference, nsec)
    (["host-small-v7.dat"], "host-small-v7.dat.report.txt", False),
    (["host-sched-v7.dat"], "host-sched-v7.dat.report.txt", False),
    (["host-sched-v6.dat"], "host-sched-v6.dat.report.txt", False),
    (["host-instances.dat"], "host-instances.dat.report.txt", False),
    (["host-lost-events.dat"], "host-lost-events.dat.report.txt", False),
    (["host-printk.dat"], "host-printk.dat.report.txt", False),
    (["host-kvm.dat"], "host-kvm.dat.report.txt", False),
    (["vm/trace.dat"], "vm/trace.dat.report.txt", False),
    (["vm/trace-vmguest.dat"], "vm/trace-vmguest.dat.report.txt", False),
    (["vm/trace.dat", "vm/trace-vmguest.dat"], "vm/merged.report.txt", False),
    (["vm-tsync/trace.dat"], "vm-tsync/trace.dat.report.txt", False),
    (["vm-tsync/trace-vmguest.dat"], "vm-tsync/trace-vmguest.dat.report.txt", False),
    (["vm-tsync/trace.dat", "vm-tsync/trace-vmguest.dat"], "vm-tsync/merged.report.txt", False),
    (["external/doc-test/trace.dat"], "external/doc-test/trace.dat.report.txt", False),
    (["external/doc-test/trace-Salamander4.dat"], "external/doc-test/trace-Salamander4.dat.report.txt", False),
    (["external/doc-test/trace.dat", "external/doc-test/trace-Salamander4.dat"],
     "external/doc-test/merged.report.txt", False),
]


def _ours(traces, inputs, nsec=False, raw=False):
    files = [open_trace(traces / p) for p in inputs]
    out: list[str] = []
    for line in report(files, nsec=nsec, raw=raw):
        out.extend(line.split("\n"))
    return out


def _event_columns(lines):
    return [c for c in (columns(line) for line in lines) if c is not None]


@pytest.fixture(scope="module", params=CASES, ids=[c[1] for c in CASES])
def case_lines(request, traces) -> tuple[list[str], list[str]]:
    """(our report's lines, trace-cmd's saved report's lines) of one case, made once for both tests that
    compare them (module scope: pytest runs the two tests of a case one after the other, so only one
    case's lines are held at a time)."""
    inputs, ref, nsec = request.param
    return _ours(traces, inputs, nsec), read_reference(traces / ref)


def test_columns_match_exactly(case_lines):
    ours, theirs = case_lines
    assert ours[0] == theirs[0]  # the cpus= header
    a, b = _event_columns(ours), _event_columns(theirs)
    assert len(a) == len(b)
    mismatch = [(i, x, y) for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    assert not mismatch, mismatch[:5]
    lost_ours = [line for line in ours if "EVENTS DROPPED]" in line]
    lost_ref = [line for line in theirs if "EVENTS DROPPED]" in line]
    assert lost_ours == lost_ref


def test_nanosecond_timestamps(traces):
    """-t: the merged host+guest pair with time sync, to the nanosecond."""
    ours = _event_columns(_ours(traces, ["vm-tsync/trace.dat", "vm-tsync/trace-vmguest.dat"], nsec=True))
    # the first guest event follows the "CPU:0 [25450 EVENTS DROPPED]" line (which carries the prefix)
    assert ours[0][4] == "3337.155862296"  # host-guest-timesync.md worked example A2
    ts = [c[4] for c in ours]
    assert all(len(t.split(".")[1]) == 9 for t in ts)


def test_cpu_filter(traces):
    ours = _event_columns(_ours(traces, ["host-small-v7.dat"]))
    files = [open_trace(traces / "host-small-v7.dat")]
    only1 = _event_columns(list(report(files, cpus=[1])))
    assert only1 and all(c[3] == 1 for c in only1)
    assert len(only1) == sum(1 for c in ours if c[3] == 1)


def test_cli_report_and_errors(traces, tmp_path):
    r = subprocess.run([sys.executable, "-m", "kshark_py.cli", "report", "-i", str(traces / "host-small-v7.dat")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("cpus=2\n")
    assert len(r.stdout.splitlines()) == 652
    bad = tmp_path / "bad.dat"
    bad.write_bytes(b"not a trace file at all")
    r = subprocess.run([sys.executable, "-m", "kshark_py.cli", "report", "-i", str(bad)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "bad.dat" in r.stderr and "magic" in r.stderr


def test_export_parquet(traces, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "x.parquet"
    r = subprocess.run([sys.executable, "-m", "kshark_py.cli", "export", "-i", str(traces / "host-instances.dat"),
                        "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    t = pq.read_table(out)
    assert t.num_rows == 56891 + 5622
    assert {"ts", "cpu", "pid", "stream", "comm", "event"} <= set(t.column_names)
    streams = set(t.column("stream").to_pylist())
    assert streams == {"host-instances.dat", "host-instances.dat:irqbuf"}
    assert "sched_switch" in set(t.column("event").to_pylist())


RAW_CASES = ["host-sched-v7.dat", "host-sched-v6.dat", "host-instances.dat", "host-lost-events.dat",
             "host-printk.dat", "host-kvm.dat", "vm/trace.dat", "vm/trace-vmguest.dat", "vm-tsync/trace.dat",
             "vm-tsync/trace-vmguest.dat"]
# (the zlib files of external/ are left out: Debian's trace-cmd cannot read zlib, so there is no -R reference)


def _raw_reference(traces, name, tmp_path_factory) -> list[str]:
    """The saved `trace-cmd report -R` output, or, where shared/ has none, the real trace-cmd's, made now."""
    saved = traces / f"{name}.report-raw.txt"
    if saved.exists() or saved.with_name(saved.name + ".gz").exists():
        return read_reference(saved)
    r = subprocess.run(["trace-cmd", "report", "-R", "-i", str(traces / name)], capture_output=True, text=True,
                       errors="replace", timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    while lines and lines[-1] == "":
        lines.pop()
    return lines

# Lines that still differ from trace-cmd 3.1.6, and why.
KNOWN_DIFFERENCES = {
    # ftrace raw_data has a flexible `char buf[]`; with -R trace-cmd prints it as a C string and reads
    # past the end of the record into stale bytes of the ring-buffer page until it finds a NUL.  Those
    # bytes are not part of the record, so we stop at the record's end.
    ("host-printk.dat", "-R"): 2,
}


def test_whole_lines_match(case_lines):
    ours, theirs = case_lines
    assert len(ours) == len(theirs)
    diff = [(a, b) for a, b in zip(ours, theirs, strict=True) if a != b]
    assert not diff, diff[:3]


@pytest.mark.parametrize("name", RAW_CASES)
def test_raw_report_lines(traces, name, tmp_path_factory):
    ours = _ours(traces, [name], raw=True)
    theirs = _raw_reference(traces, name, tmp_path_factory)
    assert len(ours) == len(theirs)
    diff = [(a, b) for a, b in zip(ours, theirs, strict=True) if a != b]
    allowed = KNOWN_DIFFERENCES.get((name, "-R"), 0)
    assert len(diff) <= allowed, diff[:3]
    assert 1 - len(diff) / len(theirs) >= 0.999
    if allowed:
        assert all(" raw_data:" in a for a, _ in diff)
