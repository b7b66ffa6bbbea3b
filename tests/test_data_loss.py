"""Data loss is never silent (issue 10 item 3), and every typed error names a byte offset.

Every case cuts or damages a copy of a real trace in tmp_path (the shared traces are read in place).
What trace-cmd 3.1.6 does with the same cut files is checked too, to keep the comparison honest: it
refuses a v6 file cut inside its data ("File possibly truncated", exit 22) and prints nothing at all
for a v7 file cut inside its data (exit 0); we load what is there and say what is not.
"""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from kshark_py.loaders import compress
from kshark_py.loaders.errors import (
    LOSS_CORRUPT,
    LOSS_INDEX,
    LOSS_TRUNCATED,
    BadMagicError,
    CorruptSectionError,
    DecompressionError,
    FormatParseError,
    TraceDatError,
    TruncatedFileError,
    UnsupportedCompressionError,
    UnsupportedVersionError,
)
from kshark_py.loaders.layout import OptionId
from kshark_py.loaders.tracedat import open_trace

REPO = Path(__file__).resolve().parents[1]
TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces"
V6 = TRACES / "host-sched-v6.dat"  # uncompressed, 2 CPUs, 35,400 events
V7 = TRACES / "host-sched-v7.dat"  # zstd, 2 CPUs, many chunks each
SMALL = TRACES / "host-small-v7.dat"  # zstd, 2 CPUs, one chunk each
INSTANCES = TRACES / "host-instances.dat"  # top buffer + "irqbuf"


def cut_copy(tmp_path: Path, src: Path, size: int, name: str | None = None) -> Path:
    out = tmp_path / (name or f"cut-{src.name}")
    with open(src, "rb") as f:
        out.write_bytes(f.read(size))
    return out


def cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "kshark_py.cli", *args], capture_output=True, timeout=300,
                          env=env, cwd=REPO)


def trace_cmd_report(path: Path) -> subprocess.CompletedProcess:
    assert shutil.which("trace-cmd"), "trace-cmd 3.1.6 is part of the test setup (setup.sh)"
    return subprocess.run(["trace-cmd", "report", "-i", str(path)], capture_output=True, timeout=300)


def per_cpu(t, column: str = "ts") -> dict[int, np.ndarray]:
    cpu = t.column("cpu").to_numpy()
    col = t.column(column).to_numpy()
    return {int(c): col[cpu == c] for c in np.unique(cpu)}


# --- v6 cut at 6 MB: the case ----------------------------------------------------------------

V6_CUT = 6_000_000
V6_LINES = [
    "cpu 0: 156 pages (638,976 bytes) lost: file ends at byte 6000000 inside CPU 0's data (bytes 5541888-6635520)",
    "cpu 1: 134 pages (548,864 bytes) lost: file ends at byte 6000000, before CPU 1's data (bytes 6635520-7184384)",
]


def test_v6_cut_losses_are_typed_records(tmp_path):
    p = cut_copy(tmp_path, V6, V6_CUT)
    with open_trace(p) as tf:
        losses = tf.decode_all()
        assert len(tf.buffers[0].events) == 9462  # of 35,400: everything before the cut
        assert [(x.kind, x.buffer, x.cpu, x.pages, x.bytes, x.offset, x.at_least) for x in losses] == [
            (LOSS_TRUNCATED, "", 0, 156, 638_976, V6_CUT, False),
            (LOSS_TRUNCATED, "", 1, 134, 548_864, V6_CUT, False)]
        assert [x.one_line() for x in losses] == [f"{p}: {line}" for line in V6_LINES]


def test_v6_cut_cli_says_what_was_lost(tmp_path):
    p = cut_copy(tmp_path, V6, V6_CUT)
    r = cli("report", str(p))
    assert r.returncode == 0
    assert r.stderr.decode().splitlines() == [f"kshark-py: {p}: {line}" for line in V6_LINES]
    out = r.stdout.decode().splitlines()
    assert out[0] == "cpus=2" and len(out) == 1 + 9462
    strict = cli("report", "--strict", str(p))
    assert strict.returncode == 2 and strict.stdout == b""
    assert strict.stderr.decode().splitlines() == [f"kshark-py: {p}: {line}" for line in V6_LINES]
    # export: same lines, the events that are there; --strict writes nothing
    e = cli("export", str(p), "-o", str(tmp_path / "x.parquet"))
    assert e.returncode == 0 and pq.read_metadata(tmp_path / "x.parquet").num_rows == 9462
    assert e.stderr.decode().splitlines()[:2] == [f"kshark-py: {p}: {line}" for line in V6_LINES]
    e = cli("export", "--strict", str(p), "-o", str(tmp_path / "y.parquet"))
    assert e.returncode == 2 and not (tmp_path / "y.parquet").exists()
    v = cli("vcpus", "--strict", str(p))
    assert v.returncode == 2 and v.stderr.decode().splitlines() == [f"kshark-py: {p}: {line}" for line in V6_LINES]
    # trace-cmd 3.1.6 refuses the same file
    tc = trace_cmd_report(p)
    assert tc.returncode != 0
    assert b"File possibly truncated. Need at least 6635520, but file size is 6000000." in tc.stdout + tc.stderr


def test_whole_files_lose_nothing():
    for src in (V6, V7, SMALL, INSTANCES):
        with open_trace(src) as tf:
            assert tf.decode_all() == [], src
    r = cli("report", "--strict", str(SMALL))
    assert r.returncode == 0 and r.stderr == b""


# --- v7 cut inside its data: the buffer index is lost, the chunks are not ------------------------------

@pytest.fixture(scope="module")
def v7_full():
    with open_trace(V7) as tf:
        b = tf.buffers[0]
        t = b.events
        return {"cpus": [(c.cpu, c.offset, c.size) for c in b.cpu_data], "ts": per_cpu(t),
                "eid": per_cpu(t, "event_id"), "n": len(t)}


def test_v7_cut_inside_data_keeps_every_whole_chunk(tmp_path, v7_full):
    """The issue's case: it printed cpus=2 and export wrote 0 events (the buffer was dropped with its
    index). Now CPU 0 loads whole and CPU 1 up to its last whole chunk, and both losses are said."""
    (_c0, off0, _s0), (_c1, off1, size1) = v7_full["cpus"]
    cut = off1 + size1 // 2
    p = cut_copy(tmp_path, V7, cut)
    with open_trace(p) as tf:
        assert tf.cpus == 2 and [b.name for b in tf.buffers] == [""]
        b = tf.buffers[0]
        ts, eid = per_cpu(b.events), per_cpu(b.events, "event_id")
        assert np.array_equal(ts[0], v7_full["ts"][0]) and np.array_equal(eid[0], v7_full["eid"][0])
        n1 = len(ts[1])
        assert 0 < n1 < len(v7_full["ts"][1])
        assert np.array_equal(ts[1], v7_full["ts"][1][:n1]) and np.array_equal(eid[1], v7_full["eid"][1][:n1])
        st = {s.cpu: s for s in b.stats}
        assert st[0].truncated_bytes == 0 and st[1].truncated_bytes > 0
        losses = tf.losses
        assert [(x.kind, x.buffer, x.cpu) for x in losses] == [(LOSS_INDEX, "", None), (LOSS_TRUNCATED, "", 1)]
        assert losses[1].at_least and losses[1].pages >= 1 and losses[1].offset == cut
        # CPU 1 is the last: its data ran to the section's end, so its lost (compressed) bytes are known:
        # from its cut chunk's header on
        assert losses[1].compressed and losses[1].bytes == st[1].truncated_bytes
        assert off1 + 4 + size1 - cut < losses[1].bytes < off1 + 4 + size1 - cut + 16 * 4096
        assert f"inside CPU 1's compressed data (from byte {off1}" in losses[1].what
        n = len(b.events)
    r = cli("export", str(p), "-o", str(tmp_path / "x.parquet"))
    assert r.returncode == 0 and pq.read_metadata(tmp_path / "x.parquet").num_rows == n
    lines = r.stderr.decode().splitlines()
    assert lines[0].startswith(f"kshark-py: {p}: top buffer: index lost: file ends at byte {cut}, before the "
                               "buffer's index")
    assert lines[1].startswith(f"kshark-py: {p}: cpu 1: at least ")
    assert lines[2] == f"{tmp_path / 'x.parquet'}: {n} events"
    r = cli("report", str(p))
    events = [x for x in r.stdout.splitlines()[1:] if b"EVENTS DROPPED]" not in x]  # the kernel's own losses
    assert r.returncode == 0 and len(events) == n and len(r.stderr.splitlines()) == 2
    assert cli("report", "--strict", str(p)).returncode == 2
    # trace-cmd 3.1.6 prints nothing at all for this file, and exits 0
    tc = trace_cmd_report(p)
    assert tc.returncode == 0 and tc.stdout == b"" and tc.stderr == b""


def test_v7_cut_in_first_cpu_loses_the_later_cpus(tmp_path):
    with open_trace(SMALL) as tf:
        c0 = tf.buffers[0].cpu_data[0]
        full0 = len(per_cpu(tf.buffers[0].events)[0])
        c1 = tf.buffers[0].cpu_data[1]
    _c, usize = struct.unpack_from("<II", SMALL.read_bytes(), c0.offset + 4)  # CPU 0's only chunk
    p = cut_copy(tmp_path, SMALL, c0.offset + 100)  # inside it
    with open_trace(p) as tf:
        assert len(tf.buffers[0].events) == 0  # its one chunk is cut: nothing whole is left
        assert [(x.kind, x.cpu, x.pages) for x in tf.losses] == [(LOSS_INDEX, None, None),
                                                                 (LOSS_TRUNCATED, 0, usize // 4096),
                                                                 (LOSS_TRUNCATED, 1, None)]
        assert tf.losses[2].one_line().endswith("cpu 1: all data lost: file ends at byte "
                                                f"{c0.offset + 100}, before CPU 1's data (the index that gave its "
                                                "size is lost too)")
    p = cut_copy(tmp_path, SMALL, c1.offset + c1.size // 2, "second.dat")  # inside CPU 1: CPU 0 whole
    with open_trace(p) as tf:
        assert len(per_cpu(tf.buffers[0].events).get(0, [])) == full0 == 499
        assert [(x.kind, x.cpu) for x in tf.losses] == [(LOSS_INDEX, None), (LOSS_TRUNCATED, 1)]


def test_v7_cut_in_an_instance_keeps_it_unnamed(tmp_path):
    """Cut inside the second buffer's data: its name was only in its lost index."""
    with open_trace(INSTANCES) as tf:
        irq = tf.buffer("irqbuf")
        full = per_cpu(irq.events)
        c1 = irq.cpu_data[1]
    cut = c1.offset + c1.size // 2
    p = cut_copy(tmp_path, INSTANCES, cut)
    with open_trace(p) as tf:
        assert [b.name for b in tf.buffers] == ["", "(unnamed 1)"]
        got = per_cpu(tf.buffer("(unnamed 1)").events)
        assert np.array_equal(got[0], full[0])
        g1 = got.get(1, np.zeros(0, np.int64))  # one chunk only: cut, none of it is whole
        assert len(g1) < len(full[1]) and np.array_equal(g1, full[1][:len(g1)])
        assert [(x.kind, x.buffer, x.cpu) for x in tf.decode_all()] == [
            (LOSS_INDEX, "(unnamed 1)", None), (LOSS_TRUNCATED, "(unnamed 1)", 1)]
        assert tf.losses[1].one_line().startswith(f"{p}: buffer (unnamed 1) cpu 1: at least ")


def test_v7_cut_inside_the_trailing_options_keeps_the_index(tmp_path):
    """Cut inside the options section written after the data, just after its BUFFER option: the index
    is read from the whole option records, every event loads; what may follow is reported lost."""
    with open_trace(SMALL) as tf:
        n = len(tf.buffers[0].events)
        opts = tf.buffers[0].cpu_data[1].offset + 4 + tf.buffers[0].cpu_data[1].size  # the section after
    data = SMALL.read_bytes()
    sid, _fl, _d, _size = struct.unpack_from("<HHIQ", data, opts)
    assert sid == OptionId.DONE
    oid, osize = struct.unpack_from("<HI", data, opts + 16)
    assert oid == OptionId.BUFFER
    cut = opts + 16 + 6 + osize + 3
    p = cut_copy(tmp_path, SMALL, cut)
    with open_trace(p) as tf:
        assert tf.truncated_options == opts and tf.buffers[0].lost_index is None
        assert len(tf.buffers[0].events) == n
        assert [(x.kind, x.buffer) for x in tf.losses] == [(LOSS_INDEX, None)]
        assert tf.losses[0].what.startswith(f"file ends at byte {cut} inside the options section at byte {opts}")


def test_lenient_corrupt_chunk_is_a_loss(tmp_path):
    with open_trace(SMALL) as tf:
        c0 = tf.buffers[0].cpu_data[0]
    data = bytearray(SMALL.read_bytes())
    data[c0.offset + 12:c0.offset + 16] = b"\xde\xad\xbe\xef"  # the zstd frame magic of CPU 0's chunk
    p = tmp_path / "bad.dat"
    p.write_bytes(bytes(data))
    with open_trace(p, strict=False) as tf:
        (x,) = tf.decode_all()
        _c, usize = struct.unpack_from("<II", data, c0.offset + 4)
        assert (x.kind, x.cpu, x.offset, x.pages) == (LOSS_CORRUPT, 0, c0.offset + 4, usize // 4096)
        assert "does not decompress" in x.what


# --- the app: a yellow bar says what was lost ------------------------------------------------------------

def test_banner_shows_what_each_stream_lost(qtbot, tmp_path):
    from PySide6 import QtCore

    from kshark_py.model.loading import load_session
    from kshark_py.ui.app import build_window

    p = cut_copy(tmp_path, V6, V6_CUT, "host-cut.dat")
    w = build_window(load_session([str(p)]), [str(p)])
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    banner = w.loss_banner
    assert banner.isVisible() and banner.y() < w.timeline.mapTo(w, w.timeline.rect().topLeft()).y()
    lines = banner.label.text().splitlines()
    assert lines[0].startswith("Data lost")
    assert lines[1:] == [f"host (host-cut.dat) {line}" for line in V6_LINES]
    bg = banner.grab().toImage().pixelColor(3, banner.height() - 4)  # yellow, as drawn
    assert bg.red() > 200 and bg.green() > 180 and bg.blue() < 160, bg.name()
    qtbot.mouseClick(banner.close_button, QtCore.Qt.MouseButton.LeftButton)
    assert not banner.isVisible()
    whole = build_window(load_session([str(SMALL)]), [str(SMALL)])
    qtbot.addWidget(whole)
    whole.show()
    assert not whole.loss_banner.isVisible()


def test_banner_names_the_stream_that_lost_data(qtbot, tmp_path):
    """Host + guest, the guest's file cut: the bar names the guest stream (and its file), not the host."""
    from kshark_py.model.loading import load_session
    from kshark_py.ui.app import build_window

    host = TRACES / "vm-tsync" / "trace.dat"
    guest_src = TRACES / "vm-tsync" / "trace-vmguest.dat"
    guest = cut_copy(tmp_path, guest_src, 1_200_000, "trace-vmguest.dat")
    w = build_window(load_session([str(host), str(guest)]), [str(host), str(guest)])
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    lines = w.loss_banner.label.text().splitlines()[1:]
    assert [x.split(":")[0] for x in lines] == ["vmguest (trace-vmguest.dat) top buffer",
                                                "vmguest (trace-vmguest.dat) cpu 0"]
    assert "lost: file ends at byte 1200000 inside CPU 0's compressed data" in lines[1]
    assert w.loss_banner.isVisible()


# --- every typed error names its byte offset ------------------------------------------------------------

def _load_everything(path: Path, strict: bool) -> None:
    with open_trace(path, strict=strict) as tf:
        _ = tf.formats, tf.kallsyms, tf.printk, tf.cmdlines, tf.cmdline_entries
        tf.decode_all()


def _structure(src: Path) -> list[int]:
    """Offsets where a byte matters: the file header, metadata sections, options, buffers, CPU data."""
    with open_trace(src) as tf:
        marks = {0, 8, 10, 12, 13, 14, 18, 24, 30, 36}
        marks.update(tf._section_pos.values())
        marks.update(tf.meta.section_offsets.values())
        marks.update(b.section_offset for b in tf.meta.buffers)
        if tf.version < 7:
            marks.add(tf._v6_top_offset)
        for b in tf.buffers:
            marks.update(c.offset for c in b.cpu_data)
    return sorted(m for m in marks if m < src.stat().st_size)


def test_every_error_kind_names_its_offset(tmp_path, monkeypatch):
    """Cut and mutated real files at the places their structure lives (and a few crafted cases for the
    kinds that need one): every TraceDatError subclass raised carries ``.offset``."""
    rng = random.Random(20261206)
    seen: dict[str, int] = {}

    def check(path: Path) -> None:
        for strict in (True, False):
            try:
                _load_everything(path, strict)
            except TraceDatError as e:
                assert type(e) is not TraceDatError, e  # a subclass: the kind of failure
                assert e.offset is not None, e.one_line()
                assert f"at byte {e.offset}" in e.one_line()
                seen[type(e).__name__] = seen.get(type(e).__name__, 0) + 1

    k = 0
    for src in (V6, SMALL, TRACES / "vm-tsync" / "trace-vmguest.dat"):
        data = src.read_bytes()
        for m in _structure(src):
            for delta in (0, 1, 9, 17):
                at = m + delta
                if at >= len(data):
                    continue
                k += 1
                p = tmp_path / f"c{k}.dat"
                if k % 2:
                    p.write_bytes(data[:at])
                else:
                    b = bytearray(data)
                    b[at:at + 4] = rng.choice([b"\xff\xff\xff\xff", b"\0\0\0\0", rng.randbytes(4)])
                    p.write_bytes(bytes(b))
                check(p)
                p.unlink()

    def crafted(name: str, edit) -> None:
        b = bytearray((V6 if name.startswith("v6") else SMALL).read_bytes())
        edit(b)
        p = tmp_path / f"{name}.dat"
        p.write_bytes(bytes(b))
        check(p)

    crafted("bad-magic", lambda b: b.__setitem__(0, 0x18))
    crafted("version", lambda b: b.__setitem__(10, ord("8")))
    crafted("compression", lambda b: b.__setitem__(slice(18, 22), b"zstx"))
    kall = None
    with open_trace(SMALL) as tf:
        kall = tf.meta.section_offsets[OptionId.KALLSYMS]
    crafted("zstd-frame", lambda b: b.__setitem__(slice(kall + 24, kall + 28), b"\xde\xad\xbe\xef"))
    v6 = V6.read_bytes()
    field = v6.index(b"field:unsigned short common_type;\toffset:0;\tsize:2;")
    crafted("v6-format", lambda b: b.__setitem__(slice(field + 40, field + 46), b"size:x"))
    # no HEADER_INFO option: its id in the first options section made unknown (kept raw)
    small = SMALL.read_bytes()
    rec = struct.pack("<HIQ", OptionId.HEADER_INFO, 8, 37)
    hi = small.index(rec)
    crafted("no-header-info", lambda b: b.__setitem__(slice(hi, hi + 2), struct.pack("<H", 999)))
    with pytest.raises(CorruptSectionError) as ei:
        open_trace(tmp_path / "no-header-info.dat")
    assert "no HEADER_INFO section" in ei.value.message and ei.value.offset is not None
    # zstd support missing: the compression name's offset
    monkeypatch.setattr(compress, "zstandard", None)
    with pytest.raises(UnsupportedCompressionError) as ei:
        open_trace(SMALL)
    assert ei.value.offset == 18
    monkeypatch.undo()

    kinds = {c.__name__ for c in (BadMagicError, UnsupportedVersionError, TruncatedFileError, CorruptSectionError,
                                  UnsupportedCompressionError, DecompressionError, FormatParseError)}
    assert kinds <= set(seen), (kinds - set(seen), seen)
    assert k > 100


# --- item 4: a FIFO as input (the CLI refuses it in tests/test_cli.py; the library and app too) ---------

def test_library_and_app_loader_refuse_a_fifo_at_once(tmp_path):
    """open() of a FIFO waited for a writer forever: File > Open of one hung the app's load worker
    (uncancellable). The reader itself now refuses anything but a regular file, in one line."""
    fifo = tmp_path / "trace.dat"
    os.mkfifo(fifo)
    code = ("import sys\nfrom kshark_py.loaders.errors import TraceDatError\n"
            "from kshark_py.loaders.tracedat import open_trace\nfrom kshark_py.model.loading import load_session\n"
            "for f in (open_trace, lambda p: load_session([p])):\n"
            "    try:\n        f(sys.argv[1])\n    except TraceDatError as e:\n        print(e.one_line())\n")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", code, str(fifo)], capture_output=True, text=True, timeout=60,
                       env=env, cwd=REPO)
    assert r.stdout.splitlines() == [f"{fifo}: cannot open: not a regular file (a FIFO)"] * 2, r.stderr


def test_v7_uncompressed_cut_inside_data_is_reported_not_guessed(tmp_path):
    """Uncompressed v7 data has no chunk headers: without the lost index nothing says where one CPU's
    pages end, so the buffer's data is reported lost (bytes, where) rather than split by a guess. The
    corpus has no uncompressed v7 file (trace-cmd here writes zstd): record one with our recorder."""
    from tests.support.capture import require_recording

    require_recording()
    src = tmp_path / "u7.dat"
    r = cli("record", "-o", str(src), "--file-version", "7", "--compression", "none", "-e", "sched:sched_switch",
            "-d", "0.5")
    assert r.returncode == 0, r.stderr
    with open_trace(src) as tf:
        assert (tf.version, tf.compression) == (7, "none") and len(tf.buffers[0].cpu_data) == 2
        (_c0, off0, _s0), (_c1, off1, size1) = [(c.cpu, c.offset, c.size) for c in tf.buffers[0].cpu_data]
        sec = tf.meta.buffers[0].section_offset
    cut = off1 + size1 // 2 if size1 else off1
    p = cut_copy(tmp_path, src, cut)
    with open_trace(p) as tf:
        assert tf.buffers == []
        (x,) = tf.decode_all()
        assert (x.kind, x.buffer, x.cpu, x.bytes) == (LOSS_INDEX, "", None, cut - sec - 16)
        assert f"uncompressed CPU data (bytes {off0}-{cut}) is not read" in x.what
    r = cli("report", str(p))
    assert r.returncode == 0 and r.stdout.decode().splitlines() == ["cpus=2"]
    assert r.stderr.decode().splitlines() == [f"kshark-py: {x.one_line()}"]


def test_lost_index_with_a_huge_cpu_count_stays_bounded(tmp_path):
    """The CPU count of a buffer found without its index comes from CPUCOUNT, which a damaged file
    can make huge: past MAX_CPUS it is refused (a typed error with its offset); up to it, the CPUs
    past the cut get the loss lines (eight by name, then one for the rest), never a list per CPU."""
    from kshark_py.loaders.options import MAX_CPUS

    data = bytearray(SMALL.read_bytes())
    rec = struct.pack("<HII", OptionId.CPUCOUNT, 4, 2)
    at = data.index(rec)
    with open_trace(SMALL) as tf:
        c1 = tf.buffers[0].cpu_data[1]
    p = tmp_path / "many.dat"
    data[at + 6:at + 10] = struct.pack("<I", 0xFFFFFFFF)
    p.write_bytes(bytes(data[:c1.offset + c1.size // 2]))
    with pytest.raises(CorruptSectionError, match="CPUCOUNT 4294967295") as e:
        open_trace(p).decode_all()
    assert e.value.offset is not None
    data[at + 6:at + 10] = struct.pack("<I", MAX_CPUS)
    p.write_bytes(bytes(data[:c1.offset + c1.size // 2]))
    with open_trace(p) as tf:
        losses = tf.decode_all()
        assert [x.cpu for x in losses] == [None, 1, *range(2, 10), None]  # index, cut CPU, 8 named, the rest
        assert losses[-1].what.endswith("before the data of CPUs 10-32767 (the index that gave their sizes is "
                                       "lost too)")
        assert len(per_cpu(tf.buffers[0].events)[0]) == 499
