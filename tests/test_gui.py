"""The desktop app, offscreen: open the demo, zoom, pan, click a VCPU row, markers, sessions."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from kshark_py.model.loading import load_session
from kshark_py.model.sessionfile import SessionFileError, load_session_file, save_session
from kshark_py.ui.app import DEMO_SESSION, build_window

from .support.gui import click, open_window, time_at, vpos


@pytest.fixture
def demo(qtbot):
    state = load_session_file(DEMO_SESSION)
    return open_window(qtbot, *state.files, vcpu_map=state.vcpu_map, state=state, size=(1400, 900))


def test_demo_rows_and_pairs(demo):
    kinds = [r.kind for r in demo.model.rows]
    assert kinds == ["cpu", "cpu", "vcpu_host", "vcpu_state", "vcpu_guest"]
    host_row = demo.model.rows[2]
    assert host_row.pid == 27186 and host_row.guest == "vmguest"
    assert demo.timeline.row_axis.labels[0] == "host CPU 0"
    res = demo.timeline.last
    assert res is not None and res.npix == demo.timeline.pixel_width()
    # the host VCPU thread's own row is drawn in the same colour as its runs on host CPU rows
    dom = res.dominant
    assert (dom[2][dom[2] >= 0] == 27186).all() and (dom[0] == 27186).any()
    assert demo.vcpu_panel.table.item(0, 2).text() == "27186"


def test_zoom_pan_are_bounded(demo, qtbot):
    t0, t1 = demo.timeline.view_range()
    full = t1 - t0
    demo.timeline.zoom(2.0)
    a0, a1 = demo.timeline.view_range()
    assert abs((a1 - a0) - full / 2) < full * 0.01
    for _ in range(200):  # far more zoom steps than the limit allows
        demo.timeline.zoom(2.0)
    b0, b1 = demo.timeline.view_range()
    assert b1 - b0 >= 999  # MIN_SPAN_NS
    demo.timeline.zoom_to_fit()
    demo.timeline.pan(0.25)
    c0, c1 = demo.timeline.view_range()
    assert c1 - c0 == pytest.approx(full, rel=0.05)
    for _ in range(50):
        demo.timeline.zoom(0.5)
    d0, d1 = demo.timeline.view_range()
    assert d1 - d0 <= full * 1.1
    # keys: + zooms in once per press, auto-repeat is ignored
    demo.timeline.zoom_to_fit()
    demo.timeline.setFocus()
    qtbot.keyClick(demo.timeline, QtCore.Qt.Key.Key_Plus)
    e0, e1 = demo.timeline.view_range()
    assert (e1 - e0) == pytest.approx(full / 2, rel=0.05)


def test_render_cost_follows_pixels(demo):
    """Rendering samples pixels: the result has one column per pixel whatever the zoom."""
    m = demo.model
    t = demo.session.merged().ts
    for npix in (100, 1000):
        r = m.render(int(t.min()), int(t.max()), npix)
        assert r.kind.shape == (len(m.rows) * 10, npix)
        # counts per column add up to the events of the row in the window
        cpu0 = m.rows[0].events.timestamps()
        assert r.counts[0].sum() == ((cpu0 >= r.t0) & (cpu0 < r.t1)).sum()


def test_click_vcpu_row_highlights_pair_and_host_runs(demo, qtbot):
    rows = demo.model.rows
    state_row = next(i for i, r in enumerate(rows) if r.kind == "vcpu_state")
    tl = demo.timeline
    t0, t1 = tl.view_range()
    tl.ensure_rows_visible([state_row])
    click(tl, vpos(tl, (t0 + t1) // 2, state_row + 0.5))
    assert demo.model.highlight_pid == (demo.session.host_stream.index, 27186)
    assert demo.timeline.highlight.isVisible()
    lo, hi = demo.timeline.highlight.getRegion()
    assert lo <= 2 and hi >= 4.5
    demo.timeline.redraw()
    dom = demo.timeline.last.dominant[0]
    alpha = demo.timeline.last.alpha[2 + 3]  # a body sub-row of host CPU 0
    mine, others = dom == 27186, (dom > 0) & (dom != 27186)
    assert mine.any() and others.any(), "host CPU 0 shows the VCPU thread and other tasks"
    assert alpha[mine].min() > alpha[others].max()
    # the reverse: clicking the VCPU thread on a host CPU row selects its pair
    demo.clear_highlight()
    assert demo.model.highlight_pid != (demo.session.host_stream.index, 27186)
    iv = rows[0].intervals
    k = int(np.argmax(np.where(iv.key == 27186, iv.end - iv.start, -1)))  # the thread's longest run on CPU 0
    s, e = int(iv.start[k]), int(iv.end[k])
    tl.set_range(s - (e - s), e + (e - s))
    tl.ensure_rows_visible([0])
    QtCore.QCoreApplication.processEvents()
    pos = vpos(tl, (s + e) // 2, 0.5)
    assert iv.at(np.array([time_at(tl, pos)]))[0] == 27186, "the click lands on the VCPU thread"
    click(tl, pos)
    assert demo.model.highlight_pid == (demo.session.host_stream.index, 27186)


def test_markers_and_session_round_trip(demo, tmp_path, qtbot):
    t0, t1 = demo.timeline.view_range()
    demo.set_marker("A", t0 + 1000)
    demo.markers.b.setChecked(True)
    demo.set_marker("B", t0 + 2_501_000)
    assert demo.markers.delta.text() == "Δ(B-A): 2,500.000 µs"
    demo.timeline.zoom(4.0)
    demo.add_task_row(demo.session.host_stream.index, 27186)
    out = tmp_path / "s.json"
    save_session(demo.session_state(), out)
    st = load_session_file(out)
    assert st.markers == {"A": t0 + 1000, "B": t0 + 2_501_000} and st.active_marker == "B"
    assert st.vcpu_map == {"vmguest": {0: 27186}}
    res = load_session(st.files, st.vcpu_map)
    w2 = build_window(res, st.files, st.vcpu_map, st)
    qtbot.addWidget(w2)
    assert w2.markers.times == {"A": t0 + 1000, "B": t0 + 2_501_000}
    assert any(r.kind == "task" and r.pid == 27186 for r in w2.model.rows)
    r0, r1 = w2.timeline.view_range()
    assert abs((r1 - r0) - (t1 - t0) / 4) < (t1 - t0) * 0.01


def test_bad_session_file(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"type": "something else"}')
    with pytest.raises(SessionFileError):
        load_session_file(p)
    r = subprocess.run([sys.executable, "-m", "kshark_py.cli", "--session", str(p), "--screenshot",
                        str(tmp_path / "o.png")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "session" in r.stderr


def test_screenshot_command(tmp_path, traces):
    out = tmp_path / "shot.png"
    r = subprocess.run([sys.executable, "-m", "kshark_py.cli", "-i", str(traces / "host-small-v7.dat"),
                        "--screenshot", str(out)], capture_output=True, text=True, timeout=120,
                       env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert r.returncode == 0, r.stderr
    from PySide6 import QtGui

    img = QtGui.QImage(str(out))
    assert img.width() >= 1000 and img.height() >= 600
    # the timeline drew task colours (many distinct ones), not just widgets and background
    colors = {img.pixel(x, y) for x in range(0, img.width(), 5) for y in range(0, img.height() // 2, 5)}
    assert len(colors) > 40


def test_filters_apply_to_graph_and_list(demo):
    """Hiding the host's sched_switch events removes their ticks from the host CPU rows and their
    rows from the list; clearing restores both."""
    host = demo.session.host_stream
    ev = host.trace.formats.find("sched_switch", "sched")
    t = host.buffer.events
    n_sw_cpu0 = int(((t.column("event_id").to_numpy() == ev.id) & (t.column("cpu").to_numpy() == 0)).sum())
    before = len(demo.model.rows[0].events)
    rows_before = demo.event_list.model.rowCount()
    demo.filters.add(host.index, "event", "hide", ev.id)
    assert len(demo.model.rows[0].events) == before - n_sw_cpu0
    assert demo.event_list.model.rowCount() == rows_before - int((t.column("event_id").to_numpy() == ev.id).sum())
    demo.filters.clear()
    assert len(demo.model.rows[0].events) == before
    assert demo.event_list.model.rowCount() == rows_before


def test_list_selection_sets_marker_and_double_click_selects(demo, qtbot):
    m = demo.session.merged()
    i = len(m) // 2
    demo.event_list.select_merged_index(i, emit=True)  # as a click on the list row
    assert demo.markers.times["A"] == int(m.ts[i])
    tl = demo.timeline
    tl.set_range(int(m.ts[i]) - 100_000, int(m.ts[i]) + 100_000)
    tl.ensure_rows_visible([0])
    QtCore.QCoreApplication.processEvents()
    click(tl, vpos(tl, int(m.ts[i]) + 1, 0.5), double=True)
    cur = demo.event_list.current_merged_index()
    assert cur is not None and abs(int(m.ts[cur]) - int(m.ts[i])) < 1_000_000


def test_vcpu_map_dialog_adds_pairs(qtbot, traces):
    """The vm/ pair was recorded over TCP: the host records -1 for both VCPUs, so the window starts
    without VCPU pairs; giving the thread ids in the dialog adds them (source: user)."""
    from kshark_py.ui.panels import VcpuMapDialog

    paths = [str(traces / "vm/trace.dat"), str(traces / "vm/trace-vmguest.dat")]
    res = load_session(paths)
    w = build_window(res, paths)
    qtbot.addWidget(w)
    assert not any(r.kind == "vcpu_host" for r in w.model.rows)
    dlg = VcpuMapDialog(w.session, w.vcpu_map, w.names, w)
    dlg.fields[("vmguest", 0)].setCurrentText("16748 qemu-system-x86")
    dlg.fields[("vmguest", 1)].setCurrentText("16749")
    qtbot.mouseClick(dlg.buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Ok), QtCore.Qt.MouseButton.LeftButton)
    assert dlg.result_map == {"vmguest": {0: 16748, 1: 16749}}
    w.set_user_vcpu_map(dlg.result_map)
    hosts = [(r.vcpu, r.pid) for r in w.model.rows if r.kind == "vcpu_host"]
    assert hosts == [(0, 16748), (1, 16749)]
    assert w.vcpu_panel.table.item(1, 4).text() == "user"
    st = w.session_state()
    assert st.vcpu_map == {"vmguest": {0: 16748, 1: 16749}}
    bad = VcpuMapDialog(w.session, [], w.names, w)
    bad.fields[("vmguest", 0)].setCurrentText("not-a-pid")
    qtbot.mouseClick(bad.buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Ok), QtCore.Qt.MouseButton.LeftButton)
    assert "not a pid" in bad.error.text() and bad.result_map == {}


def test_load_progress_is_per_block_and_cancel_stops_mid_decode(traces, monkeypatch):
    """Progress arrives for every decoded block (file bytes, rising to the total) and a cancel
    raised from it stops the decode; the file then loads again from scratch."""
    monkeypatch.setenv("KSHARK_PY_NO_CACHE", "1")  # decoding is under test: no re-open from the load cache
    import os
    import threading

    from kshark_py.model.loading import Cancelled

    path = str(traces / "host-sched-v7.dat")
    calls = []
    res = load_session([path], progress=lambda d, t, m: calls.append((d, t, m)))
    decoding = [c for c in calls if c[2].startswith("decoding")]
    cpus_with_data = sum(1 for st in res.session.streams[0].buffer.stats if st.events)
    assert len(decoding) >= 1 + cpus_with_data  # the stage, then one call per block (>= one per CPU)
    done = [d for d, _, _ in calls]
    assert done == sorted(done) and calls[-1][0] == calls[-1][1] == os.path.getsize(path)

    cancel = threading.Event()

    def cancel_at_first_block(d, t, m):
        if m.startswith("decoding") and d > 0:
            cancel.set()

    with pytest.raises(Cancelled):
        load_session([path], progress=cancel_at_first_block, cancel=cancel)
    again = load_session([path])
    assert len(again.session.streams[0].buffer.events) == len(res.session.streams[0].buffer.events)


def test_new_window_fits_the_screen(qtbot, traces):
    """Without a window manager nothing shrinks a window: its first size must fit the free screen area."""
    from PySide6 import QtGui

    res = load_session([str(traces / "host-small-v7.dat")], None)
    w = build_window(res, [str(traces / "host-small-v7.dat")], None, None)
    qtbot.addWidget(w)
    free = QtGui.QGuiApplication.primaryScreen().availableGeometry()
    assert free.width() < 1500  # the offscreen platform's screen (800x600) is smaller than the preferred size
    assert w.width() <= free.width() and w.height() <= free.height()


def test_view_state_drives_the_widgets_and_follows_the_user(demo, qtbot):
    """The window's ViewState is what the graph, the marker bar and the analysis panels show: set
    through it, they follow; moved by the user, it follows; a session is saved from it."""
    from kshark_py.plots.axes import seconds_text

    v, tl = demo.view, demo.timeline
    assert v.range == tl.view_range()
    t0, t1 = v.range
    a, b = t0 + (t1 - t0) // 4, t0 + (t1 - t0) // 2
    v.set_range(a, b)  # the model moves: the graph, its axis and the panels' range follow
    assert tl.view_range() == (a, b) and demo.analysis.view == (a, b)
    assert f"start {seconds_text(a, 6)} s" in tl.time_axis.labelText
    tl.zoom(2.0)  # the user moves the graph: the state follows
    assert v.range == tl.view_range() != (a, b) and demo.analysis.view == v.range
    v.set_marker("B", a + 5000)
    assert tl.markers["B"].isVisible() and round(tl.markers["B"].value() * 1e9) == a + 5000
    assert demo.markers.b_label.text() == seconds_text(a + 5000, 9) and demo.analysis.markers["B"] == a + 5000
    demo.markers.b.setChecked(True)  # the user picks marker B: the state says so...
    assert v.active_marker == "B"
    v.set_active_marker("A")  # ...and the other way round
    assert demo.markers.a.isChecked() and demo.markers.active == "A"
    v.set_highlight(("vmguest", 0))
    assert tl.highlight.isVisible() and demo.model.highlight_pid == (demo.session.host_stream.index, 27186)
    demo.add_task_row(demo.session.host_stream.index, 27180)  # new rows: the highlight's indices are stale
    assert v.highlight is None and not tl.highlight.isVisible()
    st = demo.session_state()
    assert st.range == v.range and st.markers.get("B") == a + 5000 and st.active_marker == "A"


def test_session_keeps_the_highlighted_pair(demo, tmp_path, qtbot):
    """The highlighted VCPU pair is part of the view state a session saves (under "kshark-py", a key
    KernelShark ignores); reopening the session highlights it again."""
    import json

    demo.highlight_pair("vmguest", 0)
    out = tmp_path / "s.json"
    save_session(demo.session_state(), out)
    assert json.loads(out.read_text())["kshark-py"]["highlighted pair"] == ["vmguest", 0]
    st = load_session_file(out)
    assert st.highlight == ("vmguest", 0)
    w2 = build_window(load_session(st.files, st.vcpu_map), st.files, st.vcpu_map, st)
    qtbot.addWidget(w2)
    assert w2.view.highlight == ("vmguest", 0) and w2.timeline.highlight.isVisible()
    assert w2.model.highlight_pid == (w2.session.host_stream.index, 27186)
    demo.clear_highlight()
    save_session(demo.session_state(), out)
    assert "highlighted pair" not in json.loads(out.read_text())["kshark-py"]
    assert load_session_file(out).highlight is None
