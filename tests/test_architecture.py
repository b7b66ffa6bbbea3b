"""The layer picture in docs/architecture.md is drawn from the code's imports and must stay true."""

from __future__ import annotations

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
