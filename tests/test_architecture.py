"""The layer picture in docs/architecture.md is drawn from the code's imports and must stay true; tests
share helpers through tests/support and conftest fixtures, never by importing another test file."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_layer_picture_matches_the_imports():
    r = subprocess.run([sys.executable, str(ROOT / "docs" / "layers.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_picture_has_every_floor_and_no_upward_arrow():
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import layers
    finally:
        sys.path.pop(0)
    units, deps = layers.edges()
    floor = {u: i for i, (_t, us) in enumerate(layers.FLOORS) for u in us}
    assert set(units) <= set(floor), f"a top-level unit is on no floor: {set(units) - set(floor)}"
    upward = sorted((a, b) for a, b in deps if floor[b] < floor[a])
    assert upward == [], upward


def _imported_modules(path: Path) -> list[str]:
    """Every module a file imports (top level or inside functions), relative ones resolved in tests/."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "tests." * (node.level > 0) + (node.module or "")
            out += [base] if node.module else [f"tests.{a.name}" for a in node.names]
    return out


def test_no_test_file_imports_another_test_file():
    tests = ROOT / "tests"
    wrong = sorted((p.name, m) for p in [*tests.glob("*.py"), *tests.glob("support/*.py")]
                   for m in _imported_modules(p) if m.split(".")[-1].startswith("test_"))
    assert wrong == [], wrong
