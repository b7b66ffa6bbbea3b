"""The text blocks trace-cmd copies from the recording machine: kallsyms, printk formats, cmdlines.

Each is parsed once, on first use, into lookup structures (sorted numpy arrays, dicts) so that
rendering a row never scans text.  Semantics follow libtraceevent's ``tep_parse_kallsyms()``,
``tep_register_print_string()`` and trace-cmd's cmdline parsing.

Names, formats and comms are lossless text (:func:`.text.decode`): a comm is whatever bytes a
process chose, and trace-cmd prints all of them byte for byte.
"""

from __future__ import annotations

import bisect

import numpy as np

from .tasks import IDLE_COMM, UNKNOWN_COMM
from .text import decode

_HEX = np.full(256, 255, np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i
_SPACE = np.zeros(256, bool)
_SPACE[list(b" \t\n\r\f\v")] = True


class Kallsyms:
    """Kernel symbol table: address -> (function, module).

    Like libtraceevent, absolute symbols ('A'/'a') and ARM's ``$`` mapping symbols are skipped,
    and an address resolves to the closest symbol at or below it.

    A kernel has a couple of hundred thousand symbols; they are parsed with whole-array operations
    and kept as offsets into the text (16 bytes a symbol), a name becoming a ``str`` only when it
    is asked for.  A line is a symbol when it reads ``ADDR KIND NAME`` with 1-16 hex digits, a
    one-character kind and a name up to the next white space, optionally followed by
    ``\t[MODULE]``.
    """

    def __init__(self, text: bytes) -> None:
        self.text = bytes(text)
        buf = np.frombuffer(self.text, np.uint8)
        z = np.zeros(0, np.int64)
        self.addrs = np.zeros(0, np.uint64)
        self._name = self._name_len = self._mod = self._mod_len = z
        if not len(buf):
            return
        nl = np.flatnonzero(buf == 10)
        starts = np.concatenate(([0], nl + 1))
        n = len(buf)
        # the address: hex digits from the line start up to the first space
        spaces = np.flatnonzero(buf == 32)
        k = np.searchsorted(spaces, starts)
        sp = np.where(k < len(spaces), spaces[np.minimum(k, max(len(spaces) - 1, 0))] if len(spaces) else n, n)
        alen = sp - starts
        ok = (alen >= 1) & (alen <= 16)
        addrs = np.zeros(len(starts), np.uint64)
        shifts = np.uint64(4) * np.arange(15, -1, -1, dtype=np.uint64)
        for a in range(0, len(starts), 1 << 14):  # (lines x 16) digit matrices, a slice of lines at a time
            cols = sp[a:a + (1 << 14), None] - 16 + np.arange(16)
            inside = cols >= starts[a:a + (1 << 14), None]
            digit = np.where(inside, _HEX[buf[np.clip(cols, 0, n - 1)]], 0)
            ok[a:a + (1 << 14)] &= ~(digit == 255).any(axis=1)
            addrs[a:a + (1 << 14)] = np.bitwise_or.reduce(digit.astype(np.uint64) << shifts, axis=1)
        # KIND is one non-space character followed by a space, then NAME is non-space
        at = lambda off: buf[np.minimum(sp + off, n - 1)]  # noqa: E731
        ok &= (sp + 2 < n) & ~_SPACE[at(1)] & (at(2) == 32) & (sp + 3 < n) & ~_SPACE[at(3)]
        ws = np.flatnonzero(_SPACE[buf])
        name0 = sp + 3
        j = np.searchsorted(ws, name0)
        name1 = np.where(j < len(ws), ws[np.minimum(j, len(ws) - 1)], n)
        kind = at(1)
        ok &= (kind != ord("A")) & (kind != ord("a")) & (at(3) != ord("$"))
        # optional "\t[MODULE]": the longest non-space run after "[" that ends in "]"
        has_mod = (name1 + 2 < n) & (buf[np.minimum(name1, n - 1)] == 9) & (buf[np.minimum(name1 + 1, n - 1)] == 91)
        m0 = name1 + 2
        jm = np.searchsorted(ws, m0)
        m_run_end = np.where(jm < len(ws), ws[np.minimum(jm, len(ws) - 1)], n)
        close = np.flatnonzero(buf == 93)
        jc = np.searchsorted(close, m_run_end) - 1  # last "]" before the run's end
        m1 = np.where(jc >= 0, close[np.maximum(jc, 0)] if len(close) else -1, -1)
        has_mod &= m1 > m0  # MODULE is at least one character
        sel = np.flatnonzero(ok)
        addrs = addrs[sel]
        order = np.argsort(addrs, kind="stable")
        sel = sel[order]
        self.addrs = addrs[order]
        self._name = name0[sel]
        self._name_len = (name1 - name0)[sel]
        self._mod = np.where(has_mod, m0, -1)[sel]
        self._mod_len = np.where(has_mod, m1 - m0, 0)[sel]

    def index(self) -> dict[str, np.ndarray]:
        """The parsed table (what :meth:`from_index` takes back, with the same text): the load cache keeps it."""
        return {"addr": self.addrs, "name": self._name, "name_len": self._name_len, "mod": self._mod,
                "mod_len": self._mod_len}

    @classmethod
    def from_index(cls, text: bytes, index: dict[str, np.ndarray]) -> Kallsyms:
        """The table :meth:`index` gave for ``text``, without parsing it again (ValueError when the
        arrays cannot be that: lengths differ, or a name or module lies outside the text)."""
        k = cls(b"")
        k.text = bytes(text)
        cols = [np.asarray(index[c]) for c in ("addr", "name", "name_len", "mod", "mod_len")]
        if len({len(c) for c in cols}) != 1:
            raise ValueError("kallsyms index columns differ in length")
        addrs, name, name_len, mod, mod_len = cols
        n = len(k.text)
        if len(name) and (name.min() < 0 or name_len.min() < 0 or (name + name_len).max() > n
                          or (mod + mod_len).max() > n or mod.min() < -1):
            raise ValueError("kallsyms index points outside the text")
        k.addrs, k._name, k._name_len, k._mod, k._mod_len = addrs.astype(np.uint64), name, name_len, mod, mod_len
        return k

    def __len__(self) -> int:
        return len(self.addrs)

    def name(self, i: int) -> str:
        """Name of symbol ``i`` (in address order)."""
        a = int(self._name[i])
        return decode(self.text[a:a + int(self._name_len[i])])

    def module(self, i: int) -> str | None:
        a = int(self._mod[i])
        return None if a < 0 else decode(self.text[a:a + int(self._mod_len[i])])

    @property
    def names(self) -> list[str]:
        """Every name, in address order (builds the strings: for tests and rare whole-table uses)."""
        return [self.name(i) for i in range(len(self))]

    def resolve(self, addr: int) -> tuple[str, int, int, str | None] | None:
        """(function name, offset into it, function start, module) for ``addr``, or None.

        An address past the last symbol does not resolve (libtraceevent's bsearch needs a next
        entry to bracket it), nor does one below the first.
        """
        n = len(self.addrs)
        if n == 0:
            return None
        i = int(np.searchsorted(self.addrs, np.uint64(addr & 0xFFFFFFFFFFFFFFFF), side="right")) - 1
        if i < 0:
            return None
        start = int(self.addrs[i])
        if i == n - 1 and addr != start:
            return None
        return self.name(i), addr - start, start, self.module(i)


def parse_printk(text: bytes) -> dict[int, str]:
    """printk_formats lines ``0xADDR : "fmt"`` -> {addr: fmt}; the quotes are stripped."""
    out: dict[int, str] = {}
    for line in decode(text).split("\n"):
        if not line:
            continue
        addr_str, sep, fmt = line.partition(":")
        if not sep:
            break
        try:
            addr = int(addr_str.strip(), 16)
        except ValueError:
            continue
        fmt = fmt[1:] if fmt.startswith(" ") else fmt
        if len(fmt) >= 2 and fmt.startswith('"') and fmt.endswith('"'):
            fmt = fmt[1:-1]
        out[addr] = fmt
    return out


def saved_cmdline_entries(text: bytes) -> list[tuple[int, str]]:
    """saved_cmdlines ``<pid> <comm>`` lines in file order, up to the first line
    ``tep_parse_saved_cmdlines()`` cannot parse (where it stops)."""
    out: list[tuple[int, str]] = []
    for line in decode(text).split("\n"):
        if not line:
            continue  # strtok_r skips empty tokens
        pid_str, sep, comm = line.lstrip().partition(" ")
        comm = comm.lstrip(" ")
        try:
            pid = int(pid_str)
        except ValueError:
            break
        if not sep or not comm:
            break
        out.append((pid, comm))
    return out


def glibc_bsearch(keys: list[int], key: int) -> int | None:
    """Index glibc's ``bsearch()`` lands on for ``key`` in the sorted ``keys`` (None: absent).
    With duplicate keys, which one it finds depends on the probing; this is that probing."""
    lo, hi = 0, len(keys)
    while lo < hi:
        mid = (lo + hi) // 2
        if key < keys[mid]:
            hi = mid
        elif key > keys[mid]:
            lo = mid + 1
        else:
            return mid
    return None


class CmdlineTable:
    """libtraceevent's pid -> comm table (``event-parse.c``), as registrations change it.

    Comms registered before the table's first lookup (the saved cmdlines, and during a report
    what the sched plugin registers while printing rows of pid 0, which print ``<idle>`` without a
    lookup) go into a list by prepending, duplicates and all; the first lookup sorts that list
    into an array (glibc's stable qsort).  Later registrations insert a pid only if ``bsearch``
    does not find it.  A lookup is a ``bsearch``, so where a pid has duplicates, the entry it
    lands on can change as other pids are inserted: trace-cmd then prints a task under
    different names.
    """

    def __init__(self, registered: list[tuple[int, str]]) -> None:
        """``registered``: the list phase's (pid, comm) in registration order."""
        arr = sorted(registered[::-1], key=lambda e: e[0])  # pid 0 entries too: they shift the probes
        self.keys = [p for p, _ in arr]
        self.comms = [c for _, c in arr]
        self.present = set(self.keys)

    def insert(self, pid: int, comm: str) -> bool:
        """A registration once the array exists (``add_new_comm()``); True if it added the pid."""
        if pid == 0 or pid in self.present:
            return False
        i = bisect.bisect_left(self.keys, pid)  # the slot add_new_comm() finds for a new pid
        self.keys.insert(i, pid)
        self.comms.insert(i, comm)
        self.present.add(pid)
        return True

    def find(self, pid: int) -> str | None:
        i = glibc_bsearch(self.keys, pid)
        return None if i is None else self.comms[i]

    def lookup(self, pid: int) -> str:
        """What ``tep_data_comm_from_pid()`` returns."""
        if pid == 0:
            return IDLE_COMM
        c = self.find(pid)
        return UNKNOWN_COMM if c is None else c


def parse_cmdlines(text: bytes) -> dict[int, str]:
    """saved_cmdlines ``<pid> <comm>`` lines -> {pid: comm}, resolved as libtraceevent resolves them.

    ``tep_parse_saved_cmdlines()`` stops at the first line it cannot parse, prepends every entry to a
    list (duplicates included), turns the list into an array sorted by pid (glibc's stable qsort), and
    looks pids up with ``bsearch``.  When the kernel's table names a pid twice, which entry a lookup
    lands on depends on that order and on bsearch's probing; both are reproduced here.  (A report
    can change that array as it goes: see :class:`CmdlineTable`.)
    """
    entries = saved_cmdline_entries(text)
    pids = {p for p, _ in entries}
    if len(pids) == len(entries):  # no pid twice (the usual table): each lookup lands on its own entry
        named = dict(entries)
        return {pid: named[pid] for pid in pids}
    table = CmdlineTable(entries)
    return {pid: table.find(pid) for pid in pids}
