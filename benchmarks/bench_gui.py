"""Timeline speed on a big trace: first paint, redraw per zoom/pan step, peak memory; and
KernelShark on the same file in the same run.

Usage: python benchmarks/bench_gui.py BIG.dat [--steps N] [--no-kernelshark]

Cold and warm: the cold runs have the load cache off (``KSHARK_PY_NO_CACHE``); then a first open
writes the cache into a scratch ``XDG_CACHE_HOME`` and the warm runs re-open from it (the second
open a user makes): first paint, the whole ``kshark-py -i F --screenshot`` process, and memory
(peak; resident at the end split into anonymous memory and file pages shared with the page cache).

The progressive line starts the app as a user does (worker thread, page-header preview) and gives
the wall-clock time from spawning the process to the preview's first paint and to the full window.
(BIG.dat from ../shared/tools/record-bench-trace.sh.)

kshark-py is measured in a fresh process, offscreen: time from start to the first complete paint
of the main window (load, derived tables, rows, one render), then N zoom and N pan steps, each
timed from the range change to the rendered image (the cost the user waits for), and the
process's peak RSS against the size of the Arrow events tables.

KernelShark (Debian's 2.2.1) is started on the same file under Xvfb (xvfb-run; it does not run on
Qt's offscreen platform); its load is over when it stops using CPU (sampled every 0.2 s, idle for
2 s); we report that time (which includes its first paint) and its peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from kshark_py.loaders.aot import describe

CHILD = r"""
import json, os, resource, statistics, sys, time
os.environ["QT_QPA_PLATFORM"] = "offscreen"
t0 = time.perf_counter()
from kshark_py.ui.app import app_instance, build_window
from kshark_py.model.loading import load_session
app = app_instance()
res = load_session([sys.argv[1]])
t_load = time.perf_counter() - t0
w = build_window(res, [sys.argv[1]])
w.resize(1600, 1000)
w.show()
app.processEvents()
w.timeline.redraw()
w.repaint()
app.processEvents()
t_paint = time.perf_counter() - t0
rss_paint = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
steps = int(sys.argv[2])
zoom, pan = [], []
tl = w.timeline
for i in range(steps):
    a = time.perf_counter(); tl.zoom(1.5); tl.redraw(); app.processEvents(); zoom.append(time.perf_counter() - a)
for i in range(steps):
    a = time.perf_counter(); tl.pan(0.1 if i % 8 < 4 else -0.1); tl.redraw(); app.processEvents()
    pan.append(time.perf_counter() - a)
for i in range(steps):
    a = time.perf_counter(); tl.zoom(1 / 1.5); tl.redraw(); app.processEvents(); zoom.append(time.perf_counter() - a)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
status = {k: int(v.split()[0]) * 1024 for k, v in (ln.split(":", 1) for ln in open("/proc/self/status"))
          if k in ("RssAnon", "RssFile", "RssShmem")}
tables = sum(st.buffer.events.nbytes for st in res.session.streams)
n = sum(len(st.buffer.events) for st in res.session.streams)
ms = lambda v: 1e3 * v
print(json.dumps({"events": n, "load_s": t_load, "first_paint_s": t_paint,
                  "zoom_median_ms": ms(statistics.median(zoom)), "zoom_worst_ms": ms(max(zoom)),
                  "pan_median_ms": ms(statistics.median(pan)), "pan_worst_ms": ms(max(pan)),
                  "render_only_median_ms": statistics.median(tl.render_ms), "peak_rss": rss, "tables": tables,
                  "rss_after_paint": rss_paint, "rss_anon": status.get("RssAnon", 0),
                  "rss_file": status.get("RssFile", 0)}))
sys.stdout.flush()
os._exit(0)  # skip interpreter teardown (see kshark_py.ui.app.run)
"""

PROGRESSIVE = r"""
import json, os, resource, sys, time
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from kshark_py.ui.app import app_instance, window_manager
from kshark_py.ui.openrequest import OpenRequest
from PySide6 import QtCore, QtWidgets
app = app_instance()
base = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
window_manager().open(OpenRequest([sys.argv[1]]))
out, zooms = {"rss_base": base}, []

def poll():
    now = time.time()
    for w in QtWidgets.QApplication.topLevelWidgets():
        tl = getattr(w, "timeline", None)
        if not w.isVisible() or tl is None or tl.last is None:
            continue
        if "preview" not in out and getattr(w, "loading", None) is not None:
            out["preview"] = now
        if "preview" in out and getattr(w, "loading", None) is not None and len(zooms) < 8:
            a = time.perf_counter(); tl.zoom(1.5 if len(zooms) < 4 else 1 / 1.5); tl.redraw()
            zooms.append(time.perf_counter() - a)
        if getattr(w, "loading", 1) is None:
            out["full"] = now
            out["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            out["tables"] = sum(st.buffer.events.nbytes for st in w.session.streams)
            print(json.dumps({**out, "zooms_during_load_ms": [1e3 * z for z in zooms]}))
            sys.stdout.flush()
            os._exit(0)

timer = QtCore.QTimer()
timer.timeout.connect(poll)
timer.start(5)
app.exec()
"""
"""The app as a user starts it (window manager, worker thread, progressive first view): wall-clock
times of the preview's first paint and of the full window, and zoom steps taken during the load."""


def progressive(path: str, env: dict) -> dict:
    """Seconds from spawning the process to the preview's first paint and to the full window."""
    t0 = time.time()
    r = json.loads(subprocess.run([sys.executable, "-c", PROGRESSIVE, path], capture_output=True, text=True,
                                  env=env, check=True).stdout.strip().splitlines()[-1])
    return {"preview_s": r["preview"] - t0 if "preview" in r else None, "full_s": r["full"] - t0,
            "zooms_ms": r["zooms_during_load_ms"], "peak_rss": r["peak_rss"], "tables": r["tables"],
            "rss_base": r["rss_base"]}


def _memory(r: dict) -> str:
    """Peak RSS against the events tables, whole and above what the process held before the load."""
    return (f"peak RSS {r['peak_rss'] / 1e6:.0f} MB = {r['peak_rss'] / r['tables']:.2f}x the events tables "
            f"({r['tables'] / 1e6:.0f} MB); {(r['peak_rss'] - r['rss_base']) / r['tables']:.2f}x above the "
            f"{r['rss_base'] / 1e6:.0f} MB the process held before the load (libraries, Qt)")


def _preview(r: dict) -> str:
    return "no preview (the window came first)" if r["preview_s"] is None else \
        f"page-header preview painted at {r['preview_s']:.2f} s"


def _whole_process(path: str, env: dict) -> tuple[float, float, int]:
    """``kshark-py -i F --screenshot``: wall seconds, CPU seconds, peak RSS bytes (GNU time)."""
    exe = shutil.which("kshark-py") or os.path.join(os.path.dirname(sys.executable), "kshark-py")
    out = os.path.join(env["XDG_CACHE_HOME"], "shot.png")
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", exe, "-i", path, "--screenshot", out],
                       capture_output=True, text=True, env=dict(env, QT_QPA_PLATFORM="offscreen"), check=True)
    wall = time.perf_counter() - t0
    u, s, m = p.stderr.strip().splitlines()[-1].split()
    return wall, float(u) + float(s), int(m) * 1024


def warm(path: str, env: dict, steps: int, repeat: int = 3) -> None:
    """The second open of a file: a first open writes the load cache, then the same measures again."""
    first = _whole_process(path, env)
    print(f"first open, writing the load cache: --screenshot {first[0]:.2f} s wall, {first[1]:.2f} s CPU, "
          f"peak RSS {first[2] / 1e6:.0f} MB")
    r = min((json.loads(subprocess.run([sys.executable, "-c", CHILD, path, str(steps)], capture_output=True, text=True,
                                       env=env, check=True).stdout.strip().splitlines()[-1]) for _ in range(repeat)),
            key=lambda x: x["first_paint_s"])
    shot = min((_whole_process(path, env) for _ in range(repeat)), key=lambda x: x[0])
    print(f"warm (load cache, best of {repeat}): loaded in {r['load_s']:.2f} s, first complete paint at "
          f"{r['first_paint_s']:.2f} s; whole process --screenshot {shot[0]:.2f} s wall, {shot[1]:.2f} s CPU")
    print(f"  peak RSS {r['peak_rss'] / 1e6:.0f} MB; resident at the end {r['rss_after_paint'] / 1e6:.0f} MB: "
          f"{r['rss_anon'] / 1e6:.0f} MB anonymous, {r['rss_file'] / 1e6:.0f} MB file pages (libraries and the mapped "
          f"cache, shared with the page cache); zoom median {r['zoom_median_ms']:.1f} ms, pan median "
          f"{r['pan_median_ms']:.1f} ms")


def kernelshark(path: str, timeout: float = 600) -> tuple[float, int] | None:
    """(seconds until KernelShark goes idle after loading, peak RSS bytes), or None if absent."""
    exe = shutil.which("kernelshark")
    if exe is None:
        return None
    # KernelShark quits at once on Qt's offscreen platform: give it a virtual X display (our own
    # Xvfb without an auth file, so that an unprivileged KernelShark may connect)
    env = dict(os.environ)
    xvfb_proc = None
    if not env.get("DISPLAY"):
        xvfb = shutil.which("Xvfb")
        if xvfb is None:
            print("KernelShark: needs a display; apt-get install xvfb")
            return None
        disp = f":{90 + os.getpid() % 100}"
        xvfb_proc = subprocess.Popen([xvfb, disp, "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        env["DISPLAY"] = disp
    cmd = [exe, "-i", path]
    if os.geteuid() == 0:
        # as root KernelShark opens a modal "running with Root privileges" box and loads nothing
        # until someone clicks it: run it as nobody, with a scratch HOME for its settings
        env["HOME"] = tempfile.mkdtemp(prefix="ks-home-")
        os.chmod(env["HOME"], 0o777)
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                         env=env)
    ks_pid = None
    while ks_pid is None and time.perf_counter() - t0 < 20:
        time.sleep(0.05)
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    if open(f"/proc/{d}/comm").read().strip() == "kernelshark" and \
                            os.getsid(int(d)) == p.pid:
                        ks_pid = int(d)
                        break
                except OSError:
                    continue
    if ks_pid is None:
        os.killpg(p.pid, 9)
        if xvfb_proc is not None:
            xvfb_proc.kill()
        return None
    clk = os.sysconf("SC_CLK_TCK")
    last_cpu, idle_since, done_at = -1.0, None, None
    hwm = 0
    try:
        while time.perf_counter() - t0 < timeout and p.poll() is None:
            time.sleep(0.2)
            try:
                stat = open(f"/proc/{ks_pid}/stat").read().rsplit(")", 1)[1].split()
                cpu = (int(stat[11]) + int(stat[12])) / clk
                for line in open(f"/proc/{ks_pid}/status"):
                    if line.startswith("VmHWM:"):
                        hwm = int(line.split()[1]) * 1024
            except OSError:
                break
            now = time.perf_counter()
            if cpu > last_cpu:
                idle_since = None
                done_at = now
            elif idle_since is None:
                idle_since = now
            elif now - idle_since > 2.0 and done_at is not None:
                break
            last_cpu = cpu
    finally:
        os.killpg(p.pid, 9)
        p.wait()
        if xvfb_proc is not None:
            xvfb_proc.kill()
            xvfb_proc.wait()
    return ((done_at or time.perf_counter()) - t0, hwm)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--no-kernelshark", action="store_true")
    a = ap.parse_args()
    scratch = tempfile.mkdtemp(prefix="bench-gui-cache-")
    warm_env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    XDG_CACHE_HOME=scratch, KSHARK_PY_NO_CACHE="")
    env = dict(warm_env, KSHARK_PY_NO_CACHE="1")  # cold: the load cache off
    r = json.loads(subprocess.run([sys.executable, "-c", CHILD, a.file, str(a.steps)], capture_output=True,
                                  text=True, env=env, check=True).stdout.strip().splitlines()[-1])
    print(f"file: {a.file}, {r['events']} events")
    print(describe())
    print(f"kshark-py: loaded in {r['load_s']:.2f} s, first complete paint at {r['first_paint_s']:.2f} s "
          f"({r['first_paint_s'] / r['load_s']:.2f}x the load)")
    print(f"  redraw per zoom step: median {r['zoom_median_ms']:.1f} ms, worst {r['zoom_worst_ms']:.1f} ms; "
          f"per pan step: median {r['pan_median_ms']:.1f} ms, worst {r['pan_worst_ms']:.1f} ms "
          f"(render alone: median {r['render_only_median_ms']:.1f} ms)")
    print(f"  peak RSS {r['peak_rss'] / 1e6:.0f} MB = {r['peak_rss'] / r['tables']:.2f}x the Arrow events tables "
          f"({r['tables'] / 1e6:.0f} MB); resident after the first paint {r['rss_after_paint'] / 1e6:.0f} MB = "
          f"{r['rss_after_paint'] / r['tables']:.2f}x")
    print(f"  resident at the end: {r['rss_anon'] / 1e6:.0f} MB anonymous, {r['rss_file'] / 1e6:.0f} MB file pages")
    warm(a.file, warm_env, a.steps)
    pr = progressive(a.file, env)
    z = pr["zooms_ms"]
    print(f"progressive (the app's own path, process start): {_preview(pr)}, full window at {pr['full_s']:.2f} s; "
          "zoom steps during the load: "
          + (f"median {sorted(z)[len(z) // 2]:.1f} ms, worst {max(z):.1f} ms" if z else "none (loaded first)"))
    print(f"  {_memory(pr)}")
    pw = progressive(a.file, warm_env)
    print(f"progressive, warm (load cache): {_preview(pw)}, full window at {pw['full_s']:.2f} s")
    shutil.rmtree(scratch, ignore_errors=True)
    if not a.no_kernelshark:
        ks = kernelshark(a.file)
        if ks is None:
            print("KernelShark: not installed (apt-get install kernelshark)")
        else:
            print(f"KernelShark 2.2.1: busy loading for {ks[0]:.1f} s, peak RSS {ks[1] / 1e6:.0f} MB")
            print(f"ratios: first paint {ks[0] / r['first_paint_s']:.1f}x faster, "
                  f"peak memory {r['peak_rss'] / ks[1]:.2f}x of KernelShark's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
