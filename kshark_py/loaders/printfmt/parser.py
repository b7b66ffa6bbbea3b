"""The print fmt parsed into a format string and a tree of :class:`~.tree.Arg` per argument: a port
of libtraceevent's recursive-descent parser (``process_arg``, ``process_op``...), quirks included."""

from __future__ import annotations

from .consteval import arg_eval, consolidate
from .event import TEvent
from .field import F_ARRAY
from .lexer import T_DELIM, T_DQUOTE, T_ERROR, T_ITEM, T_NEWLINE, T_NONE, T_OP, T_SQUOTE, Lexer
from .tree import (
    A_ATOM,
    A_BITMASK,
    A_CPUMASK,
    A_DYNAMIC_ARRAY,
    A_DYNAMIC_ARRAY_LEN,
    A_FIELD,
    A_FLAGS,
    A_FUNC,
    A_HEX,
    A_HEX_STR,
    A_INT_ARRAY,
    A_NULL,
    A_OP,
    A_STRING,
    A_SYMBOL,
    A_TYPE,
    Arg,
    FuncDef,
)

__all__ = ["ParseError", "Parser"]


class ParseError(Exception):
    """The print fmt cannot be parsed: libtraceevent marks the event FAILED."""


def _get_op_prio(op: str) -> int:
    if len(op) == 1:
        return {"~": 4, "!": 4, "*": 6, "/": 6, "%": 6, "+": 7, "-": 7, "<": 9, ">": 9, "&": 11,
                "^": 12, "|": 13, "?": 16}.get(op, -1)
    return {"++": 3, "--": 3, ">>": 8, "<<": 8, ">=": 9, "<=": 9, "==": 10, "!=": 10, "&&": 14,
            "||": 15}.get(op, -1)


_BINOPS = {">>", "<<", "&", "|", "&&", "||", "-", "+", "*", "^", "/", "%", "<", ">", "<=", ">=", "==", "!="}


class Parser:
    """Port of libtraceevent's recursive-descent print-fmt parser, quirks included."""

    def __init__(self, ev: TEvent, funcs: dict[str, FuncDef], long_size: int) -> None:
        self.ev = ev
        self.funcs = funcs
        self.long_size = long_size
        self.lx: Lexer

    def parse_print(self, text: str) -> tuple[str, list[Arg]]:
        self.lx = Lexer(text + "\n")
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
                consolidate(arg)
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
            consolidate(a)
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
            value = arg_eval(a)
            if value is None:
                raise ParseError("flag value not constant")
            a = Arg()
            typ, tok = self.process_arg(a)
            if not (typ == T_OP and tok == "}"):
                raise ParseError("expected }")
            s = arg_eval(a)
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
