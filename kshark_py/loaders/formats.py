"""Event format files -> typed field layouts.

The kernel describes every event's binary payload in a text "format" file, and trace-cmd copies
those texts into the trace file (spec §3.2, §3.3, §10).  This module parses them into
:class:`EventFormat` objects (id, system, name, fields with offset/size/sign, print fmt) and keeps
them in an :class:`EventFormats` registry.  Nothing here touches event data: extraction lives in
``fields``, text rendering in ``printfmt``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from .errors import FormatParseError
from .text import display

_FIELD_RE = re.compile(
    r"^\s*field:(?P<decl>[^;]*);\s*offset:(?P<offset>\d+);\s*size:(?P<size>\d+);"
    r"(?:\s*signed:(?P<signed>-?\d+);)?"
)
_ARRAY_RE = re.compile(r"\[(?P<n>[^\]]*)\]\s*$")
MAX_FIELD_BYTES = 1 << 16
"""Largest field offset/size accepted in a format (records are at most a page)."""


@dataclass(frozen=True)
class Field:
    """One field of an event payload, as the format file declares it."""

    name: str
    type: str
    """The C type without the name or array brackets, e.g. ``unsigned long`` or ``char``."""
    offset: int
    size: int
    signed: bool
    array_len: int | None = None
    """Number of elements for ``x[N]``; 0 for a flexible ``x[]``; None for a scalar."""
    dynamic: str | None = None
    """``"data_loc"`` or ``"rel_loc"`` for variable-length fields, else None."""

    @property
    def is_array(self) -> bool:
        return self.array_len is not None

    @property
    def elem_size(self) -> int:
        """Size of one element: the field size, divided by the length for fixed arrays."""
        if self.dynamic:
            base = self.type.replace("__data_loc", "").replace("__rel_loc", "").strip()
            return _base_type_size(base)
        if self.array_len:
            return self.size // self.array_len
        if self.array_len == 0:
            return _base_type_size(self.type)
        return self.size

    @property
    def is_string(self) -> bool:
        """char arrays, ``__data_loc char[]`` and friends print and export as text."""
        base = self.type.replace("__data_loc", "").replace("__rel_loc", "").replace("const", "").strip()
        return (self.is_array or self.dynamic is not None) and base in ("char", "unsigned char", "u8",
                                                                          "__u8", "signed char")


def _base_type_size(ctype: str) -> int:
    t = ctype.replace("const", "").replace("unsigned", "").replace("signed", "").strip()
    if "*" in t:
        return 8
    return {
        "char": 1, "u8": 1, "__u8": 1, "s8": 1, "__s8": 1, "bool": 1,
        "short": 2, "u16": 2, "__u16": 2, "s16": 2, "__s16": 2,
        "int": 4, "u32": 4, "__u32": 4, "s32": 4, "__s32": 4, "": 4,
        "long long": 8, "u64": 8, "__u64": 8, "s64": 8, "__s64": 8,
    }.get(t, 8 if t == "long" else 4)


@dataclass
class EventFormat:
    """One event type: its id, where it lives (system/name), its fields and its print format."""

    id: int
    system: str
    name: str
    fields: list[Field]
    common_fields: list[Field]
    print_fmt: str
    """The text after ``print fmt:``: the quoted format and its comma-separated arguments."""
    _by_name: dict[str, Field] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_name = {f.name: f for f in (*self.common_fields, *self.fields)}

    def field(self, name: str) -> Field | None:
        return self._by_name.get(name)

    @property
    def full_name(self) -> str:
        return f"{self.system}:{self.name}"


def parse_field_decl(decl: str) -> tuple[str, str, int | None, str | None]:
    """Split a C declaration ``unsigned long caller[8]`` into (name, type, array_len, dynamic)."""
    decl = decl.strip()
    dynamic = None
    if decl.startswith("__data_loc"):
        dynamic = "data_loc"
    elif decl.startswith("__rel_loc"):
        dynamic = "rel_loc"
    array_len: int | None = None
    m = _ARRAY_RE.search(decl)
    if m:
        n = m.group("n").strip()
        array_len = int(n, 0) if n.isdigit() or n.startswith("0x") else 0
        decl = decl[: m.start()].rstrip()
    # the name is the last identifier; for __data_loc char[] comm, brackets precede the name
    m2 = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*$", decl)
    if not m2:
        raise ValueError(f"no field name in {decl!r}")
    name = m2.group(1)
    ctype = decl[: m2.start()].strip()
    if dynamic:
        ctype = ctype.replace("[]", "").strip()
        array_len = None
    return name, ctype, array_len, dynamic


def parse_format(text: str, system: str) -> EventFormat:
    """Parse one kernel ``format`` file's text (the system is not in the text; the file gives it).

    ``text`` is lossless (:func:`.text.decode`), so the print fmt is the kernel's, byte for byte (a
    byte outside printable ASCII in its quotes fails the parse, as in libtraceevent); the event name,
    a key everywhere, is made valid Unicode."""
    name = None
    event_id = None
    common: list[Field] = []
    own: list[Field] = []
    print_fmt = ""
    in_common = True
    seen_field = False
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("name:"):
            name = display(line[5:].strip())  # a key everywhere: valid Unicode (the text is lossless)
        elif line.startswith("ID:"):
            try:
                event_id = int(line[3:].strip())
            except ValueError as e:
                raise FormatParseError(f"bad ID line {line!r}", section=f"format of {system}") from e
        elif line.startswith("print fmt:"):
            # a print fmt may hold real newlines inside its quotes: it runs to the end of the text
            print_fmt = "\n".join([line[len("print fmt:"):], *lines[i + 1:]]).strip()
            break
        elif "field:" in line:
            m = _FIELD_RE.match(line)
            if not m:
                raise FormatParseError(f"bad field line {line.strip()!r}", section=f"format {system}:{name}")
            try:
                fname, ctype, alen, dyn = parse_field_decl(m.group("decl"))
            except ValueError as e:
                raise FormatParseError(str(e), section=f"format {system}:{name}") from e
            signed = m.group("signed") == "1"
            f_off, f_size = int(m.group("offset")), int(m.group("size"))
            # a record never exceeds a ring-buffer page; bounds keep corrupt text from driving allocations
            if f_off > MAX_FIELD_BYTES or f_size > MAX_FIELD_BYTES or (alen and alen > f_size):
                raise FormatParseError(f"implausible field {fname!r}: offset {f_off}, size {f_size}"
                                       + (f", {alen} elements" if alen else ""), section=f"format {system}:{name}")
            f = Field(fname, ctype, f_off, f_size, signed, alen, dyn)
            (common if in_common else own).append(f)
            seen_field = True
        elif not line.strip() and seen_field:
            in_common = False
    if name is None or event_id is None:
        raise FormatParseError("format text has no name or ID", section=f"event formats of {system}")
    # Events with no blank line between common and own fields: split by the common_ prefix.
    if in_common and not own:
        own = [f for f in common if not f.name.startswith("common_")]
        common = [f for f in common if f.name.startswith("common_")]
    return EventFormat(event_id, system, name, own, common, print_fmt)


# A format text as the kernel writes it, whose parse cannot fail: "name:", "ID:", "format:", then
# only field lines (a declaration ending in its name, offset and size of at most 4 digits, so within
# MAX_FIELD_BYTES, a fixed array "[N]" in decimal without leading zeros, its N checked against its
# size by _ARRAY_SIZES) and blank lines, up to the line before "print fmt:".  Printable ASCII only,
# so str.splitlines() splits exactly at "\n".
# Possessive repetition and a declaration whose prefix ends in a non-identifier character: every
# line matches in one way only, so a text that fails is rejected without backtracking.
_CANONICAL = re.compile(
    r"name:(?P<name>[ -~]*)\nID: *(?P<id>[0-9]{1,9})\nformat:\n"
    r"(?:\tfield:(?:[ -:<-~]*[ -/:<-@\[-^`{-~])?[A-Za-z_][A-Za-z0-9_]*(?:\[(?:0|[1-9][0-9]{0,3})\])?;"
    r"\toffset:[0-9]{1,4};\tsize:[0-9]{1,4};(?:\tsigned:-?[0-9]{1,4};)?\n|\n)*+")
_ARRAY_SIZES = re.compile(r"\[([0-9]+)\];\toffset:[0-9]+;\tsize:([0-9]+);")
"""In a canonical text: each fixed array's length and byte size (the parse refuses more elements than bytes)."""


@dataclass(frozen=True)
class PendingFormat:
    """A format text that :func:`index_format` proved parses: its id, system and name are known,
    its fields are parsed on first use (:meth:`parse`, equal to :func:`parse_format` of the text)."""

    id: int
    system: str
    name: str
    text: str

    def parse(self) -> EventFormat:
        return parse_format(self.text, self.system)


def index_format(text: str, system: str) -> EventFormat | PendingFormat:
    """``parse_format(text, system)``, its fields left for later when the text is canonical.

    Why: a trace.dat carries every format of the kernel (2,300 on a recent one; parsing them all is
    0.1 s) but a trace uses a few dozen.  A canonical text (:data:`_CANONICAL`) is checked by one
    regex match and parsed only when an :class:`EventFormats` lookup reaches it; any other text is
    parsed now, so a text that does not parse raises here, as before, in file order."""
    i = text.find("\nprint fmt:")
    m = _CANONICAL.fullmatch(text, 0, i + 1) if i >= 0 else None
    if m is None or (text.find("[", 0, i) >= 0
                     and any(int(n) > int(size) for n, size in _ARRAY_SIZES.findall(text, 0, i))):
        return parse_format(text, system)
    return PendingFormat(int(m["id"]), system, display(m["name"].strip()), text)


class _Slots(Mapping):
    """A read-only view key -> format over :class:`EventFormats`' slots; parses on lookup only."""

    def __init__(self, owner: EventFormats, index: dict) -> None:
        self._owner = owner
        self._index = index

    def __getitem__(self, key) -> EventFormat:
        return self._owner._at(self._index[key])

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __iter__(self) -> Iterator:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


class EventFormats:
    """All event formats of one trace file, by id and by (system, name).

    Formats given as :class:`PendingFormat` are parsed the first time a lookup returns them
    (``get``, ``find``, ``by_id[...]``, iteration); keys, ``len`` and ``in`` parse nothing.  A later
    format with the same id (or system and name) replaces an earlier one, as before."""

    def __init__(self, events: Iterable[EventFormat | PendingFormat]) -> None:
        self._slots: list[EventFormat | PendingFormat] = list(events)
        ids: dict[int, int] = {}
        names: dict[tuple[str, str], int] = {}
        for k, ev in enumerate(self._slots):
            ids[ev.id] = k
            names[(ev.system, ev.name)] = k
        self._ids = ids
        self.by_id: Mapping[int, EventFormat] = _Slots(self, ids)
        self.by_name: Mapping[tuple[str, str], EventFormat] = _Slots(self, names)

    def _at(self, k: int) -> EventFormat:
        ev = self._slots[k]
        if isinstance(ev, PendingFormat):  # two threads may both parse it: equal results, either kept
            ev = self._slots[k] = ev.parse()
        return ev

    def __len__(self) -> int:
        return len(self.by_id)

    def __iter__(self) -> Iterator[EventFormat]:
        return iter(self.by_id.values())

    def get(self, event_id: int) -> EventFormat | None:
        return self.by_id.get(event_id)

    def names(self, event_id: int) -> tuple[str, str] | None:
        """``(system, name)`` of an event id, without parsing its fields (naming every event of a
        big trace needs a few hundred formats' names, not their fields)."""
        k = self._ids.get(event_id)
        if k is None:
            return None
        ev = self._slots[k]
        return ev.system, ev.name

    def find(self, name: str, system: str | None = None) -> EventFormat | None:
        """Look an event up by name (``sched_switch``) or ``system:name``."""
        if system is None and ":" in name:
            system, name = name.split(":", 1)
        if system is not None:
            return self.by_name.get((system, name))
        for key in self.by_name:
            if key[1] == name:
                return self.by_name[key]
        return None


@dataclass(frozen=True)
class HeaderPage:
    """What ``events/header_page`` says about ring-buffer pages."""

    long_size: int
    """Kernel long size = size of ``commit`` (spec §3.1)."""
    data_offset: int
    """Where events start in a page (offset of ``data``)."""
    data_size: int


def parse_header_page(text: str, default_long: int) -> HeaderPage:
    """Parse the header_page text; an empty text (old kernels) falls back to the file's long size."""
    sizes: dict[str, tuple[int, int]] = {}
    for line in text.splitlines():
        m = _FIELD_RE.match(line.replace("field: ", "field:"))
        if m:
            try:
                fname = parse_field_decl(m.group("decl"))[0]
            except ValueError as e:
                raise FormatParseError(f"header_page: {e}", section="headers") from e
            sizes[fname] = (int(m.group("offset")), int(m.group("size")))
    if "commit" not in sizes or "data" not in sizes:
        return HeaderPage(default_long, 8 + default_long, 0)
    long_size = sizes["commit"][1]
    return HeaderPage(long_size, sizes["data"][0], sizes["data"][1])
