"""Tools > SQL console, offscreen on the real vm-tsync pair: the grid shows the query's result, a
click on a row with ``ts`` moves the marker, graph and list to that event, "Show on graph" frames
the rows, a bad query shows DuckDB's message."""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore

import kshark_py as ks
from kshark_py.ui.sqlconsole import SqlConsole

from .support.gui import open_window


def _open(w) -> SqlConsole:
    tools = next(a.menu() for a in w.menuBar().actions() if a.menu() and a.text().replace("&", "") == "Tools")
    action = next(a for a in tools.actions() if a.text().replace("&", "") == "SQL console")
    action.trigger()
    c = w.sql_console_dock.widget()
    assert w.sql_console_dock.isVisible()
    c.worker.sync = True
    return c


def _click(qtbot, view, row: int, col: int = 0) -> None:
    idx = view.model().index(row, col)
    view.scrollTo(idx)
    qtbot.mouseClick(view.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=view.visualRect(idx).center())


def test_console_query_click_and_graph(qtbot, traces):
    d = traces / "vm-tsync"
    w = open_window(qtbot, *[d / "trace.dat", d / "trace-vmguest.dat"])
    c = _open(w)
    q = ("SELECT ts, stream, cpu, comm, next_pid FROM sched_switch WHERE stream = 'vmguest' "
         "ORDER BY ts LIMIT 50 OFFSET 1000")
    c.run(q)
    want = ks.open(d / "trace.dat", d / "trace-vmguest.dat").fields("sched_switch")
    guest = want.filter(want.column("stream").cast("string").to_numpy(zero_copy_only=False) == "vmguest")
    want = guest.slice(1000, 50)
    m = c.grid.model()
    assert m.rowCount() == 50 and m.columnCount() == 5
    assert [m.headerData(i, QtCore.Qt.Orientation.Horizontal) for i in range(5)] == ["ts", "stream", "cpu", "comm",
                                                                                    "next_pid"]
    assert [m.data(m.index(r, 0)) for r in range(50)] == [str(v) for v in want.column("ts").to_pylist()]
    assert m.data(m.index(3, 3)) == want.column("comm")[3].as_py().decode()
    assert "50 rows" in c.status.text()

    # a click: the active marker at that time, the graph around it, the list on that very event
    _click(qtbot, c.grid, 7)
    ts = want.column("ts")[7].as_py()
    assert w.view.markers[w.view.active_marker] == ts
    t0, t1 = w.timeline.view_range()
    assert t0 <= ts <= t1
    mi = w.event_list.current_merged_index()
    mv = w.session.merged()
    assert int(mv.ts[mi]) == ts and w.session.streams[int(mv.stream[mi])].name == "vmguest"
    assert w.session.streams[int(mv.stream[mi])].buffer.events.column("event_id")[int(mv.row[mi])].as_py() == \
        w.session.streams[int(mv.stream[mi])].trace.formats.find("sched_switch").id

    # Show on graph: the guest's VCPU row framed with the 50 switches
    rows = c.show_on_graph()
    assert rows and all(w.model.rows[r].stream == 1 for r in rows)
    lane = next(iter(c.marks.lanes.values()))
    assert len(lane) == 50 and lane.start.tolist() == sorted(want.column("ts").to_pylist())
    assert "50 rows framed" in c.status.text()


def test_console_bad_query_and_big_result(qtbot, traces):
    d = traces / "vm-tsync"
    w = open_window(qtbot, *[d / "trace.dat", d / "trace-vmguest.dat"])
    c = _open(w)
    c.run("SELECT * FROM no_such_table")
    assert "Catalog Error: Table with name no_such_table does not exist" in c.status.text()
    assert "\n" not in c.status.text()
    c.run("SELECT * FROM events")  # 190,135 rows: the grid reads the cells it shows only
    assert c.grid.model().rowCount() == 190135
    assert c.graph_button.isEnabled()
    last = c.grid.model().index(190134, 0)
    assert c.grid.model().data(last) == str(int(np.asarray(w.session.merged().ts)[-1]))
    c.run("SELECT event, count(*) FROM events GROUP BY event")
    assert not c.graph_button.isEnabled()  # no ts
