"""The compiled load path (loaders/kernels: page walk, k-way merge, scatter) and the pipelined
decompression give exactly what the numpy path gives, damaged input included; errors in the
decompression threads surface as the same typed error; a cancel stops within one block and leaves
no thread running.

Damaged files are copies of real ones, damaged in tmp_path (the shared traces are read in place).
"""

from __future__ import annotations

import struct
import threading

import numpy as np
import pytest

from kshark_py.loaders import buffer as buffer_mod
from kshark_py.loaders import pages
from kshark_py.loaders.errors import TraceDatError
from kshark_py.loaders.layout import layouts
from kshark_py.loaders.merge import CompiledMerge
from kshark_py.loaders.store import ChunkStore
from kshark_py.loaders.tracedat import open_trace
from kshark_py.model.session import HOT_FIELDS
from tests.support import kernelimpl
from tests.support.corpus import TRACES
from tests.support.mergeruns import random_runs

CORPUS = sorted(TRACES.rglob("*.dat"))


@pytest.fixture(params=["aot", "jit"])
def impl(request, monkeypatch, tmp_path_factory):
    """Each test below runs with both implementations of the kernels (tests/support/kernelimpl);
    the ahead-of-time one must take every call the loader makes (no argument mismatch)."""
    k = kernelimpl.use(request.param, monkeypatch, tmp_path_factory)
    before = getattr(k, "fallbacks", 0)
    yield k
    assert getattr(k, "fallbacks", 0) == before


def _snapshot(path, *, compiled: bool, ahead: int, strict: bool, monkeypatch, mixed: bool = False) -> list:
    """Everything a load produces, per buffer: tables, stats, losses, warnings, hot-field caches."""
    monkeypatch.setattr(pages, "COMPILED_MIN_BYTES", 0 if compiled else 1 << 62)
    monkeypatch.setattr(buffer_mod, "AHEAD", ahead)
    if compiled:  # ready before the load: every block and the merge compiled
        pages.start_warm_up()
        assert pages.wait_kernels()
    with open_trace(path, strict=strict) as tf:
        tf.hot_fields = HOT_FIELDS
        out = []
        for b in tf.buffers:
            try:
                t, lost = b.events, b.lost
            except TraceDatError as e:
                out.append(("error", type(e).__name__, e.one_line()))
                continue
            if not mixed:
                assert b._compiled == compiled
            stats = [(s.cpu, s.file_bytes, s.data_bytes, s.pages, s.events, s.lost_events, s.lost_unknown_pages,
                      s.truncated_bytes, s.truncated_pages, [(x.page, x.offset, x.reason) for x in s.bad_pages])
                     for s in b.stats]
            fields = {k: v.to_pylist() for k, v in sorted(b._field_cache.items())}
            rows = {k: v.tolist() for k, v in sorted(b._rows_cache.items())}
            out.append((t, lost, stats, fields, rows))
        out.append((list(tf.warnings), [str(x) for x in tf.losses]))
    return out


def _same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        if len(x) == 5 and hasattr(x[0], "equals"):
            assert x[0].equals(y[0]) and x[1].equals(y[1])
            assert x[2:] == y[2:]
        else:
            assert x == y


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(TRACES)))
def test_compiled_and_pipelined_load_equals_numpy_load(impl, path, monkeypatch):
    ref = _snapshot(path, compiled=False, ahead=1, strict=False, monkeypatch=monkeypatch)
    _same(ref, _snapshot(path, compiled=True, ahead=3, strict=False, monkeypatch=monkeypatch))
    _same(ref, _snapshot(path, compiled=True, ahead=1, strict=False, monkeypatch=monkeypatch))


def _pages_of(path: str) -> tuple[np.ndarray, int, int]:
    """CPU 0's decompressed pages of a real file, its page size and data offset."""
    with open_trace(path) as tf:
        b = tf.buffers[0]
        _ = b.events
        st = b.store
        n = min(len(st), 40)
        return st.decompress_range(0, n).copy(), b.page_size, tf.header_page.data_offset


@pytest.mark.parametrize("endian,long_size", [("<", 8), ("<", 4), (">", 8), (">", 4)])
def test_decode_kernel_equals_numpy_on_damaged_pages(impl, endian, long_size):
    """Random byte damage in real pages, read with either byte order and long size: the compiled
    walk finds the same records, common fields, missed-event marks and bad pages (same order)."""
    clean, ps, doff = _pages_of(str(TRACES / "host-sched-v7.dat"))
    lay = layouts(endian, long_size)
    rng = np.random.default_rng(20261207)
    for trial in range(120):
        data = clean.copy()
        for _ in range(int(rng.integers(0, 40))):
            at = int(rng.integers(0, len(data) - 8))
            if rng.random() < 0.5:
                data[at:at + 4] = rng.integers(0, 256, 4, dtype=np.uint8)
            else:  # a plausible-looking header: small type_len or a special type
                data[at & ~3] = np.uint8(rng.choice([0, 1, 2, 28, 29, 30, 31]))
        if trial % 3 == 0:  # damage commits and lost-event flags too
            for p in rng.integers(0, len(data) // ps, 5):
                struct.pack_into("<Q", data, int(p) * ps + 8, int(rng.integers(0, 1 << 32)))
        if trial % 7 == 0:
            data = data[: len(data) - int(rng.integers(1, ps))]  # a partial page at the end
        ref = pages.decode_pages(data, ps, lay, doff)
        eid, pid, flags, pre = buffer_mod.common_fields(data[: ref.n_pages * ps], ref.offset, ref.length, lay)
        cap = len(data) // 8 + 1
        cols = {k: np.full(cap + 3, 99, d) for k, d in buffer_mod._Columns.DTYPES.items()}
        got = pages.decode_into(data, ps, lay, doff, 1000, cols, 3)
        n = got.n
        assert n == len(ref.ts)
        assert got.n_pages == ref.n_pages and got.partial_page_bytes == ref.partial_page_bytes
        assert (cols["ts"][3:3 + n] == ref.ts).all()
        assert (cols["off"][3:3 + n] == ref.offset + 1000).all()
        assert (cols["len"][3:3 + n] == ref.length).all()
        for k, v in (("eid", eid), ("pid", pid), ("flags", flags), ("preempt", pre)):
            assert (cols[k][3:3 + n] == v).all(), k
        nz = np.flatnonzero(ref.missed)
        assert got.miss_idx.tolist() == (nz + 3).tolist()
        assert got.miss_val.tolist() == ref.missed[nz].tolist()
        assert [(b.page, b.offset, b.reason) for b in got.bad_pages] == \
               [(b.page, b.offset, b.reason) for b in ref.bad_pages]


def test_compiled_merge_positions_and_scatter_equal_the_reference_merge(impl):
    """The one-pass merge kernel (linear heads and heap), in slices of any size, split in two
    threads or not: labels, every column and the asked positions = merge_order, ties to the lower
    run and clocks going back included."""
    rng = np.random.default_rng(11)
    for _ in range(200):
        nseg = int(rng.choice([1, 2, 3, 8, 9, 20]))
        segs, order, inv, ts, bounds = random_runs(rng, nseg)
        n = len(order)
        cpu_ids = rng.permutation(40)[:nseg].astype(np.int16)
        pick = rng.permutation(n)[: int(rng.integers(0, n + 1))] if n else np.zeros(0, np.int64)
        cm = CompiledMerge(bounds, cpu_ids, pick)
        src = {"ts": ts.copy(), "pid": np.arange(n, dtype=np.int32) * 3, "eid": -np.arange(n, dtype=np.int32),
               "flags": (np.arange(n) % 251).astype(np.uint8), "preempt": (np.arange(n) % 7).astype(np.uint8),
               "off": np.arange(n, dtype=np.int64) << 33, "len": np.arange(n, dtype=np.int32) + 8}
        want = {k: v[order].tolist() for k, v in src.items()}
        out, labels = cm.run(src, chunk=int(rng.integers(1, 9)), split_from=int(rng.choice([0, 1 << 20])))
        run_of = np.repeat(np.arange(nseg), [len(s) for s in segs])
        assert labels.tolist() == cpu_ids[run_of[order]].tolist()
        assert {k: v.tolist() for k, v in out.items()} == want
        assert cm.positions(pick).tolist() == inv[pick].tolist()


V7 = TRACES / "vm-2guests" / "trace.dat"


def _chunk_table(path):
    with open_trace(path) as tf:
        b = tf.buffers[0]
        _ = b.events
        return b.store.file_offsets.copy(), b.store.csizes.copy()


def test_error_in_a_decompression_thread_is_the_same_typed_error(tmp_path, monkeypatch):
    """A chunk that does not decompress, several blocks into the data (the pool is working ahead):
    the same CorruptSectionError (file, section, offset, text) as the one-block-at-a-time load, and
    with strict=False the same salvage."""
    offs, _cs = _chunk_table(V7)
    data = bytearray(V7.read_bytes())
    bad = int(offs[len(offs) // 2])
    data[bad:bad + 4] = b"\xde\xad\xbe\xef"  # the zstd frame magic
    p = tmp_path / "bad.dat"
    p.write_bytes(bytes(data))
    monkeypatch.setattr(buffer_mod, "LOAD_BLOCK_BYTES", 1 << 16)  # many blocks: several in flight
    ref = _snapshot(p, compiled=False, ahead=1, strict=True, monkeypatch=monkeypatch)
    assert ref[0][0] == "error" and ref[0][1] == "CorruptSectionError"
    assert f"{p}: " in ref[0][2] and f"at byte {bad - 8}" in ref[0][2]
    _same(ref, _snapshot(p, compiled=True, ahead=4, strict=True, monkeypatch=monkeypatch))
    _same(_snapshot(p, compiled=False, ahead=1, strict=False, monkeypatch=monkeypatch),
          _snapshot(p, compiled=True, ahead=4, strict=False, monkeypatch=monkeypatch))


class _Stop(Exception):
    pass


def test_cancel_takes_effect_within_one_block_and_leaves_no_thread_working(monkeypatch):
    """Progress raising after the 3rd block: nothing more is decoded, every block the pool had
    started is finished or dropped before the error leaves, and repeated cancels add no threads."""
    monkeypatch.setattr(buffer_mod, "LOAD_BLOCK_BYTES", 1 << 16)
    monkeypatch.setattr(pages, "COMPILED_MIN_BYTES", 0)
    started: list = []
    real = ChunkStore.start_range

    def spy(self, a, b, **kw):
        pend = real(self, a, b, **kw)
        started.append(pend)
        return pend

    monkeypatch.setattr(ChunkStore, "start_range", spy)
    decoded = []
    real_part = buffer_mod.Buffer._decode_part

    def count(self, *a, **kw):
        decoded.append(1)
        return real_part(self, *a, **kw)

    monkeypatch.setattr(buffer_mod.Buffer, "_decode_part", count)
    before = None
    for attempt in range(6):
        started.clear()
        decoded.clear()
        calls = []

        def progress(nbytes, calls=calls):
            calls.append(nbytes)
            if len(calls) == 3:
                raise _Stop()

        with open_trace(V7) as tf:
            tf.progress = progress
            with pytest.raises(_Stop):
                _ = tf.buffers[0].events
            assert len(decoded) == 3
            assert len(started) > 3  # the pool was working ahead when the cancel came
            assert all(not pend.futures for pend in started)  # each was waited for or dropped
            tf.progress = None
            assert len(tf.buffers[0].events) > 0  # a later load still works
        if attempt == 0:
            before = threading.active_count()
        assert threading.active_count() <= before


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(TRACES)))
def test_compiled_cpu_runs_equal_numpy_cpu_runs(impl, path):
    """The task runs of every CPU from the one-pass kernel = the block-wise numpy rules (missing
    switches, clocks going back, open and zero-length runs), on every buffer of the corpus."""
    from kshark_py.model.intervals import cpu_runs

    with open_trace(path, strict=False) as tf:
        for b in tf.buffers:
            _ = b.events
            b._compiled = False
            ref = cpu_runs(b)
            b._compiled = True
            assert cpu_runs(b).equals(ref)


@pytest.mark.parametrize("name", ["vm-2guests/trace.dat", "host-sched-v6.dat", "host-lost-events.dat"])
def test_blocks_decoded_before_the_kernels_are_ready_use_numpy_and_join_up_exactly(impl, name, monkeypatch):
    """Until the warm-up ends the loader decodes blocks with numpy instead of waiting; blocks of
    either kind, interleaved, give the same load as numpy alone."""
    path = TRACES / name
    monkeypatch.setattr(buffer_mod, "LOAD_BLOCK_BYTES", 1 << 16)
    ref = _snapshot(path, compiled=False, ahead=1, strict=False, monkeypatch=monkeypatch)
    ticks = iter(range(1 << 30))
    monkeypatch.setattr(buffer_mod, "kernels_ready", lambda: next(ticks) % 3 == 1)
    _same(ref, _snapshot(path, compiled=True, ahead=3, strict=False, monkeypatch=monkeypatch, mixed=True))
