"""The kernels built ahead of time (kshark_py/loaders/aot): only a module of the current sources
loads; a call whose arrays do not match the compiled signature goes to the JIT kernel instead of
reading the wrong memory; the kernels run without the GIL; a load that uses them never imports
numba.  (tests/test_kernels.py checks them against numpy on the whole corpus.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from kshark_py.loaders import aot
from tests.support import kernelimpl
from tests.support.corpus import TRACES


@pytest.fixture
def k(tmp_path_factory):
    return kernelimpl.aot_kernels(tmp_path_factory)


def _cut_args(n: int, ncpu: int = 2, *, fill: bool = False):
    cpu = (np.arange(n) % ncpu).astype(np.int16)
    e = np.zeros(0, np.int64)
    outs = (np.zeros(n + ncpu, np.int16), np.zeros(n + ncpu, np.int64), np.zeros(n + ncpu, np.int32),
            np.zeros(n + ncpu, np.int64), np.zeros(n + ncpu, np.bool_)) if fill else \
        (e.astype(np.int16), e, e.astype(np.int32), e, e.astype(np.bool_))
    return [fill, np.zeros(n, np.int32), cpu, np.arange(n, dtype=np.int32) % 5, np.arange(n, dtype=np.int64), e,
            np.zeros(0, np.int32), np.zeros(0, np.int32), e, ncpu, -2, -1, *outs, *np.zeros((3, ncpu), np.int64)]


def test_source_tag_follows_the_kernels_sources(tmp_path, monkeypatch):
    """Another text of kernels.py (or of the layout constants, or of the signatures), or another
    numpy, is another tag, so a module built before is not found (the loader then uses the JIT)."""
    for name in aot._SOURCES:
        shutil.copy(aot.HERE / name, tmp_path / name)
    monkeypatch.setattr(aot, "HERE", tmp_path)
    tag = aot.source_tag()
    for name in aot._SOURCES:
        text = (tmp_path / name).read_text()
        (tmp_path / name).write_text(text + "\n# edited\n")
        assert aot.source_tag() != tag, name
        (tmp_path / name).write_text(text)
    assert aot.source_tag() == tag
    monkeypatch.setattr(np, "__version__", np.__version__ + ".other")  # the module calls numpy's C interface
    assert aot.source_tag() != tag
    monkeypatch.undo()
    monkeypatch.setattr(aot, "HERE", tmp_path)
    assert aot.load(tmp_path) is None  # nothing built there for these sources


def test_a_mismatched_call_goes_to_the_jit_kernel_with_the_same_result(k):
    """Arrays of another dtype, not contiguous, of two dimensions, or read-only where the kernel
    writes: each goes to the JIT (counted), never into the compiled code, and gives its result."""
    from kshark_py.loaders import kernels

    args = _cut_args(1000, fill=True)
    before = k.fallbacks
    assert k.cut_pass(*args) == kernels.cut_pass(*_cut_args(1000, fill=True))
    assert k.fallbacks == before  # the matching call ran compiled
    bad = {
        "dtype": (4, np.arange(1000, dtype=np.float64)),
        "strided": (4, np.arange(2000, dtype=np.int64)[::2]),
        "2-D": (1, np.zeros((1000, 1), np.int32)),
    }
    for i, (at, x) in enumerate(bad.values(), 1):
        a = list(args)
        a[at] = x
        try:
            want = kernels.cut_pass(*a)
        except Exception as e:  # noqa: BLE001 (numba refuses some: then both refuse alike)
            with pytest.raises(type(e)):
                k.cut_pass(*a)
        else:
            assert k.cut_pass(*a) == want
        assert k.fallbacks == before + i
    ro = np.zeros(1002, np.int64)
    ro.flags.writeable = False
    a = list(args)
    a[13] = ro  # o_time, written by the kernel
    from numba.core.errors import TypingError

    with pytest.raises(TypingError, match="readonly"):  # numba refuses to write a read-only array: so do we
        k.cut_pass(*a)
    assert k.fallbacks == before + 4
    a = _cut_args(1000, fill=True)
    a[4].flags.writeable = False  # an input may be read-only (Arrow's columns, the mapped file)
    assert k.cut_pass(*a) == kernels.cut_pass(*_cut_args(1000, fill=True))
    assert k.fallbacks == before + 4


def test_the_kernels_run_without_the_gil(k):
    """While one thread is in a kernel, another runs Python: the export's decode and the merge's two
    halves rely on it (numba's ``nogil``; pycc's wrappers would hold the GIL if the build did not
    ask)."""
    n = 80_000_000  # zero pages: no memory is touched beyond the shared zero page
    args = _cut_args(0)
    args[1:5] = [np.zeros(n, np.int32), np.zeros(n, np.int16), np.zeros(n, np.int32), np.zeros(n, np.int64)]
    seen = {}

    def kernel():
        seen["start"] = time.perf_counter()
        k.cut_pass(*args)
        seen["end"] = time.perf_counter()

    th = threading.Thread(target=kernel)
    th.start()
    while "start" not in seen:
        time.sleep(0.0005)
    time.sleep(0.002)
    ran = time.perf_counter()  # this line cannot run while the kernel holds the GIL
    th.join()
    assert seen["end"] - seen["start"] > 0.03, "the kernel ran too briefly to tell"
    assert ran < seen["end"] - 0.01


def test_a_load_with_the_built_kernels_never_imports_numba(k, tmp_path):
    """The module of the current sources loads and decodes every block and the merge of a real file
    in a process that never imports numba (nor llvmlite)."""
    folder = os.path.dirname(k.module.__file__)
    code = (
        "import sys\n"
        "from kshark_py.loaders import aot, pages\n"
        f"k = aot.load({folder!r})\n"
        "assert k is not None\n"
        "pages._kernels = k\n"
        "pages.start_warm_up(); pages._warm.join(); pages._kernels = k\n"
        "from kshark_py.loaders.tracedat import open_trace\n"
        "tf = open_trace(sys.argv[1])\n"
        "b = tf.buffers[0]\n"
        "n = b.events.num_rows\n"
        "print(n, b.compiled, k.fallbacks, 'numba' in sys.modules, 'llvmlite' in sys.modules)\n"
    )
    env = dict(os.environ, KSHARK_PY_COMPILED_MIN_BYTES="0", KSHARK_PY_NO_CACHE="1")
    out = subprocess.run([sys.executable, "-c", code, str(TRACES / "vm-2guests" / "trace.dat")], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) > 0
    assert out[1:] == ["True", "0", "False", "False"]


def test_the_build_command_says_whether_the_module_loads(k, tmp_path, capsys):
    assert aot.main(["--check", "--out", os.path.dirname(k.module.__file__)]) == 0
    assert "loads" in capsys.readouterr().out
    assert aot.main(["--check", "--out", str(tmp_path)]) == 1
    assert "missing or stale" in capsys.readouterr().out
