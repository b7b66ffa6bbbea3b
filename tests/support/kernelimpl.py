"""The two implementations of the compiled kernels, for tests that check each against numpy: the
module built ahead of time from the current sources (:mod:`kshark_py.loaders.aot`; setup.sh builds
it; when it is missing or stale, built here into a temp folder, ~4 s, so the tests always check the
code as it is) and numba's JIT (:mod:`kshark_py.loaders.kernels`, what a machine without a C
compiler uses)."""

from __future__ import annotations

import pytest

from kshark_py.loaders import aot, pages

_built: list[aot.AotKernels] = []


def aot_kernels(tmp_path_factory: pytest.TempPathFactory) -> aot.AotKernels:
    """The ahead-of-time kernels of the current sources (the package's own module, else one built now)."""
    if not _built:
        k = aot.load()
        if k is None:
            folder = tmp_path_factory.mktemp("aot")
            aot.build(folder)
            k = aot.load(folder)
            assert k is not None, "the module built from the current sources does not load"
        _built.append(k)
    return _built[0]


def use(kind: str, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """Make the loader use ``kind`` ("aot" or "jit") for the rest of the test; returns it."""
    from kshark_py.loaders import kernels

    pages.start_warm_up()
    assert pages.wait_kernels()
    impl = aot_kernels(tmp_path_factory) if kind == "aot" else kernels
    if kind == "jit":
        kernels.warm_up()
    monkeypatch.setattr(pages, "_kernels", impl)
    return impl
