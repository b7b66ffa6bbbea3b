"""CLI tests' helpers: what every failing command must look like."""

from __future__ import annotations


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("kshark-py"), err
    for w in words:
        assert w in err, err
