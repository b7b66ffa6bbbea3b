"""Per-stream columns and their spreading over a session's merged view.

Filters, search and the task index compute one array per stream (indexed by the stream's own
rows) and need it per merged row; :func:`merged_gather` does that with one gather per stream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .session import MergedView, Stream


def stream_column(stream: Stream, name: str) -> np.ndarray:
    """A column of a stream's events table as numpy (zero-copy for the loader's single-chunk tables)."""
    return stream.buffer.events.column(name).to_numpy()


def merged_gather(merged: MergedView, per_stream: list[np.ndarray | None], fill: Any = True,
                  dtype: Any = bool) -> np.ndarray:
    """Spread per-stream arrays (indexed by stream row) over the merged view, one gather per stream.

    ``None`` for a stream means "``fill`` for all its rows".
    """
    if merged.identity and len(per_stream) == 1 and per_stream[0] is not None:
        return np.array(per_stream[0], dtype)  # one stream in its own order: a plain copy
    out = np.full(len(merged), fill, dtype)
    for si, arr in enumerate(per_stream):
        if arr is None:
            continue
        sel = merged.stream == si
        out[sel] = arr[merged.row[sel]]
    return out

