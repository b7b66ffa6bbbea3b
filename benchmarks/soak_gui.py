"""Soak: minutes of scripted random interaction with the live app on Xvfb; no crash, flat memory.

Starts ``kshark-py`` as a user does (a process on an X display), then for SECONDS drives it with random
real input from xdotool: zoom keys, wheel, pans, Home, clicks and double-clicks on rows, Ctrl+drag
rubber bands, list scrolling and the search box. Every 10 s it samples the process's resident memory
(VmRSS) and prints the curve. Exits 1 when the app dies or stops answering.

Usage: python benchmarks/soak_gui.py SECONDS [kshark-py args...]   (no args: the demo)
       SOAK_ACTIONS=list,double python benchmarks/soak_gui.py ...   (only those kinds of input)
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.livegui import Display, LiveApp  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 600
    args = sys.argv[2:]
    rnd = random.Random(1234)
    # SOAK_ACTIONS=key,wheel,... limits the input to some kinds (to find which one grows memory)
    trace = bool(os.environ.get("SOAK_TRACE"))
    kinds = os.environ.get("SOAK_ACTIONS", "key,key,wheel,click,double,band,list,pan").split(",")
    d = Display()
    tmp = Path(tempfile.mkdtemp(prefix="kshark-soak-"))
    app = LiveApp(d, args, tmp)
    t_start = time.monotonic()
    try:
        win = app.wait_main(timeout=180)
    except BaseException as e:  # pytest.fail raises a BaseException subclass
        print(f"soak: no window: {e}")
        return 1
    t_open = time.monotonic() - t_start
    pid = app.proc.pid
    print(f"soak: window after {t_open:.1f} s, rss {rss_mb(pid):.0f} MB; {seconds:.0f} s of random input")
    app.focus()
    actions = 0
    curve: list[tuple[float, float]] = []
    t0 = time.monotonic()
    next_sample = t0
    while time.monotonic() - t0 < seconds:
        if not app.alive():
            print(f"soak: kshark-py died with status {app.proc.returncode} after {actions} actions")
            print(app.output()[-2000:])
            return 1
        now = time.monotonic()
        if now >= next_sample:
            curve.append((now - t0, rss_mb(pid)))
            print(f"  t={now - t0:6.0f} s  rss {curve[-1][1]:7.1f} MB  actions {actions}", flush=True)
            next_sample = now + 10
            st = app.state()
            wins = [w for w in st["windows"] if w["kind"] == "main"]
            if wins:
                win = wins[0]
            dialogs = [w for w in st["windows"] if w["kind"] != "main"]
            for _ in dialogs:  # a stray dialog (e.g. an error box) would swallow the input
                app.d.xdo("key", "Escape")
        x, y, w, h = win["plot_rect"]
        px, py = x + int(w * rnd.random()), y + int(h * rnd.random())
        a = rnd.choice(kinds)
        if a == "key":
            app.d.xdo("key", rnd.choice(["plus", "minus", "Left", "Right", "Home", "plus", "minus"]))
        elif a == "wheel":
            app.click(px, py, button=rnd.choice([4, 5]), repeat=rnd.randint(1, 3))
        elif a == "click":
            app.click(px, py)
        elif a == "double":
            app.click(px, py, repeat=2)
        elif a == "band":
            app.drag(px, py, min(x + w - 2, px + rnd.randint(5, 300)), py + 10, modifier="ctrl")
        elif a == "pan":
            app.drag(px, py, max(x + 2, px - rnd.randint(5, 200)), py)
        else:  # the event list below the graph: scroll and page through it
            gx, gy, gw, gh = win["geometry"]
            app.click(gx + gw // 3, min(gy + gh - 60, y + h + 200))
            app.d.xdo("key", rnd.choice(["Page_Down", "Page_Up", "Down", "End", "Home"]))
            app.focus()
        actions += 1
        if trace:
            print(f"    {time.monotonic() - t0:7.2f} {a} cpu {cpu_s(pid):.2f}", flush=True)
        time.sleep(0.05)
    curve.append((time.monotonic() - t0, rss_mb(pid)))
    c0 = cpu_s(pid)
    time.sleep(3)
    idle_cpu = (cpu_s(pid) - c0) / 3
    print(f"soak: the app uses {idle_cpu:.0%} of a core when left alone for 3 s")
    if os.environ.get("SOAK_PYSPY"):  # what a busy app is doing (pip install py-spy)
        import subprocess

        for _ in range(3):
            subprocess.run(["py-spy", "dump", "--native", "--pid", str(pid)], check=False)
            time.sleep(0.3)
    d.screenshot(tmp / "before-quit.png")
    before = app.state()
    for k in ("ctrl", "shift", "alt"):  # a modifier left down by an interrupted drag would change Ctrl+Q
        app.d.xdo("keyup", k)
    app.d.xdo("mouseup", "1")
    code = app.quit()
    if code != 0:
        age = time.time() - app.probe.stat().st_mtime
        print(f"soak: Ctrl+Q did not end the app (status {code}); its probe last changed {age:.1f} s before; "
              f"windows then: "
              f"{[(w['kind'], w['title']) for w in before['windows']]}; screenshot {tmp / 'before-quit.png'}")
    d.close()
    first, peak, last = curve[0][1], max(r for _, r in curve), curve[-1][1]
    settled = [r for t, r in curve if t >= seconds * 0.3]
    print(f"soak: {actions} actions in {seconds:.0f} s; rss first {first:.0f} MB, peak {peak:.0f} MB, "
          f"last {last:.0f} MB; after the first 30%: {min(settled):.0f}..{max(settled):.0f} MB; "
          f"exit status {code}")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
