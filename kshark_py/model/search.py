"""Which events match a search of the event list's Event, Task, PID or CPU column, all at once.

The predicate runs on the few distinct values of the column (event names, task names, pids, CPUs),
a lookup table maps the answer back onto the events, and the per-stream answers are gathered into
merged order: one bool per merged event, no Python loop over events. The list's search bar
(``ui/search``) turns the mask into table rows and steps through them; Info texts are matched a
block at a time there (:func:`kshark_py.model.infotext.match_mask`), since they exist only once
rendered.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .distinct import map_values
from .merged import merged_gather, stream_column
from .session import MergedView, Session
from .taskindex import TaskIndex, text_matcher

BULK_COLUMNS = ("Event", "Task", "PID", "CPU")
"""The columns :func:`column_mask` answers (Info is searched a block at a time)."""


def value_mask(col: np.ndarray, pred: Callable[[int], bool]) -> np.ndarray:
    """bool per element of an int column: ``pred`` runs once per distinct value (bincount, no sort)."""
    return map_values(col, lambda uniq: np.array([bool(pred(int(v))) for v in uniq.tolist()], bool)).astype(bool)


def column_mask(session: Session, merged: MergedView, tasks: TaskIndex, column: str, mode: str,
                text: str) -> np.ndarray:
    """bool per merged event: does ``column`` (one of :data:`BULK_COLUMNS`) match ``text`` in ``mode``."""
    pred = text_matcher(text, mode)
    if column == "Task":
        return tasks.match(text, mode)
    per_stream: list[np.ndarray | None] = []
    for st in session.streams:
        if column == "Event":
            fmts = st.trace.formats

            def ev_pred(eid: int, fmts=fmts) -> bool:
                ev = fmts.get(eid)
                return pred(ev.name if ev else "(NULL)")

            per_stream.append(value_mask(stream_column(st, "event_id"), ev_pred))
        elif column == "PID":
            per_stream.append(value_mask(stream_column(st, "pid"), lambda v: pred(str(v))))
        elif column == "CPU":
            per_stream.append(value_mask(stream_column(st, "cpu"), lambda v: pred(str(v))))
        else:
            raise ValueError(f"column {column!r} is not searchable in bulk")
    return merged_gather(merged, per_stream)
