"""What a session's files lost (cut or damaged files), per stream: the lines every front end shows.

The library records each loss as a :class:`~kshark_py.loaders.errors.DataLoss` on its file; a
session knows which stream each buffer became, so the loss is named by that stream (``host``, a
guest's name, ``host:irqbuf``).  The app's yellow bar and the CLI print the same lines.
"""

from __future__ import annotations

import os

from ..loaders.errors import DataLoss
from .session import Session

__all__ = ["session_losses", "loss_text"]


def session_losses(session: Session) -> list[tuple[str, DataLoss]]:
    """(stream name, loss) for every loss of the session's files, in stream order.

    A loss of a buffer that is a stream goes under that stream's name (``host``, the guest's name,
    ``host:irqbuf``); a loss of the whole file (a v7 buffer index cut off with nothing found) under
    its file's first stream, or the file name when no stream came from it.
    """
    out: list[tuple[str, DataLoss]] = []
    seen: set[int] = set()
    for st in session.streams:
        if id(st.trace) in seen:
            continue
        seen.add(id(st.trace))
        names = {s.buffer.name: s.name for s in session.streams if s.trace is st.trace}
        for x in st.trace.decode_all():  # decoded already by the load: this only collects
            out.append((names.get(x.buffer, names.get("", st.name)), x))
    for tf in session.files:
        if id(tf) not in seen:
            out.extend((os.path.basename(tf.path), x) for x in tf.decode_all())
    return out


def loss_text(name: str, x: DataLoss) -> str:
    """One line of the bar: ``host (trace.dat) cpu 1: 134 pages (548,864 bytes) lost: ...``."""
    return f"{name} ({os.path.basename(x.path)}) {x.where()}: {x.counts()} lost: {x.what}"
