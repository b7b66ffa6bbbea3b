"""Vectorized ring-buffer page decoding (spec §9; libtraceevent ``kbuffer-parse.c``).

A CPU's data is a run of fixed-size pages, each ``u64 timestamp, long commit, events...``.
Events inside a page are variable-length, so a page must be walked in order - but all pages can be
walked *at once*: this module keeps one cursor per page in numpy arrays and advances every cursor by
one event header per step ("lock-step").  The number of Python-level steps is the largest number of
entries in any single page (a few hundred for 4 KiB pages), independent of the trace size.

Output is columnar: per data record its raw timestamp, its payload offset and length in the CPU's
data array, and the page's missed-events count where it applies.  Semantics match kbuffer exactly,
including its quirk that a page's missed-events count is reported only when the page's first entry
is a data record (``kbuffer_missed_events()`` checks ``curr == 0``).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .layout import (
    COMMIT_MASK,
    PAGE_FAULT_COMMIT,
    PAGE_FAULT_ENTRY,
    PAGE_MISSING_EVENTS,
    PAGE_MISSING_STORED,
    RB_TYPE_DATA_MAX,
    RB_TYPE_PADDING,
    RB_TYPE_TIME_EXTEND,
    RB_TYPE_TIME_STAMP,
    TS_MSB,
    TS_SHIFT,
    Layouts,
)

if TYPE_CHECKING:  # loaded on first use (the warm-up): numpy's path never imports them
    from types import ModuleType

    from .aot import AotKernels


@dataclass
class BadPage:
    """A page whose contents contradict themselves; the records before the fault are kept."""

    page: int
    offset: int
    """Byte offset of the fault in the CPU's (uncompressed) data."""
    reason: str


@dataclass
class DecodedPages:
    """Columnar result of decoding one CPU's pages. All arrays have one entry per data record."""

    ts: np.ndarray  # uint64, raw clock units, in ring-buffer order
    offset: np.ndarray  # int64, payload offset in the CPU data array
    length: np.ndarray  # int32, payload length in bytes (4-byte rounded, as kbuffer reports)
    missed: np.ndarray  # int64, missed events before this record: 0, -1 unknown, >0 count
    page: np.ndarray  # int32, page index of each record
    n_pages: int
    page_ts: np.ndarray  # uint64, raw timestamp of each page
    bad_pages: list[BadPage] = field(default_factory=list)
    partial_page_bytes: int = 0
    """Bytes at the end that do not form a whole page (a truncated file)."""


_EMPTY_U64 = np.zeros(0, np.uint64)

_env_min = os.environ.get("KSHARK_PY_COMPILED_MIN_BYTES", "").strip()
COMPILED_MIN_BYTES: int | None = int(_env_min) if _env_min else None
"""Buffers with at least this much (decompressed) CPU data decode with the compiled kernels
(:mod:`.kernels`); smaller ones with numpy.  None (the default): :func:`compiled_min_bytes` decides
by what loading the kernels costs.  The environment variable sets it for a whole run (``0``: every
buffer compiled; fuzzing does); tests set it to force either path."""

JIT_MIN_BYTES = 48 << 20
"""The default threshold when the kernels come from numba's JIT: big enough to repay importing numba
(~0.15 s of CPU and ~110 MB of memory)."""

AOT_MIN_BYTES = 4 << 20
"""The default threshold when the kernels were built ahead of time (:mod:`.aot`, 0.2 ms to load):
from a few MB of data they are faster than numpy (770 K events, 5.7 MB of zstd: 0.14 -> 0.06 s); below,
both take milliseconds."""

WARM_UP_FILE_BYTES: int | None = None
"""Opening a compressed file at least this big starts loading the kernels in the background (see
:func:`start_warm_up`; an uncompressed one from the data threshold); None: a seventh of
:func:`compiled_min_bytes` (trace-cmd's zstd data decompresses to about seven times its size)."""

_aot_built: bool | None = None


def compiled_min_bytes() -> int:
    """The data threshold of the compiled kernels now: :data:`COMPILED_MIN_BYTES` when set, else
    :data:`AOT_MIN_BYTES` when a module of the current sources was built ahead of time, else
    :data:`JIT_MIN_BYTES` (the first call looks for the module: ~2 ms)."""
    global _aot_built
    if COMPILED_MIN_BYTES is not None:
        return COMPILED_MIN_BYTES
    if _aot_built is None:
        from . import aot

        _aot_built = aot.module_path().is_file()
    return AOT_MIN_BYTES if _aot_built else JIT_MIN_BYTES


def warm_up_file_bytes() -> int:
    """:data:`WARM_UP_FILE_BYTES` when set, else a seventh of :func:`compiled_min_bytes`."""
    return WARM_UP_FILE_BYTES if WARM_UP_FILE_BYTES is not None else compiled_min_bytes() // 7


_warm: threading.Thread | None = None
_warm_ok = False
_warm_lock = threading.Lock()
_kernels = None
"""The kernels the warm-up loaded (:func:`compiled_kernels`)."""

NATIVE_LITTLE = sys.byteorder == "little"


def _warm_up() -> None:
    global _warm_ok, _kernels, _aot_built
    try:
        from . import aot

        k = aot.load()  # built ahead of time from these sources: no numba at all (0.2 ms)
        _aot_built = k is not None  # one that is there but does not load: the JIT's threshold
        if k is None:
            from . import kernels

            kernels.warm_up()
            k = kernels
        _kernels = k
        _warm_ok = True
    except ImportError:  # pragma: no cover (numba is a dependency; a platform without wheels)
        _warm_ok = False


def compiled_kernels() -> AotKernels | ModuleType:
    """The compiled kernels (``decode_block``, ``merge_rows``, ``cut_pass`` of :mod:`.kernels`): the
    module built ahead of time (:mod:`.aot`) when one of the current sources is there, else numba's
    JIT of the same code.  Loads them first if no warm-up has (the loader asks only once
    :func:`kernels_ready` said yes)."""
    if _kernels is None:
        start_warm_up()
        if not wait_kernels():  # pragma: no cover (numba is a dependency)
            raise RuntimeError("the compiled kernels do not load (numba is missing)")
    return _kernels


def start_warm_up() -> None:
    """Load the kernels in a background thread, once per process: the module built ahead of time
    (0.2 ms), or else numba's import and its disk cache (~0.15 s, much of it on the GIL): started
    when a big file is opened, it overlaps reading the metadata and the first blocks' decompression."""
    global _warm
    with _warm_lock:
        if _warm is None:
            t = threading.Thread(target=_warm_up, name="kshark-kernels-warm-up", daemon=True)
            t.start()  # then published: wait_kernels() may join it from another thread at once
            _warm = t


def big_enough(file_size: int, compressed: bool) -> bool:
    """Whether a file this big will decode with the kernels (see :data:`WARM_UP_FILE_BYTES`)."""
    return file_size >= (warm_up_file_bytes() if compressed else compiled_min_bytes())


def warm_up_for(file_size: int, compressed: bool) -> None:
    """Start the warm-up if a file this big will decode with the kernels (:func:`big_enough`)."""
    if big_enough(file_size, compressed):
        start_warm_up()


def want_compiled(data_bytes: int) -> bool:
    """Whether a buffer of ``data_bytes`` should use the compiled kernels (big enough to repay
    loading them: :func:`compiled_min_bytes`; ``COMPILED_MIN_BYTES = 0`` forces it, tests do);
    starts the warm-up if so."""
    if data_bytes < compiled_min_bytes():
        return False
    start_warm_up()
    return True


_wait_until: float | None = None
"""While :func:`waiting_for_kernels` is active: the monotonic time up to which :func:`kernels_ready`
waits for a running warm-up."""


@contextmanager
def waiting_for_kernels(seconds: float) -> Iterator[None]:
    """Inside: :func:`kernels_ready` waits for a running warm-up, up to ``seconds`` from the start.

    Why: a command that only decodes (``kshark-py export``) has nothing else to do meanwhile, and
    numpy blocks decoded beside the warm-up cost more than the wait (3 M events: 8 of 17 blocks on
    numpy, 0.1 s of CPU the kernels do in 0.015 s, and both fight for the GIL and the cores).  The
    bound keeps the first run on a machine, when numba compiles for seconds, on numpy after it."""
    global _wait_until
    before = _wait_until
    _wait_until = time.monotonic() + seconds
    try:
        yield
    finally:
        _wait_until = before


def kernels_ready() -> bool:
    """Whether the warm-up has finished and the kernels work (without waiting, except inside
    :func:`waiting_for_kernels`): until then the loader decodes blocks with numpy rather than sit
    idle (the two give the same columns)."""
    w = _warm
    until = _wait_until
    if w is not None and until is not None and w.is_alive():
        w.join(max(0.0, until - time.monotonic()))
    return w is not None and not w.is_alive() and _warm_ok


def wait_kernels() -> bool:
    """Wait for the warm-up (started by :func:`want_compiled`): whether the kernels work."""
    if _warm is None:
        return False
    _warm.join()
    return _warm_ok


def decode_pages(data: np.ndarray, page_size: int, lay: Layouts, data_offset: int | None = None,
                 ) -> DecodedPages:
    """Decode every page of ``data`` (uint8, a whole number of pages expected).

    ``data_offset`` is where events start in a page (from header_page; 16 on 64-bit kernels).
    Nothing here raises on corrupt input: bad pages are returned in ``bad_pages`` and the caller
    decides whether that is fatal.
    """
    if data_offset is None:
        data_offset = lay.page_data_offset
    n_pages = len(data) // page_size
    partial = len(data) - n_pages * page_size
    if n_pages == 0:
        z = np.zeros(0, np.int64)
        return DecodedPages(_EMPTY_U64, z, z.astype(np.int32), z, z.astype(np.int32), 0, _EMPTY_U64,
                            [], partial)
    whole = data[: n_pages * page_size]
    u32 = whole.view(lay.np_u32)
    u64 = whole.view(lay.np_u64)
    words_per_page = page_size // 4
    page_ts = u64[:: page_size // 8].copy()
    if lay.long_size == 8:
        commit = u64[1:: page_size // 8].astype(np.uint64)
    else:
        commit = u32[2::words_per_page].astype(np.uint64)
    size = (commit & np.uint64(COMMIT_MASK)).astype(np.int64)
    missing = (commit & np.uint64(PAGE_MISSING_EVENTS)) != 0
    stored = (commit & np.uint64(PAGE_MISSING_STORED)) != 0
    room = page_size - data_offset

    bad: list[BadPage] = []
    page_idx = np.arange(n_pages, dtype=np.int64)
    bad_commit = size > room
    for p in np.flatnonzero(bad_commit)[:1000]:
        bad.append(BadPage(int(p), int(p) * page_size + 8,
                           f"commit {int(size[p])} exceeds the page's {room} data bytes"))
    size[bad_commit] = 0

    # lost-event counts: a long stored right after the committed data
    lost = np.zeros(n_pages, np.int64)
    lost[missing] = -1
    has_count = missing & stored & (size + lay.long_size <= room)
    if has_count.any():
        pos = page_idx[has_count] * page_size + data_offset + size[has_count]
        if lay.long_size == 8:
            lost[has_count] = u64[pos // 8].astype(np.int64) if (pos % 8 == 0).all() else \
                _gather_u64(whole, pos, lay)
        else:
            lost[has_count] = u32[pos // 4].astype(np.int64)

    little = lay.endian == "<"
    # per-step outputs
    out_page: list[np.ndarray] = []
    out_seq: list[np.ndarray] = []
    out_ts: list[np.ndarray] = []
    out_off: list[np.ndarray] = []
    out_len: list[np.ndarray] = []
    out_first: list[np.ndarray] = []

    # Lock-step over the pages with entries left.  Most entries are plain data records (type_len
    # 1..28: the length is in the header); only the few others (long records, padding, time extends
    # and stamps, all with an array word) take the general path, on their own subset, so a step costs
    # about half the numpy calls it did.
    act = page_idx[size > 0]
    pos = np.zeros(len(act), np.int64)  # cursor relative to the page's data start
    cur = page_ts[act].copy()
    lim = size[act]
    pstart = act * page_size + data_offset  # absolute byte offset of each active page's data
    emitted = np.zeros(n_pages, np.int64)
    msb = np.uint64(TS_MSB)
    shift = np.uint64(TS_SHIFT)
    n_words = len(u32)
    while len(act):
        base = pstart + pos  # absolute byte offset of the header
        w = u32[base >> 2].astype(np.int64)
        if little:
            tl = w & 0x1F
            delta = w >> 5
        else:
            tl = w >> 27
            delta = w & 0x07FFFFFF
        special = (tl == 0) | (tl > RB_TYPE_DATA_MAX)
        length = tl << 2
        data_pos = pos + 4
        nxt = data_pos + length
        new_cur = cur + delta.astype(np.uint64)
        corrupt = nxt > lim  # a plain record running past the commit
        is_data = None  # None: every entry is a data record
        if special.any():
            k = np.flatnonzero(special)
            tk, pk, lk = tl[k], pos[k], lim[k]
            arr0 = u32[np.minimum((base[k] >> 2) + 1, n_words - 1)].astype(np.int64)
            is_stamp = tk == RB_TYPE_TIME_STAMP
            is_ext = tk == RB_TYPE_TIME_EXTEND
            is_pad = tk == RB_TYPE_PADDING
            is_long = tk == 0
            dk = delta[k].astype(np.uint64)
            ext = (arr0.astype(np.uint64) << shift) + dk
            ck = cur[k]
            new_cur[k] = np.where(is_stamp, ext | (ck & msb), ck + np.where(is_ext, ext, dk))
            len_k = np.where(is_long, ((arr0 - 4) + 3) & ~3, tk * 4)
            dpos_k = np.where(is_long, pk + 8, pk + 4)
            length[k] = len_k
            data_pos[k] = dpos_k
            nxt[k] = np.where(is_pad, pk + 4 + arr0, np.where(is_stamp | is_ext, pk + 8, dpos_k + len_k))
            corrupt[k] = (pk + 8 > lk) | (is_long & (arr0 < 4)) | (is_long & (dpos_k + len_k > lk))
            is_data = ~special
            is_data[k] = is_long
        if corrupt.any():
            for c in np.flatnonzero(corrupt)[:1000]:
                bad.append(BadPage(int(act[c]), int(base[c]),
                                   f"event header at page offset {int(pos[c]) + data_offset} runs past "
                                   f"the {int(lim[c])} committed bytes"))
            is_data = (~corrupt if is_data is None else is_data & ~corrupt)
            nxt = np.where(corrupt, lim, nxt)

        if is_data is None:
            out_page.append(act)
            out_seq.append(emitted[act])
            emitted[act] += 1
            out_ts.append(new_cur)
            out_off.append(pstart + data_pos)
            out_len.append(length)
            out_first.append(pos == 0)
        elif is_data.any():
            sel = np.flatnonzero(is_data)
            pages_sel = act[sel]
            out_page.append(pages_sel)
            out_seq.append(emitted[pages_sel])
            emitted[pages_sel] += 1
            out_ts.append(new_cur[sel])
            out_off.append(pstart[sel] + data_pos[sel])
            out_len.append(length[sel])
            out_first.append(pos[sel] == 0)

        keep = nxt < lim
        if keep.all():
            pos, cur = nxt, new_cur
        else:
            act, pos, cur, lim, pstart = act[keep], nxt[keep], new_cur[keep], lim[keep], pstart[keep]

    if not out_page:
        z = np.zeros(0, np.int64)
        return DecodedPages(_EMPTY_U64, z, z.astype(np.int32), z, z.astype(np.int32), n_pages, page_ts,
                            bad, partial)
    pages_all = np.concatenate(out_page)
    seq_all = np.concatenate(out_seq)
    start = np.concatenate(([0], np.cumsum(emitted)[:-1]))
    dest = start[pages_all] + seq_all
    total = int(emitted.sum())
    ts = np.empty(total, np.uint64)
    off = np.empty(total, np.int64)
    ln = np.empty(total, np.int32)
    first = np.zeros(total, bool)
    pg = np.empty(total, np.int32)
    ts[dest] = np.concatenate(out_ts)
    off[dest] = np.concatenate(out_off)
    ln[dest] = np.concatenate(out_len)
    first[dest] = np.concatenate(out_first)
    pg[dest] = pages_all
    missed = np.zeros(total, np.int64)
    # kbuffer reports a page's lost count on its first entry only if that entry is a data record
    firsts = np.flatnonzero(first)
    missed[firsts] = lost[pg[firsts]]
    return DecodedPages(ts, off, ln, missed, pg, n_pages, page_ts, bad, partial)


def _gather_u64(buf: np.ndarray, pos: np.ndarray, lay: Layouts) -> np.ndarray:
    idx = pos[:, None] + np.arange(8)
    return buf[idx].copy().view(lay.np_u64).reshape(-1).astype(np.int64)


@dataclass
class BlockRecords:
    """What :func:`decode_into` decoded of one block: the records went straight into the caller's
    columns at ``[n0, n0 + n)``; the rest is per block."""

    n: int
    n_pages: int
    partial_page_bytes: int
    miss_idx: np.ndarray  # int64, column index (n0-based) of each record with a missed-events mark
    miss_val: np.ndarray  # int64, its mark: -1 unknown, >0 count
    bad_pages: list[BadPage]


def decode_into(data: np.ndarray, page_size: int, lay: Layouts, data_offset: int, base: int,
                cols: dict[str, np.ndarray], n0: int) -> BlockRecords:
    """:func:`decode_pages` plus the common fields, compiled (:mod:`.kernels`), written straight
    into ``cols`` (``ts off len eid pid flags preempt``, room for ``len(data) // 8`` more records
    from ``n0``; ``off`` gets ``base`` added).  Same records, marks and bad pages, in the same
    order, as the numpy path."""
    kernels = compiled_kernels()
    n_pages = len(data) // page_size
    whole = data[: n_pages * page_size]
    words = whole.view(np.uint32)
    little = lay.endian == "<"
    swap = little != NATIVE_LITTLE
    miss_idx = np.empty(n_pages, np.int64)
    miss_val = np.empty(n_pages, np.int64)
    f = [np.empty(n_pages, np.int64) for _ in range(6)]
    n, nm, nf = kernels.decode_block(whole, words, little, swap, page_size, data_offset, lay.long_size, base,
                                     cols["ts"], cols["off"], cols["len"], cols["eid"], cols["pid"], cols["flags"],
                                     cols["preempt"], n0, miss_idx, miss_val, *f)
    bad: list[BadPage] = []
    if nf:
        kind, page, step, at, pos, lim = (a[:nf] for a in f)
        com = np.flatnonzero(kind == PAGE_FAULT_COMMIT)[:1000]
        room = page_size - data_offset
        bad = [BadPage(int(page[i]), int(at[i]), f"commit {int(lim[i])} exceeds the page's {room} data bytes")
               for i in com]
        ent = np.flatnonzero(kind == PAGE_FAULT_ENTRY)
        # the numpy walk finds a page's fault at the step of its entry: order by (step, page), and
        # it keeps 1000 per step
        ent = ent[np.lexsort((page[ent], step[ent]))]
        _, first = np.unique(step[ent], return_index=True)
        rank = np.arange(len(ent)) - np.repeat(first, np.diff(np.append(first, len(ent))))
        for i in ent[rank < 1000]:
            bad.append(BadPage(int(page[i]), int(at[i]), f"event header at page offset {int(pos[i]) + data_offset} "
                                                         f"runs past the {int(lim[i])} committed bytes"))
    return BlockRecords(int(n), n_pages, len(data) - n_pages * page_size, miss_idx[:nm], miss_val[:nm], bad)
