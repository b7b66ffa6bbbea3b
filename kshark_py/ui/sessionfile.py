"""Sessions as JSON: files, range, rows shown, markers, filters, VCPU map, selected tasks.

The document follows KernelShark's shape where it has one (``type`` tags, ``Model.range``,
``Markers``), so a KernelShark user recognises it; what KernelShark has no notion of (VCPU maps,
our row list) goes under ``kshark-py`` keys.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path


class SessionFileError(ValueError):
    """A session file that cannot be used (one line, for a dialog or the CLI)."""


@dataclass
class SessionState:
    files: list[str]
    range: tuple[int, int] | None = None
    rows: list[dict] = field(default_factory=list)
    markers: dict[str, int | None] = field(default_factory=lambda: {"A": None, "B": None})
    active_marker: str = "A"
    vcpu_map: dict[str, dict[int, int]] = field(default_factory=dict)
    filters: dict = field(default_factory=dict)
    tasks: list[dict] = field(default_factory=list)

    def to_json(self, base: Path | None = None) -> dict:
        def rel(p: str) -> str:
            if base is None:
                return p
            try:
                return os.path.relpath(p, base)
            except ValueError:
                return p

        return {
            "type": "kshark.config.session",
            "Model": {"type": "kshark.config.model", "range": list(self.range) if self.range else None},
            "data streams": [{"type": "kshark.config.stream", "stream id": i,
                              "data": {"type": "kshark.config.data", "file": rel(f)}}
                             for i, f in enumerate(self.files)],
            "Markers": {"type": "kshark.config.markers",
                        "markA": {"isSet": self.markers.get("A") is not None, "time": self.markers.get("A")},
                        "markB": {"isSet": self.markers.get("B") is not None, "time": self.markers.get("B")},
                        "Active": self.active_marker},
            "kshark-py": {"rows": self.rows, "tasks": self.tasks, "filters": self.filters,
                          "vcpu map": {g: {str(v): p for v, p in m.items()} for g, m in self.vcpu_map.items()}},
        }

    @classmethod
    def from_json(cls, doc: dict, base: Path | None = None) -> SessionState:
        try:
            if doc.get("type") != "kshark.config.session":
                raise SessionFileError("not a session file (type is not kshark.config.session)")
            files = []
            for s in doc.get("data streams", []):
                f = s["data"]["file"]
                if base is not None and not os.path.isabs(f):
                    f = str((base / f).resolve())
                files.append(f)
            rng = (doc.get("Model") or {}).get("range")
            marks = doc.get("Markers") or {}
            extra = doc.get("kshark-py") or {}
            vmap = {g: {int(v): int(p) for v, p in m.items()} for g, m in (extra.get("vcpu map") or {}).items()}
            return cls(files=files, range=tuple(int(x) for x in rng) if rng else None,
                       rows=list(extra.get("rows") or []),
                       markers={"A": (marks.get("markA") or {}).get("time"),
                                "B": (marks.get("markB") or {}).get("time")},
                       active_marker=marks.get("Active", "A"), vcpu_map=vmap,
                       filters=dict(extra.get("filters") or {}), tasks=list(extra.get("tasks") or []))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            if isinstance(e, SessionFileError):
                raise
            raise SessionFileError(f"malformed session file: {e}") from e


def save_session(state: SessionState, path: str | Path) -> None:
    path = Path(path)
    path.write_text(json.dumps(state.to_json(path.resolve().parent), indent=1))


def load_session_file(path: str | Path) -> SessionState:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except OSError as e:
        raise SessionFileError(f"{path}: {e.strerror}") from e
    except json.JSONDecodeError as e:
        raise SessionFileError(f"{path}: not JSON ({e})") from e
    return SessionState.from_json(doc, path.resolve().parent)
