"""Analysis > VCPU time, offscreen on real host + guest pairs: one stacked bar per VCPU whose pieces
add up to the model's table, following the graph's view and markers; a click frames the piece's
intervals on the VCPU's rows."""

from __future__ import annotations

import threading
from collections import defaultdict

import numpy as np
from PySide6 import QtCore

from kshark_py.model.analysis.vcputime import vcpu_intervals, vcpu_time
from kshark_py.model.loading import load_session
from kshark_py.ui.app import build_window
from kshark_py.ui.vcputimepanel import VcpuTimePanel, vcpu_name

TIMEOUT = 120_000


def _window(qtbot, paths, user_map=None):
    paths = [str(p) for p in paths]
    w = build_window(load_session(paths, user_map), paths, user_map)
    qtbot.addWidget(w)
    w.resize(1500, 950)
    w.show()
    qtbot.waitExposed(w)
    return w


def _settled(p: VcpuTimePanel, rng) -> bool:
    return p.result is not None and (p.result.t0, p.result.t1) == tuple(rng) and not p.worker.busy


def _bars_by_state(p: VcpuTimePanel) -> dict:
    """{(bar name, state): ns} as the bars draw it."""
    out: dict = defaultdict(int)
    states = p.result.pieces.column("state").to_pylist()
    for name, segs in zip(p.bars.axis.names, p.bars.bars, strict=True):
        for seg in segs:
            out[(name, states[seg.key])] += seg.value
    return dict(out)


def _check(p: VcpuTimePanel, session, t0: int, t1: int) -> None:
    want = {(vcpu_name(r["guest"], r["vcpu"], r["host_pid"]), r["state"]): r["total_ns"]
            for r in vcpu_time(session, t0, t1, vcpu_map=p.window.user_map).to_pylist() if r["total_ns"]}
    assert want
    assert _bars_by_state(p) == want
    assert sorted(p.bars.axis.names) == sorted({k[0] for k in want})  # a bar for each VCPU
    assert p.table.rowCount() == sum(len(b) for b in p.bars.bars)


def _click_piece(qtbot, p: VcpuTimePanel, bar: int, seg: int) -> None:
    e = p.bars.edges[bar]
    vb = p.bars.getViewBox()
    pos = p.bars.mapFromScene(vb.mapViewToScene(QtCore.QPointF((e[seg] + e[seg + 1]) / 2, bar)))
    qtbot.mouseClick(p.bars.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=pos)


def test_vcpu_time_follows_view_and_markers_and_frames_a_piece(qtbot, traces):
    d = traces / "vm-tsync"
    user = {"vmguest": {0: 27186}}  # vcpu-threads.json: the host file records -1 (a TCP guest)
    w = _window(qtbot, [d / "trace.dat", d / "trace-vmguest.dat"], user)
    p = w.vm_analyses.show_vcputime()
    qtbot.waitUntil(lambda: _settled(p, w.timeline.view_range()), timeout=TIMEOUT)
    s = w.session
    _check(p, s, *w.timeline.view_range())
    assert p.bars.axis.names == ["vmguest VCPU0"]

    # zooming in: the bars follow the view
    w.timeline.zoom(8.0)
    view = w.timeline.view_range()
    qtbot.waitUntil(lambda: _settled(p, view), timeout=TIMEOUT)
    _check(p, s, *view)

    # behind another tab the panel computes nothing; shown again, it catches up with the view
    w.vm_analyses.show_exits()  # a tab in front of it
    qtbot.waitUntil(lambda: not p.follow.on_screen, timeout=5000)
    w.timeline.zoom(2.0)
    qtbot.wait(400)  # past the debounce
    assert (p.result.t0, p.result.t1) == view
    w.vm_analyses.show_vcputime()
    view = w.timeline.view_range()
    qtbot.waitUntil(lambda: _settled(p, view), timeout=TIMEOUT)
    _check(p, s, *view)

    # a click on the largest piece frames its intervals on the VCPU's state lane and host thread rows
    segs = p.bars.bars[0]
    j = int(np.argmax([sg.value for sg in segs]))
    _click_piece(qtbot, p, 0, j)
    assert p.bars.selected == (0, j)
    piece = p.result.pieces.slice(segs[j].key, 1).to_pylist()[0]
    iv = vcpu_intervals(s, *view, vcpu_map=w.user_map)
    m = np.asarray([r["state"] == piece["state"] and r["reason"] == piece["reason"] and r["by_pid"] == piece["by_pid"]
                    for r in iv.select(["state", "reason", "by_pid"]).to_pylist()])
    starts = np.clip(iv.column("start").to_numpy()[m], *view)
    ends = np.clip(iv.column("end").to_numpy()[m], *view)
    assert int((ends - starts).sum()) == segs[j].value
    w.timeline.redraw()
    drawn = p.marks.layer.drawn()
    rows = [k for k, r in enumerate(w.model.rows) if r.guest == "vmguest" and r.kind in ("vcpu_state", "vcpu_host")]
    assert len(rows) == 2 and set(rows) <= set(drawn)
    v0, v1 = view
    k = int(np.argmax(ends - starts))  # the longest interval of the piece is framed where it lies
    mid = ((starts[k] + ends[k]) / 2 - v0) / (v1 - v0) * w.timeline.pixel_width()
    assert any(a <= mid <= b for a, b in drawn[rows[0]])
    assert f"{int(m.sum()):,} interval" in p.summary.text()

    # markers A-B
    t0, t1 = w.analysis.full()
    a, b = t0 + (t1 - t0) // 4, t0 + (t1 - t0) // 2
    w.set_marker("A", b)  # B before A: the range is still A..B in time
    w.set_marker("B", a)
    p.range_box.set_mode("markers")
    qtbot.waitUntil(lambda: _settled(p, (a, b)), timeout=TIMEOUT)
    _check(p, s, a, b)


def test_vcpu_time_splits_exits_by_reason(qtbot, traces):
    """doc-test's host has kvm_exit/kvm_entry: the bar has a piece per exit reason."""
    d = traces / "external" / "doc-test"
    w = _window(qtbot, [d / "trace.dat", d / "trace-Salamander4.dat"])
    p = w.vm_analyses.show_vcputime()
    p.range_box.set_mode("all")
    full = w.analysis.full()
    qtbot.waitUntil(lambda: _settled(p, full), timeout=TIMEOUT)
    _check(p, w.session, *full)
    bar = p.bars.axis.names.index("Salamander4 VCPU0")
    labels = [sg.label for sg in p.bars.bars[bar]]
    assert any(t.startswith("VM exit: HLT") for t in labels) or any(t.startswith("halted") for t in labels)
    assert sum(t.startswith("VM exit: ") for t in labels) >= 3  # APIC_WRITE, EPT_MISCONFIG, ...
    texts = {p.table.item(r, 3).text() for r in range(p.table.rowCount())}
    assert "APIC_WRITE" in texts


def test_worker_newest_request_wins_caches_and_reports_errors(qtbot):
    """The panels' worker: a range superseded while it computes is dropped, a range seen before
    is answered from the cache without running, an exception becomes a message."""
    from kshark_py.ui.analysisrange import Worker

    w = Worker()
    got, failed = [], []
    w.ready.connect(lambda k, r: got.append((k, r)))
    w.failed.connect(lambda k, m: failed.append((k, m)))
    gate = threading.Event()
    w.submit("old", lambda: gate.wait(10) and "old result")
    w.submit("new", lambda: "new result")
    gate.set()
    qtbot.waitUntil(lambda: bool(got) and not w.busy, timeout=10_000)
    qtbot.wait(50)
    assert got == [("new", "new result")]
    w.submit("new", lambda: 1 / 0)  # cached: not run again
    assert got[-1] == ("new", "new result") and not failed
    w.submit("bad", lambda: 1 / 0)
    qtbot.waitUntil(lambda: bool(failed), timeout=10_000)
    assert failed == [("bad", "ZeroDivisionError: division by zero")] and not w.busy
