"""Fuzz the reader with mutated real trace files: every outcome is a clean load or a TraceDatError.

Mutations: bit flips, overwritten spans, truncation, a duplicated span; positions are biased toward
the file's structure (section headers, option records, v6 flyrecord CPU tables, CPU data starts, chunk
and page headers), where a random byte is most likely to matter.  Each case opens the file, loads every
buffer's events (strict and non-strict), the formats, kallsyms, printk and cmdlines, and extracts the
fields of the most frequent event types.  Bounded: 30 cases per file (150 in all), each with a time
limit (a hang or a pathological allocation is a bug).

The cases come from a seeded random.Random, not from Hypothesis: Hypothesis draws ~5% of its values
from constants it mines from the project's modules loaded in the process, with derandomize=True too,
so its inputs changed with each edit to kshark_py (and with which modules a run had imported).  These
cases depend only on the seed and the trace files.  Deeper local runs, over other seeds:
KSHARK_FUZZ_SEED=7 KSHARK_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz.py
What such runs found is pinned below as minimal mutations of the same files.
"""

from __future__ import annotations

import os
import random
import signal
import struct
import tempfile
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from kshark_py.loaders.compress import read_chunk_table
from kshark_py.loaders.errors import CorruptSectionError, TraceDatError
from kshark_py.loaders.layout import OptionId
from kshark_py.loaders.tracedat import open_trace

TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces"
FILES = {
    "v7": TRACES / "host-small-v7.dat",
    "v6": TRACES / "host-sched-v6.dat",
    "printk": TRACES / "host-printk.dat",
    "guest": TRACES / "vm-tsync" / "trace-vmguest.dat",
    "zlib": TRACES / "external" / "doc-test" / "trace.dat",
}
CASE_SECONDS = 20
FUZZ_SEED = int(os.environ.get("KSHARK_FUZZ_SEED", "20261126"))
FUZZ_CASES = int(os.environ.get("KSHARK_FUZZ_EXAMPLES", "30"))
"""Cases per file; CI runs 30 (150 in all, a few seconds)."""
OUTCOMES: dict[str, int] = {}
"""Counts of outcomes (clean / error class), for checking that the fuzzing reaches the data."""


@cache
def original(key: str) -> bytes:
    return FILES[key].read_bytes()


@cache
def landmarks(key: str) -> tuple[int, ...]:
    """Offsets where the file's structure lives (headers, tables, page and chunk headers)."""
    data = original(key)
    marks = {0, len(data) - 1}
    with open_trace(FILES[key]) as tf:
        marks.update(tf._section_pos.values())
        if tf.version >= 7:
            pos = data.index(b"\0", 10) + 1 + 6
            pos = data.index(b"\0", data.index(b"\0", pos) + 1) + 1
            marks.add(pos)
            (off,) = struct.unpack_from("<Q", data, pos)
            pos += 8
            while pos + 16 <= len(data):  # every section header, walked contiguously
                marks.add(pos)
                sid, flags, _, size = struct.unpack_from("<HHIQ", data, pos)
                if sid == 0 and not flags & 1:  # an uncompressed options section: its records
                    marks.update(_option_records(data, pos + 16, pos + 16 + size, v7=True))
                pos += 16 + size
        else:
            marks.add(tf._v6_top_offset)
            marks.update(_option_records(data, tf._v6_top_offset + 10, len(data), v7=False))
            marks.add(data.index(b"flyrecord\0", tf._v6_top_offset))  # CPU table, then the clock
            marks.update(b.section_offset for b in tf.meta.buffers)  # instances' flyrecord tags
        for b in tf.buffers:
            for cd in b.cpu_data:
                marks.add(cd.offset)
                if b.compressed:
                    t = read_chunk_table(tf.buf, cd.offset, cd.offset + 4 + cd.size, tf.lay, b.page_size, "")
                    marks.update(int(o) - 8 for o in t.file_offsets[:20])
                else:
                    marks.update(range(cd.offset, cd.offset + min(cd.size, 8 * b.page_size), b.page_size))
    return tuple(sorted(m for m in marks if 0 <= m < len(data)))


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


def mutation(rng: random.Random, key: str) -> tuple:
    """One mutation, drawn from rng; positions spread over the file, 60% of them near a landmark."""
    n = len(original(key))
    lm = landmarks(key)

    def pos() -> int:
        if rng.random() < 0.6:
            return min(n - 1, max(0, rng.choice(lm) + rng.randint(-8, 80)))
        return rng.randrange(n)

    kind = rng.choice(["flip", "span", "truncate", "dup"])
    if kind == "flip":
        return ("flip", [(pos(), rng.randrange(8)) for _ in range(rng.randint(1, 6))])
    if kind == "span":
        return ("span", pos(), rng.randbytes(rng.randint(1, 48)))
    if kind == "truncate":
        return ("truncate", pos())
    return ("dup", pos(), rng.randint(1, 4096), pos())


def fuzz_cases(key: str, seed: int = FUZZ_SEED, n: int = FUZZ_CASES) -> list[list[tuple]]:
    """n cases for one file, each 1-3 mutations applied in order; a function of (key, seed, n) only."""
    rng = random.Random(f"{seed}/{key}")  # str seeds are hashed with SHA-512: stable across runs
    return [[mutation(rng, key) for _ in range(rng.randint(1, 3))] for _ in range(n)]


def apply(data: bytes, mutations) -> bytes:
    d = bytearray(data)
    for m in mutations:
        if m[0] == "flip":
            for pos, bit in m[1]:
                if pos < len(d):
                    d[pos] ^= 1 << bit
        elif m[0] == "span":
            _, pos, raw = m
            d[pos:pos + len(raw)] = raw
        elif m[0] == "truncate":
            del d[m[1]:]
        else:
            _, src, n, dst = m
            d[dst:dst] = d[src:src + n]
    return bytes(d)


def exercise(path: Path, strict: bool) -> None:
    """Everything a viewer does with a file on opening it."""
    with open_trace(path, strict=strict) as tf:
        formats = tf.formats
        len(tf.kallsyms)
        _ = tf.printk
        _ = tf.cmdlines
        for b in tf.buffers:
            t = b.events
            _ = b.lost
            eid = t.column("event_id").to_numpy()
            ids, counts = np.unique(eid, return_counts=True)
            for i in ids[np.argsort(-counts)][:4]:
                ev = formats.get(int(i))
                if ev is not None:
                    rows = np.flatnonzero(eid == i)[:500]
                    b.field_arrays(ev, [f.name for f in ev.fields], rows)
            if len(t):
                b.payload(len(t) - 1)


class CaseTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise CaseTimeout(f"fuzz case exceeded {CASE_SECONDS} s")


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory(prefix="kshark-fuzz-") as d:
        yield Path(d)
    if os.environ.get("KSHARK_FUZZ_STATS"):
        with open(os.environ["KSHARK_FUZZ_STATS"], "a") as fh:
            fh.write(f"{OUTCOMES}\n")


def check_case(workdir: Path, key: str, mutations) -> None:
    path = workdir / f"{key}.dat"
    path.write_bytes(apply(original(key), mutations))
    old = signal.signal(signal.SIGALRM, _alarm)
    try:
        for strict in (True, False):
            signal.alarm(CASE_SECONDS)
            try:
                exercise(path, strict)
                OUTCOMES["clean"] = OUTCOMES.get("clean", 0) + 1
            except TraceDatError as e:
                OUTCOMES[type(e).__name__] = OUTCOMES.get(type(e).__name__, 0) + 1
                # typed, located, one line
                assert e.path == str(path) and e.section, repr(e)
                assert "\n" not in e.one_line()
            except BaseException as e:
                e.add_note(f"strict={strict}")
                raise
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("key", list(FILES))
def test_fuzz(workdir, key):
    if not FILES[key].exists():
        pytest.skip(f"{FILES[key]} not present")
    for i, mutations in enumerate(fuzz_cases(key)):
        try:
            check_case(workdir, key, mutations)
        except Exception as e:
            raise AssertionError(f"fuzz case {i} of {key} (seed {FUZZ_SEED}): {mutations!r}") from e


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


def test_strtoll_long_digit_run_is_linear():
    # a DATE/OFFSET option is as long as its section: a run of digits used to grow a huge int (quadratic)
    from kshark_py.loaders.options import _strtoll
    assert _strtoll("9" * 5_000_000) == (1 << 63) - 1
    assert _strtoll("-0x" + "f" * 5_000_000) == -(1 << 63)
