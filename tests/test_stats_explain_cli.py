"""``kshark-py stats --explain GUEST:PID``: the cross-layer split of a guest task's time, from the CLI
(external/doc-test: a real KVM host and its guest Salamander4, read in place)."""

from __future__ import annotations

import csv
import io

import pytest

from kshark_py.cli import main
from kshark_py.loaders.tracedat import open_trace
from kshark_py.model.analysis.crosslayer import cross_layer
from kshark_py.model.session import Session


@pytest.fixture
def doc_test(traces):
    d = traces / "external" / "doc-test"
    return d / "trace.dat", d / "trace-Salamander4.dat"


def _csv(out: str) -> list[tuple[str, str, int]]:
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["state", "detail", "total_ns"]
    return [(s, d, int(t)) for s, d, t in rows[1:]]


def test_explain_a_range_adds_up_and_equals_the_model(capsys, doc_test):
    host, guest = doc_test
    a, b = 22150518844735, 22150519205941  # trace-cmd's worst wakeup in the guest (pid 512): 361,206 ns
    assert main(["stats", "-i", str(host), "-i", str(guest), "--explain", "Salamander4:512",
                 "--range", f"{a}:{b}", "--format", "csv"]) == 0
    rows = _csv(capsys.readouterr().out)
    assert sum(t for _s, _d, t in rows) == b - a
    assert rows[0][:2] == ("runnable", "guest scheduler")  # most of that wakeup: the guest's own scheduler
    assert {s for s, _d, _t in rows} <= {"running", "runnable", "blocked", "exit", "preempted", "halted", "unknown"}
    s = Session.from_files([open_trace(host), open_trace(guest)])
    want = cross_layer(s, "Salamander4", 512, a, b)
    assert rows == list(zip(*(want.column(c).to_pylist() for c in ("state", "detail", "total_ns")), strict=True))


def test_explain_defaults_to_the_guests_whole_trace(capsys, doc_test):
    host, guest = doc_test
    assert main(["stats", "-i", str(host), "-i", str(guest), "--explain", "Salamander4:512", "--format", "csv"]) == 0
    rows = _csv(capsys.readouterr().out)
    s = Session.from_files([open_trace(host), open_trace(guest)])
    m = s.merged()
    si = next(st.index for st in s.streams if st.guest is not None)
    ts = m.ts[m.stream == si]
    assert sum(t for _s, _d, t in rows) == int(ts.max()) - int(ts.min())


@pytest.mark.parametrize("spec,msg", [("5", "expected GUEST:PID"), ("nope:5", "no guest named 'nope'"),
                                      ("Salamander4:x", "expected GUEST:PID")])
def test_explain_errors_are_one_line(capsys, doc_test, spec, msg):
    host, guest = doc_test
    assert main(["stats", "-i", str(host), "-i", str(guest), "--explain", spec]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1
