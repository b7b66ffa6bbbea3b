"""Tests of the info renderer: print-fmt language units, then every event of the real traces.

The end-to-end tests compare :meth:`InfoRenderer.info` / :meth:`InfoRenderer.raw` with the info
column of the reports Debian's ``trace-cmd report`` (3.1.6, libtraceevent 1.7.1 with its plugins)
wrote next to each trace in shared/traces, event by event.
"""

from __future__ import annotations

import struct
from pathlib import Path

from kshark_py.loaders.formats import EventFormats, parse_format
from kshark_py.loaders.metadata import Kallsyms
from kshark_py.loaders.printfmt import InfoRenderer, RenderContext, Spec, c_int, c_str

TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces"

# ---------------------------------------------------------------------------------------------
# Unit tests on real print fmts (kernel text copied from the corpus formats)
# ---------------------------------------------------------------------------------------------

COMMON = """\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

"""


def make_format(name: str, eid: int, fields: list[str], print_fmt: str, system: str = "test"):
    text = f"name: {name}\nID: {eid}\nformat:\n{COMMON}" + "".join(f"\t{f}\n" for f in fields)
    text += f"\nprint fmt: {print_fmt}\n"
    return parse_format(text, system)


def renderer(*fmts, kallsyms: bytes = b"", printk: dict | None = None) -> InfoRenderer:
    ctx = RenderContext("<", 8, Kallsyms(kallsyms) if kallsyms else None, printk or {}, lambda p: "<...>")
    return InfoRenderer(EventFormats(list(fmts)), ctx)


def payload(eid: int, *parts: bytes) -> bytes:
    return struct.pack("<HBBi", eid, 0, 0, 42) + b"".join(parts)


SCHED_SWITCH_FMT = (
    '"prev_comm=%s prev_pid=%d prev_prio=%d prev_state=%s%s ==> next_comm=%s next_pid=%d next_prio=%d", '
    "REC->prev_comm, REC->prev_pid, REC->prev_prio, (REC->prev_state & ((((0x00000000 | 0x00000001 | "
    "0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x00000040) + 1) << 1) - 1)) ? "
    '__print_flags(REC->prev_state & ((((0x00000000 | 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | '
    '0x00000010 | 0x00000020 | 0x00000040) + 1) << 1) - 1), "|", { 0x00000001, "S" }, { 0x00000002, "D" }, '
    '{ 0x00000004, "T" }, { 0x00000008, "t" }, { 0x00000010, "X" }, { 0x00000020, "Z" }, { 0x00000040, "P" }, '
    '{ 0x00000080, "I" }) : "R", REC->prev_state & (((0x00000000 | 0x00000001 | 0x00000002 | 0x00000004 | '
    '0x00000008 | 0x00000010 | 0x00000020 | 0x00000040) + 1) << 1) ? "+" : "", REC->next_comm, REC->next_pid, '
    "REC->next_prio"
)
SCHED_SWITCH_FIELDS = [
    "field:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;",
    "field:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;",
    "field:int prev_prio;\toffset:28;\tsize:4;\tsigned:1;",
    "field:long prev_state;\toffset:32;\tsize:8;\tsigned:1;",
    "field:char next_comm[16];\toffset:40;\tsize:16;\tsigned:0;",
    "field:pid_t next_pid;\toffset:56;\tsize:4;\tsigned:1;",
    "field:int next_prio;\toffset:60;\tsize:4;\tsigned:1;",
]


def sched_switch_payload(eid: int, state: int, prev_pid: int = 7, next_pid: int = 0) -> bytes:
    return payload(eid, b"bash".ljust(16, b"\0"), struct.pack("<iiq", prev_pid, 120, state),
                   b"swapper/0".ljust(16, b"\0"), struct.pack("<ii", next_pid, 120))


def test_sched_switch_print_fmt_without_plugin():
    # system "test" so the sched_switch plugin does not apply: the kernel print fmt is evaluated
    r = renderer(make_format("sched_switch", 1, SCHED_SWITCH_FIELDS, SCHED_SWITCH_FMT))
    assert r.info(1, sched_switch_payload(1, 0), 0) == (
        "prev_comm=bash prev_pid=7 prev_prio=120 prev_state=R ==> next_comm=swapper/0 next_pid=0 next_prio=120")
    assert "prev_state=S|D " in r.info(1, sched_switch_payload(1, 3), 0)
    # bit 0x100 (TASK_REPORT_MAX) gives the "+" suffix, after R
    assert "prev_state=R+ " in r.info(1, sched_switch_payload(1, 0x100), 0)


def test_sched_switch_plugin():
    r = renderer(make_format("sched_switch", 1, SCHED_SWITCH_FIELDS, SCHED_SWITCH_FMT, system="sched"))
    assert r.info(1, sched_switch_payload(1, 0), 0) == "bash:7 [120] R ==> swapper/0:0 [120]"
    assert r.info(1, sched_switch_payload(1, 1 | 2), 0) == "bash:7 [120] S|D ==> swapper/0:0 [120]"
    # raw (-R) output: fields formatted with the print fmt's conversions
    assert r.raw(1, sched_switch_payload(1, 1), 0) == (
        " prev_comm=bash prev_pid=7 prev_prio=120 prev_state=1 next_comm=swapper/0 next_pid=0 next_prio=120")


def test_symbolic_and_precedence():
    fmt = make_format("softirq_entry", 2, ["field:unsigned int vec;\toffset:8;\tsize:4;\tsigned:0;"],
                      '"vec=%u [action=%s]", REC->vec, __print_symbolic(REC->vec, { 0, "HI" }, { 1, "TIMER" }, '
                      '{ 2, "NET_TX" }, { 3, "NET_RX" }, { 4, "BLOCK" }, { 5, "IRQ_POLL" }, { 6, "TASKLET" }, '
                      '{ 7, "SCHED" }, { 8, "HRTIMER" }, { 9, "RCU" })')
    r = renderer(fmt)
    assert r.info(2, payload(2, struct.pack("<I", 9)), 0) == "vec=9 [action=RCU]"
    assert r.info(2, payload(2, struct.pack("<I", 12)), 0) == "vec=12 [action=0xc]"


def test_ternary_casts_and_widths():
    fmt = make_format("x", 3, ["field:int a;\toffset:8;\tsize:4;\tsigned:1;",
                               "field:unsigned long b;\toffset:16;\tsize:8;\tsigned:0;"],
                      '"a=%03d neg=%d b=%#lx c=%-5s| u8=%u s=%s", REC->a, -REC->a, REC->b, "ab", '
                      '(u8)REC->b, REC->a > 2 ? "big" : "small"')
    r = renderer(fmt)
    out = r.info(3, payload(3, struct.pack("<iiQ", 5, 0, 0x1234)), 0)
    assert out == "a=005 neg=-5 b=0x1234 c=ab   | u8=52 s=big"


def test_c_printf_emulation():
    assert c_int(Spec("#", None, None, "x"), 0, 32) == "0"
    assert c_int(Spec("0", 8, None, "x"), 0xBEEF, 32) == "0000beef"
    assert c_int(Spec("", None, None, "d"), 0xFFFFFFFF, 32) == "-1"
    assert c_int(Spec("", None, None, "u"), 0xFFFFFFFFFFFFFFFF, 32) == "4294967295"
    assert c_int(Spec("-", 4, None, "d"), 7, 32) == "7   "
    assert c_str(Spec("", "*", None, "s"), "ab", 5) == "   ab"
    assert c_str(Spec("", None, "*", "s"), "abcdef", 3) == "abc"


def test_percent_c_and_pointer_quirks():
    # libtraceevent has no %c: it prints ">c<" and does not consume the argument
    fmt = make_format("y", 4, ["field:unsigned long ip;\toffset:8;\tsize:8;\tsigned:0;"],
                      '"%c %p %pS %ps", REC->ip, (void *)REC->ip, (void *)REC->ip')
    ks = b"ffffffff81000000 T start_kernel\nffffffff81000100 T next_func\n"
    r = renderer(fmt, kallsyms=ks)
    out = r.info(4, payload(4, struct.pack("<Q", 0xFFFFFFFF81000010)), 0)
    assert out == ">c< 0xffffffff81000010 start_kernel+0x10 start_kernel"
    assert r.info(4, payload(4, struct.pack("<Q", 0)), 0).startswith(">c< (nil) 0x0")


def test_unknown_and_failed():
    r = renderer(make_format("z", 5, ["field:int a;\toffset:8;\tsize:4;\tsigned:1;"],
                             '"a=%d", no_such_function(REC->a)'))
    assert r.info(99, payload(99), 0) == "[UNKNOWN EVENT]"
    assert r.info(5, payload(5, struct.pack("<i", -3)), 0) == "[FAILED TO PARSE] a=-3"


def test_bprint_uses_printk_format():
    fields = ["field:unsigned long ip;\toffset:8;\tsize:8;\tsigned:0;",
              "field:const char * fmt;\toffset:16;\tsize:8;\tsigned:0;",
              "field:u32 buf[];\toffset:24;\tsize:0;\tsigned:0;"]
    fmt = make_format("bprint", 6, fields, '"%ps: %s", (void *)REC->ip, REC->fmt', system="ftrace")
    ks = b"ffffffff81000000 T my_func\nffffffff81000100 T other\n"
    r = renderer(fmt, kallsyms=ks, printk={0xFFFFFFFF82000000: 'value=%d name=%s\\n'})
    data = payload(6, struct.pack("<QQ", 0xFFFFFFFF81000004, 0xFFFFFFFF82000000), struct.pack("<i", -7),
                   b"hello\0\0\0")
    assert r.info(6, data, 0) == "my_func: value=-7 name=hello"


# End-to-end comparisons with trace-cmd's reports live in test_report.py.


def test_alias_symbols_resolve_like_libtraceevent():
    # libtraceevent's list is in reverse kallsyms order; inside a function it prints the alias
    # that comes first in kallsyms (last after its stable sort), not the last one.
    fmt = make_format("y", 4, ["field:unsigned long ip;\toffset:8;\tsize:8;\tsigned:0;"],
                      '"%pS", (void *)REC->ip')
    ks = b"ffffffff81000000 T first_alias\nffffffff81000000 T second_alias\nffffffff81000100 T nxt\n"
    r = renderer(fmt, kallsyms=ks)
    assert r.info(4, payload(4, struct.pack("<Q", 0xFFFFFFFF81000010)), 0) == "first_alias+0x10"
    # past the last symbol nothing resolves (the comparator needs a next entry)
    assert r.info(4, payload(4, struct.pack("<Q", 0xFFFFFFFF81000200)), 0) == "0xffffffff81000200"


# --- kallsyms: the vectorized parser against the line grammar, read with a regular expression ---

def _kallsyms_by_regex(text: bytes) -> list[tuple[int, str, str | None]]:
    import re

    line = re.compile(rb"^([0-9A-Fa-f]{1,16}) (\S) (\S+)(?:\t\[(\S+)\])?", re.MULTILINE)
    out = []
    for m in line.finditer(text):
        if m.group(2) in (b"A", b"a") or m.group(3).startswith(b"$"):
            continue
        out.append((int(m.group(1), 16), m.group(3).decode(), m.group(4).decode() if m.group(4) else None))
    return sorted(out, key=lambda s: s[0])  # stable: equal addresses keep text order


def _kallsyms_table(text: bytes) -> list[tuple[int, str, str | None]]:
    k = Kallsyms(text)
    return [(int(k.addrs[i]), k.name(i), k.module(i)) for i in range(len(k))]


def test_kallsyms_parse_matches_the_line_grammar():
    from kshark_py.loaders.layout import OptionId
    from kshark_py.loaders.metablocks import sized_block
    from kshark_py.loaders.tracedat import open_trace

    for name in ("host-sched-v7.dat", "vm-tsync/trace-vmguest.dat", "external/doc-test/trace.dat"):
        tf = open_trace(TRACES / name)
        text = sized_block(tf.sections.get(OptionId.KALLSYMS), tf.lay.u32)
        expect = _kallsyms_by_regex(text)
        assert len(expect) > 50000
        assert _kallsyms_table(text) == expect
    edge = (b"ffff 1 x\n0 T\n12345678901234567 T toolong\nabc T  twospace\nabc T name\t[mod]\n"
            b"abc t n2\t[m]x]\nabc t n3\t[]\nabc t n4\t[a b]\nzz T bad\n1 A absname\n2 T $map\n"
            b"3 t x\t[m]\n\nffffffffffffffff T top\n4 T last")
    assert _kallsyms_table(edge) == _kallsyms_by_regex(edge)
    assert len(Kallsyms(b"")) == 0 and Kallsyms(b"").resolve(5) is None
