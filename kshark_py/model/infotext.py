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
* events with a plugin handler, ``bprint`` or an unparsable format: once per distinct payload,
  except handlers that describe their text in column pieces (``PluginSet.column_plan``: hrtimer,
  whose every event carries its own time, and kvm_exit/kvm_entry with their guest RIPs).

The result is exactly :meth:`InfoRenderer.info` for every row, as shown: the renderer's lossless
text (a comm or ``%s`` argument that is not UTF-8 keeps its bytes, :mod:`~kshark_py.loaders.text`)
goes through :func:`~kshark_py.loaders.text.display` (U+FFFD), since an Arrow string is valid UTF-8
and the event list shows the same (tests compare the two on the corpus); matching then is one
``pyarrow.compute`` call per block.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..loaders.buffer import Buffer
from ..loaders.printfmt.event import TEvent
from ..loaders.printfmt.field import F_ARRAY, F_DYNAMIC, F_LONG, F_POINTER, F_SIGNED, TField
from ..loaders.printfmt.parseargs import P_DIGIT, P_POINTER, P_STRING, ParseItem
from ..loaders.printfmt.raw import raw_field
from ..loaders.printfmt.renderer import InfoRenderer
from ..loaders.printfmt.tree import A_BSTRING, A_DYNAMIC_ARRAY, A_DYNAMIC_ARRAY_LEN, Arg
from ..loaders.text import display
from .vexpr import compile_num, find_funcs

__all__ = ["BlockInfo", "match_mask"]

MATRIX_BYTES = 64 << 20
"""At most this much payload matrix per call (:meth:`BlockInfo.render` splits bigger blocks)."""
def _str(text: str) -> pa.Scalar:
    """A typed string scalar: an untyped Python str handed to pyarrow.compute costs a (failing)
    pandas import attempt per call when pandas is not installed."""
    return _STR.get(text) or _STR.setdefault(text, pa.scalar(text, pa.string()))


_STR: dict[str, pa.Scalar] = {}
_BITS = {-2: 8, -1: 16, 0: 32, 1: 64, 2: 64}


def match_mask(texts: pa.Array, text: str, mode: str) -> np.ndarray:
    """bool per string, the same predicate as ``taskindex.text_matcher`` (contains ignores case)."""
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


def _vec_item(it: ParseItem, ev) -> tuple | None:
    """How to format a number/pointer conversion for a whole column: ("num", fn) for ``%d %u %x``
    and friends (width, ``0``, ``-``, ``#``), ("ptr", fn) for a plain ``%p``, ("sym", fn, with_offset)
    for ``%ps %pS %pf %pF``; fn evaluates the argument (:func:`vexpr.compile_num`).  None: scalar."""
    a = it.arg
    if it.len_arg is not None or a is None:
        return None
    if it.kind == P_POINTER:
        if a.kind == A_BSTRING:
            return None
        fn = compile_num(a, ev)
        if fn is None:
            return None
        ext = it.format[it.format.find("p") + 1:]
        if ext == "":
            return ("ptr", fn)
        if ext[:1] in ("F", "f", "S", "s"):
            return ("sym", fn, ext[:1] in ("F", "S"))
        return None
    sp = it.spec
    if it.kind != P_DIGIT or it.ls not in _BITS or sp is None or sp.conv not in ("d", "i", "u", "x", "X"):
        return None
    if sp.prec is not None or sp.width == "*" or set(sp.flags) - set("-0#"):
        return None
    if "0" in sp.flags and sp.conv in "di":
        return None  # zero padding after a minus sign: left to the scalar path
    fn = compile_num(a, ev)
    return None if fn is None else ("num", fn)


def _pairs(digits: bytes) -> np.ndarray:
    """The two hex characters of each byte value, as little-endian uint16 (first character first)."""
    return np.array([digits[i >> 4] | (digits[i & 15] << 8) for i in range(256)], "<u2")


_PAIRS = _pairs(b"0123456789abcdef")
_PAIRS_UP = _pairs(b"0123456789ABCDEF")


def _hex(v: np.ndarray, upper: bool = False) -> pa.Array:
    """uint64 -> lowercase (uppercase) hex without leading zeros, as a string array (a byte at a
    time through a 256-entry table of character pairs)."""
    n = len(v)
    be = np.ascontiguousarray(v, ">u8").view(np.uint8).reshape(n, 8)
    chars = (_PAIRS_UP if upper else _PAIRS)[be].view(np.uint8).reshape(n, 16)
    nz = be != 0
    fb = nz.argmax(axis=1)
    high_zero = (be[np.arange(n), fb] >> 4) == 0
    first = np.where(nz.any(axis=1), 2 * fb + high_zero, 15)  # keep one digit for 0
    keep = np.arange(16)[None, :] >= first[:, None]
    flat = chars[keep]
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(16 - first, out=offsets[1:])
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
        """Per item: ("lit", text) | ("vec", item, field) | ("key", item, fields, whole) | a plugin's
        ("hex", field, prefix) | ("dec", field) | ("distinct", fields, fn); None: per payload."""
        if eid in self._plans:
            return self._plans[eid]
        tev: TEvent | None = self.r.event(eid)
        plan: list | None
        # the kmem plugin's handler only prefixes "(symbol+off) " from call_site, then prints the fmt
        prefix = tev is not None and getattr(tev.handler, "__name__", "") == "call_site"
        columns = self.r.plugins.column_plan(tev) if tev is not None and tev.handler is not None else None
        if columns is not None:
            plan = columns  # a plugin's text in column pieces (hrtimer: every event has its own time)
        elif tev is not None and tev.failed and tev.handler is None and not tev.is_bprint:
            plan = self._failed_plan(tev)
        elif tev is None or (tev.handler is not None and not prefix) or tev.failed or tev.is_bprint \
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
                vec = _vec_item(it, self.r.ev)
                if vec is not None:
                    plan.append(("vec", it, vec))
                    continue
                fields, whole = _item_fields(it)
                plan.append(("key", it, fields, whole))
        self._plans[eid] = plan
        return plan

    def _failed_plan(self, tev: TEvent) -> list:
        """``[FAILED TO PARSE]`` and every field raw (libtraceevent's print_field_raw), per field."""
        plan: list = [("lit", "[FAILED TO PARSE]")]
        string_ok = self.r._string_ok.setdefault(tev.fmt.id, {})
        for f in tev.fields:
            plan.append(("lit", f" {f.name}="))
            if not f.flags & F_ARRAY:
                plan.append(("raw", f))
            else:
                plan.append(("rawkey", f, string_ok, bool(f.flags & F_DYNAMIC)))
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
        ts = t.column("ts").to_numpy()[rows]
        types, inv = np.unique(eid, return_inverse=True)
        inv = inv.reshape(-1)
        by_type = np.argsort(inv, kind="stable")
        groups = np.split(by_type, np.searchsorted(inv[by_type], np.arange(1, len(types))))
        width = np.maximum.reduceat(ln[by_type], np.searchsorted(inv[by_type], np.arange(len(types))))
        if n > 1 and sum(len(g) * int(width[k]) for k, g in enumerate(groups)) > MATRIX_BYTES:
            half = n // 2  # long records (a big print, a buffer dump): two smaller matrices
            return pa.concat_arrays([self.render(rows[:half]), self.render(rows[half:])])
        # one pass over the stored chunks: each group's payloads as a zero-padded byte matrix
        mats = [np.zeros((len(g), int(width[k])), np.uint8) for k, g in enumerate(groups)]
        pos_in_group = np.empty(n, np.int64)
        pos_in_group[by_type] = np.arange(n) - np.repeat(np.cumsum([0] + [len(g) for g in groups[:-1]]),
                                                        [len(g) for g in groups])
        for idx, base, block in self.buffer.store.blocks(off):
            kk = inv[idx]
            o = np.argsort(kk, kind="stable")
            idx, kk = idx[o], kk[o]
            present = np.unique(kk)
            cuts = np.searchsorted(kk, present)
            for k, sel in zip(present.tolist(), np.split(idx, cuts[1:]), strict=True):
                w = int(width[k])
                if w == 0:
                    continue
                it = np.int32 if len(block) < 1 << 31 else np.int64  # (an uncompressed file is one block)
                ar = np.arange(w, dtype=it)
                cols = (off[sel] - base).astype(it)[:, None] + ar
                np.minimum(cols, len(block) - 1, out=cols)
                vals = block[cols]
                vals *= ar[None, :] < ln[sel][:, None]  # zero past each record's end
                mats[k][pos_in_group[sel]] = vals
        out: list[pa.Array | None] = [None] * len(types)
        for k, g in enumerate(groups):
            out[k] = self._render_type(int(types[k]), mats[k], ln[g], cpu[g], ts[g])
        # back to the caller's order
        order = np.concatenate(groups)
        joined = pa.concat_arrays([a.cast(pa.string()) for a in out])
        back = np.empty(n, np.int64)
        back[order] = np.arange(n)
        return joined.take(pa.array(back))

    def _render_type(self, eid: int, mat: np.ndarray, ln: np.ndarray, cpu: np.ndarray,
                     ts: np.ndarray) -> pa.Array:
        plan = self._plan(eid)
        if plan is None:
            key = mat.copy()
            if key.shape[1] >= 4:
                key[:, 2:4] = 0  # common_flags / common_preempt_count never reach the info text
            r = self.r
            tev = r.event(eid)
            timed = tev is not None and tev.handler == r.plugins.func_repeats  # prints a time of its own
            parts = [key, _le(ln, 4), _le(cpu, 4)] + ([_le(ts, 8)] if timed else [])
            return self._per_distinct(np.hstack(parts),
                                      lambda i: r.info(eid, bytes(mat[i, :ln[i]]), int(cpu[i]), int(ts[i])))
        pieces: list[pa.Array | pa.Scalar] = []
        ev = self.r.ev
        for step in plan:
            if step[0] == "lit":
                pieces.append(pa.scalar(display(step[1]), pa.string()))
            elif step[0] == "call_site":
                _, tev, fields = step
                site = self.r.plugins.call_site
                pieces.append(self._per_distinct(self._key(mat, ln, fields),
                                                 lambda i, site=site, tev=tev:
                                                 site(tev, bytes(mat[i, :ln[i]]), int(cpu[i]))[0]))
            elif step[0] == "vec":
                pieces.append(self._vector(step[1], step[2], mat, ln))
            elif step[0] == "raw":
                pieces.append(self._raw(step[1], mat, ln))
            elif step[0] == "hex":
                v = self._reader(mat, ln)(step[1].offset, step[1].size)
                pieces.append(pc.binary_join_element_wise(_str(step[2]), _hex(v), _str("")) if step[2] else _hex(v))
            elif step[0] == "dec":
                pieces.append(_dec(self._reader(mat, ln)(step[1].offset, step[1].size)))
            elif step[0] == "distinct":
                _, fields, fn = step
                pieces.append(self._per_distinct(self._key(mat, ln, fields),
                                                 lambda i, fn=fn: fn(bytes(mat[i, :ln[i]]))))
            elif step[0] == "rawkey":
                _, f, string_ok, dynamic = step
                key = np.hstack([mat, _le(ln, 4)]) if dynamic else self._key(mat, ln, [f])
                pieces.append(self._per_distinct(key, lambda i, f=f, ok=string_ok:
                                                 raw_field(ev, f, bytes(mat[i, :ln[i]]), ok)))
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
    def _field_bytes(mat: np.ndarray, ln: np.ndarray, f: TField) -> np.ndarray:
        out = np.zeros((len(mat), f.size), np.uint8)
        w = max(0, min(mat.shape[1], f.offset + f.size) - f.offset)
        if w:
            out[:, :w] = mat[:, f.offset:f.offset + w]
        return out

    def _reader(self, mat: np.ndarray, ln: np.ndarray):
        """reader(offset, size) over a type's payload matrix: ``Evaluator.read`` for every row."""
        dts = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
        cache: dict[tuple[int, int], np.ndarray] = {}

        def read(off: int, size: int) -> np.ndarray:
            v = cache.get((off, size))
            if v is not None:
                return v
            if size not in dts or off < 0:
                v = np.zeros(len(mat), np.uint64)
            else:
                raw = np.zeros((len(mat), size), np.uint8)
                w = max(0, min(mat.shape[1], off + size) - off)
                if w:
                    raw[:, :w] = mat[:, off:off + w]
                v = raw.view(np.dtype(dts[size]).newbyteorder(self.endian)).reshape(-1).astype(np.uint64)
                v[ln < off + size] = 0
            cache[(off, size)] = v
            return v

        return read

    def _vector(self, it: ParseItem, vec: tuple, mat: np.ndarray, ln: np.ndarray) -> pa.Array:
        v = vec[1](self._reader(mat, ln), len(mat))
        if vec[0] == "ptr":
            body = pc.binary_join_element_wise(_str("0x"), _hex(v), _str(""))
            return pc.if_else(pa.array(v == 0), _str("(nil)"), body)
        if vec[0] == "sym":
            return self._symbols(v, vec[2])
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
            body = pc.if_else(pa.array(neg), pc.binary_join_element_wise(_str("-"), digits, _str("")), digits)
        elif conv == "u":
            body = _dec(v)
        else:
            body = _hex(v, conv == "X")
        if "#" in sp.flags and conv in "xX":
            pre = "0x" if conv == "x" else "0X"
            body = pc.if_else(pa.array(v != 0), pc.binary_join_element_wise(_str(pre), body, _str("")), body)
        w = sp.width
        if isinstance(w, int) and w > 0:
            if "-" in sp.flags:
                body = pc.utf8_rpad(body, width=w, padding=" ")
            elif "0" in sp.flags:
                if "#" in sp.flags and conv in "xX":  # zeros go between the 0x and the digits
                    digits = _hex(v, conv == "X")
                    padded = pc.utf8_lpad(digits, width=max(0, w - 2), padding="0")
                    body = pc.if_else(pa.array(v != 0), pc.binary_join_element_wise(_str(pre), padded, _str("")),
                                      pc.utf8_lpad(digits, width=w, padding="0"))
                else:
                    body = pc.utf8_lpad(body, width=w, padding="0")
            else:
                body = pc.utf8_lpad(body, width=w, padding=" ")
        return body

    def _raw(self, f: TField, mat: np.ndarray, ln: np.ndarray) -> pa.Array:
        """``printfmt.raw.raw_field`` of a scalar field, for the whole column."""
        v = self._reader(mat, ln)(f.offset, f.size)
        if f.flags & F_POINTER or (f.flags & F_LONG and not (f.flags & F_SIGNED)):
            return pc.binary_join_element_wise(_str("0x"), _hex(v), _str(""))
        if f.flags & F_SIGNED:
            if f.size == 4 and f.flags & F_LONG:
                return pc.binary_join_element_wise(_str("0x"), _hex(v & np.uint64(0xFFFFFFFF)), _str(""))
            signed = {4: np.int32, 2: np.int16, 1: np.int8}.get(f.size, np.int64)
            sv = v.astype({4: np.uint32, 2: np.uint16, 1: np.uint8}.get(f.size, np.uint64)).view(signed)
            text = _dec(sv.astype(np.int64))
            return pc.utf8_lpad(text, width=2, padding=" ") if f.size == 2 else text
        return _dec(v)

    def _symbols(self, v: np.ndarray, with_offset: bool) -> pa.Array:
        """``%pS``/``%ps``: "name+0xoff" / "name" of the function holding each address, else "0x..."."""
        ev = self.r.ev
        sym, start = find_funcs(ev, v)
        found = sym >= 0
        uniq, inv = np.unique(sym, return_inverse=True)
        ks = ev.ctx.kallsyms
        names = pa.array([display(ks.name(int(k))) if k >= 0 else "" for k in uniq.tolist()], pa.string())
        text = names.take(pa.array(inv.reshape(-1)))
        if with_offset:
            text = pc.binary_join_element_wise(text, _str("+0x"), _hex(v - start), _str(""))
        raw = pc.binary_join_element_wise(_str("0x"), _hex(v), _str(""))
        return pc.if_else(pa.array(found), text, raw)

    @staticmethod
    def _per_distinct(key: np.ndarray, render) -> pa.Array:
        """render(i) once per distinct key row (i: its first row), spread to every row."""
        key = np.ascontiguousarray(key)
        if key.shape[1] == 0:
            key = np.zeros((len(key), 1), np.uint8)
        flat = key.view(np.dtype((np.void, key.shape[1]))).reshape(-1)
        _, first, inv = np.unique(flat, return_index=True, return_inverse=True)
        texts = pa.array([display(render(int(i))) for i in first.tolist()], pa.string())
        return texts.take(pa.array(inv.reshape(-1)))


def _le(v: np.ndarray, size: int) -> np.ndarray:
    """An integer column as ``size`` little-endian key bytes per row."""
    return np.ascontiguousarray(np.asarray(v).astype(f"<u{size}")).view(np.uint8).reshape(-1, size)


def _finish_all(text: pa.Array) -> pa.Array:
    """:func:`printfmt.renderer._finish` for a whole column: one trailing newline dropped, cut at a NUL."""
    if pc.any(pc.ends_with(text, "\n")).as_py():
        text = pc.replace_substring_regex(text, pattern="\n\\z", replacement="", max_replacements=1)
    if pc.any(pc.match_substring(text, "\0")).as_py():
        text = pc.replace_substring_regex(text, pattern="(?s)\\x00.*", replacement="")
    return text
