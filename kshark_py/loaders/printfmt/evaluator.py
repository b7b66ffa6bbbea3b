"""The parsed arguments evaluated against one record's bytes: numbers (``eval_num_arg``), strings,
flags, symbols, arrays and masks (``print_str_arg``), the function address lookup, and each
conversion of the format (``print_parse_data``); pointer conversions are in :mod:`.pointer`."""

from __future__ import annotations

import struct

from ..cnum import U64, s32, s64, strtoull
from .consteval import binop, eval_flag, eval_type_str
from .context import RenderContext
from .field import F_ARRAY, F_RELATIVE, TField
from .parseargs import P_DIGIT, P_POINTER, P_STRING, ParseItem
from .pointer import PointerFormats
from .printf import Spec, c_int, c_str, cstring
from .tree import (
    A_ATOM,
    A_BITMASK,
    A_BSTRING,
    A_CPUMASK,
    A_DYNAMIC_ARRAY,
    A_DYNAMIC_ARRAY_LEN,
    A_FIELD,
    A_FLAGS,
    A_FUNC,
    A_HEX,
    A_HEX_STR,
    A_INT_ARRAY,
    A_OP,
    A_STRING,
    A_SYMBOL,
    A_TYPE,
    Arg,
)

__all__ = ["Evaluator", "unwrap_casts"]


def unwrap_casts(arg: Arg | None) -> tuple[Arg | None, Arg | None]:
    """``((T1)(T2)x)[i]``: the outermost cast (it decides the value's type, as libtraceevent's
    index evaluation does) and the operand under all casts."""
    typearg = None
    while arg is not None and arg.kind == A_TYPE:
        if typearg is None:
            typearg = arg
        arg = arg.item
    return typearg, arg


class Evaluator(PointerFormats):
    """Evaluates parsed args against one record's bytes (eval_num_arg / print_str_arg)."""

    def __init__(self, ctx: RenderContext) -> None:
        self.ctx = ctx
        e = ctx.endian
        self.long_size = ctx.long_size
        self.big = e == ">"
        self.st = {1: struct.Struct(e + "B"), 2: struct.Struct(e + "H"), 4: struct.Struct(e + "I"),
                   8: struct.Struct(e + "Q")}
        self._sym_by_name: dict[str, int] | None = None
        self._fmap: tuple[list[int], list[str]] | None = None
        self.printk = {a: _clean_printk(f) for a, f in ctx.printk.items()}

    # -- basic reads ---------------------------------------------------------------------------
    def read(self, data: bytes, off: int, size: int) -> int:
        st = self.st.get(size)
        if st is None or off < 0 or off + size > len(data):
            return 0
        return st.unpack_from(data, off)[0]

    def dyn(self, f: TField, data: bytes) -> tuple[int, int]:
        """dynamic_offset_field -> (offset, length)."""
        size = len(data)
        if f.offset + f.size > size:
            return 0, 0
        val = self.read(data, f.offset, f.size)
        o = val & 0xFFFF
        ln = (size - o) if f.size == 2 else ((val >> 16) & 0xFFFF)
        off = 0 if o > size else o
        ln = 0 if o + ln > size else ln
        if f.flags & F_RELATIVE:
            off += f.offset + f.size
        return off, ln

    def find_func(self, addr: int) -> tuple[str, int] | None:
        """(name, start) like libtraceevent's find_func(), or None.

        libtraceevent sorts its function list (built by prepending, i.e. in reverse kallsyms
        order) with glibc's stable merge sort and looks addresses up with bsearch() and a
        comparator that matches "equal, or between this entry and the next".  For aliases (several
        names at one address) the name it prints depends on that order and on bsearch's probing,
        so both are reproduced here; the last symbol only matches exactly.
        """
        if self._fmap is None:
            self._build_fmap()
        addrs, which = self._fmap
        n = len(addrs)
        if n == 0:
            return None
        addr &= U64
        lo, hi = 0, n
        while lo < hi:
            i = (lo + hi) // 2
            a = int(addrs[i])
            nxt = int(addrs[i + 1]) if i + 1 < n else 0
            if addr == a or (addr > a and addr < nxt):
                return self.ctx.kallsyms.name(int(which[i])), a
            if addr < a:
                hi = i
            else:
                lo = i + 1
        return None

    def _build_fmap(self) -> None:
        ks = self.ctx.kallsyms
        import numpy as np

        if ks is None or len(ks) == 0:
            self._fmap = (np.zeros(0, np.uint64), np.zeros(0, np.int64))
            return
        a = ks.addrs
        order = np.lexsort((-np.arange(len(a)), a))
        self._fmap = (a[order], order)  # addresses in libtraceevent's order, and which symbol each is

    def symbol_addr(self, name: str) -> int:
        if self._sym_by_name is None:
            d: dict[str, int] = {}
            ks = self.ctx.kallsyms
            if ks is not None:
                for a, nm in zip(ks.addrs.tolist(), ks.names, strict=False):
                    d.setdefault(nm, int(a))
            self._sym_by_name = d
        return self._sym_by_name.get(name, 0)

    # -- eval_num_arg ----------------------------------------------------------------------------
    def num(self, arg: Arg | None, data: bytes) -> int:
        if arg is None:
            return 0
        k = arg.kind
        if k == A_FIELD:
            f = arg.field
            if f is None:
                return 0
            return self.read(data, f.offset, f.size)
        if k == A_ATOM:
            v = strtoull(arg.atom)
            if not v and not arg.atom[:1].isdigit():
                v = self.symbol_addr(arg.atom)
            return v
        if k == A_TYPE:
            return eval_type_str(self.num(arg.item, data), arg.ctype, False)
        if k == A_OP:
            op = arg.op
            if op == "[":
                return self._index(arg, data)
            if op == "?":
                c = self.num(arg.left, data)
                r = arg.right
                if r is None:
                    return 0
                return self.num(r.left if c else r.right, data)
            left = self.num(arg.left, data)
            right = self.num(arg.right, data)
            if op == "!":
                return int(not right)
            if op == "~":
                return ~right & U64
            v = binop(op, left, right)
            return 0 if v is None else v
        if k == A_DYNAMIC_ARRAY_LEN:
            return self.dyn(arg.field, data)[1] if arg.field else 0
        if k == A_DYNAMIC_ARRAY:
            return self.dyn(arg.field, data)[0] if arg.field else 0
        if k == A_FUNC:
            return self.call(arg, data)[1]
        return 0

    def _index(self, arg: Arg, data: bytes) -> int:
        right = self.num(arg.right, data)
        typearg, larg = unwrap_casts(arg.left)
        field_size = self.long_size
        if larg is None:
            return 0
        if larg.kind == A_DYNAMIC_ARRAY:
            off = self.dyn(larg.field, data)[0] + right
            if larg.field.elementsize:
                field_size = larg.field.elementsize
        elif larg.kind == A_FIELD:
            f = larg.field
            if f is None:
                return 0
            field_size = f.elementsize
            off = f.offset + right * f.elementsize
        else:
            return 0
        if off + field_size > len(data):
            return 0
        val = self.read(data, off, field_size)
        if typearg is not None:
            val = eval_type_str(val, typearg.ctype, True)
        return val

    def call(self, arg: Arg, data: bytes) -> tuple[str, int]:
        fd = arg.func
        vals: list = []
        for p, fa in zip(fd.params, arg.fargs, strict=False):
            if p == "string":
                vals.append(self.strarg(fa, data, Spec(conv="s"), -1))
            elif p == "ptr":
                vals.append(self.pointee(fa, data))
            else:
                vals.append(self.num(fa, data))
        return fd.fn(vals, self.long_size)

    def pointee(self, arg: Arg, data: bytes) -> bytes | None:
        """The bytes a pointer argument of a plugin helper points at, from there to the record's end.

        libtraceevent passes a TEP_FUNC_ARG_PTR as eval_num_arg's value, which is an address inside
        the record only for ``__get_dynamic_array(f)`` (possibly under casts); any other pointer is a
        kernel address the C helper would dereference in the reader's memory: None here.
        """
        _, a = unwrap_casts(arg)
        if a is None or a.kind != A_DYNAMIC_ARRAY or a.field is None:
            return None
        return data[self.dyn(a.field, data)[0]:]

    # -- print_str_arg ------------------------------------------------------------------------
    def strarg(self, arg: Arg, data: bytes, sp: Spec, plen: int) -> str:
        k = arg.kind
        if k == A_ATOM or k == A_BSTRING:
            return c_str(sp, arg.atom, plen)
        if k == A_FIELD:
            f = arg.field
            if f is None:
                return ""
            if not (f.flags & F_ARRAY) and f.size == self.long_size:
                addr = self.read(data, f.offset, f.size)
                p = self.printk.get(addr)
                return p if p is not None else format(addr, "x")
            ln = f.size if f.size else len(data) - f.offset
            return c_str(sp, cstring(data, f.offset, f.offset + ln), plen)
        if k == A_FLAGS:
            val = s64(self.num(arg.a1, data))
            out = []
            printed = False
            for value, s in arg.syms:
                fval = eval_flag(value)
                if not val and fval < 0:
                    out.append(c_str(sp, s, plen))
                    break
                if fval > 0 and (val & fval) == fval:
                    if printed and arg.delim:
                        out.append(arg.delim)
                    out.append(c_str(sp, s, plen))
                    printed = True
                    val &= ~fval
            if val:
                if printed and arg.delim:
                    out.append(arg.delim)
                out.append("0x" + format(val & U64, "x"))
            return "".join(out)
        if k == A_SYMBOL:
            val = s64(self.num(arg.a1, data))
            for value, s in arg.syms:
                if val == eval_flag(value):
                    return c_str(sp, s, plen)
            return "0x" + format(val & U64, "x")
        if k in (A_HEX, A_HEX_STR):
            base = self._buf_of(arg.a1, data)
            if base is None:
                return ""
            n = self.num(arg.a2, data) & 0xFFFFFFFF
            hx = [format(data[base + i] if base + i < len(data) else 0, "02x") for i in range(min(n, 1 << 16))]
            return (" " if k == A_HEX else "").join(hx)
        if k == A_INT_ARRAY:
            base = self._buf_of(arg.a1, data)
            if base is None:
                return ""
            n = self.num(arg.a2, data) & 0xFFFFFFFF
            el = s64(self.num(arg.a3, data))
            el = ((el + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
            out = []
            p = base
            for _ in range(min(n, 1 << 16)):
                if el in (1, 2, 4, 8):
                    out.append(str(int.from_bytes(data[p:p + el].ljust(el, b"\0"),
                                                  "big" if self.big else "little")))
                    p += el
                else:
                    out.append(f"BAD SIZE:{el} 0x{(data[p] if p < len(data) else 0):x}")
                    el = 1
                    p += 1
            return " ".join(out)
        if k == A_STRING:
            f = arg.field
            if f is None:
                return ""
            off, ln = self.dyn(f, data)
            if not ln:
                return ""
            return c_str(sp, cstring(data, off), plen)
        if k == A_BITMASK:
            f = arg.field
            if f is None:
                return ""
            off, ln = self.dyn(f, data)
            return c_str(sp, self._bitmask(data[off:off + ln]), plen)
        if k == A_CPUMASK:
            f = arg.field
            if f is None:
                return ""
            off, ln = self.dyn(f, data)
            return c_str(sp, self._cpumask(data[off:off + ln]), plen)
        if k == A_OP:
            if arg.op[:1] != "?":
                return ""
            c = self.num(arg.left, data)
            r = arg.right
            if r is None:
                return ""
            nxt = r.left if c else r.right
            return self.strarg(nxt, data, sp, plen) if nxt is not None else ""
        if k == A_FUNC:
            return self.call(arg, data)[0]
        return ""

    def _buf_of(self, a: Arg | None, data: bytes) -> int | None:
        if a is None:
            return None
        if a.kind == A_DYNAMIC_ARRAY:
            return self.dyn(a.field, data)[0]
        if a.kind == A_FIELD and a.field is not None:
            return a.field.offset
        return None

    def _bitmask(self, b: bytes) -> str:
        size = len(b)
        nr_bits = size * 8
        str_size = (nr_bits + 3) // 4 + (nr_bits - 1) // 32 if size else 0
        if not size:
            return ""
        out = [""] * str_size
        ln = 0
        i = str_size - 2
        while i >= 0:
            idx = size - (ln + 1) if self.big else ln
            h = format(b[idx], "02x")
            out[i] = h[0]
            out[i + 1] = h[1]
            ln += 1
            if not (ln & 3) and i > 0:
                i -= 1
                out[i] = ","
            i -= 2
        return "".join(out)

    def _cpumask(self, b: bytes) -> str:
        size = len(b)
        bits = []
        for i in range(size):
            byte = b[size - (i + 1)] if self.big else b[i]
            for j in range(8):
                bits.append((byte >> j) & 1)
        out = []
        i = 0
        n = len(bits)
        while i < n:
            if bits[i]:
                j = i
                while j + 1 < n and bits[j + 1]:
                    j += 1
                out.append(str(i) if j == i else f"{i}-{j}")
                i = j + 1
            else:
                i += 1
        return ",".join(out)

    # -- print_parse_data ------------------------------------------------------------------------
    def item(self, it: ParseItem, data: bytes) -> str:
        k = it.kind
        if k == P_STRING:
            return it.format
        plen = -1
        if it.len_arg is not None:
            plen = s32(self.num(it.len_arg, data))
        if k == P_DIGIT:
            val = self.num(it.arg, data)
            bits = {-2: 8, -1: 16, 0: 32, 1: 64, 2: 64}.get(it.ls)
            if bits is None:
                return ""
            return c_int(it.spec, val, bits, plen)
        if k == P_POINTER:
            return self.pointer(it, data, plen if it.len_arg is not None else 1)
        # print_arg_string: the argument goes through a helper trace_seq copied with trace_seq_puts,
        # so a NUL in it (plugin_scsi's CDB text ends with one) ends that argument, not the line
        text = self.strarg(it.arg, data, it.spec, plen)
        nul = text.find("\0")
        return text if nul < 0 else text[:nul]


def _clean_printk(fmt: str) -> str:
    """tep_register_print_string: strip quotes and a trailing literal ``\\n``."""
    if fmt.startswith('"'):
        fmt = fmt[1:]
    if fmt.endswith('"'):
        fmt = fmt[:-1]
    if fmt.endswith("\\n"):
        fmt = fmt[:-2]
    return fmt
