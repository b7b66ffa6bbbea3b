#!/usr/bin/env bash
# Sets up kshark-py on Debian 12: the system packages (Qt's runtime libraries, Xvfb/xdotool/imagemagick for
# the live GUI tests, trace-cmd and KernelShark as the reference implementations the tests compare with, a C
# compiler and Python's headers for the decode kernels), then a virtual environment with the project and its
# test tools, then the decode kernels compiled ahead of time (kshark_py/loaders/aot.py: loads start ~0.15 s
# sooner than with numba's JIT, which stays the fallback).
# Usage: ./setup.sh            (venv in .venv, with the python3 on PATH)
#        PYTHON=python3.12 VENV=.venv312 ./setup.sh --no-system   (another interpreter, packages already there)
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

PACKAGES="libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 libxcb-cursor0 libxcb-icccm4
 libxcb-keysyms1 libxcb-shape0 libxcb-render-util0 libxcb-image0 libxcb-xinerama0 xvfb xdotool imagemagick
 trace-cmd kernelshark gcc libc6-dev python3-dev"

if [ "${1:-}" != "--no-system" ] && command -v apt-get >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  need=""
  for p in $PACKAGES; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
  done
  if [ -n "$need" ]; then
    echo "setup: installing$need"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $need >/dev/null
  fi
fi

"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip >/dev/null
"$VENV/bin/pip" install -q -e '.[test,aot]'
"$VENV/bin/python" -m kshark_py.loaders.aot || echo "setup: loads will use numba's JIT instead"
echo "setup: done ($("$VENV/bin/python" --version), $VENV)"
