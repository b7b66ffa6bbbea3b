"""Task names: pid -> comm from the saved cmdlines plus what sched events reveal.

The kernel's saved_cmdlines is a small cache, so many pids in a trace are missing from it; the
comm fields of sched_switch (prev/next), sched_wakeup/waking/wakeup_new and sched_process_fork
name them.  Everything is gathered with vectorized field extraction; the per-row ``comm`` column
is a dictionary-encoded Arrow array (one string per distinct task, not per event).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .fields import field_array

# (event, pid field, comm field) pairs whose comm names that pid
_SOURCES = (
    ("sched_switch", "prev_pid", "prev_comm"),
    ("sched_switch", "next_pid", "next_comm"),
    ("sched_wakeup", "pid", "comm"),
    ("sched_waking", "pid", "comm"),
    ("sched_wakeup_new", "pid", "comm"),
    ("sched_process_fork", "child_pid", "child_comm"),
    ("sched_process_fork", "parent_pid", "parent_comm"),
    ("sched_process_exec", "pid", None),
)


def task_names(buffers, formats, cmdlines: dict[int, str], endian: str) -> dict[int, str]:
    """pid -> comm for every pid the buffers mention. Saved cmdlines win; else the last comm seen."""
    names: dict[int, str] = {}
    for buf in buffers:
        t = buf.events
        eid = t.column("event_id").to_numpy()
        off_all = t.column("offset").to_numpy()
        len_all = t.column("length").to_numpy()
        for ev_name, pf, cf in _SOURCES:
            if cf is None:
                continue
            ev = formats.find(ev_name, "sched")
            if ev is None or ev.field(pf) is None or ev.field(cf) is None:
                continue
            rows = np.flatnonzero(eid == ev.id)
            if not len(rows):
                continue
            off, ln = off_all[rows], len_all[rows]
            pids = np.asarray(field_array(buf.data, off, ln, ev.field(pf), endian)).astype(np.int64)
            comms = field_array(buf.data, off, ln, ev.field(cf), endian)
            # last occurrence of each pid
            rev_pids = pids[::-1]
            uniq, idx = np.unique(rev_pids, return_index=True)
            last = len(pids) - 1 - idx
            vals = comms.take(pa.array(last)).to_pylist()
            for p, c in zip(uniq.tolist(), vals, strict=True):
                if c:
                    names[p] = c
    names.update(cmdlines)
    names[0] = "<idle>"
    return names


def comm_column(pids: np.ndarray, names: dict[int, str]) -> pa.DictionaryArray:
    """A dictionary-encoded comm per row (``<...>`` for pids nobody named)."""
    uniq, inv = np.unique(pids, return_inverse=True)
    labels = pa.array([names.get(int(p), "<...>") for p in uniq], pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(inv.astype(np.int32)), labels)
