"""trace-cmd's k-way merge of per-CPU streams into report order (``tracecmd_iterate_events_multi``).

Each CPU's records are already in time order, so the merged view needs no sort of the whole trace:
:func:`merge_order` / :func:`merge_positions` give the order (also used by ``model.session`` to merge
buffers and files), :class:`Merge` and :func:`scatter_merged` put a buffer's columns into that order
without a position array per row.
"""

from __future__ import annotations

import numpy as np

from .memory import forget_consumed

__all__ = ["CompiledMerge", "Merge", "merge_order", "merge_positions", "scatter_merged"]


class Merge:
    """trace-cmd's merge of per-CPU runs (see :func:`merge_order`) without a position per row.

    With few runs a record's place is its index in its run plus, from every other run, the
    records that go before it (``searchsorted``), computed on demand: for the few records whose
    places are needed one by one (lost-event marks, hot fields) and, a chunk at a time, to write
    each run's label into the merged order (:meth:`fill`).  No int32 per row is held (68 MB
    for 17 M events).  With many runs a stable sort of the running maxima gives the positions.
    """

    def __init__(self, segments: list[np.ndarray], starts: np.ndarray | None = None) -> None:
        """``segments``: each run's keys; ``starts``: each run's first decode-order index (default:
        the runs back to back; the reader's runs are per-CPU regions with gaps between them)."""
        self.keys = []
        for seg in segments:
            if len(seg) > 1 and bool((seg[1:] < seg[:-1]).any()):
                seg = np.maximum.accumulate(seg)
            self.keys.append(seg)
        self.packed = np.concatenate(([0], np.cumsum([len(k) for k in self.keys], dtype=np.int64)))
        self.starts = self.packed[:-1] if starts is None else np.asarray(starts, np.int64)
        self.inv = merge_positions(self.keys) if len(self.keys) > 4 else None

    def _place(self, r: int, local: np.ndarray) -> np.ndarray:
        q = self.keys[r][local]
        pos = local.astype(np.int64)
        for s_, other in enumerate(self.keys):
            if s_ != r and len(other):
                pos += np.searchsorted(other, q, side="right" if s_ < r else "left")
        return pos

    def positions(self, src: np.ndarray) -> np.ndarray:
        """Report-order rows of decode-order indices ``src``."""
        src = np.asarray(src, np.int64)
        run = np.searchsorted(self.starts, src, side="right") - 1
        if self.inv is not None:
            return self.inv[src - self.starts[run] + self.packed[run]].astype(np.int64)
        out = np.empty(len(src), np.int64)
        for r in np.unique(run).tolist():
            sel = np.flatnonzero(run == r)
            out[sel] = self._place(r, src[sel] - self.starts[r])
        return out

    def fill(self, out: np.ndarray, values: np.ndarray, chunk: int = 1 << 20) -> None:
        """``out[row] = values[run of row]`` for every report-order row."""
        if self.inv is not None:
            for r, (a, b) in enumerate(zip(self.packed[:-1].tolist(), self.packed[1:].tolist(), strict=True)):
                for x in range(a, b, chunk):
                    out[self.inv[x:min(b, x + chunk)]] = values[r]
            self.inv = None
            return
        if not self.keys:
            return
        # the longest run takes every row the others do not: only the others are searched
        big = int(np.argmax([len(k) for k in self.keys]))
        out[:] = values[big]
        for r, k in enumerate(self.keys):
            if r == big:
                continue
            for a in range(0, len(k), chunk):
                out[self._place(r, np.arange(a, min(len(k), a + chunk)))] = values[r]


def scatter_merged(src: dict[str, np.ndarray], labels: np.ndarray, lut: np.ndarray, bounds: np.ndarray | None,
                   chunk: int = 1 << 20, starts: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Columns in decode order (runs at ``bounds``; or run r from ``starts[r]`` on, with gaps
    between runs) -> report order, given each report-order row's run (``lut[labels[row]]``;
    ``lut`` is -1 for labels no run has).

    A merge never reorders a run, so the rows of run r in a chunk of the output take the next
    records of run r in order.  The output is filled front to back a chunk at a time, every
    column at once, and each source is released as it is consumed (see
    :func:`~.memory.forget_consumed`): the peak stays one copy of the table, with no position
    array.  The sources are dead afterwards.
    """
    n = len(labels)
    out = {k: np.empty(n, v.dtype) for k, v in src.items()}
    done = [int(x) for x in (bounds[:-1] if starts is None else starts)]
    nruns = len(done)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        lab = lut[labels[a:b]]
        if nruns <= 8:
            groups = [(r, a + np.flatnonzero(lab == r)) for r in range(nruns)]
        else:
            o = np.argsort(lab, kind="stable")
            cs = np.concatenate(([0], np.cumsum(np.bincount(lab, minlength=nruns))))
            groups = [(r, a + o[cs[r]:cs[r + 1]]) for r in range(nruns)]
        for r, dest in groups:
            m = len(dest)
            if not m:
                continue
            lo = done[r]
            for k, col in src.items():
                out[k][dest] = col[lo:lo + m]
                forget_consumed(col, lo, lo + m)
            done[r] = lo + m
    return out


class CompiledMerge:
    """:class:`Merge` plus :func:`scatter_merged` done by one compiled pass (:func:`.kernels.merge_rows`):
    the k-way merge picks each row's run, writes its label and moves every column's record into
    place, and notes the rows of the decode-order indices asked for up front (lost-event marks,
    hot fields), all while the sources are released as they are consumed: each column is read
    once and written once, no ``searchsorted`` of every run against every other."""

    def __init__(self, bounds: np.ndarray, values: np.ndarray, queries: np.ndarray,
                 ends: np.ndarray | None = None) -> None:
        """Run r holds decode-order records ``bounds[r]..bounds[r+1]-1``, or with ``ends``
        ``bounds[r]..ends[r]-1`` (the reader's per-CPU regions, gaps between them)."""
        b = np.asarray(bounds, np.int64)
        self.starts, self.ends = (b[:-1], b[1:]) if ends is None else (b, np.asarray(ends, np.int64))
        self.values = values  # each run's label (its CPU)
        self.queries = np.unique(np.asarray(queries, np.int64))
        self.rows = np.full(len(self.queries), -1, np.int64)

    def run(self, src: dict[str, np.ndarray], chunk: int = 1 << 18, split_from: int = 1 << 20,
            ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """(the 7 columns of ``src`` in report order, the label column); ``src``'s first column is
        the merge key (int64).  The sources are dead afterwards.

        When every run is in time order (the usual case) the rows split in two at a key: the
        rows before it are exactly the records with a smaller key, so two threads merge the two
        halves at once (from ``split_from`` rows on)."""
        names = list(src)
        cols = [src.pop(k) for k in names]
        n = int((self.ends - self.starts).sum())
        out = [np.empty(n, c.dtype) for c in cols]
        labels = np.empty(n, self.values.dtype)
        start, end = self.starts.copy(), self.ends.copy()
        cut = self._cut(cols[0], start, end) if n >= split_from else None
        if cut is None:
            self._rows(cols, out, labels, 0, n, start, end, chunk)
        else:
            from .store import decompress_pool

            s = int((cut - start).sum())
            second = decompress_pool().submit(self._rows, cols, out, labels, s, n, cut.copy(), end, chunk)
            try:
                self._rows(cols, out, labels, 0, s, start, cut, chunk)
            finally:
                second.result()
        del cols
        return dict(zip(names, out, strict=True)), labels

    @staticmethod
    def _cut(keys: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray | None:
        """Where each run's records reach the key that splits the rows about in half (None: a run
        goes back in time, or no key splits them)."""
        for a, b in zip(start.tolist(), end.tolist(), strict=True):
            if b - a > 1 and bool((keys[a + 1:b] < keys[a:b - 1]).any()):
                return None
        n = int((end - start).sum())
        step = max(1, n // 20000)
        sample = np.sort(np.concatenate([keys[a:b:step] for a, b in zip(start.tolist(), end.tolist(), strict=True)]))
        if not len(sample):
            return None
        pivot = sample[len(sample) // 2]
        cut = np.array([a + int(np.searchsorted(keys[a:b], pivot, side="left"))
                        for a, b in zip(start.tolist(), end.tolist(), strict=True)], np.int64)
        s = int((cut - start).sum())
        return cut if 0 < s < n else None

    def _rows(self, cols: list[np.ndarray], out: list[np.ndarray], labels: np.ndarray, a: int, b: int,
              cur: np.ndarray, end: np.ndarray, chunk: int) -> None:
        """Rows ``a..b-1`` of the merge from the runs' records ``cur..end-1``, a chunk at a time,
        each source's consumed pages handed back."""
        from .pages import compiled_kernels

        merge_rows = compiled_kernels().merge_rows
        keys = cols[0]
        cur = cur.copy()
        head = np.zeros(len(cur), np.int64)
        live = cur < end
        head[live] = keys[cur[live]]
        q = self.queries
        qptr = np.searchsorted(q, cur).astype(np.int64)
        qend = np.searchsorted(q, end).astype(np.int64)
        pairs = [x for c, o in zip(cols, out, strict=True) for x in (c, o)]
        heap = np.empty(len(cur), np.int64)  # the kernel's scratch
        for x in range(a, b, chunk):
            before = cur.copy()
            merge_rows(x, min(b, x + chunk), keys, self.values, cur, end, head, q, qptr, qend, self.rows,
                       labels, *pairs, heap)
            for lo, hi in zip(before.tolist(), cur.tolist(), strict=True):
                for c in cols:
                    forget_consumed(c, lo, hi)

    def positions(self, src: np.ndarray) -> np.ndarray:
        """Report-order rows of decode-order indices ``src`` (each one of the queries; after :meth:`run`)."""
        src = np.asarray(src, np.int64)
        return self.rows[np.searchsorted(self.queries, src)]


def merge_order(segments: list[np.ndarray]) -> np.ndarray:
    """Row order of trace-cmd's merge of per-CPU streams (``tracecmd_iterate_events_multi``).

    ``segments`` are the streams' timestamps in slot order (CPU order within a buffer; files then
    instances across buffers), concatenated in that order by the caller.  trace-cmd repeatedly
    takes the smallest head among the streams, ties going to the lower slot.  That equals a stable
    sort on each stream's running maximum of ts: a record that goes back in time stays behind its
    predecessor.
    """
    inv = merge_positions(segments)
    order = np.empty_like(inv)
    order[inv] = np.arange(len(inv), dtype=inv.dtype)
    return order


def merge_positions(segments: list[np.ndarray]) -> np.ndarray:
    """Where each record of the concatenated ``segments`` lands in the merged order (the inverse of
    :func:`merge_order`), as int32 when it fits.

    With few streams each record's place is its index in its stream plus, from every other stream,
    the records that go before it (``searchsorted``: ``<=`` for lower slots, ``<`` for higher), which
    needs no sort of the whole trace; with many streams a stable sort of the running maxima does it.
    """
    keys = []
    for seg in segments:
        if len(seg) > 1 and bool((seg[1:] < seg[:-1]).any()):
            seg = np.maximum.accumulate(seg)
        keys.append(seg)
    n = sum(len(k) for k in keys)
    dt = np.int32 if n < 2**31 else np.int64
    if not keys:
        return np.zeros(0, dt)
    if len(keys) > 4:
        order = np.argsort(np.concatenate(keys), kind="stable")
        inv = np.empty(n, dt)
        inv[order] = np.arange(n, dtype=dt)
        return inv
    inv = np.empty(n, dt)
    start = 0
    chunk = 1 << 20  # queries at a time: the int64 temporaries stay small
    for r, k in enumerate(keys):
        for a in range(0, len(k), chunk):
            q = k[a:a + chunk]
            pos = np.arange(a, a + len(q), dtype=np.int64)
            for s_, other in enumerate(keys):
                if s_ != r and len(other):
                    pos += np.searchsorted(other, q, side="right" if s_ < r else "left")
            inv[start + a:start + a + len(q)] = pos
        start += len(k)
    return inv
