"""Info text of a block of events at once, as an Arrow string array: what an Info search scans.

Rendering one event's info text runs the print-fmt closures of :mod:`kshark_py.loaders.printfmt`
(~25 µs in Python); 14 million of them take minutes.  The text of an event is the concatenation of
its print fmt's pieces, and each piece depends only on the fields it reads, so a block is rendered
piece by piece, per event type:

* literal text: once;
* a plain number or pointer of one fixed-size field (``%d %u %x %lx %llu %p`` and the like, with
  width/``0``/``-``/``#``): formatted for the whole block with numpy/Arrow;
* anything else (``__print_flags``, ``%s`` of a comm, ``%pS`` symbols, functions...): rendered with
  the scalar evaluator once per *distinct* value of the bytes it reads (a comm, a flags word), and
  spread back with ``take``;
* events with a plugin handler, ``bprint`` or an unparsable format: once per distinct payload.

The result is exactly :meth:`InfoRenderer.info` for every row (tests compare the two on the
corpus); matching then is one ``pyarrow.compute`` call per block.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..loaders.printfmt import (
    A_ATOM,
    A_DYNAMIC_ARRAY,
    A_DYNAMIC_ARRAY_LEN,
    A_FIELD,
    A_OP,
    F_ARRAY,
    F_DYNAMIC,
    P_DIGIT,
    P_POINTER,
    P_STRING,
    Arg,
    InfoRenderer,
    ParseItem,
    TEvent,
    TField,
)
from ..loaders.tracedat import Buffer

__all__ = ["BlockInfo", "match_mask"]

_BITS = {-2: 8, -1: 16, 0: 32, 1: 64, 2: 64}
_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
_HEX_UP = np.frombuffer(b"0123456789ABCDEF", np.uint8)


def match_mask(texts: pa.Array, text: str, mode: str) -> np.ndarray:
    """bool per string, the same predicate as ``filters.text_matcher`` (contains ignores case)."""
    if mode == "full match":
        m = pc.equal(texts, pa.scalar(text, pa.string()))
    else:
        m = pc.match_substring(texts, text, ignore_case=True)
        if mode == "not contains":
            m = pc.invert(m)
        elif mode != "contains":
            raise ValueError(f"unknown match mode {mode!r}")
    return m.to_numpy(zero_copy_only=False).astype(bool)


def _refs(arg: Arg | None, out: list[Arg], seen: set[int]) -> None:
    """Every Arg node under ``arg`` (children are Args or lists of Args in the node's attributes)."""
    if arg is None or id(arg) in seen:
        return
    seen.add(id(arg))
    out.append(arg)
    for v in arg.__dict__.values():
        if isinstance(v, Arg):
            _refs(v, out, seen)
        elif isinstance(v, list):
            for x in v:
                if isinstance(x, Arg):
                    _refs(x, out, seen)


def _item_fields(it: ParseItem) -> tuple[list[TField], bool]:
    """(fixed fields the item reads, True if it also depends on the record's length/dynamic data)."""
    nodes: list[Arg] = []
    seen: set[int] = set()
    _refs(it.arg, nodes, seen)
    _refs(it.len_arg, nodes, seen)
    fields: list[TField] = []
    whole = False
    for a in nodes:
        if a.kind in (A_DYNAMIC_ARRAY, A_DYNAMIC_ARRAY_LEN):
            whole = True
        f = a.field
        if f is not None:
            if f.size == 0 or f.flags & F_DYNAMIC:
                whole = True  # __data_loc data, or a flexible array read to the end of the record
            elif f not in fields:
                fields.append(f)
    return fields, whole


class _Slot:
    """Where a conversion's number sits in the record: ``size`` bytes at ``offset``."""

    __slots__ = ("offset", "size")

    def __init__(self, offset: int, size: int) -> None:
        self.offset, self.size = offset, size


def _plain_slot(it: ParseItem) -> _Slot | None:
    """The bytes a number/pointer conversion prints, if it can be formatted for a whole column: a
    plain fixed-size field, or a constant index into a fixed array (``REC->args[2]``); else None."""
    a = it.arg
    if it.len_arg is not None or a is None:
        return None
    if a.kind == A_FIELD and a.field is not None:
        f = a.field
        if f.flags & (F_ARRAY | F_DYNAMIC):
            return None
        slot = _Slot(f.offset, f.size)
    elif a.kind == A_OP and a.op == "[" and a.left is not None and a.left.kind == A_FIELD \
            and a.left.field is not None and a.right is not None and a.right.kind == A_ATOM \
            and a.right.atom.isdigit():
        f = a.left.field
        if f.flags & F_DYNAMIC or not f.elementsize:
            return None
        slot = _Slot(f.offset + int(a.right.atom) * f.elementsize, f.elementsize)
    else:
        return None
    if slot.size not in (1, 2, 4, 8):
        return None
    sp = it.spec
    if it.kind == P_POINTER:
        p = it.format.find("p")
        return slot if it.format[p + 1:] == "" else None
    if it.kind != P_DIGIT or it.ls not in _BITS or sp is None or sp.conv not in ("d", "i", "u", "x", "X"):
        return None
    if sp.prec is not None or sp.width == "*" or set(sp.flags) - set("-0#"):
        return None
    if "0" in sp.flags and sp.conv in "di":
        return None  # zero padding after a minus sign: left to the scalar path
    return slot


def _hex(v: np.ndarray, upper: bool = False) -> pa.Array:
    """uint64 -> lowercase (uppercase) hex without leading zeros, as a string array."""
    n = len(v)
    shifts = np.arange(60, -4, -4, dtype=np.uint64)
    nib = ((v[:, None] >> shifts) & np.uint64(0xF)).astype(np.uint8)
    chars = (_HEX_UP if upper else _HEX)[nib]
    nz = nib != 0
    first = np.where(nz.any(axis=1), nz.argmax(axis=1), 15)  # keep one digit for 0
    lens = 16 - first
    keep = np.arange(16)[None, :] >= first[:, None]
    flat = chars[keep]
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(lens, out=offsets[1:])
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(flat.tobytes()))


def _dec(v: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(v), pa.string())


class BlockInfo:
    """Renders the info text of any rows of one buffer, a block at a time (see the module doc).

    ``renderer`` is the event list's :class:`InfoRenderer` for that buffer's file (its context:
    symbols, comms, guest functions), so the texts are the ones the list shows.
    """

    def __init__(self, buffer: Buffer, renderer: InfoRenderer) -> None:
        self.buffer = buffer
        self.r = renderer
        self.endian = renderer.ctx.endian
        self._plans: dict[int, list | None] = {}

    # ---- plan per event type ---------------------------------------------------------------------
    def _plan(self, eid: int) -> list | None:
        """Per item: ("lit", text) | ("vec", item, field) | ("key", item, fields, whole); None: per payload."""
        if eid in self._plans:
            return self._plans[eid]
        tev: TEvent | None = self.r.event(eid)
        plan: list | None
        # the kmem plugin's handler only prefixes "(symbol+off) " from call_site, then prints the fmt
        prefix = tev is not None and getattr(tev.handler, "__name__", "") == "call_site"
        if tev is None or (tev.handler is not None and not prefix) or tev.failed or tev.is_bprint \
                or tev.cache is None:
            plan = None
        else:
            plan = []
            f = tev.find_field("call_site") if prefix else None
            if prefix:
                plan.append(("call_site", tev, [f] if f is not None else []))
            for it in tev.cache:
                if it.kind == P_STRING:
                    plan.append(("lit", it.format))
                    continue
                slot = _plain_slot(it)
                if slot is not None:
                    plan.append(("vec", it, slot))
                    continue
                fields, whole = _item_fields(it)
                plan.append(("key", it, fields, whole))
        self._plans[eid] = plan
        return plan

    # ---- rendering -----------------------------------------------------------------------------
    def render(self, rows: np.ndarray) -> pa.Array:
        """Info text of buffer rows ``rows`` (any order), as a string array in that order."""
        rows = np.asarray(rows, np.int64)
        n = len(rows)
        if n == 0:
            return pa.array([], pa.string())
        t = self.buffer.events
        eid = t.column("event_id").to_numpy()[rows]
        off = t.column("offset").to_numpy()[rows]
        ln = t.column("length").to_numpy()[rows].astype(np.int64)
        cpu = t.column("cpu").to_numpy()[rows]
        types, inv = np.unique(eid, return_inverse=True)
        groups = [np.flatnonzero(inv == k) for k in range(len(types))]
        width = np.zeros(len(types), np.int64)
        for k, g in enumerate(groups):
            width[k] = int(ln[g].max())
        # one pass over the stored chunks: each group's payloads as a zero-padded byte matrix
        mats = [np.zeros((len(g), int(width[k])), np.uint8) for k, g in enumerate(groups)]
        pos_in_group = np.empty(n, np.int64)
        for g in groups:
            pos_in_group[g] = np.arange(len(g))
        for idx, base, block in self.buffer.store.blocks(off):
            kk = inv[idx]
            for k in np.unique(kk).tolist():
                sel = idx[kk == k]
                w = int(width[k])
                if w == 0:
                    continue
                start = off[sel] - base
                cols = start[:, None] + np.arange(w)
                ok = (np.arange(w)[None, :] < ln[sel][:, None]) & (cols < len(block))
                vals = block[np.where(ok, cols, 0)]
                vals[~ok] = 0
                mats[k][pos_in_group[sel]] = vals
        out: list[pa.Array | None] = [None] * len(types)
        for k, g in enumerate(groups):
            out[k] = self._render_type(int(types[k]), mats[k], ln[g], cpu[g])
        # back to the caller's order
        order = np.concatenate(groups)
        joined = pa.concat_arrays([a.cast(pa.string()) for a in out])
        back = np.empty(n, np.int64)
        back[order] = np.arange(n)
        return joined.take(pa.array(back))

    def _render_type(self, eid: int, mat: np.ndarray, ln: np.ndarray, cpu: np.ndarray) -> pa.Array:
        plan = self._plan(eid)
        if plan is None:
            key = mat.copy()
            if key.shape[1] >= 4:
                key[:, 2:4] = 0  # common_flags / common_preempt_count never reach the info text
            r = self.r
            return self._per_distinct(np.hstack([key, _le(ln, 4), _le(cpu, 4)]),
                                      lambda i: r.info(eid, bytes(mat[i, :ln[i]]), int(cpu[i])))
        pieces: list[pa.Array | pa.Scalar] = []
        ev = self.r.ev
        for step in plan:
            if step[0] == "lit":
                pieces.append(pa.scalar(step[1], pa.string()))
            elif step[0] == "call_site":
                _, tev, fields = step
                site = self.r.plugins.call_site
                pieces.append(self._per_distinct(self._key(mat, ln, fields),
                                                 lambda i, site=site, tev=tev:
                                                 site(tev, bytes(mat[i, :ln[i]]), int(cpu[i]))[0]))
            elif step[0] == "vec":
                pieces.append(self._vector(step[1], step[2], mat, ln))
            else:
                _, it, fields, whole = step
                key = np.hstack([mat, _le(ln, 4)]) if whole else self._key(mat, ln, fields)
                pieces.append(self._per_distinct(key, lambda i, it=it: ev.item(it, bytes(mat[i, :ln[i]]))))
        if not pieces:
            text = pa.array([""] * len(mat), pa.string())
        elif len(pieces) == 1 and isinstance(pieces[0], pa.Scalar):
            text = pa.array([pieces[0].as_py()] * len(mat), pa.string())
        else:
            if all(isinstance(p, pa.Scalar) for p in pieces):
                pieces.append(pa.array([""] * len(mat), pa.string()))
            text = pc.binary_join_element_wise(*pieces, pa.scalar("", pa.string()))
        return _finish_all(text)

    def _key(self, mat: np.ndarray, ln: np.ndarray, fields: list[TField]) -> np.ndarray:
        """Key bytes per row: the fields' bytes, and whether the record holds each field whole."""
        if not fields:
            return np.zeros((len(mat), 1), np.uint8)
        return np.hstack([self._field_bytes(mat, ln, f) for f in fields]
                         + [(ln[:, None] >= np.array([f.offset + f.size for f in fields])[None, :]).astype(np.uint8)])

    @staticmethod
    def _field_bytes(mat: np.ndarray, ln: np.ndarray, f: TField | _Slot) -> np.ndarray:
        out = np.zeros((len(mat), f.size), np.uint8)
        w = max(0, min(mat.shape[1], f.offset + f.size) - f.offset)
        if w:
            out[:, :w] = mat[:, f.offset:f.offset + w]
        return out

    def _values(self, mat: np.ndarray, ln: np.ndarray, f: _Slot) -> np.ndarray:
        """The field as uint64 the way Evaluator.read reads it (0 past the record's end)."""
        raw = np.ascontiguousarray(self._field_bytes(mat, ln, f))
        dt = np.dtype({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[f.size]).newbyteorder(self.endian)
        v = raw.view(dt).reshape(-1).astype(np.uint64)
        v[ln < f.offset + f.size] = 0
        return v

    def _vector(self, it: ParseItem, f: _Slot, mat: np.ndarray, ln: np.ndarray) -> pa.Array:
        v = self._values(mat, ln, f)
        if it.kind == P_POINTER:
            body = pc.binary_join_element_wise("0x", _hex(v), "")
            return pc.if_else(pa.array(v == 0), pa.scalar("(nil)"), body)
        sp = it.spec
        bits = _BITS[it.ls]
        if bits < 64:
            v = v & np.uint64((1 << bits) - 1)
        conv = sp.conv
        if conv in "di":
            neg = (v >> np.uint64(bits - 1)) & np.uint64(1) == 1
            mag = np.where(neg, (np.uint64(0) - v) & np.uint64((1 << bits) - 1) if bits < 64 else
                           np.uint64(0) - v, v)
            digits = _dec(mag)
            body = pc.if_else(pa.array(neg), pc.binary_join_element_wise("-", digits, ""), digits)
        elif conv == "u":
            body = _dec(v)
        else:
            body = _hex(v, conv == "X")
        if "#" in sp.flags and conv in "xX":
            pre = "0x" if conv == "x" else "0X"
            body = pc.if_else(pa.array(v != 0), pc.binary_join_element_wise(pre, body, ""), body)
        w = sp.width
        if isinstance(w, int) and w > 0:
            if "-" in sp.flags:
                body = pc.utf8_rpad(body, width=w, padding=" ")
            elif "0" in sp.flags:
                if "#" in sp.flags and conv in "xX":  # zeros go between the 0x and the digits
                    digits = _hex(v, conv == "X")
                    padded = pc.utf8_lpad(digits, width=max(0, w - 2), padding="0")
                    body = pc.if_else(pa.array(v != 0), pc.binary_join_element_wise(pre, padded, ""),
                                      pc.utf8_lpad(digits, width=w, padding="0"))
                else:
                    body = pc.utf8_lpad(body, width=w, padding="0")
            else:
                body = pc.utf8_lpad(body, width=w, padding=" ")
        return body

    @staticmethod
    def _per_distinct(key: np.ndarray, render) -> pa.Array:
        """render(i) once per distinct key row (i: its first row), spread to every row."""
        key = np.ascontiguousarray(key)
        if key.shape[1] == 0:
            key = np.zeros((len(key), 1), np.uint8)
        flat = key.view(np.dtype((np.void, key.shape[1]))).reshape(-1)
        _, first, inv = np.unique(flat, return_index=True, return_inverse=True)
        texts = pa.array([render(int(i)) for i in first.tolist()], pa.string())
        return texts.take(pa.array(inv.reshape(-1)))


def _le(v: np.ndarray, size: int) -> np.ndarray:
    """An integer column as ``size`` little-endian key bytes per row."""
    return np.ascontiguousarray(np.asarray(v).astype(f"<u{size}")).view(np.uint8).reshape(-1, size)


def _finish_all(text: pa.Array) -> pa.Array:
    """:func:`printfmt._finish` for a whole column: one trailing newline dropped, cut at a NUL."""
    text = pc.replace_substring_regex(text, pattern="\n\\z", replacement="", max_replacements=1)
    if pc.any(pc.match_substring(text, "\0")).as_py():
        text = pc.replace_substring_regex(text, pattern="(?s)\\x00.*", replacement="")
    return text
