"""One exception family for everything the loaders refuse.

Every error names the file, the part of the file it was reading (the section) and the byte offset,
so a user can tell a truncated download from a corrupted section from a feature we do not support.
"""

from __future__ import annotations


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
