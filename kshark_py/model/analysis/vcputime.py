"""Where did the VCPU's time go (issue 12, item 5).

Work in progress: the signatures and schemas below are the agreed API.
"""

from __future__ import annotations

import pyarrow as pa

from ..session import Session

__all__ = ["VCPU_INTERVALS", "VCPU_TIME", "vcpu_intervals", "vcpu_time"]

VCPU_INTERVALS = pa.schema([
    ("guest", pa.string()), ("vcpu", pa.int32()), ("host_pid", pa.int32()), ("state", pa.string()),
    ("reason", pa.string()), ("start", pa.int64()), ("end", pa.int64()), ("by_pid", pa.int32()),
    ("by_comm", pa.string()),
])
VCPU_TIME = pa.schema([("guest", pa.string()), ("vcpu", pa.int32()), ("host_pid", pa.int32()),
                       ("state", pa.string()), ("total_ns", pa.int64())])


def vcpu_intervals(session: Session, t0: int | None = None, t1: int | None = None) -> pa.Table:
    """Every VCPU's state intervals over [t0, t1] (schema :data:`VCPU_INTERVALS`)."""
    raise NotImplementedError


def vcpu_time(session: Session, t0: int | None = None, t1: int | None = None) -> pa.Table:
    """Nanoseconds per VCPU and state over [t0, t1] (schema :data:`VCPU_TIME`)."""
    raise NotImplementedError
