"""Side panels and small dialogs of the window, offscreen, asserting on what the user sees."""

from __future__ import annotations

import pytest
from PySide6 import QtWidgets

from kshark_py.model.loading import load_session
from kshark_py.ui.app import build_window
from kshark_py.ui.panels import UNMAPPED, parse_task_choice


def _window(qtbot, paths, size=(1400, 900)):
    paths = [str(p) for p in paths]
    w = build_window(load_session(paths), paths)
    qtbot.addWidget(w)
    w.resize(*size)
    w.show()
    qtbot.waitExposed(w)
    return w


@pytest.fixture
def two_guests(qtbot, traces):
    d = traces / "vm-2guests"
    return _window(qtbot, [d / "trace.dat", d / "trace-vmguestA.dat", d / "trace-vmguestB.dat"], (1024, 700))


def test_add_task_row_typed_text_shows_a_message(qtbot, traces, monkeypatch):
    """The chooser is editable: typed text that names no task gives a message box, not a traceback."""
    w = _window(qtbot, [traces / "host-lost-events.dat"])
    shown: list[str] = []
    monkeypatch.setattr(QtWidgets.QMessageBox, "warning", lambda _p, _t, text, *a, **k: shown.append(text))
    rows = len(w.model.rows)
    for typed in ("no such task", "12x", "99999999", ""):
        monkeypatch.setattr(QtWidgets.QInputDialog, "getItem", lambda *a, typed=typed, **k: (typed, True))
        w.add_task_dialog()
    assert len(shown) == 4 and len(w.model.rows) == rows
    assert "No task named 'no such task'" in shown[0] and "PID 99999999" in shown[2]
    # a listed item, a typed PID and a typed NAME-PID all add the row
    items = []

    def pick(_p, _t, _l, choices, *a, **k):
        items.extend(choices)
        return choices[3], True

    monkeypatch.setattr(QtWidgets.QInputDialog, "getItem", pick)
    w.add_task_dialog()
    pid = int(items[3].rsplit("-", 1)[1])
    assert [r.pid for r in w.model.rows if r.kind == "task"] == [pid]
    name = w.names(0, pid)
    assert parse_task_choice(str(pid), w.session, w.names) == (0, pid)
    assert parse_task_choice(f"{name}-{pid}", w.session, w.names) == (0, pid)
    assert len(shown) == 4


def test_unmapped_vcpu_tells_a_gui_user_what_to_do(qtbot, traces):
    w = _window(qtbot, [traces / "vm/trace.dat", traces / "vm/trace-vmguest.dat"])  # TCP: host records -1
    t = w.vcpu_panel.table
    col = w.vcpu_panel.HEADERS.index("Source")
    texts = [t.item(r, col).text() for r in range(t.rowCount())]
    assert texts == [UNMAPPED, UNMAPPED] and "--vcpu-map" not in " ".join(texts)
    assert "Edit VCPU map" in t.item(0, col).toolTip()
    assert w.vcpu_panel.edit.text() == "Edit VCPU map..."


def test_sync_plot_one_colour_per_vcpu_and_legend_outside(two_guests):
    p = two_guests.sync_panel
    names = [n for n, _ in p.lines]
    assert len(names) >= 2 and len({n.split()[0] for n in names}) == 2  # both guests plotted
    colours = {item.opts["pen"].color().name() for _, item in p.lines}
    assert len(colours) == len(p.lines)
    assert p.plot.plotItem.legend is None  # nothing drawn over the data
    assert p.legend.isVisible() and all(n in p.legend.text() for n in names)
    plot_rect = p.plot.geometry()
    assert not plot_rect.intersects(p.legend.geometry())


def test_host_only_trace_hides_vcpu_and_sync_docks(qtbot, traces, two_guests):
    w = _window(qtbot, [traces / "host-lost-events.dat"])
    assert [d.isVisible() for d in w.docks] == [False, False]
    assert [d.isVisible() for d in two_guests.docks] == [True, True]


def test_search_box_keeps_a_usable_width_at_1024x700(two_guests):
    """Two guests: the VCPU map and time-sync docks take their share; the search box stays wide."""
    w = two_guests
    assert w.width() == 1024  # the bar does not force the window wider either
    sb = w.event_list.search_bar
    assert sb.text.width() >= 180
    assert sb.geometry().right() <= w.event_list.width()


def test_vcpu_map_warnings_do_not_send_gui_users_to_the_command_line(traces):
    from kshark_py.model.vcpus import build_vcpu_map

    paths = [str(traces / "vm/trace.dat"), str(traces / "vm/trace-vmguest.dat")]
    session = load_session(paths).session
    session.warnings.clear()
    build_vcpu_map(session, {"nosuch": {0: 1}, "vmguest": {7: 1}})
    assert session.warnings == ["guest 'vmguest': the VCPU map names VCPUs [7] it does not have",
                                "the VCPU map names guest 'nosuch', which is not loaded"]


def test_sync_panel_names_a_user_time_offset(qtbot, traces):
    """vm/ has no time sync: the panel says the guest stays on its clock until the user shifts it,
    then that it was moved by the user's offset (not by TIME_SHIFT samples)."""
    w = _window(qtbot, [str(traces / "vm" / "trace.dat"), str(traces / "vm" / "trace-vmguest.dat")])
    assert "events stay on the guest clock" in w.sync_panel.info.text()
    guest = next(st.index for st in w.session.streams if st.guest is not None)
    w.set_time_offset(guest, 2_848_872_632_049)
    text = w.sync_panel.info.text()
    assert "moved by the user's time offset (+2848.872632049 s)" in text
    assert "stay on the guest clock" not in text
