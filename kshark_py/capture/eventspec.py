"""Event specs: trace-cmd's ``-e SYSTEM[:EVENT]`` / ``-e all`` with ``-f FILTER``, resolved against
tracefs's ``events/`` folder (an unknown name is a :class:`~.tracefs.RecordError`, before recording)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .tracefs import RecordError


@dataclass(frozen=True)
class EventSpec:
    """``-e SYSTEM``, ``-e SYSTEM:EVENT``, ``-e EVENT`` or ``-e all``, with an optional filter (``-f``)."""

    system: str | None
    event: str | None
    filter: str | None = None

    @classmethod
    def parse(cls, text: str, filt: str | None = None) -> EventSpec:
        if text == "all":
            return cls(None, None, filt)
        if ":" in text:
            s, e = text.split(":", 1)
            return cls(s or None, None if e in ("", "*") else e, filt)
        if "/" in text:
            s, e = text.split("/", 1)
            return cls(s, e or None, filt)
        return cls(None, text, filt) if text else cls(None, None, filt)

    def __str__(self) -> str:
        return f"{self.system or '*'}:{self.event or '*'}"


def resolve_events(events_dir: Path, specs: Sequence[EventSpec]) -> list[tuple[str, str, str | None]]:
    """(system, event, filter) for every event the specs name; unknown names raise RecordError."""
    out: dict[tuple[str, str], str | None] = {}
    systems = sorted(p.name for p in events_dir.iterdir() if p.is_dir())
    for spec in specs:
        found = False
        if spec.system is None and spec.event is not None and (events_dir / spec.event).is_dir():
            spec = EventSpec(spec.event, None, spec.filter)  # "-e sched" names a system
        for s in systems:
            if spec.system is not None and s != spec.system:
                continue
            if s == "ftrace" and spec.system is None:
                continue
            sdir = events_dir / s
            for e in sorted(p.name for p in sdir.iterdir() if p.is_dir()):
                if spec.event is not None and e != spec.event:
                    continue
                out[(s, e)] = spec.filter
                found = True
        if not found:
            raise RecordError(f"event {spec} not found in {events_dir}")
    return [(s, e, f) for (s, e), f in out.items()]


def missing_events(tracefs: Path, specs: Sequence[EventSpec]) -> list[str]:
    """The specs that name nothing on this kernel (for a preflight check)."""
    bad = []
    for spec in specs:
        try:
            resolve_events(tracefs / "events", [spec])
        except RecordError:
            bad.append(str(spec))
    return bad
