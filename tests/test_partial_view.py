"""The progressive first view filling in: the reader's deliveries of decoded rows (PartialRows) make
the preview's CPU rows exact below the watermark and grow the loading window's event list; a cancel
keeps both.  The deliveries are a real loaded events table cut into consecutive pieces with rising
watermarks, exactly what the reader hands over (its concatenation is the final table)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6 import QtCore

from kshark_py.loaders.buffer import Buffer
from kshark_py.loaders.partial import PartialRows
from kshark_py.loaders.tracedat import open_trace
from kshark_py.model import partialstream
from kshark_py.model.loading import load_session
from kshark_py.model.preview import PreviewModel, build_preview
from kshark_py.model.viewmodel import BODY_ROWS, PX_LOST, SUBROWS, TICK_ROWS, _column_grid
from kshark_py.ui import mainwindow
from kshark_py.ui.eventtable import COL as FINAL_COL
from kshark_py.ui.eventtable import EventTableModel
from kshark_py.ui.partiallist import COL, PartialListModel, PartialListView

from .support.corpus import TRACES, TSYNC


def deliveries(buffer: Buffer, pieces: int) -> list[PartialRows]:
    """``buffer``'s decoded table in ``pieces`` consecutive deliveries: each ends before the first
    row at or after its watermark (so every row before the watermark is delivered); the last is done."""
    ev = buffer.events
    cols = {k: ev.column(k).to_numpy() for k in ("ts", "cpu", "pid", "event_id")}
    ts = cols["ts"]
    lo, hi = int(ts.min()), int(ts.max())
    out, prev = [], 0
    for w in np.linspace(lo, hi, pieces + 1)[1:-1].astype(np.int64).tolist():
        r = int(np.searchsorted(ts, w, side="left"))
        out.append(PartialRows(buffer, *(cols[k][prev:r] for k in ("ts", "cpu", "pid", "event_id")), w, False))
        prev = r
    out.append(PartialRows(buffer, *(cols[k][prev:] for k in ("ts", "cpu", "pid", "event_id")), hi + 1, True))
    return out


def final_counts(session, stream: int, cpu: int, edges: np.ndarray) -> np.ndarray:
    """Events of one CPU of the loaded session between consecutive edges (session time)."""
    st = session.streams[stream]
    ev = st.buffer.events
    ts = np.sort(ev.column("ts").to_numpy()[ev.column("cpu").to_numpy() == cpu])
    return np.diff(np.searchsorted(ts, edges, side="left"))


def snapped(edges: np.ndarray, lo: int, width: int) -> np.ndarray:
    """Each edge at the nearest bin edge (bins of ``width`` ns from ``lo``): what a pixel at least
    a bin wide counts while loading."""
    return lo + (edges - lo + width // 2) // width * width


def assert_solid_then_faint(res, k: int, below: np.ndarray) -> None:
    """Row ``k`` of a render: decoded columns solid (body as dark as the tick strip), estimated ones
    faint (red lost-event marks aside)."""
    body = res.alpha[k * SUBROWS + BODY_ROWS.start]
    tick = res.alpha[k * SUBROWS + TICK_ROWS.start]
    assert np.array_equal(body[below], tick[below])
    est = ~below & (res.kind[k * SUBROWS + BODY_ROWS.start] != PX_LOST)
    assert (body[est] <= tick[est] // 3 + 1).all()


@pytest.mark.parametrize(("paths", "pieces", "stored"), [
    ([TRACES / "host-sched-v7.dat"], 5, np.uint32), ([TRACES / "host-lost-events.dat"], 5, np.uint32),
    ([TSYNC / "trace.dat", TSYNC / "trace-vmguest.dat"], 2, np.int64)], ids=["sched", "lost", "host+guest"])
def test_rows_count_exactly_below_the_watermark(paths, pieces, stored):
    """After each delivery, every CPU row counts the loaded session's events exactly in every pixel
    column before the watermark when the pixels are whole bins (also in a render); on any grid of
    pixels a bin wide or more, each pixel counts exactly the events between the bin edges nearest
    its own; columns after the watermark keep the page estimate, faint; after the last delivery the
    whole row is exact.  The counts live in bins (2**20 per CPU at most, 16 MB for all streams),
    not in copies of the rows; the list's rows spanning less than 4.29 s keep their times as 32-bit
    offsets, longer ones (the 18 s host+guest file in two) as they are."""
    paths = [str(p) for p in paths]
    session = load_session(paths).session
    files = [open_trace(p) for p in paths]
    try:
        pv = build_preview(files)
        model = PreviewModel(pv)
        lo, hi = pv.full_range
        coarse, _ = _column_grid(lo, hi + 1, 400)  # the window's fit: ~2600 bins a pixel, not aligned
        seen: set[type] = set()
        cpus = sum(st.cpu_count for st in pv.streams)
        for st in pv.streams:
            rows = [k for k, r in enumerate(model.rows) if r.stream == st.index]
            for i, d in enumerate(deliveries(st.buffer, pieces)):
                assert pv.add_rows(d) is st
                bins = st.partial.counts()
                assert bins.cum.size <= (1 << 22) + cpus and bins.cum.shape[0] == st.cpu_count
                nominal = 1 << 20 if cpus <= 4 else (1 << 22) // cpus
                assert nominal // 2 < bins.cum.shape[1] - 1 <= nominal  # (a whole number of ns per bin)
                if len(d.ts):
                    span = int(d.ts.max()) - int(d.ts[0])
                    seen.add(st.partial.chunks()[-1].ts.dtype.type)
                    assert seen >= {np.uint32 if span < 2**32 - 1 else np.int64}
                until = model.exact_until(rows[0])
                # whole bins per pixel (3 to 700 of them): the final session's counts exactly
                npix = 400
                per = max(3, -(-(bins.cum.shape[1] - 1) // npix) >> (i % 3 * 4))
                t0 = bins.lo + st.offset
                aligned = t0 + np.arange(npix + 1, dtype=np.int64) * per * bins.width
                assert np.array_equal(_column_grid(int(aligned[0]), int(aligned[-1]), npix)[0], aligned)
                res = model.render(int(aligned[0]), int(aligned[-1]), npix)
                below = aligned[1:] <= until
                assert below.any()
                for k in rows:
                    want = final_counts(session, st.index, model.rows[k].cpu, aligned)
                    assert np.array_equal(model.counts(k, aligned)[below], want[below])
                    assert np.array_equal(res.counts[k][below], want[below])
                    assert_solid_then_faint(res, k, below)
                # the window's own grid: each pixel counts between the bin edges nearest its own
                res = model.render(lo, hi + 1, 400)
                below = coarse[1:] <= until
                for k in rows:
                    want = final_counts(session, st.index, model.rows[k].cpu,
                                        snapped(coarse - st.offset, bins.lo, bins.width) + st.offset)
                    assert np.array_equal(model.counts(k, coarse)[below], want[below])
                    assert np.array_equal(res.counts[k][below], want[below])
                    assert_solid_then_faint(res, k, below)
            assert model.exact_until(rows[0]) is not None and (coarse[1:] <= model.exact_until(rows[0])).all()
            assert st.partial.rows == st.partial.listed == st.buffer.events.num_rows
            pv.set_exact(st.buffer)  # decoded: the table counts, the bins go
            assert st.partial.counts() is None
            for k in rows:
                want = final_counts(session, st.index, model.rows[k].cpu, coarse)
                assert np.array_equal(model.counts(k, coarse), want)
        assert stored in seen
    finally:
        for f in files:
            f.close()


def test_zoom_finer_than_a_bin_spreads_its_counts():
    """Pixels narrower than a bin share its count evenly (each bin's pixels add up to its exact
    count) and still draw solid left of the watermark."""
    path = str(TRACES / "host-sched-v7.dat")
    session = load_session([path]).session
    with open_trace(path) as tf:
        pv = build_preview([tf])
        model = PreviewModel(pv)
        st = pv.streams[0]
        parts = deliveries(st.buffer, 3)
        pv.add_rows(parts[0])
        bins = st.partial.counts()
        w = parts[0].watermark
        first = (int(parts[0].ts[len(parts[0].ts) // 2]) - bins.lo) // bins.width  # a busy bin, before the watermark
        t0 = bins.lo + first * bins.width
        npix = 400  # 100 bins, 4 pixels each
        edges, _ = _column_grid(t0, t0 + 100 * bins.width, npix)
        assert edges[-1] <= w and np.array_equal(edges[::4], t0 + np.arange(101) * bins.width)
        res = model.render(t0, t0 + 100 * bins.width, npix)
        for k, row in enumerate(model.rows):
            got = model.counts(k, edges)
            want = final_counts(session, 0, row.cpu, edges[::4])
            assert np.allclose(got.reshape(-1, 4).sum(axis=1), want)  # each bin: its exact count
            share = np.diff(edges) / bins.width  # spread evenly over its pixels
            assert np.allclose(got, np.repeat(want, 4) * share)
            assert_solid_then_faint(res, k, np.ones(npix, bool))
        assert res.counts.sum() > 0


@pytest.fixture
def sched(qtbot):
    """host-sched-v7.dat: its loaded session, the loaded list's model, the opened file and its preview."""
    path = str(TRACES / "host-sched-v7.dat")
    session = load_session([path]).session
    with open_trace(path) as tf:
        yield session, EventTableModel(session), tf, build_preview([tf])


def test_list_grows_with_the_deliveries_and_shows_the_final_rows(sched):
    """Row count = rows delivered; each row reads as the loaded window's list (time, CPU, task, pid,
    event) for the same event; rows arrive by insertion (the view's current row stays)."""
    session, final, tf, pv = sched
    st = pv.streams[0]
    m = PartialListModel(st)
    inserted = []
    m.rowsInserted.connect(lambda _p, a, b: inserted.append((a, b)))
    assert m.rowCount() == 0
    total = 0
    for d in deliveries(st.buffer, 4):
        pv.add_rows(d)
        assert m.refresh() == len(d.ts)
        total += len(d.ts)
        assert m.rowCount() == total
    assert inserted[0][0] == 0 and all(a == b0 + 1 for (_, b0), (a, _) in zip(inserted, inserted[1:],
                                                                               strict=False))
    assert total == session.streams[0].buffer.events.num_rows
    names = dict(tf.cmdlines)
    probe = np.unique(np.linspace(0, total - 1, 300).astype(np.int64)).tolist()
    for r in probe:  # one stream, no filter: merged index r is table row r
        for col in ("Time", "Stream", "CPU", "PID", "Event"):
            assert m.cell_text(r, COL[col]) == final.cell_text(r, FINAL_COL[col]), (r, col)
        pid = int(m.cell_text(r, COL["PID"]))
        if pid == 0 or pid in names:
            assert m.cell_text(r, COL["Task"]) == final.cell_text(r, FINAL_COL["Task"])
    assert "load ends" in m.headerData(COL["Info"], QtCore.Qt.Orientation.Horizontal)
    before = [m.cell_text(r, c) for r in probe[::10] for c in range(len(COL))]
    pv.set_exact(st.buffer)  # decoded: the graph counts from the table, the list keeps its rows
    assert m.refresh() == 0 and m.rowCount() == total
    assert [m.cell_text(r, c) for r in probe[::10] for c in range(len(COL))] == before


def test_list_holds_the_first_rows_only(qtbot, sched, monkeypatch):
    """The list keeps the first LIST_ROWS rows delivered (min(N, delivered) rows, the same as the
    loaded list's first ones) and its caption counts every decoded row and says the loaded window
    lists them all; the graph still counts every delivered row."""
    monkeypatch.setattr(partialstream, "LIST_ROWS", 40_000)
    session, final, _tf, pv = sched
    st = pv.streams[0]
    view = PartialListView(st)
    qtbot.addWidget(view)
    model = PreviewModel(pv)
    total = 0
    for d in deliveries(st.buffer, 6):
        pv.add_rows(d)
        view.refresh()
        total += len(d.ts)
        assert view.model.rowCount() == min(40_000, total) == st.partial.listed
        if total > 40_000:
            assert view.caption.text() == (f"Events of host decoded so far: {total:,} (the first 40,000 listed "
                                           "while loading; all of them when the load ends)")
        else:
            assert f"decoded so far: {total:,} (the list grows" in view.caption.text()
    assert total > 40_000 and st.partial.rows == total
    for r in (0, 1, 20_000, 39_999):
        for col in ("Time", "CPU", "PID", "Event"):
            assert view.model.cell_text(r, COL[col]) == final.cell_text(r, FINAL_COL[col]), (r, col)
    assert view.model.cell_text(40_000, COL["Time"]) == ""
    lo, hi = pv.full_range
    edges, _ = _column_grid(lo, hi + 1, 300)
    bins = st.partial.counts()
    for k, row in enumerate(model.rows):
        want = final_counts(session, 0, row.cpu, snapped(edges, bins.lo, bins.width))
        assert np.array_equal(model.counts(k, edges), want)
    view.set_caption("loading cancelled: no more rows come")
    assert view.caption.text() == (f"Events of host decoded so far: {total:,} (the first 40,000 listed; "
                                   "loading cancelled: no more rows come)")


@pytest.fixture
def loading_window(qtbot, monkeypatch):
    """A main window showing a load's preview (as the app builds it), and the preview's buffer."""
    monkeypatch.setattr(mainwindow, "_initial_size", lambda: (1200, 800))
    path = str(TRACES / "host-sched-v7.dat")
    tf = open_trace(path)
    pv = build_preview([tf])
    cancelled = []
    w = mainwindow.MainWindow(None, [], paths=[path], preview=pv, cancel_load=lambda: cancelled.append(1))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    qtbot.waitUntil(lambda: w.timeline.last is not None, timeout=10000)
    yield w, pv, cancelled
    tf.close()


def _deliver(pv, parts) -> None:
    """Hand ``parts`` over from another thread, as the loading thread does."""
    t = threading.Thread(target=lambda: [pv.add_rows(p) for p in parts])
    t.start()
    t.join()


def _body_is_solid_before(w, until: int) -> bool:
    """The timeline on screen draws the decoded columns solid (body as dark as the tick strip)."""
    res = w.timeline.last
    edges, _ = _column_grid(res.t0, res.t1, res.npix)
    below = edges[1:] <= until
    a = res.alpha.reshape(-1, SUBROWS, res.npix)
    return bool(below.any()) and np.array_equal(a[:, BODY_ROWS.start][:, below], a[:, TICK_ROWS.start][:, below])


def test_window_fills_in_while_loading_and_cancel_keeps_it(qtbot, loading_window):
    w, pv, cancelled = loading_window
    lv = w.loading
    lst = lv.event_list
    assert lst.model.rowCount() == 0 and "decoded so far: 0" in lst.caption.text()
    parts = deliveries(pv.streams[0].buffer, 6)
    _deliver(pv, parts[:2])
    n = len(parts[0].ts) + len(parts[1].ts)
    qtbot.waitUntil(lambda: lst.model.rowCount() == n, timeout=5000)
    assert f"decoded so far: {n:,}" in lst.caption.text()
    qtbot.waitUntil(lambda: _body_is_solid_before(w, parts[1].watermark), timeout=5000)
    # the user scrolls and picks a row while the load goes on: it stays theirs
    picked = n // 2
    lst.table.selectRow(picked)
    lst.table.scrollTo(lst.model.index(picked, 0))
    top = lst.table.rowAt(0)
    _deliver(pv, parts[2:4])
    n += len(parts[2].ts) + len(parts[3].ts)
    qtbot.waitUntil(lambda: lst.model.rowCount() == n, timeout=5000)
    assert [i.row() for i in lst.table.selectionModel().selectedRows()] == [picked]
    assert lst.table.rowAt(0) == top
    qtbot.waitUntil(lambda: _body_is_solid_before(w, parts[3].watermark), timeout=5000)
    first = lst.model.cell_text(0, COL["Time"])
    qtbot.mouseClick(lv.cancel_button, QtCore.Qt.MouseButton.LeftButton)
    assert cancelled == [1]
    w.load_cancelled()  # what the app does when the worker stops
    _deliver(pv, parts[4:])  # (a worker that had not seen the cancel yet): nothing changes on screen
    qtbot.wait(100)
    assert lst.model.rowCount() == n and lst.model.cell_text(0, COL["Time"]) == first
    assert "cancelled" in lst.caption.text() and "cancelled" in lv.note.text()
    assert lst.isVisible() and w.timeline.last is not None
    w.timeline.redraw()
    assert _body_is_solid_before(w, parts[3].watermark)


@pytest.mark.parametrize("capped", [False, True], ids=["all-listed", "capped"])
@pytest.mark.parametrize("selected", [True, False], ids=["selected", "scrolled"])
def test_the_loaded_list_keeps_the_users_row(qtbot, loading_window, monkeypatch, selected, capped):
    """The row the user selected (or scrolled to the top) in the loading list is the one the loaded
    window's list selects (or shows at its top) when the load ends; also when the list holds only
    the first LIST_ROWS of the rows delivered."""
    w, pv, _ = loading_window
    lst = w.loading.event_list
    parts = deliveries(pv.streams[0].buffer, 3)
    n = len(parts[0].ts) + len(parts[1].ts)
    if capped:
        monkeypatch.setattr(partialstream, "LIST_ROWS", len(parts[0].ts) + 50)
    _deliver(pv, parts[:2])
    qtbot.waitUntil(lambda: lst.model.rowCount() == min(n, partialstream.LIST_ROWS), timeout=5000)
    assert f"decoded so far: {n:,}" in lst.caption.text()
    assert ("all of them when the load ends" in lst.caption.text()) == capped
    row = len(parts[0].ts) + 7
    want = [lst.model.cell_text(row, COL[c]) for c in ("Time", "CPU", "PID", "Event")]
    if selected:
        lst.table.selectRow(row)
    lst.table.scrollTo(lst.model.index(row, 0), lst.table.ScrollHint.PositionAtTop)
    qtbot.waitUntil(lambda: lst.table.rowAt(0) == row, timeout=5000)
    w.finish_load(load_session([str(TRACES / "host-sched-v7.dat")]))
    el = w.event_list
    if selected:
        shown = el.table.selectionModel().selectedRows()[0].row()
    else:
        qtbot.waitUntil(lambda: el.table.rowAt(0) >= 0, timeout=5000)
        shown = el.table.rowAt(0)
    assert [el.model.cell_text_at(shown, FINAL_COL[c]) for c in ("Time", "CPU", "PID", "Event")] == want


def test_listed_rows_are_compact_copies():
    """The list's rows never hold a view of the reader's delivery (it would keep all of it alive):
    pids past 65535 are kept as uint32, CPUs as uint8, and nothing shares the delivery's memory;
    only the first LIST_ROWS rows are kept."""
    n = 5000
    ts = 1_000_000 + np.arange(n, dtype=np.int64) * 1000
    cpu, pid, eid = np.arange(n, dtype=np.int16) % 4, np.arange(n, dtype=np.int32) * 40, np.full(n, 300, np.int32)
    ps = partialstream.PartialStream(4, int(ts[0]), int(ts[-1]), bins=1024)
    ps.add(PartialRows(None, ts, cpu, pid, eid, int(ts[-1]) + 1, True))
    (ch,) = ps.chunks()
    assert (ch.ts.dtype, ch.cpu.dtype, ch.pid.dtype, ch.event_id.dtype) == (np.uint32, np.uint8, np.uint32, np.uint16)
    assert not any(np.shares_memory(a, b) for a in (ch.ts, ch.cpu, ch.pid, ch.event_id) for b in (ts, cpu, pid, eid))
    assert [ch.time(r) for r in (0, n - 1)] == [int(ts[0]), int(ts[-1])] and int(ch.pid[-1]) == int(pid[-1])
    counts = ps.counts()
    assert np.array_equal(counts.before(np.array([int(ts[-1]) + 1]), True)[:, 0], np.bincount(cpu, minlength=4))


def test_a_restart_replaces_the_listed_rows(sched):
    """A ``restart`` delivery (a damaged file: the rows before were not the table's first rows)
    resets the list to its rows, and the counts start again from them."""
    session, final, tf, pv = sched
    st = pv.streams[0]
    m = PartialListModel(st)
    resets = []
    m.modelReset.connect(lambda: resets.append(m.rowCount()))
    parts = deliveries(st.buffer, 4)
    wrong = PartialRows(st.buffer, *(np.asarray(getattr(parts[1], k))[::-1].copy()
                                     for k in ("ts", "cpu", "pid", "event_id")), parts[1].watermark, False)
    pv.add_rows(parts[0])
    pv.add_rows(wrong)
    assert m.refresh() == len(parts[0].ts) + len(wrong.ts)
    ev = st.buffer.events
    whole = PartialRows(st.buffer, *(ev.column(k).to_numpy() for k in ("ts", "cpu", "pid", "event_id")),
                        parts[-1].watermark, True, True)
    pv.add_rows(whole)
    assert m.refresh() == ev.num_rows and resets == [ev.num_rows]
    assert st.partial.rows == ev.num_rows and st.partial.listing()[0] == 1
    probe = np.linspace(0, ev.num_rows - 1, 50).astype(np.int64).tolist()
    for r in probe:
        assert m.cell_text(r, COL["Time"]) == final.cell_text(r, FINAL_COL["Time"])
    counts = st.partial.counts()
    assert counts is not None and int(counts.cum[:, -1].sum()) == ev.num_rows


def test_a_progressive_load_counts_each_buffers_cpu_ticks_once(monkeypatch, tmp_path):
    """The preview counts a decoded buffer's CPU rows (event ticks) and the load cache stores the same
    counts right after: one count per buffer, not two (up to 0.2 s each at 16 CPUs); the counts the
    cache keeps are the table's."""
    from kshark_py.model import distinct

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("KSHARK_PY_NO_CACHE", raising=False)
    calls = []
    real = distinct.all_block_counts
    monkeypatch.setattr(distinct, "all_block_counts", lambda key, values, *a: (calls.append(values),
                                                                               real(key, values, *a))[1])
    paths = [str(TSYNC / "trace.dat"), str(TSYNC / "trace-vmguest.dat")]
    box = {}
    res = load_session(paths, opened=lambda files: box.setdefault("pv", build_preview(files)),
                       decoded=lambda b: box["pv"].set_exact(b))
    streams = res.session.streams
    assert len(calls) == len(streams)
    for st in streams:
        want = real(st.buffer.events.column("cpu").to_numpy(), st.cpu_count)
        for c in range(st.cpu_count):
            assert np.array_equal(res.session.cpu_ticks(st.index, c), want[c])
