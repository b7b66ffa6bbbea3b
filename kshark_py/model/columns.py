"""Typed columns of one event type in one buffer, as numpy arrays (the model's way in to fields)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..loaders.buffer import Buffer


def event_rows(buffer: Buffer, event_name: str, system: str | None = None) -> np.ndarray:
    """Row indices (into ``buffer.events``) of every record of one event type; empty if unknown."""
    ev = buffer.trace.formats.find(event_name, system)
    if ev is None:
        return np.zeros(0, np.int64)
    return np.flatnonzero(buffer.events.column("event_id").to_numpy() == ev.id)


def event_columns(buffer: Buffer, event_name: str, names: list[str], system: str | None = None,
                  rows: np.ndarray | None = None, *, numbers_only: bool = False
                  ) -> tuple[np.ndarray, dict[str, np.ndarray | pa.Array]]:
    """(rows, {field: values}) for ``event_name`` in ``buffer``.

    Integer fields come back as numpy arrays, strings as Arrow arrays.  A field the event does
    not have is simply absent from the dict, so callers can test for optional fields.
    ``numbers_only``: a field that is not an integer is absent too; callers that do arithmetic on
    pids, states or ids use it, since a damaged format can declare ``prev_pid`` as ``char[4]``.
    """
    tf = buffer.trace
    ev = tf.formats.find(event_name, system)
    if rows is None:
        rows = event_rows(buffer, event_name, system)
    out: dict[str, np.ndarray | pa.Array] = {}
    if ev is None:
        return rows, out
    for n, arr in buffer.field_arrays(ev, names, rows).items():
        if pa.types.is_integer(arr.type):
            out[n] = arr.to_numpy(zero_copy_only=False)
        elif not numbers_only:
            out[n] = arr
    return rows, out
