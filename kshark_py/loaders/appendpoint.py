"""Where a finished v7 file can be extended: the field that chains a new options section, the strings offset.

The host completes a guest's file after the agent has sent its header, metadata and first options
section: it appends the CPU data (a BUFFER section and option) and later the time-sync options, each
new options section chained from the ``next`` field of the last DONE option, and each new section's
description string numbered after the strings already in the file.  This module finds those two
places in a file that :func:`~kshark_py.loaders.tracedat.open_trace` has already validated, so the
writer needs no parser of its own (the peer's bytes are checked once, by the reader).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import CorruptSectionError, TruncatedFileError
from .layout import SECTION_FLAG_COMPRESSED, OptionId
from .tracedat import TraceFile

__all__ = ["AppendPoint", "append_point"]


@dataclass(frozen=True)
class AppendPoint:
    """Where to chain and number what is appended to a v7 file."""

    last_done_field: int
    """File offset of the u64 "next options section" field of the chain's last DONE option."""
    strings_size: int
    """Bytes of section-description strings the file holds (uncompressed): the next string's offset."""


def append_point(tf: TraceFile) -> AppendPoint:
    """The :class:`AppendPoint` of an opened v7 file; typed errors if it cannot be extended in place."""
    if tf.version < 7 or not tf.options_sections or tf.first_section is None:
        raise CorruptSectionError(f"version {tf.version} file: only version 7 files can be extended",
                                  path=tf.path, section="file header", offset=0)
    if tf.truncated_options is not None:
        raise TruncatedFileError("the options chain runs past the end of the file", path=tf.path,
                                 section="options", offset=tf.truncated_options)
    return AppendPoint(_last_done_field(tf), _strings_size(tf))


def _last_done_field(tf: TraceFile) -> int:
    lay, buf = tf.lay, tf.buf
    last = tf.options_sections[-1]
    _sid, flags, _desc, size = lay.section_header.unpack_from(buf, last)  # the reader read this section
    if flags & SECTION_FLAG_COMPRESSED:
        raise CorruptSectionError("the last options section is compressed: its DONE option cannot be patched "
                                  "in place", path=tf.path, section="options", offset=last)
    pos = last + lay.section_header.size
    end = pos + size
    hdr = lay.option_header
    while pos + hdr.size <= end:
        oid, osize = hdr.unpack_from(buf, pos)
        if oid == OptionId.DONE and osize >= lay.u64.size:
            return pos + hdr.size
        pos += hdr.size + osize
    raise CorruptSectionError("no DONE option ends the last options section", path=tf.path, section="options",
                              offset=last)


def _strings_size(tf: TraceFile) -> int:
    """Sum of the STRINGS sections, walking the contiguous sections from the first to the end of the file."""
    lay, buf, fs = tf.lay, tf.buf, tf.file_size
    hdr = lay.section_header
    total = 0
    pos = tf.first_section
    while pos + hdr.size <= fs:
        sid, flags, _desc, size = hdr.unpack_from(buf, pos)
        body = pos + hdr.size
        if body + size > fs:
            raise TruncatedFileError(f"section {sid} of {size} bytes runs past the end of the {fs}-byte file",
                                     path=tf.path, section="sections", offset=pos)
        if sid == OptionId.STRINGS:
            if flags & SECTION_FLAG_COMPRESSED:
                if size < lay.compress_block.size:
                    raise CorruptSectionError("compressed strings section without its sizes", path=tf.path,
                                              section="strings", offset=pos)
                total += lay.compress_block.unpack_from(buf, body)[1]
            else:
                total += size
        pos = body + size
    return total
