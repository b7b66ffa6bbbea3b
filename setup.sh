#!/usr/bin/env bash
# Sets up kshark-py on Debian 12: the system packages (Qt's runtime libraries, Xvfb/xdotool/imagemagick for
# the live GUI tests, trace-cmd and KernelShark as the reference implementations the tests compare with),
# then a virtual environment with the project and its test tools.
# Usage: ./setup.sh            (venv in .venv, with the python3 on PATH)
#        PYTHON=python3.12 VENV=.venv312 ./setup.sh --no-system   (another interpreter, packages already there)
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

PACKAGES="libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 libxcb-cursor0 libxcb-icccm4
 libxcb-keysyms1 libxcb-shape0 libxcb-render-util0 libxcb-image0 libxcb-xinerama0 xvfb xdotool imagemagick
 trace-cmd kernelshark"

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
"$VENV/bin/pip" install -q -e '.[test]'
echo "setup: done ($("$VENV/bin/python" --version), $VENV)"
