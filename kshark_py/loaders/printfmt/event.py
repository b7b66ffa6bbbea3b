"""One event as the renderer sees it: its format, its fields with libtraceevent's flags, the parsed
print fmt and the plugin handler that replaces it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..formats import EventFormat
from .field import TField

if TYPE_CHECKING:
    from .parseargs import ParseItem
    from .tree import Arg

__all__ = ["TEvent"]


class TEvent:
    """One event as the renderer sees it: format, tep fields, parse result, handler."""

    def __init__(self, fmt: EventFormat, long_size: int) -> None:
        self.fmt = fmt
        self.name = fmt.name
        self.system = fmt.system
        self.common = [TField(f, long_size) for f in fmt.common_fields]
        self.fields = [TField(f, long_size) for f in fmt.fields]
        self.failed = False
        self.is_ftrace = fmt.system == "ftrace"
        self.is_bprint = self.is_ftrace and fmt.name == "bprint"
        self.print_format = ""
        self.args: list[Arg] = []
        self.cache: list[ParseItem] | None = None
        self.handler: Callable | None = None

    def find_field(self, name: str) -> TField | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    def find_any_field(self, name: str) -> TField | None:
        for f in self.common:
            if f.name == name:
                return f
        return self.find_field(name)
