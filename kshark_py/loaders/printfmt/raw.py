"""Raw field printing, ``name=value`` as ``trace-cmd report -R`` prints it (``print_field_raw``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..cnum import s32, s64
from .field import F_ARRAY, F_DYNAMIC, F_LONG, F_POINTER, F_SIGNED, F_STRING, TField
from .printf import cstring

if TYPE_CHECKING:
    from .evaluator import Evaluator

__all__ = ["raw_field"]


def raw_field(ev: Evaluator, f: TField, data: bytes, string_ok: dict) -> str:
    """print_field_raw."""
    if f.flags & F_ARRAY:
        if f.flags & F_DYNAMIC:
            off, ln = ev.dyn(f, data)
        else:
            off, ln = f.offset, f.size
        if (f.flags & F_STRING) and string_ok.get(f.name, True) and _printable(data, off, ln):
            return cstring(data, off)
        string_ok[f.name] = False
        return "ARRAY[" + ", ".join(format(data[i] if i < len(data) else 0, "02x")
                                    for i in range(off, off + ln)) + "]"
    val = ev.read(data, f.offset, f.size)
    if f.flags & F_POINTER:
        return f"0x{val:x}"
    if f.flags & F_SIGNED:
        if f.size == 4:
            if f.flags & F_LONG:
                return f"0x{val & 0xFFFFFFFF:x}"
            return str(s32(val))
        if f.size == 2:
            v = val - 0x10000 if val & 0x8000 else val
            return f"{v:2d}"
        if f.size == 1:
            v = val - 0x100 if val & 0x80 else val
            return str(v)
        return str(s64(val))
    if f.flags & F_LONG:
        return f"0x{val:x}"
    return str(val)


def _printable(data: bytes, off: int, ln: int) -> bool:
    for i in range(off, min(off + ln, len(data))):
        b = data[i]
        if b == 0:
            break
        if not (32 <= b <= 126 or b in (9, 10, 11, 12, 13)):
            return False
    return True
