"""Sessions and time offsets in the running app (``kshark-py`` on Xvfb, real keys from xdotool)."""

from __future__ import annotations

import json
from pathlib import Path

from kshark_py.loaders.tracedat import open_trace

EXAMPLE = Path(__file__).resolve().parents[2] / "shared" / "spec" / "kernelshark-session-example.json"


def _first_ts(path: Path) -> int:
    return int(open_trace(path).buffers[0].events.column("ts")[0].as_py())


def _dialog(app, title: str) -> None:
    app.wait_for(f"the {title!r} dialog", lambda st: any(w["title"] == title for w in st["windows"]))


def test_tools_add_time_offset_then_export(live, traces, tmp_path):
    """The vm/ guest has no time sync (its clock ~2,850 s behind the host's): Tools > Add time
    offset moves it onto the host's time line, and File > Export session saves it as KernelShark's
    ``calib. array``."""
    host, guest = traces / "vm/trace.dat", traces / "vm/trace-vmguest.dat"
    h0, g0 = _first_ts(host), _first_ts(guest)
    app = live("-i", str(host), "-i", str(guest))
    win = app.wait_main()
    assert win["full_range"][0] == g0
    app.key("alt+t", "o")
    _dialog(app, "Add time offset")
    app.key("Tab", "ctrl+a", title_re="^Add time offset$")
    app.type(str(h0 - g0), "^Add time offset$")
    app.key("Return", title_re="^Add time offset$")
    win = app.wait_for("the guest moved onto the host's clock",
                       lambda st: st["windows"][0]["full_range"][0] == h0 and st["windows"][0])
    assert win["range"][0] >= h0 - 0.01 * (win["range"][1] - win["range"][0])
    assert win["list_rows"] > 0 and any("VCPU" in r for r in win["rows"])
    app.d.screenshot(tmp_path / "offset.png")
    out = tmp_path / "offset.json"
    app.key("alt+f", "e")
    _dialog(app, "Export session")
    app.type(str(out), "^Export session$")
    app.key("Return", title_re="^Export session$")
    app.wait_for("the exported session", lambda st: out.exists() and out.stat().st_size > 0)
    doc = json.loads(out.read_text())
    assert [s.get("calib. array") for s in doc["data streams"]] == [None, [h0 - g0]]
    assert app.quit() == 0


def test_kernelshark_session_opens_with_its_rows(live):
    app = live("--session", str(EXAMPLE))
    win = app.wait_main()
    assert win["rows"] == ["host CPU 0", "host CPU 1", "host kworker/0:1-11", "host rcu_tasks_trace-29"]
    assert win["range"] == [207420759968, 208421849984]
    assert app.quit() == 0
