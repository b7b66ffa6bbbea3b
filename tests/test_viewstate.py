"""The window's view state without Qt: each setter emits only on a real change, so views that write
back what they were told end the loop; bad marker names are refused."""

from __future__ import annotations

import pytest

from kshark_py.model.viewstate import ViewState


def test_setters_emit_only_real_changes():
    v = ViewState()
    seen: list[tuple] = []
    v.events.range.connect(lambda *a: seen.append(("range", *a)))
    v.events.marker.connect(lambda *a: seen.append(("marker", *a)))
    v.events.active_marker.connect(lambda *a: seen.append(("active", *a)))
    v.events.highlight.connect(lambda *a: seen.append(("highlight", *a)))
    assert v.set_range(10, 20) and not v.set_range(10, 20)
    assert v.set_marker("A", 15) and not v.set_marker("A", 15)
    assert v.set_marker("A", None) and not v.set_marker("B", None)
    assert v.set_active_marker("B") and not v.set_active_marker("B")
    assert v.set_highlight(("vmguest", 1)) and not v.set_highlight(("vmguest", 1))
    assert v.set_highlight(None)
    assert seen == [("range", 10, 20), ("marker", "A", 15), ("marker", "A", None), ("active", "B"),
                    ("highlight", ("vmguest", 1)), ("highlight", None)]
    assert (v.range, v.markers, v.active_marker, v.highlight) == ((10, 20), {"A": None, "B": None}, "B", None)


def test_a_view_writing_back_ends_the_loop():
    """A widget that echoes each range it is shown (after rounding it) settles after one echo."""
    v = ViewState()
    calls = []

    def widget(t0: int, t1: int) -> None:
        calls.append((t0, t1))
        v.set_range(t0 // 10 * 10, t1 // 10 * 10)  # what the widget could show

    v.events.range.connect(widget)
    v.set_range(1234, 5678)
    assert calls == [(1234, 5678), (1230, 5670)] and v.range == (1230, 5670)


def test_unknown_marker_is_refused():
    v = ViewState()
    with pytest.raises(ValueError, match="no marker 'C'"):
        v.set_marker("C", 1)
    with pytest.raises(ValueError, match="no marker 'a'"):
        v.set_active_marker("a")
