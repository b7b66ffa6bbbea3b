"""Analysis > Field plot in the app: a numeric field as its own row, min and max per pixel column.

What the row draws is checked against a plain loop over the records written here (each record
into the pixel column its time falls in, the column's smallest and largest value kept).
"""

from __future__ import annotations

import bisect

import numpy as np
from PySide6 import QtWidgets

from kshark_py.model.columns import event_columns
from kshark_py.ui.fieldplot import FieldPlotDialog

from .support.gui import menu_action, open_window


def records(session, si: int, event: str, field: str) -> list[tuple[int, int]]:
    buf = session.streams[si].buffer
    rows, f = event_columns(buf, event, [field])
    ts = buf.events.column("ts").to_numpy()
    return [(int(ts[r]), int(v)) for r, v in zip(rows.tolist(), f[field].tolist(), strict=True)]


def walk_columns(recs, t0: int, t1: int, npix: int) -> dict[int, tuple[int, int]]:
    """column -> (min, max) of the records in [t0, t1]; column k spans [edge k, edge k+1)."""
    edges = [t0 + (k * (t1 - t0)) // npix for k in range(npix + 1)]
    out: dict[int, tuple[int, int]] = {}
    for t, v in recs:
        if t0 <= t <= t1:
            k = min(bisect.bisect_right(edges, t) - 1, npix - 1)
            lo, hi = out.get(k, (v, v))
            out[k] = (min(lo, v), max(hi, v))
    return out


def field_row_index(w) -> int:
    return next(i for i, r in enumerate(w.model.rows) if r.kind == "field")


def test_menu_dialog_adds_the_row(qtbot, traces, monkeypatch):
    w = open_window(qtbot, traces / "host-sched-v7.dat")
    seen = {}

    def fake_exec(dlg):
        events = [dlg.event.itemText(i) for i in range(dlg.event.count())]
        seen["events"] = events
        dlg.select(0, "sched:sched_stat_runtime", "runtime")
        seen["fields"] = [dlg.field.itemText(i) for i in range(dlg.field.count())]
        dlg.findChild(QtWidgets.QDialogButtonBox).button(QtWidgets.QDialogButtonBox.StandardButton.Ok).click()
        return dlg.result()

    monkeypatch.setattr(FieldPlotDialog, "exec", fake_exec)
    before = len(w.model.rows)
    menu_action(w, "Analysis", "Field plot...").trigger()
    # the busiest event with a number comes first; strings (comm) are not offered
    assert seen["events"][0] == "sched:sched_stat_runtime" and "sched:sched_switch" in seen["events"]
    assert "runtime" in seen["fields"] and "comm" not in seen["fields"]
    assert len(w.model.rows) == before + 1
    row = w.model.rows[-1]
    assert row.kind == "field" and row.label == "host sched_stat_runtime.runtime"
    assert w.timeline.row_axis.labels[-1] == "host sched_stat_runtime.runtime"
    top, bottom = w.timeline.visible_rows()
    assert top <= len(w.model.rows) - 1 < bottom
    # its tick strip counts its records
    n = len(records(w.session, 0, "sched_stat_runtime", "runtime"))
    w.timeline.redraw()
    assert w.timeline.last.counts[len(w.model.rows) - 1 - w.timeline.last.first].sum() == n


def test_min_max_per_pixel_column(qtbot, traces):
    w = open_window(qtbot, traces / "host-sched-v7.dat")
    w.latency_tools.add_field_row(0, "sched:sched_stat_runtime", "runtime")
    recs = records(w.session, 0, "sched_stat_runtime", "runtime")
    w.timeline.redraw()
    i = field_row_index(w)
    res = w.timeline.last
    npix = res.npix
    want = walk_columns(recs, res.t0, res.t1, npix)
    col, lo, hi = w.latency_tools.field_layer.columns[i]
    assert len(col) <= npix
    assert {int(c): (int(a), int(b)) for c, a, b in zip(col, lo, hi, strict=True)} == want
    assert not w.latency_tools.field_layer.dots.size()  # zoomed out: no dots
    # the scale printed at the left edge: 0 .. the window's largest value
    assert w.latency_tools.field_layer.scales[0][2:] == (f"{max(v for _, v in recs) / 1e6:.3g}M", "0")
    # zoomed in on a few records: every record a dot, min == max per column
    t_mid = recs[len(recs) // 2][0]
    w.timeline.set_range(t_mid - 50_000, t_mid + 50_000)
    w.timeline.redraw()
    res = w.timeline.last
    inside = [r for r in recs if res.t0 <= r[0] <= res.t1]
    col, lo, hi = w.latency_tools.field_layer.columns[i]
    assert {int(c): (int(a), int(b)) for c, a, b in zip(col, lo, hi, strict=True)} == \
        walk_columns(recs, res.t0, res.t1, res.npix)
    assert w.latency_tools.field_layer.dots.size() == len(inside) > 0
    # pointing at a record says its value
    t, v = inside[len(inside) // 2]
    assert f"runtime = {v} at " in w.timeline.describe(i, t)


def test_remove_row_and_render_budget(qtbot, traces):
    w = open_window(qtbot, traces / "host-sched-v7.dat")
    w.latency_tools.show_wakeups()
    w.latency_tools.add_field_row(0, "sched:sched_stat_runtime", "runtime")
    w.timeline.zoom_to_fit()
    for _ in range(5):
        w.timeline.zoom(1.5)
        w.timeline.redraw()
    # with the field row and the wakeup boxes the render stays within the graph's budget
    assert np.median(w.timeline.render_ms[-5:]) < 100
    i = field_row_index(w)
    menu = w.timeline.row_menu(i)
    menu.actions()[0].trigger()
    assert all(r.kind != "field" for r in w.model.rows)
    w.timeline.redraw()
    assert w.latency_tools.field_layer.columns == {}


def test_guest_field_follows_time_offset(qtbot, traces):
    """vm-tsync: a guest field on the host clock; a time offset moves the row with its stream."""
    d = traces / "vm-tsync"
    w = open_window(qtbot, d / "trace.dat", d / "trace-vmguest.dat")
    gi = next(st.index for st in w.session.streams if st.role == "guest")
    row = w.latency_tools.add_field_row(gi, "sched_stat_runtime", "runtime")
    recs = records(w.session, gi, "sched_stat_runtime", "runtime")
    assert sorted(row.data.ts.tolist()) == sorted(t for t, _ in recs)
    assert row.label == f"{w.session.streams[gi].name} sched_stat_runtime.runtime"
    w.set_time_offset(gi, 1_000_000)
    moved = next(r for r in w.model.rows if r.kind == "field")
    assert sorted(moved.data.ts.tolist()) == sorted(t + 1_000_000 for t, _ in recs)


def test_a_field_that_is_not_a_number_is_refused(qtbot, traces, monkeypatch):
    w = open_window(qtbot, traces / "host-sched-v7.dat")
    said = []
    monkeypatch.setattr(QtWidgets.QMessageBox, "warning", lambda *a: said.append(a[2]))
    rows = len(w.model.rows)
    assert w.latency_tools.add_field_row(0, "sched:sched_switch", "prev_comm") is None
    assert len(w.model.rows) == rows and "not a number" in said[0]
    assert QtWidgets.QApplication.overrideCursor() is None  # the wait cursor is gone
