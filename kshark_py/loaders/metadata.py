"""The text blocks trace-cmd copies from the recording machine: kallsyms, printk formats, cmdlines.

Each is parsed once, on first use, into lookup structures (sorted numpy arrays, dicts) so that
rendering a row never scans text.  Semantics follow libtraceevent's ``tep_parse_kallsyms()``,
``tep_register_print_string()`` and trace-cmd's cmdline parsing.
"""

from __future__ import annotations

import re

import numpy as np

_KALLSYMS_RE = re.compile(rb"^([0-9A-Fa-f]{1,16}) (\S) (\S+)(?:\t\[(\S+)\])?", re.MULTILINE)


class Kallsyms:
    """Kernel symbol table: address -> (function, module).

    Like libtraceevent, absolute symbols ('A'/'a') and ARM's ``$`` mapping symbols are skipped,
    and an address resolves to the closest symbol at or below it.
    """

    def __init__(self, text: bytes) -> None:
        addrs: list[int] = []
        names: list[str] = []
        mods: list[str | None] = []
        for m in _KALLSYMS_RE.finditer(text):
            kind = m.group(2)
            name = m.group(3)
            if kind in (b"A", b"a") or name.startswith(b"$"):
                continue
            addrs.append(int(m.group(1), 16))
            names.append(name.decode("utf-8", "replace"))
            mod = m.group(4)
            mods.append(mod.decode("utf-8", "replace") if mod else None)
        addr_arr = np.array(addrs, dtype=np.uint64)
        order = np.argsort(addr_arr, kind="stable")
        self.addrs = addr_arr[order]
        self.names = [names[i] for i in order]
        self.mods = [mods[i] for i in order]

    def __len__(self) -> int:
        return len(self.names)

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
        return self.names[i], addr - start, start, self.mods[i]


def parse_printk(text: bytes) -> dict[int, str]:
    """printk_formats lines ``0xADDR : "fmt"`` -> {addr: fmt}; the quotes are stripped."""
    out: dict[int, str] = {}
    for line in text.decode("utf-8", "replace").split("\n"):
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


def parse_cmdlines(text: bytes) -> dict[int, str]:
    """saved_cmdlines ``<pid> <comm>`` lines -> {pid: comm}, resolved as libtraceevent resolves them.

    ``tep_parse_saved_cmdlines()`` stops at the first line it cannot parse, prepends every entry to a
    list (duplicates included), turns the list into an array sorted by pid (glibc's stable qsort), and
    looks pids up with ``bsearch``.  When the kernel's table names a pid twice, which entry a lookup
    lands on depends on that order and on bsearch's probing; both are reproduced here.
    """
    pids: list[int] = []
    comms: list[str] = []
    for line in text.decode("utf-8", "replace").split("\n"):
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
        pids.append(pid)
        comms.append(comm)
    # the list is built by prepending: reverse order, then a stable sort by pid
    order = sorted(range(len(pids) - 1, -1, -1), key=lambda i: pids[i])
    keys = [pids[i] for i in order]
    out: dict[int, str] = {}
    for pid in set(pids):
        lo, hi = 0, len(keys)
        while lo < hi:  # glibc bsearch
            mid = (lo + hi) // 2
            if pid < keys[mid]:
                hi = mid
            elif pid > keys[mid]:
                lo = mid + 1
            else:
                out[pid] = comms[order[mid]]
                break
    return out
