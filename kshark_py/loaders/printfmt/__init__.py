"""Event "info" text: the kernel's ``print fmt`` evaluated the way libtraceevent 1.7.1 does it.

``trace-cmd report`` prints, after the event name, whatever libtraceevent makes of the event's
print fmt (or what a plugin prints instead).  To be byte-identical we do not "interpret C": we
reproduce libtraceevent's own tokenizer, its (quirky) operator-precedence parser, its unsigned
64-bit evaluator and its printf-argument matcher (``parse_args``), including the places where it
deviates from C (``%c`` prints ``>c<``, ``%p`` prints glibc's ``0x...``/``(nil)``, comparisons are
unsigned, ``__print_flags`` with value 0 prints nothing ...).  Facts: libtraceevent
``src/event-parse.c`` (process_arg, process_op, eval_num_arg, print_str_arg, parse_args,
print_field, make_bprint_args) and trace-cmd 3.1.6 ``trace-read.c`` (trailing newline).

Each event's print fmt is parsed once into a tree of :class:`~.tree.Arg` nodes, then evaluated
against each record's bytes.  The modules, bottom to top:

* :mod:`.field`, :mod:`.event`: fields and events as libtraceevent sees them (``TField``, ``TEvent``);
* :mod:`.tree`: the argument tree (``Arg``, its kinds) and plugin helper functions (``FuncDef``);
* :mod:`.printf`: C printf emulation (``Spec``, ``c_int``, ``c_str``);
* :mod:`.lexer`, :mod:`.parser`, :mod:`.consteval`: print fmt -> argument tree, constants folded;
* :mod:`.parseargs`: the format string split into literal text and conversions bound to arguments;
* :mod:`.evaluator` (with :mod:`.pointer` for ``%p...``), :mod:`.bprint`, :mod:`.raw`: one record's text;
* :mod:`.plugins` (with :mod:`.plugin_kvm`, :mod:`.plugin_funcs`): libtraceevent's plugins, the
  handlers that replace some events' print fmt; they import only the low-level modules (field,
  event, tree, printf), so the renderer binds them without an import cycle;
* :mod:`.context`, :mod:`.renderer`: ``RenderContext`` and ``InfoRenderer``, what the rest of the code uses.
"""

from __future__ import annotations

from .context import RenderContext
from .evaluator import Evaluator
from .event import TEvent
from .field import TField
from .parser import ParseError
from .printf import Spec, c_int, c_str
from .renderer import InfoRenderer
from .tree import FuncDef

__all__ = ["RenderContext", "InfoRenderer", "Evaluator", "TEvent", "TField", "c_int", "c_str", "Spec",
           "FuncDef", "ParseError"]
