"""The event list, search bar and filter dialogs, offscreen (pytest-qt).

Cells are compared with ``kshark-py report`` (itself checked line by line against trace-cmd) and the
latency column with the real ``trace-cmd report -l``; searches and dialogs with independent numpy
counts; the scale check asserts the model holds index arrays only and renders info for painted rows
only.
"""

from __future__ import annotations

import gzip
import re
import subprocess

import numpy as np
import pyarrow as pa
import pytest
from PySide6.QtCore import Qt

from kshark_py.loaders.tracedat import open_trace
from kshark_py.model.filters import Filters
from kshark_py.model.session import Session, Stream
from kshark_py.model.taskindex import TaskIndex
from kshark_py.report import report
from kshark_py.ui.eventlist import EventListView
from kshark_py.ui.eventtable import COL, EventTableModel, MergedIndexRole, latency_text
from kshark_py.ui.filterdialogs import (
    CpuFilterDialog,
    EventFilterDialog,
    FieldFilterDialog,
    StreamFilterDialog,
    TaskFilterDialog,
)

from .reference import LINE_RE, merged_col

LOST_LINE_RE = re.compile(r"^(?:\S+: )?CPU:(?P<cpu>\d+) (?P<what>\[(\d+ )?EVENTS DROPPED\])$")


@pytest.fixture(scope="module")
def files(traces):
    return [open_trace(traces / "vm-tsync" / "trace.dat"), open_trace(traces / "vm-tsync" / "trace-vmguest.dat")]


@pytest.fixture(scope="module")
def session(files):
    return Session.from_files(files)


@pytest.fixture(scope="module")
def tasks(session):
    return TaskIndex(session)


@pytest.fixture
def view(qtbot, session, tasks):
    v = EventListView(session, Filters(), tasks)
    qtbot.addWidget(v)
    v.resize(1300, 500)
    v.show()
    return v


def event_names(session):
    m = session.merged()
    eid = merged_col(session, "event_id")
    return np.array([session.streams[s].trace.formats.get(e).name
                     for s, e in zip(m.stream.tolist(), eid.tolist(), strict=True)], object)


# --------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------

def test_model_rows_and_cells_match_report(qapp, files, session, tasks):
    model = EventTableModel(session, None, tasks)
    m = session.merged()
    assert len(m) == 190135
    assert model.rowCount() == len(m) + len(model.lost)  # one missed_events row per loss
    assert model.columnCount() == len(COL)
    lines = list(report(files))[len(files):]
    assert len(lines) == len(m)
    # every 97th row, the first row of each (stream, event type), and the rows after lost events
    eid = merged_col(session, "event_id")
    keys = m.stream.astype(np.int64) * 100000 + eid
    _, first = np.unique(keys, return_index=True)
    lost = [k for k in range(len(m)) if "\n" in lines[k]]
    assert lost
    sample = sorted(set(range(0, len(m), 97)) | set(first.tolist()) | set(lost))
    for k in sample:
        line = lines[k].split("\n")[-1]
        r = LINE_RE.match(line)
        assert r, line

        row = model.row_of(k)

        def cell(col, row=row):
            return model.data(model.index(row, COL[col]))

        assert cell("#") == str(k)
        assert cell("Time") == r["ts"]
        if r["comm"].strip() != "<...>":  # trace-cmd names a pid only from its first sched event on
            assert cell("Task") == r["comm"].strip(), k
        assert cell("PID") == r["pid"]
        assert int(cell("CPU")) == int(r["cpu"])
        assert cell("Event") == r["event"]
        name = r["event"]
        info = line[r.start("event") + len(name) + 2 + max(0, 20 - len(name)):]
        assert cell("Info") == info, k
        assert cell("Stream") == ("host" if m.stream[k] == 0 else "vmguest")
        assert model.data(model.index(row, 0), MergedIndexRole) == k
        if k in lost:  # trace-cmd prints "CPU:N [COUNT EVENTS DROPPED]" before it: so does the row above
            head = LOST_LINE_RE.match(lines[k].split("\n")[0])
            assert head, lines[k]

            def above(col, row=row):
                return model.data(model.index(row - 1, COL[col]))

            assert (above("Event"), above("CPU"), above("Info")) == ("missed_events", head["cpu"], head["what"])
            assert above("Time") == cell("Time") and model.data(model.index(row - 1, 0), MergedIndexRole) == -1
            assert "lost on CPU" in model.data(model.index(row - 1, 0), Qt.ItemDataRole.ToolTipRole)
    assert len(model.lost) == len(lost)


def test_latency_matches_trace_cmd(traces, qapp):
    path = traces / "vm-tsync" / "trace.dat"
    out = subprocess.run(["trace-cmd", "report", "-l", "-i", str(path)], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    lat = [m.group(1) for ln in out if (m := re.search(r"\d+([.dX][.N][.Hhs]\S\S)\s+\d+\.\d+: ", ln))]
    tf = open_trace(path)
    t = tf.buffers[0].events
    flags, pre = t.column("flags").to_numpy(), t.column("preempt").to_numpy()
    ours = [latency_text(int(f), int(p)) for f, p in zip(flags, pre, strict=True)]
    assert len(lat) == len(ours)
    assert ours == lat
    assert len(set(ours)) > 20  # the trace exercises many combinations (irq/softirq, depths, migrate-disable)


def test_filtered_model_follows_filters(qapp, session, tasks):
    f = Filters()
    model = EventTableModel(session, f, tasks)
    resets = []
    model.modelReset.connect(lambda: resets.append(1))
    wake = session.streams[0].trace.formats.find("sched_wakeup").id
    f.set(0, "event", "hide", [wake])
    assert resets == [1]
    assert model.rowCount() == int(f.mask(session).sum()) + len(model.lost_rows)
    assert len(model.lost_rows) == len(model.lost)  # hiding an event type hides no loss row
    vis = f.visible(session)
    for k in (0, 1, 5000, len(vis) - 1):
        row = int(model.table_rows(np.array([k]))[0])
        assert model.merged_index(row) == vis[k]
        assert model.data(model.index(row, COL["Event"])) != "sched_wakeup" or session.merged().stream[vis[k]] == 1
    hidden = int(np.setdiff1d(np.arange(len(session.merged())), vis)[0])
    assert model.row_of(hidden) == -1
    assert model.merged_index(model.nearest_row(hidden)) in (vis[vis < hidden][-1], vis[vis > hidden][0])
    f.apply_to_list = False  # notifies: the list shows everything again
    assert resets == [1, 1]
    assert model.rowCount() == len(session.merged()) + len(model.lost)
    f.apply_to_list = True
    f.clear()
    assert model.rowCount() == len(session.merged()) + len(model.lost) and model.visible_rows() is None
    # a CPU filter hides that CPU's loss rows too
    lost_cpu = int(model.lost.cpu[0])
    f.set(int(model.lost.stream[0]), "cpu", "hide", [lost_cpu])
    there = (model.lost.cpu == lost_cpu) & (model.lost.stream == model.lost.stream[0])
    assert len(model.lost_rows) == len(model.lost) - int(there.sum())
    assert not any(there[model.lost_index(int(r))] for r in model.lost_rows)
    f.clear()


# --------------------------------------------------------------------------------------------
# view: selection in both directions
# --------------------------------------------------------------------------------------------

def test_user_selection_emits_merged_index_and_time(qtbot, view, session):
    view.select_merged_index(1000)
    qtbot.waitExposed(view)
    row = view.model.row_of(1003)
    rect = view.table.visualRect(view.model.index(row, COL["Event"]))
    with qtbot.waitSignal(view.rowSelected, timeout=2000) as sig:
        qtbot.mouseClick(view.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert sig.args == [1003, int(session.merged().ts[1003])]


def test_programmatic_selection_is_quiet(qtbot, view, session):
    ts = session.merged().ts
    with qtbot.assertNotEmitted(view.rowSelected):
        assert view.select_merged_index(150000) == view.model.row_of(150000) >= 150000
        assert view.current_merged_index() == 150000
        # a time between two events selects the nearer one
        t = int(ts[120000]) + (int(ts[120001]) - int(ts[120000])) // 4
        view.select_time(t)
    assert int(ts[view.current_merged_index()]) == int(ts[120000])
    first = view.table.rowAt(0)
    last = view.table.rowAt(view.table.viewport().height() - 1)
    assert first <= view.model.row_of(view.current_merged_index()) <= last  # scrolled into view
    with qtbot.waitSignal(view.rowSelected):
        view.select_merged_index(42, emit=True)


def test_selection_survives_filter_change(qtbot, view, session):
    m = session.merged()
    host_k = int(np.flatnonzero(m.stream == 0)[5000])
    view.select_merged_index(host_k)
    view.filters.set_stream_enabled(1, False)
    assert view.model.rowCount() == int((m.stream == 0).sum()) + int((view.model.lost.stream == 0).sum())
    assert view.current_merged_index() == host_k
    view.filters.set_stream_enabled(1, True)
    assert view.current_merged_index() == host_k


def test_context_menu_filters(qtbot, view, session):
    m = session.merged()
    k = int(np.flatnonzero(m.stream == 1)[10])
    menu = view.build_context_menu(k)
    texts = [a.text() for a in menu.actions() if a.text()]
    pid = int(merged_col(session, "pid")[k])
    hide_task = next(a for a in menu.actions() if a.text().startswith("Hide task"))
    hide_task.trigger()
    assert view.filters.get(1, "task", "hide") == {pid}
    assert any(t.startswith("Add a plot for task") for t in texts)
    with qtbot.waitSignal(view.taskPlotRequested) as sig:
        next(a for a in menu.actions() if a.text().startswith("Add a plot")).trigger()
    assert sig.args == [1, pid]


# --------------------------------------------------------------------------------------------
# search
# --------------------------------------------------------------------------------------------

def test_search_event_next_prev_wrap(qtbot, view, session):
    bar = view.search_bar
    names = event_names(session)
    want = np.flatnonzero(np.array(["sched_wakeup" in n for n in names]))
    bar.set_query("Event", "sched_wakeup")
    assert np.array_equal(bar.matches(), view.model.table_rows(want))
    bar.find_next()
    assert view.current_merged_index() == want[0]
    assert bar.counter.text() == f"1/{len(want)}"
    bar.find_next()
    assert view.current_merged_index() == want[1]
    bar.find_prev()
    assert view.current_merged_index() == want[0]
    bar.find_prev()
    assert view.current_merged_index() == want[-1]
    assert "wrapped" in bar.counter.text()
    bar.find_next()
    assert view.current_merged_index() == want[0]
    # from an arbitrary row: the next match after it
    view.select_merged_index(100000)
    bar.find_next()
    assert view.current_merged_index() == want[want > 100000][0]


@pytest.mark.parametrize("column,text,mode", [
    ("Task", "md5sum", "full match"), ("Task", "QEMU", "contains"), ("PID", "27180", "full match"),
    ("CPU", "1", "full match"), ("Event", "sched", "not contains"), ("PID", "27", "contains"),
])
def test_search_columns_vectorized(qtbot, view, session, column, text, mode):
    model = view.model
    bar = view.search_bar
    bar.set_query(column, text, mode)
    hits = bar.matches()
    col = COL[column]
    # independent: the cell texts themselves, on a sample, and the total via numpy
    if column == "PID":
        vals = merged_col(session, "pid").astype(str)
    elif column == "CPU":
        vals = merged_col(session, "cpu").astype(str)
    elif column == "Event":
        vals = event_names(session)
    else:
        vals = np.array([model.cell_text(k, col) for k in range(len(session.merged()))], object)
    if mode == "full match":
        want = np.flatnonzero(vals == text)
    else:
        has = np.array([text.lower() in v.lower() for v in vals])
        want = np.flatnonzero(has if mode == "contains" else ~has)
    assert len(want) > 0
    assert np.array_equal(hits, model.table_rows(want))
    bar.find_next()
    assert view.current_merged_index() == want[0]


def test_search_respects_filters(qtbot, view, session):
    f = view.filters
    f.set_stream_enabled(0, False)
    bar = view.search_bar
    bar.set_query("Event", "sched_switch", "full match")
    hits = bar.matches()
    names = event_names(session)
    m = session.merged()
    assert len(hits) == int(((m.stream == 1) & (names == "sched_switch")).sum())
    for r in hits[:50]:
        assert view.model.data(view.model.index(int(r), COL["Event"])) == "sched_switch"
    bar.find_next()
    assert view.model.data(view.table.currentIndex().siblingAtColumn(COL["Stream"])) == "vmguest"
    bar.set_query("Event", "nothing-like-this")
    bar.find_next()
    assert bar.counter.text() == "no match"


def test_search_bar_needs_only_the_table_model(qtbot, session, tasks):
    """The search bar works on a table model and two callbacks, with no list view around it: it
    selects each hit through ``select`` (graph following as its checkbox says) and starts from
    ``current_row``; an Info search finds loss rows by their text too."""
    from kshark_py.ui.search import SearchBar

    model = EventTableModel(session, None, tasks)
    current = [-1]
    chosen: list[tuple[int, bool]] = []

    def select(row: int, *, emit: bool = False) -> None:
        chosen.append((row, emit))
        current[0] = row

    bar = SearchBar(model, select, lambda: current[0])
    qtbot.addWidget(bar)
    want = model.table_rows(np.flatnonzero(event_names(session) == "sched_switch"))
    bar.set_query("Event", "sched_switch", "full match")
    bar.find_next()
    bar.find_next()
    assert chosen == [(int(want[0]), True), (int(want[1]), True)]
    assert bar.counter.text() == f"2/{len(want)}"
    bar.graph_follows.setChecked(False)
    bar.find_prev()
    assert chosen[-1] == (int(want[0]), False)
    assert len(model.lost_rows)  # vm-tsync's guest lost events: the first loss row's text is found
    lost_row = int(model.lost_rows[0])
    current[0] = lost_row - 1
    bar.set_query("Info", model.info_at(lost_row), "full match")
    bar.find_next()
    qtbot.waitUntil(lambda: not bar.busy, timeout=60_000)
    assert chosen[-1][0] == lost_row and model.cell_text_at(lost_row, COL["Event"]) == "missed_events"


def test_search_info_incremental(qtbot, view, session):
    model = view.model
    bar = view.search_bar
    text = "==> sleep:"
    n = len(session.merged())
    first = next(k for k in range(n) if text in model.info(k, cache=False))
    second = next(k for k in range(first + 1, n) if text in model.info(k, cache=False))
    assert first > 1000  # the hit lies beyond the first slice of work
    bar.set_query("Info", text)
    bar.find_next()
    assert bar.busy
    qtbot.waitUntil(lambda: not bar.busy, timeout=20000)
    assert view.current_merged_index() == first
    assert bar.counter.text() == f"# {first}"  # what the list's # column shows for it
    bar.find_next()
    qtbot.waitUntil(lambda: not bar.busy, timeout=20000)
    assert view.current_merged_index() == second
    bar.find_prev()
    qtbot.waitUntil(lambda: not bar.busy, timeout=20000)
    assert view.current_merged_index() == first
    # editing the text cancels a running search
    bar.find_next()
    bar.text.setText("something else")
    assert not bar.busy


# --------------------------------------------------------------------------------------------
# filter dialogs
# --------------------------------------------------------------------------------------------

def test_event_dialog(qtbot, session):
    f = Filters()
    d = EventFilterDialog(session, f)
    qtbot.addWidget(d)
    wake = session.streams[0].trace.formats.find("sched_wakeup").id
    d.set_checked(0, wake, False)
    d.apply()
    assert f.get(0, "event", "hide") == {wake} and not f.get(0, "event", "show")
    # uncheck everything of the guest but sched_switch: the shorter list is kept, as a show filter
    sw = session.streams[1].trace.formats.find("sched_switch").id
    d.stream_items[1].setCheckState(0, Qt.CheckState.Unchecked)
    d.set_checked(1, sw, True)
    assert d.stream_items[1].checkState(0) == Qt.CheckState.PartiallyChecked
    d.apply()
    assert f.get(1, "event", "show") == {sw} and not f.get(1, "event", "hide")
    eid = merged_col(session, "event_id")
    m = session.merged()
    want = ((m.stream == 0) & (eid != wake)) | ((m.stream == 1) & (eid == sw))
    assert np.array_equal(f.mask(session), want)
    # a new dialog shows the state; unchecking a whole stream hides all of it
    d2 = EventFilterDialog(session, f)
    qtbot.addWidget(d2)
    assert d2.leaf(0, wake).checkState(0) == Qt.CheckState.Unchecked
    assert d2.leaf(1, sw).checkState(0) == Qt.CheckState.Checked
    d2.stream_items[1].setCheckState(0, Qt.CheckState.Unchecked)
    d2.set_all(True)
    d2.stream_items[0].setCheckState(0, Qt.CheckState.Unchecked)
    d2.apply()
    assert f.mask(session).sum() == int((m.stream == 1).sum())


def test_task_cpu_stream_dialogs(qtbot, session, tasks):
    f = Filters()
    seen = []
    f.changed.connect(lambda: seen.append(1))
    td = TaskFilterDialog(session, f, tasks)
    qtbot.addWidget(td)
    td.set_checked(0, 27180, False)
    td.set_checked(1, 163, False)
    td.apply()
    assert seen == [1]  # one notification for the whole dialog
    assert f.get(0, "task", "hide") == {27180} and f.get(1, "task", "hide") == {163}
    cd = CpuFilterDialog(session, f)
    qtbot.addWidget(cd)
    assert int(cd.leaf(0, 1).text(1)) == int((session.streams[0].buffer.events.column("cpu").to_numpy() == 1).sum())
    cd.set_checked(0, 0, False)
    cd.apply()
    assert f.get(0, "cpu", "hide") == {0}
    pid, cpu = merged_col(session, "pid"), merged_col(session, "cpu")
    m = session.merged()
    want = ((m.stream == 0) & (pid != 27180) & (cpu != 0)) | ((m.stream == 1) & (pid != 163))
    assert np.array_equal(f.mask(session), want)
    sd = StreamFilterDialog(session, f)
    qtbot.addWidget(sd)
    sd.boxes[0].setChecked(False)
    sd.apply()
    assert not f.stream_enabled(0)
    assert np.array_equal(f.mask(session), (m.stream == 1) & (pid != 163))


def test_field_filter_dialog(qtbot, session):
    f = Filters()
    d = FieldFilterDialog(session, f)
    qtbot.addWidget(d)
    d.select(0, "sched_switch")
    d.expr.setText('prev_pid == "x"')
    assert not d.apply_button.isEnabled() and "numeric" in d.status.text()
    d.expr.setText("prev_pid == 0")
    assert d.apply_button.isEnabled()
    d.apply()
    sw = session.streams[0].trace.formats.find("sched_switch").id
    assert f.field_filters(0)[sw].condition == "prev_pid == 0"
    assert d.current.count() == 1 and "applied:" in d.status.text()
    n_match = int(d.status.text().split()[1])
    d.only_matching.setChecked(True)
    assert f.only_matching(0)
    assert f.stream_mask(session.streams[0]).sum() == n_match
    d.current.item(0).setSelected(True)
    d.remove_selected()
    assert not f.field_filters(0) and d.current.count() == 0


# --------------------------------------------------------------------------------------------
# scale: no per-row work at construction
# --------------------------------------------------------------------------------------------

class _TiledBuffer:
    """A buffer whose events table is the real one repeated ``k`` times (later copies shifted in
    time); payloads come from the original rows."""

    def __init__(self, buf, k: int) -> None:
        self._buf = buf
        t = buf.events
        n = len(t)
        span = int(t.column("ts").to_numpy()[-1] - t.column("ts").to_numpy()[0]) + 1
        parts = []
        for i in range(k):
            parts.append(t.set_column(0, "ts", pa.array(t.column("ts").to_numpy() + i * span)))
        self.events = pa.concat_tables(parts).combine_chunks()
        self.lost = buf.lost.slice(0, 0)
        self._n = n

    def payload(self, row: int) -> bytes:
        return self._buf.payload(row % self._n)

    def __getattr__(self, name):
        return getattr(self._buf, name)


def test_model_stores_only_index_arrays(qtbot, files, monkeypatch):
    host = files[0]
    tiled = _TiledBuffer(host.buffers[0], 8)
    n = len(tiled.events)
    assert n > 1_000_000
    st = Stream(0, host, tiled, 0, "host", "host", "")
    sess = Session([host], host, [], [st])
    renders = []
    orig = EventTableModel._render_info
    monkeypatch.setattr(EventTableModel, "_render_info", lambda self, k: renders.append(k) or orig(self, k))
    f = Filters()
    v = EventListView(sess, f)
    qtbot.addWidget(v)
    model = v.model
    assert model.rowCount() == n and model.visible_rows() is None
    assert renders == []

    def big_python_containers(obj):
        return [k for k, x in vars(obj).items()
                if isinstance(x, (list, tuple, dict, set)) and len(x) > 1000]

    assert big_python_containers(model) == []
    for k, x in vars(model).items():
        if isinstance(x, np.ndarray):
            assert x.dtype.kind in "iu", k  # index arrays only
    # filtering keeps one int64 index array, nothing per row
    f.set(0, "cpu", "hide", [0])
    assert model.visible_rows().dtype == np.int64 and model.rowCount() == int(f.mask(sess).sum())
    assert big_python_containers(model) == []
    # painting renders the visible rows' info only, at the top and at the very bottom
    v.resize(1200, 400)
    v.show()
    qtbot.waitExposed(v)
    v.grab()
    shown = len(renders)
    assert 0 < shown < 100
    v.table.scrollToBottom()
    img = v.grab()
    assert not img.isNull()
    assert max(renders) == model.merged_index(model.rowCount() - 1)
    assert len(renders) < 2 * shown + 10


def test_screenshot(qtbot, view, tmp_path):
    view.select_merged_index(52622)
    qtbot.waitExposed(view)
    img = view.grab()
    path = tmp_path / "eventlist.png"
    assert img.save(str(path))
    assert img.width() >= 1300 and path.stat().st_size > 10000


# --------------------------------------------------------------------------------------------
# lost events, vectorized info text
# --------------------------------------------------------------------------------------------

def test_lost_events_rows_and_graph_tooltip(qtbot, traces):
    """host-lost-events.dat: every loss trace-cmd reports is a missed_events row with its count, right
    above the event that follows it, and the graph's red mark says the same on hover."""
    from kshark_py.model.loading import load_session
    from kshark_py.ui.app import build_window

    path = str(traces / "host-lost-events.dat")
    w = build_window(load_session([path]), [path])
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    with gzip.open(traces / "host-lost-events.dat.report.txt.gz", "rt") as fh:
        want = [(m["cpu"], m["what"]) for ln in fh if (m := LOST_LINE_RE.match(ln.rstrip("\n")))]
    model = w.event_list.model
    got = [(model.cell_text_at(int(r), COL["CPU"]), model.cell_text_at(int(r), COL["Info"])) for r in model.lost_rows]
    assert len(want) == 16 and got == want  # "[777 EVENTS DROPPED]" and the count-less "[EVENTS DROPPED]"
    for r in model.lost_rows[:3].tolist():
        k = model.merged_index(r)  # the event after the loss
        assert model.row_of(k) == r + 1 and model.cell_text_at(r, COL["Event"]) == "missed_events"
    # the graph: hover the first loss's mark on its CPU row
    k = model.lost_index(int(model.lost_rows[0]))
    cpu, t = int(model.lost.cpu[k]), int(model.merged.ts[model.lost.merged[k]])
    row = next(i for i, r in enumerate(w.model.rows) if r.kind == "cpu" and r.cpu == cpu)
    text = w.timeline.describe(row, t)
    assert f"{want[0][1]}: the ring buffer was full" in text


@pytest.mark.parametrize("name", ["host-lost-events.dat", "host-printk.dat", "host-instances.dat",
                                  "vm-2guests/trace-vmguestA.dat",
                                  "external/doc-test/trace.dat+external/doc-test/trace-Salamander4.dat"])
def test_block_info_equals_scalar_renderer(qapp, traces, name):
    """The vectorized info text of a whole file is, row for row, what the list's renderer shows (with
    a guest: the host's kvm events name guest functions)."""
    session = Session.from_files([open_trace(traces / p) for p in name.split("+")])
    model = EventTableModel(session)
    n = len(session.merged())
    for si, st in enumerate(session.streams):
        rows = np.arange(len(st.buffer.events))
        got = model.block_info(si).render(rows).to_pylist()
        sel = np.flatnonzero(np.asarray(session.merged().stream) == si)
        want = [model.info(int(k), cache=False) for k in sel]
        rowmap = np.asarray(session.merged().row)[sel]
        assert [got[int(r)] for r in rowmap] == want
    assert n > 2000


def test_info_search_renders_blocks_not_rows(qtbot, view, session, monkeypatch):
    """A no-match Info search over 190,135 rows: the per-event renderer runs for a few distinct values
    only (the block renderer), the search reports progress, and ends with "no match"."""
    from kshark_py.loaders.printfmt import InfoRenderer

    calls = []
    orig = InfoRenderer.info
    monkeypatch.setattr(InfoRenderer, "info", lambda self, *a: calls.append(1) or orig(self, *a))
    bar = view.search_bar
    bar.set_query("Info", "no such text anywhere")
    seen = []
    bar.counter.setText = (lambda f: lambda t: seen.append(t) or f(t))(bar.counter.setText)
    bar.find_next()
    qtbot.waitUntil(lambda: not bar.busy, timeout=120000)
    assert bar.counter.text() == "no match"
    assert any(t.startswith("searching… ") and t.endswith("%") for t in seen)
    assert len(calls) < len(session.merged()) // 20
    # Esc cancels a running search
    bar.find_next()
    assert bar.busy
    bar.stop()
    assert not bar.busy and bar.counter.text() == "cancelled"


def test_find_funcs_probes_like_find_func(traces):
    """The column symbol lookup returns, address for address, what the scalar bsearch returns
    (aliases at one address included), inside functions, on starts, before the first and past the last."""
    from kshark_py.loaders.printfmt import InfoRenderer
    from kshark_py.model.eventtext import render_context
    from kshark_py.model.vexpr import find_funcs

    tf = open_trace(traces / "host-sched-v7.dat")
    ev = InfoRenderer(tf.formats, render_context(tf)).ev
    ks = ev.ctx.kallsyms
    assert ks is not None and len(ks) > 1000
    a = np.asarray(ks.addrs, np.uint64)
    rng = np.random.default_rng(7)
    probe = np.concatenate([a[rng.integers(0, len(a), 3000)], a[rng.integers(0, len(a), 3000)] + np.uint64(5),
                            np.array([0, 1, int(a.min()) - 1, int(a.max()), int(a.max()) + 1], np.uint64)])
    sym, start = find_funcs(ev, probe)
    for k, x in enumerate(probe.tolist()):
        want = ev.find_func(x)
        got = None if sym[k] < 0 else (ks.name(int(sym[k])), int(start[k]))
        assert got == want, hex(x)


def test_block_info_splits_big_blocks(qapp, traces, monkeypatch):
    """Long records make big payload matrices: the block is split, the texts stay the same."""
    from kshark_py.model import infotext

    session = Session.from_files([open_trace(traces / "host-printk.dat")])
    model = EventTableModel(session)
    rows = np.arange(len(session.streams[0].buffer.events))
    whole = model.block_info(0).render(rows).to_pylist()
    monkeypatch.setattr(infotext, "MATRIX_BYTES", 4096)
    assert infotext.BlockInfo(session.streams[0].buffer, model._renderers[id(session.host)]).render(rows) \
        .to_pylist() == whole


def test_info_search_falls_back_to_rows_if_the_block_renderer_fails(qtbot, view, session, monkeypatch):
    from kshark_py.model.infotext import BlockInfo

    def boom(self, rows):
        raise RuntimeError("a format the block renderer does not know")

    monkeypatch.setattr(BlockInfo, "render", boom)
    model = view.model
    first = next(k for k in range(len(session.merged())) if "==> sleep:" in model.info(k, cache=False))
    bar = view.search_bar
    bar.set_query("Info", "==> sleep:")
    bar.find_next()
    qtbot.waitUntil(lambda: not bar.busy, timeout=60000)
    assert view.current_merged_index() == first


def test_info_search_finds_loss_rows(qtbot, view):
    bar = view.search_bar
    view.select_row(1000)  # the search wraps round to the loss row at the top
    bar.set_query("Info", "events dropped")
    bar.find_next()
    qtbot.waitUntil(lambda: not bar.busy, timeout=60000)
    row = view.table.currentIndex().row()
    assert view.model.lost_index(row) >= 0 and bar.counter.text() == "lost events (wrapped)"
    assert view.model.data(view.model.index(row, COL["Event"])) == "missed_events"


def test_typing_in_the_table_searches_instead_of_matching_every_row(qtbot, view, monkeypatch):
    """Qt's type-ahead ran model.match over every row (the info text of millions of events: a
    frozen window); keys typed in the table go to the search box instead."""
    calls = []
    monkeypatch.setattr(view.model, "match", lambda *a, **k: calls.append(a) or [])
    view.show()
    qtbot.waitExposed(view)
    view.table.setFocus()
    view.select_row(3)
    qtbot.keyClick(view.table, "s")
    assert view.search_bar.text.hasFocus()
    qtbot.keyClicks(view.search_bar.text, "ched")  # the next keys reach the focused search box
    assert view.search_bar.text.text() == "sched"
    assert calls == [], "the table's type-ahead must not scan the model"
    rendered = []
    orig = view.model.data
    monkeypatch.setattr(view.model, "data", lambda *a, **k: rendered.append(1) or orig(*a, **k))
    view.table.setFocus()
    qtbot.keyClick(view.table, "+")
    assert len(rendered) < 5000, "one key must not render more than the visible rows"
