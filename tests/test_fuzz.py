"""Fuzz every path a trace file takes with mutated real files: no crash, no hang, no memory blow-up.

The cases come from tests/fuzzcases.py (read its docstring), the same code as the long run
(benchmarks/fuzz_long.py): real files of ../shared/traces mutated as raw bytes, inside decompressed
v7 chunks (pages and events, recompressed with sizes fixed), inside metadata texts (formats, headers,
kallsyms, printk, cmdlines) and option payloads, then loaded strict and lenient, through the app's load,
report -t/-R/--cpu, the CLI, export, info texts, the timeline model and (a few) the Qt event table.
Every case runs in a forked child with a time and address-space limit; the children are forked from a
fresh process (a subprocess of this test) that has no threads.

Bounded for CI: FUZZ_CASES cases per corpus file and mutator (about 2 minutes on 2 cores).  Deeper
local runs, over other seeds: KSHARK_FUZZ_SEED=7 KSHARK_FUZZ_EXAMPLES=40 pytest tests/test_fuzz.py, or
benchmarks/fuzz_long.py N.  What the runs found is pinned below as minimal mutations of the same files.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections import Counter
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from kshark_py.loaders.errors import CorruptSectionError
from kshark_py.loaders.layout import OptionId
from kshark_py.loaders.options import MAX_CPUS
from kshark_py.loaders.tracedat import open_trace

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fuzzcases  # noqa: E402

TRACES = fuzzcases.TRACES
FILES = {
    "v7": TRACES / "host-small-v7.dat",
    "v6": TRACES / "host-sched-v6.dat",
    "printk": TRACES / "host-printk.dat",
    "guest": TRACES / "vm-tsync" / "trace-vmguest.dat",
    "zlib": TRACES / "external" / "doc-test" / "trace.dat",
}
FUZZ_SEED = int(os.environ.get("KSHARK_FUZZ_SEED", "20261206"))
FUZZ_CASES = int(os.environ.get("KSHARK_FUZZ_EXAMPLES", "10"))
"""Cases per corpus file and mutator; CI runs 10 (11 files x 4 mutators x 10 = 440 cases at full depth)."""
KEYS = [k for k, (paths, _) in fuzzcases.CORPUS.items() if all(p.exists() for p in paths)]


@cache
def original(key: str) -> bytes:
    return FILES[key].read_bytes()


def run_cases(kind: str, cases: int, seed: int = FUZZ_SEED, keys: list[str] = KEYS) -> list[dict]:
    """Run cases in a fresh process (tests/fuzzcases.py main); one dict per case."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [sys.executable, str(Path(fuzzcases.__file__)), "--keys", ",".join(keys), "--seed", str(seed),
         "--cases", str(cases), "--kind", kind, "--jobs", "2"],
        capture_output=True, text=True, env=env, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]


def bug_report(results: list[dict]) -> str:
    bugs = [r for r in results if r["outcome"].startswith("crash") or r["outcome"] in ("hang", "blowup")]
    return "\n\n".join(f"{r['case']} ({r['kind']}, forced {r['forced']}): {r['outcome']} in {r['step']}: "
                       f"{r['sig']}\nmutations: {r['steps']}\n{r['tb']}" for r in bugs[:5])


UNMUTATED_KEYS = list({fuzzcases.CORPUS[k][0]: k for k in reversed(KEYS)}.values())[::-1]
"""One key per set of files: unmutated, pair-host and pair-guest are the same case (the same two files, the
same paths), so the baseline runs it once."""


def test_unmutated_files_take_every_path():
    # the baseline: each corpus file, unmutated, through every path (report with --cpu 0-999999999999)
    assert "pair-host" in UNMUTATED_KEYS and "pair-guest" not in UNMUTATED_KEYS
    results = run_cases("none", 1, keys=UNMUTATED_KEYS)
    assert len(results) == len(UNMUTATED_KEYS)
    assert all(r["outcome"] == "clean" for r in results), bug_report(results) or results


@pytest.mark.parametrize("kind", fuzzcases.KINDS)
def test_fuzz(kind):
    results = run_cases(kind, FUZZ_CASES)
    assert len(results) == FUZZ_CASES * len(KEYS)
    report = bug_report(results)
    assert not report, report
    outcomes = Counter(r["outcome"].split(":")[0] for r in results)
    # the mutations reach the data: many files still load (the decoders ran on mutated content) and
    # many are refused with a typed error
    assert outcomes["clean"] + outcomes["lenient-only"] >= len(results) // 10, outcomes
    if kind != "option":
        assert outcomes["typed"] + outcomes["lenient-only"] + outcomes["deep"] >= len(results) // 20, outcomes


def test_chunk_mutations_pass_decompression(tmp_path):
    # a chunk mutation recompresses the pages and fixes the sizes: the reader decodes the mutated pages
    # (no DecompressionError); the mutated file differs from the original only inside that chunk
    seen = 0
    for i in range(20):
        case, files = fuzzcases.make_case("v7", FUZZ_SEED, i, "chunk")
        assert case.steps[0].startswith("chunk"), case.steps
        if len(case.steps) > 1:
            continue
        seen += 1
        p = tmp_path / "c.dat"
        p.write_bytes(files[0])
        try:
            with open_trace(p, strict=False) as tf:
                for b in tf.buffers:
                    _ = b.events
        except Exception as e:  # noqa: BLE001
            assert "DecompressionError" != type(e).__name__, (case.steps, e)
    assert seen >= 10


def test_structure_fixes_keep_files_loadable(tmp_path):
    # the splices of the mutators keep the file consistent: an unchanged chunk recompressed (other
    # size), a cmdlines text one newline longer, an option one byte longer load as the original does
    for key in ("v7", "v6", "zlib", "instances"):
        path = fuzzcases.CORPUS[key][0][0]
        data, lay = fuzzcases.original(path), fuzzcases.layout(path)
        with open_trace(path) as tf:
            want = [len(b.events) for b in tf.buffers], len(tf.cmdlines)
        variants = []
        if lay.compression != "none":
            cd = lay.cpu_data[0]
            h = fuzzcases.chunk_headers(data, cd)[0]
            c, u = struct.unpack_from("<II", data, h)
            pages = fuzzcases.decompress(lay.compression, data[h + 8:h + 8 + c], u)
            block = fuzzcases.compress(lay.compression, pages)
            sizes = [(cd.size_field, "<Q")] + ([(lay.data_sections[cd.offset].offset + 8, "<Q")]
                                                if cd.offset in lay.data_sections else [])
            variants.append(fuzzcases.splice(data, lay, h, h + 8 + c, struct.pack("<II", len(block), u) + block,
                                             sizes))
        start, end = lay.meta["cmdlines"]
        sec = next((s for s in lay.sections if s.content == start), None)
        raw = data[start:end]
        content = fuzzcases.decompress(lay.compression, raw[8:], struct.unpack_from("<I", raw, 4)[0]) \
            if sec is not None and sec.flags & 1 else raw
        items = fuzzcases.parse_meta("cmdlines", content)
        assert fuzzcases.build_meta(items) == content
        items[0][1] += b"\n"
        new = fuzzcases.build_meta(items)
        if sec is not None and sec.flags & 1:
            block = fuzzcases.compress(lay.compression, new)
            new = struct.pack("<II", len(block), len(new)) + block
        variants.append(fuzzcases.splice(data, lay, start, end, new, [(sec.offset + 8, "<Q")] if sec else []))
        o = next(o for o in lay.options if o.oid == OptionId.UNAME)
        payload = data[o.payload:o.payload + o.size] + b"\0"
        variants.append(fuzzcases.splice(data, lay, o.offset, o.payload + o.size,
                                         struct.pack("<HI", o.oid, len(payload)) + payload,
                                         [(o.section.offset + 8, "<Q")] if o.section else []))
        for v in variants:
            assert len(v) != len(data)
            p = tmp_path / f"{key}.dat"
            p.write_bytes(v)
            with open_trace(p) as tf:
                assert ([len(b.events) for b in tf.buffers], len(tf.cmdlines)) == want, key


def _option_records(data: bytes, pos: int, end: int, *, v7: bool) -> list[int]:
    """Offsets of the option records (u16 id, u32 size) from pos up to DONE (or end)."""
    out = []
    while pos + 6 <= end and len(out) < 1000:
        out.append(pos)
        oid, size = struct.unpack_from("<HI", data, pos)
        if oid == 0 and not v7:
            break
        if oid == 0:  # v7 DONE: u64 offset of the next options section
            out.append(pos + 6)
            break
        pos += 6 + size
    return out


# --- regressions found by the fuzz test (minimal mutations of the real files) -----------------------------
def _time_shift_fields(data: bytes, tf) -> dict[str, int]:
    """File offsets of the guest's TIME_SHIFT arrays (one VCPU): times, offsets, scalings, fractions."""
    head = struct.pack("<Q", tf.meta.time_shift.peer_trace_id)
    at = data.index(head)  # the option's payload: u64 peer id, u32 flags, u32 VCPUs, u32 count, arrays
    assert data.count(head) == 1 and struct.unpack_from("<II", data, at + 8)[1] == 1
    (n,) = struct.unpack_from("<I", data, at + 16)
    return {name: at + 20 + 8 * n * i for i, name in enumerate(["times", "offsets", "scalings", "fractions"])}


@pytest.mark.skipif(not FILES["guest"].exists(), reason="guest trace not present")
@pytest.mark.parametrize("fraction", [-9214287129336769559, -1, 64])
def test_time_shift_fraction_out_of_range(tmp_path, fraction):
    # seed 170, guest case 1: a span over the TIME_SHIFT arrays left a negative fraction, and converting
    # the timestamps raised OverflowError (numpy uint64).  It is a shift count, undefined in C beyond 0..63.
    data = bytearray(original("guest"))
    with open_trace(FILES["guest"]) as tf:
        assert tf.meta.time_shift.cpus[0].fractions == (0, 0)
        at = _time_shift_fields(data, tf)["fractions"] + 8
    struct.pack_into("<q", data, at, fraction)
    path = tmp_path / "frac.dat"
    path.write_bytes(data)
    for strict in (True, False):
        with pytest.raises(CorruptSectionError, match=f"VCPU 0 sample 1: {fraction} fraction bits") as ei:
            open_trace(path, strict=strict)
        assert ei.value.offset == at and ei.value.section == "options" and ei.value.path == str(path)


def _host_time(ts: int, c, flags: int, ts_offset: int) -> int:
    """libtracecmd's guest -> host conversion of one raw timestamp, with Python integers (2 samples)."""
    def s64(x: int) -> int:
        x &= 2**64 - 1
        return x - 2**64 if x >= 2**63 else x

    def cdiv(a: int, b: int) -> int:  # C division, toward zero
        q = abs(a) // abs(b)
        return -q if (a < 0) != (b < 0) else q

    (t0, t1), (o0, o1) = c.times, c.offsets
    if flags & 1:  # interpolate
        tscor = s64(o0 + cdiv(s64(s64(ts - t0) * (o1 - o0)) + cdiv(t1 - t0, 2), t1 - t0))
    else:
        tscor = o0
    scaled = (ts * (c.scalings[0] % 2**64)) % 2**64 >> c.fractions[0]  # u64 ts * (u64)s64 scaling
    return (scaled + tscor + ts_offset) % 2**64


@pytest.mark.skipif(not FILES["guest"].exists(), reason="guest trace not present")
def test_time_shift_negative_scaling_wraps_as_in_c(tmp_path):
    # same span: a negative scaling raised OverflowError too; C converts it to u64 for "ts * scaling"
    data = bytearray(original("guest"))
    with open_trace(FILES["guest"]) as tf:
        at = _time_shift_fields(data, tf)
        n_events = len(tf.buffers[0].events)
    struct.pack_into("<qq", data, at["scalings"], -3, -3)
    struct.pack_into("<qq", data, at["fractions"], 1, 1)
    path = tmp_path / "scaling.dat"
    path.write_bytes(data)
    for strict in (True, False):
        with open_trace(path, strict=strict) as tf:
            assert tf.meta.tsc2nsec is None
            shift = tf.meta.time_shift
            c = shift.cpus[0]
            assert c.scalings == (-3, -3) and c.fractions == (1, 1)
            assert len(tf.buffers[0].events) == n_events
            guest = [0, c.times[0], (c.times[0] + c.times[1]) // 2, c.times[1] + 1, 2**63 + 5]
            got = tf.convert_ts(np.array(guest, np.uint64), np.zeros(len(guest), np.int16)).view(np.uint64)
            assert got.tolist() == [_host_time(t, c, shift.flags, tf.meta.ts_offset) for t in guest]


@pytest.mark.skipif(not FILES["v6"].exists(), reason="v6 trace not present")
@pytest.mark.parametrize(("text", "clock"), [(b"\xff[locl]", "locl"), (b"[locall", None), (b"]local[", None)])
def test_v6_flyrecord_clock_text(tmp_path, text, clock):
    # a v6 flyrecord's clock text ("[local]") that was not UTF-8 raised UnicodeDecodeError, one without
    # "]" a ValueError ("]x[" named the clock ""); the TRACECLOCK option still names the buffers' clock
    data = bytearray(original("v6"))
    with open_trace(FILES["v6"]) as tf:
        at = data.index(b"flyrecord\0", tf._v6_top_offset) + 10 + 16 * tf.cpus
        assert tf._v6_top[2] == "local" and tf.buffers[0].clock == "local"
    assert data[at:at + 15] == struct.pack("<Q", 7) + b"[local]"
    assert len(text) == 7
    data[at + 8:at + 15] = text
    path = tmp_path / "clock.dat"
    path.write_bytes(data)
    for strict in (True, False):
        with open_trace(path, strict=strict) as tf:
            assert tf._v6_top[2] == clock
            assert tf.buffers[0].clock == "local"
            assert len(tf.buffers[0].events)


def _v7_option(data: bytes, oid: int) -> int:
    """File offset of the first record with this option id in a v7 file's first options section."""
    pos = data.index(b"\0", 10) + 1 + 6  # past magic, version, endianness, long size, page size
    pos = data.index(b"\0", data.index(b"\0", pos) + 1) + 1  # past the compression name and version
    (sec,) = struct.unpack_from("<Q", data, pos)
    (size,) = struct.unpack_from("<Q", data, sec + 8)
    return next(p for p in _option_records(data, sec + 16, sec + 16 + size, v7=True)
                if struct.unpack_from("<H", data, p)[0] == oid)


@pytest.mark.skipif(not FILES["v7"].exists(), reason="v7 trace not present")
@pytest.mark.parametrize(("oid", "text", "ts_offset"), [
    (OptionId.DATE, b"\0" * 8, 0), (OptionId.OFFSET, b"  \0", 0), (OptionId.OFFSET, b"-\0", 0),
    (OptionId.OFFSET, b"-0x10\0", -16), (OptionId.DATE, b"+012\0", 10_000),
])
def test_date_and_offset_option_texts(tmp_path, oid, text, ts_offset):
    # seed 259, v7 case 2: bit flips made an option a DATE with an empty text, and strtoll raised
    # IndexError ('"" in "+-"' is true); here the TRACEID option of the real file becomes DATE / OFFSET
    data = bytearray(original("v7"))
    with open_trace(FILES["v7"]) as tf:
        ts = tf.buffers[0].events.column("ts").to_numpy()
    at = _v7_option(data, OptionId.TRACEID)
    assert struct.unpack_from("<HI", data, at) == (OptionId.TRACEID, 8)
    struct.pack_into("<H", data, at, oid)
    data[at + 6:at + 6 + len(text)] = text
    path = tmp_path / "date.dat"
    path.write_bytes(data)
    for strict in (True, False):
        with open_trace(path, strict=strict) as tf:
            assert tf.meta.ts_offset == ts_offset
            assert (tf.buffers[0].events.column("ts").to_numpy() == ts + ts_offset).all()


@pytest.mark.skipif(not FILES["v7"].exists(), reason="v7 trace not present")
@pytest.mark.parametrize("sign", [-1, 1])
def test_offset_option_overflow_clamps_as_strtoll(tmp_path, sign):
    # C's strtoll clamps to LLONG_MIN/LLONG_MAX; the timestamps then wrap as u64 (the VERSION option's
    # 21 bytes become an OFFSET of 20 digits)
    data = bytearray(original("v7"))
    with open_trace(FILES["v7"]) as tf:
        ts = tf.buffers[0].events.column("ts").to_numpy()
    at = _v7_option(data, OptionId.VERSION)
    assert struct.unpack_from("<HI", data, at) == (OptionId.VERSION, 21)
    struct.pack_into("<H", data, at, OptionId.OFFSET)
    data[at + 6:at + 27] = (b"-" if sign < 0 else b"+") + b"9" * 19 + b"\0"
    path = tmp_path / "offset.dat"
    path.write_bytes(data)
    with open_trace(path) as tf:
        clamp = -(1 << 63) if sign < 0 else (1 << 63) - 1
        assert tf.meta.ts_offset == clamp
        got = tf.buffers[0].events.column("ts").to_numpy().view(np.uint64)
        assert (got == ts.view(np.uint64) + np.uint64(clamp % 2**64)).all()


def test_strtoll_long_digit_run_is_linear_and_clamps():
    # a DATE/OFFSET option is as long as its section: a run of digits used to grow a huge int (quadratic)
    from kshark_py.loaders.cnum import strtoll, strtoull
    assert strtoll("9" * 5_000_000) == (1 << 63) - 1
    assert strtoll("-0x" + "f" * 5_000_000) == -(1 << 63)
    assert strtoull("9" * 5_000) == 2**64 - 1  # int() of over 4,300 decimal digits raises ValueError


@pytest.mark.skipif(not FILES["v7"].exists(), reason="v7 trace not present")
@pytest.mark.parametrize("count", [MAX_CPUS + 1, 2**32 - 1])
def test_cpucount_option_beyond_the_supported_cpus(tmp_path, count):
    # long run seed 20261206, pair-host case 310: a CPUCOUNT option of 4294967295 (one u32 changed) was
    # taken as the file's CPU count: the app's timeline built a row per CPU (no answer in 60 s, then
    # MemoryError) and `report --cpu 0-999999999999` listed 4 billion CPUs (MemoryError, a traceback).
    # CPU ids are int16 here (MAX_CPUS, as for the BUFFER option's CPU entries): a typed error.
    data = bytearray(FILES["v7"].read_bytes())
    at = _v7_option(data, OptionId.CPUCOUNT)
    assert struct.unpack_from("<HII", data, at) == (OptionId.CPUCOUNT, 4, 2)
    struct.pack_into("<I", data, at + 6, count)
    path = tmp_path / "cpucount.dat"
    path.write_bytes(data)
    for strict in (True, False):
        with pytest.raises(CorruptSectionError, match=f"CPUCOUNT {count}") as ei:
            open_trace(path, strict=strict)
        assert ei.value.offset == at + 6 and ei.value.section == "options" and ei.value.path == str(path)
    proc = subprocess.run([sys.executable, "-m", "kshark_py.cli", "report", str(path), "--cpu", "0-999999999999"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and proc.stdout == "" and proc.stderr.count("\n") == 1, proc.stderr
    assert f"CPUCOUNT {count}" in proc.stderr


@pytest.mark.skipif(not FILES["v6"].exists(), reason="v6 trace not present")
@pytest.mark.parametrize("cpus", [30000, 40000])
def test_v6_cpu_count_reading_overlapping_cpu_data(tmp_path, cpus):
    # a v6 header's CPU count of 30000 (one u32 changed; the file has 2) makes the flyrecord table run
    # on into the clock text and the pages: thousands of CPU entries whose data overlap.  Sizing the
    # event columns by their summed bytes asked for 39-54 GB (MemoryError, strict and lenient).
    # trace-cmd writes each CPU's pages apart: overlapping CPU data is a corrupt table, a typed error.
    data = bytearray(FILES["v6"].read_bytes())
    at = fuzzcases.layout(FILES["v6"]).meta["cmdlines"][1]  # the u32 CPU count follows the cmdlines
    assert struct.unpack_from("<I", data, at) == (2,)
    struct.pack_into("<I", data, at, cpus)
    path = tmp_path / "cpus.dat"
    path.write_bytes(data)
    for strict in (True, False):
        with pytest.raises(CorruptSectionError, match="overlaps") as ei:
            with open_trace(path, strict=strict) as tf:
                _ = tf.buffers[0].events
        assert ei.value.path == str(path) and ei.value.offset is not None


def _with_format_edit(path: Path, old: bytes, new: bytes) -> bytes:
    """The real file with one event format text edited (sizes and later offsets fixed by fuzzcases)."""
    data, lay = fuzzcases.original(path), fuzzcases.layout(path)
    start, end = lay.meta["formats"]
    assert lay.version == 6  # uncompressed metadata: the text is edited in place
    items = fuzzcases.parse_meta("formats", data[start:end])
    hit = [it for it in items if isinstance(it[1], bytes) and old in it[1]]
    assert len(hit) == 1
    hit[0][1] = hit[0][1].replace(old, new)
    return fuzzcases.splice(data, lay, start, end, fuzzcases.build_meta(items))


@pytest.mark.parametrize("old,new", [
    # found by the long run (seed 31337): export died in task_names on a comm field of u64s (a
    # pointer array: ArrowNotImplementedError) and on a pid field of chars (int(b'\x97\x1c\x00'))
    (b"field:char prev_comm[16];", b"field:const char * prev_comm[2];"),
    (b"field:pid_t prev_pid;\toffset:24;\tsize:4;", b"field:char prev_pid[4];\toffset:24;\tsize:4;"),
])
def test_task_names_skip_fields_of_the_wrong_type(tmp_path, old, new):
    from kshark_py.export import export_parquet

    p = tmp_path / "edited.dat"
    p.write_bytes(_with_format_edit(FILES["v6"], old, new))
    out = tmp_path / "x.parquet"
    with open_trace(p) as tf:
        n = export_parquet(tf, str(out))
    with open_trace(FILES["v6"]) as tf:
        assert n == tf.buffers[0].events.num_rows
    # and the app's CPU rows (cpu_runs did arithmetic on a pid of chars: AttributeError)
    from kshark_py.model.session import Session

    s = Session.from_files([open_trace(p)])
    runs = s.runs(0)
    assert runs.num_rows > 0 if b"prev_comm" in old else runs.num_rows == 0


@pytest.mark.parametrize("old,new", [
    # found by the long run (seed 20261206, printk/587): `report` died registering the sched plugin's
    # comms when next_pid was a string (int(b''): ValueError)
    (b"field:pid_t next_pid;\toffset:56;\tsize:4;", b"field:__data_loc char[] next_pid;\toffset:56;\tsize:4;"),
    (b"field:char next_comm[16];", b"field:u64 next_comm[2];"),
    # kvm/5282 of the same run: a comm of u32[16] (ArrowNotImplementedError in decode_array)
    (b"field:char next_comm[16];", b"field:u32 next_comm[16];"),
])
def test_report_plugin_comms_skip_fields_of_the_wrong_type(tmp_path, capsysbinary, old, new):
    from kshark_py.cli import main

    p = tmp_path / "edited.dat"
    p.write_bytes(_with_format_edit(FILES["v6"], old, new))
    for flags in ([], ["-t"]):
        assert main(["report", "-i", str(p), *flags]) == 0
        out = capsysbinary.readouterr().out
        with open_trace(FILES["v6"]) as tf:
            assert out.count(b"\n") == tf.buffers[0].events.num_rows + 1  # and the "cpus=2" line


def test_guest_cut_before_its_buffer_index(tmp_path, traces, capsys, qtbot):
    """Found by the long run (seed 20261206, pair-guest/821): the real guest file cut at byte 898,341
    loses its top buffer's index, so the guest has no stream; `vcpus` died (StopIteration) and the
    app's VCPU map panel would have too.  Both now list the guest's VCPUs with no events."""
    from kshark_py.cli import main
    from kshark_py.model.session import Session
    from kshark_py.model.vcpus import build_vcpu_map, vcpu_summary
    from kshark_py.ui.panels import VcpuMapPanel

    host = traces / "vm-tsync" / "trace.dat"
    guest = tmp_path / "trace-vmguest.dat"
    guest.write_bytes((traces / "vm-tsync" / "trace-vmguest.dat").read_bytes()[:898_341])
    s = Session.from_files([open_trace(host), open_trace(guest, strict=False)])
    assert s.guests and not [st for st in s.streams if st.guest is not None and st.buffer.name == ""]
    maps = build_vcpu_map(s, {"vmguest": {0: 27186}})
    t = vcpu_summary(s, maps)
    assert t.column("guest").to_pylist() == ["vmguest"] and t.column("guest_events").to_pylist() == [0]
    assert main(["vcpus", str(host), str(guest), "--vcpu-map", "vmguest:0=27186"]) == 0
    out, err = capsys.readouterr()
    assert "vmguest" in out and "file ends at byte 898341" in err
    panel = VcpuMapPanel()
    qtbot.addWidget(panel)
    panel.set_data(s, maps, lambda stream, pid: str(pid))
    assert panel.table.rowCount() == 1 and panel.table.item(0, 5).text() == "0"


def test_splice_skips_size_fields_an_earlier_step_cut_off():
    """A fuzzer error of the long run (seed 20261206, pair-guest/1586): an option mutation after a
    truncation adjusted a section size that no longer was in the data (struct.error in the fuzzer)."""
    lay = fuzzcases.layout(FILES["v7"])
    data = fuzzcases.original(FILES["v7"])[:29]
    assert fuzzcases.splice(data, lay, 10, 12, b"abcd", [(898_418, "<Q")]) == data[:10] + b"abcd" + data[12:]


def test_mutators_survive_what_earlier_steps_left():
    """Fuzzer errors of the long run (seed 20261206): a raw mutation of a file an earlier step cut to
    nothing (badcomm/3862: randrange of an empty range) and a splice over an offset field an earlier
    step set near 2**64 (instances/4960: struct.error)."""
    import random

    lay = fuzzcases.layout(FILES["v7"])
    assert fuzzcases.mutate_raw(random.Random(1), b"", lay) == (b"", "raw nothing (empty file)")
    data = bytearray(fuzzcases.original(FILES["v7"]))
    p = next(q for q in lay.offset_fields if q > 64)
    struct.pack_into("<Q", data, p, 2**64 - 1)
    out = fuzzcases.splice(bytes(data), lay, 10, 12, b"abcd", ())
    assert struct.unpack_from("<Q", out, p + 2)[0] == 1  # wrapped, as a C u64 would


def test_meta_mutation_of_a_compressed_section_cut_short():
    """Fuzzer error of the long run (seed 20261206, v7/6635): a metadata mutation read the 8-byte
    header of a compressed section an earlier step had cut to nothing (struct.error)."""
    import random

    lay = fuzzcases.layout(FILES["v7"])
    compressed = [s.content for s in lay.sections if s.flags & 1 and s.content in {a for a, _ in lay.meta.values()}]
    assert compressed, "the v7 corpus file has compressed metadata sections"
    data = fuzzcases.original(FILES["v7"])[: min(compressed) + 3]
    for seed in range(40):  # every kind the rng picks: a cut section is skipped, never an error
        out = fuzzcases.mutate_meta(random.Random(seed), data, lay)
        assert out is None or isinstance(out[0], bytes)
