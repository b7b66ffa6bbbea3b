"""Fields as libtraceevent sees them: flags derived from the declaration text (``event_read_fields``)."""

from __future__ import annotations

from ..formats import Field as FmtField

__all__ = ["F_ARRAY", "F_POINTER", "F_SIGNED", "F_STRING", "F_DYNAMIC", "F_LONG", "F_RELATIVE", "TField"]


F_ARRAY = 1
F_POINTER = 2
F_SIGNED = 4
F_STRING = 8
F_DYNAMIC = 16
F_LONG = 32
F_RELATIVE = 64

_TYPE_SIZES = {"u8": 1, "u16": 2, "u32": 4, "u64": 8, "s8": 1, "s16": 2, "s32": 4, "s64": 8, "char": 1}


class TField:
    """A field with libtraceevent's flags and element size (``event_read_fields``)."""

    __slots__ = ("name", "offset", "size", "flags", "elementsize", "type")

    def __init__(self, f: FmtField, long_size: int) -> None:
        self.name = f.name
        self.offset = f.offset
        self.size = f.size
        t = f.type
        flags = 0
        if "*" in t:
            flags |= F_POINTER
        is_array = f.array_len is not None or f.dynamic is not None
        if is_array:
            flags |= F_ARRAY
        if f.signed:
            flags |= F_SIGNED
        if is_array and ("char" in t or "u8" in t or "s8" in t):
            flags |= F_STRING
        if f.dynamic == "data_loc":
            flags |= F_DYNAMIC
        elif f.dynamic == "rel_loc":
            flags |= F_DYNAMIC | F_RELATIVE
        if "long" in t:
            flags |= F_LONG
        if (flags & F_DYNAMIC) and f.size == 2:
            flags |= F_STRING | F_ARRAY
        self.flags = flags
        self.type = t
        if flags & (F_ARRAY | F_DYNAMIC):
            if f.array_len:
                self.elementsize = f.size // f.array_len
            elif flags & F_DYNAMIC:
                base = t.replace("__data_loc", "").replace("__rel_loc", "").split()
                self.elementsize = _TYPE_SIZES.get(base[-1], 0) if base else 0
            elif flags & F_STRING:
                self.elementsize = 1
            elif flags & F_LONG:
                self.elementsize = long_size
            else:
                self.elementsize = 0
        else:
            self.elementsize = f.size
