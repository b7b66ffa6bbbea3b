"""Session files in KernelShark's layout, and per-stream time offsets (KernelShark's Add Time Offset).

What KernelShark 2.2.1 needs to load a session (``libkshark-configio.c``): every data stream with
``data.file``/``name``/``time`` (the file's mtime), a ``filters`` document holding at least the
``filter mask``, a ``plugins`` document; ``Markers`` with ``Active``; ``Model`` with ``bins``.
What it stores that we must read: ``CPUPlots``/``TaskPlots`` per stream, ``ComboPlots``, markers as
rows of its entry array, filters per stream, ``calib. array`` (the time offset).  The tests with
KernelShark itself are in ``test_session_file_kernelshark.py``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from kshark_py.loaders.tracedat import open_trace
from kshark_py.model.loading import load_session
from kshark_py.model.session import Session
from kshark_py.model.sessionfile import EntryRows, SessionState, ks_stream_order, load_session_file, save_session
from kshark_py.ui.app import DEMO_SESSION, build_window
from kshark_py.ui.timeoffset import TimeOffsetDialog, parse_ns

EXAMPLE = Path(__file__).resolve().parents[2] / "shared" / "spec" / "kernelshark-session-example.json"
VM_MAP = {"vmguest": {0: 16748, 1: 16749}}


def _window(qtbot, paths, user_map=None, state=None):
    paths = [str(p) for p in paths]
    w = build_window(load_session(paths, user_map), paths, user_map, state)
    qtbot.addWidget(w)
    if state is None or state.window is None:
        w.resize(1400, 900)
    return w


def _first_ts(st) -> int:
    return int(st.buffer.events.column("ts")[0].as_py())


# -- the model: a per-stream time offset ---------------------------------------------------------------

def test_time_offset_shifts_one_stream_and_reorders_the_merge(traces):
    s = Session.from_files([open_trace(traces / "vm/trace.dat"), open_trace(traces / "vm/trace-vmguest.dat")])
    g = s.stream_index("vmguest")
    host_ts = s.streams[0].buffer.events.column("ts").to_numpy().copy()
    guest_ts = s.streams[g].buffer.events.column("ts").to_numpy().copy()
    assert s.merged().stream[0] == g  # unsynced: the guest's uptime clock (~20 s) sorts first
    runs_before = s.runs(g).column("start").to_numpy().copy()
    off = int(host_ts[0] - guest_ts[0])
    s.set_time_offset("vmguest", off)
    assert s.time_offsets == {g: off}
    assert np.array_equal(s.streams[g].buffer.events.column("ts").to_numpy(), guest_ts + off)
    assert np.array_equal(s.streams[0].buffer.events.column("ts").to_numpy(), host_ts)  # the host stays
    m = s.merged()
    assert len(m) == len(host_ts) + len(guest_ts) and bool(np.all(np.diff(m.ts) >= 0))
    assert m.ts[0] == host_ts[0] and {int(m.stream[0]), int(m.stream[1])} == {0, g}
    # derived intervals follow (recomputed from the shifted times)
    assert np.array_equal(s.runs(g).column("start").to_numpy(), runs_before + off)
    # absolute, as KernelShark's calibration: setting 0 undoes it; by index as well as by name
    s.set_time_offset(g, 0)
    assert s.time_offsets == {} and np.array_equal(s.streams[g].buffer.events.column("ts").to_numpy(), guest_ts)
    assert s.merged().stream[0] == g
    with pytest.raises(ValueError, match="no stream 'nope'"):
        s.set_time_offset("nope", 1)


def test_parse_ns():
    assert parse_ns("-2848872632049") == -2848872632049
    assert parse_ns("2_848.5 s") == 2_848_500_000_000
    assert parse_ns("1.5ms") == 1_500_000 and parse_ns("3us") == 3000 and parse_ns("7 ns") == 7
    with pytest.raises(ValueError, match="not a time offset"):
        parse_ns("ten")


def test_tools_add_time_offset_moves_the_guest_on_screen(qtbot, traces):
    """The vm/ pair has no time sync: the guest starts ~2,850 s before the host. The dialog's
    "Align first events" puts it on the host's first event; rows, list and range follow."""
    w = _window(qtbot, [traces / "vm/trace.dat", traces / "vm/trace-vmguest.dat"], VM_MAP)
    assert "Add time &offset..." in [a.text() for m in w.menuBar().actions() if m.menu()
                                     for a in m.menu().actions()]
    host, guest = w.session.streams[0], w.session.streams[1]
    h0, g0 = _first_ts(host), _first_ts(guest)
    t0, _ = w.timeline.view_range()
    assert t0 < h0 - 2000e9  # the whole range spans both clocks
    dlg = TimeOffsetDialog(w.session, w)
    assert dlg.stream.currentData() == guest.index
    dlg._align()
    assert int(dlg.value.text()) == h0 - g0
    dlg._accept()
    assert dlg.result_value == (guest.index, h0 - g0)
    rows_before = [r.label for r in w.model.rows]
    w.set_time_offset(*dlg.result_value)
    t0, t1 = w.timeline.view_range()
    assert abs(t0 - h0) < 0.01 * (t1 - t0)
    assert [r.label for r in w.model.rows] == rows_before
    vcpu0 = next(r for r in w.model.rows if r.kind == "vcpu_guest" and r.cpu == 0)
    assert vcpu0.intervals.start.min() >= h0 - 1e9  # the guest CPU row's runs moved with it
    lm = w.event_list.model
    assert lm.rowCount() == len(host.buffer.events) + len(guest.buffer.events)
    first = [int(w.session.merged().ts[lm.merged_index(k)]) for k in range(2)]
    assert first == [h0, h0]  # guest's first event now sits on the host's first


# -- reading KernelShark's file ----------------------------------------------------------------------

def test_kernelshark_example_session_applies_rows_and_range(qtbot):
    """The real KernelShark export (two CPU plots, task plots 11 and 29, filter mask 7)."""
    state = load_session_file(EXAMPLE)
    assert state.files == [str((EXAMPLE.parent / "../traces/host-small-v7.dat").resolve())]
    assert any("mtime differs" in w for w in state.warnings)  # the corpus copy is not the one exported
    w = _window(qtbot, state.files, state.vcpu_map, state)
    assert [r.label for r in w.model.rows] == ["host CPU 0", "host CPU 1", "host kworker/0:1-11",
                                               "host rcu_tasks_trace-29"]
    assert w.timeline.view_range() == (207420759968, 208421849984)
    assert (w.width(), w.height()) == (1580, 980)
    assert w.filters.apply_to_graph and w.filters.apply_to_list and not w.filters.is_active()


def test_kernelshark_filters_markers_and_offsets_are_applied(qtbot, traces, tmp_path):
    """KernelShark's keys for filters (per stream, event names ``system/name``), the filter mask,
    markers as entry rows, ``calib. array`` and ``ComboPlots``: all applied on import."""
    host, guest = traces / "vm/trace.dat", traces / "vm/trace-vmguest.dat"
    doc = json.loads(EXAMPLE.read_text())
    s0 = doc["data streams"][0]
    s0["data"].update(file=str(host), time=int(os.stat(host).st_mtime))
    s0["filters"].update({"hide event filter": ["sched/sched_switch"], "show cpu filter": [1], "filter mask": 5})
    s0["CPUPlots"], s0["TaskPlots"] = [1], [16748]
    s1 = json.loads(json.dumps(s0))
    s1["stream id"] = 1
    s1["data"].update(file=str(guest), time=int(os.stat(guest).st_mtime))
    s1["filters"] = {"type": "kshark.config.filter", "filter mask": 5}
    s1["CPUPlots"], s1["TaskPlots"] = [0, 1], []
    h0 = _first_ts(Session.from_files([open_trace(host)]).streams[0])
    g0 = _first_ts(Session.from_files([open_trace(guest)]).streams[0])
    s1["calib. array"] = [h0 - g0]
    doc["data streams"] = [s0, s1]
    doc["ComboPlots"] = [[[1, 10, 1], [0, 5, 16749]]]
    doc["Markers"] = {"type": "kshark.config.markers", "markA": {"isSet": True, "row": 0},
                      "markB": {"isSet": True, "row": 1000}, "Active": "B"}
    doc["Model"]["range"] = [h0, h0 + 1_000_000_000]
    p = tmp_path / "ks.json"
    p.write_text(json.dumps(doc))
    state = load_session_file(p)
    assert state.warnings == []
    w = _window(qtbot, state.files, VM_MAP, state)
    assert w.session.time_offsets == {1: h0 - g0}
    assert [r.label for r in w.model.rows] == ["host CPU 1", "vmguest VCPU0 (guest CPU)", "vmguest VCPU1 host 16749",
                                               "vmguest VCPU1 state", "vmguest VCPU1 (guest CPU)",
                                               "host qemu-system-x86-16748"]
    sw = w.session.streams[0].trace.formats.find("sched_switch").id
    assert w.filters.get(0, "event", "hide") == frozenset({sw}) and w.filters.get(0, "cpu", "show") == frozenset({1})
    assert w.filters.apply_to_list and not w.filters.apply_to_graph  # mask 5: list + event view bits
    rows = EntryRows(w.session)
    assert w.markers.times == {"A": h0, "B": rows.time_of(1000)} and w.markers.active == "B"
    assert w.timeline.view_range() == (h0, h0 + 1_000_000_000)


# -- writing what KernelShark reads --------------------------------------------------------------------

def test_export_has_every_key_kernelshark_needs_and_round_trips(qtbot, traces, tmp_path):
    w = _window(qtbot, [traces / "vm/trace.dat", traces / "vm/trace-vmguest.dat"], VM_MAP)
    h0, g0 = _first_ts(w.session.streams[0]), _first_ts(w.session.streams[1])
    w.set_time_offset(1, h0 - g0)
    w.model.set_visible_cpus(0, [1])
    w.model.set_visible_pairs([("vmguest", 0)])
    w.add_task_row(0, 18636)
    sw = w.session.streams[0].trace.formats.find("sched_switch").id
    w.filters.set(0, "event", "hide", [sw])
    w.filters.set_stream_enabled(1, True)
    w.filters.apply_to_graph = False
    w.set_marker("A", h0)
    w.set_marker("B", h0 + 123_456)
    w.markers.b.setChecked(True)
    w.timeline.set_range(h0, h0 + 500_000_000)
    out = tmp_path / "ours.json"
    save_session(w.session_state(), out)
    doc = json.loads(out.read_text())

    assert doc["type"] == "kshark.config.session"
    assert doc["Model"]["type"] == "kshark.config.model" and doc["Model"]["bins"] >= 1
    assert doc["Model"]["range"] == [h0, h0 + 500_000_000]
    assert [s["stream id"] for s in doc["data streams"]] == [0, 1]
    for s, f in zip(doc["data streams"], [traces / "vm/trace.dat", traces / "vm/trace-vmguest.dat"], strict=True):
        assert s["type"] == "kshark.config.stream"
        assert s["data"] == {"type": "kshark.config.data", "file": os.path.realpath(f), "name": "top buffer",
                             "time": int(os.stat(f).st_mtime)}
        assert s["filters"]["type"] == "kshark.config.filter" and "filter mask" in s["filters"]
        assert s["plugins"]["type"] == "kshark.config.plugins" and s["plugins"]["registered"]
    s0, s1 = doc["data streams"]
    assert s0["CPUPlots"] == [1] and s0["TaskPlots"] == [18636] and "calib. array" not in s0
    assert s1["CPUPlots"] == [0, 1] and s1["TaskPlots"] == [] and s1["calib. array"] == [h0 - g0]
    assert s0["filters"]["hide event filter"] == ["sched/sched_switch"] and s0["filters"]["filter mask"] == 5
    assert doc["ComboPlots"] == [[[1, 10, 0], [0, 5, 16748]]]
    rows = EntryRows(w.session)
    assert doc["Markers"]["markA"] == {"isSet": True, "row": rows.row_of(h0), "time": h0}
    assert doc["Markers"]["Active"] == "B"
    assert doc["MainWindow"] == [1400, 900] and len(doc["Splitter"]) == 2

    st = load_session_file(out)
    w2 = _window(qtbot, st.files, st.vcpu_map, st)
    assert w2.session.time_offsets == {1: h0 - g0}
    assert [r.label for r in w2.model.rows] == [r.label for r in w.model.rows]
    assert w2.filters.get(0, "event", "hide") == frozenset({sw}) and not w2.filters.apply_to_graph
    assert w2.markers.times == {"A": h0, "B": h0 + 123_456} and w2.markers.active == "B"
    assert w2.timeline.view_range() == (h0, h0 + 500_000_000)
    # KernelShark drops our marker "time" when it re-exports: the row alone gives the event's time
    doc["Markers"]["markB"].pop("time")
    out.write_text(json.dumps(doc))
    w3 = _window(qtbot, st.files, st.vcpu_map, load_session_file(out))
    assert w3.markers.times["B"] == rows.time_of(rows.row_of(h0 + 123_456))


def test_ks_stream_order_groups_instances_with_their_file(traces):
    s = Session.from_files([open_trace(traces / "host-instances.dat")])
    assert [s.streams[i].buffer.name for i in ks_stream_order(s)] == ["", "irqbuf"]
    state = SessionState(files=[s.streams[0].trace.path])
    assert state.to_json()["Markers"]["Active"] == "A"  # KernelShark dereferences it unconditionally


def test_entry_rows_count_missed_events_entries(traces):
    """KernelShark puts a missed_events entry 10 ns before each record that follows lost events:
    rows after it are one further than the events alone."""
    s = Session.from_files([open_trace(traces / "host-lost-events.dat")])
    lost = s.streams[0].buffer.lost
    assert len(lost)
    rows = EntryRows(s)
    assert len(rows.ts) == len(s.streams[0].buffer.events) + len(lost)
    t = int(lost.column("ts")[0].as_py())
    before = int((s.streams[0].buffer.events.column("ts").to_numpy() < t).sum())
    missed_before = int((lost.column("ts").to_numpy() < t).sum())
    assert rows.time_of(before + missed_before) == t - 10 and rows.row_of(t) >= before + missed_before + 1


def test_old_kshark_py_session_still_loads(tmp_path):
    state = load_session_file(DEMO_SESSION)
    assert [Path(f).name for f in state.files] == ["trace.dat", "trace-vmguest.dat"]
    assert state.vcpu_map == {"vmguest": {0: 27186}} and state.range is None
    moved = tmp_path / "demo"
    shutil.copytree(DEMO_SESSION.parent, moved)
    assert load_session_file(moved / DEMO_SESSION.name).files[0] == str(moved / "trace.dat")


def test_instances_are_ours_only_and_round_trip(qtbot, traces, tmp_path):
    """KernelShark 2.2.1 cannot reopen a buffer from a session (even its own export): it fails,
    then crashes on the markers.  Instance streams go under "kshark-py"; marker rows count the
    entries of the streams KernelShark loads (the top buffer)."""
    w = _window(qtbot, [traces / "host-instances.dat"])
    top, inst = w.session.streams
    w.model.set_visible_cpus(inst.index, [1])
    w.filters.set(inst.index, "cpu", "hide", [0])
    t = int(top.buffer.events.column("ts")[1000].as_py())
    w.set_marker("A", t)
    out = tmp_path / "inst.json"
    save_session(w.session_state(), out)
    doc = json.loads(out.read_text())
    assert [s["data"]["name"] for s in doc["data streams"]] == ["top buffer"]
    (ours,) = doc["kshark-py"]["instance streams"]
    assert ours["data"]["name"] == "irqbuf" and ours["CPUPlots"] == [1] and ours["filters"]["hide cpu filter"] == [0]
    top_ts = np.sort(np.concatenate([top.buffer.events.column("ts").to_numpy(),
                                     top.buffer.lost.column("ts").to_numpy() - 10]))  # + missed_events entries
    assert doc["Markers"]["markA"]["row"] == int(np.searchsorted(top_ts, t, side="right")) - 1
    st = load_session_file(out)
    w2 = _window(qtbot, st.files, None, st)
    assert [r.label for r in w2.model.rows] == ["host CPU 0", "host CPU 1", "host:irqbuf CPU 1"]
    assert w2.filters.get(inst.index, "cpu", "hide") == frozenset({0}) and w2.markers.times["A"] == t


def test_command_line_offset_stays_when_the_session_gives_none(qtbot, traces, tmp_path):
    """``--time-offset`` (applied while loading) with ``--session``: a stream the file gives no
    ``calib. array`` keeps the command line's offset; one it gives takes the file's."""
    paths = [str(traces / "vm/trace.dat"), str(traces / "vm/trace-vmguest.dat")]
    w = build_window(load_session(paths, None), paths)
    qtbot.addWidget(w)
    out = tmp_path / "none.json"
    save_session(w.session_state(), out)
    st = load_session_file(out)
    res = load_session(paths, None, time_offsets={"vmguest": 5_000})
    w2 = build_window(res, paths, None, st)
    qtbot.addWidget(w2)
    assert w2.session.time_offsets == {1: 5_000}
    w2.set_time_offset(1, 7_000)
    save_session(w2.session_state(), out)
    res = load_session(paths, None, time_offsets={"vmguest": 5_000})
    w3 = build_window(res, paths, None, load_session_file(out))
    qtbot.addWidget(w3)
    assert w3.session.time_offsets == {1: 7_000}


def test_field_rows_and_analysis_panels_round_trip(qtbot, traces, tmp_path):
    """A session keeps the field plot rows and the open analysis panels (with the latency request) under
    "kshark-py"; opening it shows them again."""
    from kshark_py.ui.latencyplot import LatencyRequest

    w = _window(qtbot, [traces / "host-kvm.dat"])
    w.show()  # a dock counts as open when the user sees it
    errors: list[str] = []
    row = w.latency_tools.add_field_row(0, "sched:sched_switch", "next_prio", warn=errors.append)
    assert row is not None and not errors
    w.latency_tools.show_wakeups()
    req = LatencyRequest("irq:irq_handler_entry", "irq:irq_handler_exit", (("irq", "irq"),))
    w.latency_tools.show_latency(req)
    w.vm_analyses.show_exits()
    out = tmp_path / "analyses.json"
    save_session(w.session_state(), out)
    doc = json.loads(out.read_text())
    assert doc["kshark-py"]["field rows"] == [[0, "sched:sched_switch", "next_prio"]]
    assert doc["kshark-py"]["panels"] == {"wakeups": True, "exits": True, "latency": {
        "start": "irq:irq_handler_entry", "end": "irq:irq_handler_exit", "match": [["irq", "irq"]]}}
    st = load_session_file(out)
    w2 = _window(qtbot, st.files, None, st)
    w2.show()
    labels = [r.label for r in w2.model.rows if r.kind == "field"]
    assert labels == [row.label]
    field = next(r for r in w2.model.rows if r.kind == "field").data
    assert np.array_equal(field.values, row.data.values) and np.array_equal(field.ts, row.data.ts)
    assert w2.latency_tools.wakeup_panel is not None and w2.latency_tools.docks["wakeups"].isVisibleTo(w2)
    assert w2.latency_tools.latency_panel.request == req
    assert w2.latency_tools.latency_panel.model.rowCount() == w.latency_tools.latency_panel.model.rowCount() > 0
    assert w2.vm_analyses.exits is not None and "vcputime" not in w2.vm_analyses.docks
    # a field the trace does not have: the session still opens, and says so
    st.field_rows.append((0, "sched:sched_switch", "no_such_field"))
    w3 = _window(qtbot, st.files, None, st)
    assert [r.label for r in w3.model.rows if r.kind == "field"] == [row.label]
    assert "no_such_field" in w3.status.currentMessage()
