"""``kshark-py export -i HOST -i GUEST --format perfetto``: the written trace decoded back with the
same protos (the PyPI ``perfetto`` package): every event present, per machine and CPU in the
stream's order, on the host clock (the guest's first event where trace-cmd's merged report puts
it), guests as their own machines, VCPU threads named; a missing package is one line."""

from __future__ import annotations

import sys
from collections import defaultdict

import numpy as np
import pyarrow.compute as pc
import pytest
from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

from kshark_py.cli import main
from kshark_py.export.events import stream_events
from kshark_py.export.perfetto import COMPACT_FIELDS, machine_of
from kshark_py.loaders.tracedat import open_trace
from kshark_py.model.apitables import fields_table
from kshark_py.model.session import Session
from kshark_py.model.vcpus import build_vcpu_map

from .support.cli import assert_one_line_error

PAIRS = {"vm-tsync": ("trace.dat", "trace-vmguest.dat"), "external/doc-test": ("trace.dat", "trace-Salamander4.dat")}


def _decode(path) -> tuple[dict, dict, dict, dict]:
    """(generic, compact, threads, values): per (machine, cpu) the generic events as (ts, name) in file
    order; per (machine, cpu, event) the compact timestamps in file order; per machine {tid: name};
    per (machine, event) every generic event's (ts, pid, fields), and the switches' next pid and comm."""
    trace = pb.Trace.FromString(path.read_bytes())
    generic: dict = defaultdict(list)
    compact: dict = defaultdict(list)
    threads: dict = defaultdict(dict)
    values: dict = defaultdict(list)
    for pkt in trace.packet:
        m = pkt.machine_id
        if pkt.HasField("process_tree"):
            threads[m].update({t.tid: t.name for t in pkt.process_tree.threads})
        if not pkt.HasField("ftrace_events"):
            continue
        b = pkt.ftrace_events
        generic[(m, b.cpu)] += [(e.timestamp, e.generic.event_name) for e in b.event]
        for e in b.event:
            values[(m, e.generic.event_name)].append(
                (e.timestamp, e.pid, tuple((f.name, getattr(f, f.WhichOneof("value")) if f.WhichOneof("value")
                                           else None) for f in e.generic.field)))
        cs = b.compact_sched
        compact[(m, b.cpu, "sched_switch")] += np.cumsum(np.array(cs.switch_timestamp, np.int64)).tolist()
        values[(m, "next_pid")] += list(cs.switch_next_pid)
        values[(m, "next_comm")] += [cs.intern_table[i] for i in cs.switch_next_comm_index]
        compact[(m, b.cpu, "sched_waking")] += np.cumsum(np.array(cs.waking_timestamp, np.int64)).tolist()
    return generic, compact, threads, values


@pytest.mark.parametrize("pair", PAIRS)
def test_every_event_on_the_host_clock_in_order(traces, tmp_path, pair, capsys):
    paths = [str(traces / pair / f) for f in PAIRS[pair]]
    out = tmp_path / "x.pftrace"
    rc = main(["export", *[w for p in paths for w in ("-i", p)], "--format", "perfetto", "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 0, err
    session = Session.from_files([open_trace(p) for p in paths])
    generic, compact, threads, values = _decode(out)
    want_generic: dict = defaultdict(list)
    want_compact: dict = defaultdict(list)
    total = 0
    for st in session.streams:
        ev = stream_events(session, st.index)
        m = machine_of(session, st.index)
        ts, cpu = ev.column("ts").to_numpy(), ev.column("cpu").to_numpy()
        name = ev.column("event").to_pylist()
        total += len(ts)
        for t, c, n in zip(ts.tolist(), cpu.tolist(), name, strict=True):
            if n in COMPACT_FIELDS:
                want_compact[(m, c, n)].append(t)
            else:
                want_generic[(m, c)].append((t, n))
    assert {k: v for k, v in generic.items() if v} == dict(want_generic)
    assert {k: v for k, v in compact.items() if v} == dict(want_compact)
    assert sum(map(len, generic.values())) + sum(map(len, compact.values())) == total
    assert f"{total} events" in err
    # field values: each host event of a type as the API's fields table has it, switches' next pid/comm
    checked = 0
    for name in ("irq_handler_entry", "sched_wakeup", "kvm_exit", "kvm_entry"):
        st = session.host_stream
        fmt = st.trace.formats.find(name)
        if fmt is None or not len(st.buffer.rows_of(fmt.id)):
            continue
        t = fields_table(session, f"{fmt.system}:{name}", comm=False)
        t = t.filter(pc.equal(t.column("_stream"), st.index))
        own = [f.name for f in fmt.fields]
        cols = {c: t.column(c).to_pylist() for c in own}
        ts = t.column(t.column_names[0]).to_pylist()
        pid = t.column([c for c in t.column_names if c.endswith("pid")][0]).to_pylist()
        want = [(ts[i], pid[i], tuple((c, cols[c][i]) for c in own)) for i in range(t.num_rows)]
        assert sorted(values[(0, name)]) == sorted(want), name
        checked += 1
    assert checked
    sw = fields_table(session, "sched:sched_switch", comm=False) if any(
        st.trace.formats.find("sched_switch") for st in session.streams) else None
    if sw is not None:
        host = sw.filter(pc.equal(sw.column("_stream"), session.host_stream.index))
        assert sorted(values[(0, "next_pid")]) == sorted(host.column("next_pid").to_pylist())
        assert sorted(values[(0, "next_comm")]) == sorted(host.column("next_comm").to_pylist())
    # the guest is machine 1, its first event where trace-cmd's merged report puts it (host clock, us)
    first = (traces / pair / "merged.first-event.txt").read_text().split(f"in {PAIRS[pair][1]} with data:")[1]
    want_first = min(float(line.split("First event:")[1]) for line in first.splitlines() if "First event:" in line)
    got_first = min([t for (m, _), v in generic.items() if m == 1 for t, _ in v]
                    + [t for (m, _, _), v in compact.items() if m == 1 for t in v])
    assert abs(got_first / 1e9 - want_first) < 1e-6
    # VCPU threads of the host are named after their guest and VCPU
    named = [vm for vm in build_vcpu_map(session) if vm.host_pid > 0]
    for vm in named:
        assert threads[0][vm.host_pid].startswith(f"{vm.guest} vcpu {vm.vcpu} ("), threads[0].get(vm.host_pid)
    assert len(named) == (1 if pair == "external/doc-test" else 0)  # vm-tsync's host names no VCPU thread
    assert threads[1], "the guest's tasks are named in its own machine"


def test_missing_perfetto_package_is_one_line(traces, tmp_path, capsys, monkeypatch):
    for name in [n for n in sys.modules if n == "perfetto" or n.startswith("perfetto.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "perfetto", None)  # import perfetto -> ImportError
    paths = [str(traces / "vm-tsync" / f) for f in PAIRS["vm-tsync"]]
    out = tmp_path / "x.pftrace"
    rc = main(["export", *[w for p in paths for w in ("-i", p)], "--format", "perfetto", "-o", str(out)])
    assert_one_line_error(rc, capsys.readouterr().err, "pip install perfetto")
    assert not out.exists()
