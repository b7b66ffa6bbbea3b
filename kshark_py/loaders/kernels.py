"""Compiled loops for the passes numpy cannot vectorise well: walking ring-buffer pages, the
k-way merge of per-CPU runs into report order, and the cuts between task runs (numba, compiled
once and cached on disk).

Why compiled: a page is a chain of variable-length entries, so numpy walks all pages in lock-step
(:func:`.pages.decode_pages`), a dozen array operations per entry step over ever fewer pages; the
merge into report order is a k-way merge, which numpy emulates with a ``searchsorted`` of every
run against every other, then a scatter per column; the task runs need a sort per block.  Here
each is one pass.  Measured on this 2-core machine (19.1 M events, 2 CPUs, 809 MB decompressed,
``/tmp/bench/mid.dat``; CPU seconds, one thread; the zstd pass over the same data costs 0.7 s):

==========================================  ===========  ==========
step                                        numpy        compiled
==========================================  ===========  ==========
page walk + common fields (809 MB)          1.4-1.6 s    0.22 s
merge, 7 columns into place, row positions  0.77 s       0.25 s (two threads share it)
task runs per CPU (``cpu_runs``, 3 M ev.)   0.25 s       0.027 s
whole reader, CPU of all threads            3.3-3.8 s    1.8-2.0 s
whole reader, wall (machine busy, load 8)   7.5-10 s     4.5-5.3 s
==========================================  ===========  ==========

Built ahead of time (:mod:`.aot`, by ``setup.sh``) these functions load in 0.2 ms without numba;
this module's JIT is what runs without that build (no C compiler) or after an edit here until the
next build.  Its costs: importing numba 0.11-0.19 s and loading the kernels from its cache 0.04 s of CPU (0.12 s
with numba's full target refresh, which only compiling needs: :func:`_lean_cache_loads`, and with
numba's array allocation, which no kernel uses: :data:`_KERNELS`), in a
background thread started when a big file is opened (:func:`.pages.start_warm_up`); blocks that
arrive before it ends decode with numpy, so nothing waits for it, except in ``kshark-py export``,
which starts it at its first line (:mod:`.earlywarm`) and waits (:func:`.pages.waiting_for_kernels`).  Buffers below
:data:`.pages.COMPILED_MIN_BYTES` keep the numpy path and small files never import numba (which
adds ~110 MB of resident memory).  The first run on a machine (or after this file changes)
compiles: 2.7 s of CPU, once; ``cache=True`` keeps the machine code in ``__pycache__`` beside
this file (numba's user cache when that is read-only).

Every kernel is ``nogil``: while one block is decoded the pool decompresses the next ones, so
both cores work for the whole load.  The kernels are exact twins of the numpy code
(:func:`.pages.decode_pages`, ``buffer.common_fields``, :class:`.merge.Merge` with
:func:`.merge.scatter_merged`, ``model.intervals.cpu_runs``), which stays as the reference and the
small-buffer path; ``tests/test_kernels.py`` checks them against it on every corpus file, on
damaged pages of either byte order and on random runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from numba import njit

from . import layout as L


@njit(cache=True, nogil=True, inline="always")
def _bswap32(x):
    return (((x & 0xFF) << 24) | ((x & 0xFF00) << 8) | ((x >> 8) & 0xFF00) | (x >> 24)) & 0xFFFFFFFF


@njit(cache=True, nogil=True, inline="always")
def _word(w, i, swap):
    """Word ``i`` of ``w`` in the file's byte order, as int64 (no unsigned/signed mixing)."""
    x = np.int64(w[i])
    if swap:
        x = _bswap32(x)
    return x


@njit(cache=True, nogil=True, inline="always")
def _u64_at(d, p, little):
    """The u64 at byte ``p`` (any alignment) of ``d`` in the file's byte order."""
    x = np.uint64(0)
    for k in range(8):
        b = np.uint64(d[p + k])
        if little:
            x |= b << np.uint64(8 * k)
        else:
            x |= b << np.uint64(8 * (7 - k))
    return x


@njit(cache=True, nogil=True, boundscheck=False)
def decode_block(d, w, little, swap, page_size, data_offset, long_size, base,  # noqa: C901 (one loop)
                 o_ts, o_off, o_len, o_eid, o_pid, o_flags, o_pre, n0,
                 miss_idx, miss_val, f_kind, f_page, f_step, f_at, f_pos, f_lim):
    """Walk every whole page of block ``d`` (uint8; ``w`` the same bytes as native uint32 words,
    ``swap`` when the file's order is not the machine's) and write each data record's raw ts,
    offset (+``base``), length and common fields (event id, pid, flags, preempt count) at
    ``o_*[n0:]``.  Returns (records, missed-event marks, faults); marks and faults fill the
    ``miss_*`` and ``f_*`` arrays (one slot per page is enough: a page has at most one of each).
    """
    n_pages = len(d) // page_size
    nw = len(w)
    room = page_size - data_offset
    msb = np.uint64(L.TS_MSB)
    n = n0
    nm = 0
    nf = 0
    for p in range(n_pages):
        ps0 = p * page_size
        cur = _u64_at(d, ps0, little)
        if long_size == 8:
            commit = _u64_at(d, ps0 + 8, little)
        else:
            commit = np.uint64(_word(w, (ps0 + 8) >> 2, swap))
        size = np.int64(commit & np.uint64(L.COMMIT_MASK))
        missing = (commit & np.uint64(L.PAGE_MISSING_EVENTS)) != 0
        stored = (commit & np.uint64(L.PAGE_MISSING_STORED)) != 0
        if size > room:
            f_kind[nf] = L.PAGE_FAULT_COMMIT
            f_page[nf] = p
            f_step[nf] = -1
            f_at[nf] = ps0 + 8
            f_pos[nf] = 0
            f_lim[nf] = size
            nf += 1
            size = 0
        lost = np.int64(0)
        if missing:
            lost = -1
            if stored and size + long_size <= room:
                at = ps0 + data_offset + size
                if long_size == 8:
                    lost = np.int64(_u64_at(d, at, little))
                else:
                    lost = np.int64(_word(w, at >> 2, swap))
        if size <= 0:
            continue
        pstart = ps0 + data_offset
        pos = np.int64(0)
        step = 0
        while True:
            b = pstart + pos
            x = _word(w, b >> 2, swap)
            if little:
                tl = x & 0x1F
                delta = np.uint64(x >> 5)
            else:
                tl = x >> 27
                delta = np.uint64(x & 0x07FFFFFF)
            is_data = True
            corrupt = False
            if tl == 0 or tl > L.RB_TYPE_DATA_MAX:
                a0 = _word(w, min((b >> 2) + 1, nw - 1), swap)
                ext = (np.uint64(a0) << np.uint64(L.TS_SHIFT)) + delta
                if tl == L.RB_TYPE_TIME_STAMP:
                    new_cur = ext | (cur & msb)
                elif tl == L.RB_TYPE_TIME_EXTEND:
                    new_cur = cur + ext
                else:
                    new_cur = cur + delta
                if tl == 0:
                    length = ((a0 - 4) + 3) & ~3
                    dpos = pos + 8
                else:
                    length = tl * 4
                    dpos = pos + 4
                if tl == L.RB_TYPE_PADDING:
                    nxt = pos + 4 + a0
                elif tl == L.RB_TYPE_TIME_STAMP or tl == L.RB_TYPE_TIME_EXTEND:
                    nxt = pos + 8
                else:
                    nxt = dpos + length
                corrupt = (pos + 8 > size) or (tl == 0 and (a0 < 4 or dpos + length > size))
                is_data = tl == 0
            else:
                length = tl << 2
                dpos = pos + 4
                nxt = dpos + length
                new_cur = cur + delta
                corrupt = nxt > size
            if corrupt:
                f_kind[nf] = L.PAGE_FAULT_ENTRY
                f_page[nf] = p
                f_step[nf] = step
                f_at[nf] = b
                f_pos[nf] = pos
                f_lim[nf] = size
                nf += 1
                break
            if is_data:
                o = pstart + dpos
                o_ts[n] = new_cur
                o_off[n] = o + base
                o_len[n] = length
                if length < 8:
                    x0 = _word(w, 0, swap)
                    o_eid[n] = -1
                    o_pid[n] = -1
                else:
                    wi = o >> 2
                    x0 = _word(w, wi, swap)
                    v = _word(w, min(wi + 1, nw - 1), swap)
                    o_pid[n] = np.int32(v - 4294967296 if v >= 2147483648 else v)
                    o_eid[n] = np.int32(x0 & 0xFFFF) if little else np.int32(x0 >> 16)
                if little:
                    o_flags[n] = np.uint8((x0 >> 16) & 0xFF)
                    o_pre[n] = np.uint8(x0 >> 24)
                else:
                    o_flags[n] = np.uint8((x0 >> 8) & 0xFF)
                    o_pre[n] = np.uint8(x0 & 0xFF)
                if pos == 0 and lost != 0:
                    miss_idx[nm] = n
                    miss_val[nm] = lost
                    nm += 1
                n += 1
            step += 1
            if nxt >= size:
                break
            pos = nxt
            cur = new_cur
    return n - n0, nm, nf


@njit(cache=True, nogil=True, inline="always")
def _before(head, a, b):
    """Whether run ``a``'s head goes before run ``b``'s (smaller key; a tie to the lower run)."""
    return head[a] < head[b] or (head[a] == head[b] and a < b)


@njit(cache=True, nogil=True, boundscheck=False)
def merge_rows(a, b, keys, values, cur, end, head, q, qptr, qend, qout, out_cpu,  # noqa: C901 (one loop)
               s0, d0, s1, d1, s2, d2, s3, d3, s4, d4, s5, d5, s6, d6, heap):
    """Rows ``a..b-1`` of trace-cmd's k-way merge of the runs of ``keys`` (decode order; run r's
    unread records from ``cur[r]`` to ``end[r]``; each run compared by its running maximum
    ``head[r]``; the smallest head goes first, ties to the lower run), in one pass: row i gets
    ``values[run]`` in ``out_cpu`` and the run's next record of each column ``s0..s6`` in
    ``d0..d6``; a record whose decode-order index is a query (``q``, sorted and distinct, run r's
    at ``qptr[r]..qend[r]``) has its row written to ``qout``.  ``cur``, ``head`` and ``qptr``
    advance, so the merge goes on a slice of rows at a time (the caller frees what was consumed).
    ``heap``: int64 scratch of one slot per run (given, not allocated here: see :data:`_KERNELS`).
    """
    k = len(cur)
    m = 0
    for r in range(k):  # the runs with records left, as a binary heap (used when k > 8)
        if cur[r] < end[r]:
            heap[m] = r
            m += 1
            j = m - 1
            while j > 0:
                pj = (j - 1) >> 1
                if _before(head, heap[j], heap[pj]):
                    heap[j], heap[pj] = heap[pj], heap[j]
                    j = pj
                else:
                    break
    for i in range(a, b):
        if k <= 8:
            best = -1
            for r in range(k):
                if cur[r] < end[r] and (best < 0 or head[r] < head[best]):
                    best = r
        else:
            best = heap[0]
        c = cur[best]
        out_cpu[i] = values[best]
        d0[i] = s0[c]
        d1[i] = s1[c]
        d2[i] = s2[c]
        d3[i] = s3[c]
        d4[i] = s4[c]
        d5[i] = s5[c]
        d6[i] = s6[c]
        p = qptr[best]
        if p < qend[best] and q[p] == c:
            qout[p] = i
            qptr[best] = p + 1
        c += 1
        cur[best] = c
        if c < end[best]:
            v = keys[c]
            if v > head[best]:
                head[best] = v
        elif k > 8:
            m -= 1
            heap[0] = heap[m]
        if k > 8:  # sift the root down
            j = 0
            while True:
                lft = 2 * j + 1
                if lft >= m:
                    break
                sm = lft
                if lft + 1 < m and _before(head, heap[lft + 1], heap[lft]):
                    sm = lft + 1
                if _before(head, heap[sm], heap[j]):
                    heap[j], heap[sm] = heap[sm], heap[j]
                    j = sm
                else:
                    break


@njit(cache=True, nogil=True, boundscheck=False)
def cut_pass(fill, eid, cpu, pid, ts, sw, prev_pid, next_pid, prev_state, ncpu, missing, open_,
             o_cpu, o_time, o_pid, o_state, o_end, cnt, last_after, last_ts):
    """The cuts between task runs of every CPU (``model.intervals.cpu_runs``' rules, in one pass over
    the rows in report order): how many there are; with ``fill``, each written at ``o_*`` (cpu,
    time, pid of the run a cut starts, end_state of the run it ends, whether it is a CPU's end), in
    row order per CPU.  ``cnt``, ``last_after``, ``last_ts``: zeroed int64 scratch, one slot per CPU
    (``model.intervals`` counts first, then fills)."""
    m = 0
    j = 0
    for row in range(len(eid)):
        if eid[row] < 0:
            continue
        while j < len(sw) and sw[j] < row:
            j += 1
        c = cpu[row]
        is_sw = j < len(sw) and sw[j] == row
        before = np.int64(prev_pid[j]) if is_sw else np.int64(pid[row])
        t = ts[row]
        if cnt[c] == 0:  # the CPU's first record begins a run
            if fill:
                o_cpu[m], o_time[m], o_pid[m], o_state[m], o_end[m] = c, t, before, 0, False
            m += 1
        else:
            if t < last_ts[c]:
                t = last_ts[c]
            if before != last_after[c]:  # a switch the trace does not hold, after the previous record
                if fill:
                    o_cpu[m], o_time[m], o_pid[m], o_state[m], o_end[m] = c, last_ts[c], before, missing, False
                m += 1
        after = before
        if is_sw:
            after = np.int64(next_pid[j])
            if fill:
                o_cpu[m], o_time[m], o_pid[m], o_state[m], o_end[m] = c, t, after, prev_state[j], False
            m += 1
        last_after[c] = after
        last_ts[c] = t
        cnt[c] += 1
    for c in range(ncpu):
        if cnt[c]:  # the CPU's last record ends its last run
            if fill:
                o_cpu[m], o_time[m], o_pid[m], o_state[m], o_end[m] = c, last_ts[c], 0, open_, True
            m += 1
    return m


_KERNELS = (decode_block, merge_rows, cut_pass)
"""The compiled functions.  None allocates an array (its scratch comes from the caller): numba's
array allocation lives in ``numba.np.arrayobj``, which loading a kernel that uses it imports
(0.023 s of CPU on the warm-up's path)."""


@contextmanager
def _lean_cache_loads() -> Iterator[None]:
    """Inside: a kernel found in numba's disk cache loads without numba's full target refresh.

    Numba's ``Cache.load_overload`` refreshes the target context first: it imports and registers
    every implementation numba has (numpy, linalg, random, typed containers...), which only
    *compiling* needs; rebuilding cached machine code needs the runtime (NRT) alone.  That refresh
    was half of the warm-up's CPU (0.06 of 0.12 s, on the GIL).  A cache miss still compiles as
    usual (numba's compiler refreshes the context itself); a numba without these internals gets
    the ordinary load."""
    try:
        from numba.core.runtime import rtsys

        caches = [k._cache for k in _KERNELS]
        loads = [c._load_overload for c in caches]
        guards = [c._guard_against_spurious_io_errors for c in caches]
    except (ImportError, AttributeError):  # pragma: no cover (another numba: the ordinary load)
        yield
        return

    def lean(load, guard):
        def load_overload(sig, target_context):
            rtsys.initialize(target_context)
            with guard():
                return load(sig, target_context)
            return None  # pragma: no cover (numba's guard swallowed a spurious I/O error)
        return load_overload

    for c, load, guard in zip(caches, loads, guards, strict=True):
        c.load_overload = lean(load, guard)
    try:
        yield
    finally:
        for c in caches:
            del c.load_overload


def warm_up() -> None:
    """Call every kernel once on tiny inputs of the types the loader passes, so each is compiled
    (first run on a machine) or loaded from numba's disk cache before the first real block
    (:func:`_lean_cache_loads`)."""
    with _lean_cache_loads():
        _call_each()


def _call_each() -> None:
    z = np.zeros(2, np.int64)
    for ro in (False, True):  # uncompressed data is a read-only view of the mapped file
        d = np.zeros(64, np.uint8)
        d.flags.writeable = not ro
        w = d.view(np.uint32)
        cols = [np.zeros(8, t) for t in (np.uint64, np.int64, np.int32, np.int32, np.int32, np.uint8, np.uint8)]
        decode_block(d, w, True, False, 64, 16, 8, 0, *cols, 0, z, z.copy(), *[z.copy() for _ in range(6)])
    cols = [np.zeros(2, t) for t in (np.int64, np.int32, np.int32, np.uint8, np.uint8, np.int64, np.int32)]
    one = np.zeros(1, np.int64)
    merge_rows(0, 2, cols[0], np.zeros(1, np.int16), one.copy(), np.array([2]), one.copy(), one.copy(), one.copy(),
               one.copy(), one.copy(), np.zeros(2, np.int16), *[x for c in cols for x in (c, c.copy())], one.copy())
    z1 = np.zeros(1, np.int64)
    cut_pass(False, np.zeros(1, np.int32), np.zeros(1, np.int16), np.zeros(1, np.int32), z1, z1,
             np.zeros(1, np.int32), np.zeros(1, np.int32), z1, 1, -2, -1, np.zeros(0, np.int16), z1,
             np.zeros(0, np.int32), z1, np.zeros(0, np.bool_), *np.zeros((3, 1), np.int64))
