"""Event formats parsed on first use (loaders/formats.index_format, EventFormats): the same formats,
the same errors, as parsing every text up front; and a load parses only the formats it looks up."""

from __future__ import annotations

import random

import pytest

from kshark_py.loaders.errors import FormatParseError
from kshark_py.loaders.formats import EventFormat, EventFormats, PendingFormat, index_format, parse_format
from kshark_py.loaders.metablocks import format_entries, ftrace_entries, texts
from kshark_py.loaders.options import OptionId
from kshark_py.loaders.tracedat import open_trace


def _texts(tf) -> list[tuple[str, str]]:
    """(system, text) of every format in the file, in file order."""
    out = []
    for opt, walk in ((OptionId.FTRACE_EVENTS, ftrace_entries), (OptionId.EVENT_FORMATS, format_entries)):
        sec = tf.sections.get(opt)
        if sec:
            out += [(system, text) for system, text, _at in texts(sec, walk(sec, 0, tf.lay)[0])]
    return out


def _corpus(traces) -> list:
    return sorted(p for p in traces.rglob("*.dat") if p.stat().st_size > 0)


def _outcome(f, *args):
    try:
        return "ok", f(*args)
    except (FormatParseError, ValueError) as e:
        return "error", (type(e), str(e))


def _resolved(x):
    return x.parse() if isinstance(x, PendingFormat) else x


def test_lazy_formats_equal_eager_on_the_corpus(traces):
    """Every format of every corpus file: the lazy registry gives the formats the eager parse gives,
    in the same order, and most texts are left unparsed until looked up."""
    pending = total = 0
    for p in _corpus(traces):
        try:
            tf = open_trace(p)
            items = _texts(tf)
        except Exception:  # noqa: BLE001 (damaged corpus files are the bad-input tests' business)
            continue
        eager = [parse_format(t, s) for s, t in items]
        lazy = [index_format(t, s) for s, t in items]
        for e, x in zip(eager, lazy, strict=True):
            assert (x.id, x.system, x.name) == (e.id, e.system, e.name)
            assert _resolved(x) == e
        pending += sum(isinstance(x, PendingFormat) for x in lazy)
        total += len(lazy)
        reg = EventFormats(lazy)
        assert list(reg) == list(EventFormats(eager))
        assert list(reg.by_name) == list(EventFormats(eager).by_name)
        assert list(tf.formats) == list(EventFormats(eager)), p
    assert total > 2000 and pending > 0.7 * total, (pending, total)


def test_index_format_fails_exactly_when_the_parse_fails(traces):
    """Mutated format texts (characters replaced, inserted, deleted in the name, ID and field lines):
    index_format raises the parse's error or gives what the parse gives, never something else."""
    rng = random.Random(20261207)
    seeds = []
    for p in _corpus(traces)[:6]:
        try:
            seeds += [t for _s, t in _texts(open_trace(p))]
        except Exception:  # noqa: BLE001
            continue
    alphabet = "\t\n\r\x0b\x1c\x85 ;:[]0123456789xX_-azAZ\u00e9\udc80" + "field:offset:size:signed:name:ID:"
    agree_ok = agree_err = 0
    for _ in range(4000):
        t = list(rng.choice(seeds))
        head = max(1, min(len(t), "".join(t).find("print fmt:") + 1 or len(t)))
        for _k in range(rng.randint(1, 3)):
            i = rng.randrange(head)
            op = rng.random()
            if op < 0.5:
                t[i] = rng.choice(alphabet)
            elif op < 0.8:
                t.insert(i, rng.choice(alphabet))
            else:
                del t[i]
        text = "".join(t)
        want = _outcome(parse_format, text, "sys")
        got = _outcome(index_format, text, "sys")
        if want[0] == "error":
            assert got == want, text
            agree_err += 1
        else:
            assert got[0] == "ok", text
            x = got[1]
            assert (x.id, x.system, x.name) == (want[1].id, want[1].system, want[1].name)
            assert _resolved(x) == want[1], text
            agree_ok += 1
    assert agree_ok > 500 and agree_err > 500, (agree_ok, agree_err)


def test_a_load_parses_only_the_formats_it_uses(traces):
    """After decoding a file and naming its events, the formats of events that are not in it stay
    unparsed (the kernel's other ~90%)."""
    p = traces / "host-kvm.dat"
    tf = open_trace(p)
    ids = {int(i) for b in tf.buffers for i in set(b.events.column("event_id").to_pylist())}
    for i in ids:
        assert tf.formats.get(i) is not None
    parsed = {ev.id for ev in tf.formats._slots if isinstance(ev, EventFormat)}
    assert ids <= parsed
    assert len(parsed) < len(tf.formats) / 2, (len(parsed), len(tf.formats))


def test_a_bad_format_of_an_unused_event_still_fails_on_first_access():
    """A text that does not parse is found when the registry is built, as when every text was parsed
    (tests/test_bad_input.py checks the located error on a real file)."""
    good = "name: a\nID: 1\nformat:\n\tfield:int x;\toffset:8;\tsize:4;\tsigned:1;\n\nprint fmt: \"%d\", REC->x\n"
    assert isinstance(index_format(good, "s"), PendingFormat)
    with pytest.raises(FormatParseError):
        index_format(good.replace("size:4", "size:x"), "s")
    big = good.replace("offset:8", "offset:99999")
    with pytest.raises(FormatParseError):
        index_format(big, "s")
    arr = good.replace("int x;", "char x[4];")
    lazy = index_format(arr, "s")
    assert isinstance(lazy, PendingFormat) and lazy.parse() == parse_format(arr, "s")
    with pytest.raises(FormatParseError):  # 9 elements in 4 bytes
        index_format(good.replace("int x;", "char x[9];"), "s")
    with pytest.raises(FormatParseError):  # int("04", 0) fails in the parse: not canonical either
        index_format(good.replace("int x;", "char x[04];"), "s")


def test_names_of_an_event_id_parse_nothing(traces):
    """What the export's system/event columns need: every id's names, no format parsed for them."""
    tf = open_trace(traces / "host-kvm.dat")
    fmts = tf.formats
    before = sum(isinstance(ev, EventFormat) for ev in fmts._slots)
    got = {i: fmts.names(i) for i in fmts.by_id}
    assert sum(isinstance(ev, EventFormat) for ev in fmts._slots) == before
    assert fmts.names(-5) is None
    assert got == {ev.id: (ev.system, ev.name) for ev in fmts}
