"""Analysis > VM exits, offscreen on real KVM traces: the panel shows the model's tables as they
are, and a click shows the worst exit on the graph and in the list."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
from PySide6 import QtCore

from kshark_py.model.analysis.exits import exit_stats, reason_histogram, top_rips, vm_exits
from kshark_py.ui.analysisrange import ms_text
from kshark_py.ui.exitspanel import TOP_RIPS, ExitsPanel, guest_text, rip_text

from .support.gui import open_window

TIMEOUT = 120_000


def _open(qtbot, w) -> ExitsPanel:
    p = w.vm_analyses.show_exits()
    qtbot.waitUntil(lambda: p.result is not None and not p.worker.busy, timeout=TIMEOUT)
    return p


def _table_rows(table) -> dict:
    """Each row as the user reads it: {(guest, vcpu, pid, reason): [cell texts]}, plus the values."""
    out = {}
    for r in range(table.rowCount()):
        cells = [table.item(r, c) for c in range(table.columnCount())]
        key = tuple(c.text() for c in cells[:4])
        out[key] = ([c.text() for c in cells[4:]], [c.value for c in cells[4:]], r)
    return out


def _check_stats(p: ExitsPanel, expected) -> None:
    rows = _table_rows(p.stats)
    assert len(rows) == expected.num_rows == p.stats.rowCount()
    for e in expected.to_pylist():
        key = (guest_text(e["guest"]), str(e["vcpu"]), str(e["host_pid"]), e["reason"])
        texts, values, _ = rows[key]
        nums = [e[c] for c in ("count", "total_ns", "p50_ns", "p99_ns", "max_ns")]
        assert values == nums
        assert texts == [f"{nums[0]:,}"] + [ms_text(v) for v in nums[1:]]


def _click_cell(qtbot, table, row: int, col: int = 0) -> None:
    idx = table.model().index(row, col)
    table.scrollTo(idx)
    qtbot.mouseClick(table.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=table.visualRect(idx).center())


def _click_bar(qtbot, chart, bar: int, x: float) -> None:
    vb = chart.getViewBox()
    scene = vb.mapViewToScene(QtCore.QPointF(x, bar))
    pos = chart.mapFromScene(scene)
    qtbot.mouseClick(chart.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=pos)


def test_exits_panel_tables_histogram_rips_and_jump(qtbot, traces):
    d = traces / "external" / "doc-test"
    w = open_window(qtbot, *[d / "trace.dat", d / "trace-Salamander4.dat"])
    p = _open(qtbot, w)
    s = w.session
    t0, t1 = w.analysis.full()
    assert (p.result.t0, p.result.t1) == (t0, t1)  # "Whole trace" is the default range
    exits = vm_exits(s, t0, t1, vcpu_map=w.user_map)
    assert exits.num_rows > 5000  # 5,860 kvm_exit records on the host
    _check_stats(p, exit_stats(s, t0, t1, vcpu_map=w.user_map))
    assert f"{exits.num_rows:,} VM exits" in p.summary.text()

    # the histogram: one bar per reason, most exits first, each as long as its count
    hist = reason_histogram(exits).sort_by([("count", "descending")])
    assert p.hist.axis.names == hist.column("reason").to_pylist()
    assert [b[0].value for b in p.hist.bars] == hist.column("count").to_pylist()
    assert "HLT" in p.hist.axis.names

    # guest RIPs with the most exits, symbolized from the guest file's kallsyms
    rips = top_rips(exits, TOP_RIPS)
    assert p.rips.rowCount() == rips.num_rows > 0
    seen = {(p.rips.item(r, 0).text(), p.rips.item(r, 1).text(), p.rips.item(r, 2).value, p.rips.item(r, 3).value)
            for r in range(p.rips.rowCount())}
    want = {(rip_text(r["guest_rip"]), r["rip_symbol"] or "", r["count"], r["total_ns"]) for r in rips.to_pylist()}
    assert seen == want

    # a click on a row: the worst exit of that VCPU and reason is centred, marked and listed
    rows = _table_rows(p.stats)
    key = next(k for k in rows if k[0] == "Salamander4" and k[3] == "EPT_MISCONFIG")
    _click_cell(qtbot, p.stats, rows[key][2], 3)
    sel = (pc.equal(exits.column("guest"), "Salamander4").to_numpy(zero_copy_only=False)
           & (exits.column("vcpu").to_numpy() == int(key[1]))
           & (np.asarray(exits.column("reason").to_pylist(), dtype=object) == "EPT_MISCONFIG"))
    i = int(np.flatnonzero(sel)[np.argmax(exits.column("duration_ns").to_numpy()[sel])])
    worst = exits.slice(i, 1).to_pylist()[0]
    assert worst["duration_ns"] == rows[key][1][4]  # the Max column
    v0, v1 = w.timeline.view_range()
    assert v0 <= worst["exit_ts"] < worst["entry_ts"] <= v1
    assert w.markers.times["A"] == worst["exit_ts"]
    st, row, ts, *_rest = w.event_list.model.event_fields(w.event_list.current_merged_index())
    assert (st, row, ts) == (s.host_stream.index, worst["exit_row"], worst["exit_ts"])
    assert w.event_list.model.event_name(st, _rest[2]) == "kvm_exit"
    w.timeline.redraw()
    drawn = p.marks.layer.drawn()
    state_row = next(k for k, r in enumerate(w.model.rows) if r.kind == "vcpu_state" and r.guest == "Salamander4")
    assert state_row in drawn
    px = (worst["exit_ts"] - v0) / (v1 - v0) * w.timeline.pixel_width()
    assert any(a <= px + 1 and b >= px for a, b in drawn[state_row])

    # a VM the files do not name (its threads are in the host file only): a click adds its thread's row
    unnamed = [k for k in rows if k[0] == "(unnamed VM)"]
    assert unnamed  # the host ran two more VMs (threads 453724, 453725) besides Salamander4
    key = max(unnamed, key=lambda k: rows[k][1][0])
    n_rows = len(w.model.rows)
    _click_cell(qtbot, p.stats, rows[key][2])
    assert len(w.model.rows) == n_rows + 1
    task = w.model.rows[-1]
    assert (task.kind, task.pid) == ("task", int(key[2]))
    w.timeline.redraw()
    assert len(w.model.rows) - 1 in p.marks.layer.drawn()
    assert state_row not in p.marks.layer.drawn()  # one group framed at a time

    # a click on a histogram bar: the worst exit of that reason
    bar = p.hist.axis.names.index("HLT")
    _click_bar(qtbot, p.hist, bar, p.hist.bars[bar][0].value / 2)
    hlt = np.asarray(exits.column("reason").to_pylist(), dtype=object) == "HLT"
    j = int(np.flatnonzero(hlt)[np.argmax(exits.column("duration_ns").to_numpy()[hlt])])
    assert w.markers.times["A"] == exits.column("exit_ts")[j].as_py()

    # markers A-B: the tables follow the markers
    a, b = t0 + (t1 - t0) // 3, t0 + (t1 - t0) // 2
    w.set_marker("A", a)
    w.set_marker("B", b)
    p.range_box.set_mode("markers")
    qtbot.waitUntil(lambda: (p.result.t0, p.result.t1) == (a, b) and not p.worker.busy, timeout=TIMEOUT)
    _check_stats(p, exit_stats(s, a, b, vcpu_map=w.user_map))


def test_host_file_without_kvm_exits_says_so(qtbot, traces):
    """host-kvm.dat holds kvm_pio, kvm_fpu... but no kvm_exit/kvm_entry: an empty table and a sentence."""
    w = open_window(qtbot, *[traces / "host-kvm.dat"])
    p = _open(qtbot, w)
    assert vm_exits(w.session).num_rows == 0
    assert p.stats.rowCount() == 0 and p.rips.rowCount() == 0 and p.hist.bars == []
    assert p.summary.text().startswith("No VM exits in this range")
