"""Session files: the Qt-free reader and writer live in :mod:`kshark_py.model.sessionfile`."""

from __future__ import annotations

from ..model.sessionfile import (
    SessionFileError,
    SessionState,
    StreamState,
    load_session_file,
    save_session,
)

__all__ = ["SessionFileError", "SessionState", "StreamState", "load_session_file", "save_session"]
