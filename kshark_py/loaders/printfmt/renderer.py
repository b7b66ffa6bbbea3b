"""The info column of ``trace-cmd report`` (and ``report -R``): each event's print fmt parsed once
(or its plugin handler bound), then evaluated per record."""

from __future__ import annotations

from ..formats import EventFormats
from .bprint import bprint_args
from .context import RenderContext
from .evaluator import Evaluator
from .event import TEvent
from .field import F_ARRAY, F_STRING
from .parseargs import P_STRING, parse_args
from .parser import ParseError, Parser
from .plugins import PluginSet, print_functions
from .raw import raw_field
from .tree import A_FIELD, A_TYPE, Arg

__all__ = ["InfoRenderer"]


class InfoRenderer:
    """Renders the info column of ``trace-cmd report`` (and ``report -R``) for event records."""

    def __init__(self, formats: EventFormats, ctx: RenderContext) -> None:
        self.formats = formats
        self.ctx = ctx
        self.ev = Evaluator(ctx)
        self.funcs = print_functions()
        self.plugins = PluginSet(self)
        self._events: dict[int, TEvent | None] = {}
        self._string_ok: dict[int, dict] = {}

    def event(self, event_id: int) -> TEvent | None:
        """The parsed event for an id (cached); None if the id is unknown."""
        try:
            return self._events[event_id]
        except KeyError:
            pass
        fmt = self.formats.get(event_id)
        tev = None
        if fmt is not None:
            tev = TEvent(fmt, self.ctx.long_size)
            self._parse(tev)
            tev.handler = self.plugins.handler_for(tev)
        self._events[event_id] = tev
        return tev

    def _parse(self, tev: TEvent) -> None:
        p = Parser(tev, self.funcs, self.ctx.long_size)
        try:
            fmt, args = p.parse_print(tev.fmt.print_fmt)
        except (ParseError, IndexError, AttributeError, RecursionError):
            tev.failed = True
            return
        if not args and tev.is_ftrace:
            for f in tev.fields:
                a = Arg(A_FIELD)
                a.name = f.name
                a.field = f
                args.append(a)
        tev.print_format = fmt
        tev.args = args
        if not tev.is_bprint:
            items, failed = parse_args(fmt, args, self.ctx.long_size)
            tev.cache = items
            if failed:
                tev.failed = True

    # -- public API -----------------------------------------------------------------------------
    def info(self, event_id: int, payload: bytes, cpu: int, ts: int = 0) -> str:
        """The text trace-cmd report prints after 'event_name: ' (plugins applied).  ``ts``, the
        record's timestamp, only reaches the text of ftrace's func_repeats (its last_ts)."""
        tev = self.event(event_id)
        if tev is None:
            return "[UNKNOWN EVENT]"
        data = bytes(payload)
        out = ""
        pretty = True
        if tev.handler is not None:
            self.plugins.ts = ts
            out, pretty = tev.handler(tev, data, cpu)
        if pretty:
            out += self.pretty(tev, data)
        return _finish(out)

    def raw(self, event_id: int, payload: bytes, cpu: int) -> str:
        """What ``trace-cmd report -R`` prints there (fields as name=value)."""
        tev = self.event(event_id)
        if tev is None:
            return "[UNKNOWN EVENT]"
        return _finish(self.fields_text(tev, bytes(payload)))

    # -- internals ---------------------------------------------------------------------------
    def pretty(self, tev: TEvent, data: bytes) -> str:
        """pretty_print: the print fmt (or [FAILED TO PARSE] plus raw fields)."""
        if tev.failed:
            return "[FAILED TO PARSE]" + self.fields_text(tev, data)
        ev = self.ev
        if tev.is_bprint:
            return self._bprint(tev, data)
        return "".join([ev.item(it, data) for it in tev.cache])

    def _bprint(self, tev: TEvent, data: bytes) -> str:
        ev = self.ev
        fmt_f = tev.find_field("fmt")
        buf_f = tev.find_field("buf")
        ip_f = tev.find_field("ip")
        if fmt_f is None or buf_f is None or ip_f is None:
            return ""
        addr = ev.read(data, fmt_f.offset, fmt_f.size)
        p = ev.printk.get(addr)
        fmt = f"%ps: (NO FORMAT FOUND at {addr:x})\n" if p is None else "%ps: " + p
        ip = ev.read(data, ip_f.offset, ip_f.size)
        args = bprint_args(ev, fmt, data, buf_f.offset, ip)
        items, _failed = parse_args(fmt, args, self.ctx.long_size)
        return "".join([ev.item(it, data) for it in items])

    def fields_text(self, tev: TEvent, data: bytes) -> str:
        """tep_print_fields: `` name=value`` for every non-common field."""
        ev = self.ev
        string_ok = self._string_ok.setdefault(tev.fmt.id, {})
        cache = tev.cache if (tev.cache and not tev.failed) else None
        cursor: int | None = 0 if cache else None
        out = []
        for f in tev.fields:
            out.append(f" {f.name}=")
            if cursor is None or (f.flags & (F_ARRAY | F_STRING)):
                out.append(raw_field(ev, f, data, string_ok))
                continue
            n = len(cache)
            start = cursor
            i = start
            has_0x = False
            done = False
            while True:
                it = cache[i]
                if it.kind == P_STRING:
                    has_0x = len(it.format) > 1 and it.format.endswith("0x")
                else:
                    a = it.arg
                    while a is not None and a.kind == A_TYPE:
                        a = a.item
                    if a is not None and a.kind == A_FIELD and a.field is f:
                        if has_0x:
                            out.append("0x")
                        out.append(ev.item(it, data))
                        cursor = i + 1 if i + 1 < n else None
                        done = True
                        break
                    has_0x = False
                i = i + 1 if i + 1 < n else 0
                if i == start:
                    break
            if not done:
                out.append(raw_field(ev, f, data, string_ok))
        return "".join(out)


def _finish(s: str) -> str:
    """trace-cmd drops one trailing newline; the line is printed with %.*s, so a NUL ends it."""
    if s.endswith("\n"):
        s = s[:-1]
    nul = s.find("\0")
    if nul >= 0:
        s = s[:nul]
    return s
