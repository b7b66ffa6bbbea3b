"""Damaged trace files: every failure is a typed error naming file, section and offset; the CLI
prints one line and exits 2; truncated CPU data still loads what is intact.

Each case copies a real file's bytes into tmp_path and damages them there (the shared traces are
read in place, never modified).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kshark_py.loaders.errors import (
    BadMagicError,
    CorruptSectionError,
    DecompressionError,
    TraceDatError,
    TruncatedFileError,
    UnsupportedCompressionError,
    UnsupportedVersionError,
)
from kshark_py.loaders.layout import OptionId
from kshark_py.loaders.tracedat import open_trace

REPO = Path(__file__).resolve().parents[1]
TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces"
V7 = TRACES / "host-small-v7.dat"  # zstd, 2 CPUs, one chunk each
V6 = TRACES / "host-sched-v6.dat"  # uncompressed: pages lie plainly in the file
ZLIB = TRACES / "external" / "doc-test" / "trace.dat"

pytestmark = pytest.mark.skipif(not V7.exists() or not V6.exists(), reason="shared traces not present")


def damaged(tmp_path: Path, src: Path, edit, name: str = "bad.dat") -> Path:
    data = bytearray(src.read_bytes())
    data = edit(data) or data
    out = tmp_path / name
    out.write_bytes(bytes(data))
    return out


def put(data: bytearray, offset: int, raw: bytes) -> bytearray:
    data[offset:offset + len(raw)] = raw
    return data


def run_cli(path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "kshark_py.cli", "report", "-i", str(path)],
                          capture_output=True, text=True, timeout=60, env=env, cwd=REPO)


def check_error(e: TraceDatError, path: Path, *, offset: int | None = None, section: str | None = None) -> None:
    assert e.path == str(path)
    assert e.section, e
    assert e.offset is not None, e
    if offset is not None:
        assert e.offset == offset, e
    if section is not None:
        assert section in e.section, e
    text = e.one_line()
    assert "\n" not in text
    assert text.startswith(f"{path}: {e.section} at byte {e.offset}: ")


def check_cli(path: Path, err: TraceDatError) -> None:
    r = run_cli(path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0] == f"kshark-py: {err.one_line()}"
    assert "Traceback" not in r.stderr


def expect_open_error(path: Path, cls: type[TraceDatError], **kw) -> TraceDatError:
    with pytest.raises(TraceDatError) as ei:
        open_trace(path)
    assert type(ei.value) is cls, repr(ei.value)
    check_error(ei.value, path, **kw)
    return ei.value


@pytest.fixture(scope="module")
def v7_layout():
    with open_trace(V7) as tf:
        b = tf.buffers[0]
        return {
            "sections": dict(tf.meta.section_offsets),
            "cpu": [(cd.cpu, cd.offset, cd.size) for cd in b.cpu_data],
            "events": len(b.events),
            "formats": len(tf.formats),
            "file_size": tf.file_size,
        }


@pytest.fixture(scope="module")
def v6_full():
    with open_trace(V6) as tf:
        b = tf.buffers[0]
        t = b.events
        return {
            "cpu": [(cd.cpu, cd.offset, cd.size) for cd in b.cpu_data],
            "ts": t.column("ts").to_numpy(),
            "cpus": t.column("cpu").to_numpy(),
            "per_cpu": {s.cpu: s.events for s in b.stats},
            "page_size": b.page_size,
            "formats": len(tf.formats),
            "cmdlines": dict(tf.cmdlines),
        }


# -- file header --------------------------------------------------------------------------------

def test_wrong_magic(tmp_path):
    p = damaged(tmp_path, V7, lambda d: put(d, 0, b"\x7fELF"))
    e = expect_open_error(p, BadMagicError, offset=0, section="file header")
    check_cli(p, e)


def test_not_a_trace_at_all(tmp_path):
    p = tmp_path / "text.dat"
    p.write_text("hello world\n" * 100)
    e = expect_open_error(p, BadMagicError, offset=0)
    check_cli(p, e)


@pytest.mark.parametrize("version", [b"5", b"8"])
def test_unsupported_version(tmp_path, version):
    p = damaged(tmp_path, V7, lambda d: put(d, 10, version))
    e = expect_open_error(p, UnsupportedVersionError, offset=10, section="file header")
    check_cli(p, e)


def test_bad_endianness_byte(tmp_path):
    p = damaged(tmp_path, V6, lambda d: put(d, 12, b"\x02"))
    e = expect_open_error(p, CorruptSectionError, offset=12, section="file header")
    check_cli(p, e)


def test_bad_long_size(tmp_path):
    p = damaged(tmp_path, V7, lambda d: put(d, 13, b"\x03"))
    e = expect_open_error(p, CorruptSectionError, offset=13, section="file header")
    check_cli(p, e)


def test_bad_page_size(tmp_path):
    p = damaged(tmp_path, V7, lambda d: put(d, 14, struct.pack("<I", 4095)))
    expect_open_error(p, CorruptSectionError, offset=14, section="file header")


def test_unknown_compression(tmp_path):
    assert V7.read_bytes()[18:23] == b"zstd\0"
    p = damaged(tmp_path, V7, lambda d: put(d, 18, b"lz4\0"))
    e = expect_open_error(p, UnsupportedCompressionError, offset=18, section="file header")
    assert "lz4" in e.message
    check_cli(p, e)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.dat"
    p.write_bytes(b"")
    e = expect_open_error(p, TruncatedFileError, offset=0)
    check_cli(p, e)


# -- sections and options (v7) ----------------------------------------------------------------------

def test_huge_section_size(tmp_path, v7_layout):
    hdr = v7_layout["sections"][OptionId.HEADER_INFO]
    p = damaged(tmp_path, V7, lambda d: put(d, hdr + 8, struct.pack("<Q", 1 << 62)))
    e = expect_open_error(p, TruncatedFileError, offset=hdr, section="headers")
    check_cli(p, e)


def test_huge_kallsyms_section_size(tmp_path, v7_layout):
    hdr = v7_layout["sections"][OptionId.KALLSYMS]
    p = damaged(tmp_path, V7, lambda d: put(d, hdr + 8, struct.pack("<Q", 0xFFFFFFFFFFFF)))
    expect_open_error(p, TruncatedFileError, offset=hdr, section="kallsyms")


def test_implausible_uncompressed_size(tmp_path, v7_layout):
    """A metadata block claiming 2 GiB from a few hundred bytes is refused before allocating."""
    hdr = v7_layout["sections"][OptionId.HEADER_INFO]
    p = damaged(tmp_path, V7, lambda d: put(d, hdr + 16 + 4, struct.pack("<I", 0x7FFFFFFF)))
    expect_open_error(p, DecompressionError, offset=hdr + 16, section="headers")


def test_corrupt_compressed_metadata(tmp_path, v7_layout):
    hdr = v7_layout["sections"][OptionId.HEADER_INFO]
    p = damaged(tmp_path, V7, lambda d: put(d, hdr + 16 + 8, b"\0\0\0\0"))  # zstd frame magic
    e = expect_open_error(p, DecompressionError, offset=hdr + 16, section="headers")
    check_cli(p, e)


def test_section_id_mismatch(tmp_path, v7_layout):
    hdr = v7_layout["sections"][OptionId.EVENT_FORMATS]
    p = damaged(tmp_path, V7, lambda d: put(d, hdr, struct.pack("<H", 99)))
    expect_open_error(p, CorruptSectionError, offset=hdr, section="events format")


def _options_sections(data: bytes) -> list[int]:
    """Offsets of the v7 options sections, following the DONE chain."""
    pos = data.index(b"\0", 10) + 1 + 6
    pos = data.index(b"\0", pos) + 1
    pos = data.index(b"\0", pos) + 1
    (off,) = struct.unpack_from("<Q", data, pos)
    out = []
    while off and off not in out:
        out.append(off)
        (size,) = struct.unpack_from("<Q", data, off + 8)
        (off,) = struct.unpack_from("<Q", data, off + 16 + size - 8)
    return out


def test_options_chain_loop(tmp_path):
    data = V7.read_bytes()
    opts = _options_sections(data)
    assert len(opts) == 2
    last = opts[-1]
    (size,) = struct.unpack_from("<Q", data, last + 8)
    done_payload = last + 16 + size - 8
    assert struct.unpack_from("<HI", data, done_payload - 6) == (0, 8)
    p = damaged(tmp_path, V7, lambda d: put(d, done_payload, struct.pack("<Q", opts[0])))
    e = expect_open_error(p, CorruptSectionError, offset=opts[0], section="options")
    assert "loop" in e.message
    check_cli(p, e)


def test_option_size_past_section(tmp_path):
    data = V7.read_bytes()
    first = _options_sections(data)[0]
    # the first option record starts right after the section header: u16 id, u32 size
    p = damaged(tmp_path, V7, lambda d: put(d, first + 16 + 2, struct.pack("<I", 1 << 30)))
    expect_open_error(p, TruncatedFileError, offset=first + 16, section="options")


# -- truncation ---------------------------------------------------------------------------------------

def _v7_cut_points(lay: dict) -> list[int]:
    s = lay["sections"]
    pts = [1, 5, 9, 10, 11, 12, 13, 16, 18, 20, 23, 28, 30, 36]
    for oid in (OptionId.HEADER_INFO, OptionId.FTRACE_EVENTS, OptionId.EVENT_FORMATS, OptionId.KALLSYMS,
                OptionId.PRINTK, OptionId.CMDLINES):
        pts += [s[oid] + 1, s[oid] + 15, s[oid] + 16, s[oid] + 20, s[oid] + 40]
    return sorted(set(pts))


def test_truncated_in_headers_and_metadata_v7(tmp_path, v7_layout):
    data = V7.read_bytes()
    opts0 = _options_sections(data)[0]
    points = _v7_cut_points(v7_layout) + [opts0 + 3, opts0 + 16, opts0 + 30, opts0 + 100]
    for cut in points:
        p = tmp_path / f"cut{cut}.dat"
        p.write_bytes(data[:cut])
        with pytest.raises(TraceDatError) as ei:
            open_trace(p)
        assert type(ei.value) is TruncatedFileError, (cut, repr(ei.value))
        check_error(ei.value, p)
        assert ei.value.offset < len(data), (cut, ei.value)
    check_cli(p, ei.value)


def test_truncated_in_headers_and_metadata_v6(tmp_path):
    data = V6.read_bytes()
    with open_trace(V6) as tf:
        top = tf._v6_top_offset
        pos = sorted(tf._section_pos.values())
    points = [3, 10, 12, 14, 17, 18, 19, 40, 200] + [p + k for p in pos for k in (1, 3, 9, 30)] + \
             [top - 2, top + 1, top + 9, top + 12, top + 40]
    for cut in sorted(set(points)):
        p = tmp_path / f"cut{cut}.dat"
        p.write_bytes(data[:cut])
        with pytest.raises(TraceDatError) as ei:
            open_trace(p)
        assert type(ei.value) is TruncatedFileError, (cut, repr(ei.value))
        check_error(ei.value, p)
    check_cli(p, ei.value)


def _is_prefix_consistent(full_ts, full_cpu, ts, cpu) -> None:
    """Per CPU, the surviving events are the first events of the full file, in order."""
    for c in np.unique(cpu):
        a = ts[cpu == c]
        b = full_ts[full_cpu == c]
        assert len(a) <= len(b)
        assert np.array_equal(a, b[:len(a)]), c


@pytest.mark.parametrize("frac", [0.1, 0.5, 0.93])
def test_truncated_in_cpu_data_v6(tmp_path, v6_full, frac):
    (c0, off0, size0), (c1, off1, size1) = v6_full["cpu"]
    ps = v6_full["page_size"]
    cut = off0 + int(size0 * frac) + 123  # inside a page of CPU 0: CPU 1 is gone entirely
    p = damaged(tmp_path, V6, lambda d: d[:cut])
    with open_trace(p) as tf:  # strict by default: truncation is not an error
        assert tf.formats and len(tf.formats) == v6_full["formats"]
        assert tf.cmdlines == v6_full["cmdlines"]
        b = tf.buffers[0]
        t = b.events
        n = len(t)
        assert 0 < n < len(v6_full["ts"])
        st = {s.cpu: s for s in b.stats}
        whole = (cut - off0) // ps
        assert st[c0].pages == whole
        assert st[c0].truncated_bytes == size0 - whole * ps
        assert st[c0].truncated_pages == -(-(size0 - whole * ps) // ps)
        assert st[c1].truncated_bytes == size1 and st[c1].truncated_pages == size1 // ps
        assert st[c1].events == 0 and st[c0].events < v6_full["per_cpu"][c0]
        assert any(f"CPU {c0}: file truncated" in w and f"{st[c0].truncated_pages} pages lost" in w
                   for w in tf.warnings)
        assert any(f"CPU {c1}: file truncated" in w for w in tf.warnings)
        ts, cpu = t.column("ts").to_numpy(), t.column("cpu").to_numpy()
        _is_prefix_consistent(v6_full["ts"], v6_full["cpus"], ts, cpu)
        assert np.array_equal(ts[:100], v6_full["ts"][v6_full["cpus"] == c0][:100])
    r = run_cli(p)
    assert r.returncode == 0 and "Traceback" not in r.stderr


def test_truncated_in_second_cpu_v6(tmp_path, v6_full):
    (c0, _o0, _s0), (c1, off1, size1) = v6_full["cpu"]
    cut = off1 + size1 // 3 + 7
    p = damaged(tmp_path, V6, lambda d: d[:cut])
    with open_trace(p) as tf:
        b = tf.buffers[0]
        t = b.events
        st = {s.cpu: s for s in b.stats}
        assert st[c0].events == v6_full["per_cpu"][c0] and st[c0].truncated_bytes == 0
        assert 0 < st[c1].events < v6_full["per_cpu"][c1] and st[c1].truncated_pages > 0
        _is_prefix_consistent(v6_full["ts"], v6_full["cpus"], t.column("ts").to_numpy(),
                              t.column("cpu").to_numpy())


def test_truncated_in_cpu_data_v7_keeps_metadata(tmp_path, v7_layout):
    """v7 writes the BUFFER option after the data: cut there, the metadata survives, and the buffer
    is found by walking its section (tests/test_data_loss.py checks its events)."""
    (_c, off, size) = v7_layout["cpu"][1]
    p = damaged(tmp_path, V7, lambda d: d[:off + size // 2])
    with open_trace(p) as tf:
        assert len(tf.formats) == v7_layout["formats"]
        assert len(tf.kallsyms) > 0 and tf.cmdlines
        assert [b.name for b in tf.buffers] == [""] and tf.buffers[0].lost_index is not None
        assert tf.truncated_options is not None
        assert any("file truncated" in w for w in tf.warnings)


def test_truncated_in_last_buffer_v7_keeps_earlier_buffers(tmp_path):
    """A file with two instances cut inside the second one's data: the top buffer is intact."""
    src = TRACES / "host-instances.dat"
    with open_trace(src) as tf:
        top = tf.buffer("")
        n_top = len(top.events)
        ts_top = top.events.column("ts").to_numpy()
        irq = tf.buffer("irqbuf")
        cut = irq.cpu_data[1].offset + irq.cpu_data[1].size // 2
    p = damaged(tmp_path, src, lambda d: d[:cut])
    with open_trace(p) as tf:
        # the instance's name was in its lost index: it is found unnamed (tests/test_data_loss.py)
        assert [b.name for b in tf.buffers] == ["", "(unnamed 1)"]
        assert np.array_equal(tf.buffers[0].events.column("ts").to_numpy(), ts_top) and n_top > 0
        assert any("file truncated" in w for w in tf.warnings)


# -- corrupt CPU data -------------------------------------------------------------------------------

def test_page_commit_larger_than_page_v6(tmp_path, v6_full):
    (c0, off0, _s), _ = v6_full["cpu"]
    ps = v6_full["page_size"]
    page = 3
    commit_at = off0 + page * ps + 8
    p = damaged(tmp_path, V6, lambda d: put(d, commit_at, struct.pack("<Q", ps + 100)))
    # strict: opening and metadata work; the events raise, pointing at the page
    with open_trace(p) as tf:
        assert len(tf.formats) == v6_full["formats"]
        assert tf.cmdlines == v6_full["cmdlines"]
        with pytest.raises(TraceDatError) as ei:
            _ = tf.buffers[0].events
        assert type(ei.value) is CorruptSectionError
        check_error(ei.value, p, offset=commit_at, section="flyrecord")
        assert f"page {page}" in ei.value.message
    check_cli(p, ei.value)
    # non-strict: loads, drops that page, says so
    with open_trace(p, strict=False) as tf:
        b = tf.buffers[0]
        n = len(b.events)
        st = {s.cpu: s for s in b.stats}
        assert [bp.page for bp in st[c0].bad_pages] == [page]
        assert st[c0].bad_pages[0].offset == page * ps + 8
        assert 0 < n < len(v6_full["ts"])
        assert st[c0].events < v6_full["per_cpu"][c0]
        assert any("corrupt page" in w and str(commit_at) in w for w in tf.warnings)


def test_event_length_past_commit_v6(tmp_path, v6_full):
    """An event header whose length runs past the page's commit."""
    (c0, off0, _s), _ = v6_full["cpu"]
    ps = v6_full["page_size"]
    page = 5
    first_event = off0 + page * ps + 16
    # type_len 0 with array[0] = huge length
    p = damaged(tmp_path, V6, lambda d: put(d, first_event, struct.pack("<II", 0, 60000)))
    with open_trace(p) as tf, pytest.raises(CorruptSectionError) as ei:
        _ = tf.buffers[0].events
    check_error(ei.value, p, offset=first_event)
    with open_trace(p, strict=False) as tf:
        b = tf.buffers[0]
        assert 0 < len(b.events) < len(v6_full["ts"])
        assert {bp.page for s in b.stats for bp in s.bad_pages} == {page}


def test_corrupt_zstd_chunk(tmp_path, v7_layout):
    (cpu0, off, _size), (cpu1, _o1, _s1) = v7_layout["cpu"]
    chunk_hdr = off + 4
    p = damaged(tmp_path, V7, lambda d: put(d, chunk_hdr + 8, b"\xde\xad\xbe\xef"))  # the frame magic
    with open_trace(p) as tf:
        assert len(tf.formats) == v7_layout["formats"]  # metadata intact
        with pytest.raises(TraceDatError) as ei:
            _ = tf.buffers[0].events
        assert type(ei.value) is CorruptSectionError
        check_error(ei.value, p, offset=chunk_hdr, section="buffer")
    check_cli(p, ei.value)
    with open_trace(p, strict=False) as tf:
        b = tf.buffers[0]
        t = b.events
        assert 0 < len(t) < v7_layout["events"]
        assert set(t.column("cpu").to_numpy().tolist()) == {cpu1}
        assert any("does not decompress" in w for w in tf.warnings)


def test_corrupt_page_inside_zstd_chunk(tmp_path, v7_layout):
    """A page that lies, inside a compressed chunk: rebuild the chunk with the page damaged."""
    import zstandard

    (cpu0, off, size), _ = v7_layout["cpu"]
    data = bytearray(V7.read_bytes())
    (count,) = struct.unpack_from("<I", data, off)
    c, u = struct.unpack_from("<II", data, off + 4)
    raw = bytearray(zstandard.ZstdDecompressor().decompress(bytes(data[off + 12:off + 12 + c]), max_output_size=u))
    raw[8:16] = struct.pack("<Q", 5000)  # page 0's commit > page size
    comp = zstandard.ZstdCompressor(level=19, write_content_size=False).compress(bytes(raw))
    assert len(comp) <= c  # fits where the old chunk was; pad the rest with the old bytes
    data[off + 4:off + 12] = struct.pack("<II", len(comp), u)
    data[off + 12:off + 12 + len(comp)] = comp
    # the chunk is now shorter: the CPU's size stays, so declare 1 chunk (it is) and keep padding
    assert count == 1
    p = tmp_path / "bad.dat"
    p.write_bytes(bytes(data))
    with open_trace(p) as tf, pytest.raises(CorruptSectionError) as ei:
        _ = tf.buffers[0].events
    check_error(ei.value, p, offset=off + 4)  # the header of the chunk holding the page
    assert "decompressed data" in ei.value.message
    with open_trace(p, strict=False) as tf:
        b = tf.buffers[0]
        assert 0 < len(b.events) < v7_layout["events"]
        st = {s.cpu: s for s in b.stats}
        assert [bp.page for bp in st[cpu0].bad_pages] == [0]


def test_chunk_claims_impossible_size(tmp_path, v7_layout):
    (_cpu0, off, _size), _ = v7_layout["cpu"]
    p = damaged(tmp_path, V7, lambda d: put(d, off + 8, struct.pack("<I", 4096 * 161)))
    with open_trace(p) as tf, pytest.raises(CorruptSectionError) as ei:
        _ = tf.buffers[0].events
    check_error(ei.value, p, offset=off + 4)
    with open_trace(p, strict=False) as tf:
        assert 0 < len(tf.buffers[0].events) < v7_layout["events"]
        assert tf.warnings


def test_cpu_data_offset_past_end_v6(tmp_path, v6_full):
    """A CPU table entry pointing past the end: loads, that CPU counted as truncated."""
    with open_trace(V6) as tf:
        top = tf._v6_top_offset
    data = V6.read_bytes()
    tag = data.index(b"flyrecord\0", top)
    table = tag + 10
    p = damaged(tmp_path, V6, lambda d: put(d, table + 16, struct.pack("<Q", 1 << 40)))
    with open_trace(p) as tf:
        b = tf.buffers[0]
        assert len(b.events) == v6_full["per_cpu"][0]
        st = {s.cpu: s for s in b.stats}
        (c0, _o, _s), (c1, _o1, size1) = v6_full["cpu"]
        assert st[c1].events == 0 and st[c1].truncated_bytes == size1
        assert st[c0].events == v6_full["per_cpu"][c0]


# -- metadata blocks parsed lazily ----------------------------------------------------------------

def test_bad_event_format_is_typed_and_located(tmp_path):
    data = V6.read_bytes()
    i = data.index(b"field:unsigned short common_type;\toffset:0;\tsize:2;")
    p = damaged(tmp_path, V6, lambda d: put(d, i + 40, b"size:x"))  # the line no longer parses
    with open_trace(p) as tf:
        assert tf.cmdlines and len(tf.kallsyms)  # other metadata unaffected
        with pytest.raises(TraceDatError) as ei:
            _ = tf.formats
        assert type(ei.value).__name__ == "FormatParseError"
        # the offset of the bad format's text: the first one, after the u32 count and its u64 size
        check_error(ei.value, p, offset=tf._section_pos[OptionId.FTRACE_EVENTS] + 4 + 8)
    r = run_cli(p)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr


def test_implausible_field_size():
    """Field offsets/sizes/array lengths drive allocations in extraction: bounded at parse time."""
    from kshark_py.loaders.errors import FormatParseError
    from kshark_py.loaders.formats import parse_format
    with pytest.raises(FormatParseError):
        parse_format("name: x\nID: 1\nformat:\n\tfield:char a[100000000];\toffset:8;\tsize:100000000;"
                     "\tsigned:0;\n", "s")
    with pytest.raises(FormatParseError):
        parse_format("name: x\nID: 1\nformat:\n\tfield:int a[4000000];\toffset:8;\tsize:16;\tsigned:0;\n", "s")


def test_metadata_block_size_past_end_v6(tmp_path):
    with open_trace(V6) as tf:
        kpos = tf._section_pos[OptionId.KALLSYMS]
    p = damaged(tmp_path, V6, lambda d: put(d, kpos, struct.pack("<I", 0xFFFFFFF0)))
    e = expect_open_error(p, TruncatedFileError, offset=kpos, section="kallsyms")
    check_cli(p, e)


def test_zlib_file_corrupt_metadata(tmp_path):
    if not ZLIB.exists():
        pytest.skip("external traces not present")
    with open_trace(ZLIB) as tf:
        hdr = tf.meta.section_offsets[OptionId.EVENT_FORMATS]
    p = damaged(tmp_path, ZLIB, lambda d: put(d, hdr + 16 + 8, b"\xff\xff"))  # zlib stream header
    e = expect_open_error(p, DecompressionError, offset=hdr + 16, section="events format")
    check_cli(p, e)


def test_header_page_field_without_name(tmp_path):
    """Found by the fuzzer: a NUL inside header_page's "commit" field declaration."""
    data = V6.read_bytes()
    i = data.index(b"local_t commit;")
    p = damaged(tmp_path, V6, lambda d: put(d, i + 13, b"\0"))
    with pytest.raises(TraceDatError) as ei:
        open_trace(p)
    assert type(ei.value).__name__ == "FormatParseError"
    check_error(ei.value, p, section="headers")
    check_cli(p, ei.value)
