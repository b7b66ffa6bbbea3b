"""Short-lived tracefs instances and the events they caught, read back from their raw pages.

Why: trace-cmd does several small tracing jobs around a session with ``tracefs_iterate_raw_events``
on a temporary instance: time-sync markers (``clock_synch-N``), finding the QEMU process behind a vsock
CID (``vsock_find_pid``), mapping guest VCPUs to host threads (``map_guest_pids``).  We do the same in
instances of our own (unique names, always removed), reading ``per_cpu/cpuN/trace_pipe_raw``
without blocking and decoding the pages with the reader's page decoder.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..loaders.formats import EventFormat, parse_format
from ..loaders.layout import layouts
from ..loaders.pages import decode_pages
from .tracefs import cpu_count_online, find_tracefs, remove_instance_dir
from .writer import kernel_long_size

_ids = itertools.count()


@dataclass(frozen=True)
class RawRecord:
    ts: int
    """Raw ring-buffer timestamp (trace-clock units of the instance)."""
    cpu: int
    data: bytes
    """The event's payload, starting with its common fields (4-byte rounded length, as kbuffer)."""

    def u(self, offset: int, size: int, signed: bool = False) -> int:
        return int.from_bytes(self.data[offset:offset + size], "little" if np.little_endian else "big",
                              signed=signed)

    @property
    def type(self) -> int:
        return self.u(0, 2)


def read_pages(fd: int, page_size: int) -> list[bytes]:
    """Every page available now on a non-blocking ``trace_pipe_raw`` (the partial last one zero-padded)."""
    pages = []
    while True:
        try:
            data = os.read(fd, page_size)
        except BlockingIOError:
            break
        if not data:
            break
        pages.append(data.ljust(page_size, b"\0"))
    return pages


def decode_records(pages: list[bytes], page_size: int, long_size: int, cpu: int = 0) -> list[RawRecord]:
    """The data records of one CPU's pages, in ring-buffer order."""
    if not pages:
        return []
    lay = layouts("<" if np.little_endian else ">", long_size)
    raw = b"".join(pages)
    dec = decode_pages(np.frombuffer(raw, np.uint8), page_size, lay)
    return [RawRecord(ts, cpu, raw[off:off + ln])
            for ts, off, ln in zip(dec.ts.tolist(), dec.offset.tolist(), dec.length.tolist(), strict=True)]


def instance_page_size(path: Path) -> int:
    size = os.sysconf("SC_PAGE_SIZE")
    sub = path / "buffer_subbuf_size_kb"
    with contextlib.suppress(OSError):
        txt = sub.read_text().strip()
        if txt.isdigit():
            size = int(txt) * 1024
    return size


class TempInstance:
    """A tracefs instance of ours for one small job; :meth:`close` removes it (also on errors).

    Raises OSError when it cannot be made (no tracefs, not root).
    """

    def __init__(self, purpose: str, tracefs: Path | None = None) -> None:
        self.tracefs = tracefs or find_tracefs()
        self.path = self.tracefs / "instances" / f"kshark-py-{purpose}-{os.getpid()}-{next(_ids)}-{os.urandom(3).hex()}"
        os.mkdir(self.path)
        self.page_size = instance_page_size(self.path)
        self.long_size = kernel_long_size((self.tracefs / "events/header_page").read_bytes())
        self._pipes: dict[int, int] = {}

    def write(self, rel: str, text: str) -> None:
        with open(self.path / rel, "w") as f:
            f.write(text)

    def event_format(self, system: str, name: str) -> EventFormat:
        return parse_format((self.tracefs / "events" / system / name / "format").read_text(), system)

    def open_pipes(self) -> None:
        for cpu in range(cpu_count_online()):
            if cpu not in self._pipes:
                with contextlib.suppress(OSError):
                    self._pipes[cpu] = os.open(self.path / "per_cpu" / f"cpu{cpu}" / "trace_pipe_raw",
                                               os.O_RDONLY | os.O_NONBLOCK)

    def records(self) -> list[RawRecord]:
        """Every event recorded so far (consumed), all CPUs, sorted by timestamp (stable per CPU)."""
        self.open_pipes()
        out: list[RawRecord] = []
        for cpu, fd in self._pipes.items():
            out += decode_records(read_pages(fd, self.page_size), self.page_size, self.long_size, cpu)
        out.sort(key=lambda r: r.ts)
        return out

    def close(self) -> None:
        for fd in self._pipes.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._pipes.clear()
        remove_instance_dir(self.path, wait=0.02)

    def __enter__(self) -> TempInstance:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
