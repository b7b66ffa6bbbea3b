"""The real libtraceevent 1.7.1 with Debian's plugins, in this process: an oracle for the plugin tests.

trace-cmd 3.1.6 prints an event's info text with ``tep_print_event(tep, s, record, "%s", "INFO")``
after ``tep_load_plugins()``; this module makes the same calls through ctypes on the installed
``libtraceevent.so.1`` so that events this kernel cannot produce (scsi, xen, cfg80211, mac80211,
the function tracer) can be compared with what trace-cmd would print for them.  The library is
loaded RTLD_GLOBAL because the plugins are not linked against it: their ``tep_*`` symbols resolve
in the global namespace, as they do inside trace-cmd.

Layouts (``struct tep_record``, ``struct trace_seq``) are those of libtraceevent 1.7.1's headers.

Run it as a script in its own process (:func:`main`, what tests/test_plugins.py does): glibc's
printf changes once numpy is loaded in a process (``%Lu`` then prints an int, where trace-cmd
prints all 64 bits), and the plugins keep static state (the function plugin's call stacks, the kvm
plugin's disassembly buffer) that must start empty, as in a fresh ``trace-cmd report``.  A C
helper that crashes on a record takes only that process down.
"""

from __future__ import annotations

import ctypes
import json
import sys

LIB = "libtraceevent.so.1"


class _TraceSeq(ctypes.Structure):
    _fields_ = [("buffer", ctypes.c_void_p), ("buffer_size", ctypes.c_uint), ("len", ctypes.c_uint),
                ("readpos", ctypes.c_uint), ("state", ctypes.c_int)]


class _Record(ctypes.Structure):
    _fields_ = [("ts", ctypes.c_ulonglong), ("offset", ctypes.c_ulonglong), ("missed_events", ctypes.c_longlong),
                ("record_size", ctypes.c_int), ("size", ctypes.c_int), ("data", ctypes.c_void_p),
                ("cpu", ctypes.c_int), ("ref_count", ctypes.c_int), ("locked", ctypes.c_int),
                ("priv", ctypes.c_void_p), ("spare", ctypes.c_char * 64)]


def load() -> ctypes.CDLL:
    """The library with argument types declared (OSError when it is not installed)."""
    lib = ctypes.CDLL(LIB, mode=ctypes.RTLD_GLOBAL)
    vp = ctypes.c_void_p
    lib.tep_alloc.restype = vp
    lib.tep_load_plugins.argtypes = [vp]
    lib.tep_load_plugins.restype = vp
    for f in ("tep_set_long_size", "tep_set_file_bigendian", "tep_set_local_bigendian"):
        getattr(lib, f).argtypes = [vp, ctypes.c_int]
    lib.tep_parse_event.argtypes = [vp, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    lib.tep_register_function.argtypes = [vp, ctypes.c_char_p, ctypes.c_ulonglong, ctypes.c_char_p]
    lib.trace_seq_init.argtypes = [ctypes.POINTER(_TraceSeq)]
    lib.trace_seq_destroy.argtypes = [ctypes.POINTER(_TraceSeq)]
    return lib


class Libtraceevent:
    """One tep handle for a file of 8-byte longs (little endian unless ``big``), on this little-endian
    host, with every installed plugin loaded."""

    def __init__(self, big: bool = False) -> None:
        self.lib = load()
        self.tep = self.lib.tep_alloc()
        self.lib.tep_set_long_size(self.tep, 8)
        self.lib.tep_set_file_bigendian(self.tep, 1 if big else 0)
        self.lib.tep_set_local_bigendian(self.tep, 0)
        if not self.lib.tep_load_plugins(self.tep):
            raise OSError("libtraceevent loaded no plugins")

    def parse(self, fmt_text: str, system: str) -> None:
        """tep_parse_event of one events/<system>/<name>/format text."""
        b = fmt_text.encode()
        rc = self.lib.tep_parse_event(self.tep, b, len(b), system.encode())
        if rc != 0:
            raise ValueError(f"tep_parse_event: {rc}")

    def function(self, name: str, addr: int) -> None:
        """A kallsyms function (tep_register_function)."""
        self.lib.tep_register_function(self.tep, name.encode(), addr, None)

    def info(self, payload: bytes, cpu: int = 0, ts: int = 0) -> str:
        """What trace-cmd prints after the event name (its last newline dropped, cut at a NUL).

        The record is followed by 256 zero bytes: C helpers that read past a record's end (the SCSI
        CDB parser on a short CDB, for instance) see zeros, as our renderer does.
        """
        buf = ctypes.create_string_buffer(bytes(payload), len(payload) + 256)
        rec = _Record()
        rec.size = rec.record_size = len(payload)
        rec.data = ctypes.cast(buf, ctypes.c_void_p)
        rec.cpu = cpu
        rec.ts = ts
        s = _TraceSeq()
        self.lib.trace_seq_init(ctypes.byref(s))
        try:
            self.lib.tep_print_event(ctypes.c_void_p(self.tep), ctypes.byref(s), ctypes.byref(rec),
                                     b"%s", b"INFO")
            text = ctypes.string_at(s.buffer, s.len)
        finally:
            self.lib.trace_seq_destroy(ctypes.byref(s))
        if text.endswith(b"\n"):  # trace-cmd drops the seq's last newline, then prints up to a NUL
            text = text[:-1]
        nul = text.find(b"\0")
        if nul >= 0:
            text = text[:nul]
        return text.decode("utf-8", "surrogateescape")


def main() -> int:
    """stdin: {"big", "formats": [[system, text]], "functions": [[name, addr]], "records":
    [[hex payload, cpu, ts]]}; stdout: the info text of each record, in order, as a JSON list."""
    req = json.load(sys.stdin)
    tep = Libtraceevent(bool(req.get("big")))
    for system, text in req.get("formats", []):
        tep.parse(text, system)
    for name, addr in req.get("functions", []):
        tep.function(name, addr)
    out = [tep.info(bytes.fromhex(p), cpu, ts) for p, cpu, ts in req.get("records", [])]
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
