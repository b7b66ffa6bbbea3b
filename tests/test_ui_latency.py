"""Analysis > Latency plot in the app: the dialog and its presets, the histogram, the worst pairs,
the boxes on the rows, the jump.

Pairs are checked against a plain walk written here (KernelShark's rule: per key, the last start
seen waits for the next end of its key).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from PySide6 import QtCore, QtWidgets

from kshark_py.model.columns import event_columns
from kshark_py.ui.arrowtable import us_text
from kshark_py.ui.latencyplot import PRESETS, LatencyDialog, LatencyRequest

from .support.gui import menu_action, open_window


def walk_pairs(session, si: int, start: str, end: str, sfield: str, efield: str,
               by_cpu: bool = False) -> list[tuple[int, int, int]]:
    """[(start ts, end ts, end row)] by a loop over the stream's records in order (``by_cpu``: the
    record's CPU must match too)."""
    buf = session.streams[si].buffer
    ts = buf.events.column("ts").to_numpy()
    pid = buf.events.column("pid").to_numpy()
    cpu = buf.events.column("cpu").to_numpy()

    def keyed(name, field):
        rows, f = event_columns(buf, name, [] if field == "common_pid" else [field])
        return rows, (pid[rows] if field == "common_pid" else f[field])

    recs = {}
    for kind, (rows, keys) in (("s", keyed(start, sfield)), ("e", keyed(end, efield))):
        for r, k in zip(rows.tolist(), np.asarray(keys).tolist(), strict=True):
            recs.setdefault(r, []).append((kind, (k, int(cpu[r])) if by_cpu else k))
    pending: dict = {}
    out = []
    for r in sorted(recs):
        for kind, k in sorted(recs[r], key=lambda x: x[0] != "e"):  # an end before a start at one record
            if kind == "s":
                pending[k] = int(ts[r])
            elif k in pending:
                out.append((pending.pop(k), int(ts[r]), r))
    return out


def accept(dlg: LatencyDialog) -> None:
    dlg.findChild(QtWidgets.QDialogButtonBox).button(QtWidgets.QDialogButtonBox.StandardButton.Ok).click()


def test_dialog_presets_follow_the_trace(qtbot, traces):
    w = open_window(qtbot, traces / "host-sched-v7.dat")
    dlg = LatencyDialog(w.session, w)
    qtbot.addWidget(dlg)
    # the first preset this trace can answer is chosen: IRQ handler by irq
    assert dlg.request() == LatencyRequest("irq:irq_handler_entry", "irq:irq_handler_exit", (("irq", "irq"),))
    texts = [dlg.preset.itemText(i) for i in range(dlg.preset.count())]
    kvm = next(t for t in texts if t.startswith("VM exit"))
    assert kvm.endswith("(not in this trace)")
    assert not next(t for t in texts if t.startswith("IRQ")).endswith("(not in this trace)")
    # fields offered for the chosen events: their own and the record's pid and CPU
    assert [dlg.start_field.itemText(i) for i in range(dlg.start_field.count())] == \
        ["irq", "name", "common_pid", "common_cpu"]
    # a field the end event lacks is refused with a sentence, the dialog stays open
    dlg.matches.addItem("irq = vec")
    accept(dlg)
    assert dlg.result_request is None and "has no field 'vec'" in dlg.error.text()
    dlg.end.setCurrentText("irq:no_such_event")
    accept(dlg)
    assert "no_such_event" in dlg.error.text()


def test_irq_latency_panel(qtbot, traces):
    w = open_window(qtbot, traces / "host-sched-v7.dat")
    walk = walk_pairs(w.session, 0, "irq_handler_entry", "irq_handler_exit", "irq", "irq")
    assert len(walk) > 10
    dlg = LatencyDialog(w.session, w)
    qtbot.addWidget(dlg)
    accept(dlg)
    p = w.latency_tools.show_latency(dlg.result_request)
    lats = sorted((e - s for s, e, _ in walk), reverse=True)
    assert f"{len(walk):,} pairs" in p.summary.text() and f"max {us_text(lats[0])} µs" in p.summary.text()
    edges, counts = p.histogram
    assert counts.sum() == len(walk) and edges[0] == lats[-1] and edges[-1] == lats[0]
    assert p.bars is not None
    # worst N, longest first
    assert p.model.rowCount() == min(len(walk), p.count.value())
    assert [p.model.text(i, 0) for i in range(5)] == [us_text(x) for x in lats[:5]]
    p.count.setValue(3)
    assert p.model.rowCount() == 3
    # the dock says what is paired
    assert w.latency_tools.docks["latency"].windowTitle() == "Latency: irq_handler_entry -> irq_handler_exit by irq"


def test_click_pair_jumps_and_boxes_show(qtbot, traces):
    w = open_window(qtbot, traces / "host-sched-v7.dat")
    menu = menu_action(w, "Analysis", "Latency plot...")
    assert menu is not None
    p = w.latency_tools.show_latency(LatencyRequest("irq:irq_handler_entry", "irq:irq_handler_exit",
                                                    (("irq", "irq"),)))
    walk = walk_pairs(w.session, 0, "irq_handler_entry", "irq_handler_exit", "irq", "irq")
    s, e, erow = max(walk, key=lambda x: (x[1] - x[0], -x[0]))
    rect = p.table.visualRect(p.model.index(0, 1))
    qtbot.mouseClick(p.table.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=rect.center())
    w.timeline.redraw()
    t0, t1 = w.timeline.view_range()
    assert t0 <= s and e <= t1 and t1 - t0 <= max(5 * (e - s), 20_000) + 2_000
    assert w.markers.times == {"A": s, "B": e}
    m = w.event_list.current_merged_index()
    assert int(w.session.merged().row[m]) == erow
    cpu = int(w.session.streams[0].buffer.events.column("cpu")[erow].as_py())
    row = next(i for i, r in enumerate(w.model.rows) if r.kind == "cpu" and r.cpu == cpu)
    assert row in w.latency_tools.latency_layer.drawn()
    npix = w.timeline.last.npix
    x0 = int(np.floor((s - t0) * npix / (t1 - t0)))
    x1 = int(np.ceil((e - t0) * npix / (t1 - t0)))
    assert (x0, x1) in w.latency_tools.latency_layer.drawn()[row]
    # the other CPU row frames only its own pairs
    other = next(i for i, r in enumerate(w.model.rows) if r.kind == "cpu" and r.cpu != cpu)
    buf = w.session.streams[0].buffer
    on_other = [x for x in walk if int(buf.events.column("cpu")[x[2]].as_py()) != cpu and t0 <= x[0] <= t1]
    assert bool(on_other) == (other in w.latency_tools.latency_layer.drawn())
    p.boxes.setChecked(False)
    w.timeline.redraw()
    assert w.latency_tools.latency_layer.box_count() == 0


def test_vm_exit_preset_by_host_thread(qtbot, traces):
    """A real KVM host (external/doc-test): kvm_exit -> kvm_entry of the same host thread."""
    w = open_window(qtbot, traces / "external" / "doc-test" / "trace.dat")
    preset = next(pr for pr in PRESETS if pr.start == "kvm:kvm_exit")
    p = w.latency_tools.show_latency(LatencyRequest(preset.start, preset.end, preset.match))
    walk = walk_pairs(w.session, 0, "kvm_exit", "kvm_entry", "common_pid", "common_pid")
    assert len(walk) > 1000
    assert f"{len(walk):,} pairs" in p.summary.text()
    assert p.model.text(0, 0) == us_text(max(e - s for s, e, _ in walk))
    # every pair is framed on its thread's row once that task row is shown
    pid = int(w.session.streams[0].buffer.events.column("pid")[walk[0][2]].as_py())
    w.add_task_row(0, pid)
    w.timeline.zoom_to_fit()
    row = next(i for i, r in enumerate(w.model.rows) if r.kind == "task" and r.pid == pid)
    w.timeline.ensure_rows_visible([row])
    w.timeline.redraw()
    spans = w.latency_tools.latency_layer.drawn()[row]
    assert 0 < len(spans) <= w.timeline.last.npix


def test_change_reopens_dialog_with_the_request(qtbot, traces, monkeypatch):
    w = open_window(qtbot, traces / "host-sched-v7.dat")
    req = LatencyRequest("irq:softirq_entry", "irq:softirq_exit", (("vec", "vec"),))
    p = w.latency_tools.show_latency(req)
    seen = []

    def fake_exec(dlg):
        seen.append(dlg.request())
        return 0

    monkeypatch.setattr(LatencyDialog, "exec", fake_exec)
    p.change.click()
    assert seen == [req]
    walk = walk_pairs(w.session, 0, "softirq_entry", "softirq_exit", "vec", "vec")
    assert f"{len(walk):,} pairs" in p.summary.text()
    counts = defaultdict(int)
    for s, e, _ in walk:
        counts[e - s] += 1
    assert p.model.text(0, 0) == us_text(max(counts))


def test_range_follows_view_and_markers(qtbot, traces):
    w = open_window(qtbot, traces / "host-sched-v7.dat")
    p = w.latency_tools.show_latency(LatencyRequest("irq:softirq_entry", "irq:softirq_exit",
                                                    (("vec", "vec"), ("common_cpu", "common_cpu"))))
    assert p.range_box.mode == "all"
    p.range_box.set_mode("markers")
    assert "set markers A and B" in p.summary.text()
    walk = walk_pairs(w.session, 0, "softirq_entry", "softirq_exit", "vec", "vec", by_cpu=True)
    t = w.session.merged().ts
    a, b = int(t.min()), int(t.min()) + (int(t.max()) - int(t.min())) // 4
    w.set_marker("A", a)
    w.set_marker("B", b)
    inside = [x for x in walk if x[0] >= a and x[1] <= b]
    qtbot.waitUntil(lambda: f"{len(inside):,} pairs" in p.summary.text(), timeout=3000)
    assert p.histogram[1].sum() == len(inside)
    assert p.model.text(0, 0) == us_text(max(e - s for s, e, _ in inside))
    # the graph's view: zooming recomputes (debounced)
    p.range_box.set_mode("view")
    w.timeline.set_range(a, (a + b) // 2)
    t0, t1 = w.timeline.view_range()
    seen = [x for x in walk if x[0] >= t0 and x[1] <= t1]
    qtbot.waitUntil(lambda: p.histogram[1].sum() == len(seen), timeout=3000)


def test_time_offset_pairs_again(qtbot, traces):
    """vm-tsync: a time offset moves the guest's pairs with its stream; a closed dock stays closed."""
    d = traces / "vm-tsync"
    w = open_window(qtbot, d / "trace.dat", d / "trace-vmguest.dat")
    gi = next(st.index for st in w.session.streams if st.role == "guest")
    p = w.latency_tools.show_latency(LatencyRequest("irq:irq_handler_entry", "irq:irq_handler_exit",
                                                    (("irq", "irq"),)))
    guest = p.all.filter(np.asarray(p.all.column("stream").to_numpy() == gi))
    before = guest.column("start_ts").to_numpy().copy()
    assert len(before) > 0
    w.latency_tools.docks["latency"].close()
    w.set_time_offset(gi, 2_000_000)
    after = p.all.filter(np.asarray(p.all.column("stream").to_numpy() == gi)).column("start_ts").to_numpy()
    assert (after == before + 2_000_000).all()
    assert not w.latency_tools.docks["latency"].isVisible()


def test_pairs_across_dropped_events_are_marked(qtbot, traces):
    """On a trace that lost events, the worst pairs say which span a loss (their real end may be lost)."""
    from kshark_py.model.analysis.latency import latency_pairs

    w = open_window(qtbot, traces / "host-lost-events.dat")
    req = LatencyRequest("sched:sched_waking", "sched:sched_switch", (("pid", "next_pid"),))
    p = w.latency_tools.show_latency(req)
    p.count.setValue(200)
    lat = latency_pairs(w.session, req.start, req.end, list(req.match))
    o = np.argsort(-lat.column("latency_ns").to_numpy(), kind="stable")[:200]
    flags = lat.column("across_loss").to_numpy(zero_copy_only=False)[o]
    assert 0 < flags.sum() < len(flags)
    headers = [p.model.headerData(c, QtCore.Qt.Orientation.Horizontal) for c in range(p.model.columnCount())]
    col = headers.index("Across loss")
    shown = [p.model.text(i, col) for i in range(p.model.rowCount())]
    assert shown.count("yes") == int(flags.sum()) and set(shown) == {"yes", ""}
