"""The load cache: a re-opened trace decodes nothing and gives the very tables a fresh load gives;
a stale, cut, edited or foreign entry is rebuilt; concurrent opens and --no-cache behave."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kshark_py.loaders import cachefile, loadcache
from kshark_py.loaders.buffer import Buffer
from kshark_py.loaders.errors import TraceDatError
from kshark_py.model.loading import load_session
from kshark_py.model.taskindex import TaskIndex
from tests.support.corpus import TRACES

SINGLE = sorted(str(p.relative_to(TRACES)) for p in TRACES.rglob("*.dat"))
SESSIONS = [
    ["vm-tsync/trace.dat", "vm-tsync/trace-vmguest.dat"],
    ["vm/trace.dat", "vm/trace-vmguest.dat"],
    ["vm-2guests/trace.dat", "vm-2guests/trace-vmguestA.dat", "vm-2guests/trace-vmguestB.dat"],
    ["protocol/ptp-1vcpu/trace.dat", "protocol/ptp-1vcpu/trace-vmguest.dat"],
    ["external/doc-test/trace.dat", "external/doc-test/trace-Salamander4.dat"],
]


def _no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, decoding a buffer fails the test: a cache hit must not decode."""
    def boom(self: Buffer) -> None:
        raise AssertionError(f"buffer {self.name!r} of {self.trace.path} decoded despite the cache")

    monkeypatch.setattr(Buffer, "_load", boom)


def _entries() -> list[str]:
    return sorted(e.path for e in loadcache.entries())


def _load(paths: list[str], **kw):
    try:
        return load_session(paths, **kw)
    except TraceDatError as e:
        return e


def _snapshot(res) -> dict:
    """Everything a load produced that the app and the commands read, as plain comparable values."""
    if isinstance(res, Exception):
        return {"error": str(res)}
    s = res.session
    m = s.merged()
    out = {"warnings": res.warnings, "vcpus": res.vcpu_map, "file_warnings": [tf.warnings for tf in s.files],
           "merged": (np.asarray(m.stream).tolist(), np.asarray(m.row).tolist(), m.ts.tolist()),
           "streams": []}
    for st in s.streams:
        b = st.buffer
        fields, rows = b.decoded_fields()
        n = b.events.num_rows
        sample = sorted({0, n // 3, n // 2, n - 1}) if n else []
        out["streams"].append({
            "name": st.name, "events": b.events.to_pydict(), "lost": b.lost.to_pydict(),
            "stats": b.stats, "losses": b.losses,
            "fields": {k: v.to_pylist() for k, v in fields.items()},
            "rows": {k: v.tolist() for k, v in rows.items()},
            "runs": s.runs(st.index).to_pydict(),
            "formats": sorted((ev.id, repr(ev)) for ev in st.trace.formats),
            "payloads": [b.payload(r) for r in sample],
            "task_names": s.task_names(st.index),
            "ticks": [s.cpu_ticks(st.index, c).tolist() for c in range(st.cpu_count)], "sorted": s.ts_sorted(st.index),
        })
    out["tasks"] = TaskIndex(s).labels
    out["files"] = [(tf.cmdlines, tf.kallsyms.text,
                     {k: (v.dtype.str, v.tobytes()) for k, v in tf.kallsyms.index().items()}) for tf in s.files]
    return out


def _identical(paths: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    loadcache.set_enabled(False)
    try:
        fresh = _snapshot(_load(paths))
    finally:
        loadcache.set_enabled(True)
    assert _entries() == [], "the cache off wrote an entry"
    first = _snapshot(_load(paths))  # decodes, writes the entries
    assert first == fresh
    if "error" in fresh:
        assert _entries() == [], "a failed load wrote an entry"
        return
    assert len(_entries()) == len(set(paths))
    with monkeypatch.context() as m:
        _no_decoding(m)
        hit = _load(paths)
        # the parsed metadata the window needs at once came with the entry too
        assert all({"kallsyms", "cmdlines"} <= tf.__dict__.keys() for tf in hit.session.files)
        again = _snapshot(hit)
    assert again == fresh


@pytest.mark.parametrize("name", SINGLE)
def test_cached_file_gives_identical_tables(traces: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _identical([str(traces / name)], monkeypatch)


@pytest.mark.parametrize("names", SESSIONS, ids=lambda n: n[0].split("/")[0])
def test_cached_session_gives_identical_tables(traces: Path, names: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    _identical([str(traces / n) for n in names], monkeypatch)


def test_time_offset_session_caches_the_file_unshifted(traces: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [str(traces / "vm/trace.dat"), str(traces / "vm/trace-vmguest.dat")]
    shifted = _snapshot(_load(paths, time_offsets={"vmguest": 12345}))
    plain = _snapshot(_load(paths))  # hits the entries the shifted load wrote
    with monkeypatch.context() as m:
        _no_decoding(m)
        assert _snapshot(_load(paths, time_offsets={"vmguest": 12345})) == shifted
    loadcache.set_enabled(False)
    try:
        assert _snapshot(_load(paths)) == plain
    finally:
        loadcache.set_enabled(True)


def _copy(traces: Path, tmp_path: Path, name: str = "host-sched-v7.dat") -> str:
    dst = tmp_path / "copy.dat"
    shutil.copyfile(traces / name, dst)
    return str(dst)


def test_trace_changed_on_disk_is_read_again(traces: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _copy(traces, tmp_path)
    first = load_session([path]).session.streams[0].buffer.events.num_rows
    # same path, another trace: the old entry must not answer for it
    shutil.copyfile(traces / "host-kvm.dat", path)
    other = load_session([path]).session.streams[0].buffer.events.num_rows
    with monkeypatch.context():
        loadcache.set_enabled(False)
        try:
            want = load_session([path]).session.streams[0].buffer.events.num_rows
        finally:
            loadcache.set_enabled(True)
    assert other == want != first
    # same size, same mtime, one data byte changed: still read again (the key sums the whole file)
    st = os.stat(path)
    res = load_session([path])
    b = res.session.streams[0].buffer
    off = int(b.events.column("offset")[len(b.events) // 2].as_py()) if not b.compressed else st.st_size - 9
    data = bytearray(Path(path).read_bytes())
    data[off] ^= 0x01
    Path(path).write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    e = loadcache.lookup(__import__("kshark_py.loaders.tracedat", fromlist=["x"]).open_trace(path))
    assert e is not None and not e.hit


def test_touch_rereads(traces: Path, tmp_path: Path) -> None:
    path = _copy(traces, tmp_path)
    load_session([path])
    from kshark_py.loaders.tracedat import open_trace

    assert loadcache.lookup(open_trace(path)).hit
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert not loadcache.lookup(open_trace(path)).hit


def _corrupt_cases(size: int) -> list[tuple[str, object]]:
    rng = np.random.default_rng(20261207)
    cases: list[tuple[str, object]] = [("empty", 0), ("magic only", 8), ("half", size // 2), ("minus one", size - 1),
                                       ("minus trailer", size - cachefile.TRAILER.size)]
    cases += [(f"cut {int(n)}", int(n)) for n in rng.integers(1, size, 6)]
    cases += [(f"flip {int(p)}", ("flip", int(p))) for p in rng.integers(0, size, 12)]
    cases += [("flip last", ("flip", size - 1)), ("flip first", ("flip", 0)), ("append", ("append", b"x" * 9)),
              ("foreign", ("foreign", b"PAR1" + bytes(100)))]
    return cases


def _one_of_each_kind(cases: list[tuple[str, object]]) -> set[str]:
    """The named damages and the first of the random cuts and of the random flips."""
    first: dict[str, str] = {}
    for what, _how in cases:
        kind = what.split()[0] if what.split()[-1].isdigit() else what
        first.setdefault(kind, what)
    return set(first.values())


def test_damaged_entry_is_rebuilt_never_trusted(traces: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Truncated, flipped, appended or foreign bytes: the entry is discarded, the trace decoded
    again, the tables equal a fresh load's, and the rebuilt entry is good again.

    Every damage is refused by the container and by the load's lookup (which deletes it); the whole
    load (decode, tables compared, entry rebuilt) runs once per kind of damage: the random cuts and
    flips differ only in where, and a refused entry takes the same path whatever refused it."""
    from kshark_py.loaders.tracedat import open_trace

    for name in ("host-sched-v7.dat", "host-sched-v6.dat"):
        path = str(traces / name)
        loadcache.set_enabled(False)
        try:
            want = _snapshot(_load([path]))
        finally:
            loadcache.set_enabled(True)
        load_session([path])
        (entry,) = _entries()
        good = Path(entry).read_bytes()
        cases = _corrupt_cases(len(good))
        whole = _one_of_each_kind(cases)
        assert len(whole) == 11  # 5 cuts at set places, a random cut, a random flip, 2 flips, append, foreign
        for what, how in cases:
            if isinstance(how, int):
                bad = good[:how]
            elif how[0] == "flip":
                bad = bytearray(good)
                bad[how[1]] ^= 0x20
                bad = bytes(bad)
            elif how[0] == "append":
                bad = good + how[1]
            else:
                bad = how[1]
            Path(entry).write_bytes(bad)
            with pytest.raises(cachefile.CacheFileError):
                cachefile.read(entry)
            if what not in whole:
                with open_trace(path) as tf:
                    assert not loadcache.lookup(tf).hit, what
                assert not os.path.exists(entry), f"{what}: not deleted"
                Path(entry).write_bytes(good)
                continue
            assert _snapshot(_load([path])) == want, what
            assert Path(entry).read_bytes() == good, f"{what}: not rebuilt"
        Path(entry).unlink()


def test_entry_of_another_reader_version_is_rebuilt(traces: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(traces / "host-sched-v7.dat")
    load_session([path])
    monkeypatch.setattr(loadcache, "FORMAT_VERSION", loadcache.FORMAT_VERSION + 1)
    from kshark_py.loaders.tracedat import open_trace

    tf = open_trace(path)
    e = loadcache.lookup(tf)
    assert not e.hit and _entries() == []  # the old entry is gone


def test_two_processes_open_one_trace_at_once(traces: Path, tmp_path: Path) -> None:
    path = _copy(traces, tmp_path, "host-kvm.dat")
    code = ("import sys; from kshark_py.model.loading import load_session; "
            "r = load_session([sys.argv[1]]); print(r.session.streams[0].buffer.events.num_rows)")
    procs = [subprocess.Popen([sys.executable, "-c", code, path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert outs[0][0] == outs[1][0] and int(outs[0][0]) > 0
    (entry,) = _entries()
    cachefile.read(entry)  # whole: one of the two renames won
    assert [n for n in os.listdir(os.path.dirname(entry)) if n.startswith(cachefile.TEMP_PREFIX)] == []


def test_no_cache_writes_nothing(traces: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(loadcache.ENV_OFF, "1")
    load_session([str(traces / "host-kvm.dat")])
    assert not os.path.exists(loadcache.cache_dir()) or os.listdir(loadcache.cache_dir()) == []


def test_size_cap_evicts_least_recently_used(traces: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, c = (str(traces / n) for n in ("host-sched-v7.dat", "host-sched-v6.dat", "host-kvm.dat"))
    load_session([a])
    load_session([b])
    sizes = {e.trace: e.size for e in loadcache.entries()}
    # a used again: b is now the least recently used
    old = os.stat(loadcache.entry_path(os.path.realpath(b))).st_mtime
    os.utime(loadcache.entry_path(os.path.realpath(b)), (old - 100, old - 100))
    load_session([a])
    monkeypatch.setenv(loadcache.ENV_MAX, str(sum(sizes.values()) + 1000))
    load_session([c])
    kept = {e.trace for e in loadcache.entries()}
    assert os.path.realpath(c) in kept and os.path.realpath(b) not in kept
    assert sum(e.size for e in loadcache.entries()) <= loadcache.max_bytes()


def test_stale_temp_files_go(traces: Path) -> None:
    os.makedirs(loadcache.cache_dir(), exist_ok=True)
    dead = os.path.join(loadcache.cache_dir(), cachefile.TEMP_PREFIX + "dead")
    Path(dead).write_bytes(b"half an entry")
    os.utime(dead, (0, 0))
    load_session([str(traces / "host-sched-v7.dat")])
    assert not os.path.exists(dead)


def test_max_bytes_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    for text, want in (("", loadcache.DEFAULT_MAX), ("100", 100), ("2K", 2048), ("1.5G", 3 << 29), ("3MiB", 3 << 20),
                       ("junk", loadcache.DEFAULT_MAX)):
        monkeypatch.setenv(loadcache.ENV_MAX, text)
        assert loadcache.max_bytes() == want, text


def test_cache_dir_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert loadcache.cache_dir() == str(tmp_path / "kshark-py")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert loadcache.cache_dir() == str(tmp_path / ".cache" / "kshark-py")


def test_cli_commands_use_the_cache_and_no_cache_turns_it_off(traces: Path, capsys: pytest.CaptureFixture) -> None:
    from kshark_py.cli import main

    path = str(traces / "host-kvm.dat")
    runs = (["stats", "-i", path, "--exits"], ["sql", "-i", path, "select count(*) from events"],
            ["vcpus", path], ["export", path, "-o", os.path.join(loadcache.cache_dir() + "-out.parquet")])
    fresh = []
    for argv in runs:
        assert main([*argv, "--no-cache"]) == 0, argv
        assert _entries() == [], argv
        os.environ[loadcache.ENV_OFF] = ""  # what --no-cache set for this process
        fresh.append(capsys.readouterr().out)
    assert main(runs[0]) == 0
    assert len(_entries()) == 1
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as m:
        _no_decoding(m)
        for argv, want in zip(runs, fresh, strict=True):
            assert main(argv) == 0, argv  # from the cache: nothing decoded
            assert capsys.readouterr().out == want, argv
    assert main(["cache", "--list"]) == 0
    listed = capsys.readouterr().out
    assert path in listed and "1 entry" in listed
    assert main(["cache", "--clear"]) == 0
    assert "removed 1 file" in capsys.readouterr().out
    assert _entries() == []
    assert main(["cache", "--list"]) == 0
    assert "0 entries" in capsys.readouterr().out


def test_cli_report_identical_from_the_cache(traces: Path, capfdbinary: pytest.CaptureFixture) -> None:
    from kshark_py.cli import main

    path = str(traces / "host-instances.dat")
    assert main(["report", path, "--no-cache"]) == 0
    os.environ[loadcache.ENV_OFF] = ""
    fresh = capfdbinary.readouterr().out
    assert main(["report", path]) == 0 and len(_entries()) == 1  # decodes, stores
    assert capfdbinary.readouterr().out == fresh
    assert main(["report", path]) == 0  # from the cache
    assert capfdbinary.readouterr().out == fresh


def test_app_screenshot_no_cache_writes_nothing(traces: Path, tmp_path: Path) -> None:
    exe = os.path.join(os.path.dirname(sys.executable), "kshark-py")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    path = str(traces / "host-sched-v7.dat")
    shot = str(tmp_path / "x.png")
    r = subprocess.run([exe, "-i", path, "--screenshot", shot, "--no-cache"], env=env, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert _entries() == []
    r = subprocess.run([exe, "-i", path, "--screenshot", shot], env=env, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert [e.trace for e in loadcache.entries()] == [os.path.realpath(path)]


def test_app_setting_turns_the_cache_off(traces: Path, tmp_path: Path, qtbot, monkeypatch: pytest.MonkeyPatch) -> None:
    from PySide6 import QtCore

    from kshark_py.ui import cachesetting
    from tests.support.gui import menu_action, open_window

    ini = str(tmp_path / "settings.ini")
    monkeypatch.setattr(cachesetting, "user_settings", lambda: QtCore.QSettings(ini, QtCore.QSettings.Format.IniFormat))
    monkeypatch.setattr(loadcache, "_enabled", True)  # undone after the test
    w = open_window(qtbot, traces / "host-sched-v7.dat")
    assert len(_entries()) == 1
    act = menu_action(w, "Tools", cachesetting.LABEL.replace("&", ""))
    assert act.isEnabled() and act.isChecked()
    act.trigger()  # the user unticks it: saved, and the next load neither reads nor writes
    assert not act.isChecked() and not loadcache.enabled()
    assert QtCore.QSettings(ini, QtCore.QSettings.Format.IniFormat).value(cachesetting.KEY) == "false"
    loadcache.clear()
    open_window(qtbot, traces / "host-sched-v7.dat")
    assert _entries() == []
    loadcache.set_enabled(True)
    cachesetting.apply()  # a new start reads the saved setting
    assert not loadcache.enabled()
    loadcache.set_enabled(True)
    act.trigger()  # ticked again
    assert act.isChecked() and loadcache.enabled()
    monkeypatch.setenv(loadcache.ENV_OFF, "1")  # --no-cache: the entry says so and cannot be ticked
    w2 = open_window(qtbot, traces / "host-sched-v7.dat")
    act2 = menu_action(w2, "Tools", cachesetting.LABEL.replace("&", ""))
    assert not act2.isEnabled() and not act2.isChecked() and "--no-cache" in act2.toolTip()


def test_write_behind_then_flush(traces: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's loads write the entry in a background thread; flush() waits for it (before os._exit)."""
    path = str(traces / "host-kvm.dat")
    res = load_session([path], write_behind=True)
    loadcache.flush()
    (entry,) = _entries()
    cachefile.read(entry)
    with monkeypatch.context() as m:
        _no_decoding(m)
        again = load_session([path])
    assert again.session.streams[0].buffer.events.equals(res.session.streams[0].buffer.events)
    loadcache.flush()  # nothing pending: returns at once


def test_whole_but_wrong_entries_are_rebuilt(traces: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Containers that check whole (digest, sum) but do not fit: another trace's entry under this
    trace's name, and one with this trace's key whose tables lie (schema, rows out of range)."""
    import pyarrow as pa

    a, b = str(traces / "host-sched-v7.dat"), str(traces / "host-kvm.dat")
    loadcache.set_enabled(False)
    try:
        want = _snapshot(_load([b]))
    finally:
        loadcache.set_enabled(True)
    load_session([a])
    ea, eb = loadcache.entry_path(os.path.realpath(a)), loadcache.entry_path(os.path.realpath(b))
    shutil.copyfile(ea, eb)  # a's entry where b's belongs
    assert _snapshot(_load([b])) == want
    meta, tables = cachefile.read(eb)  # rebuilt: b's own now
    assert meta["key"]["path"] == os.path.realpath(b)
    lies = {
        "events schema": lambda t: {**t, "0/events": t["0/events"].drop_columns(["flags"])},
        "rows past the events": lambda t: {**t, **{k: pa.table({loadcache.ROW: pa.array([10**9], pa.int64())})
                                                   for k in t if "/ev/" in k}},
        "lost past the events": lambda t: {**t, "0/lost": pa.table(
            {"row": pa.array([10**9], pa.int64()), "ts": pa.array([0], pa.int64()), "cpu": pa.array([0], pa.int16()),
             "count": pa.array([1], pa.int64())})},
        "a table missing": lambda t: {k: v for k, v in t.items() if k != "0/lost"},
        "buffer named otherwise": None,
    }
    for what, lie in lies.items():
        m = dict(meta)
        if lie is None:
            m["buffers"] = [{**m["buffers"][0], "name": "other"}, *m["buffers"][1:]]
            t = tables
        else:
            t = lie(dict(tables))
        cachefile.write(eb, m, t)
        cachefile.read(eb)  # whole, as containers go
        assert _snapshot(_load([b])) == want, what
        assert cachefile.read(eb)[0]["buffers"] == meta["buffers"], f"{what}: not rebuilt"


def test_likely_hit_is_a_cheap_hint(traces: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _copy(traces, tmp_path)

    def hint() -> bool:
        fd = os.open(path, os.O_RDONLY)
        try:
            return loadcache.likely_hit(fd, path)
        finally:
            os.close(fd)

    assert not hint()  # no entry yet
    load_session([path])
    assert hint()
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert not hint()  # the trace changed since
    load_session([path])
    assert hint()
    monkeypatch.setenv(loadcache.ENV_OFF, "1")
    assert not hint()


def test_all_block_counts_equal_one_value_at_a_time() -> None:
    from kshark_py.model.distinct import all_block_counts, block_counts

    rng = np.random.default_rng(7)
    for values in (5, 20):  # a compare per value, and the one pass (ONE_PASS_VALUES)
        for n in (0, 1, 63, 64, 65, 1000, 70_000):
            key = rng.integers(0, values, n).astype(np.int16)
            allc = all_block_counts(key, values)
            for v in range(values):
                assert allc[v].tolist() == block_counts(key, v).tolist(), (n, v)
                assert allc[v].dtype == block_counts(key, v).dtype
