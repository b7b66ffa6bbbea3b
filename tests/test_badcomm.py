"""A comm that is not UTF-8 (issue 10, item 1): kept as bytes end to end, printed byte for byte as
trace-cmd prints it, exported as bytes, shown with U+FFFD in the app.

A process may name itself with any bytes (``prctl(PR_SET_NAME)``, no privilege needed).  The corpus
file badcomm/badcomm.dat holds one named b"bad\\xff\\xfename" (with trace-cmd 3.1.6's reports beside
it); the N=7000 recording, made here with the real trace-cmd, pushes that pid out of the kernel's
saved_cmdlines, so its name is known only from sched_switch's own comm fields.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kshark_py.export import events_with_names
from kshark_py.loaders import text
from kshark_py.loaders.printfmt import Spec, c_str
from kshark_py.loaders.tasks import task_names
from kshark_py.loaders.tracedat import open_trace
from kshark_py.model.fieldexpr import FieldFilter
from kshark_py.model.session import HOT_FIELDS, Session
from kshark_py.model.taskindex import TaskIndex

BAD = b"bad\xff\xfename"
SHOWN = "bad\ufffd\ufffdname"
TOOLS = Path(__file__).resolve().parents[2] / "shared" / "tools"
RECORD_BADCOMM = TOOLS / "record-badcomm.sh"
TC_NS = TOOLS / "tc-record-ns.sh"


@pytest.fixture(scope="module")
def badcomm(traces) -> Path:
    return traces / "badcomm" / "badcomm.dat"


@pytest.fixture(scope="module")
def evicted(tmp_path_factory) -> Path:
    """A real recording in which the named pid has left saved_cmdlines: 7000 later processes, as
    the issue's recipe has it.  The kernel's table holds ~6,552 names (saved_cmdlines_size) and
    saves a name only when the task was traced, so 7000 is at the edge: when the pid survived,
    record again with twice as many processes.  A recording without the named process (another
    recording on the top instance at the same moment turns tracing off) is made again."""
    d = tmp_path_factory.mktemp("badcomm")
    n = 7000
    for k in range(8):
        out = d / f"badcomm{n}-{k}.dat"
        r = subprocess.run([str(RECORD_BADCOMM), str(out), str(n)], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0 and out.is_file(), r.stderr[-2000:]
        pids = _switched_out(out)
        if pids and not any(p in open_trace(out).cmdlines for p in pids):
            return out
        if pids:
            n = min(2 * n, 28000)
    pytest.fail("no recording had the named pid outside saved_cmdlines")


def _switched_out(path: Path) -> set[int]:
    """pids that sched_switch names BAD (prev_comm): the process the recording ran."""
    tf = open_trace(path)
    b = tf.buffers[0]
    ev = tf.formats.find("sched_switch", "sched")
    f = b.field_arrays(ev, ["prev_pid", "prev_comm"])
    return {p for p, c in zip(f["prev_pid"].to_pylist(), f["prev_comm"].to_pylist(), strict=True) if c == BAD}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kshark_py.cli", *args], capture_output=True, timeout=300)


def _bad_pids(path: Path) -> list[int]:
    tf = open_trace(path)
    names = task_names(tf.buffers, tf.formats, tf.cmdlines)
    return sorted(p for p, c in names.items() if text.encode(c) == BAD)


# --- report: byte for byte -----------------------------------------------------------------------

@pytest.mark.parametrize("nsec", [False, True])
def test_report_equals_trace_cmd_byte_for_byte(badcomm, nsec):
    want = badcomm.with_name(badcomm.name + (".report-t.txt" if nsec else ".report.txt")).read_bytes()
    assert BAD in want  # trace-cmd writes the raw bytes
    r = _cli("report", *(["-t"] if nsec else []), str(badcomm))
    assert r.returncode == 0, r.stderr
    assert r.stdout == want


def test_report_of_an_evicted_pid_equals_trace_cmd(evicted):
    """The pid's name is registered from sched_switch only (the report used to die in
    ``bytes.__format__``); trace-cmd is run on the same file here."""
    for args in ([], ["-t"], ["-R"]):
        theirs = subprocess.run(["trace-cmd", "report", *args, str(evicted)], capture_output=True, timeout=300)
        assert theirs.returncode == 0
        ours = _cli("report", *args, str(evicted))
        assert ours.returncode == 0, ours.stderr
        # -R prints a char array that is not all printable as ARRAY[62, 61, 64, ff, ...], as trace-cmd does
        assert (BAD in ours.stdout) == (args != ["-R"])
        assert ours.stdout == theirs.stdout, args


def test_marker_text_that_is_not_utf8_prints_as_trace_cmd(tmp_path):
    """``%s`` output (ftrace:print, the bytes written to trace_marker), real recording, byte for byte."""
    script = ('printf "bad\\377\\376mark %s\\n" x > /sys/kernel/tracing/trace_marker; '
              'printf "caf\\303\\251 ok\\n" > /sys/kernel/tracing/trace_marker')
    for k in range(5):  # another recording on the top instance at the same moment may turn tracing off
        out = tmp_path / f"marker{k}.dat"
        r = subprocess.run([str(TC_NS), "record", "-e", "sched:sched_switch", "-o", str(out), "sh", "-c", script],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        theirs = subprocess.run(["trace-cmd", "report", str(out)], capture_output=True, timeout=120).stdout
        if b"bad\xff\xfemark x" in theirs and "caf\u00e9 ok".encode() in theirs:
            break
    else:
        pytest.fail("no recording held both marker writes")
    ours = _cli("report", str(out))
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs


def test_printf_widths_count_bytes():
    """``%16s`` pads to 16 bytes in C, whatever the characters: a 2-byte UTF-8 letter and an escaped
    byte each take their bytes."""
    assert c_str(Spec(conv="s", width=6), "\u00e9") == "    \u00e9"
    assert c_str(Spec(conv="s", width=6, flags="-"), text.decode(b"\xff")) == text.decode(b"\xff") + "     "
    cut = c_str(Spec(conv="s", prec=4), text.decode(BAD))
    assert text.encode(cut) == BAD[:4]


# --- loaders and export --------------------------------------------------------------------------

def test_string_fields_are_binary_in_every_block(evicted):
    """The app's load (hot fields read while decoding) used to fail concatenating a binary block
    with string blocks (ArrowInvalid in buffer._store_hot)."""
    tf = open_trace(evicted)
    tf.hot_fields = HOT_FIELDS
    b = tf.buffers[0]
    _ = b.events
    ev = tf.formats.find("sched_switch", "sched")
    arrs = b.field_arrays(ev, ["prev_comm", "next_comm"])
    assert all(a.type == pa.large_binary() for a in arrs.values())
    assert BAD in set(arrs["prev_comm"].to_pylist()) | set(arrs["next_comm"].to_pylist())


@pytest.mark.parametrize("which", ["corpus", "evicted"])
def test_export_keeps_the_bytes(which, badcomm, evicted, tmp_path):
    path = badcomm if which == "corpus" else evicted
    out = tmp_path / "x.parquet"
    r = _cli("export", str(path), "-o", str(out))
    assert r.returncode == 0, r.stderr
    t = pq.read_table(out)
    assert pa.types.is_binary(t.schema.field("comm").type.value_type)
    comm = t.column("comm").to_pylist()
    pid = t.column("pid").to_numpy()
    pids = _bad_pids(path)
    assert {c for c, p in zip(comm, pid.tolist(), strict=True) if p in pids} == {BAD}
    assert t.num_rows == len(events_with_names(open_trace(path)))


def test_field_filter_matches_the_bytes_and_what_is_shown(badcomm):
    tf = open_trace(badcomm)
    b = tf.buffers[0]
    ev = tf.formats.find("sched_switch", "sched")
    rows = b.rows_of(ev.id)
    comm = b.field_arrays(ev, ["prev_comm"])["prev_comm"].to_pylist()
    want = np.array([c == BAD for c in comm])
    assert want.any()
    for expr in (f'prev_comm == "{SHOWN}"', 'prev_comm ~ "bad*name"', 'prev_comm =~ "^bad.+name$"'):
        assert np.array_equal(FieldFilter.parse(expr, ev).evaluate(b, rows), want), expr


def test_task_index_shows_replacement_characters(badcomm):
    session = Session.from_files([open_trace(badcomm)])
    idx = TaskIndex(session)
    pid = _bad_pids(badcomm)[0]
    assert idx.comm(0, pid) == SHOWN
    assert text.encode(idx.names[0][pid]) == BAD  # the lossless name stays beside it
    assert idx.match("bad\ufffd", "contains").any()


def test_metadata_blocks_keep_their_bytes():
    """kallsyms names, printk formats and saved cmdlines are text blocks the kernel copied: a byte
    that is not UTF-8 survives each of them (it used to become U+FFFD) and renders as it was."""
    from kshark_py.loaders.formats import EventFormats, parse_format
    from kshark_py.loaders.metadata import Kallsyms, parse_cmdlines, parse_printk
    from kshark_py.loaders.printfmt import InfoRenderer, RenderContext

    ks = Kallsyms(b"ffffffff81000000 T bad\xffsym\nffffffff81000100 t other\t[m\xfeod]\n")
    assert text.encode(ks.name(0)) == b"bad\xffsym" and text.encode(ks.module(1)) == b"m\xfeod"
    assert text.encode(parse_printk(b'0xffffffff82000000 : "x\xff=%d\\n"\n')[0xFFFFFFFF82000000]) == b"x\xff=%d\\n"
    assert text.encode(parse_cmdlines(b"12 " + BAD + b"\n13 ok\n")[12]) == BAD
    # a print fmt byte that is not printable ASCII: libtraceevent's tokenizer (isprint) fails the
    # parse and prints the fields raw; the event name, a key everywhere, becomes valid Unicode
    fmt = text.decode(b'name: ev\xff\nID: 9\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;'
                      b'\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n'
                      b'\tfield:int v;\toffset:8;\tsize:4;\tsigned:1;\n\nprint fmt: "v\xfe=%d", REC->v\n')
    ev = parse_format(fmt, "test")
    assert ev.name == "ev\ufffd"
    r = InfoRenderer(EventFormats([ev]), RenderContext("<", 8, ks, {}, lambda p: "<...>"))
    assert r.info(9, bytes(8) + (5).to_bytes(4, "little"), 0) == "[FAILED TO PARSE] v=5"


def test_text_round_trip_and_display():
    for raw in (BAD, b"plain", "caf\u00e9".encode(), b"\xc3", b"\xed\xa0\x80"):
        s = text.decode(raw)
        assert text.encode(s) == raw
        shown = text.display(s)
        assert shown == raw.decode("utf-8", "replace")
        shown.encode("utf-8")  # valid for Qt and Arrow
    arr = pa.array([BAD, b"ok", None], pa.large_binary())
    assert text.display_array(arr).to_pylist() == [SHOWN, "ok", None]
    assert text.decode_array(arr).tolist() == [text.decode(BAD), "ok", None]


# --- the app -------------------------------------------------------------------------------------

def test_app_opens_it_and_shows_replacement_characters(badcomm, qtbot):
    """The window loads the file (it failed in the loader before) and every place that shows the
    name shows U+FFFD for each byte that is not UTF-8: the task row's label, the list's Task and
    Info cells, the info search."""
    from kshark_py.model.loading import load_session
    from kshark_py.ui.app import build_window
    from kshark_py.ui.eventtable import COLUMNS

    res = load_session([str(badcomm)])
    w = build_window(res, [str(badcomm)])
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    pid = 13587
    w.add_task_row(0, pid)
    w.timeline.rows_changed()
    labels = w.timeline.row_axis.labels
    assert labels[-1] == f"host {SHOWN}-{pid}", labels
    m = w.event_list.model
    task_col, info_col = COLUMNS.index("Task"), COLUMNS.index("Info")
    cells = [(m.cell_text(k, task_col), m.cell_text(k, info_col)) for k in range(len(m.merged))]
    assert (SHOWN, "python3:13587 [120] R ==> kshark-py:13573 [120]") in cells
    assert any(c.startswith(f"{SHOWN}:{pid} [120] S ==>") for _, c in cells)
    qt_text = m.data(m.index(2, task_col))  # what Qt holds: lone surrogates would have been dropped
    assert qt_text == SHOWN
    from PySide6.QtCore import Qt

    tip = m.data(m.index(8, info_col), Qt.ItemDataRole.ToolTipRole)
    assert tip == f"host  CPU 0  {SHOWN}-{pid}\nsched:sched_switch: {SHOWN}:{pid} [120] S ==> swapper/0:0 [120]"
    # the info search renders blocks with the same text as the list
    bi = m.block_info(0)
    rows = np.arange(len(m.merged))
    assert bi.render(rows).to_pylist() == [c for _, c in cells]
