"""Fuzz the reader with mutated real trace files: every outcome is a clean load or a TraceDatError.

Mutations (hypothesis): bit flips, overwritten spans, truncation, a duplicated span; positions are
biased toward the file's structure (section/option headers, CPU data starts, chunk and page
headers), where a random byte is most likely to matter.  Each case opens the file, loads every
buffer's events (strict and non-strict), the formats, kallsyms, printk and cmdlines, and extracts
the fields of the most frequent event types.  Bounded: derandomized, ~150 cases in total, each with
a time limit (a hang or a pathological allocation is a bug).
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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kshark_py.loaders.compress import read_chunk_table
from kshark_py.loaders.errors import TraceDatError
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
# CI: 30 derandomized cases per file (150 in all, a few seconds).  Deeper local runs:
# KSHARK_FUZZ_EXAMPLES=2000 KSHARK_FUZZ_RANDOM=1 pytest tests/test_fuzz.py
_EXAMPLES = int(os.environ.get("KSHARK_FUZZ_EXAMPLES", "30"))
_RANDOM = bool(os.environ.get("KSHARK_FUZZ_RANDOM"))
SETTINGS = settings(max_examples=_EXAMPLES, deadline=None, derandomize=not _RANDOM, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
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
                pos += 16 + struct.unpack_from("<Q", data, pos + 8)[0]
        else:
            marks.add(tf._v6_top_offset)
        for b in tf.buffers:
            for cd in b.cpu_data:
                marks.add(cd.offset)
                if b.compressed:
                    t = read_chunk_table(tf.buf, cd.offset, cd.offset + 4 + cd.size, tf.lay, b.page_size, "")
                    marks.update(int(o) - 8 for o in t.file_offsets[:20])
                else:
                    marks.update(range(cd.offset, cd.offset + min(cd.size, 8 * b.page_size), b.page_size))
    return tuple(sorted(m for m in marks if 0 <= m < len(data)))


@st.composite
def mutation(draw, key: str):
    """One mutation; positions come from a drawn seed so they spread over the file (hypothesis'
    own integers favour boundary values, i.e. the magic bytes, far too often)."""
    rng = random.Random(draw(st.integers(0, 2**63)))
    n = len(original(key))
    lm = landmarks(key)

    def pos() -> int:
        if rng.random() < 0.6:
            return min(n - 1, max(0, rng.choice(lm) + rng.randint(-8, 80)))
        return rng.randrange(n)

    kind = draw(st.sampled_from(["flip", "span", "truncate", "dup"]))
    if kind == "flip":
        return ("flip", [(pos(), rng.randrange(8)) for _ in range(rng.randint(1, 6))])
    if kind == "span":
        return ("span", pos(), rng.randbytes(rng.randint(1, 48)))
    if kind == "truncate":
        return ("truncate", pos())
    return ("dup", pos(), rng.randint(1, 4096), pos())


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
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, old)


def _fuzz_test(key: str):
    @pytest.mark.skipif(not FILES[key].exists(), reason=f"{FILES[key]} not present")
    @SETTINGS
    @given(mutations=st.lists(mutation(key), min_size=1, max_size=3))
    def test(workdir, mutations):
        check_case(workdir, key, mutations)

    test.__name__ = f"test_fuzz_{key}"
    return test


test_fuzz_v7 = _fuzz_test("v7")
test_fuzz_v6 = _fuzz_test("v6")
test_fuzz_printk = _fuzz_test("printk")
test_fuzz_guest = _fuzz_test("guest")
test_fuzz_zlib = _fuzz_test("zlib")
