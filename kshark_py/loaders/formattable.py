"""A file's parsed event formats as two Arrow tables, and back: what the load cache keeps of them.

Why: parsing a kernel's 2,300 format texts takes 0.3-0.45 s, the biggest cost of re-opening a
cached trace; rebuilding the objects from columns takes a tenth of that.  The columns follow the
dataclasses (:class:`~.formats.EventFormat`, :class:`~.formats.Field`) by their init fields, so a
field added to either changes :func:`signature`, and an entry written before no longer matches
(the formats are then parsed as usual).
"""

from __future__ import annotations

from dataclasses import fields as dc_fields

import pyarrow as pa

from .formats import EventFormat, EventFormats, Field

_LISTS = ("fields", "common_fields")


def _names(cls: type) -> list[str]:
    return [f.name for f in dc_fields(cls) if f.init and not f.name.startswith("_") and f.name not in _LISTS]


def signature() -> dict[str, list[str]]:
    """The dataclasses' stored attributes: an entry is read back only if they are unchanged."""
    return {"EventFormat": _names(EventFormat), "Field": _names(Field)}


def to_tables(fmts: EventFormats) -> tuple[pa.Table, pa.Table]:
    """(one row per event, one row per field: its event's id, whether common, then its attributes)."""
    ev_names, f_names = _names(EventFormat), _names(Field)
    evs = list(fmts)
    events = pa.table({n: [getattr(e, n) for e in evs] for n in ev_names})
    rows = [(e.id, common, f) for e in evs for common, fl in ((True, e.common_fields), (False, e.fields)) for f in fl]
    cols: dict[str, list] = {"#event": [r[0] for r in rows], "#common": [r[1] for r in rows]}
    cols.update({n: [getattr(r[2], n) for r in rows] for n in f_names})
    return events, pa.table(cols)


def from_tables(events: pa.Table, fields: pa.Table) -> EventFormats:
    """The registry :func:`to_tables` was given (raises KeyError/TypeError/ValueError on a mismatch)."""
    ev_names, f_names = _names(EventFormat), _names(Field)
    if events.column_names != ev_names or fields.column_names != ["#event", "#common", *f_names]:
        raise ValueError("format tables do not match the format classes")
    if f_names != [f.name for f in dc_fields(Field) if f.init][:len(f_names)]:
        raise ValueError("Field's stored attributes are not its first positional ones")
    per: dict[int, tuple[list[Field], list[Field]]] = {}
    cols = [fields.column(n).to_pylist() for n in f_names]
    for eid, common, *vals in zip(fields.column("#event").to_pylist(), fields.column("#common").to_pylist(), *cols,
                                  strict=True):
        per.setdefault(eid, ([], []))[0 if common else 1].append(Field(*vals))  # positional: 3x faster
    out = []
    for row in events.to_pylist():
        common, own = per.get(row["id"], ([], []))
        out.append(EventFormat(**row, fields=own, common_fields=common))
    return EventFormats(out)
