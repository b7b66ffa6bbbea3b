"""The loader's exact rows while it decodes (``TraceFile.on_rows``, :mod:`kshark_py.loaders.partial`).

With tiny blocks (many per CPU) every corpus file, and cut copies of real files, must give the same
tables as a load with the usual block size, and its PartialRows, concatenated, must be the table's
rows in order; the decode goes in time order, so rows come before the first CPU is done.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kshark_py.loaders import buffer as buffer_mod
from kshark_py.loaders import pages, partial
from kshark_py.loaders.partial import PartialRows
from kshark_py.loaders.tracedat import TraceFile, open_trace
from kshark_py.model.session import HOT_FIELDS

TRACES = Path(__file__).resolve().parent.parent.parent / "shared" / "traces"
CORPUS = sorted(p for p in TRACES.rglob("*.dat") if p.stat().st_size > 0)
CUTS = ["host-sched-v6.dat", "host-sched-v7.dat", "host-instances.dat", "host-lost-events.dat",
        "vm-tsync/trace-vmguest.dat", "host-kvm.dat"]


def _load(path: Path, rows: list[PartialRows] | None = None) -> TraceFile:
    tf = open_trace(path, strict=False)
    tf.hot_fields = HOT_FIELDS
    if rows is not None:
        tf.on_rows = rows.append
    for b in tf.buffers:
        _ = b.events
    return tf


def _check(path: Path, monkeypatch: pytest.MonkeyPatch, compiled: bool) -> list[PartialRows]:
    """The tiny-block load with a row feed against a plain load; returns the PartialRows."""
    ref = _load(path)
    monkeypatch.setattr(buffer_mod, "LOAD_BLOCK_BYTES", 1)  # one page per block (a chunk compressed)
    monkeypatch.setattr(partial, "EMIT_SECONDS", 0.0)
    monkeypatch.setattr(buffer_mod, "want_compiled", lambda n: compiled)
    rows: list[PartialRows] = []
    got = _load(path, rows)
    assert got.warnings == ref.warnings
    for rb, gb in zip(ref.buffers, got.buffers, strict=True):
        assert gb.events.equals(rb.events), (path, gb.name)
        assert gb.lost.equals(rb.lost)
        assert [(s.cpu, s.events, s.pages, s.lost_events, s.truncated_bytes) for s in gb.stats] == \
            [(s.cpu, s.events, s.pages, s.lost_events, s.truncated_bytes) for s in rb.stats]
        rf, rr = rb.decoded_fields()
        gf, gr = gb.decoded_fields()
        assert gf.keys() == rf.keys() and all(gf[k].equals(rf[k]) for k in rf)
        assert gr.keys() == rr.keys() and all(np.array_equal(gr[k], rr[k]) for k in rr)
        mine = [p for p in rows if p.buffer is gb]
        assert mine and mine[-1].done and not any(p.done for p in mine[:-1])
        t = gb.events
        for name, col in (("ts", "ts"), ("cpu", "cpu"), ("pid", "pid"), ("event_id", "event_id")):
            cat = np.concatenate([getattr(p, name) for p in mine])
            assert np.array_equal(cat, t.column(col).to_numpy()), (path, gb.name, name)
            assert cat.dtype == t.column(col).to_numpy().dtype
        marks = [p.watermark for p in mine]
        assert all(b > a for a, b in zip(marks[:-2], marks[1:-1], strict=True)), "watermarks must increase"
        assert len(marks) < 2 or marks[-1] >= marks[-2]
        for p in mine[:-1]:  # every row handed out lies below its watermark
            assert not len(p.ts) or int(p.ts.max()) < p.watermark
    return rows


@pytest.fixture(scope="module")
def kernels() -> None:
    pages.start_warm_up()
    assert pages.wait_kernels()


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(TRACES)))
def test_partial_rows_are_the_table_prefix(traces: Path, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """numpy decoder: same tables with one-page blocks, and the rows handed out are the table's."""
    _check(path, monkeypatch, compiled=False)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(TRACES)))
def test_partial_rows_compiled(traces: Path, path: Path, monkeypatch: pytest.MonkeyPatch, kernels: None) -> None:
    """The compiled decoder and merge (regions with gaps: CompiledMerge) give the same."""
    _check(path, monkeypatch, compiled=True)


@pytest.mark.parametrize("name", CUTS)
@pytest.mark.parametrize("compiled", [False, True])
def test_partial_rows_of_cut_files(traces: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernels: None,
                                   name: str, compiled: bool) -> None:
    """A real file cut short inside its data (what a lenient load keeps) loads the same in time order."""
    data = (traces / name).read_bytes()
    cpus = open_trace(traces / name).buffers[0].cpu_data
    big = max(cpus, key=lambda c: c.size)  # cut in the middle of the biggest CPU's data
    cut = tmp_path / "cut.dat"
    cut.write_bytes(data[: big.offset + big.size // 2])
    _check(cut, monkeypatch, compiled)


def test_decode_goes_in_time_order(traces: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows come out before the first CPU is decoded whole: blocks are decoded by time, not CPU
    after CPU (the rows of CPU 0 still to come follow rows of other CPUs already handed out)."""
    for name in ("host-sched-v6.dat", "host-sched-v7.dat"):
        rows = _check(traces / name, monkeypatch, compiled=False)
        top = [p for p in rows if p.buffer.name == ""]
        first_cpu = top[0].buffer.cpu_data[0].cpu
        seen_others = False
        for k, p in enumerate(top[:-1]):
            seen_others |= bool((p.cpu != first_cpu).any())
            later = np.concatenate([q.cpu for q in top[k + 1:]])
            if seen_others and (later == first_cpu).any():
                break
        else:
            pytest.fail(f"{name}: CPU {first_cpu} was decoded whole before any other CPU's rows")
        assert sum(len(p) for p in top[:-1]) > len(top[0].buffer.events) // 2, "most rows come before the end"


def test_no_feed_without_callback(traces: Path) -> None:
    """No callback, no feed: the loader keeps nothing for it."""
    tf = _load(traces / "host-sched-v7.dat")
    assert all(b._feed is None for b in tf.buffers)


def test_times_going_back_stop_the_feed(traces: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A conversion that sends times back (guest samples that jump): the block keys are on the
    converted clock (each lowered to its CPU's later ones), each block is checked against its key, and
    where a promise would break the feed stops; what was handed out is still the table's first rows."""
    path = traces / "vm-tsync" / "trace.dat"
    tf0 = open_trace(path)
    mid = int(np.median(tf0.buffers[0].events.column("ts").to_numpy()))

    def dip(tf: TraceFile) -> None:
        orig = tf.convert_ts

        def conv(raw: np.ndarray, cpu: np.ndarray, *, raw_ts: bool = False) -> np.ndarray:
            t = orig(raw, cpu, raw_ts=raw_ts)
            return np.where(t > mid, t - 10**9, t)  # a second back at the median

        tf.convert_ts = conv

    monkeypatch.setattr(buffer_mod, "LOAD_BLOCK_BYTES", 1)
    monkeypatch.setattr(partial, "EMIT_SECONDS", 0.0)
    ref = open_trace(path)
    dip(ref)
    want = ref.buffers[0].events
    rows: list[PartialRows] = []
    tf = open_trace(path)
    dip(tf)
    tf.on_rows = rows.append
    t = tf.buffers[0].events
    assert t.equals(want)
    assert tf.buffers[0]._feed is None and not any(p.restart for p in rows)  # checked at the end: still the start
    assert np.array_equal(np.concatenate([p.ts for p in rows]), t.column("ts").to_numpy())
    before = sum(len(p) for p in rows[:-1])
    assert len(rows) > 2 and before > 0  # rows went out while decoding, not only with the table
    assert rows[-1].done and len(rows[-1]) == len(t) - before


def _fed_fuzz_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, seed: int, index: int):
    """A fuzz case's first file loaded leniently in one-page blocks, every delivery kept: (its first
    buffer's events, the deliveries)."""
    from . import fuzzcases

    _case, files = fuzzcases.make_case(key, seed, index, None, 0.25)
    path = tmp_path / "case.dat"
    path.write_bytes(files[0])
    monkeypatch.setattr(buffer_mod, "LOAD_BLOCK_BYTES", 1)
    monkeypatch.setattr(partial, "EMIT_SECONDS", 0.0)
    rows: list[PartialRows] = []
    tf = open_trace(path, strict=False)
    tf.on_rows = rows.append
    return tf.buffers[0].events, rows


@pytest.mark.parametrize("index", [84, 177])
def test_damaged_page_times_past_2_63_keep_the_feed_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          index: int) -> None:
    """Two fuzz cases (printk file; a page time of 2**63 or more, which the merge puts first as a
    negative int64): the decode's time order follows the merge's clock, so the deliveries are still
    the table's rows in order (they were CPU 1's rows before CPU 0's first ones)."""
    t, rows = _fed_fuzz_case(tmp_path, monkeypatch, "printk", 20261208, index)
    assert (t.column("ts").to_numpy() < 0).any()  # the damage this case is about
    assert rows[-1].done and (len(rows) > 1) == (index == 84)  # 177: a record before its block's key: stopped
    for name in ("ts", "cpu", "pid", "event_id"):
        assert np.array_equal(np.concatenate([getattr(p, name) for p in rows]), t.column(name).to_numpy()), name


@pytest.mark.parametrize("compiled", [False, True])
def test_a_cpu_named_twice_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compiled: bool) -> None:
    """A fuzz case (v7 file, its BUFFER option damaged so that CPU 0 is listed twice): two regions with one
    CPU label; the merge labels rows by run and the load neither fails nor loses a record."""
    from . import fuzzcases

    _case, files = fuzzcases.make_case("v7", 20261209, 134, None, 0.25)
    path = tmp_path / "case.dat"
    path.write_bytes(files[0])
    monkeypatch.setattr(buffer_mod, "want_compiled", lambda n: compiled)
    if compiled:
        pages.start_warm_up()
        assert pages.wait_kernels()
    monkeypatch.setattr(buffer_mod, "LOAD_BLOCK_BYTES", 1)
    monkeypatch.setattr(partial, "EMIT_SECONDS", 0.0)
    rows: list[PartialRows] = []
    tf = open_trace(path)
    tf.on_rows = rows.append
    b = tf.buffers[0]
    assert [cd.cpu for cd in b.cpu_data] == [0, 0]
    t = b.events
    assert t.num_rows == sum(st.events for st in b.stats) > 0
    assert (t.column("cpu").to_numpy() == 0).all()
    assert np.array_equal(np.concatenate([p.ts for p in rows]), t.column("ts").to_numpy())


def test_a_record_found_before_rows_already_sent_restarts_them(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A fuzz case (zlib file, a bit flipped in an event of CPU 16's first page: its records' times
    drop to ~0, below its page's time).  CPU 16 decodes late (by its page time), after rows of other
    CPUs went out that the table puts after those records: the last delivery says ``restart`` and
    holds the whole table (before, the rest was appended to the wrong first rows)."""
    t, rows = _fed_fuzz_case(tmp_path, monkeypatch, "zlib", 20261213, 232)
    ts = t.column("ts").to_numpy()
    sent = np.concatenate([p.ts for p in rows[:-1]])
    assert len(sent) and not np.array_equal(sent, ts[:len(sent)])  # the damage: what went out was not the start
    assert [p.restart for p in rows] == [False] * (len(rows) - 1) + [True] and rows[-1].done
    for name in ("ts", "cpu", "pid", "event_id"):
        assert np.array_equal(getattr(rows[-1], name), t.column(name).to_numpy()), name


def test_fingerprint_sees_place_and_order() -> None:
    """The sent rows' checksum: the same rows in the same places agree (in any split into
    consecutive runs); a swap, another CPU or another time does not."""
    rng = np.random.default_rng(5)
    ts = np.sort(rng.integers(0, 1 << 40, 700_000)).astype(np.int64)
    cpu = rng.integers(0, 8, len(ts)).astype(np.int16)
    whole = partial.fingerprint(ts, cpu)
    cut = 300_001
    assert (partial.fingerprint(ts[:cut], cpu[:cut]) + partial.fingerprint(ts[cut:], cpu[cut:], cut)) % (1 << 64) \
        == whole
    swapped = ts.copy()
    swapped[[10, 11]] = swapped[[11, 10]]
    other = cpu.copy()
    other[-1] = (other[-1] + 1) % 8
    later = ts.copy()
    later[123_456] += 1
    assert len({whole, partial.fingerprint(swapped, cpu), partial.fingerprint(ts, other),
                partial.fingerprint(later, cpu)}) == 4
