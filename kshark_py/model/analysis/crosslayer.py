"""Cross-layer latency (issue 12, item 6): a guest task's wall time split by guest and host causes.

Work in progress: the signatures and schemas below are the agreed API.
"""

from __future__ import annotations

import pyarrow as pa

from ..session import Session

__all__ = ["CROSS_LAYER", "CROSS_LAYER_INTERVALS", "cross_layer", "cross_layer_intervals", "explain_wakeup"]

CROSS_LAYER = pa.schema([("state", pa.string()), ("detail", pa.string()), ("total_ns", pa.int64())])
CROSS_LAYER_INTERVALS = pa.schema([("state", pa.string()), ("detail", pa.string()), ("start", pa.int64()),
                                   ("end", pa.int64())])


def cross_layer_intervals(session: Session, guest: str, pid: int, t0: int, t1: int) -> pa.Table:
    """The pieces of guest task ``pid``'s wall time over [t0, t1] (schema :data:`CROSS_LAYER_INTERVALS`)."""
    raise NotImplementedError


def cross_layer(session: Session, guest: str, pid: int, t0: int, t1: int) -> pa.Table:
    """:func:`cross_layer_intervals` summed per (state, detail) (schema :data:`CROSS_LAYER`)."""
    raise NotImplementedError


def explain_wakeup(session: Session, stream: int, waking_row: int) -> pa.Table:
    """:func:`cross_layer` of one wakeup: from the waking record to the switch that runs the task."""
    raise NotImplementedError
