"""The compiled kernels (:mod:`.kernels`) built ahead of time into an extension module, so a load
uses them without importing numba.

Why: numba's JIT loads the kernels from its disk cache, but only after importing numba (0.10-0.15 s
of CPU on the GIL, ~110 MB of resident memory) and rebuilding each kernel (0.03 s).  On a
3-million-event export that is a third of the whole command, on its critical path (the decode
waits for the kernels).  The same functions compiled once by numba's ``pycc`` at setup load in
0.2 ms and need only numpy.

Built by ``python -m kshark_py.loaders.aot`` (``setup.sh`` runs it; it needs a C compiler and the
Python headers, which numba's pycc links with), into this package's folder by default.  The
module's name carries a hash of the kernels' sources (:func:`source_tag`), so a module built from
other sources (``kernels.py`` edited since) is never loaded: :func:`load` returns None and the
loader uses numba's JIT, the same code, exactly as before.

The extension does no type checks of its own: handed an array of another type than its
signature's, it reads the wrong memory.  :data:`SIGNATURES` is therefore the one declaration of
every argument, read by the build and by :func:`load`'s wrappers, which check every array (dtype,
one dimension, contiguous, writable where written) and pass a call that does not match to the
JIT kernel (:mod:`.kernels`, imported then), so a mismatch costs speed, never memory safety.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

HERE = Path(__file__).resolve().parent

# argument kinds
INT = "int64"
BOOL = "bool"
IN = "in"
"""An array the kernel only reads (a read-only array is accepted: the mapped file, Arrow's columns)."""
OUT = "out"
"""An array the kernel writes (must be writable)."""

U8, U64, I16, I32, I64 = np.dtype(np.uint8), np.dtype(np.uint64), np.dtype(np.int16), np.dtype(np.int32), \
    np.dtype(np.int64)
_MERGED = (I64, I32, I32, U8, U8, I64, I32)
"""The merge's seven columns in the loader's order (ts pid eid flags preempt off len: ``buffer``)."""

SIGNATURES: dict[str, tuple[str, tuple[tuple[str, np.dtype | None], ...]]] = {
    # name: (return type, arguments) with the types the loader passes (kernels._call_each too)
    "decode_block": ("int64x3", (
        (IN, U8), (IN, np.dtype(np.uint32)), (BOOL, None), (BOOL, None),
        (INT, None), (INT, None), (INT, None), (INT, None),
        (OUT, U64), (OUT, I64), (OUT, I32), (OUT, I32), (OUT, I32), (OUT, U8), (OUT, U8), (INT, None),
        (OUT, I64), (OUT, I64), *[(OUT, I64)] * 6)),
    "merge_rows": ("none", (
        (INT, None), (INT, None), (IN, I64), (IN, I16), (OUT, I64), (IN, I64), (OUT, I64),
        (IN, I64), (OUT, I64), (IN, I64), (OUT, I64), (OUT, I16),
        *[x for d in _MERGED for x in ((IN, d), (OUT, d))], (OUT, I64))),
    "cut_pass": ("int64", (
        (BOOL, None), (IN, I32), (IN, I16), (IN, I32), (IN, I64), (IN, I64), (IN, I32), (IN, I32), (IN, I64),
        (INT, None), (INT, None), (INT, None),
        (OUT, I16), (OUT, I64), (OUT, I32), (OUT, I64), (OUT, np.dtype(np.bool_)),
        (OUT, I64), (OUT, I64), (OUT, I64))),
}

_SOURCES = ("kernels.py", "layout.py", "aot.py")
"""The files whose text decides the compiled code (kernels, the layout constants they read, the
signatures here): any change gives another :func:`source_tag`."""


def source_tag() -> str:
    """A checksum of the kernels' sources and numpy's version (CRC-32 and Adler-32: zlib is loaded
    anyway, hashlib's import costs 5-8 ms of the export's start): part of the module's name, so only
    a module built from these very sources, against this numpy (whose C interface it calls), loads."""
    text = b"".join((HERE / name).read_bytes() for name in _SOURCES) + np.__version__.encode()
    return f"{zlib.crc32(text):08x}{zlib.adler32(text):08x}"


def module_name(tag: str | None = None) -> str:
    return f"_kernels_aot_{tag or source_tag()}"


def module_path(folder: Path | str = HERE, tag: str | None = None) -> Path:
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]  # this interpreter's (.cpython-311-x86_64-linux-gnu.so)
    return Path(folder) / (module_name(tag) + suffix)


class AotKernels:
    """The kernels of one built module, each behind its argument check (the module doc); the same
    names as :mod:`.kernels` has."""

    def __init__(self, mod: ModuleType) -> None:
        self.module = mod
        self.fallbacks = 0
        """Calls that did not match the signature and went to the JIT kernel (tests expect none)."""
        for name, (_, args) in SIGNATURES.items():
            setattr(self, name, self._checked(name, getattr(mod, name), args))

    def _checked(self, name: str, fn: Callable, args: tuple) -> Callable:
        arrays = tuple((i, dt, kind == OUT) for i, (kind, dt) in enumerate(args) if kind in (IN, OUT))
        n = len(args)
        nd = np.ndarray

        def call(*a):
            if len(a) == n:
                for i, dt, out in arrays:
                    x = a[i]
                    if (type(x) is not nd or x.dtype != dt or x.ndim != 1 or not x.flags.c_contiguous
                            or (out and not x.flags.writeable)):
                        break
                else:
                    return fn(*a)
            self.fallbacks += 1
            from . import kernels

            return getattr(kernels, name)(*a)

        call.__name__ = name
        call.__doc__ = f"{name} of :mod:`.kernels`, compiled ahead of time (arguments checked first)."
        return call


def load(folder: Path | str = HERE) -> AotKernels | None:
    """The kernels of the module built from the current sources in ``folder``, or None (none built
    for this interpreter, or built from other sources, or it does not load)."""
    path = module_path(folder)
    if not path.is_file():
        return None
    try:
        spec = importlib.util.spec_from_file_location(path.name.split(".")[0], path)
        if spec is None or spec.loader is None:
            return None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    except (ImportError, OSError):
        return None
    if not all(hasattr(mod, name) for name in SIGNATURES):
        return None
    return AotKernels(mod)


def describe(folder: Path | str = HERE) -> str:
    """Which kernels a load here uses, in one line (the benchmarks print it beside their numbers)."""
    if load(folder) is not None:
        return f"kernels: built ahead of time ({module_path(folder).name})"
    return "kernels: numba's JIT (no module of the current sources: python -m kshark_py.loaders.aot)"


def _numba_type(kind: str, dt: np.dtype | None):
    from numba import types
    from numba.np.numpy_support import from_dtype

    if kind == INT:
        return types.int64
    if kind == BOOL:
        return types.boolean
    return types.Array(from_dtype(dt), 1, "C", readonly=kind == IN)


def _return_type(name: str):
    from numba import types

    return {"int64x3": types.UniTuple(types.int64, 3), "int64": types.int64, "none": types.none}[name]


def build(folder: Path | str = HERE) -> Path:
    """Compile the kernels of :mod:`.kernels` into ``folder`` for this interpreter, without the GIL
    held while they run (as their ``nogil``); removes modules of other sources built there before.
    Returns the module's path.  Raises whatever numba's pycc raises when it cannot (no C compiler,
    no Python headers).

    For pycc's portable x86-64 target, not this machine's CPU as numba's JIT compiles: the same
    speed here (a 19 M-event load 0.69 s either way), and a source tree copied to an older CPU
    cannot die of an illegal instruction."""
    import warnings

    from numba import errors as nb_errors

    with warnings.catch_warnings():  # pycc is "pending deprecation": this build is its one user
        warnings.simplefilter("ignore", nb_errors.NumbaPendingDeprecationWarning)
        from numba.pycc import CC
        from numba.pycc import compiler as pycc_compiler

    from . import kernels

    folder = Path(folder)
    tag = source_tag()
    cc = CC(module_name(tag))
    cc.output_dir = str(folder)
    cc.verbose = False
    for name, (ret, args) in SIGNATURES.items():
        sig = _return_type(ret)(*[_numba_type(k, d) for k, d in args])
        cc.export(name, sig)(getattr(kernels, name).py_func)

    base = pycc_compiler.Flags

    class _NoGil(base):  # the kernels' nogil=True: pycc's wrappers would hold the GIL
        def __init__(self, *a, **k) -> None:
            super().__init__(*a, **k)
            self.release_gil = True

    pycc_compiler.Flags = _NoGil
    try:
        cc.compile()
    finally:
        pycc_compiler.Flags = base
    out = module_path(folder, tag)
    for old in folder.glob("_kernels_aot_*"):
        if old.name.endswith(importlib.machinery.EXTENSION_SUFFIXES[0]) and old != out:
            old.unlink()
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sysconfig

    p = argparse.ArgumentParser(prog="python -m kshark_py.loaders.aot",
                                description="Compile kshark-py's decode kernels ahead of time (needs a C compiler).")
    p.add_argument("--out", default=str(HERE), help="folder for the module (default: the package's own)")
    p.add_argument("--check", action="store_true", help="only say whether a module of the current sources loads")
    a = p.parse_args(argv)
    if a.check:
        ok = load(a.out) is not None
        print(f"{module_path(a.out)}: {'loads' if ok else 'missing or stale'}")
        return 0 if ok else 1
    try:
        out = build(a.out)
    except Exception as e:  # noqa: BLE001 (any failure means: no module; the JIT stays)
        print(f"kshark-py: the ahead-of-time kernels were not built ({type(e).__name__}: {e}); "
              f"loads use numba's JIT instead (~0.15 s more per load)", file=sys.stderr)
        return 1
    if load(a.out) is None:
        print(f"kshark-py: {out} was built but does not load", file=sys.stderr)
        return 1
    print(f"built {out} ({os.path.getsize(out) // 1024} KB, {sysconfig.get_platform()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
