"""A small bounded cache: the most recently used ``cap`` entries survive.

One copy for every cache that keeps "the last N things asked for": decompressed chunks
(:class:`kshark_py.loaders.store.ChunkStore`), the event list's info texts and the analysis panels'
results.  Qt-free, so it lives on the lowest floor that needs it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class LRU(Generic[V]):
    """A bounded mapping: a hit makes an entry the newest; a put past ``cap`` drops the oldest."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._d: OrderedDict[Hashable, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._d)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._d

    def get(self, key: Hashable) -> V | None:
        """The value (now the newest entry), or None."""
        if key not in self._d:
            return None
        self._d.move_to_end(key)
        return self._d[key]

    def peek(self, key: Hashable) -> V | None:
        """The value without making it newer (a sweep that must not reorder what is cached), or None."""
        return self._d.get(key)

    def put(self, key: Hashable, value: V) -> None:
        self._d[key] = value
        self._d.move_to_end(key)
        while len(self._d) > self.cap:
            self._d.popitem(last=False)

    def get_or(self, key: Hashable, make: Callable[[], V]) -> V:
        """The cached value, or ``make()`` stored as the newest entry."""
        if key in self._d:
            self._d.move_to_end(key)
            return self._d[key]
        v = make()
        self.put(key, v)
        return v

    def clear(self) -> None:
        self._d.clear()
