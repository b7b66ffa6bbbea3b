"""The task of each event by name (:class:`TaskIndex`) and the text match used to search task names.

"Task contains X" is answered by matching the few distinct names and mapping the answer back over
the merged rows with one gather.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..loaders.tasks import task_comm
from ..loaders.text import display
from .distinct import map_values
from .merged import merged_gather, stream_column

if TYPE_CHECKING:
    from ..loaders.tracedat import TraceFile
    from .session import Session


MATCH_MODES = ("contains", "full match", "not contains")


def text_matcher(text: str, mode: str) -> Callable[[str], bool]:
    """The search/filter predicate for one mode: "contains" and "not contains" ignore case (what a
    user typing a fragment means); "full match" compares exactly."""
    if mode == "full match":
        return lambda s: s == text
    low = text.lower()
    if mode == "contains":
        return lambda s: low in s.lower()
    if mode == "not contains":
        return lambda s: low not in s.lower()
    raise ValueError(f"match mode must be one of {MATCH_MODES}, not {mode!r}")


class TaskIndex:
    """Who each event belongs to, by name: comm per merged row, dictionary-encoded.

    Names come from :func:`~kshark_py.loaders.tasks.task_names` (saved cmdlines, then sched event
    comms), computed once per file, so like KernelShark every event of a pid shows the pid's final
    name.  ``labels`` holds each distinct comm once; :meth:`merged_codes` indexes it per event.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        by_file: dict[int, dict[int, str]] = {}
        self.names: list[dict[int, str]] = []
        for st in session.streams:
            tf: TraceFile = st.trace
            if id(tf) not in by_file:  # per file: every stream of a file gets its file's names
                by_file[id(tf)] = session.task_names(st.index)
            self.names.append(by_file[id(tf)])
        label_of: dict[str, int] = {}
        self.labels: list[str] = []
        self.stream_pids: list[np.ndarray] = []
        """Distinct pids of each stream (ascending)."""
        self.stream_pid_counts: list[np.ndarray] = []
        self.stream_pid_labels: list[np.ndarray] = []
        """Label index of each distinct pid of each stream (per-row codes are made on demand)."""
        for st in session.streams:
            uniq, counts = session.pid_counts(st.index)
            codes = np.empty(len(uniq), np.int32)
            for i, p in enumerate(uniq.tolist()):
                c = self.comm(st.index, p)
                if c not in label_of:
                    label_of[c] = len(self.labels)
                    self.labels.append(c)
                codes[i] = label_of[c]
            self.stream_pids.append(uniq.astype(np.int64))
            self.stream_pid_counts.append(counts.astype(np.int64))
            self.stream_pid_labels.append(codes)
        self._merged_codes: np.ndarray | None = None

    def comm(self, stream: int, pid: int) -> str:
        """The task name of ``pid`` in ``stream`` (``<idle>`` for 0, ``<...>`` if nobody named it), as
        shown: bytes that are not UTF-8 read U+FFFD (:attr:`names` keeps them)."""
        return display(task_comm(self.names[stream], pid))

    def tasks(self, stream: int) -> list[tuple[int, str, int]]:
        """(pid, comm, event count) of every pid with events in ``stream``, by pid."""
        return [(p, self.comm(stream, p), int(c))
                for p, c in zip(self.stream_pids[stream].tolist(), self.stream_pid_counts[stream].tolist(),
                                strict=True)]

    def merged_codes(self) -> np.ndarray:
        """int32 label index per merged row (computed on first use, then kept)."""
        if self._merged_codes is None:
            merged = self.session.merged()
            per_stream = []
            for st in self.session.streams:
                labels = self.stream_pid_labels[st.index]  # aligned with the pid column's distinct values
                per_stream.append(map_values(stream_column(st, "pid"), lambda _uniq, labels=labels: labels))
            self._merged_codes = merged_gather(merged, per_stream, fill=0, dtype=np.int32)
        return self._merged_codes

    def label_mask(self, pred: Callable[[str], bool]) -> np.ndarray:
        """bool per label: the predicate run once per distinct name."""
        return np.fromiter((pred(s) for s in self.labels), bool, len(self.labels))

    def match(self, text: str, mode: str = "contains") -> np.ndarray:
        """bool per merged row: does its task name match ``text`` in ``mode``."""
        return self.label_mask(text_matcher(text, mode))[self.merged_codes()]

    def pids_matching(self, stream: int, text: str, mode: str = "contains") -> list[int]:
        """pids of ``stream`` whose name matches (for "filter tasks named X")."""
        pred = text_matcher(text, mode)
        return [p for p in self.stream_pids[stream].tolist() if pred(self.comm(stream, p))]
