"""Render the README's screenshots of the bundled demo (offscreen), so they can be remade.

Usage: QT_QPA_PLATFORM=offscreen python docs/make_screenshots.py [OUTDIR]
Writes demo-full.png, demo-vcpu-pair.png and demo-list-markers.png (default OUTDIR: docs/).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from PySide6 import QtWidgets  # noqa: E402

from kshark_py.ui.app import DEMO_SESSION, app_instance, build_window  # noqa: E402
from kshark_py.ui.loader import load_session  # noqa: E402
from kshark_py.ui.sessionfile import load_session_file  # noqa: E402


def settle(w) -> None:
    for _ in range(5):
        QtWidgets.QApplication.processEvents()
    w.timeline.redraw()
    QtWidgets.QApplication.processEvents()


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent)
    out.mkdir(parents=True, exist_ok=True)
    app_instance()
    state = load_session_file(str(DEMO_SESSION))
    res = load_session(state.files, state.vcpu_map)
    w = build_window(res, state.files, state.vcpu_map, state)
    w.resize(1600, 1000)
    w.show()
    settle(w)
    w.grab().save(str(out / "demo-full.png"))

    # a VCPU pair up close: where the first mapped VCPU's host thread is busiest, highlighted
    host = res.session.host_stream
    m = res.vcpu_map[0]
    runs = res.session.runs(host.index)
    pid = runs.column("pid").to_numpy()
    start = runs.column("start").to_numpy()[pid == m.host_pid]
    end = runs.column("end").to_numpy()[pid == m.host_pid]
    busiest = int(np.argmax(np.convolve((end - start).astype(float), np.ones(20), "same")))
    t_mid = int(start[busiest])
    w.timeline.set_range(t_mid - 2_000_000, t_mid + 2_000_000)
    state_row = next(i for i, r in enumerate(w.model.rows) if r.kind == "vcpu_state")
    w._on_row_clicked(state_row, t_mid)
    settle(w)
    w.grab().save(str(out / "demo-vcpu-pair.png"))

    # the list with markers A and B two guest events apart
    merged = res.session.merged()
    guest_rows = np.flatnonzero(merged.stream != host.index)
    a, b = int(guest_rows[len(guest_rows) // 2]), int(guest_rows[len(guest_rows) // 2 + 40])
    w.timeline.set_range(int(merged.ts[a]) - 200_000, int(merged.ts[b]) + 200_000)
    w.set_marker("B", int(merged.ts[b]))
    w.event_list.select_merged_index(a, emit=True)  # as a click on the row: marker A moves there
    settle(w)
    w.grab().save(str(out / "demo-list-markers.png"))
    w.close()
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # skip PySide6/pyqtgraph teardown (see kshark_py.ui.app.run)
