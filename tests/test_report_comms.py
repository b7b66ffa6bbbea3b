"""Task names as trace-cmd prints them, against the real libtraceevent's comm table.

trace-cmd names each printed row by looking its pid up in libtraceevent's table while the sched
plugin registers comms from the events it prints.  Comms registered before the first lookup go
into a list with duplicates; afterwards a lookup's bsearch can land on a different duplicate as
other pids are inserted, so one task is printed under two names (found in a recorded session:
``pytest-13426`` then ``python-13426``).  Here random sessions are played through the installed
libtraceevent (ctypes) and through :func:`kshark_py.report._names_as_printed`; the names must agree.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import random

import numpy as np
import pytest

from kshark_py.report import _names_as_printed

_LIB = ctypes.util.find_library("traceevent")


@pytest.fixture(scope="module")
def tep_lib():
    if _LIB is None:
        pytest.skip("libtraceevent is not installed (Debian: libtraceevent1, a dependency of trace-cmd)")
    lib = ctypes.CDLL(_LIB)
    lib.tep_alloc.restype = ctypes.c_void_p
    lib.tep_free.argtypes = [ctypes.c_void_p]
    lib.tep_data_comm_from_pid.restype = ctypes.c_char_p
    lib.tep_data_comm_from_pid.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.tep_register_comm.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.tep_parse_saved_cmdlines.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    return lib


def _play(lib, saved, rows):
    """rows: (pid, [(pid, comm) registered while printing the row]) -> names libtraceevent prints."""
    tep = lib.tep_alloc()
    text = "".join(f"{p} {c}\n" for p, c in saved).encode()
    lib.tep_parse_saved_cmdlines(tep, text)
    names = []
    for pid, regs in rows:
        names.append(lib.tep_data_comm_from_pid(tep, pid).decode())
        for p, c in regs:
            lib.tep_register_comm(tep, c.encode(), p)
    lib.tep_free(tep)
    return names


@pytest.mark.parametrize("seed", range(40))
def test_names_match_libtraceevent(tep_lib, seed):
    rng = random.Random(seed)
    pool = [rng.randrange(1, 60) for _ in range(rng.randrange(3, 25))]
    comms = ["a", "b", "c", "dd", "e"]
    saved = [(rng.choice(pool), rng.choice(comms)) for _ in range(rng.randrange(0, 30))]
    rows = []
    for k in range(rng.randrange(1, 120)):
        pid = 0 if (k < rng.randrange(0, 6) or rng.random() < 0.15) else rng.choice(pool + [0])
        regs = [(rng.choice(pool + [0]), rng.choice(comms)) for _ in range(rng.choice([0, 0, 1, 2]))]
        rows.append((pid, regs))
    expect = _play(tep_lib, saved, rows)
    pids = np.array([p for p, _ in rows], np.int64)
    pos = np.arange(len(rows)) * 3  # print positions need not be consecutive (other files' rows)
    reg = [(pos[i], p, c) for i, (_, regs) in enumerate(rows) for p, c in regs]
    reg_pos = np.array([r[0] for r in reg], np.int64)
    reg_pid = np.array([r[1] for r in reg], np.int64)
    got = _names_as_printed(saved, pids, pos, reg_pos, reg_pid, [r[2] for r in reg])
    assert list(got) == expect
