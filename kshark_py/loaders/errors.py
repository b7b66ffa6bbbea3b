"""One exception family for everything the loaders refuse, and one record for what they lost.

Every error names the file, the part of the file it was reading (the section) and the byte offset,
so a user can tell a truncated download from a corrupted section from a feature we do not support.
The one exception is the base :class:`TraceDatError` for a file that cannot be opened at all (missing,
no permission, not a regular file): no byte of it was read.

A load that succeeds may still have lost data (a cut or, with ``strict=False``, damaged file):
:class:`DataLoss` records say what, and every front end prints them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass


class TraceDatError(Exception):
    """Base of all trace file errors: the file cannot be read (or not this part of it)."""

    def __init__(self, message: str, *, path: str | None = None, section: str | None = None,
                 offset: int | None = None) -> None:
        self.message = message
        self.path = path
        self.section = section
        self.offset = offset
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """The error as one line: ``FILE: SECTION at byte OFFSET: MESSAGE``."""
        where = []
        if self.section:
            where.append(self.section)
        if self.offset is not None:
            where.append(f"at byte {self.offset}")
        prefix = f"{self.path}: " if self.path else ""
        return f"{prefix}{' '.join(where)}: {self.message}" if where else f"{prefix}{self.message}"

    def with_context(self, *, path: str | None = None, section: str | None = None) -> TraceDatError:
        """Fill in context the raiser did not know (the file name, usually); returns self."""
        if path and not self.path:
            self.path = path
        if section and not self.section:
            self.section = section
        self.args = (self.one_line(),)
        return self


class BadMagicError(TraceDatError):
    """The file does not start with trace-cmd's magic bytes."""


class UnsupportedVersionError(TraceDatError):
    """A file version (or layout variant) this reader does not handle."""


class TruncatedFileError(TraceDatError):
    """The file ends before a structure it announces."""


class CorruptSectionError(TraceDatError):
    """A section, option or metadata block whose contents contradict themselves or the file."""


class UnsupportedCompressionError(TraceDatError):
    """The file names a compression algorithm we cannot decompress."""


class DecompressionError(TraceDatError):
    """A compressed block that does not decompress to the size its header states."""


class FormatParseError(TraceDatError):
    """An event format text we cannot parse."""


# --- data loss: what a load that succeeded could not read --------------------------------------------

LOSS_TRUNCATED = "truncated"
"""The file ends before data it announces (a cut copy, a full disk, a download that stopped)."""
LOSS_CORRUPT = "corrupt"
"""Data whose contents lie (a bad page or chunk), skipped in lenient mode (``strict=False``)."""
LOSS_INDEX = "index lost"
"""v7: the BUFFER option that says where a buffer's CPU data lies was cut off with the file's end."""


@dataclass(frozen=True)
class DataLoss:
    """One piece of a trace file that a successful load could not read, with what it cost.

    Why a record and not a string: every front end (``report``/``export``/``vcpus`` on stderr, the
    app's banner, a script) must say the same thing, and callers decide on counts (``--strict``
    fails on any). Counts are None where the file cannot tell them; ``at_least`` marks lower
    bounds (compressed data: the sizes of chunks after a cut are unknown).
    """

    path: str
    kind: str
    """:data:`LOSS_TRUNCATED`, :data:`LOSS_CORRUPT` or :data:`LOSS_INDEX`."""
    buffer: str | None
    """Instance name (``""``: the top buffer); None when the loss is not one buffer's."""
    cpu: int | None
    offset: int
    """File byte where the loss starts: where the file ends, or the bad page/chunk."""
    what: str
    """Where the lost data was: ``file ends at byte N inside CPU 1's data (bytes A-B)``."""
    pages: int | None = None
    bytes: int | None = None
    """Bytes of the file's data that could not be used (compressed bytes when ``compressed``)."""
    events: int | None = None
    at_least: bool = False
    compressed: bool = False

    def counts(self) -> str:
        """``134 pages (548,864 bytes)``, ``at least 3 pages``, ``all data``, ``index``..."""
        parts = []
        if self.events is not None:
            parts.append(f"{self.events:,} events")
        if self.pages is not None:
            parts.append(f"{self.pages:,} page{'' if self.pages == 1 else 's'}")
        if self.bytes is not None:
            b = f"{self.bytes:,} {'compressed ' if self.compressed else ''}bytes"
            parts.append(f"({b})" if parts else b)
        if not parts:
            return "index" if self.kind == LOSS_INDEX else "all data" if self.cpu is not None else "data"
        return ("at least " if self.at_least else "") + " ".join(parts)

    def where(self) -> str:
        """``cpu 1``, ``buffer irqbuf cpu 0``, ``buffer irqbuf`` or ``file``."""
        parts = []
        if self.buffer:
            parts.append(f"buffer {self.buffer}")
        if self.cpu is not None:
            parts.append(f"cpu {self.cpu}")
        return " ".join(parts) or ("top buffer" if self.buffer == "" else "file")

    def one_line(self) -> str:
        """``FILE: cpu 1: 134 pages (548,864 bytes) lost: file ends at byte N inside ...``."""
        return f"{self.path}: {self.where()}: {self.counts()} lost: {self.what}"
