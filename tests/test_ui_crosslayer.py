"""Cross-layer latency, offscreen on the vm-tsync pair: from a guest task row's context menu and from
a selected wakeup, the panel shows the model's split as a table, a bar and a sentence; a click
frames a piece's intervals on the task's row."""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtWidgets

from kshark_py.model.analysis.crosslayer import cross_layer, explain_wakeup
from kshark_py.model.analysis.wakeups import wakeups
from kshark_py.model.loading import load_session
from kshark_py.ui.analysisrange import ms_text
from kshark_py.ui.app import build_window
from kshark_py.ui.crosslayer import ordered, sentence
from kshark_py.ui.wakeuppanel import wakeup_at

TIMEOUT = 120_000


def _window(qtbot, traces):
    d = traces / "vm-tsync"
    paths = [str(d / "trace.dat"), str(d / "trace-vmguest.dat")]
    user = {"vmguest": {0: 27186}}  # vcpu-threads.json: the host file records -1 (a TCP guest)
    w = build_window(load_session(paths, user), paths, user)
    qtbot.addWidget(w)
    w.resize(1500, 950)
    w.show()
    qtbot.waitExposed(w)
    return w


def _shown(p) -> list[tuple[str, str, int]]:
    """The table as the user reads it: (state, detail, ns) per row, in row order."""
    return [(p.table.item(r, 0).text(), p.table.item(r, 1).text(), p.table.item(r, 2).value)
            for r in range(p.table.rowCount())]


def _expected(t) -> list[tuple[str, str, int]]:
    t = ordered(t)
    return [(r["state"], r["detail"] or "", r["total_ns"]) for r in t.to_pylist()]


def test_explain_guest_task_from_row_menu_and_wakeup(qtbot, traces, monkeypatch):
    w = _window(qtbot, traces)
    s = w.session
    g = s.stream_index("vmguest")
    wk = wakeups(s, [g])
    i = int(np.argmax(wk.column("latency_ns").to_numpy()))  # the guest's worst wakeup
    worst = wk.slice(i, 1).to_pylist()[0]
    pid = worst["pid"]

    table = w.latency_tools.show_wakeups()  # Analysis > Scheduling latency, open before the split's panel

    # the task row's context menu: between markers A and B
    w.add_task_row(g, pid)
    row = next(k for k, r in enumerate(w.model.rows) if r.kind == "task" and (r.stream, r.pid) == (g, pid))
    menu = w.timeline.row_menu(row)
    act = next(a for a in menu.actions() if a.text() == "Explain time between markers A and B")
    assert not act.isEnabled()  # no markers yet
    a, b = worst["waking_ts"] - 2_000_000, worst["switch_ts"] + 1_000_000
    w.set_marker("A", a)
    w.set_marker("B", b)
    menu = w.timeline.row_menu(row)
    act = next(x for x in menu.actions() if x.text() == "Explain time between markers A and B")
    assert act.isEnabled()
    act.trigger()
    p = w.vm_analyses.crosslayer
    qtbot.waitUntil(lambda: not p.worker.busy, timeout=TIMEOUT)
    assert p.result is not None, p.text.text()
    want = cross_layer(s, "vmguest", pid, a, b, vcpu_map=w.user_map)
    assert _shown(p) == _expected(want)
    assert sum(x[2] for x in _shown(p)) == b - a  # every ns of the wall time is in one piece
    assert p.text.text() == sentence(want, "between markers A and B", p.result.intervals)
    assert p.text.text().startswith(ms_text(b - a) + " between markers A and B: ")
    assert [sg.value for sg in p.bar.bars[0]] == [x[2] for x in _expected(want)]
    assert f"-{pid}" in p.title.text()

    # a click on a table row frames that piece's intervals on the task row
    qtbot.mouseClick(p.table.viewport(), QtCore.Qt.MouseButton.LeftButton,
                     pos=p.table.visualRect(p.table.model().index(0, 0)).center())
    w.timeline.redraw()
    row = next(k for k, r in enumerate(w.model.rows) if r.kind == "task" and (r.stream, r.pid) == (g, pid))
    assert row in p.marks.layer.drawn()

    # the guest's worst wakeup, selected in the list by its sched_waking
    lst = w.event_list
    m = w.model.merged_index(g, worst["waking_row"])
    lst.select_merged_index(m)
    assert w.vm_analyses.explain_selected_wakeup()
    qtbot.waitUntil(lambda: p.result is not None and p.result.what == "wakeup latency" and not p.worker.busy,
                    timeout=TIMEOUT)
    want = explain_wakeup(s, g, worst["waking_row"], vcpu_map=w.user_map)
    assert _shown(p) == _expected(want)
    assert sum(x[2] for x in _shown(p)) == worst["latency_ns"]
    assert p.text.text().startswith(f"{ms_text(worst['latency_ns'])} wakeup latency: ")

    # ... or by the sched_switch that ends it (where the scheduling latency table's jump puts the list)
    p.result = None
    lst.select_merged_index(w.model.merged_index(g, worst["switch_row"]))
    assert w.vm_analyses.explain_selected_wakeup()
    qtbot.waitUntil(lambda: p.result is not None and not p.worker.busy, timeout=TIMEOUT)
    assert (p.result.t0, p.result.t1) == (worst["waking_ts"], worst["switch_ts"])

    # a guest wakeup chosen in the scheduling latency table is explained there too
    second = int(np.argsort(wk.column("latency_ns").to_numpy())[-2])
    p.result = None
    table.wakeupChosen.emit(wakeup_at(wk, second))
    qtbot.waitUntil(lambda: p.result is not None and not p.worker.busy, timeout=TIMEOUT)
    chosen = wk.slice(second, 1).to_pylist()[0]
    assert (p.result.t0, p.result.t1) == (chosen["waking_ts"], chosen["switch_ts"])

    # the list's context menu on the guest's sched_waking offers the same; a host event's does not
    def explain_action(lst, stream, row):
        menu = lst.build_context_menu(w.model.merged_index(stream, row))
        return next((x for x in menu.actions() if x.text().startswith("Explain this wakeup")), None)

    p.result = None
    explain_action(lst, g, worst["waking_row"]).trigger()
    qtbot.waitUntil(lambda: p.result is not None and not p.worker.busy, timeout=TIMEOUT)
    assert (p.result.t0, p.result.t1) == (worst["waking_ts"], worst["switch_ts"])
    assert explain_action(lst, s.host_stream.index, 0) is None
    w.set_time_offset(g, 1000)  # a time offset builds a new event list: its menu still offers it
    assert w.event_list is not lst and explain_action(w.event_list, g, worst["waking_row"]) is not None
    lst = w.event_list

    # a host event: a message, no panel change
    said = []
    monkeypatch.setattr(QtWidgets.QMessageBox, "information", lambda _w, _t, text: said.append(text))
    h = s.host_stream.index
    lst.select_merged_index(w.model.merged_index(h, 0))
    assert not w.vm_analyses.explain_selected_wakeup()
    assert said and ("guest" in said[0])
