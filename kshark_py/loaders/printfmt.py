"""Event "info" text: the kernel's ``print fmt`` evaluated the way libtraceevent 1.7.1 does it.

``trace-cmd report`` prints, after the event name, whatever libtraceevent makes of the event's
print fmt (or what a plugin prints instead).  To be byte-identical we do not "interpret C": we
reproduce libtraceevent's own tokenizer, its (quirky) operator-precedence parser, its unsigned
64-bit evaluator and its printf-argument matcher (``parse_args``), including the places where it
deviates from C (``%c`` prints ``>c<``, ``%p`` prints glibc's ``0x...``/``(nil)``, comparisons are
unsigned, ``__print_flags`` with value 0 prints nothing ...).  Facts: libtraceevent
``src/event-parse.c`` (process_arg, process_op, eval_num_arg, print_str_arg, parse_args,
print_field, make_bprint_args) and trace-cmd 3.1.6 ``trace-read.c`` (trailing newline).

Each event's print fmt is parsed once into a tree of :class:`Arg` nodes, then compiled into Python
closures; rendering a row only runs the closures.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from . import text as ktext
from .cnum import U64, c_isspace, s32, s64, strtoll, strtoull
from .formats import EventFormat, EventFormats
from .formats import Field as FmtField
from .metadata import Kallsyms

# ---------------------------------------------------------------------------------------------
# Render context
# ---------------------------------------------------------------------------------------------


@dataclass
class RenderContext:
    """What rendering needs besides the formats: byte order, kernel long size, symbol tables.

    ``guest_func`` is optional: in a merged host+guest report trace-cmd resolves the guest RIP of
    kvm events (``kvm_exit``/``kvm_entry``) with the guest's kallsyms; pass
    ``(host_pid, rip) -> (name, start) | None`` to get the same output.
    """

    endian: str
    long_size: int
    kallsyms: Kallsyms | None
    printk: dict[int, str]
    comm_of: Callable[[int], str]
    guest_func: Callable[[int, int], tuple[str, int] | None] | None = None
    time_text: Callable[[int], str] | None = None
    """How the report prints a timestamp (TEP_PRINT_TIME in trace-cmd's tep_func_repeat_format):
    the function plugin's ``func_repeats`` prints its ``last_ts`` so.  None: ``%6.1000d``, the
    plugin's own default (seconds and microseconds)."""


# ---------------------------------------------------------------------------------------------
# Fields as libtraceevent sees them (flags derived from the declaration text)
# ---------------------------------------------------------------------------------------------

F_ARRAY = 1
F_POINTER = 2
F_SIGNED = 4
F_STRING = 8
F_DYNAMIC = 16
F_LONG = 32
F_RELATIVE = 64

_TYPE_SIZES = {"u8": 1, "u16": 2, "u32": 4, "u64": 8, "s8": 1, "s16": 2, "s32": 4, "s64": 8, "char": 1}


class TField:
    """A field with libtraceevent's flags and element size (``event_read_fields``)."""

    __slots__ = ("name", "offset", "size", "flags", "elementsize", "type")

    def __init__(self, f: FmtField, long_size: int) -> None:
        self.name = f.name
        self.offset = f.offset
        self.size = f.size
        t = f.type
        flags = 0
        if "*" in t:
            flags |= F_POINTER
        is_array = f.array_len is not None or f.dynamic is not None
        if is_array:
            flags |= F_ARRAY
        if f.signed:
            flags |= F_SIGNED
        if is_array and ("char" in t or "u8" in t or "s8" in t):
            flags |= F_STRING
        if f.dynamic == "data_loc":
            flags |= F_DYNAMIC
        elif f.dynamic == "rel_loc":
            flags |= F_DYNAMIC | F_RELATIVE
        if "long" in t:
            flags |= F_LONG
        if (flags & F_DYNAMIC) and f.size == 2:
            flags |= F_STRING | F_ARRAY
        self.flags = flags
        self.type = t
        if flags & (F_ARRAY | F_DYNAMIC):
            if f.array_len:
                self.elementsize = f.size // f.array_len
            elif flags & F_DYNAMIC:
                base = t.replace("__data_loc", "").replace("__rel_loc", "").split()
                self.elementsize = _TYPE_SIZES.get(base[-1], 0) if base else 0
            elif flags & F_STRING:
                self.elementsize = 1
            elif flags & F_LONG:
                self.elementsize = long_size
            else:
                self.elementsize = 0
        else:
            self.elementsize = f.size


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


# ---------------------------------------------------------------------------------------------
# Tokenizer (__read_token)
# ---------------------------------------------------------------------------------------------

T_ERROR, T_NONE, T_SPACE, T_NEWLINE, T_OP, T_DELIM, T_ITEM, T_DQUOTE, T_SQUOTE = range(9)


class ParseError(Exception):
    """The print fmt cannot be parsed: libtraceevent marks the event FAILED."""


def _isprint(c: str) -> bool:
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
    if not _isprint(c):
        return T_NONE
    if c in "(),":
        return T_DELIM
    return T_OP


class _Lexer:
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
                    if not ((cur != quote and _isprint(cur)) or last == "\\" or cur == "\n"):
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


# ---------------------------------------------------------------------------------------------
# Parse tree (struct tep_print_arg)
# ---------------------------------------------------------------------------------------------

A_NULL, A_ATOM, A_FIELD, A_FLAGS, A_SYMBOL, A_HEX, A_INT_ARRAY, A_TYPE, A_STRING, A_BSTRING = range(10)
A_DYNAMIC_ARRAY, A_OP, A_FUNC, A_BITMASK, A_DYNAMIC_ARRAY_LEN, A_HEX_STR, A_CPUMASK = range(10, 17)


class Arg:
    """A print-fmt argument node; attributes depend on ``kind`` (mirrors tep_print_arg)."""

    def __init__(self, kind: int = A_NULL) -> None:
        self.kind = kind
        self.atom = ""
        self.name = ""
        self.field: TField | None = None
        self.op = ""
        self.left: Arg | None = None
        self.right: Arg | None = None
        self.prio = 0
        self.ctype = ""
        self.item: Arg | None = None
        self.delim: str | None = None
        self.syms: list[tuple[str, str]] = []
        self.a1: Arg | None = None
        self.a2: Arg | None = None
        self.a3: Arg | None = None
        self.func: FuncDef | None = None
        self.fargs: list[Arg] = []
        self.value: int = 0

    def copy_from(self, other: Arg) -> None:
        self.__dict__.update(other.__dict__)


@dataclass
class FuncDef:
    """A helper function a plugin registers for print fmts (tep_register_print_function)."""

    name: str
    params: list[str]  # 'int' | 'long' | 'ptr' | 'string'
    fn: Callable[[list, int], tuple[str, int]]
    """fn(args, long_size) -> (text printed, return value).  Numbers arrive as unsigned ints, strings
    as str, pointers as the bytes they point at in the record, or None (:meth:`Evaluator.pointee`)."""


def _get_op_prio(op: str) -> int:
    if len(op) == 1:
        return {"~": 4, "!": 4, "*": 6, "/": 6, "%": 6, "+": 7, "-": 7, "<": 9, ">": 9, "&": 11,
                "^": 12, "|": 13, "?": 16}.get(op, -1)
    return {"++": 3, "--": 3, ">>": 8, "<<": 8, ">=": 9, "<=": 9, "==": 10, "!=": 10, "&&": 14,
            "||": 15}.get(op, -1)


_BINOPS = {">>", "<<", "&", "|", "&&", "||", "-", "+", "*", "^", "/", "%", "<", ">", "<=", ">=", "==", "!="}


class _Parser:
    """Port of libtraceevent's recursive-descent print-fmt parser, quirks included."""

    def __init__(self, ev: TEvent, funcs: dict[str, FuncDef], long_size: int) -> None:
        self.ev = ev
        self.funcs = funcs
        self.long_size = long_size
        self.lx: _Lexer

    def parse_print(self, text: str) -> tuple[str, list[Arg]]:
        self.lx = _Lexer(text + "\n")
        t, tok = self.lx.token()
        if t != T_DQUOTE:
            raise ParseError("print fmt does not start with a string")
        fmt = tok
        while True:
            t, tok = self.lx.token_item()
            if t == T_NONE:
                return fmt, []
            if t == T_DQUOTE:
                fmt += tok
                continue
            break
        if not (t == T_DELIM and tok == ","):
            raise ParseError("expected ','")
        return fmt, self.read_print_args()

    def read_print_args(self) -> list[Arg]:
        args: list[Arg] = []
        typ = T_ERROR
        while True:
            if typ == T_NEWLINE:
                typ, tok = self.lx.token_item()
                if typ == T_NONE:
                    break
                continue
            arg = Arg()
            typ, tok = self.process_arg(arg)
            if typ == T_ERROR:
                raise ParseError("bad arg")
            args.append(arg)
            if typ == T_OP:
                typ, tok = self.process_op(arg, tok)
                _consolidate(arg)
                if typ == T_ERROR:
                    raise ParseError("bad op")
                if typ == T_NONE:
                    break
                continue
            if typ == T_DELIM and tok == ",":
                continue
            break
        return args

    def process_arg(self, arg: Arg) -> tuple[int, str]:
        t, tok = self.lx.token()
        return self.process_arg_token(arg, tok, t)

    def process_arg_token(self, arg: Arg, tok: str, typ: int) -> tuple[int, str]:
        if typ == T_ITEM:
            if tok == "REC":
                return self.process_entry(arg)
            atom = tok
            typ, tok = self.lx.token_item()
            if typ == T_DELIM and tok == "(":
                return self.process_function(arg, atom)
            while typ == T_ITEM:
                atom = atom + " " + tok
                typ, tok = self.lx.token_item()
            arg.kind = A_ATOM
            arg.atom = atom
            return typ, tok
        if typ in (T_DQUOTE, T_SQUOTE):
            arg.kind = A_ATOM
            arg.atom = tok
            return self.lx.token_item()
        if typ == T_DELIM and tok == "(":
            return self.process_paren(arg)
        if typ in (T_DELIM, T_OP):
            arg.kind = A_OP
            arg.op = tok
            arg.left = None
            return self.process_op(arg, tok)
        raise ParseError(f"unexpected token type {typ}")

    def process_entry(self, arg: Arg) -> tuple[int, str]:
        t, tok = self.lx.token_item()
        if t == T_DELIM and tok == ")":
            return T_ITEM, tok
        if not (t == T_OP and tok == "->"):
            raise ParseError("expected ->")
        t, tok = self.lx.token()
        if t != T_ITEM:
            raise ParseError("expected field name")
        arg.kind = A_FIELD
        arg.name = tok
        arg.field = self.ev.find_any_field(tok)
        return self.lx.token()

    def process_op(self, arg: Arg, tok: str) -> tuple[int, str]:
        right: Arg | None = None
        if arg.kind == A_OP and arg.left is None:
            if tok not in ("~", "!", "+", "-"):
                raise ParseError(f"bad op token {tok}")
            arg.left = Arg(A_NULL)
            right = Arg()
            arg.right = right
            typ, tok = self.process_arg(right)
        elif tok == "?":
            left = Arg()
            left.copy_from(arg)
            arg.kind = A_OP
            arg.op = "?"
            arg.left = left
            arg.right = None
            arg.prio = 0
            typ, tok = self.process_cond(arg)
        elif tok in _BINOPS:
            left = Arg()
            left.copy_from(arg)
            arg.kind = A_OP
            arg.op = tok
            arg.left = left
            arg.right = None
            arg.prio = 0 if (left is None or left.kind == A_NULL) else _get_op_prio(tok)
            if arg.prio == -1:
                raise ParseError("bad op prio")
            typ, tok = self.lx.token_item()
            if arg.op == "*" and typ == T_DELIM and tok == ")":
                if left.kind != A_ATOM:
                    raise ParseError("bad pointer type")
                left.atom = left.atom + " *"
                arg.copy_from(left)
                return typ, tok
            right = Arg()
            typ, tok = self.process_arg_token(right, tok, typ)
            if typ == T_ERROR:
                raise ParseError("bad right operand")
            if right.kind == A_OP and _get_op_prio(arg.op) < _get_op_prio(right.op):
                arg.right = right.left
                tmp = Arg()
                tmp.copy_from(arg)
                arg.copy_from(right)
                right.copy_from(tmp)
                arg.left = right
            else:
                arg.right = right
        elif tok == "[":
            left = Arg()
            left.copy_from(arg)
            arg.kind = A_OP
            arg.op = "["
            arg.left = left
            arg.right = None
            arg.prio = 0
            typ, tok = self.process_array(arg)
        else:
            raise ParseError(f"unknown op {tok}")
        if typ == T_OP and tok != ":":
            prio = _get_op_prio(tok)
            if prio > arg.prio:
                return self.process_op(arg, tok)
            if right is None:
                raise ParseError("operator after ?/[ with lower priority")
            return self.process_op(right, tok)
        return typ, tok

    def process_cond(self, top: Arg) -> tuple[int, str]:
        arg = Arg(A_OP)
        left = Arg()
        right = Arg()
        arg.left = left
        arg.right = right
        typ, tok = self.process_arg(left)
        while True:
            if typ == T_ERROR:
                raise ParseError("bad ?: operand")
            if typ == T_OP and tok != ":":
                typ, tok = self.process_op(left, tok)
                continue
            break
        if not (typ == T_OP and tok == ":"):
            raise ParseError("expected ':'")
        arg.op = ":"
        typ, tok = self.process_arg(right)
        top.right = arg
        return typ, tok

    def process_array(self, top: Arg) -> tuple[int, str]:
        arg = Arg()
        typ, tok = self.process_arg(arg)
        if not (typ == T_OP and tok == "]"):
            raise ParseError("expected ]")
        top.right = arg
        return self.lx.token_item()

    def process_paren(self, arg: Arg) -> tuple[int, str]:
        typ, tok = self.process_arg(arg)
        if typ == T_ERROR:
            raise ParseError("bad (")
        if typ == T_OP:
            typ, tok = self.process_op(arg, tok)
        if typ == T_ERROR:
            raise ParseError("bad (")
        if typ == T_ITEM and tok == ")":
            return self.process_entry(arg)
        if not (typ == T_DELIM and tok == ")"):
            raise ParseError("expected )")
        typ, tok = self.lx.token_item()
        if typ in (T_ITEM, T_DQUOTE, T_SQUOTE) or (typ == T_DELIM and tok == "("):
            if arg.kind != A_ATOM:
                raise ParseError("previous needed to be an atom")
            item = Arg()
            ctype = arg.atom
            arg.kind = A_TYPE
            arg.ctype = ctype
            arg.item = item
            typ, tok = self.process_arg_token(item, tok, typ)
        return typ, tok

    def _delim_arg(self, nxt: str) -> Arg:
        a = Arg()
        typ, tok = self.process_arg(a)
        if typ == T_OP:
            typ, tok = self.process_op(a, tok)
            _consolidate(a)
            if typ == T_ERROR:
                raise ParseError("bad arg")
        if not (typ == T_DELIM and tok == nxt):
            raise ParseError(f"expected {nxt}")
        return a

    def process_fields(self, tok_type: int, tok: str) -> tuple[list[tuple[str, str]], int, str]:
        syms: list[tuple[str, str]] = []
        while True:
            typ, tok = self.lx.token_item()
            if not (typ == T_OP and tok == "{"):
                break
            a = Arg()
            typ, tok = self.process_arg(a)
            if typ == T_OP:
                typ, tok = self.process_op(a, tok)
            if typ == T_ERROR or not (typ == T_DELIM and tok == ","):
                raise ParseError("bad flag value")
            value = _arg_eval(a)
            if value is None:
                raise ParseError("flag value not constant")
            a = Arg()
            typ, tok = self.process_arg(a)
            if not (typ == T_OP and tok == "}"):
                raise ParseError("expected }")
            s = _arg_eval(a)
            if s is None:
                raise ParseError("flag string not constant")
            syms.append((value, s))
            typ, tok = self.lx.token_item()
            if not (typ == T_DELIM and tok == ","):
                break
        return syms, typ, tok

    def process_function(self, arg: Arg, name: str) -> tuple[int, str]:
        lx = self.lx
        if name in ("__print_flags", "__print_symbolic"):
            is_flags = name == "__print_flags"
            fld = Arg()
            typ, tok = self.process_arg(fld)
            while typ == T_OP:
                typ, tok = self.process_op(fld, tok)
            if is_flags:
                while typ == T_OP:
                    typ, tok = self.process_op(fld, tok)
            if not (typ == T_DELIM and tok == ","):
                raise ParseError("expected ,")
            arg.kind = A_FLAGS if is_flags else A_SYMBOL
            arg.a1 = fld
            arg.delim = None
            if is_flags:
                typ, tok = lx.token_item()
                if typ in (T_ITEM, T_DQUOTE, T_SQUOTE):
                    arg.delim = tok
                    typ, tok = lx.token_item()
                if not (typ == T_DELIM and tok == ","):
                    raise ParseError("expected ,")
            arg.syms, typ, tok = self.process_fields(typ, tok)
            if not (typ == T_DELIM and tok == ")"):
                raise ParseError("expected )")
            return lx.token_item()
        if name in ("__print_hex", "__print_hex_str"):
            arg.kind = A_HEX if name == "__print_hex" else A_HEX_STR
            arg.a1 = self._delim_arg(",")
            arg.a2 = self._delim_arg(")")
            return lx.token_item()
        if name == "__print_array":
            arg.kind = A_INT_ARRAY
            arg.a1 = self._delim_arg(",")
            arg.a2 = self._delim_arg(",")
            arg.a3 = self._delim_arg(")")
            return lx.token_item()
        if name in ("__get_str", "__get_rel_str", "__get_bitmask", "__get_rel_bitmask", "__get_cpumask",
                    "__get_rel_cpumask"):
            typ, tok = lx.token()
            if typ != T_ITEM:
                raise ParseError("expected item")
            arg.kind = A_STRING if "str" in name else (A_BITMASK if "bitmask" in name else A_CPUMASK)
            arg.name = tok
            arg.field = self.ev.find_any_field(tok)
            typ, tok = lx.token()
            if not (typ == T_DELIM and tok == ")"):
                raise ParseError("expected )")
            return lx.token()
        if name in ("__get_dynamic_array", "__get_rel_dynamic_array", "__get_sockaddr", "__get_sockaddr_rel"):
            arg.kind = A_DYNAMIC_ARRAY
            typ, tok = lx.token()
            if typ != T_ITEM:
                raise ParseError("expected item")
            arg.field = self.ev.find_field(tok)
            arg.name = tok
            if arg.field is None:
                raise ParseError("no such field")
            typ, tok = lx.token()
            if not (typ == T_DELIM and tok == ")"):
                raise ParseError("expected )")
            typ, tok = lx.token_item()
            if typ != T_OP or tok != "[":
                return typ, tok
            idx = Arg()
            typ, tok = self.process_arg(idx)
            if typ == T_ERROR:
                raise ParseError("bad index")
            if typ == T_OP and tok == "]":
                # libtraceevent 1.7.1 inverts this test: a well-formed index is an error
                raise ParseError("dynamic array index")
            return lx.token_item()
        if name in ("__get_dynamic_array_len", "__get_rel_dynamic_array_len"):
            typ, tok = lx.token()
            if typ != T_ITEM:
                raise ParseError("expected item")
            arg.kind = A_DYNAMIC_ARRAY_LEN
            arg.field = self.ev.find_field(tok)
            if arg.field is None:
                raise ParseError("no such field")
            typ, tok = lx.token()
            if not (typ == T_DELIM and tok == ")"):
                raise ParseError("expected )")
            return lx.token()
        if name == "__builtin_expect":
            typ, tok = self.process_arg(arg)
            if not (typ == T_DELIM and tok.startswith(",")):
                raise ParseError("expected ,")
            typ, tok = lx.token_item()
            if typ != T_ITEM:
                raise ParseError("expected item")
            typ, tok = lx.token()
            if not (typ == T_DELIM and tok == ")"):
                raise ParseError("expected )")
            return lx.token_item()
        if name == "sizeof":
            return self.process_sizeof(arg)
        fd = self.funcs.get(name)
        if fd is None:
            raise ParseError(f"function {name} not defined")
        arg.kind = A_FUNC
        arg.func = fd
        arg.fargs = []
        n = len(fd.params)
        for i in range(n):
            fa = Arg()
            typ, tok = self.process_arg(fa)
            want = "," if i < n - 1 else ")"
            if not (typ == T_DELIM and tok == want):
                raise ParseError("function argument count")
            arg.fargs.append(fa)
        return lx.token()

    def process_sizeof(self, arg: Arg) -> tuple[int, str]:
        lx = self.lx
        typ, tok = lx.token_item()
        arg.kind = A_ATOM
        ok = False
        if tok == "unsigned":
            typ, tok = lx.token_item()
            if typ == T_ERROR:
                raise ParseError("sizeof")
            if typ != T_ITEM:
                ok = True
        if ok or tok == "int":
            arg.atom = "4"
        elif tok == "long":
            typ, tok = lx.token_item()
            if tok == "long":
                arg.atom = "8"
            else:
                arg.atom = str(self.long_size)
                ok = True
        elif tok == "REC":
            typ, tok = lx.token_item()
            if not (typ == T_OP and tok == "->"):
                raise ParseError("sizeof")
            typ, tok = lx.token()
            if typ != T_ITEM:
                raise ParseError("sizeof")
            f = self.ev.find_any_field(tok)
            if f is None or f.flags & F_ARRAY:
                raise ParseError("sizeof")
            arg.atom = str(f.size)
        elif not ok:
            raise ParseError("sizeof")
        if not ok:
            typ, tok = lx.token_item()
        if not (typ == T_DELIM and tok == ")"):
            raise ParseError("sizeof")
        return lx.token_item()


def _consolidate(arg: Arg) -> None:
    """consolidate_op_arg: fold ATOM op ATOM into an ATOM ("%lld" of the unsigned result)."""
    if arg.kind != A_OP:
        return
    if arg.left is not None:
        _consolidate(arg.left)
    if arg.right is not None:
        _consolidate(arg.right)
    if arg.left is None or arg.right is None:
        return
    if arg.left.kind != A_ATOM or arg.right.kind != A_ATOM:
        return
    left = strtoull(arg.left.atom)
    right = strtoull(arg.right.atom)
    op = arg.op
    if op in ("/", "%") and right == 0:
        return
    v = _binop(op, left, right)
    if v is None:
        return
    arg.kind = A_ATOM
    arg.atom = str(s64(v))


def _binop(op: str, left: int, right: int) -> int | None:
    if op == ">>":
        return left >> (right & 63)
    if op == ">=":
        return int(left >= right)
    if op == ">":
        return int(left > right)
    if op == "<<":
        return (left << (right & 63)) & U64
    if op == "<=":
        return int(left <= right)
    if op == "<":
        return int(left < right)
    if op == "&&":
        return int(bool(left) and bool(right))
    if op == "&":
        return left & right
    if op == "||":
        return int(bool(left) or bool(right))
    if op == "|":
        return left | right
    if op == "-":
        return (left - right) & U64
    if op == "+":
        return (left + right) & U64
    if op == "*":
        return (left * right) & U64
    if op == "^":
        return left ^ right
    if op == "/":
        return left // right if right else 0
    if op == "%":
        return left % right if right else 0
    if op == "==":
        return int(left == right)
    if op == "!=":
        return int(left != right)
    return None


def _eval_type_str(val: int, ctype: str, pointer: bool) -> int:
    """eval_type_str: apply a cast to an unsigned 64-bit value."""
    if len(ctype) < 2:
        return val
    if pointer:
        if ctype[-1] != "*":
            return val
        return _eval_type_str(val, ctype[:-2], False)
    if ctype[-1] == "*":
        return val
    if ctype.startswith("struct"):
        return val
    if ctype == "u8":
        return val & 0xFF
    if ctype == "u16":
        return val & 0xFFFF
    if ctype == "u32":
        return val & 0xFFFFFFFF
    if ctype in ("u64", "s64"):
        return val
    if ctype == "s8":
        return val & 0xFF
    if ctype == "s16":
        return val & 0xFFFF
    if ctype == "s32":
        return val & 0xFFFFFFFF
    if ctype.startswith("unsigned "):
        ctype = ctype[9:]
    if ctype == "char":
        return val & 0xFF
    if ctype == "short":
        return val & 0xFFFF
    if ctype == "int":
        return val & 0xFFFFFFFF
    return val


def _arg_num_eval(arg: Arg) -> int | None:
    """arg_num_eval: signed constant evaluation used for __print_flags/symbolic values."""
    k = arg.kind
    if k == A_ATOM:
        return strtoll(arg.atom)
    if k == A_TYPE:
        v = _arg_num_eval(arg.item)
        if v is None:
            return None
        return s64(_eval_type_str(v & U64, arg.ctype, False))
    if k != A_OP:
        return None
    op = arg.op
    if op == "~":
        r = _arg_num_eval(arg.right)
        return None if r is None else ~r
    if op in ("-", "+") and arg.left is not None and arg.left.kind == A_NULL:
        left = 0
    else:
        if op[:1] not in "|&<>=!-+":
            return None
        left = _arg_num_eval(arg.left)
        if left is None:
            return None
    right = _arg_num_eval(arg.right)
    if right is None:
        return None
    if op == "|":
        return left | right
    if op == "||":
        return int(bool(left or right))
    if op == "&":
        return left & right
    if op == "&&":
        return int(bool(left and right))
    if op == "<":
        return int(left < right)
    if op == "<<":
        return s64(left << (right & 63))
    if op == "<=":
        return int(left <= right)
    if op == ">":
        return int(left > right)
    if op == ">>":
        return left >> (right & 63)
    if op == ">=":
        return int(left >= right)
    if op == "==":
        return int(left == right)
    if op == "!=":
        return int(left != right)
    if op == "-":
        return s64(left - right)
    if op == "+":
        return s64(left + right)
    return None


def _arg_eval(arg: Arg) -> str | None:
    if arg.kind == A_ATOM:
        return arg.atom
    if arg.kind == A_TYPE:
        return _arg_eval(arg.item)
    if arg.kind == A_OP:
        v = _arg_num_eval(arg)
        return None if v is None else str(s64(v))
    return None


_FLAG_NAMES = {"HI_SOFTIRQ": 0, "TIMER_SOFTIRQ": 1, "NET_TX_SOFTIRQ": 2, "NET_RX_SOFTIRQ": 3,
               "BLOCK_SOFTIRQ": 4, "IRQ_POLL_SOFTIRQ": 5, "TASKLET_SOFTIRQ": 6, "SCHED_SOFTIRQ": 7,
               "HRTIMER_SOFTIRQ": 8, "RCU_SOFTIRQ": 9, "HRTIMER_NORESTART": 0, "HRTIMER_RESTART": 1}


@functools.lru_cache(maxsize=4096)
def _eval_flag(s: str) -> int:
    """A flag/symbol table value (pure: cached, it ran strtoull for every entry of every table)."""
    if s[:1].isdigit():
        return s64(strtoull(s))
    return _FLAG_NAMES.get(s, -1)


# ---------------------------------------------------------------------------------------------
# C printf emulation for the conversions libtraceevent passes through
# ---------------------------------------------------------------------------------------------


@dataclass
class Spec:
    """A parsed printf conversion: flags, width, precision (None = absent, '*' = from arg)."""

    flags: str = ""
    width: int | str | None = None
    prec: int | str | None = None
    conv: str = "d"


def _parse_spec(fmt: str) -> Spec:
    i = 1
    n = len(fmt)
    flags = ""
    while i < n and fmt[i] in "-+ #0":
        flags += fmt[i]
        i += 1
    width: int | str | None = None
    if i < n and fmt[i] == "*":
        width = "*"
        i += 1
    else:
        j = i
        while i < n and fmt[i].isdigit():
            i += 1
        if i > j:
            width = int(fmt[j:i])
    prec: int | str | None = None
    if i < n and fmt[i] == ".":
        i += 1
        if i < n and fmt[i] == "*":
            prec = "*"
            i += 1
        else:
            j = i
            while i < n and fmt[i].isdigit():
                i += 1
            prec = int(fmt[j:i]) if i > j else 0
    while i < n and fmt[i] in "hlLqjzZt":
        i += 1
    conv = fmt[i] if i < n else ""
    return Spec(flags, width, prec, conv)


def _resolve_star(sp: Spec, plen: int) -> tuple[str, int | None, int | None]:
    flags = sp.flags
    width = sp.width
    prec = sp.prec
    if width == "*":
        width = plen
        if width < 0:
            flags += "-"
            width = -width
    if prec == "*":
        prec = plen if plen >= 0 else None
    return flags, width, prec  # type: ignore[return-value]


def c_int(sp: Spec, val: int, bits: int, plen: int = -1) -> str:
    """printf of an integer conversion with the value truncated to ``bits``."""
    flags, width, prec = _resolve_star(sp, plen) if (sp.width == "*" or sp.prec == "*") else (
        sp.flags, sp.width, sp.prec)
    mask = (1 << bits) - 1
    v = val & mask
    conv = sp.conv
    neg = False
    if conv in "di":
        if v >> (bits - 1):
            v = (1 << bits) - v
            neg = True
        digits = str(v)
    elif conv == "u":
        digits = str(v)
    elif conv == "x":
        digits = format(v, "x")
    elif conv == "X":
        digits = format(v, "X")
    elif conv == "o":
        digits = format(v, "o")
    else:
        digits = str(v)
    prefix = ""
    if prec is not None:
        if prec == 0 and v == 0:
            digits = ""
        elif len(digits) < prec:
            digits = "0" * (prec - len(digits)) + digits
    if "#" in flags:
        if conv in "xX" and v != 0:
            prefix = "0x" if conv == "x" else "0X"
        elif conv == "o" and not digits.startswith("0"):
            digits = "0" + digits
    sign = "-" if neg else ("+" if ("+" in flags and conv in "di") else (" " if (" " in flags and conv in "di")
                                                                           else ""))
    body = sign + prefix + digits
    if width is not None and len(body) < width:
        if "-" in flags:
            return body + " " * (width - len(body))
        if "0" in flags and prec is None:
            return sign + prefix + "0" * (width - len(body)) + digits
        return " " * (width - len(body)) + body
    return body


def c_str(sp: Spec, s: str, plen: int = -1) -> str:
    """printf %s with flags/width/precision."""
    flags, width, prec = _resolve_star(sp, plen) if (sp.width == "*" or sp.prec == "*") else (
        sp.flags, sp.width, sp.prec)
    if prec is not None:  # C counts bytes: a comm that is not UTF-8 is as wide as its bytes
        s = ktext.truncate(s, max(prec, 0))
    if width is not None:
        return ktext.pad(s, width, left="-" in flags)
    return s


def _cstring(data: bytes, off: int, limit: int | None = None) -> str:
    end = len(data) if limit is None else min(limit, len(data))
    if off >= end:
        return ""
    nul = data.find(b"\0", off, end)
    if nul < 0:
        nul = end
    return ktext.decode(data[off:nul])


# ---------------------------------------------------------------------------------------------
# parse_args: the format string split into literal text and conversions
# ---------------------------------------------------------------------------------------------

P_STRING, P_DIGIT, P_POINTER, P_ARGSTR = range(4)


class ParseItem:
    """One piece of the format (tep_print_parse): literal text or a conversion with its arg."""

    __slots__ = ("kind", "format", "arg", "len_arg", "ls", "spec", "run")

    def __init__(self, kind: int, fmt: str, arg: Arg | None = None, len_arg: Arg | None = None,
                 ls: int = 0) -> None:
        self.kind = kind
        self.format = fmt
        self.arg = arg
        self.len_arg = len_arg
        self.ls = ls
        self.spec = _parse_spec(fmt) if kind != P_STRING else None
        self.run: Callable[[bytes, int], str] | None = None


def _pointer_ext_len(f: str) -> int:
    """parse_arg_format_pointer: how many chars after 'p' belong to the conversion."""
    c = f[:1]
    ret = 0
    if c in ("F", "S", "f", "s"):
        ret += 1
    elif c in ("M", "m"):
        if f[1:2] in ("R", "F"):
            ret += 1
        ret += 1
    elif c in ("I", "i"):
        index = 2
        c1 = f[1:2]
        if c1 == "S":
            while f[index:index + 1] in ("p", "f", "s") and f[index:index + 1]:
                ret += 1
                index += 1
        if c1 in ("S", "4"):
            if f[index:index + 1] in ("h", "n", "l", "b") and f[index:index + 1]:
                ret += 1
                index += 1
            if c1 == "4":
                ret += 1
                return ret + 1
        if c1 in ("S", "6"):
            if f[index:index + 1] == "c":
                ret += 1
            ret += 1
        ret += 1
    elif c == "U":
        if f[1:2] in ("L", "l", "B", "b"):
            ret += 1
        ret += 1
    elif c == "h":
        if f[1:2] in ("C", "D", "N"):
            ret += 1
        ret += 1
    return ret


def parse_args(fmt: str, args: list[Arg], long_size: int) -> tuple[list[ParseItem], bool]:
    """Split ``fmt`` into ParseItems, binding args in order; returns (items, failed)."""
    items: list[ParseItem] = []
    failed = False
    it = iter(args)
    pending: list[Arg | None] = [next(it, None)]

    def cur() -> Arg | None:
        return pending[0]

    def advance() -> None:
        pending[0] = next(it, None)

    n = len(fmt)
    pos = 0
    remaining = n
    while pos < n:
        if fmt[pos] == "%" and fmt[pos + 1:pos + 2] != "%":
            ret, f = _parse_arg_format(fmt, pos, items, cur, advance)
            failed = failed or f
        else:
            ret = _parse_arg_string(fmt, pos, items)
        remaining -= ret
        if remaining > 0:
            pos += ret
        else:
            break
    return items, failed


def _parse_arg_format(fmt: str, start: int, items: list[ParseItem], cur, advance) -> tuple[int, bool]:
    ret = 1
    ls = 0
    len_arg: Arg | None = None
    i = start + 1
    n = len(fmt)
    while i < n:
        c = fmt[i]
        if c == "#":
            pass
        elif c == "h":
            ls -= 1
        elif c == "l":
            ls += 1
        elif c == "L":
            ls = 2
        elif c in "zZ":
            ls = 1
        elif c in ".-0123456789":
            pass
        elif c == "*":
            if cur() is None or len_arg is not None:
                return ret, True
            len_arg = cur()
            advance()
        elif c == "p":
            if cur() is None:
                return ret, True
            res = _pointer_ext_len(fmt[i + 1:])
            if res > 0:
                i += res
                ret += res
            pf = fmt[start:i + 1]
            items.append(ParseItem(P_POINTER, pf[:31], cur(), len_arg, ls))
            advance()
            return ret + 1, False
        elif c in "duixXo":
            if cur() is None:
                return ret, True
            pf = fmt[start:i + 1]
            bad = ls < -2 or ls > 2
            items.append(ParseItem(P_DIGIT, pf, cur(), len_arg, ls))
            advance()
            return ret + 1, bad
        elif c == "s":
            if cur() is None:
                return ret, True
            items.append(ParseItem(P_ARGSTR, fmt[start:i + 1], cur(), len_arg, 0))
            advance()
            return ret + 1, False
        else:
            items.append(ParseItem(P_STRING, f">{c}<"))
            return ret + 1, False
        ret += 1
        i += 1
    return ret, False


_ESC = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}


def _parse_arg_string(fmt: str, pos: int, items: list[ParseItem]) -> int:
    out = []
    ret = 0
    n = len(fmt)
    i = pos
    while i < n:
        c = fmt[i]
        if c == "\\":
            i += 1
            ret += 1
            if i < n:
                out.append(_ESC.get(fmt[i], fmt[i]))
            else:
                break
        elif c == "%":
            if fmt[i + 1:i + 2] == "%":
                out.append("%")
                i += 1
                ret += 1
            else:
                break
        else:
            out.append(c)
        ret += 1
        i += 1
    items.append(ParseItem(P_STRING, "".join(out)))
    return ret


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


def unwrap_casts(arg: Arg | None) -> tuple[Arg | None, Arg | None]:
    """``((T1)(T2)x)[i]``: the outermost cast (it decides the value's type, as libtraceevent's
    index evaluation does) and the operand under all casts."""
    typearg = None
    while arg is not None and arg.kind == A_TYPE:
        if typearg is None:
            typearg = arg
        arg = arg.item
    return typearg, arg


class Evaluator:
    """Evaluates parsed args against one record's bytes (eval_num_arg / print_str_arg)."""

    def __init__(self, ctx: RenderContext) -> None:
        self.ctx = ctx
        e = ctx.endian
        self.long_size = ctx.long_size
        self.big = e == ">"
        self.st = {1: struct.Struct(e + "B"), 2: struct.Struct(e + "H"), 4: struct.Struct(e + "I"),
                   8: struct.Struct(e + "Q")}
        self._sym_by_name: dict[str, int] | None = None
        self._fmap: tuple[list[int], list[str]] | None = None
        self.printk = {a: _clean_printk(f) for a, f in ctx.printk.items()}

    # -- basic reads ---------------------------------------------------------------------------
    def read(self, data: bytes, off: int, size: int) -> int:
        st = self.st.get(size)
        if st is None or off < 0 or off + size > len(data):
            return 0
        return st.unpack_from(data, off)[0]

    def dyn(self, f: TField, data: bytes) -> tuple[int, int]:
        """dynamic_offset_field -> (offset, length)."""
        size = len(data)
        if f.offset + f.size > size:
            return 0, 0
        val = self.read(data, f.offset, f.size)
        o = val & 0xFFFF
        ln = (size - o) if f.size == 2 else ((val >> 16) & 0xFFFF)
        off = 0 if o > size else o
        ln = 0 if o + ln > size else ln
        if f.flags & F_RELATIVE:
            off += f.offset + f.size
        return off, ln

    def find_func(self, addr: int) -> tuple[str, int] | None:
        """(name, start) like libtraceevent's find_func(), or None.

        libtraceevent sorts its function list (built by prepending, i.e. in reverse kallsyms
        order) with glibc's stable merge sort and looks addresses up with bsearch() and a
        comparator that matches "equal, or between this entry and the next".  For aliases (several
        names at one address) the name it prints depends on that order and on bsearch's probing,
        so both are reproduced here; the last symbol only matches exactly.
        """
        if self._fmap is None:
            self._build_fmap()
        addrs, which = self._fmap
        n = len(addrs)
        if n == 0:
            return None
        addr &= U64
        lo, hi = 0, n
        while lo < hi:
            i = (lo + hi) // 2
            a = int(addrs[i])
            nxt = int(addrs[i + 1]) if i + 1 < n else 0
            if addr == a or (addr > a and addr < nxt):
                return self.ctx.kallsyms.name(int(which[i])), a
            if addr < a:
                hi = i
            else:
                lo = i + 1
        return None

    def _build_fmap(self) -> None:
        ks = self.ctx.kallsyms
        import numpy as np

        if ks is None or len(ks) == 0:
            self._fmap = (np.zeros(0, np.uint64), np.zeros(0, np.int64))
            return
        a = ks.addrs
        order = np.lexsort((-np.arange(len(a)), a))
        self._fmap = (a[order], order)  # addresses in libtraceevent's order, and which symbol each is

    def symbol_addr(self, name: str) -> int:
        if self._sym_by_name is None:
            d: dict[str, int] = {}
            ks = self.ctx.kallsyms
            if ks is not None:
                for a, nm in zip(ks.addrs.tolist(), ks.names, strict=False):
                    d.setdefault(nm, int(a))
            self._sym_by_name = d
        return self._sym_by_name.get(name, 0)

    # -- eval_num_arg ----------------------------------------------------------------------------
    def num(self, arg: Arg | None, data: bytes) -> int:
        if arg is None:
            return 0
        k = arg.kind
        if k == A_FIELD:
            f = arg.field
            if f is None:
                return 0
            return self.read(data, f.offset, f.size)
        if k == A_ATOM:
            v = strtoull(arg.atom)
            if not v and not arg.atom[:1].isdigit():
                v = self.symbol_addr(arg.atom)
            return v
        if k == A_TYPE:
            return _eval_type_str(self.num(arg.item, data), arg.ctype, False)
        if k == A_OP:
            op = arg.op
            if op == "[":
                return self._index(arg, data)
            if op == "?":
                c = self.num(arg.left, data)
                r = arg.right
                if r is None:
                    return 0
                return self.num(r.left if c else r.right, data)
            left = self.num(arg.left, data)
            right = self.num(arg.right, data)
            if op == "!":
                return int(not right)
            if op == "~":
                return ~right & U64
            v = _binop(op, left, right)
            return 0 if v is None else v
        if k == A_DYNAMIC_ARRAY_LEN:
            return self.dyn(arg.field, data)[1] if arg.field else 0
        if k == A_DYNAMIC_ARRAY:
            return self.dyn(arg.field, data)[0] if arg.field else 0
        if k == A_FUNC:
            return self.call(arg, data)[1]
        return 0

    def _index(self, arg: Arg, data: bytes) -> int:
        right = self.num(arg.right, data)
        typearg, larg = unwrap_casts(arg.left)
        field_size = self.long_size
        if larg is None:
            return 0
        if larg.kind == A_DYNAMIC_ARRAY:
            off = self.dyn(larg.field, data)[0] + right
            if larg.field.elementsize:
                field_size = larg.field.elementsize
        elif larg.kind == A_FIELD:
            f = larg.field
            if f is None:
                return 0
            field_size = f.elementsize
            off = f.offset + right * f.elementsize
        else:
            return 0
        if off + field_size > len(data):
            return 0
        val = self.read(data, off, field_size)
        if typearg is not None:
            val = _eval_type_str(val, typearg.ctype, True)
        return val

    def call(self, arg: Arg, data: bytes) -> tuple[str, int]:
        fd = arg.func
        vals: list = []
        for p, fa in zip(fd.params, arg.fargs, strict=False):
            if p == "string":
                vals.append(self.strarg(fa, data, Spec(conv="s"), -1))
            elif p == "ptr":
                vals.append(self.pointee(fa, data))
            else:
                vals.append(self.num(fa, data))
        return fd.fn(vals, self.long_size)

    def pointee(self, arg: Arg, data: bytes) -> bytes | None:
        """The bytes a pointer argument of a plugin helper points at, from there to the record's end.

        libtraceevent passes a TEP_FUNC_ARG_PTR as eval_num_arg's value, which is an address inside
        the record only for ``__get_dynamic_array(f)`` (possibly under casts); any other pointer is a
        kernel address the C helper would dereference in the reader's memory: None here.
        """
        _, a = unwrap_casts(arg)
        if a is None or a.kind != A_DYNAMIC_ARRAY or a.field is None:
            return None
        return data[self.dyn(a.field, data)[0]:]

    # -- print_str_arg ------------------------------------------------------------------------
    def strarg(self, arg: Arg, data: bytes, sp: Spec, plen: int) -> str:
        k = arg.kind
        if k == A_ATOM or k == A_BSTRING:
            return c_str(sp, arg.atom, plen)
        if k == A_FIELD:
            f = arg.field
            if f is None:
                return ""
            if not (f.flags & F_ARRAY) and f.size == self.long_size:
                addr = self.read(data, f.offset, f.size)
                p = self.printk.get(addr)
                return p if p is not None else format(addr, "x")
            ln = f.size if f.size else len(data) - f.offset
            return c_str(sp, _cstring(data, f.offset, f.offset + ln), plen)
        if k == A_FLAGS:
            val = s64(self.num(arg.a1, data))
            out = []
            printed = False
            for value, s in arg.syms:
                fval = _eval_flag(value)
                if not val and fval < 0:
                    out.append(c_str(sp, s, plen))
                    break
                if fval > 0 and (val & fval) == fval:
                    if printed and arg.delim:
                        out.append(arg.delim)
                    out.append(c_str(sp, s, plen))
                    printed = True
                    val &= ~fval
            if val:
                if printed and arg.delim:
                    out.append(arg.delim)
                out.append("0x" + format(val & U64, "x"))
            return "".join(out)
        if k == A_SYMBOL:
            val = s64(self.num(arg.a1, data))
            for value, s in arg.syms:
                if val == _eval_flag(value):
                    return c_str(sp, s, plen)
            return "0x" + format(val & U64, "x")
        if k in (A_HEX, A_HEX_STR):
            base = self._buf_of(arg.a1, data)
            if base is None:
                return ""
            n = self.num(arg.a2, data) & 0xFFFFFFFF
            hx = [format(data[base + i] if base + i < len(data) else 0, "02x") for i in range(min(n, 1 << 16))]
            return (" " if k == A_HEX else "").join(hx)
        if k == A_INT_ARRAY:
            base = self._buf_of(arg.a1, data)
            if base is None:
                return ""
            n = self.num(arg.a2, data) & 0xFFFFFFFF
            el = s64(self.num(arg.a3, data))
            el = ((el + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
            out = []
            p = base
            for _ in range(min(n, 1 << 16)):
                if el in (1, 2, 4, 8):
                    out.append(str(int.from_bytes(data[p:p + el].ljust(el, b"\0"),
                                                  "big" if self.big else "little")))
                    p += el
                else:
                    out.append(f"BAD SIZE:{el} 0x{(data[p] if p < len(data) else 0):x}")
                    el = 1
                    p += 1
            return " ".join(out)
        if k == A_STRING:
            f = arg.field
            if f is None:
                return ""
            off, ln = self.dyn(f, data)
            if not ln:
                return ""
            return c_str(sp, _cstring(data, off), plen)
        if k == A_BITMASK:
            f = arg.field
            if f is None:
                return ""
            off, ln = self.dyn(f, data)
            return c_str(sp, self._bitmask(data[off:off + ln]), plen)
        if k == A_CPUMASK:
            f = arg.field
            if f is None:
                return ""
            off, ln = self.dyn(f, data)
            return c_str(sp, self._cpumask(data[off:off + ln]), plen)
        if k == A_OP:
            if arg.op[:1] != "?":
                return ""
            c = self.num(arg.left, data)
            r = arg.right
            if r is None:
                return ""
            nxt = r.left if c else r.right
            return self.strarg(nxt, data, sp, plen) if nxt is not None else ""
        if k == A_FUNC:
            return self.call(arg, data)[0]
        return ""

    def _buf_of(self, a: Arg | None, data: bytes) -> int | None:
        if a is None:
            return None
        if a.kind == A_DYNAMIC_ARRAY:
            return self.dyn(a.field, data)[0]
        if a.kind == A_FIELD and a.field is not None:
            return a.field.offset
        return None

    def _bitmask(self, b: bytes) -> str:
        size = len(b)
        nr_bits = size * 8
        str_size = (nr_bits + 3) // 4 + (nr_bits - 1) // 32 if size else 0
        if not size:
            return ""
        out = [""] * str_size
        ln = 0
        i = str_size - 2
        while i >= 0:
            idx = size - (ln + 1) if self.big else ln
            h = format(b[idx], "02x")
            out[i] = h[0]
            out[i + 1] = h[1]
            ln += 1
            if not (ln & 3) and i > 0:
                i -= 1
                out[i] = ","
            i -= 2
        return "".join(out)

    def _cpumask(self, b: bytes) -> str:
        size = len(b)
        bits = []
        for i in range(size):
            byte = b[size - (i + 1)] if self.big else b[i]
            for j in range(8):
                bits.append((byte >> j) & 1)
        out = []
        i = 0
        n = len(bits)
        while i < n:
            if bits[i]:
                j = i
                while j + 1 < n and bits[j + 1]:
                    j += 1
                out.append(str(i) if j == i else f"{i}-{j}")
                i = j + 1
            else:
                i += 1
        return ",".join(out)

    # -- print_arg_pointer --------------------------------------------------------------------
    def pointer(self, item: ParseItem, data: bytes, plen: int) -> str:
        arg = item.arg
        if arg.kind == A_BSTRING:
            return arg.atom
        f = item.format
        p = f.find("p")
        ext = f[p + 1:]
        c = ext[:1]
        if c in ("F", "f", "S", "s"):
            val = self.num(arg, data)
            fn = self.find_func(val)
            if fn is not None:
                if c in ("F", "S"):
                    return f"{fn[0]}+0x{(val - fn[1]) & U64:x}"
                return fn[0]
            if self.long_size == 4:
                return f"0x{val & U64:x}"
            return f"0x{val & U64:x}"
        if c in ("M", "m"):
            return self._mac(ext, arg, data)
        if c in ("I", "i"):
            return self._ip(ext, arg, data)
        if c == "U":
            return self._uuid(ext, arg, data)
        if c == "h":
            return self._rawbuf(ext, arg, data, plen)
        val = self.num(arg, data)
        return f"0x{val:x}" if val else "(nil)"

    def _field_arg(self, arg: Arg) -> Arg:
        while arg.kind == A_TYPE and arg.item is not None:
            arg = arg.item
        return arg

    def _mac(self, ext: str, arg: Arg, data: bytes) -> str:
        if arg.kind == A_FUNC:
            return self.call(arg, data)[0]
        arg = self._field_arg(arg)
        if arg.kind != A_FIELD:
            return f"ARG TYPE NOT FIELD BUT {arg.kind}"
        sep = ":"
        if ext[0] == "m":
            sep = ""
        elif ext[0] == "M" and ext[1:2] == "F":
            sep = "-"
        f = arg.field
        if f is None:
            return ""
        if f.size != 6:
            return "INVALIDMAC"
        b = data[f.offset:f.offset + 6].ljust(6, b"\0")
        if ext[1:2] == "R":
            b = b[::-1]
        return sep.join(format(x, "02x") for x in b)

    def _ip4(self, b: bytes, i: str, reverse: bool) -> str:
        if reverse:
            b = b[::-1]
        if i == "i":
            return ".".join(format(x, "03d") for x in b[:4])
        return ".".join(str(x) for x in b[:4])

    def _ip4_reverse(self, ch: str) -> bool:
        if ch == "h":
            return not self.big
        if ch == "l":
            return True
        return False

    def _ip6c(self, b: bytes) -> str:
        words = [int.from_bytes(b[j:j + 2], "big") for j in range(0, 16, 2)]
        raw_words = [int.from_bytes(b[j:j + 2], "little") for j in range(0, 16, 2)]
        v4mapped = words[0] == 0 and words[1] == 0 and words[2] == 0 and words[3] == 0 and words[4] == 0 \
            and words[5] == 0xFFFF
        isatap = (int.from_bytes(b[8:12], "big") | 0x02000000) == 0x02005EFE
        use4 = v4mapped or isatap
        rng = 6 if use4 else 8
        zl = [0] * 8
        for i in range(rng):
            for j in range(i, rng):
                if raw_words[j] != 0:
                    break
                zl[i] += 1
        longest = 1
        colonpos = -1
        for i in range(rng):
            if zl[i] > longest:
                longest = zl[i]
                colonpos = i
        if longest == 1:
            colonpos = -1
        out = []
        need = False
        i = 0
        while i < rng:
            if i == colonpos:
                if need or i == 0:
                    out.append(":")
                out.append(":")
                need = False
                i += longest
                continue
            if need:
                out.append(":")
            w = words[i]
            hi, lo = w >> 8, w & 0xFF
            out.append(f"{hi:x}{lo:02x}" if hi else f"{lo:x}")
            need = True
            i += 1
        if use4:
            if need:
                out.append(":")
            out.append(self._ip4(b[12:16], "I", False))
        return "".join(out)

    def _ip6(self, b: bytes, i: str) -> str:
        parts = [f"{b[j]:02x}{b[j + 1]:02x}" for j in range(0, 16, 2)]
        return (":" if i == "I" else "").join(parts)

    def _ip(self, ext: str, arg: Arg, data: bytes) -> str:
        i = ext[0]
        v = ext[1:2]
        rest = ext[2:]
        if v not in ("4", "6", "S"):
            return ""
        if arg.kind == A_FUNC:
            return self.call(arg, data)[0]
        a = self._field_arg(arg)
        if v == "4":
            if a.kind != A_FIELD:
                return f"ARG TYPE NOT FIELD BUT {a.kind}"
            if a.field is None:
                return ""
            if a.field.size != 4:
                return "INVALIDIPv4"
            return self._ip4(data[a.field.offset:a.field.offset + 4], i, self._ip4_reverse(rest[:1]))
        if v == "6":
            if a.kind != A_FIELD:
                return f"ARG TYPE NOT FIELD BUT {a.kind}"
            if a.field is None:
                return ""
            if a.field.size != 16:
                return "INVALIDIPv6"
            b = data[a.field.offset:a.field.offset + 16].ljust(16, b"\0")
            if i == "I" and rest[:1] == "c":
                return self._ip6c(b)
            return self._ip6(b, i)
        have_p = have_c = False
        r = rest
        if i == "I":
            if r[:1] == "p":
                have_p = True
                r = r[1:]
            if r[:1] == "c":
                have_c = True
                r = r[1:]
        reverse = self._ip4_reverse(r[:1])
        if a.kind == A_FIELD and a.field is not None:
            off, ln = a.field.offset, a.field.size
        elif a.kind == A_DYNAMIC_ARRAY:
            off, ln = self.dyn(a.field, data)
        else:
            return f"ARG NOT FIELD NOR DYNAMIC ARRAY BUT TYPE {a.kind}"
        sa = data[off:off + 28].ljust(28, b"\0")
        fam = int.from_bytes(sa[0:2], "little")
        if fam == 2:
            if ln < 16:
                return "INVALIDIPv4"
            s = self._ip4(sa[4:8], i, reverse)
            if have_p:
                s += f":{int.from_bytes(sa[2:4], 'big')}"
            return s
        if fam == 10:
            if ln < 28:
                return "INVALIDIPv6"
            s = "[" if have_p else ""
            b = sa[8:24]
            s += self._ip6c(b) if have_c else self._ip6(b, i)
            if have_p:
                s += f"]:{int.from_bytes(sa[2:4], 'big')}"
            return s
        return ""

    def _uuid(self, ext: str, arg: Arg, data: bytes) -> str:
        c = ext[1:2]
        upper = c in ("L", "B")
        guid = c in ("L", "l")
        if arg.kind == A_FUNC:
            return self.call(arg, data)[0]
        a = self._field_arg(arg)
        if a.kind != A_FIELD:
            return f"ARG TYPE NOT FIELD BUT {a.kind}"
        if a.field is None:
            return ""
        if a.field.size != 16:
            return "INVALIDUUID"
        b = data[a.field.offset:a.field.offset + 16].ljust(16, b"\0")
        idx = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15] if guid else list(range(16))
        out = []
        for i in range(16):
            out.append(format(b[idx[i]], "02X" if upper else "02x"))
            if i in (3, 5, 7, 9):
                out.append("-")
        return "".join(out)

    def _rawbuf(self, ext: str, arg: Arg, data: bytes, plen: int) -> str:
        delim = {"C": ":", "D": "-", "N": ""}.get(ext[1:2], " ")
        if arg.kind == A_FUNC:
            return self.call(arg, data)[0]
        if arg.kind != A_DYNAMIC_ARRAY:
            return f"ARG TYPE NOT FIELD BUT {arg.kind}"
        off, ln = self.dyn(arg.field, data)
        if ln < plen:
            plen = ln
        if plen < 1:
            return ""
        return delim.join(format(x, "02x") for x in data[off:off + plen])

    # -- print_parse_data ------------------------------------------------------------------------
    def item(self, it: ParseItem, data: bytes) -> str:
        k = it.kind
        if k == P_STRING:
            return it.format
        plen = -1
        if it.len_arg is not None:
            plen = s32(self.num(it.len_arg, data))
        if k == P_DIGIT:
            val = self.num(it.arg, data)
            bits = {-2: 8, -1: 16, 0: 32, 1: 64, 2: 64}.get(it.ls)
            if bits is None:
                return ""
            return c_int(it.spec, val, bits, plen)
        if k == P_POINTER:
            return self.pointer(it, data, plen if it.len_arg is not None else 1)
        # print_arg_string: the argument goes through a helper trace_seq copied with trace_seq_puts,
        # so a NUL in it (plugin_scsi's CDB text ends with one) ends that argument, not the line
        text = self.strarg(it.arg, data, it.spec, plen)
        nul = text.find("\0")
        return text if nul < 0 else text[:nul]


def _clean_printk(fmt: str) -> str:
    """tep_register_print_string: strip quotes and a trailing literal ``\\n``."""
    if fmt.startswith('"'):
        fmt = fmt[1:]
    if fmt.endswith('"'):
        fmt = fmt[:-1]
    if fmt.endswith("\\n"):
        fmt = fmt[:-2]
    return fmt


# ---------------------------------------------------------------------------------------------
# bprint (vbin_printf buffers)
# ---------------------------------------------------------------------------------------------


def _bprint_args(ev: Evaluator, fmt: str, data: bytes, buf_off: int, ip: int) -> list[Arg]:
    """make_bprint_args: decode the binary printk arguments the format string describes."""
    args: list[Arg] = []
    a = Arg(A_ATOM)
    a.atom = str(s64(ip))
    args.append(a)
    size = len(data)
    bptr = buf_off
    n = len(fmt)
    i = 5

    def ch(k: int) -> str:
        return fmt[k] if k < n else ""

    while bptr < size and i < n:
        if fmt[i] == "%":
            ls = 0
            while True:  # process_again
                i += 1
                c = ch(i)
                if c == "%":
                    break
                if c == "l":
                    ls += 1
                    continue
                if c == "L":
                    ls = 2
                    continue
                if c and c in "0123456789.#":
                    continue
                if c and c in "zZ":
                    ls = 1
                    continue
                as_string = False
                number = False
                if c == "p":
                    ls = 1
                    nx = ch(i + 1)
                    if nx and nx.isascii() and nx.isalnum():
                        i += 1
                        c2 = fmt[i]
                        special = c2 in "sSx" or (c2 in "fF" and ch(i + 1) != "w")
                        if not special and bptr < size and _isprint(chr(data[bptr])):
                            as_string = True
                    number = not as_string
                elif c and c in "duixXo":
                    number = True
                if number or c == "*":
                    if number:
                        vsize = {0: 4, 1: ev.long_size, 2: 8}.get(ls, ls)
                    if c == "*":
                        vsize = 4
                    bptr = (bptr + 3) & ~3
                    val = ev.read(data, bptr, vsize)
                    bptr += vsize
                    na = Arg(A_ATOM)
                    na.atom = str(s64(val))
                    args.append(na)
                    if c == "*":
                        continue
                    break
                if c == "s" or as_string:
                    end = data.find(b"\0", bptr)
                    if end < 0:
                        end = size
                    na = Arg(A_BSTRING)
                    na.atom = ktext.decode(data[bptr:end])
                    args.append(na)
                    bptr = end + 1
                break
        i += 1
    return args


# ---------------------------------------------------------------------------------------------
# Raw field printing (trace-cmd report -R)
# ---------------------------------------------------------------------------------------------


def _raw_field(ev: Evaluator, f: TField, data: bytes, string_ok: dict) -> str:
    """print_field_raw."""
    if f.flags & F_ARRAY:
        if f.flags & F_DYNAMIC:
            off, ln = ev.dyn(f, data)
        else:
            off, ln = f.offset, f.size
        if (f.flags & F_STRING) and string_ok.get(f.name, True) and _printable(data, off, ln):
            return _cstring(data, off)
        string_ok[f.name] = False
        return "ARRAY[" + ", ".join(format(data[i] if i < len(data) else 0, "02x")
                                    for i in range(off, off + ln)) + "]"
    val = ev.read(data, f.offset, f.size)
    if f.flags & F_POINTER:
        return f"0x{val:x}"
    if f.flags & F_SIGNED:
        if f.size == 4:
            if f.flags & F_LONG:
                return f"0x{val & 0xFFFFFFFF:x}"
            return str(s32(val))
        if f.size == 2:
            v = val - 0x10000 if val & 0x8000 else val
            return f"{v:2d}"
        if f.size == 1:
            v = val - 0x100 if val & 0x80 else val
            return str(v)
        return str(s64(val))
    if f.flags & F_LONG:
        return f"0x{val:x}"
    return str(val)


def _printable(data: bytes, off: int, ln: int) -> bool:
    for i in range(off, min(off + ln, len(data))):
        b = data[i]
        if b == 0:
            break
        if not (32 <= b <= 126 or b in (9, 10, 11, 12, 13)):
            return False
    return True


# ---------------------------------------------------------------------------------------------
# The renderer
# ---------------------------------------------------------------------------------------------


class InfoRenderer:
    """Renders the info column of ``trace-cmd report`` (and ``report -R``) for event records."""

    def __init__(self, formats: EventFormats, ctx: RenderContext) -> None:
        from . import plugins  # local import: plugins imports helpers from this module

        self.formats = formats
        self.ctx = ctx
        self.ev = Evaluator(ctx)
        self.funcs = plugins.print_functions()
        self.plugins = plugins.PluginSet(self)
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
        p = _Parser(tev, self.funcs, self.ctx.long_size)
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
        args = _bprint_args(ev, fmt, data, buf_f.offset, ip)
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
                out.append(_raw_field(ev, f, data, string_ok))
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
                out.append(_raw_field(ev, f, data, string_ok))
        return "".join(out)


def _finish(s: str) -> str:
    """trace-cmd drops one trailing newline; the line is printed with %.*s, so a NUL ends it."""
    if s.endswith("\n"):
        s = s[:-1]
    nul = s.find("\0")
    if nul >= 0:
        s = s[:nul]
    return s


__all__ = ["RenderContext", "InfoRenderer", "Evaluator", "TEvent", "TField", "c_int", "c_str", "Spec",
           "FuncDef", "field"]
