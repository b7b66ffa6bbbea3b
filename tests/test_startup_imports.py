"""Start-up cost: each command imports only what it uses (issue 14, goal 4).

Why a test: every command builds the whole parser, and one eager import in a command module (the
recorder, pyarrow, Qt) is paid by all of them; ``kshark-py --help`` went from 0.19 s to 0.07 s in
process when the recorder and pyarrow left the parser's imports.  Each case runs ``kshark_py.cli.main``
in a fresh interpreter and lists the heavy modules it imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[1] / "resources" / "demo"

HEAVY = ("numpy", "pyarrow", "pyarrow.parquet", "PySide6", "pyqtgraph", "duckdb", "zstandard",
         "kshark_py.capture.cli", "kshark_py.capture.recorder", "kshark_py.model.analysis", "kshark_py.ui",
         "kshark_py.plots", "kshark_py.model.session")

_PROBE = """
import json, sys
from kshark_py.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def _imported(*argv: str) -> set[str]:
    r = subprocess.run([sys.executable, "-c", _PROBE.format(heavy=HEAVY), *argv], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "QT_QPA_PLATFORM": "offscreen", "KSHARK_PY_NO_CACHE": "1"})
    assert r.returncode == 0, r.stderr
    return set(json.loads(r.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("argv", [["--help"], ["export", "--help"], ["stats", "--help"], ["sql", "--help"],
                                  ["report", "--help"], ["--bogus-option"]])
def test_help_and_usage_errors_import_no_library(argv):
    assert _imported(*argv) == set()


def test_single_file_export_imports_no_gui_sql_recorder_or_session(tmp_path):
    got = _imported("export", "-i", str(DEMO / "trace.dat"), "-o", str(tmp_path / "x.parquet"))
    assert got == {"numpy", "pyarrow", "pyarrow.parquet", "zstandard"}, got


def test_stats_imports_no_gui_sql_or_recorder():
    got = _imported("stats", "-i", str(DEMO / "trace.dat"), "--wakeups", "--format", "csv")
    assert not got & {"PySide6", "pyqtgraph", "duckdb", "kshark_py.capture.cli", "kshark_py.ui", "kshark_py.plots"}
    assert {"numpy", "pyarrow", "kshark_py.model.analysis"} <= got


def test_record_help_is_still_the_recorders():
    r = subprocess.run([sys.executable, "-m", "kshark_py.cli", "record", "-h"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "kshark-py record [HOST OPTIONS]" in r.stdout
    r = subprocess.run([sys.executable, "-m", "kshark_py.cli", "agent", "-h"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "port (default 823" in r.stdout


_SHOT = """
import json, os, sys
real_exit = os._exit


def leave(code):  # the app leaves by os._exit: list the modules first
    print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
    real_exit(code)


os._exit = leave
from kshark_py.cli import main
main(sys.argv[1:])
"""


def test_the_demo_window_imports_no_sql_recorder_or_parquet(tmp_path):
    """The first window (the demo, rendered offscreen) needs Qt, pyqtgraph and the model, not DuckDB
    (the SQL console imports it when opened), the recorder (Tools > Record...) or Parquet."""
    heavy = ("duckdb", "kshark_py.capture.cli", "kshark_py.capture.recorder", "pyarrow.parquet", "perfetto",
             "PySide6", "pyqtgraph")
    r = subprocess.run([sys.executable, "-c", _SHOT.format(heavy=heavy), "--screenshot", str(tmp_path / "s.png")],
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "QT_QPA_PLATFORM": "offscreen", "KSHARK_PY_NO_CACHE": "1"})
    assert r.returncode == 0 and (tmp_path / "s.png").exists(), r.stderr
    assert set(json.loads(r.stderr.strip().splitlines()[-1])) == {"PySide6", "pyqtgraph"}
