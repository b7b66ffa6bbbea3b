"""Driving the real app: ``kshark-py`` as a subprocess on an Xvfb display, real input from xdotool.

What the window shows is read back from the live process through its probe file
(``KSHARK_PY_PROBE``, see ``kshark_py.ui.probe``) and from screenshots of the display. Xvfb, xdotool
and imagemagick are installed by ``.ci/run``; a missing one fails the tests (it is never a skip).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_SCRIPT = Path(sys.executable).with_name("kshark-py")
KSHARK = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "kshark_py.cli"]
"""The installed ``kshark-py`` command, as a user starts it."""


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed (apt-get install xvfb xdotool imagemagick; .ci/run does)")
    return path


class Display:
    """One Xvfb server."""

    def __init__(self, width: int = 1600, height: int = 1000) -> None:
        need("Xvfb")
        need("xdotool")
        self.size = (width, height)
        for _ in range(20):
            n = random.randint(100, 900)
            if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
                break
        self.name = f":{n}"
        self.proc = subprocess.Popen(["Xvfb", self.name, "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not Path(f"/tmp/.X11-unix/X{n}").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Xvfb {self.name} did not start")
            time.sleep(0.05)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DISPLAY"] = self.name
        env.pop("QT_QPA_PLATFORM", None)  # the real xcb platform, not offscreen
        return env

    def xdo(self, *args: str) -> str:
        r = subprocess.run(["xdotool", *args], env=self.env(), capture_output=True, text=True, timeout=20)
        return r.stdout.strip()

    def screenshot(self, out: Path) -> Path:
        need("import")
        subprocess.run(["import", "-window", "root", str(out)], env=self.env(), check=True, timeout=30)
        return out

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class LiveApp:
    """A running ``kshark-py`` on a :class:`Display`."""

    def __init__(self, display: Display, args: list[str], tmp: Path, *,
                 extra_env: dict[str, str] | None = None) -> None:
        self.d = display
        self.probe = tmp / f"probe-{time.monotonic_ns()}.json"
        self.log = tmp / f"app-{time.monotonic_ns()}.log"
        env = display.env()
        env["KSHARK_PY_PROBE"] = str(self.probe)
        env.update(extra_env or {})
        self._logf = open(self.log, "w")
        self.proc = subprocess.Popen([*KSHARK, *args], env=env, cwd=str(ROOT), stdout=self._logf,
                                     stderr=subprocess.STDOUT)

    # -- reading back ---------------------------------------------------------------------------
    def state(self) -> dict:
        try:
            return json.loads(self.probe.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {"windows": []}

    def mains(self) -> list[dict]:
        return [w for w in self.state()["windows"] if w["kind"] == "main"]

    def main(self) -> dict:
        ws = self.mains()
        assert len(ws) == 1, f"expected one main window, got {[w['title'] for w in ws]}"
        return ws[0]

    def output(self) -> str:
        self._logf.flush()
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for(self, what: str, pred: Callable[[dict], object], timeout: float = 30.0) -> object:
        """Poll the probe until ``pred(state)`` is truthy; fail with ``what`` and the app's output."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                pytest.fail(f"kshark-py exited with status {self.proc.returncode} while waiting for {what}:\n"
                            f"{self.output()[-2000:]}")
            st = self.state()
            try:
                got = pred(st)
            except (KeyError, IndexError, TypeError, AssertionError):
                got = None
            if got:
                return got
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}; last state: {json.dumps(st)[:1500]}\n"
                            f"output: {self.output()[-1500:]}")
            time.sleep(0.1)

    def wait_main(self, title_re: str = r"^kshark-py - ", timeout: float = 60.0) -> dict:
        def found(st: dict):
            ws = [w for w in st["windows"] if w["kind"] == "main" and re.search(title_re, w["title"])
                  and w["rows"] and w["range"]]
            return ws[0] if ws else None

        return self.wait_for(f"a main window titled {title_re!r}", found, timeout)  # type: ignore[return-value]

    def wait_settled(self, quiet: float = 0.6, timeout: float = 15.0) -> dict:
        """Wait until the probe stops changing (input handled, redraw done)."""
        deadline = time.monotonic() + timeout
        last = self.state()
        since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            cur = self.state()
            if cur != last:
                last, since = cur, time.monotonic()
            elif time.monotonic() - since >= quiet:
                break
        return last

    # -- input ----------------------------------------------------------------------------------
    def window_id(self, title_re: str = r"^kshark-py - ") -> str:
        wid = ""
        deadline = time.monotonic() + 15
        while not wid and time.monotonic() < deadline:
            wid = self.d.xdo("search", "--onlyvisible", "--name", title_re).split("\n")[0]
            if not wid:
                time.sleep(0.2)
        assert wid, f"no visible X window named {title_re!r}"
        return wid

    def focus(self, title_re: str = r"^kshark-py - ") -> str:
        """No window manager runs on Xvfb: give the window the input focus explicitly."""
        wid = self.window_id(title_re)
        self.d.xdo("windowactivate", "--sync", wid)
        self.d.xdo("windowfocus", "--sync", wid)
        return wid

    def key(self, *keys: str, title_re: str = r"^kshark-py - ") -> None:
        self.focus(title_re)
        for k in keys:
            self.d.xdo("key", "--clearmodifiers", k)
            time.sleep(0.15)

    def type(self, text: str, title_re: str) -> None:
        self.focus(title_re)
        self.d.xdo("type", "--delay", "30", text)

    def move(self, x: int, y: int) -> None:
        """Put the pointer at (x, y). Not ``mousemove --sync``: that waits ~15 s when the pointer is
        already there."""
        self.d.xdo("mousemove", str(x), str(y))
        time.sleep(0.05)

    def click(self, x: int, y: int, button: int = 1, repeat: int = 1) -> None:
        self.move(x, y)
        time.sleep(0.05)
        self.d.xdo("click", "--repeat", str(repeat), "--delay", "80", str(button))

    def drag(self, x0: int, y0: int, x1: int, y1: int, modifier: str | None = None) -> None:
        self.move(x0, y0)
        if modifier:
            self.d.xdo("keydown", modifier)
        self.d.xdo("mousedown", "1")
        for i in range(1, 11):
            self.d.xdo("mousemove", str(x0 + (x1 - x0) * i // 10), str(y0 + (y1 - y0) * i // 10))
            time.sleep(0.03)
        self.d.xdo("mouseup", "1")
        if modifier:
            self.d.xdo("keyup", modifier)

    def row_point(self, win: dict, row: int, frac_x: float = 0.5) -> tuple[int, int]:
        """Screen coordinates of the middle of timeline row ``row`` at ``frac_x`` across the plot."""
        x, y, w, h = win["plot_rect"]
        y0, y1 = win["y_range"]
        assert y0 <= row + 0.45 <= y1, f"row {row} is not on screen (rows {y0:.1f}..{y1:.1f})"
        return int(x + w * frac_x), int(y + h * (row + 0.4 - y0) / (y1 - y0))

    # -- ending ---------------------------------------------------------------------------------
    def quit(self, timeout: float = 15.0) -> int:
        """Ctrl+Q in the main window(s); the exit status."""
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            if self.mains():
                try:
                    self.key("ctrl+q")
                except AssertionError:
                    pass
            time.sleep(0.5)
        return self.stop()

    def stop(self) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self._logf.close()
            return -9
        self._logf.close()
        return self.proc.returncode


@pytest.fixture(scope="session")
def display() -> Iterator[Display]:
    d = Display()
    yield d
    d.close()


@pytest.fixture
def live(display: Display, tmp_path: Path) -> Iterator[Callable[..., LiveApp]]:
    """``live(args)`` starts kshark-py on the display; every app still running at the end is killed."""
    apps: list[LiveApp] = []

    def start(*args: str, extra_env: dict[str, str] | None = None) -> LiveApp:
        a = LiveApp(display, list(args), tmp_path, extra_env=extra_env)
        apps.append(a)
        return a

    yield start
    for a in apps:
        if a.alive():
            a.stop()


@pytest.fixture(scope="session")
def big_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real multi-million-event recording (a second of every event under load), so a load takes
    long enough to see its progress dialog; recorded once per test run with trace-cmd (root)."""
    tool = ROOT.parent / "shared" / "tools" / "record-bench-trace.sh"
    out = tmp_path_factory.mktemp("big") / "big.dat"
    r = subprocess.run(["sh", str(tool), str(out), "1"], capture_output=True, text=True, timeout=300,
                       cwd=str(out.parent))
    if r.returncode != 0 or not out.exists():
        pytest.fail(f"recording the big trace failed ({r.returncode}): {r.stderr[-1000:]}")
    return out
