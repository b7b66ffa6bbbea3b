"""``%p`` and its extensions (``print_arg_pointer``): symbols (``%pS``, ``%pF``...), MAC (``%pM``),
IPv4/IPv6/sockaddr (``%pI4``, ``%pI6c``, ``%pISpc``...), UUIDs (``%pU``), raw buffers (``%ph``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..cnum import U64
from .tree import A_BSTRING, A_DYNAMIC_ARRAY, A_FIELD, A_FUNC, A_TYPE, Arg

if TYPE_CHECKING:
    from .parseargs import ParseItem

__all__ = ["PointerFormats"]


class PointerFormats:
    """The pointer conversions of :class:`~.evaluator.Evaluator` (mixed into it: they use its
    ``num``, ``call``, ``dyn``, ``find_func``, ``big`` and ``long_size``)."""

    def pointer(self, item: ParseItem, data: bytes, plen: int) -> str:
        arg = item.arg
        if arg.kind == A_BSTRING:
            return arg.atom
        f = item.format
        p = f.find("p")
        ext = f[p + 1:]
        c = ext[:1]
        if c in ("F", "f", "S", "s"):
            val = self.num(arg, data)
            fn = self.find_func(val)
            if fn is not None:
                if c in ("F", "S"):
                    return f"{fn[0]}+0x{(val - fn[1]) & U64:x}"
                return fn[0]
            if self.long_size == 4:
                return f"0x{val & U64:x}"
            return f"0x{val & U64:x}"
        if c in ("M", "m"):
            return self._mac(ext, arg, data)
        if c in ("I", "i"):
            return self._ip(ext, arg, data)
        if c == "U":
            return self._uuid(ext, arg, data)
        if c == "h":
            return self._rawbuf(ext, arg, data, plen)
        val = self.num(arg, data)
        return f"0x{val:x}" if val else "(nil)"

    def _field_arg(self, arg: Arg) -> Arg:
        while arg.kind == A_TYPE and arg.item is not None:
            arg = arg.item
        return arg

    def _mac(self, ext: str, arg: Arg, data: bytes) -> str:
        if arg.kind == A_FUNC:
            return self.call(arg, data)[0]
        arg = self._field_arg(arg)
        if arg.kind != A_FIELD:
            return f"ARG TYPE NOT FIELD BUT {arg.kind}"
        sep = ":"
        if ext[0] == "m":
            sep = ""
        elif ext[0] == "M" and ext[1:2] == "F":
            sep = "-"
        f = arg.field
        if f is None:
            return ""
        if f.size != 6:
            return "INVALIDMAC"
        b = data[f.offset:f.offset + 6].ljust(6, b"\0")
        if ext[1:2] == "R":
            b = b[::-1]
        return sep.join(format(x, "02x") for x in b)

    def _ip4(self, b: bytes, i: str, reverse: bool) -> str:
        if reverse:
            b = b[::-1]
        if i == "i":
            return ".".join(format(x, "03d") for x in b[:4])
        return ".".join(str(x) for x in b[:4])

    def _ip4_reverse(self, ch: str) -> bool:
        if ch == "h":
            return not self.big
        if ch == "l":
            return True
        return False

    def _ip6c(self, b: bytes) -> str:
        words = [int.from_bytes(b[j:j + 2], "big") for j in range(0, 16, 2)]
        raw_words = [int.from_bytes(b[j:j + 2], "little") for j in range(0, 16, 2)]
        v4mapped = words[0] == 0 and words[1] == 0 and words[2] == 0 and words[3] == 0 and words[4] == 0 \
            and words[5] == 0xFFFF
        isatap = (int.from_bytes(b[8:12], "big") | 0x02000000) == 0x02005EFE
        use4 = v4mapped or isatap
        rng = 6 if use4 else 8
        zl = [0] * 8
        for i in range(rng):
            for j in range(i, rng):
                if raw_words[j] != 0:
                    break
                zl[i] += 1
        longest = 1
        colonpos = -1
        for i in range(rng):
            if zl[i] > longest:
                longest = zl[i]
                colonpos = i
        if longest == 1:
            colonpos = -1
        out = []
        need = False
        i = 0
        while i < rng:
            if i == colonpos:
                if need or i == 0:
                    out.append(":")
                out.append(":")
                need = False
                i += longest
                continue
            if need:
                out.append(":")
            w = words[i]
            hi, lo = w >> 8, w & 0xFF
            out.append(f"{hi:x}{lo:02x}" if hi else f"{lo:x}")
            need = True
            i += 1
        if use4:
            if need:
                out.append(":")
            out.append(self._ip4(b[12:16], "I", False))
        return "".join(out)

    def _ip6(self, b: bytes, i: str) -> str:
        parts = [f"{b[j]:02x}{b[j + 1]:02x}" for j in range(0, 16, 2)]
        return (":" if i == "I" else "").join(parts)

    def _ip(self, ext: str, arg: Arg, data: bytes) -> str:
        i = ext[0]
        v = ext[1:2]
        rest = ext[2:]
        if v not in ("4", "6", "S"):
            return ""
        if arg.kind == A_FUNC:
            return self.call(arg, data)[0]
        a = self._field_arg(arg)
        if v == "4":
            if a.kind != A_FIELD:
                return f"ARG TYPE NOT FIELD BUT {a.kind}"
            if a.field is None:
                return ""
            if a.field.size != 4:
                return "INVALIDIPv4"
            return self._ip4(data[a.field.offset:a.field.offset + 4], i, self._ip4_reverse(rest[:1]))
        if v == "6":
            if a.kind != A_FIELD:
                return f"ARG TYPE NOT FIELD BUT {a.kind}"
            if a.field is None:
                return ""
            if a.field.size != 16:
                return "INVALIDIPv6"
            b = data[a.field.offset:a.field.offset + 16].ljust(16, b"\0")
            if i == "I" and rest[:1] == "c":
                return self._ip6c(b)
            return self._ip6(b, i)
        have_p = have_c = False
        r = rest
        if i == "I":
            if r[:1] == "p":
                have_p = True
                r = r[1:]
            if r[:1] == "c":
                have_c = True
                r = r[1:]
        reverse = self._ip4_reverse(r[:1])
        if a.kind == A_FIELD and a.field is not None:
            off, ln = a.field.offset, a.field.size
        elif a.kind == A_DYNAMIC_ARRAY:
            off, ln = self.dyn(a.field, data)
        else:
            return f"ARG NOT FIELD NOR DYNAMIC ARRAY BUT TYPE {a.kind}"
        sa = data[off:off + 28].ljust(28, b"\0")
        fam = int.from_bytes(sa[0:2], "little")
        if fam == 2:
            if ln < 16:
                return "INVALIDIPv4"
            s = self._ip4(sa[4:8], i, reverse)
            if have_p:
                s += f":{int.from_bytes(sa[2:4], 'big')}"
            return s
        if fam == 10:
            if ln < 28:
                return "INVALIDIPv6"
            s = "[" if have_p else ""
            b = sa[8:24]
            s += self._ip6c(b) if have_c else self._ip6(b, i)
            if have_p:
                s += f"]:{int.from_bytes(sa[2:4], 'big')}"
            return s
        return ""

    def _uuid(self, ext: str, arg: Arg, data: bytes) -> str:
        c = ext[1:2]
        upper = c in ("L", "B")
        guid = c in ("L", "l")
        if arg.kind == A_FUNC:
            return self.call(arg, data)[0]
        a = self._field_arg(arg)
        if a.kind != A_FIELD:
            return f"ARG TYPE NOT FIELD BUT {a.kind}"
        if a.field is None:
            return ""
        if a.field.size != 16:
            return "INVALIDUUID"
        b = data[a.field.offset:a.field.offset + 16].ljust(16, b"\0")
        idx = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15] if guid else list(range(16))
        out = []
        for i in range(16):
            out.append(format(b[idx[i]], "02X" if upper else "02x"))
            if i in (3, 5, 7, 9):
                out.append("-")
        return "".join(out)

    def _rawbuf(self, ext: str, arg: Arg, data: bytes, plen: int) -> str:
        delim = {"C": ":", "D": "-", "N": ""}.get(ext[1:2], " ")
        if arg.kind == A_FUNC:
            return self.call(arg, data)[0]
        if arg.kind != A_DYNAMIC_ARRAY:
            return f"ARG TYPE NOT FIELD BUT {arg.kind}"
        off, ln = self.dyn(arg.field, data)
        if ln < plen:
            plen = ln
        if plen < 1:
            return ""
        return delim.join(format(x, "02x") for x in data[off:off + plen])
