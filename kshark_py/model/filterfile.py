"""KernelShark's filter documents: export and import the ``"filters"`` of a session's data streams.

KernelShark (libkshark-configio.c) stores, per stream, show/hide lists of events (as
``system/name``), tasks and CPUs, the advanced filters as ``{"name", "condition"}`` and a
``"filter mask"`` of where filters apply.  These functions translate between those documents and a
:class:`~kshark_py.model.filters.Filters` through its public API; an unknown event or an invalid
condition becomes a warning, never a failed session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..loaders.formats import EventFormat, EventFormats
from .fieldexpr import FieldFilter, FilterSyntaxError
from .filters import KS_GRAPH_VIEW, KS_TEXT_VIEW, StreamFilter

if TYPE_CHECKING:
    from .filters import Filters
    from .session import Session, Stream

# KernelShark's session keys ("filters" document of a stream, libkshark-configio.c)
_KS_KEYS = {
    ("event", "show"): "show event filter", ("event", "hide"): "hide event filter",
    ("task", "show"): "show task filter", ("task", "hide"): "hide task filter",
    ("cpu", "show"): "show cpu filter", ("cpu", "hide"): "hide cpu filter",
}
KS_ADV_KEY = "adv event filter"
ONLY_MATCHING_KEY = "kshark-py adv only matching"
"""Our own key: KernelShark has no such switch (its advanced filter always hides other types)."""


def export_stream(filters: Filters, stream: Stream) -> dict[str, Any]:
    """One stream's KernelShark ``"filters"`` document (event ids as ``system/name``)."""
    doc: dict[str, Any] = {"type": "kshark.config.filter", "filter mask": filters.filter_mask}
    sf = filters.stream_filter(stream.index)
    fmts = stream.trace.formats
    for (kind, mode), key in _KS_KEYS.items():
        vals = sorted(sf.get(kind, mode))
        if not vals:
            continue
        if kind == "event":
            doc[key] = [f"{e.system}/{e.name}" for v in vals if (e := fmts.get(v)) is not None]
        else:
            doc[key] = vals
    if sf.field_filters:
        doc[KS_ADV_KEY] = [{"name": f"{ff.system}/{ff.event_name}", "condition": ff.condition}
                           for _, ff in sorted(sf.field_filters.items())]
    if sf.only_matching:
        doc[ONLY_MATCHING_KEY] = True
    return doc


def import_stream(filters: Filters, stream: Stream, doc: dict[str, Any]) -> list[str]:
    """Replace one stream's filters from a ``"filters"`` document; returns warnings (unknown events,
    invalid conditions), which are skipped rather than failing the whole session."""
    warnings: list[str] = []
    fmts = stream.trace.formats
    sets: dict[tuple[str, str], frozenset[int]] = {}
    for (kind, mode), key in _KS_KEYS.items():
        vals = doc.get(key) or []
        if kind == "event":
            ids = []
            for name in vals:
                ev = _find_event(fmts, str(name))
                if ev is None:
                    warnings.append(f"{stream.name}: {key}: unknown event {name!r}")
                else:
                    ids.append(ev.id)
            vals = ids
        if vals:
            sets[(kind, mode)] = frozenset(int(v) for v in vals)
    ffs: dict[int, FieldFilter] = {}
    for item in doc.get(KS_ADV_KEY) or []:
        name, cond = str(item.get("name", "")), str(item.get("condition", ""))
        ev = _find_event(fmts, name)
        if ev is None:
            warnings.append(f"{stream.name}: advanced filter for unknown event {name!r}")
            continue
        try:
            ffs[ev.id] = FieldFilter.parse(cond, ev)
        except FilterSyntaxError as e:
            warnings.append(f"{stream.name}: advanced filter {name}: {e}")
    with filters.batch():
        filters.set_stream_filter(stream.index, StreamFilter(sets, ffs, bool(doc.get(ONLY_MATCHING_KEY, False))))
        if "filter mask" in doc:
            fm = int(doc["filter mask"])
            filters.apply_to_list = bool(fm & KS_TEXT_VIEW)
            filters.apply_to_graph = bool(fm & KS_GRAPH_VIEW)
    return warnings


def to_dict(filters: Filters, session: Session) -> dict[str, Any]:
    """Everything, keyed like a session's ``"data streams"``: stream id -> filters document."""
    return {
        "type": "kshark-py.filters",
        "streams": [{"stream id": st.index, "filters": export_stream(filters, st)} for st in session.streams],
        "disabled streams": sorted(filters.disabled_streams),
        "apply to list": filters.apply_to_list,
        "apply to graph": filters.apply_to_graph,
    }


def from_dict(filters: Filters, session: Session, d: dict[str, Any]) -> list[str]:
    """Restore :func:`to_dict` output (one notification); returns warnings."""
    warnings: list[str] = []
    by_id = {st.index: st for st in session.streams}
    with filters.batch():
        for s in filters.filtered_streams:
            filters.clear_stream(s)
        for item in d.get("streams", []):
            st = by_id.get(int(item.get("stream id", -1)))
            if st is None:
                warnings.append(f"filters for unknown stream {item.get('stream id')!r}")
                continue
            warnings += import_stream(filters, st, item.get("filters", {}))
        filters.set_disabled_streams(int(s) for s in d.get("disabled streams", []))
        filters.apply_to_list = bool(d.get("apply to list", True))
        filters.apply_to_graph = bool(d.get("apply to graph", True))
    return warnings


def _find_event(fmts: EventFormats, name: str) -> EventFormat | None:
    """``system/name`` (KernelShark's spelling), ``system:name`` or a bare name."""
    for sep in ("/", ":"):
        if sep in name:
            sysname, ev = name.split(sep, 1)
            return fmts.find(ev, sysname)
    return fmts.find(name)
