"""kshark_py.loaders.lru: the one bounded cache behind chunks, info texts and analysis results."""

from __future__ import annotations

from kshark_py.loaders.lru import LRU


def test_the_least_recently_used_entry_goes_first():
    c: LRU[str] = LRU(2)
    c.put(1, "a")
    c.put(2, "b")
    assert c.get(1) == "a"  # 1 is now newer than 2
    c.put(3, "c")
    assert 2 not in c and 1 in c and 3 in c and len(c) == 2


def test_peek_does_not_refresh_and_get_or_makes_once():
    c: LRU[str] = LRU(2)
    made = []
    assert c.get_or(1, lambda: made.append(1) or "a") == "a"
    assert c.get_or(1, lambda: made.append(1) or "x") == "a"
    c.put(2, "b")
    assert c.peek(1) == "a" and c.peek(9) is None and c.get(9) is None
    c.put(3, "c")  # 1 was only peeked at: it is the oldest
    assert 1 not in c and made == [1]
    c.clear()
    assert len(c) == 0


def test_a_cached_none_is_a_hit():
    c: LRU[None] = LRU(1)
    made = []
    c.get_or("k", lambda: made.append(1))
    c.get_or("k", lambda: made.append(1))
    assert made == [1]
