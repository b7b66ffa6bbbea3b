"""Kernel text: the bytes a recording holds for names and messages, kept exactly.

The kernel does not promise UTF-8.  A process names itself with any bytes (``prctl(PR_SET_NAME)``,
no privilege needed) and that name reaches saved_cmdlines and every ``char comm[16]`` field;
``%s`` arguments, printk formats and symbol names are bytes too.  trace-cmd prints them as they
are, so the loaders keep them as they are:

* Arrow columns of string fields are ``large_binary`` (:mod:`.fields`), never ``string``: Arrow
  strings must be valid UTF-8, and a column whose type depended on its contents broke every
  concatenation of blocks.
* Python text (comms, kallsyms names, printk formats, the info text a print fmt renders) is ``str``
  decoded with UTF-8 and ``surrogateescape`` (:func:`decode`): valid UTF-8 reads as usual, and each
  byte that is not becomes one lone surrogate U+DC80..U+DCFF, so :func:`encode` gives back the
  exact bytes (``kshark-py report`` writes them so, byte for byte as trace-cmd).
* Only what is shown is made valid Unicode, with :func:`display` (U+FFFD for each such byte):
  Qt silently drops lone surrogates and Arrow refuses them, so the app, the info-text columns
  and Parquet string columns take :func:`display` text.

Identifiers used as keys all over the app (event, system and field names, instance and guest
names, clock names, option texts) are decoded with ``replace`` where they are read: they are
C identifiers or plain words in every real recording, and a corrupted byte there must not reach
a place that cannot take it.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa

ENCODING = "utf-8"
ERRORS = "surrogateescape"


def decode(raw: bytes | bytearray | memoryview) -> str:
    """Kernel bytes -> lossless text (undecodable bytes become U+DC80..U+DCFF)."""
    return bytes(raw).decode(ENCODING, ERRORS)


def encode(text: str) -> bytes:
    """The exact bytes :func:`decode` read (text made elsewhere encodes as UTF-8)."""
    try:
        return text.encode(ENCODING, ERRORS)
    except UnicodeEncodeError:  # a surrogate that no decode made: never fail on output
        return text.encode(ENCODING, "replace")


def display(text: str) -> str:
    """Valid Unicode for showing: each byte that is not UTF-8 becomes U+FFFD."""
    if text.isascii():
        return text
    try:
        text.encode(ENCODING)
        return text
    except UnicodeEncodeError:
        return encode(text).decode(ENCODING, "replace")


def byte_len(text: str) -> int:
    """Length in bytes, as C's printf counts widths and precisions."""
    return len(text) if text.isascii() else len(encode(text))


def pad(text: str, width: int, *, left: bool = False) -> str:
    """``%*s`` (``%-*s`` with ``left``) as C does it: padded to ``width`` bytes, not characters."""
    n = width - byte_len(text)
    if n <= 0:
        return text
    return text + " " * n if left else " " * n + text


def truncate(text: str, nbytes: int) -> str:
    """``%.*s``: the first ``nbytes`` bytes (a character cut in two keeps its bytes, escaped)."""
    if text.isascii():
        return text[:nbytes]
    raw = encode(text)
    return text if len(raw) <= nbytes else decode(raw[:nbytes])


def decode_array(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A binary (or string) Arrow array -> lossless Python text per element, as a numpy object
    array (nulls become None).  Each distinct value is decoded once."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    enc = arr if pa.types.is_dictionary(arr.type) else arr.dictionary_encode()
    uniq = np.array([None if v is None else (v if isinstance(v, str) else decode(v))
                     for v in enc.dictionary.to_pylist()] + [None], dtype=object)
    idx = enc.indices.fill_null(len(uniq) - 1).to_numpy(zero_copy_only=False)
    return uniq[idx]


def display_array(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A binary Arrow array as a string array for showing (U+FFFD for bytes that are not UTF-8).

    Valid data is a zero-copy cast; otherwise each distinct value is replaced once."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        return arr
    target = pa.large_string() if pa.types.is_large_binary(arr.type) else pa.string()
    try:
        return arr.cast(target)
    except pa.ArrowInvalid:
        enc = arr.dictionary_encode()
        labels = pa.array([None if v is None else v.decode(ENCODING, "replace")
                           for v in enc.dictionary.to_pylist()], target)
        return labels.take(enc.indices)


_SELECTED_CLOCK = re.compile(r"\[([^\[\]\s]+)\]")


def trace_clocks(text: str) -> tuple[list[str], str | None]:
    """(every clock, the selected one) of a ``trace_clock`` text: ``local [global] counter`` -> global.

    tracefs's trace_clock file, trace-cmd's TRACECLOCK option and a v6 flyrecord's clock all put the
    selected clock in brackets; one parser for all of them.  The first non-empty bracketed name is
    selected, wherever it stands; without one, selected is None.  The text ends at a NUL.
    """
    text = text.split("\0", 1)[0]
    m = _SELECTED_CLOCK.search(text)
    return text.replace("[", " ").replace("]", " ").split(), (m.group(1) if m else None)
