"""The print-fmt tokenizer: libtraceevent's ``__read_token`` (``read_token``, ``read_token_item``),
quirks included (adjacent string literals join, a few wireless macros expand to their text)."""

from __future__ import annotations

from ..cnum import c_isspace

__all__ = ["T_ERROR", "T_NONE", "T_SPACE", "T_NEWLINE", "T_OP", "T_DELIM", "T_ITEM", "T_DQUOTE", "T_SQUOTE",
           "Lexer", "isprint"]


T_ERROR, T_NONE, T_SPACE, T_NEWLINE, T_OP, T_DELIM, T_ITEM, T_DQUOTE, T_SQUOTE = range(9)


def isprint(c: str) -> bool:
    return " " <= c <= "~"


def _get_type(c: str | None) -> int:
    if c is None:
        return T_NONE
    if c == "\n":
        return T_NEWLINE
    if c_isspace(c):
        return T_SPACE
    if c.isascii() and (c.isalnum() or c == "_"):
        return T_ITEM
    if c == "'":
        return T_SQUOTE
    if c == '"':
        return T_DQUOTE
    if not isprint(c):
        return T_NONE
    if c in "(),":
        return T_DELIM
    return T_OP


class Lexer:
    def __init__(self, text: str) -> None:
        self.buf = text
        self.pos = 0

    def _read(self) -> str | None:
        if self.pos >= len(self.buf):
            return None
        c = self.buf[self.pos]
        self.pos += 1
        return c

    def _peek(self) -> str | None:
        return self.buf[self.pos] if self.pos < len(self.buf) else None

    def raw_token(self) -> tuple[int, str]:
        ch = self._read()
        if ch is None:
            return T_NONE, ""
        typ = _get_type(ch)
        if typ == T_NONE:
            return T_NONE, ""
        out = [ch]
        if typ in (T_NEWLINE, T_DELIM):
            return typ, ch
        if typ == T_OP:
            nxt = self._peek()
            if ch == "-" and nxt == ">":
                out.append(self._read())
                return typ, "".join(out)
            if ch in "-+|&><":
                if nxt == ch:
                    out.append(self._read())
                    if ch in "><":
                        if self._peek() == "=":
                            out.append(self._read())
                    return typ, "".join(out)
                if self._peek() == "=":
                    out.append(self._read())
                return typ, "".join(out)
            if ch in "!=":
                if self._peek() == "=":
                    out.append(self._read())
                return typ, "".join(out)
            return typ, ch
        if typ in (T_DQUOTE, T_SQUOTE):
            quote = ch
            out = []
            last = ""
            cur = ch
            while True:
                while True:
                    last = cur
                    cur = self._read()
                    if cur is None:
                        break
                    out.append(cur)
                    if cur == "\\" and last == "\\":
                        last = ""
                    if not ((cur != quote and isprint(cur)) or last == "\\" or cur == "\n"):
                        break
                if cur is None:
                    return T_NONE, "".join(out)
                out.pop()  # the closing quote
                if typ == T_DQUOTE:
                    save = self.pos
                    c2 = self._read()
                    while c2 is not None and c_isspace(c2):
                        c2 = self._read()
                    if c2 == '"':
                        continue
                    self.pos = save
                break
            return typ, "".join(out)
        while _get_type(self._peek()) == typ:
            out.append(self._read())
        tok = "".join(out)
        if typ == T_ITEM:
            if tok == "LOCAL_PR_FMT":
                return T_DQUOTE, "%s"
            if tok == "STA_PR_FMT":
                return T_DQUOTE, " sta:%pM"
            if tok == "VIF_PR_FMT":
                return T_DQUOTE, " vif:%p(%d)"
        return typ, tok

    def token(self) -> tuple[int, str]:
        """read_token: skips spaces, keeps newlines."""
        while True:
            t, s = self.raw_token()
            if t != T_SPACE:
                return t, s

    def token_item(self) -> tuple[int, str]:
        """read_token_item: skips spaces and newlines."""
        while True:
            t, s = self.raw_token()
            if t not in (T_SPACE, T_NEWLINE):
                return t, s
