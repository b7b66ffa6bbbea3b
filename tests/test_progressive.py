"""The progressive first view: page-header scans against the full decode on every corpus file, and
the app's window showing the preview before its load ends (zoom works, cancel keeps it, the final
view equals the one a non-progressive load builds); end to end with the reader's rows filling it in
(tests/test_partial_view.py: the same from a real table cut into deliveries)."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from kshark_py.loaders import buffer as buffer_mod
from kshark_py.loaders import partial
from kshark_py.loaders.errors import TraceDatError
from kshark_py.loaders.pagescan import scan_buffer
from kshark_py.loaders.tracedat import open_trace
from kshark_py.model import loading, partialstream
from kshark_py.model.loading import load_session
from kshark_py.model.preview import Preview, PreviewModel, build_preview
from kshark_py.model.sessionfile import load_session_file
from kshark_py.ui import loader, mainwindow
from kshark_py.ui.app import DEMO_SESSION, WindowManager, app_instance, build_window
from kshark_py.ui.loadingview import LoadingView
from kshark_py.ui.openrequest import OpenRequest

from .support.corpus import TRACES, TSYNC

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fuzzcases  # noqa: E402

FUZZ_SEED = int(os.environ.get("KSHARK_FUZZ_SEED", "20261206"))
CORPUS = sorted(TRACES.rglob("*.dat"))


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(TRACES)))
def test_page_scan_agrees_with_the_decode(path):
    """Per CPU: the page count is the decoder's, the first and last record times are the decoded
    events' extremes, the pages flagged as having lost events are the decoder's lost marks; a
    sampled scan (3 chunks per CPU) knows the same counts and range."""
    with open_trace(path) as tf:
        for b in tf.buffers:
            full, sampled = scan_buffer(b, max_chunks=None), scan_buffer(b, max_chunks=3)
            ev = b.events
            ts, cpu = ev.column("ts").to_numpy(), ev.column("cpu").to_numpy()
            pages = {st.cpu: st.pages for st in b.stats if st.pages}
            assert {c.cpu: c.pages for c in full.cpus} == pages
            assert {c.cpu: c.pages for c in sampled.cpus} == pages
            assert full.exact
            for scan in (full, sampled):
                for c in scan.cpus:
                    mine = ts[cpu == c.cpu]
                    assert (c.first_ts, c.last_ts) == ((int(mine.min()), int(mine.max())) if len(mine) else
                                                       (None, None))
                    if len(c.ts):  # a page's stamp is at or before its first record
                        assert c.ts[0] <= c.first_ts and c.ts[-1] <= c.last_ts
            if len(ts):
                assert (full.first_ts, full.last_ts) == (int(ts.min()), int(ts.max()))
            assert sum(int((c.lost != 0).sum()) for c in full.cpus) == len(b.lost)
            # every committed byte is a page's: the estimate over the whole range is the data's size
            for c in full.cpus:
                assert c.bytes_before(np.array([c.last_ts + 1]))[0] == c.total_bytes


def test_preview_places_guests_on_the_host_clock_and_counts_exactly_once_decoded():
    """A synced guest's pages land where its decoded events do (the file's TIME_SHIFT); the preview's
    range is the loaded session's; decoded streams count their events exactly per CPU."""
    paths = [str(TSYNC / "trace.dat"), str(TSYNC / "trace-vmguest.dat")]
    res = load_session(paths)
    ss = res.session
    t = ss.merged().ts
    files = [open_trace(p) for p in paths]
    pv = build_preview(files)
    assert pv.full_range == (int(t.min()), int(t.max()))
    assert [s.role for s in pv.streams] == ["host", "guest"]
    guest = pv.streams[1]
    gts = ss.streams[guest.index].buffer.events.column("ts").to_numpy()
    assert (guest.scan.first_ts, guest.scan.last_ts) == (int(gts.min()), int(gts.max()))
    model = PreviewModel(pv)
    assert [r.label for r in model.rows] == ["host CPU 0", "host CPU 1", "vmguest VCPU0 (guest CPU)"]
    lo, hi = pv.full_range
    edges = np.array([lo, hi + 1])
    assert not model.is_exact(0)
    assert model.counts(0, edges)[0] > 0  # estimated from page bytes
    for b in files[0].buffers:
        pv.set_exact(b)
    host = ss.streams[pv.streams[0].index].buffer.events.column("cpu").to_numpy()
    assert model.is_exact(0) and not model.is_exact(2)
    assert model.counts(0, edges)[0] == (host == 0).sum()
    assert model.counts(1, edges)[0] == (host == 1).sum()
    img = model.render(lo, hi, 300)
    assert img.kind.shape == (30, 300) and img.alpha.max() > 0
    for f in files:
        f.close()


def test_time_offset_moves_the_preview():
    path = str(TRACES / "host-sched-v7.dat")
    with open_trace(path) as tf:
        a = build_preview([tf]).full_range
        b = build_preview([tf], {0: 5_000_000}).full_range
    assert (b[0] - a[0], b[1] - a[1]) == (5_000_000, 5_000_000)


@pytest.fixture
def gated(monkeypatch):
    """The app's loads stop after the preview until the test sets the returned event."""
    gate = threading.Event()
    real = loading.load_session

    def slow(*args, **kw):
        opened = kw.get("opened")

        def held(files):
            if opened is not None:
                opened(files)
            assert gate.wait(60), "the test never released the load"
        return real(*args, **{**kw, "opened": held})

    monkeypatch.setattr(loader, "load_session", slow)
    yield gate
    gate.set()


@pytest.fixture
def manager(qtbot):
    app = app_instance()
    quit_last = app.quitOnLastWindowClosed()
    m = WindowManager(app)
    yield m
    qtbot.waitUntil(lambda: not m.jobs, timeout=60000)
    for w in list(m.windows):
        w.close()
    app.setQuitOnLastWindowClosed(quit_last)


def _preview_window(qtbot, manager):
    qtbot.waitUntil(lambda: bool(manager.jobs) and manager.jobs[0].window is not None
                    and manager.jobs[0].window.isVisible(), timeout=30000)
    w = manager.jobs[0].window
    qtbot.waitExposed(w)
    qtbot.waitUntil(lambda: w.timeline.last is not None, timeout=10000)
    return w


def test_window_shows_the_preview_before_the_load_ends_and_zooms(qtbot, manager, gated):
    path = str(TRACES / "host-sched-v7.dat")
    manager.open(OpenRequest([path]))
    w = _preview_window(qtbot, manager)
    assert manager.jobs and w.loading is not None  # the load is still held
    tl = w.timeline
    assert [r.label for r in tl.model.rows] == ["host CPU 0", "host CPU 1"]
    with open_trace(path) as tf:
        ts = tf.buffers[0].events.column("ts").to_numpy()
        lost = len(tf.buffers[0].lost)
    full = (int(ts.min()), int(ts.max()))
    assert tl.full_range() == full
    assert tl.view_range() == full
    shade = tl.last.alpha.reshape(2, 10, -1)[:, 2]  # each row's body
    assert (shade > 0).mean() > 0.5  # both CPUs were busy all along: shaded across the view
    assert tl.hasFocus()  # the keys work without a click first
    qtbot.keyClick(tl, "+")
    t0, t1 = tl.view_range()
    assert t1 - t0 < (full[1] - full[0]) * 0.6
    qtbot.waitUntil(lambda: tl.last.t0 == t0, timeout=5000)  # re-rendered at the new range
    zoomed = tl.view_range()
    gated.set()
    qtbot.waitUntil(lambda: not manager.jobs, timeout=60000)
    assert w.loading is None and w in manager.windows and w.isVisible()
    assert [r.label for r in w.model.rows] == ["host CPU 0", "host CPU 1"]
    assert w.timeline.view_range() == zoomed  # the user's zoom stays
    assert w.timeline.full_range() == full
    assert w.event_list.model.rowCount() == len(ts) + lost  # events and the dropped-events lines
    assert not [b for b in w.statusBar().findChildren(QtWidgets.QProgressBar) if b.isVisible()]
    assert "Plots" in [m.text().replace("&", "") for m in w.menuBar().actions()]


def test_cancel_keeps_the_preview(qtbot, manager, gated):
    manager.open(OpenRequest([str(TRACES / "host-sched-v7.dat")]))
    w = _preview_window(qtbot, manager)
    loading_view = w.loading
    qtbot.mouseClick(loading_view.cancel_button, QtCore.Qt.MouseButton.LeftButton)
    gated.set()
    qtbot.waitUntil(lambda: not manager.jobs, timeout=30000)
    assert w.isVisible() and w in manager.windows
    assert "cancelled" in loading_view.note.text()
    assert not loading_view.cancel_button.isVisible()
    assert w.timeline.last is not None  # still the preview, still drawn


def test_closing_the_loading_window_cancels_its_load(qtbot, manager, gated):
    manager.open(OpenRequest([str(TRACES / "host-sched-v7.dat")]))
    w = _preview_window(qtbot, manager)
    job = manager.jobs[0]
    w.close()
    assert job.worker.cancel_event.is_set()
    gated.set()
    qtbot.waitUntil(lambda: not manager.jobs, timeout=30000)
    assert manager.windows == []


def test_final_view_equals_the_non_progressive_one(qtbot, manager, monkeypatch):
    """The demo (host + synced guest, a session file) through the progressive path and through
    build_window: the same rows, range, markers, list and pixels (windows as large as on a real
    screen: the offscreen screen is too narrow for the docks' 360 px beside the list)."""
    monkeypatch.setattr(mainwindow, "_initial_size", lambda: (1400, 900))
    state = load_session_file(DEMO_SESSION)
    manager.open(OpenRequest(list(state.files), dict(state.vcpu_map), state))
    qtbot.waitUntil(lambda: not manager.jobs and bool(manager.windows), timeout=60000)
    a = manager.windows[0]
    state = load_session_file(DEMO_SESSION)
    b = build_window(load_session(state.files, state.vcpu_map), state.files, state.vcpu_map, state)
    qtbot.addWidget(b)
    assert_same_window(qtbot, a, b)


def assert_same_window(qtbot, a, b) -> None:
    """Windows ``a`` and ``b`` (1400 x 900, shown) show the same rows, range, markers, list, docks,
    menus and pixels."""
    for w in (a, b):
        w.resize(1400, 900)
        w.show()
        qtbot.waitExposed(w)
    qtbot.waitUntil(lambda: a.timeline.pixel_width() == b.timeline.pixel_width(), timeout=5000)
    for w in (a, b):
        w.timeline.redraw()
    assert [r.label for r in a.model.rows] == [r.label for r in b.model.rows]
    assert a.timeline.view_range() == b.timeline.view_range()
    assert a.timeline.full_range() == b.timeline.full_range()
    assert a.view.markers == b.view.markers
    assert a.event_list.model.rowCount() == b.event_list.model.rowCount()
    assert [d.isVisible() for d in a.docks] == [d.isVisible() for d in b.docks]
    assert [m.text() for m in a.menuBar().actions()] == [m.text() for m in b.menuBar().actions()]
    assert np.array_equal(a.timeline.last.kind, b.timeline.last.kind)
    assert np.array_equal(a.timeline.last.alpha, b.timeline.last.alpha)
    assert a.timeline.grab().toImage() == b.timeline.grab().toImage()


def test_worker_decodes_even_if_no_window_shows_the_preview(monkeypatch):
    """The worker waits for the GUI to draw the preview before decoding, but not forever."""
    monkeypatch.setattr(loader, "PREVIEW_WAIT_S", 0.2)
    w = loader.LoadWorker([str(TRACES / "host-small-v7.dat")], progressive=True)
    got = []
    w.preview.connect(lambda p: got.append(("preview", p)))
    w.finished.connect(lambda r: got.append(("finished", r)))
    w.run()
    assert [k for k, _ in got] == ["preview", "finished"]
    assert got[0][1].full_range == (int(got[1][1].session.merged().ts.min()), int(got[1][1].session.merged().ts.max()))


def test_no_preview_when_the_load_cache_holds_every_file(tmp_path, monkeypatch):
    """A re-open from the cache is already fast: no page scan, no preview window to rebuild."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("KSHARK_PY_NO_CACHE", raising=False)
    path = str(TRACES / "host-small-v7.dat")
    seen = []
    load_session([path], opened=seen.append)
    assert len(seen) == 1  # first open: decoded, previewed
    load_session([path], opened=seen.append)
    assert len(seen) == 1  # second: from the cache


@pytest.mark.parametrize("kind", fuzzcases.KINDS)
def test_page_scan_never_raises_on_damaged_files(kind, tmp_path):
    """The fuzzer's mutated corpus files: a file that opens gets a preview that renders, whatever
    its pages, chunks or options say (what cannot be read is left out, never raised)."""
    for key in [k for k, (paths, _) in fuzzcases.CORPUS.items() if all(p.exists() for p in paths)]:
        for i in range(int(os.environ.get("KSHARK_FUZZ_EXAMPLES", "10")) // 3 + 1):
            case, datas = fuzzcases.make_case(key, FUZZ_SEED, i, kind)
            paths = []
            for k, data in enumerate(datas):
                p = tmp_path / f"{key}-{i}-{k}.dat"
                p.write_bytes(data)
                paths.append(p)
            try:
                files = [open_trace(p) for p in paths]
            except TraceDatError:
                continue
            try:
                pv = build_preview(files)
                lo, hi = pv.full_range or (0, 1)
                PreviewModel(pv).render(lo, max(hi, lo + 1), 200)
            except Exception as e:  # noqa: BLE001 - name the case
                raise AssertionError(f"case {case.label()} ({' '.join(case.steps)}): {e!r}") from e
            finally:
                for f in files:
                    f.close()


def test_escape_cancels_and_the_probe_tells_a_loading_window(qtbot, manager, gated):
    """Esc cancels as in the progress dialog it replaces; the probe (live tests) reports the window
    as loading, with its preview rows and range, then as cancelled."""
    from kshark_py.ui.probe import app_state

    path = str(TRACES / "host-sched-v7.dat")
    manager.open(OpenRequest([path]))
    w = _preview_window(qtbot, manager)
    mine = [x for x in app_state(lambda: 0)["windows"] if x["title"] == "kshark-py - host-sched-v7.dat"]
    assert [(x["kind"], x["rows"], x["cancelled"]) for x in mine] == [("loading", ["host CPU 0", "host CPU 1"], False)]
    assert mine[0]["range"] == list(w.timeline.full_range())
    w.activateWindow()
    qtbot.waitUntil(lambda: w.isActiveWindow(), timeout=5000)
    qtbot.keyClick(w.timeline, QtCore.Qt.Key.Key_Escape)
    gated.set()
    qtbot.waitUntil(lambda: not manager.jobs, timeout=30000)
    mine = [x for x in app_state(lambda: 0)["windows"] if x["title"] == "kshark-py - host-sched-v7.dat"]
    assert [(x["kind"], x["cancelled"]) for x in mine] == [("loading", True)]


def test_the_loaded_window_parses_only_the_formats_it_uses(qtbot, monkeypatch):
    """Building the window (the list's column widths) must not parse every format of the kernel:
    that was 0.8 s of the GUI thread after a 19 M-event load, with the preview already on screen."""
    from kshark_py.loaders.formats import PendingFormat

    monkeypatch.setenv("KSHARK_PY_NO_CACHE", "1")  # a cached file's formats come parsed

    path = str(TRACES / "host-sched-v7.dat")
    res = load_session([path])
    w = build_window(res, [path])
    qtbot.addWidget(w)
    slots = res.session.streams[0].trace.formats._slots
    assert sum(isinstance(s, PendingFormat) for s in slots) > len(slots) // 2
    assert w.event_list.model.rowCount() > 0


def test_a_load_that_fails_after_the_preview_closes_its_window(qtbot, manager, monkeypatch):
    """The reader's error after the preview is on screen: the one-line message box, and no window
    left behind (the app then has nothing open)."""
    from kshark_py.loaders.errors import CorruptSectionError

    real = loading.load_session

    def failing(*args, **kw):
        def then_fail(files):
            kw["opened"](files)
            raise CorruptSectionError("page commit exceeds the page", path=files[0].path, offset=4096)
        return real(*args, **{**kw, "opened": then_fail})

    monkeypatch.setattr(loader, "load_session", failing)
    said = []

    def close_boxes():
        for b in QtWidgets.QApplication.topLevelWidgets():
            if isinstance(b, QtWidgets.QMessageBox) and b.isVisible():
                said.append(b.text())
                b.close()

    timer = QtCore.QTimer()
    timer.timeout.connect(close_boxes)
    timer.start(20)
    manager.open(OpenRequest([str(TRACES / "host-sched-v7.dat")]))
    qtbot.waitUntil(lambda: not manager.jobs, timeout=30000)
    timer.stop()
    assert len(said) == 1 and "page commit exceeds the page" in said[0] and "4096" in said[0]
    assert manager.windows == []
    assert not [w for w in QtWidgets.QApplication.topLevelWidgets()
                if w.isVisible() and w.windowTitle() == "kshark-py - host-sched-v7.dat"]


def test_load_fills_the_window_in_and_ends_with_the_plain_window(qtbot, manager, monkeypatch):
    """End to end, with the reader's rows (small blocks): more than one delivery reaches the loading
    window, whose list grows in steps; the window it ends with is the one a plain load builds."""
    monkeypatch.setenv("KSHARK_PY_NO_CACHE", "1")
    monkeypatch.setattr(buffer_mod, "LOAD_BLOCK_BYTES", 64 << 10)
    monkeypatch.setattr(partial, "EMIT_SECONDS", 0.0)
    monkeypatch.setattr(mainwindow, "_initial_size", lambda: (1400, 900))
    path = str(TRACES / "host-sched-v7.dat")
    sent, listed = [], []
    real_add, real_seen = Preview.add_rows, LoadingView._rows_delivered

    def add_rows(self, rows):
        sent.append((len(rows.ts), rows.watermark, rows.done))
        return real_add(self, rows)

    def seen(self, index):
        real_seen(self, index)
        listed.append(self.event_list.model.rowCount())

    monkeypatch.setattr(Preview, "add_rows", add_rows)
    monkeypatch.setattr(LoadingView, "_rows_delivered", seen)
    manager.open(OpenRequest([path]))
    qtbot.waitUntil(lambda: not manager.jobs and bool(manager.windows), timeout=60000)
    a = manager.windows[0]
    b = build_window(load_session([path]), [path])
    qtbot.addWidget(b)
    total = b.session.streams[0].buffer.events.num_rows
    assert len(sent) > 1 and sent[-1][2] and sum(n for n, _, _ in sent) == total
    assert [w for _, w, _ in sent] == sorted(w for _, w, _ in sent)
    assert len(listed) > 1 and 0 < listed[0] < total  # the list grew in steps while the load ran
    assert listed == sorted(listed)
    assert a.loading is None
    assert_same_window(qtbot, a, b)
    rows = np.linspace(0, a.event_list.model.rowCount() - 1, 50).astype(int).tolist()
    assert [a.event_list.model.cell_text_at(r, c) for r in rows for c in range(9)] == \
        [b.event_list.model.cell_text_at(r, c) for r in rows for c in range(9)]


def test_load_lists_the_first_rows_and_counts_all_of_them_exactly(qtbot, manager, monkeypatch):
    """End to end, with the reader's rows and the list capped at LIST_ROWS: while the load runs the
    list holds min(N, delivered) rows and its caption counts them all; the CPU rows, on pixels of
    whole bins, show the final session's counts exactly before each delivery's watermark (the rows
    themselves are not kept: they are binned); the loaded window lists every row."""
    monkeypatch.setenv("KSHARK_PY_NO_CACHE", "1")
    monkeypatch.setattr(buffer_mod, "LOAD_BLOCK_BYTES", 64 << 10)
    monkeypatch.setattr(partial, "EMIT_SECONDS", 0.0)
    monkeypatch.setattr(partialstream, "LIST_ROWS", 30_000)
    path = str(TRACES / "host-sched-v7.dat")
    seen_rows, checked = [], []
    real_seen = LoadingView._rows_delivered

    def seen(self, index):
        real_seen(self, index)
        st = self.preview.streams[0]
        bins = st.partial.counts() if st.partial is not None else None
        if bins is None or bins.watermark is None:
            return  # decoded meanwhile: the table counts
        lst = self.event_list
        seen_rows.append((lst.model.rowCount(), st.partial.rows, lst.caption.text()))
        per = -(-(bins.cum.shape[1] - 1) // 200)
        edges = bins.lo + np.arange(201, dtype=np.int64) * per * bins.width
        below = edges[1:] <= bins.watermark
        checked.append((edges, below, [self.model.counts(k, edges) for k in range(len(self.model.rows))]))

    monkeypatch.setattr(LoadingView, "_rows_delivered", seen)
    manager.open(OpenRequest([path]))
    qtbot.waitUntil(lambda: not manager.jobs and bool(manager.windows), timeout=60000)
    w = manager.windows[0]
    ev = w.session.streams[0].buffer.events
    ts, cpu = ev.column("ts").to_numpy(), ev.column("cpu").to_numpy()
    assert len(seen_rows) > 1 and seen_rows[-1][1] > 30_000
    for listed, delivered, caption in seen_rows:
        assert listed == min(30_000, delivered)
        tail = "(the first 30,000 listed while loading; all of them when the load ends)" if delivered > 30_000 \
            else "(the list grows as the load decodes; the Info column comes when it ends)"
        assert caption == f"Events of host decoded so far: {delivered:,} {tail}"
    assert any(below.any() for _, below, _ in checked)
    for edges, below, got in checked:
        for c, counts in enumerate(got):
            want = np.diff(np.searchsorted(np.sort(ts[cpu == c]), edges))
            assert np.array_equal(counts[below], want[below])
    assert w.loading is None and w.event_list.model.rowCount() >= len(ev)  # (and a lost-events row)


def test_cancel_mid_decode_keeps_the_rows_decoded(qtbot, manager, monkeypatch):
    """Cancel after a few deliveries: the window stays with the preview, its list keeps the rows
    delivered before the cancel, and the rows they cover stay exact."""
    monkeypatch.setenv("KSHARK_PY_NO_CACHE", "1")
    monkeypatch.setattr(buffer_mod, "LOAD_BLOCK_BYTES", 64 << 10)
    monkeypatch.setattr(partial, "EMIT_SECONDS", 0.0)
    sent = []
    real_add = Preview.add_rows

    def add_rows(self, rows):
        sent.append(len(rows.ts))
        out = real_add(self, rows)
        if len(sent) == 3:
            manager.jobs[0].worker.cancel()  # the user's Esc, as the loading thread sees it
        return out

    monkeypatch.setattr(Preview, "add_rows", add_rows)
    manager.open(OpenRequest([str(TRACES / "host-sched-v7.dat")]))
    qtbot.waitUntil(lambda: not manager.jobs, timeout=60000)
    w = manager.windows[0]
    lv = w.loading
    assert lv is not None and lv.is_cancelled and "cancelled" in lv.note.text()
    assert len(sent) == 3
    lst = lv.event_list
    qtbot.waitUntil(lambda: lst.model.rowCount() == sum(sent), timeout=5000)
    assert "cancelled" in lst.caption.text() and lst.isVisible()
    assert lv.model.exact_until(0) is not None
