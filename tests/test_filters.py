"""Filters on the host+guest pair: every mask is checked against an independent count (per-row
Python over the payload bytes, or numpy on the raw columns), plus notification, caching,
serialization and expression errors."""

from __future__ import annotations

import json
import re
import struct

import numpy as np
import pytest

from kshark_py.loaders.tasks import task_names
from kshark_py.loaders.tracedat import open_trace
from kshark_py.model import filterfile
from kshark_py.model.fieldexpr import FieldFilter, FilterSyntaxError, _compare_int
from kshark_py.model.filters import Filters
from kshark_py.model.merged import merged_gather
from kshark_py.model.session import Session
from kshark_py.model.taskindex import TaskIndex, text_matcher

from .reference import merged_col


@pytest.fixture(scope="module")
def session(traces):
    files = [open_trace(traces / "vm-tsync" / "trace.dat"), open_trace(traces / "vm-tsync" / "trace-vmguest.dat")]
    return Session.from_files(files)


def ev_id(session, stream, name):
    return session.streams[stream].trace.formats.find(name).id


def test_no_filter_shows_everything(session):
    f = Filters()
    assert not f.is_active()
    assert f.mask(session).all()
    assert len(f.visible(session)) == len(session.merged())


def test_hide_event(session):
    f = Filters()
    wake = ev_id(session, 0, "sched_wakeup")
    f.set(0, "event", "hide", [wake])
    m = session.merged()
    eid = merged_col(session, "event_id")
    expected = ~((m.stream == 0) & (eid == wake))
    assert np.array_equal(f.mask(session), expected)
    assert f.mask(session).sum() == len(m) - int((session.streams[0].buffer.events.column("event_id")
                                                  .to_numpy() == wake).sum())


def test_show_only_cpu(session):
    f = Filters()
    f.set(0, "cpu", "show", [1])
    m = session.merged()
    cpu = merged_col(session, "cpu")
    n_guest = int((m.stream == 1).sum())
    n_host_cpu1 = int((session.streams[0].buffer.events.column("cpu").to_numpy() == 1).sum())
    assert f.mask(session).sum() == n_guest + n_host_cpu1
    assert np.array_equal(f.mask(session), (m.stream == 1) | (cpu == 1))


def test_hide_task_and_combination(session):
    f = Filters()
    host_pids = session.streams[0].buffer.events.column("pid").to_numpy()
    busiest = int(np.bincount(host_pids[host_pids > 0]).argmax())
    f.set(0, "task", "hide", [busiest])
    m = session.merged()
    pid = merged_col(session, "pid")
    assert f.mask(session).sum() == len(m) - int((host_pids == busiest).sum())
    # both sets of one kind plus another kind: (show empty or in show) and not in hide, for each kind
    sw = ev_id(session, 1, "sched_switch")
    f.set(1, "task", "show", [0, 158, 159])
    f.set(1, "task", "hide", [159])
    f.set(1, "event", "show", [sw])
    eid = merged_col(session, "event_id")
    host_ok = (m.stream == 0) & (pid != busiest)
    guest_ok = (m.stream == 1) & np.isin(pid, [0, 158]) & (eid == sw)
    assert np.array_equal(f.mask(session), host_ok | guest_ok)
    assert np.array_equal(f.visible(session), np.flatnonzero(host_ok | guest_ok))


def test_stream_switch(session):
    f = Filters()
    f.set_stream_enabled(1, False)
    assert f.mask(session).sum() == len(session.streams[0].buffer.events)
    f.set_stream_enabled(1, True)
    assert f.mask(session).all()


def _switch_rows(st):
    ev = st.trace.formats.find("sched_switch")
    rows = np.flatnonzero(st.buffer.events.column("event_id").to_numpy() == ev.id)
    return ev, rows


def test_field_filter_prev_pid_zero(session):
    st = session.streams[0]
    ev, rows = _switch_rows(st)
    fld = ev.field("prev_pid")
    order = "<" if st.trace.endian == "<" else ">"
    # independent: unpack the field from each record's bytes
    want = {int(r) for r in rows
            if struct.unpack_from(order + "i", st.buffer.payload(int(r)), fld.offset)[0] == 0}
    assert 0 < len(want) < len(rows)
    f = Filters()
    f.set_field_filter(st, ev.id, "prev_pid == 0")
    mask = f.stream_mask(st)
    hidden = set(rows.tolist()) - want
    assert int((~mask).sum()) == len(hidden)
    assert not mask[sorted(hidden)].any() and mask[sorted(want)].all()
    assert f.mask(session).sum() == len(session.merged()) - len(hidden)
    # "only matching": every other event type disappears too
    f.set_only_matching(0, True)
    assert f.stream_mask(st).sum() == len(want)
    assert f.mask(session).sum() == len(want) + len(session.streams[1].buffer.events)


def test_field_filter_strings_and_logic(session):
    st = session.streams[0]
    ev, rows = _switch_rows(st)
    pc, np_ = ev.field("prev_comm"), ev.field("next_pid")

    def comm(r):
        return st.buffer.payload(r)[pc.offset:pc.offset + pc.size].split(b"\0")[0].decode()

    def next_pid(r):
        return struct.unpack_from("<i", st.buffer.payload(r), np_.offset)[0]

    import fnmatch
    cases = {
        'prev_comm ~ "qemu*"': lambda r: fnmatch.fnmatchcase(comm(r), "qemu*"),
        "prev_comm == sleep || next_pid < 100": lambda r: comm(r) == "sleep" or next_pid(r) < 100,
        '!(prev_comm =~ "^kw.*/[0-9]") && next_pid != 0': lambda r: not re.search("^kw.*/[0-9]", comm(r))
        and next_pid(r) != 0,
        "prev_comm !~ '*-*' && (next_pid >= 27180 || next_pid <= 0x10)":
            lambda r: not fnmatch.fnmatchcase(comm(r), "*-*") and (next_pid(r) >= 27180 or next_pid(r) <= 16),
    }
    for expr, py in cases.items():
        ff = FieldFilter.parse(expr, ev)
        got = ff.evaluate(st.buffer, rows)
        want = np.array([py(int(r)) for r in rows])
        assert np.array_equal(got, want), expr
        assert 0 < want.sum() < len(rows), expr
        # canonical text parses back to the same test
        assert np.array_equal(FieldFilter.parse(ff.condition, ev).evaluate(st.buffer, rows), want)


@pytest.mark.parametrize("expr,where", [
    ("", "empty"), ("prev_pid ==", "ends"), ("nope == 1", "no field"), ('prev_pid == "x"', "numeric"),
    ("prev_comm < 3", "does not apply"), ("(prev_pid == 1", "')'"), ("prev_pid == 1 &&", "field name"),
    ("prev_pid == 1 1", "unexpected"), ('prev_comm == "abc', "unterminated"), ("prev_comm =~ '('", "regular"),
    ("prev_pid = 1", "unexpected"),
])
def test_field_filter_errors(session, expr, where):
    ev, _ = _switch_rows(session.streams[0])
    with pytest.raises(FilterSyntaxError, match=re.escape(where)):
        FieldFilter.parse(expr, ev)
    f = Filters()
    seen = []
    f.changed.connect(lambda: seen.append(1))
    if expr:
        with pytest.raises(FilterSyntaxError):
            f.set_field_filter(session.streams[0], ev.id, expr)
    assert not seen and not f.is_active()


def test_compare_int_out_of_range():
    a = np.array([0, 5, 255], np.uint8)
    assert not _compare_int(a, "==", -1).any()
    assert _compare_int(a, ">", -1).all()
    assert _compare_int(a, "<", 300).all()
    assert _compare_int(np.array([2**64 - 1], np.uint64), "==", 2**64 - 1).all()


def test_notifications_only_on_real_change(session):
    f = Filters()
    seen = []
    f.changed.connect(lambda: seen.append(1))
    f.set(0, "cpu", "hide", [0])
    f.set(0, "cpu", "hide", [0])  # same set: no notification
    f.add(0, "cpu", "hide", 0)
    assert len(seen) == 1
    with f.batch():
        f.set(0, "cpu", "hide", [1])
        f.set(1, "event", "hide", [ev_id(session, 1, "sched_waking")])
        f.set_stream_enabled(1, False)
    assert len(seen) == 2
    f.set_stream_enabled(0, True)  # already enabled
    assert len(seen) == 2
    f.clear()
    assert len(seen) == 3 and not f.is_active()
    f.clear()
    assert len(seen) == 3


def test_masks_are_cached_and_recomputed(session):
    f = Filters()
    f.set(0, "cpu", "hide", [0])
    a = f.mask(session)
    assert f.mask(session) is a
    guest_mask = f.stream_mask(session.streams[1])
    f.set(0, "cpu", "hide", [1])
    b = f.mask(session)
    assert b is not a and a.sum() != b.sum()
    assert f.stream_mask(session.streams[1]) is guest_mask  # the untouched stream is not recomputed


def test_serialization_roundtrip_and_kernelshark_keys(session):
    f = Filters()
    st0, st1 = session.streams
    wake = ev_id(session, 0, "sched_wakeup")
    sw = ev_id(session, 0, "sched_switch")
    f.set(0, "event", "hide", [wake])
    f.set(0, "task", "show", [0, 27180])
    f.set(1, "cpu", "hide", [0])
    f.set_field_filter(st0, sw, "prev_pid == 0 || next_comm ~ 'qemu*'")
    doc = filterfile.to_dict(f, session)
    host = doc["streams"][0]["filters"]
    assert host["type"] == "kshark.config.filter"
    assert host["hide event filter"] == ["sched/sched_wakeup"]
    assert host["show task filter"] == [0, 27180]
    assert host["adv event filter"] == [{"name": "sched/sched_switch",
                                         "condition": 'prev_pid == 0 || next_comm ~ "qemu*"'}]
    assert doc["streams"][1]["filters"]["hide cpu filter"] == [0]
    g = Filters()
    assert filterfile.from_dict(g, session, json.loads(json.dumps(doc))) == []
    assert np.array_equal(g.mask(session), f.mask(session))
    # a KernelShark "filters" document, including names this trace does not have
    h = Filters()
    warn = filterfile.import_stream(h, st1, {"type": "kshark.config.filter", "filter mask": 7,
                                 "show event filter": ["sched/sched_switch", "kvm/kvm_exit"]})
    assert len(warn) == 1 and "kvm/kvm_exit" in warn[0]
    assert h.get(1, "event", "show") == {ev_id(session, 1, "sched_switch")}
    assert filterfile.import_stream(h, st0, {"type": "kshark.config.filter", "filter mask": 7}) == []
    assert h.apply_to_list and h.apply_to_graph
    # KernelShark's "Apply filters to Graph" unchecked: the graph bit is cleared
    filterfile.import_stream(h, st0, {"type": "kshark.config.filter", "filter mask": 5})
    assert h.apply_to_list and not h.apply_to_graph
    assert filterfile.export_stream(h, st0)["filter mask"] == 5
    assert host["filter mask"] == 7


def test_task_index(session):
    ti = TaskIndex(session)
    m = session.merged()
    pid = merged_col(session, "pid")
    names = []
    for st in session.streams:
        tf = st.trace
        names.append(task_names(tf.buffers, tf.formats, tf.cmdlines))
    comm = np.array([("<idle>" if p == 0 else names[s].get(p, "<...>"))
                     for s, p in zip(m.stream.tolist(), pid.tolist(), strict=True)], object)
    for text, mode in (("qemu", "contains"), ("MD5", "contains"), ("dd", "full match"), ("idle", "not contains")):
        pred = text_matcher(text, mode)
        want = np.array([pred(c) for c in comm])
        assert np.array_equal(ti.match(text, mode), want), (text, mode)
        assert want.any()
    assert np.array_equal(np.array(ti.labels, object)[ti.merged_codes()], comm)
    tasks = dict((p, (c, n)) for p, c, n in ti.tasks(1))
    assert sum(n for _, n in tasks.values()) == len(session.streams[1].buffer.events)
    assert tasks[0][0] == "<idle>"
    assert set(ti.pids_matching(1, "md5sum", "full match")) == {p for p, (c, _) in tasks.items() if c == "md5sum"}


def test_merged_gather_fill(session):
    m = session.merged()
    out = merged_gather(m, [None, np.zeros(len(session.streams[1].buffer.events), bool)])
    assert out.sum() == int((m.stream == 0).sum())
