"""The one-file export's fast path (issue 13, speed): the compiled kernels' head start from a peek at
the file's header, the export waiting for them instead of decoding blocks with numpy, and the kernels'
lean load from numba's cache give the same file as before, and each decides as the reader would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kshark_py import cli
from kshark_py.loaders import earlywarm, pages
from kshark_py.loaders.tracedat import open_trace
from tests.support.corpus import TRACES

CORPUS = sorted(TRACES.rglob("*.dat"))


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(TRACES)))
def test_peek_finds_what_the_reader_finds(path):
    with open_trace(path) as tf:
        assert earlywarm.peek(str(path)) == (tf.file_size, tf.codec is not None)


def test_peek_refuses_what_is_not_a_trace(tmp_path):
    junk = tmp_path / "junk.dat"
    junk.write_bytes(b"not a trace at all" * 10)
    cut = tmp_path / "cut.dat"
    cut.write_bytes(b"\x17\x08\x44tracing")  # the magic, then nothing
    assert earlywarm.peek(str(junk)) is None
    assert earlywarm.peek(str(cut)) is None
    assert earlywarm.peek(str(tmp_path / "missing.dat")) is None
    assert earlywarm.peek(str(tmp_path)) is None  # a folder
    fifo = tmp_path / "fifo.dat"
    os.mkfifo(fifo)
    assert earlywarm.peek(str(fifo)) is None  # never opened: its bytes are the reader's (and it would block)


def _fake_warm_up(monkeypatch, seconds: float) -> threading.Thread:
    """A warm-up that takes ``seconds`` and succeeds, in place of the process's own."""
    t = threading.Thread(target=time.sleep, args=(seconds,), daemon=True)
    monkeypatch.setattr(pages, "_warm", t)
    monkeypatch.setattr(pages, "_warm_ok", True)
    t.start()
    return t


def test_kernels_ready_waits_only_inside_waiting_for_kernels(monkeypatch):
    _fake_warm_up(monkeypatch, 0.4)
    assert not pages.kernels_ready()  # outside: never waits
    t0 = time.monotonic()
    with pages.waiting_for_kernels(5.0):
        assert pages.kernels_ready()
    assert time.monotonic() - t0 < 2.0
    assert pages._wait_until is None


def test_waiting_for_kernels_gives_up_after_its_bound(monkeypatch):
    t = _fake_warm_up(monkeypatch, 1.5)
    t0 = time.monotonic()
    with pages.waiting_for_kernels(0.2):
        assert not pages.kernels_ready()  # still loading (a first run compiling): numpy goes on
        assert not pages.kernels_ready()  # the bound is for the whole load, not each block
    assert time.monotonic() - t0 < 1.0
    t.join()


def _export(path, out, monkeypatch, *, compiled: bool) -> None:
    monkeypatch.setattr(pages, "COMPILED_MIN_BYTES", 0 if compiled else 1 << 62)
    monkeypatch.setattr(pages, "WARM_UP_FILE_BYTES", 0 if compiled else 1 << 62)
    monkeypatch.setenv("KSHARK_PY_NO_CACHE", "1")
    assert cli.main(["export", "-i", str(path), "-o", str(out)]) == 0


@pytest.mark.parametrize("name", ["host-sched-v7.dat", "host-sched-v6.dat", "host-instances.dat",
                                  "host-lost-events.dat", "vm-2guests/trace.dat"])
def test_export_with_the_head_start_writes_the_numpy_file(name, tmp_path, monkeypatch):
    """The early warm-up and the wait change how blocks are decoded, never the file."""
    path = TRACES / name
    _export(path, tmp_path / "numpy.parquet", monkeypatch, compiled=False)
    monkeypatch.setattr(pages, "_warm", None)  # as in a new process: the command starts it
    started = []
    real = earlywarm.warm_up_early
    monkeypatch.setattr(earlywarm, "warm_up_early", lambda p: (started.append(p), real(p)))
    _export(path, tmp_path / "compiled.parquet", monkeypatch, compiled=True)
    assert started == [str(path)]
    assert pages._warm is not None and pages.wait_kernels()
    a, b = pq.read_table(tmp_path / "numpy.parquet"), pq.read_table(tmp_path / "compiled.parquet")
    assert a.schema == b.schema
    assert a.equals(b)


def test_no_head_start_for_a_small_file_or_a_cached_one(tmp_path, monkeypatch):
    path = str(TRACES / "host-sched-v7.dat")
    monkeypatch.setattr(pages, "_warm", None)
    monkeypatch.setenv("KSHARK_PY_NO_CACHE", "1")
    monkeypatch.setattr(pages, "WARM_UP_FILE_BYTES", 1 << 40)
    earlywarm._decide(path)  # below WARM_UP_FILE_BYTES: the kernels are not even loaded for it
    assert pages._warm is None
    monkeypatch.setattr(pages, "WARM_UP_FILE_BYTES", 0)
    monkeypatch.delenv("KSHARK_PY_NO_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    from kshark_py.loaders import loadcache

    monkeypatch.setattr(loadcache, "likely_hit", lambda fd, p: True)
    earlywarm._decide(path)
    assert pages._warm is None
    monkeypatch.setattr(loadcache, "likely_hit", lambda fd, p: False)
    earlywarm._decide(path)
    assert pages._warm is not None


def test_cache_off_reads_the_environment_as_loadcache_does(monkeypatch):
    from kshark_py.loaders import loadcache

    for value in ("", "0", "no", "false", " False ", "1", "yes", "true", "on"):
        monkeypatch.setenv("KSHARK_PY_NO_CACHE", value)
        assert earlywarm._cache_off() == (not loadcache.enabled()), value


def test_kernels_load_from_the_cache_without_numbas_full_refresh():
    """A process that finds the kernels in numba's cache loads them without importing numba's
    numpy/linalg implementations (what only compiling needs) nor its array allocation, and they work
    (test_kernels checks them against numpy on every corpus file)."""
    code = ("import sys; from kshark_py.loaders import kernels as k; k.warm_up(); "
            "hits = sum(sum(d.stats.cache_hits.values()) for d in k._KERNELS); "
            "print(hits, 'numba.np.linalg' in sys.modules, 'numba.np.arrayobj' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_DISABLE_JIT"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)  # fills the cache
    out = subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True, text=True)
    hits, linalg, arrayobj = out.stdout.split()
    assert int(hits) == 4  # decode_block (two signatures), merge_rows, cut_pass
    assert linalg == "False"
    assert arrayobj == "False"  # no kernel allocates (its scratch comes from the caller): 0.023 s less


def test_a_started_warm_up_can_be_joined_at_once(monkeypatch):
    """wait_kernels() from another thread as soon as the warm-up is published never finds it unstarted."""
    monkeypatch.setattr(pages, "_warm_up", lambda: None)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)  # the watcher spins holding the GIL: hand it over often (5 s -> under 1 s)
    try:
        for _ in range(200):
            monkeypatch.setattr(pages, "_warm", None)
            errors = []

            def watch(errors=errors):
                while pages._warm is None:
                    pass
                try:
                    pages.wait_kernels()
                except RuntimeError as e:  # "cannot join thread before it is started"
                    errors.append(e)

            w = threading.Thread(target=watch)
            w.start()
            pages.start_warm_up()
            w.join()
            assert not errors
    finally:
        sys.setswitchinterval(interval)


def test_opening_imports_neither_parquet_nor_compute():
    """Importing the export and opening a trace import neither pyarrow.parquet nor pyarrow.compute
    (~0.05 s, before the decode can start): the export imports them while the decode runs
    (export_cli._import_writer); the decode itself needs no Parquet."""
    code = ("import sys; from kshark_py.export import prepare; from kshark_py.loaders.tracedat import open_trace; "
            f"tf = prepare(open_trace({str(TRACES / 'host-sched-v7.dat')!r})); tf.formats; "
            "print('pyarrow.parquet' in sys.modules, 'pyarrow.compute' in sys.modules); tf.decode_all(); "
            "print('pyarrow.parquet' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env=dict(os.environ, KSHARK_PY_NO_CACHE="1"))
    assert out.stdout.split() == ["False", "False", "False"]


def _cmdlines_by_bsearch(text: bytes) -> dict[int, str]:
    """libtraceevent's lookup of every pid (the general path of parse_cmdlines)."""
    from kshark_py.loaders.metadata import CmdlineTable, saved_cmdline_entries

    entries = saved_cmdline_entries(text)
    table = CmdlineTable(entries)
    return {p: table.find(p) for p, _ in entries}


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(TRACES)))
def test_saved_cmdlines_without_duplicates_resolve_as_by_bsearch(path):
    """The fast path (no pid twice: no bsearch per pid, 0.012 -> 0.004 s on 6,552 entries) gives
    what libtraceevent's lookups give."""
    from kshark_py.loaders.layout import OptionId
    from kshark_py.loaders.metablocks import sized_block
    from kshark_py.loaders.metadata import parse_cmdlines

    with open_trace(path) as tf:
        text = sized_block(tf.sections.get(OptionId.CMDLINES), tf.lay.u64)
        assert parse_cmdlines(text) == _cmdlines_by_bsearch(text) == tf.cmdlines


def test_saved_cmdlines_with_duplicates_still_resolve_by_bsearch():
    from kshark_py.loaders.metadata import parse_cmdlines

    text = b"".join(f"{p} task{p}-{k}\n".encode() for k in range(3) for p in (5, 1, 9, 7, 3, 5, 2))
    got = parse_cmdlines(text)
    assert got == _cmdlines_by_bsearch(text)
    assert set(got) == {1, 2, 3, 5, 7, 9}


def test_comm_keeps_its_parquet_dictionary(tmp_path, monkeypatch):
    """comm's dictionary holds each name once, so the Parquet writer keeps it (a dictionary with
    repeats made Arrow fall back to every row's bytes: 35 MB through zstd on 3 M events); the
    values are the kernel's names as before."""
    from kshark_py.export import events_with_names, prepare

    out = tmp_path / "x.parquet"
    _export(TRACES / "vm-2guests/trace.dat", out, monkeypatch, compiled=False)
    meta = pq.ParquetFile(out).metadata
    comm = meta.schema.names.index("comm")
    for g in range(meta.num_row_groups):
        for c in (comm, meta.schema.names.index("system"), meta.schema.names.index("event")):
            assert "RLE_DICTIONARY" in meta.row_group(g).column(c).encodings
    with open_trace(TRACES / "vm-2guests/trace.dat") as tf:
        want = events_with_names(prepare(tf)).column("comm").combine_chunks()
    assert len(set(want.dictionary.to_pylist())) == len(want.dictionary)
    got = pq.read_table(out).column("comm").combine_chunks()
    assert got.cast(pa.binary()).equals(want.cast(pa.binary()))
    assert b"<...>" in want.dictionary.to_pylist() or b"<idle>" in want.dictionary.to_pylist()


def test_command_start_does_not_search_for_the_c_library():
    """The memory helpers take the C library from the process's own symbols: no ctypes.util (its
    import and ``find_library`` cost ~7 ms before every command, the export's head start included)."""
    code = ("import sys; import kshark_py.cli; from kshark_py.loaders import memory; "
            "print('ctypes.util' in sys.modules, memory._libc is not None)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.split() == ["False", "True"]


def test_the_command_ends_without_teardown_and_leaves_whole_files(tmp_path, monkeypatch):
    """``kshark-py export F -o X.parquet`` (the console script's :func:`~kshark_py.cli.run`) ends the
    process at once after the write (no interpreter teardown: an atexit hook does not run), with the
    file whole (= the in-process export), its message printed and the load cache entry it wrote
    complete (the next open is a hit); a failing export exits as usual."""
    path = TRACES / "host-sched-v7.dat"
    want = tmp_path / "want.parquet"
    monkeypatch.setenv("KSHARK_PY_NO_CACHE", "1")
    assert cli.main(["export", "-i", str(path), "-o", str(want)]) == 0
    monkeypatch.delenv("KSHARK_PY_NO_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    code = ("import atexit, sys; atexit.register(lambda: print('teardown ran', file=sys.stderr)); "
            "from kshark_py.cli import run; sys.argv[0] = 'kshark-py'; run()")
    out = tmp_path / "got.parquet"
    p = subprocess.run([sys.executable, "-c", code, "export", str(path), "-o", str(out)], capture_output=True,
                       text=True, env=dict(os.environ))
    assert p.returncode == 0, p.stderr
    n = pq.read_metadata(out).num_rows
    assert p.stderr == f"{out}: {n} events\n"  # the message, and no teardown
    assert pq.read_table(out).equals(pq.read_table(want))
    from kshark_py.loaders import loadcache

    with open_trace(path) as tf:
        e = loadcache.lookup(tf)
        assert e is not None and e.hit
        assert tf.buffers[0].events.num_rows == n
    bad = subprocess.run([sys.executable, "-c", code, "export", str(tmp_path), "-o", str(out)], capture_output=True,
                         text=True)
    assert bad.returncode == 2
    assert "Is a directory" in bad.stderr and "teardown ran" in bad.stderr
