"""Task names: pid -> comm from the saved cmdlines plus what sched events reveal.

The kernel's saved_cmdlines is a small cache, so many pids in a trace are missing from it; the
comm fields of sched_switch (prev/next), sched_wakeup/waking/wakeup_new and sched_process_fork
name them.  Everything is gathered with vectorized field extraction; the per-row ``comm`` column
is a dictionary-encoded Arrow array (one value per distinct task, not per event).

A comm is whatever bytes the process gave itself, so names are lossless text
(:func:`~kshark_py.loaders.text.decode`: bytes that are not UTF-8 survive as lone surrogates) and
the ``comm`` column holds the bytes themselves (binary); :func:`~kshark_py.loaders.text.display`
makes a name showable.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from .text import decode_array, encode

IDLE_COMM = "<idle>"
"""The name of pid 0 (libtraceevent's ``tep_data_comm_from_pid``)."""
UNKNOWN_COMM = "<...>"
"""The name of a pid nobody named (the same)."""


def task_comm(names: Mapping[int, str], pid: int) -> str:
    """What trace-cmd calls ``pid``: :data:`IDLE_COMM` for 0, else its name in ``names`` (saved
    cmdlines, or :func:`task_names`), else :data:`UNKNOWN_COMM`; lossless text (show it with
    :func:`~kshark_py.loaders.text.display`)."""
    return IDLE_COMM if pid == 0 else names.get(pid, UNKNOWN_COMM)


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


NAME_FIELDS: list[tuple[str, str, list[str]]] = [
    ("sched", ev, [f for e, pf, cf in _SOURCES if e == ev and cf for f in (pf, cf)])
    for ev in dict.fromkeys(e for e, _, cf in _SOURCES if cf)
]
"""The (system, event, fields) :func:`task_names` reads, for ``TraceFile.hot_fields``: set before the
events are decoded, they are extracted while each block is in memory, not in a second pass that
decompresses the whole buffer again (``kshark-py export`` spent 1 s of 2 there on 3 M events)."""


def task_names(buffers, formats, cmdlines: dict[int, str]) -> dict[int, str]:
    """pid -> comm for every pid the buffers mention. Saved cmdlines win; else the last comm seen.

    Names are lossless text (see the module doc): ``text.encode(name)`` is what the kernel wrote."""
    names: dict[int, str] = {}
    for buf in buffers:
        t = buf.events
        eid = t.column("event_id").to_numpy()
        by_event: dict[str, list[tuple[str, str]]] = {}
        for ev_name, pf, cf in _SOURCES:
            if cf is not None:
                by_event.setdefault(ev_name, []).append((pf, cf))
        for ev_name, pairs in by_event.items():
            ev = formats.find(ev_name, "sched")
            if ev is None:
                continue
            rows = np.flatnonzero(eid == ev.id)
            if not len(rows):
                continue
            vals = buf.field_arrays(ev, [f for pair in pairs for f in pair], rows)
            for pf, cf in pairs:
                # a damaged format can give these fields other types (a pid of chars, a comm of
                # u64s): such a pair names nobody, as libtraceevent finds no comm/pid there either
                if pf in vals and cf in vals and is_int_array(vals[pf]) and is_text_array(vals[cf]):
                    _last_names(names, np.asarray(vals[pf]).astype(np.int64), vals[cf])
    names.update(cmdlines)
    names[0] = IDLE_COMM
    return names


def is_int_array(arr: pa.Array) -> bool:
    """Whether a field's values are integers (a damaged format can make a pid a char array)."""
    return pa.types.is_integer(arr.type)


def is_text_array(arr: pa.Array) -> bool:
    """Whether a field's values are text (a damaged format can make a comm an array of u64s)."""
    t = arr.type
    return (pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_string(t)
            or pa.types.is_large_string(t) or pa.types.is_dictionary(t))


def _last_names(names: dict[int, str], pids: np.ndarray, comms: pa.Array) -> None:
    """Record the last comm seen for each pid (a later source of the same pid overrides)."""
    uniq, idx = np.unique(pids[::-1], return_index=True)
    last = len(pids) - 1 - idx
    for p, c in zip(uniq.tolist(), decode_array(comms.take(pa.array(last))).tolist(), strict=True):
        if c:
            names[p] = c


def comm_column(pids: np.ndarray, names: dict[int, str]) -> pa.DictionaryArray:
    """A dictionary-encoded comm per row (``<...>`` for pids nobody named), as the kernel's bytes:
    ``dictionary<int32, binary>`` (a comm need not be UTF-8); one dictionary entry per name, not
    per pid (:func:`relabel`)."""
    enc = pa.array(pids).dictionary_encode()  # a hash, not a sort: 10x faster than np.unique on 3 M rows
    return relabel(enc.indices, [encode(names.get(p, UNKNOWN_COMM)) for p in enc.dictionary.to_pylist()], pa.binary())


def relabel(indices: pa.Array, labels: list, value_type: pa.DataType) -> pa.DictionaryArray:
    """A dictionary array of ``labels[indices[i]]`` whose dictionary holds each label once (first
    seen first): codes that share a label (pids of one name, event ids of one system) get one entry.

    Why not a dictionary with repeats: Parquet writers keep a dictionary only if its values are
    distinct; Arrow's falls back to writing every row's bytes (``comm`` of 3 M events: 35 MB through
    zstd instead of 3 MB of indices), and pandas' categories must be distinct too."""
    slot: dict = {}
    remap = np.array([slot.setdefault(x, len(slot)) for x in labels], np.int32)
    if len(slot) < len(labels):
        indices = pa.array(remap[indices.to_numpy()])
    return pa.DictionaryArray.from_arrays(indices, pa.array(list(slot), value_type))
