"""Take the README's screenshots from the real app: ``kshark-py`` on an Xvfb display, driven with xdotool.

Usage: python docs/make_screenshots.py [OUTDIR]   (needs Xvfb, xdotool, imagemagick: ./setup.sh)
Writes demo-full.png, demo-vcpu-pair.png and demo-list-markers.png (default OUTDIR: docs/). The
ranges and markers come from session files (as a user would import them); the highlight and the list
selection come from real clicks; each picture is the window as X shows it (``import -window``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from kshark_py.loaders.tracedat import open_trace  # noqa: E402
from kshark_py.model.session import Session  # noqa: E402
from kshark_py.model.sessionfile import load_session_file  # noqa: E402
from kshark_py.model.vcpus import build_vcpu_map  # noqa: E402
from kshark_py.ui.app import DEMO_SESSION  # noqa: E402
from tests.livegui import Display, LiveApp  # noqa: E402


def session_with(range_ns: tuple[int, int], markers: dict[str, int], out: Path) -> Path:
    """The demo's session file with absolute paths, a range and markers."""
    s = json.loads(DEMO_SESSION.read_text())
    for st in s["data streams"]:
        st["data"]["file"] = str(DEMO_SESSION.parent / st["data"]["file"])
    s["Model"]["range"] = list(range_ns)
    for name, t in markers.items():
        s["Markers"][f"mark{name}"] = {"isSet": True, "time": int(t)}
    out.write_text(json.dumps(s))
    return out


def shoot(app: LiveApp, out: Path) -> None:
    app.wait_settled(quiet=1.0)
    time.sleep(0.5)
    wid = app.window_id()
    subprocess.run(["import", "-window", wid, str(out)], env=app.d.env(), check=True, timeout=30)
    print(f"wrote {out}")


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="kshark-shots-"))
    d = Display(1600, 1000)
    try:
        # 1. the demo as it opens
        app = LiveApp(d, [], tmp)
        app.wait_main()
        shoot(app, out / "demo-full.png")
        assert app.quit() == 0

        # where the VCPU's host thread is busiest, and two guest events a little apart (model, no Qt)
        state = load_session_file(str(DEMO_SESSION))
        session = Session.from_files([open_trace(p) for p in state.files])
        m = build_vcpu_map(session, state.vcpu_map)[0]
        host = session.host_stream
        runs = session.runs(host.index)
        pid = runs.column("pid").to_numpy()
        start = runs.column("start").to_numpy()[pid == m.host_pid]
        end = runs.column("end").to_numpy()[pid == m.host_pid]
        busiest = int(np.argmax(np.convolve((end - start).astype(float), np.ones(20), "same")))
        t_mid = int(start[busiest])
        merged = session.merged()
        guest_rows = np.flatnonzero(merged.stream != host.index)
        a, b = int(guest_rows[len(guest_rows) // 2]), int(guest_rows[len(guest_rows) // 2 + 30])
        ta, tb = int(merged.ts[a]), int(merged.ts[b])

        # 2. the VCPU pair up close, its state row clicked: the pair and the thread's runs highlighted
        s2 = session_with((t_mid - 2_000_000, t_mid + 2_000_000), {}, tmp / "pair.json")
        app = LiveApp(d, ["--session", str(s2)], tmp)
        win = app.wait_main()
        win = app.wait_settled()["windows"][0]
        row = next(i for i, r in enumerate(win["rows"]) if r.endswith("state"))
        app.focus()
        app.click(*app.row_point(win, row, 0.5))
        app.wait_for("highlight", lambda st: st["windows"][0]["highlight"])
        shoot(app, out / "demo-vcpu-pair.png")
        assert app.quit() == 0

        # 3. marker B on a guest event; a double-click on the guest CPU row selects that row's nearest
        # event in the list and puts the active marker A on it
        s3 = session_with((ta - 200_000, tb + 200_000), {"B": tb}, tmp / "list.json")
        app = LiveApp(d, ["--session", str(s3)], tmp)
        app.wait_main()
        win = app.wait_settled()["windows"][0]
        row = next(i for i, r in enumerate(win["rows"]) if r.endswith("(guest CPU)"))
        app.focus()
        app.click(*app.row_point(win, row, 0.3), repeat=2)
        app.wait_for("a list row selected", lambda st: st["windows"][0]["list_selected"] is not None)
        shoot(app, out / "demo-list-markers.png")
        assert app.quit() == 0
    finally:
        d.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
