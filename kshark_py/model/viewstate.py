"""What one window shows, as a Qt-free evented object (napari's components, STYLE 2.2 and 2.3).

:class:`ViewState` holds the visible time range, markers A and B, which marker a click sets, and
the highlighted VCPU pair. Every setter emits its event only on a real change, so a widget that
writes back what it was just told (the graph reporting the range it was moved to) ends the loop.
Widgets observe the events and write back only through the setters; a session file is written
from this object (range, markers, active marker) and read back into it. The rows shown are the
other half of the view, kept by :class:`kshark_py.model.viewmodel.TimelineModel` (its
``rows_changed`` event).
"""

from __future__ import annotations

from .emitter import Emitter

MARKERS = ("A", "B")


class ViewEvents:
    """One emitter per field of :class:`ViewState`."""

    def __init__(self) -> None:
        self.range = Emitter()
        """(t0, t1): the visible window moved."""
        self.marker = Emitter()
        """(name, ts or None): marker ``name`` moved or was cleared."""
        self.active_marker = Emitter()
        """(name): a click now sets this marker."""
        self.highlight = Emitter()
        """((guest, vcpu) or None): the highlighted VCPU pair."""


class ViewState:
    """The visible range (ns, host clock), markers A/B, the active marker and the highlighted pair."""

    def __init__(self) -> None:
        self.range: tuple[int, int] | None = None
        self.markers: dict[str, int | None] = dict.fromkeys(MARKERS)
        self.active_marker = "A"
        self.highlight: tuple[str, int] | None = None
        self.events = ViewEvents()

    def set_range(self, t0: int, t1: int) -> bool:
        """Show ``t0..t1``; True (and an event) only if that is not the range already."""
        r = (int(t0), int(t1))
        if r == self.range:
            return False
        self.range = r
        self.events.range.emit(*r)
        return True

    def set_marker(self, name: str, ts: int | None) -> bool:
        """Put marker ``name`` (A or B) at ``ts``, or clear it with None."""
        if name not in MARKERS:
            raise ValueError(f"no marker {name!r} (markers: {', '.join(MARKERS)})")
        ts = None if ts is None else int(ts)
        if self.markers[name] == ts:
            return False
        self.markers[name] = ts
        self.events.marker.emit(name, ts)
        return True

    def set_active_marker(self, name: str) -> bool:
        """Which marker a click on the graph or the list sets."""
        if name not in MARKERS:
            raise ValueError(f"no marker {name!r} (markers: {', '.join(MARKERS)})")
        if name == self.active_marker:
            return False
        self.active_marker = name
        self.events.active_marker.emit(name)
        return True

    def set_highlight(self, pair: tuple[str, int] | None) -> bool:
        """Highlight a VCPU pair (guest name, VCPU number), or nothing."""
        pair = None if pair is None else (str(pair[0]), int(pair[1]))
        if pair == self.highlight:
            return False
        self.highlight = pair
        self.events.highlight.emit(pair)
        return True
