"""Helpers to compare our report output with trace-cmd's saved reports, column by column."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

LINE_RE = re.compile(r"^(?P<prefix>.*?)(?P<comm>.{16})-(?P<pid>\d+)\s*\[(?P<cpu>\d{3})\]\s+(?P<ts>\d+\.\d+):"
                     r" (?P<event>\S+):\s?(?P<info>.*)$")


def read_reference(path: Path) -> list[str]:
    """A saved report's lines (gzip or plain), without the trailing empty line."""
    p = Path(path)
    if not p.exists():
        p = p.with_name(p.name + ".gz")
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rt", errors="replace") as f:
        lines = f.read().split("\n")
    while lines and lines[-1] == "":
        lines.pop()
    return lines


def columns(line: str) -> tuple | None:
    """(prefix, task, pid, cpu, ts, event) of an event line, or None for other lines."""
    m = LINE_RE.match(line)
    if not m:
        return None
    return (m["prefix"], m["comm"].strip(), int(m["pid"]), int(m["cpu"]), m["ts"], m["event"])


def merged_col(session, name):
    """A column over a session's merged view, built stream by stream without the code under test."""
    import numpy as np

    m = session.merged()
    out = np.zeros(len(m), np.int64)
    for st in session.streams:
        sel = m.stream == st.index
        out[sel] = st.buffer.events.column(name).to_numpy()[m.row[sel]]
    return out
