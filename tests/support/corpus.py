"""Where the real trace corpus lives: ../shared/traces beside the repo (tests reach it via the ``traces`` fixture)."""

from __future__ import annotations

from pathlib import Path

TRACES = Path(__file__).resolve().parents[3] / "shared" / "traces"
TSYNC = TRACES / "vm-tsync"  # host + guest with PTP time sync and the QMP VCPU map
