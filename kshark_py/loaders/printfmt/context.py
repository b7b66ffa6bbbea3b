"""What rendering needs besides the event formats: byte order, kernel long size, symbol tables."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..metadata import Kallsyms

__all__ = ["RenderContext"]


@dataclass
class RenderContext:
    """What rendering needs besides the formats: byte order, kernel long size, symbol tables.

    ``guest_func`` is optional: in a merged host+guest report trace-cmd resolves the guest RIP of
    kvm events (``kvm_exit``/``kvm_entry``) with the guest's kallsyms; pass
    ``(host_pid, rip) -> (name, start) | None`` to get the same output.
    """

    endian: str
    long_size: int
    kallsyms: Kallsyms | None
    printk: dict[int, str]
    comm_of: Callable[[int], str]
    guest_func: Callable[[int, int], tuple[str, int] | None] | None = None
    time_text: Callable[[int], str] | None = None
    """How the report prints a timestamp (TEP_PRINT_TIME in trace-cmd's tep_func_repeat_format):
    the function plugin's ``func_repeats`` prints its ``last_ts`` so.  None: ``%6.1000d``, the
    plugin's own default (seconds and microseconds)."""
