"""The app as users run it: ``kshark-py`` started as a process on Xvfb and driven with xdotool.

Every test reads back what the live window shows (its probe file) and ends with Ctrl+Q and exit
status 0. Loading goes through the worker thread with its progress dialog, as for a user.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kshark_py.loaders.tracedat import open_trace
from tests.livegui import ROOT

DEMO_ROWS = ["host CPU 0", "host CPU 1"]


def span(win: dict) -> int:
    return win["range"][1] - win["range"][0]


def full_span(win: dict) -> int:
    return win["full_range"][1] - win["full_range"][0]


def test_demo_starts_zooms_and_quits(live):
    app = live()
    win = app.wait_main()
    assert win["rows"][:2] == DEMO_ROWS and any("VCPU" in r for r in win["rows"])
    assert win["title"] == "kshark-py - trace.dat, trace-vmguest.dat"
    s0 = span(win)
    assert s0 >= full_span(win)  # opens zoomed to fit

    app.key("plus")
    win = app.wait_for("zoom in by 2", lambda st: (w := st["windows"][0]) and abs(span(w) * 2 - s0) < s0 * 0.02 and w)
    app.key("plus", "plus", "minus")
    win = app.wait_for("net zoom x4", lambda st: (w := st["windows"][0]) and abs(span(w) * 4 - s0) < s0 * 0.02 and w)
    app.key("Right")
    moved = app.wait_for("pan right", lambda st: st["windows"][0]["range"][0] > win["range"][0] and st["windows"][0])
    assert span(moved) == pytest.approx(span(win), rel=0.01)
    app.key("Home")
    app.wait_for("Home fits", lambda st: abs(span(st["windows"][0]) - s0) < s0 * 0.01)

    # the wheel zooms around the pointer, time only
    win = app.wait_settled()["windows"][0]
    x, y = app.row_point(win, 0, 0.3)
    app.focus()
    app.click(x, y, button=4, repeat=3)
    win2 = app.wait_for("wheel zoom", lambda st: span(st["windows"][0]) < s0 * 0.9 and st["windows"][0])
    assert win2["y_range"] == pytest.approx(win["y_range"], abs=0.01)
    assert app.alive()
    assert app.quit() == 0


def test_rubber_band_zooms_time_only_and_fit_restores(live):
    app = live()
    win = app.wait_main()
    win = app.wait_settled()["windows"][0]
    s0 = span(win)
    y_before = win["y_range"]
    x0, y0 = app.row_point(win, 0, 0.3)
    x1, y1 = app.row_point(win, 1, 0.5)
    app.focus()
    app.drag(x0, y0, x1, y1, modifier="ctrl")
    win = app.wait_for("rubber-band zoom", lambda st: span(st["windows"][0]) < s0 * 0.5 and st["windows"][0])
    win = app.wait_settled()["windows"][0]
    assert win["y_range"] == pytest.approx(y_before, abs=0.01), "the rubber band must not zoom vertically"
    assert win["rows"][:2] == DEMO_ROWS
    app.key("Home")
    win = app.wait_for("Home restores", lambda st: abs(span(st["windows"][0]) - s0) < s0 * 0.01 and st["windows"][0])
    assert win["y_range"] == pytest.approx(y_before, abs=0.01)
    assert app.quit() == 0


def test_click_vcpu_row_highlights_without_relayout(live):
    app = live()
    app.wait_main()
    win = app.wait_settled()["windows"][0]
    rows = win["rows"]
    vcpu = next(i for i, r in enumerate(rows) if "VCPU" in r)
    y_before = win["y_range"]
    x, y = app.row_point(win, vcpu, 0.6)
    app.focus()
    app.click(x, y)
    win = app.wait_for("pair highlighted", lambda st: st["windows"][0]["highlight"] and st["windows"][0])
    win = app.wait_settled()["windows"][0]
    assert win["y_range"] == pytest.approx(y_before, abs=0.01), "clicking a row must not re-lay out the rows"
    assert app.quit() == 0


def test_host_and_guest_files(live, traces):
    pair = traces / "vm"
    guests = sorted(pair.glob("trace-*.dat"))
    app = live("-i", str(pair / "trace.dat"), *[a for g in guests for a in ("-i", str(g))])
    win = app.wait_main(r"^kshark-py - trace\.dat, trace-")
    assert any(r.startswith("host CPU") for r in win["rows"])
    assert any("VCPU" in r for r in win["rows"])
    assert win["files"] == [str(pair / "trace.dat"), *map(str, guests)]
    assert app.quit() == 0


def test_session_file_restores_range_and_markers(live, tmp_path):
    demo = json.loads((ROOT / "resources" / "demo" / "demo-session.json").read_text())
    for s in demo["data streams"]:
        s["data"]["file"] = str(ROOT / "resources" / "demo" / s["data"]["file"])
    # a session with a range and marker A inside the demo's time span
    app = live()
    full = app.wait_main()["full_range"]
    assert app.quit() == 0
    t0 = full[0] + (full[1] - full[0]) // 4
    t1 = t0 + (full[1] - full[0]) // 10
    demo["Model"]["range"] = [t0, t1]
    demo["Markers"]["markA"] = {"isSet": True, "time": t0 + 1000}
    path = tmp_path / "s.json"
    path.write_text(json.dumps(demo))
    app = live("--session", str(path))
    win = app.wait_main()
    win = app.wait_for("session range", lambda st: abs(st["windows"][0]["range"][0] - t0) < (t1 - t0) * 0.02
                       and st["windows"][0])
    assert span(win) == pytest.approx(t1 - t0, rel=0.02)
    assert int(win["markers"]["A"]) == t0 + 1000
    assert app.quit() == 0


def _file_dialog(app, title: str, path: str) -> None:
    """Qt's own file dialog (no desktop on Xvfb): the name field has the focus; type the path."""
    app.wait_for(f"the {title!r} dialog", lambda st: any(w["title"] == title for w in st["windows"]))
    app.type(path, f"^{title}$")
    app.key("Return", title_re=f"^{title}$")


def test_file_open_append_and_import_session(live, traces, tmp_path):
    app = live()
    first = app.wait_main()
    # File > Open: a second window with the chosen file
    app.key("ctrl+o")
    _file_dialog(app, "Open trace", str(traces / "host-sched-v7.dat"))
    app.wait_for("the opened file's window", lambda st: any(w["title"] == "kshark-py - host-sched-v7.dat"
                                                            for w in st["windows"] if w["kind"] == "main"))
    assert len(app.mains()) == 2
    # Append guest trace in the new window: it is replaced by one with both files
    app.key("ctrl+a", title_re="^kshark-py - host-sched-v7.dat$")
    guest = traces / "vm" / "trace-vmguest.dat"
    _file_dialog(app, "Append guest trace", str(guest))
    app.wait_for("the appended window replaces the old one", lambda st: sorted(
        w["title"] for w in st["windows"] if w["kind"] == "main") == sorted(
        [first["title"], "kshark-py - host-sched-v7.dat, " + guest.name]))
    assert app.alive()
    # Import session (File menu, mnemonic I) in the demo window: the app keeps running throughout
    sess = {"type": "kshark.config.session", "Model": {"type": "kshark.config.model", "range": None},
            "data streams": [{"type": "kshark.config.stream", "stream id": 0,
                              "data": {"type": "kshark.config.data", "file": str(traces / "host-sched-v6.dat")}}],
            "Markers": {"type": "kshark.config.markers", "markA": {"isSet": False, "time": None},
                        "markB": {"isSet": False, "time": None}, "Active": "A"}}
    p = tmp_path / "import.json"
    p.write_text(json.dumps(sess))
    app.key("alt+f", "i", title_re=f"^{first['title']}$")
    _file_dialog(app, "Import session", str(p))
    app.wait_for("the imported session's window", lambda st: any(
        w["title"] == "kshark-py - host-sched-v6.dat" for w in st["windows"] if w["kind"] == "main"))
    app.wait_for("the demo window replaced", lambda st: not any(
        w["title"] == first["title"] for w in st["windows"] if w["kind"] == "main"))
    assert app.alive()
    assert app.quit() == 0


def test_bad_file_shows_an_error_and_keeps_running(live, tmp_path):
    bad = tmp_path / "bad.dat"
    bad.write_bytes(Path(ROOT / "resources" / "demo" / "trace.dat").read_bytes()[:5000])
    app = live()
    app.wait_main()
    app.key("ctrl+o")
    _file_dialog(app, "Open trace", str(bad))
    app.wait_for("an error box", lambda st: any(w["kind"] == "QMessageBox" for w in st["windows"]))
    assert app.alive() and len(app.mains()) == 1
    app.key("Return", title_re="^kshark-py$")
    app.wait_for("error box closed", lambda st: not any(w["kind"] == "QMessageBox" for w in st["windows"]))
    assert app.quit() == 0


def test_load_progress_and_cancel(live, big_trace):
    """File > Open of a big recording opens its page-header preview at once with the load's progress
    in the status bar; Esc cancels the load, the preview window says so and stays until closed, and the
    app goes on."""
    app = live()
    first = app.wait_main()
    app.key("ctrl+o")
    _file_dialog(app, "Open trace", str(big_trace))
    title = f"kshark-py - {big_trace.name}"
    prev = app.wait_for("the preview window", lambda st: next(
        (w for w in st["windows"] if w["kind"] == "loading" and w["title"] == title), None))
    assert prev["rows"] and all(r.startswith("host CPU") or r.startswith("CPU") for r in prev["rows"]), prev
    assert prev["full_range"][1] > prev["full_range"][0]
    app.key("Escape", title_re=f"^{re.escape(title)}$")
    app.wait_for("the load cancelled", lambda st: any(w["kind"] == "loading" and w["cancelled"]
                                                      for w in st["windows"]))
    settled = app.wait_settled(quiet=2.0)
    mains = [w for w in settled["windows"] if w["kind"] == "main"]
    assert [w["title"] for w in mains] == [first["title"]], "a cancelled load opens no full window"
    app.key("ctrl+w", title_re=f"^{re.escape(title)}$")
    app.wait_for("the preview closed", lambda st: not any(w["kind"] == "loading" for w in st["windows"]))
    assert app.alive()
    assert app.quit() == 0


def test_closed_windows_are_freed_and_quit_ends_all(live, traces):
    """Close window (Ctrl+W) frees the window and its session; Ctrl+Q quits the app from any window."""
    app = live()
    first = app.wait_main()
    for name in ("host-sched-v7.dat", "host-small-v7.dat"):
        app.key("ctrl+o", title_re=f"^{first['title']}$")
        _file_dialog(app, "Open trace", str(traces / name))
        app.wait_for(f"window of {name}", lambda st, n=name: any(w["title"] == f"kshark-py - {n}"
                                                                 for w in st["windows"] if w["kind"] == "main"))
    app.wait_for("three windows in memory", lambda st: st["windows_in_memory"] == 3)
    app.key("ctrl+w", title_re="^kshark-py - host-sched-v7.dat$")
    app.wait_for("the closed window freed", lambda st: st["windows_in_memory"] == 2
                 and len([w for w in st["windows"] if w["kind"] == "main"]) == 2)
    assert app.alive()
    assert app.quit() == 0  # one Ctrl+Q closes both remaining windows


SEED_SETTINGS = r"""
import json, sys
from PySide6 import QtCore
from kshark_py.ui.capturepanel import SETTINGS_KEY, capture_settings
s = capture_settings()
s.setValue(SETTINGS_KEY, json.dumps({"output_dir": sys.argv[1], "duration": 2.0}))
s.sync()
print(s.fileName())
"""


def test_capture_dialog_records_and_opens_the_result(live, tmp_path):
    """Ctrl+R, type in the event search, check sched_switch with the keyboard, Record (Return): 2 s later
    the recording opens in a new window. The folder and duration are the dialog's remembered choices."""
    conf = tmp_path / "config"
    out = tmp_path / "rec"
    out.mkdir()
    env = {"XDG_CONFIG_HOME": str(conf)}
    r = subprocess.run([sys.executable, "-c", SEED_SETTINGS, str(out)], capture_output=True, text=True,
                       env={**os.environ, **env, "QT_QPA_PLATFORM": "offscreen"}, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith(str(conf)), r.stderr
    app = live(extra_env=env)
    demo = app.wait_main()
    app.key("ctrl+r")
    title = "^Record host and guests$"
    app.wait_for("the capture dialog", lambda st: any(w["title"] == "Record host and guests" for w in st["windows"]))
    app.focus(title)
    for _ in range(3):  # typing twice in the search aborted the app on PySide6 6.12 + CPython 3.11
        app.type("sched_switch", title)
        app.key("ctrl+a", "BackSpace", title_re=title)
    app.type("sched_switch", title)
    app.key("Tab", "Down", "Down", "space", title_re=title)
    app.key("Return", title_re=title)
    win = app.wait_main(r"^kshark-py - trace\.dat$", timeout=90)
    assert [w["title"] for w in app.mains()].count(demo["title"]) == 1
    files = win["files"]
    assert len(files) == 1 and Path(files[0]).parent.parent == out, files
    assert all(r.startswith("host CPU") for r in win["rows"]) and win["list_rows"] > 0
    # the recording brings its own VCPU map: nothing of the demo's guest is carried over
    assert "vmguest" not in win["status"] and not any(win["docks"].values()), (win["status"], win["docks"])
    span_s = (win["full_range"][1] - win["full_range"][0]) / 1e9
    assert 0.5 < span_s < 10, f"a 2 s recording spans {span_s} s"
    tf = open_trace(files[0])
    ids = set(tf.buffers[0].events.column("event_id").to_numpy().tolist())
    assert {tf.formats.by_id[i].name for i in ids} == {"sched_switch"}, "only the checked event is recorded"
    assert app.quit() == 0


def test_list_click_moves_marker_and_graph_follows(live):
    """A click on a list row whose event is off screen sets marker A there and moves the graph to it."""
    app = live()
    app.wait_main()
    app.key("plus", "plus", "plus", "plus")  # the middle sixteenth: the list's first rows are off screen
    win = app.wait_for("zoomed", lambda st: span(st["windows"][0]) * 15 < full_span(st["windows"][0])
                       and st["windows"][0])
    win = app.wait_settled()["windows"][0]
    s = span(win)
    x, y, w, h = win["list_rect"]
    rh = win["list_row_height"]
    app.click(x + w // 2, y + rh * 3 + rh // 2)
    win = app.wait_for("marker A set", lambda st: st["windows"][0]["markers"]["A"] is not None and st["windows"][0])
    win = app.wait_settled()["windows"][0]
    a = int(win["markers"]["A"])
    assert win["range"][0] <= a <= win["range"][1], "the graph follows the list to the marker"
    assert span(win) == pytest.approx(s, rel=0.01), "following keeps the zoom"
    assert app.quit() == 0


def test_time_offset_and_vcpu_threads_options(live, traces):
    """vm/ was recorded without time sync (guest ~2,849 s behind) over TCP (its GUEST record has no host
    pid): --time-offset puts the guest on the host's clock, --vcpu-threads maps its VCPUs."""
    pair = traces / "vm"
    app = live("-i", str(pair / "trace.dat"), "-i", str(pair / "trace-vmguest.dat"))
    unsynced = app.wait_main()
    assert full_span(unsynced) > 2_000e9
    assert app.quit() == 0
    app = live(str(pair / "trace.dat"), str(pair / "trace-vmguest.dat"), "--time-offset", "vmguest=2848872632049",
               "--vcpu-threads", f"vmguest={pair / 'vcpu-threads.json'}")
    win = app.wait_main()
    assert full_span(win) < 100e9, "the guest's events sit within the host's recording"
    assert any(r.startswith("vmguest VCPU0 host ") for r in win["rows"]), win["rows"]
    assert app.quit() == 0
