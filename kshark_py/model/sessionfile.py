"""Session files in KernelShark's JSON, so a session moves between kshark-py and KernelShark 2.x.

The document is KernelShark's ``kshark.config.session`` exactly as ``KsSession.cpp`` and
``libkshark-configio.c`` (kernelshark-v2.2.1) write and read it; each key both programs have means
the same in both:

* ``"data streams"``: one entry per file's top buffer (KernelShark's stream ids follow).  ``data``
  names the file (absolute path), the buffer (``"top buffer"``) and the file's mtime; KernelShark
  refuses the whole session when the mtime differs or when ``filters`` (with ``"filter mask"``) or
  ``plugins`` is missing, so they are always written.  ``CPUPlots``/``TaskPlots`` are the CPU rows
  and task rows shown; ``"calib. array"`` ``[ns]`` is the stream's time offset (Tools > Add Time
  Offset).  Instances (``trace-cmd record -B``) are listed under ``"kshark-py"``: KernelShark
  2.2.1 cannot reopen a buffer from a session (it fails, then crashes on the markers), even from
  its own export; entries for instances in a KernelShark file are read all the same.
* ``"ComboPlots"``: a VCPU pair is KernelShark's KVM combo ``[[guest sd, CPU|GUEST, vcpu], [host sd,
  TASK|HOST, host pid]]``.
* ``"Model"``: the visible range and bin count; ``"Markers"``: markers as rows of KernelShark's
  time-sorted entry array (which also holds a ``missed_events`` entry 10 ns before each record that
  follows lost events), plus our exact time; ``"MainWindow"``, ``"Splitter"``, ``"ViewTop"``.

KernelShark-only keys (``ColorScheme``, ``User Plugins``, a stream's plugin list) are kept as read
and written back; what KernelShark has no notion of (the VCPU map, streams switched off, field plot
rows, the analysis panels open and the latency request) goes under ``"kshark-py"``, which KernelShark
ignores and keeps.
No Qt here: the window turns its state into a :class:`SessionState` and back.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import filterfile
from .errors import SessionFileError
from .filters import KS_GRAPH_VIEW, KS_TEXT_VIEW

if TYPE_CHECKING:
    from .filters import Filters
    from .session import Session
    from .vcpus import VcpuMapping
    from .viewmodel import TimelineModel

TOP_BUFFER = "top buffer"
"""KernelShark's name of a file's top buffer in ``data.name`` (``TOP_BUFF_NAME``)."""
DEFAULT_PLUGINS: list[list[Any]] = [["kvm_combo", True], ["missed_events", True], ["sched_events", True]]
"""What KernelShark 2.2.1 registers for a trace-cmd stream (its own export lists these)."""
TASK_DRAW, CPU_DRAW, HOST_DRAW, GUEST_DRAW = 1 << 0, 1 << 1, 1 << 2, 1 << 3
"""Plot types of a combo entry (``libkshark-plugin.h``: ``KSHARK_*_DRAW``)."""
MISSED_EVENTS_SHIFT = 10
"""ns before its record that KernelShark puts a ``missed_events`` entry (``ME_ENTRY_TIME_SHIFT``)."""
OURS = "kshark-py"
_KNOWN = {"type", "Model", "data streams", "ComboPlots", "Markers", "MainWindow", "Splitter", "ViewTop", OURS}


@dataclass
class StreamState:
    """One ``"data streams"`` entry: a buffer of a file and what is shown and filtered of it."""

    file: str
    buffer: str = ""
    """``""``: the file's top buffer."""
    cpus: list[int] | None = None
    """CPU rows shown (``CPUPlots``); None when the file does not say (then all show)."""
    tasks: list[int] = field(default_factory=list)
    """Task rows shown (``TaskPlots``), by pid."""
    filters: dict[str, Any] | None = None
    """KernelShark's ``"filters"`` document of this stream."""
    time_offset: int = 0
    """ns added to this stream's timestamps (``"calib. array"[0]``)."""
    plugins: list[Any] | None = None
    """KernelShark's ``plugins.registered`` as read, written back unchanged."""
    kernelshark: bool = True
    """Listed in ``"data streams"``. Our instance streams are not: KernelShark 2.2.1 fails to open
    a buffer from a session ("Failed to import data file"), then crashes on the markers; they go
    under ``"kshark-py"`` instead, and KernelShark shows the files' top buffers."""


@dataclass
class SessionState:
    """Everything a session file holds, in the program-neutral terms of the JSON."""

    files: list[str]
    """Trace files to open, in order (each once; the first is the first stream's)."""
    streams: list[StreamState] = field(default_factory=list)
    """In KernelShark's stream-id order: ``streams[sd]``; then the streams only we list."""
    range: tuple[int, int] | None = None
    bins: int | None = None
    markers: dict[str, int | None] = field(default_factory=lambda: {"A": None, "B": None})
    """Marker times (ns); None where unset or known only as a row."""
    marker_rows: dict[str, int | None] = field(default_factory=lambda: {"A": None, "B": None})
    """Markers as rows of KernelShark's entry array (see :class:`EntryRows`)."""
    active_marker: str = "A"
    highlight: tuple[str, int] | None = None
    """The highlighted VCPU pair (guest, VCPU), under ``"kshark-py"`` (KernelShark has no such key)."""
    combos: list[list[list[int]]] | None = None
    """``ComboPlots`` as ``[[sd, type, id], ...]`` per combo; None when the file has none."""
    vcpu_map: dict[str, dict[int, int]] = field(default_factory=dict)
    filters: dict[str, Any] = field(default_factory=dict)
    """Our filter settings KernelShark has no key for: ``"disabled streams"`` (stream ids); old
    kshark-py files keep their whole filter dict here."""
    window: tuple[int, int] | str | None = None
    """``MainWindow``: (width, height) or ``"FullScreen"``."""
    splitter: tuple[int, int] | None = None
    """``Splitter``: heights of the graph and the list pane."""
    view_top: int | None = None
    """``ViewTop``: the first list row shown, as a row of KernelShark's entry array."""
    field_rows: list[tuple[int, str, str]] = field(default_factory=list)
    """Field plot rows (Analysis > Field plot), as (stream id, ``system:event``, field), in row order."""
    panels: dict[str, Any] = field(default_factory=dict)
    """The analysis panels open: ``"wakeups"``, ``"exits"``, ``"vcputime"`` (True), ``"latency"``
    (``{"start", "end", "match": [[start field, end field], ...]}``)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Top-level keys only KernelShark uses, written back as read."""
    warnings: list[str] = field(default_factory=list)
    """Problems found while reading (the session still loads)."""

    # -- writing ------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": "kshark.config.session"}
        if self.window is not None:
            doc["MainWindow"] = self.window if isinstance(self.window, str) else [int(x) for x in self.window]
        if self.splitter is not None:
            doc["Splitter"] = [int(x) for x in self.splitter]
        if self.range is not None:
            doc["Model"] = {"type": "kshark.config.model", "range": [int(self.range[0]), int(self.range[1])],
                            "bins": int(self.bins or 1)}
        doc["data streams"] = [_stream_json(sd, s) for sd, s in enumerate(self.streams) if s.kernelshark]
        doc["ComboPlots"] = [[[int(x) for x in p] for p in c] for c in (self.combos or [])]
        marks: dict[str, Any] = {"type": "kshark.config.markers"}
        for name in ("A", "B"):
            row, t = self.marker_rows.get(name), self.markers.get(name)
            m: dict[str, Any] = {"isSet": row is not None}
            if row is not None:
                m["row"] = int(row)
                if t is not None:
                    m["time"] = int(t)
            marks[f"mark{name}"] = m
        marks["Active"] = "B" if self.active_marker == "B" else "A"
        doc["Markers"] = marks
        doc["ViewTop"] = int(self.view_top or 0)
        doc.update(self.extra)
        doc[OURS] = {"vcpu map": {g: {str(v): int(p) for v, p in m.items()} for g, m in self.vcpu_map.items()},
                     "filters": self.filters,
                     "instance streams": [_stream_json(sd, s) for sd, s in enumerate(self.streams)
                                          if not s.kernelshark]}
        if self.highlight is not None:
            doc[OURS]["highlighted pair"] = [str(self.highlight[0]), int(self.highlight[1])]
        if self.field_rows:
            doc[OURS]["field rows"] = [[int(sd), str(ev), str(f)] for sd, ev, f in self.field_rows]
        if self.panels:
            doc[OURS]["panels"] = self.panels
        return doc

    # -- reading ------------------------------------------------------------------------------
    @classmethod
    def from_json(cls, doc: Any, base: Path | None = None) -> SessionState:
        """Read a session written by kshark-py or KernelShark; relative file names are looked up
        beside the session file, then in the current directory (KernelShark's own rule)."""
        try:
            return cls._from_json(doc, base)
        except SessionFileError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            raise SessionFileError(f"malformed session file: {e!r}") from e

    @classmethod
    def _from_json(cls, doc: Any, base: Path | None) -> SessionState:
        if not isinstance(doc, dict) or doc.get("type") != "kshark.config.session":
            raise SessionFileError("not a session file (type is not kshark.config.session)")
        warnings: list[str] = []
        streams: list[StreamState] = []
        entries = doc.get("data streams") or []
        ours = doc.get(OURS) or {}
        if not isinstance(entries, list):
            raise SessionFileError("malformed session file: \"data streams\" is not a list")
        n_ks = len(entries)
        entries = sorted(entries, key=lambda e: int(e.get("stream id", 0))) + list(ours.get("instance streams") or [])
        for k, e in enumerate(entries):
            data = e["data"]
            f = _resolve(str(data["file"]), base)
            name = str(data.get("name") or TOP_BUFFER)
            mtime = data.get("time")
            if mtime is not None and os.path.exists(f) and int(os.stat(f).st_mtime) != int(mtime):
                warnings.append(f"{f}: changed since the session was saved (mtime differs)")
            filt = e.get("filters")
            plugins = (e.get("plugins") or {}).get("registered")
            calib = e.get("calib. array") or [0]
            cpus = e.get("CPUPlots")
            streams.append(StreamState(
                file=f, buffer="" if name == TOP_BUFFER else name,
                cpus=[int(c) for c in cpus] if isinstance(cpus, list) else None,
                tasks=[int(p) for p in e.get("TaskPlots") or []],
                filters=dict(filt) if isinstance(filt, dict) else None,
                time_offset=int(calib[0]), plugins=list(plugins) if isinstance(plugins, list) else None,
                kernelshark=k < n_ks))
        files: list[str] = []
        for s in streams:
            if s.file not in files:
                files.append(s.file)
        model = doc.get("Model") or {}
        rng = model.get("range")
        marks = doc.get("Markers") or {}
        times: dict[str, int | None] = {}
        rows: dict[str, int | None] = {}
        for name in ("A", "B"):
            m = marks.get(f"mark{name}") or {}
            t, r = m.get("time"), m.get("row")
            is_set = m.get("isSet", t is not None)
            times[name] = int(t) if is_set and t is not None else None
            rows[name] = int(r) if is_set and r is not None else None
        vmap = {g: {int(v): int(p) for v, p in m.items()} for g, m in (ours.get("vcpu map") or {}).items()}
        pair = ours.get("highlighted pair")
        field_rows = []
        for r in ours.get("field rows") or []:
            if isinstance(r, list) and len(r) == 3:
                field_rows.append((int(r[0]), str(r[1]), str(r[2])))
            else:
                warnings.append(f"a field row of the session is malformed ({r!r}): left out")
        panels = ours.get("panels")
        win = doc.get("MainWindow")
        spl = doc.get("Splitter")
        combos = doc.get("ComboPlots")
        return cls(
            files=files, streams=streams,
            range=(int(rng[0]), int(rng[1])) if isinstance(rng, list) and len(rng) == 2 else None,
            bins=int(model["bins"]) if model.get("bins") is not None else None,
            markers=times, marker_rows=rows, active_marker="B" if marks.get("Active") == "B" else "A",
            highlight=(str(pair[0]), int(pair[1])) if isinstance(pair, list) and len(pair) == 2 else None,
            combos=[[[int(x) for x in p] for p in c] for c in combos] if isinstance(combos, list) else None,
            vcpu_map=vmap, filters=dict(ours.get("filters") or {}),
            window=win if win == "FullScreen" else (int(win[0]), int(win[1])) if isinstance(win, list) else None,
            splitter=(int(spl[0]), int(spl[1])) if isinstance(spl, list) and len(spl) == 2 else None,
            view_top=int(doc["ViewTop"]) if doc.get("ViewTop") is not None else None,
            field_rows=field_rows, panels=dict(panels) if isinstance(panels, dict) else {},
            extra={k: v for k, v in doc.items() if k not in _KNOWN}, warnings=warnings)


def _stream_json(sd: int, s: StreamState) -> dict[str, Any]:
    try:
        mtime = int(os.stat(s.file).st_mtime)
    except OSError:
        mtime = 0
    filters = dict(s.filters or {})
    filters["type"] = "kshark.config.filter"
    filters.setdefault("filter mask", 7)  # KernelShark refuses a filters document without any filter
    out: dict[str, Any] = {
        "type": "kshark.config.stream", "stream id": sd,
        "data": {"type": "kshark.config.data", "file": os.path.realpath(s.file), "name": s.buffer or TOP_BUFFER,
                 "time": mtime},
        "filters": filters,
        "plugins": {"type": "kshark.config.plugins",
                    "registered": s.plugins if s.plugins is not None else DEFAULT_PLUGINS},
        "CPUPlots": sorted(int(c) for c in (s.cpus or [])),
        "TaskPlots": [int(p) for p in s.tasks],
    }
    if s.time_offset:
        out["calib. array"] = [int(s.time_offset)]
    return out


def _resolve(f: str, base: Path | None) -> str:
    if os.path.isabs(f):
        return f
    near = str((base / f).resolve()) if base is not None else None
    if near is not None and os.path.exists(near):
        return near
    here = os.path.abspath(f)
    return here if os.path.exists(here) or near is None else near


def save_session(state: SessionState, path: str | Path) -> None:
    Path(path).write_text(json.dumps(state.to_json(), indent=1))


def load_session_file(path: str | Path) -> SessionState:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except OSError as e:
        raise SessionFileError(f"{path}: {e.strerror}") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SessionFileError(f"{path}: not JSON ({e})") from e
    return SessionState.from_json(doc, path.resolve().parent)


# -- a loaded session in KernelShark's terms -------------------------------------------------------

def ks_stream_order(session: Session) -> list[int]:
    """Our stream indices in KernelShark's stream-id order: per file, the top buffer then the
    file's instances (ours puts every top buffer first, as trace-cmd's report does)."""
    pos = {id(b): k for st in session.streams for k, b in enumerate(st.trace.buffers)}
    return [st.index for st in sorted(session.streams, key=lambda st: (st.file_index, st.buffer.name != "",
                                                                         pos.get(id(st.buffer), 0)))]


def match_streams(session: Session, state: SessionState) -> dict[int, tuple[int, StreamState]]:
    """Our stream index -> (KernelShark stream id, its entry), matched by file and buffer name."""
    out: dict[int, tuple[int, StreamState]] = {}
    for st in session.streams:
        real = os.path.realpath(st.trace.path)
        for sd, s in enumerate(state.streams):
            if s.buffer == st.buffer.name and os.path.realpath(s.file) == real:
                out[st.index] = (sd, s)
                break
    return out


def kernelshark_streams(session: Session, state: SessionState) -> list[int]:
    """Our streams that KernelShark loads from ``state`` (its ``"data streams"``)."""
    return sorted(i for i, (_, s) in match_streams(session, state).items() if s.kernelshark)


class EntryRows:
    """KernelShark's entry array as times: every event of every stream and one ``missed_events``
    entry :data:`MISSED_EVENTS_SHIFT` ns before each record that follows lost events, sorted by
    time.  Markers and ``ViewTop`` are rows of that array; a time maps to the last row at or
    before it, a row to its time, so an event time survives the trip either way."""

    def __init__(self, session: Session, streams: list[int] | None = None) -> None:
        """``streams``: the streams KernelShark loads (default: all), see :func:`kernelshark_streams`."""
        sts = session.streams if streams is None else [session.streams[i] for i in streams]
        parts = [st.buffer.events.column("ts").to_numpy() for st in sts]
        parts += [st.buffer.lost.column("ts").to_numpy() - MISSED_EVENTS_SHIFT for st in sts if len(st.buffer.lost)]
        self.ts = np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

    def row_of(self, t: int) -> int:
        return max(0, int(np.searchsorted(self.ts, int(t), side="right")) - 1)

    def time_of(self, row: int) -> int | None:
        return int(self.ts[row]) if 0 <= row < len(self.ts) else None


# -- the window's state <-> the file's --------------------------------------------------------------

def capture(session: Session, model: TimelineModel, filters: Filters, vcpu_map: list[VcpuMapping]) -> SessionState:
    """What a window shows of ``session`` (rows, filters, time offsets, VCPU map), as a session;
    the caller adds range, markers and the window geometry."""
    order = ks_stream_order(session)
    order = [i for i in order if session.streams[i].buffer.name == ""] + \
        [i for i in order if session.streams[i].buffer.name != ""]
    sd_of = {i: sd for sd, i in enumerate(order)}
    tasks = model.visible_tasks()
    streams = []
    for i in order:
        st = session.streams[i]
        streams.append(StreamState(file=st.trace.path, buffer=st.buffer.name, cpus=model.visible_cpus(i),
                                   tasks=[p for s, p in tasks if s == i], filters=filterfile.export_stream(filters, st),
                                   time_offset=session.time_offsets.get(i, 0), kernelshark=st.buffer.name == ""))
    host = session.host_stream
    pids = {(m.guest, m.vcpu): m.host_pid for m in vcpu_map}
    guest_sd = {st.name: sd_of[st.index] for st in session.streams if st.role == "guest" and st.buffer.name == ""}
    combos = [[[guest_sd[g], CPU_DRAW | GUEST_DRAW, v], [sd_of[host.index], TASK_DRAW | HOST_DRAW, pids[(g, v)]]]
              for g, v in model.visible_pairs() if host is not None and g in guest_sd and (g, v) in pids]
    umap: dict[str, dict[int, int]] = {}
    for m in vcpu_map:
        umap.setdefault(m.guest, {})[m.vcpu] = m.host_pid
    files = []
    for s in streams:
        if s.file not in files:
            files.append(s.file)
    field_rows = []
    for r in model.custom_rows():  # a field row's data names its stream, event and field (plots.fieldrow)
        d = r.data
        if r.kind == "field" and d is not None and getattr(d, "stream", None) in sd_of:
            field_rows.append((sd_of[d.stream], str(d.event), str(d.field)))
    return SessionState(files=files, streams=streams, combos=combos, vcpu_map=umap, field_rows=field_rows,
                        filters={"disabled streams": sorted(sd_of[i] for i in filters.disabled_streams
                                                            if i in sd_of)})


def field_rows_of(session: Session, state: SessionState) -> list[tuple[int, str, str]]:
    """The session's field rows as (stream index, event, field) of this session's streams; those of a stream
    not loaded are left out (:func:`restore` warns about the stream)."""
    by_sd = {sd: i for i, (sd, _) in match_streams(session, state).items()}
    return [(by_sd[sd], ev, f) for sd, ev, f in state.field_rows if sd in by_sd]


def restore(session: Session, state: SessionState, model: TimelineModel, filters: Filters) -> list[str]:
    """Apply a session's rows and filters to a window's model (its time offsets must already be
    applied, see :meth:`Session.set_time_offset`); returns warnings for what did not fit."""
    warnings: list[str] = []
    matched = match_streams(session, state)
    by_sd = {sd: i for i, (sd, _) in matched.items()}
    for k, s in enumerate(state.streams):
        if k not in by_sd:
            warnings.append(f"session stream {k} ({os.path.basename(s.file)} {s.buffer or TOP_BUFFER}) is not loaded")
    for i, (_, s) in sorted(matched.items()):
        if s.cpus is not None:
            model.set_visible_cpus(i, [c for c in s.cpus if 0 <= c < session.streams[i].cpu_count])
    model.set_visible_tasks([(by_sd[sd], p) for sd, s in enumerate(state.streams) if sd in by_sd for p in s.tasks])
    if state.combos is not None:
        pairs = []
        for combo in state.combos:
            for sd, kind, ident in combo:
                st = session.streams[by_sd[sd]] if sd in by_sd else None
                if kind & CPU_DRAW and st is not None and st.role == "guest":
                    pairs.append((st.name, ident))
        model.set_visible_pairs(pairs)
    ours = state.filters
    if "streams" in ours:  # a kshark-py file from before the KernelShark layout: our own dict
        warnings += filterfile.from_dict(filters, session, ours)
        return warnings
    doc: dict[str, Any] = {"streams": [{"stream id": i, "filters": s.filters} for i, (_, s) in sorted(matched.items())
                                       if s.filters]}
    doc["disabled streams"] = [by_sd[sd] for sd in ours.get("disabled streams", []) if sd in by_sd]
    mask = next((int(s.filters["filter mask"]) for _, s in sorted(matched.values(), key=lambda x: x[0])
                 if s.filters and "filter mask" in s.filters), None)
    # where filters apply: KernelShark's "filter mask" (written in every stream's filters)
    doc["apply to list"] = mask is None or bool(mask & KS_TEXT_VIEW)
    doc["apply to graph"] = mask is None or bool(mask & KS_GRAPH_VIEW)
    warnings += filterfile.from_dict(filters, session, doc)
    return warnings
