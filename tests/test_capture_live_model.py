"""The live model of a recording (capture.live): while pages arrive its per-stream tables grow, and after the
last poll they equal, event for event and nanosecond for nanosecond on the host clock, the tables our reader
gives for the written files (host, a guest over TCP, a guest over FIFOs; and a local-only recording).

The corpus case needs no root: real files' CPU pages are fed in uneven pieces to a stream whose conversion is
the file's, and the snapshot must equal the reader's table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kshark_py.capture.control import Recording
from kshark_py.capture.eventspec import EventSpec
from kshark_py.capture.live import LiveCapture, LiveStream
from kshark_py.capture.livecount import PageFormat
from kshark_py.capture.session import GuestConfig, HostSession
from kshark_py.loaders.tracedat import open_trace
from kshark_py.model.livesession import LiveSessionBuilder
from kshark_py.model.session import Session

from .support.capture import ROOT, fifo_guest, our_agent

TRACES = ROOT.parent / "shared" / "traces"
COLUMNS = ("ts", "cpu", "pid", "event_id", "flags", "preempt", "length")
LOAD = "sh -c 'for i in $(seq 40); do ls / >/dev/null; sleep 0.05; done'"


def assert_same(snap, buf, what: str) -> None:
    t = buf.events
    assert snap.events.num_rows == t.num_rows, (what, snap.events.num_rows, t.num_rows)
    for c in COLUMNS:
        a, b = snap.events.column(c).to_numpy(), t.column(c).to_numpy()
        assert np.array_equal(a, b), (what, c, np.flatnonzero(a != b)[:5])
    assert snap.lost.equals(buf.lost), what
    for st in buf.stats:
        assert snap.cpu_lost.get(st.cpu, (0, 0)) == (st.lost_events, st.lost_unknown_pages), (what, st.cpu)


def _cpu_bytes(tf, buf) -> dict[int, bytes]:
    """Each CPU's page data as the kernel gave it (decompressed from the file's chunks if need be)."""
    if not buf.compressed:
        raw = Path(tf.path).read_bytes()
        return {cd.cpu: raw[cd.offset:cd.offset + cd.size] for cd in buf.cpu_data}
    counts = [len(buf._chunks[cd.cpu].usizes) if buf._chunks[cd.cpu] is not None else 0 for cd in buf.cpu_data]
    starts = np.concatenate(([0], np.cumsum(counts))).tolist()
    return {cd.cpu: buf.store.decompress_range(a, b).tobytes() if b > a else b""
            for cd, a, b in zip(buf.cpu_data, starts[:-1], starts[1:], strict=True)}


@pytest.mark.parametrize("name", ["host-lost-events.dat", "host-sched-v6.dat"])
def test_slices_make_the_readers_table(tmp_path, name):
    tf = open_trace(TRACES / name)
    buf = tf.buffers[0]
    assert buf.events.num_rows  # loaded: chunk tables and stats
    fmt = PageFormat(buf.page_size, tf.lay, tf.header_page.data_offset)
    st = LiveStream("host", "host", Path(tf.path), tf.meta.trace_id)
    st.fmt = fmt
    st.set_conversion(tf.meta.time_shift, tf.meta.tsc2nsec, "file")
    st.convert = lambda raw, cpu: tf.convert_ts(raw, np.full(len(raw), cpu, np.int16))  # the file's offsets too
    rng = np.random.default_rng(2)
    grown = []
    files = {}
    for cpu, data in _cpu_bytes(tf, buf).items():
        files[cpu] = (tmp_path / f"cpu{cpu}", data, sorted(rng.integers(0, max(1, len(data)), 5).tolist()))
        files[cpu][0].write_bytes(b"")
    for step in range(6):
        for cpu, (path, data, cuts) in files.items():
            upto = cuts[step] if step < len(cuts) else len(data)
            path.write_bytes(data[:upto])
            st.cpu(cpu, path).update(budget=5 * buf.page_size)
        grown.append(st.snapshot().events.num_rows)
    for cpu in files:
        while st.cpus[cpu].update(budget=5 * buf.page_size):
            pass
    assert grown == sorted(grown) and grown[0] < buf.events.num_rows
    assert_same(st.snapshot(), buf, name)


def test_far_behind_skips_ahead_then_the_final_poll_fills_the_gaps(tmp_path, traces, monkeypatch):
    """A bounded view far behind jumps to each CPU's newest pages (it shows the newest events at once); the
    final, unbudgeted poll decodes what it jumped over: the table is then the reader's, whole."""
    from kshark_py.capture import live as live_mod

    tf = open_trace(traces / "host-lost-events.dat")
    buf = tf.buffers[0]
    assert buf.events.num_rows
    ps = buf.page_size
    monkeypatch.setattr(live_mod, "SKIP_KEEP", 4 * ps)
    st = LiveStream("host", "host", Path(tf.path), tf.meta.trace_id)
    st.fmt = PageFormat(ps, tf.lay, tf.header_page.data_offset)
    st.skip_bytes = 8 * ps
    st.convert = lambda raw, cpu: tf.convert_ts(raw, np.full(len(raw), cpu, np.int16))
    for cpu, data in _cpu_bytes(tf, buf).items():
        (tmp_path / f"cpu{cpu}").write_bytes(data)
        c = st.cpu(cpu, tmp_path / f"cpu{cpu}")
        c.update(budget=2 * ps)
        if len(data) > 8 * ps:
            assert c.gaps and c.counted_bytes == len(data) - 4 * ps + 2 * ps  # jumped, then decoded 2 pages
    snap = st.snapshot()
    full = buf.events
    assert 0 < snap.events.num_rows < full.num_rows
    cpus_full = full.column("cpu").to_numpy()
    for cpu in np.unique(snap.events.column("cpu").to_numpy()):  # a CPU's newest events, not its oldest
        mine = snap.events.column("ts").to_numpy()[snap.events.column("cpu").to_numpy() == cpu]
        theirs = full.column("ts").to_numpy()[cpus_full == cpu]
        assert mine[0] > theirs[0] and np.isin(mine, theirs).all()
    st.fill_gaps = False  # too much skipped to decode at Stop: the gaps stay, the counts say they are partial
    for c in st.cpus.values():
        c.update(None)
    assert any(c.gap_bytes for c in st.cpus.values())
    assert st.events < full.num_rows
    st.fill_gaps = True
    for c in st.cpus.values():
        c.update(None)
        assert not c.gaps and not c.gap_bytes
    assert_same(st.snapshot(), buf, "after the final poll")


def _run(tmp: Path, guests: list[GuestConfig], host: bool = True, keep_events: int | None = None,
         tsync: int = 0):
    session = HostSession(tmp / "trace.dat", [EventSpec.parse("sched:sched_switch")] if host else [], guests,
                          tsync_interval=tsync)
    live = LiveCapture(session, keep_events=keep_events)
    rec = Recording(session, command=LOAD, live=live)
    rec.start()
    rows_while = {}
    while rec.is_alive():
        if rec.state == "recording":
            for s in live.snapshots():
                rows_while[s.name] = max(rows_while.get(s.name, 0), s.events.num_rows)
        rec.join(0.2)
    assert rec.error is None, rec.error
    return rec, live, rows_while


def _check(tmp: Path, rec: Recording, live: LiveCapture, rows_while: dict, names: list[str]) -> None:
    files = [open_trace(f) for f in rec.files]
    session = Session.from_files(files)
    snaps = {s.name: s for s in live.snapshots()}
    assert sorted(snaps) == sorted(names)
    for stream in session.streams:
        snap = snaps[stream.name]
        assert snap.synced
        assert_same(snap, stream.buffer, stream.name)
        assert snap.events.num_rows > 0
        assert rows_while.get(stream.name, 0) > 0, f"{stream.name}: no live row before Stop"
    for st in session.guests:
        assert st.synced
        # the panel's counters come from the live model's decoding (each guest page decoded once)
        for cs in st.trace.buffers[0].stats:
            c = rec.counts.counter(st.name, cs.cpu)
            assert c is not None and (c.events, c.lost) == (cs.events, cs.lost_events), (st.name, cs.cpu)
    # a view that first looks after the recording is closed (its temp files gone) still gets every stream
    later = LiveSessionBuilder().build(live.snapshots())
    assert [s.name for s in later.streams] == [s.name for s in session.streams]
    assert [s.buffer.events.num_rows for s in later.streams] == [s.buffer.events.num_rows for s in session.streams]


def test_live_tables_equal_the_files_tcp_guest(env_ok, tmp_path):
    with our_agent(tmp_path) as ag:
        g = GuestConfig(f"g@127.0.0.1:{ag.port}", specs=[EventSpec.parse("sched:sched_switch"),
                                                         EventSpec.parse("sched:sched_wakeup")])
        rec, live, rows_while = _run(tmp_path, [g])
        ag.proc.wait(timeout=30)
    _check(tmp_path, rec, live, rows_while, ["host", "g"])


@pytest.fixture
def fifos():
    with fifo_guest("gl") as name:
        yield name


def test_live_tables_equal_the_files_fifo_guest(env_ok, tmp_path, fifos):
    with our_agent(tmp_path) as ag:
        g = GuestConfig(f"{fifos}@127.0.0.1:{ag.port}", specs=[EventSpec.parse("sched:sched_switch")],
                        fifos_required=True)
        rec, live, rows_while = _run(tmp_path, [g])
        ag.proc.wait(timeout=30)
    assert rec.session.guests[0].resp.use_fifos
    _check(tmp_path, rec, live, rows_while, ["host", fifos])


def test_live_tables_equal_the_file_local_only(env_ok, tmp_path):
    rec, live, rows_while = _run(tmp_path, [])
    _check(tmp_path, rec, live, rows_while, ["host"])
    assert [n for n, *_ in live.summary()] == ["host"]
    assert live.summary()[0][1] == open_trace(rec.files[0]).buffers[0].events.num_rows


def test_bounded_live_tables_keep_the_newest(env_ok, tmp_path):
    """keep_events: the live table holds at most about that many events (whole slices), the newest ones; the
    file and the counters keep everything."""
    rec, live, _rows = _run(tmp_path, [], keep_events=50)
    snap = live.snapshots()[0]
    tf = open_trace(rec.files[0])
    full = tf.buffers[0].events
    assert full.num_rows > snap.events.num_rows
    assert live.summary()[0][1] == full.num_rows
    # the newest events are the file's last ones, per CPU
    for cpu in np.unique(snap.events.column("cpu").to_numpy()):
        a = snap.events.column("ts").to_numpy()[snap.events.column("cpu").to_numpy() == cpu]
        b = full.column("ts").to_numpy()[full.column("cpu").to_numpy() == cpu]
        assert np.array_equal(a, b[len(b) - len(a):])


def test_a_guest_without_time_sync_is_flagged_and_aligned_by_first_event(env_ok, tmp_path):
    """No samples (time sync off): the guest is "not synchronized yet", shifted so its first event meets the
    host's first; its events are otherwise the file's (which stay on the guest clock, as trace-cmd's)."""
    with our_agent(tmp_path) as ag:
        g = GuestConfig(f"g@127.0.0.1:{ag.port}", specs=[EventSpec.parse("sched:sched_switch")])
        rec, live, rows_while = _run(tmp_path, [g], tsync=-1)
        ag.proc.wait(timeout=30)
    host, guest = live.snapshots()
    assert host.synced and not guest.synced and guest.time_shift is None
    assert guest.events.column("ts").to_numpy().min() == host.events.column("ts").to_numpy().min()
    assert guest.align_ns != 0
    buf = open_trace(tmp_path / "trace-g.dat").buffers[0]
    assert np.array_equal(guest.events.column("ts").to_numpy() - guest.align_ns, buf.events.column("ts").to_numpy())
    session = LiveSessionBuilder().build([host, guest])
    assert not session.guests[0].synced


def test_keep_seconds_drops_the_oldest_slices(tmp_path, traces):
    """keep_seconds: slices that end before the newest event minus the window go; a slice that reaches into
    the window stays whole, so nothing inside the window is lost."""
    tf = open_trace(traces / "host-sched-v6.dat")
    buf = tf.buffers[0]
    assert buf.events.num_rows
    ps = buf.page_size
    st = LiveStream("host", "host", Path(tf.path), tf.meta.trace_id)
    st.fmt = PageFormat(ps, tf.lay, tf.header_page.data_offset)
    st.convert = lambda raw, cpu: tf.convert_ts(raw, np.full(len(raw), cpu, np.int16))
    for cpu, data in _cpu_bytes(tf, buf).items():
        (tmp_path / f"cpu{cpu}").write_bytes(data)
        c = st.cpu(cpu, tmp_path / f"cpu{cpu}")
        while c.update(budget=2 * ps):  # many small slices
            pass
    full = st.snapshot().events.column("ts").to_numpy()
    window = (int(full.max()) - int(full.min())) // 4
    st.trim(window, None)
    kept = st.snapshot().events
    ts = kept.column("ts").to_numpy()
    assert 0 < len(ts) < len(full)
    newest = int(full.max())
    inside = full[full >= newest - window]
    assert np.isin(inside, ts).all()  # everything in the window stays
    assert len(ts) < len(full) and st.events == len(full)  # the counters still count everything


def test_the_decode_budget_shrinks_only_when_decoding_is_dear():
    """A bounded live view decodes for about DECODE_SHARE of a core: a dear poll shrinks the next poll's
    budget, cheap polls (a slow stream) let it grow back, never below MIN_BUDGET."""
    from types import SimpleNamespace

    from kshark_py.capture import live as live_mod

    lc = LiveCapture(SimpleNamespace(), keep_events=1000)
    assert lc._budget == live_mod.POLL_BUDGET
    lc._adapt(200_000, 0.001, 100.0)  # a slow stream: cheap
    lc._adapt(200_000, 0.001, 100.25)
    assert lc._budget == live_mod.POLL_BUDGET
    lc._adapt(16 << 20, 0.25, 100.5)  # 16 MB took a whole interval: ~DECODE_SHARE of it next time
    assert lc._budget == int((16 << 20) * live_mod.DECODE_SHARE * 0.25 / 0.25)
    for k in range(10):
        lc._adapt(1 << 20, 0.001, 101.0 + k * 0.25)
    assert lc._budget == live_mod.POLL_BUDGET
    lc._adapt(1, 10.0, 104.0)
    assert lc._budget == live_mod.MIN_BUDGET
