"""VM exits (issue 12, item 4): every ``kvm_exit`` of the host with the ``kvm_entry`` that closes it.

Work in progress: the signatures and schemas below are the agreed API.
"""

from __future__ import annotations

import pyarrow as pa

from ..session import Session

__all__ = ["VM_EXITS", "EXIT_STATS", "REASON_HISTOGRAM", "TOP_RIPS", "GUEST_ENTRIES",
           "vm_exits", "guest_entries", "exit_stats", "reason_histogram", "top_rips"]

VM_EXITS = pa.schema([
    ("guest", pa.string()), ("vcpu", pa.int32()), ("host_pid", pa.int32()), ("reason", pa.string()),
    ("exit_reason", pa.int64()), ("exit_ts", pa.int64()), ("entry_ts", pa.int64()), ("duration_ns", pa.int64()),
    ("guest_rip", pa.uint64()), ("rip_symbol", pa.string()), ("exit_row", pa.int64()),
])
GUEST_ENTRIES = pa.schema([
    ("guest", pa.string()), ("vcpu", pa.int32()), ("host_pid", pa.int32()), ("entry_ts", pa.int64()),
    ("exit_ts", pa.int64()), ("duration_ns", pa.int64()), ("reason", pa.string()), ("entry_row", pa.int64()),
])
EXIT_STATS = pa.schema([
    ("guest", pa.string()), ("vcpu", pa.int32()), ("host_pid", pa.int32()), ("reason", pa.string()),
    ("count", pa.int64()), ("total_ns", pa.int64()), ("p50_ns", pa.int64()), ("p99_ns", pa.int64()),
    ("max_ns", pa.int64()),
])
REASON_HISTOGRAM = pa.schema([("reason", pa.string()), ("count", pa.int64()), ("total_ns", pa.int64())])
TOP_RIPS = pa.schema([("guest_rip", pa.uint64()), ("rip_symbol", pa.string()), ("count", pa.int64()),
                      ("total_ns", pa.int64())])


def vm_exits(session: Session, t0: int | None = None, t1: int | None = None) -> pa.Table:
    """One row per host ``kvm_exit`` closed by a ``kvm_entry`` of the same thread (schema :data:`VM_EXITS`)."""
    raise NotImplementedError


def guest_entries(session: Session, t0: int | None = None, t1: int | None = None) -> pa.Table:
    """One row per host ``kvm_entry`` closed by a ``kvm_exit`` of the same thread (schema :data:`GUEST_ENTRIES`)."""
    raise NotImplementedError


def exit_stats(session: Session, t0: int | None = None, t1: int | None = None) -> pa.Table:
    """Per VCPU and reason: count, total, p50, p99, max of the exits' durations (schema :data:`EXIT_STATS`)."""
    raise NotImplementedError


def reason_histogram(exits: pa.Table) -> pa.Table:
    """Exits per reason of a :func:`vm_exits` table (schema :data:`REASON_HISTOGRAM`)."""
    raise NotImplementedError


def top_rips(exits: pa.Table, n: int = 20) -> pa.Table:
    """The ``n`` guest RIPs with the most exits (schema :data:`TOP_RIPS`)."""
    raise NotImplementedError
