#!/usr/bin/env bash
# Sets CityEye up on a fresh machine: a virtualenv in .venv with every extra needed to run and
# test it, the browser the web tests drive, and the default detector (pulled once, then cached).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}

echo "== [1/3] Python environment in .venv"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet --progress-bar off -e '.[dev]'

echo "== [2/3] Browser for the web tests (Debian chromium)"
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "   chromium not found; web tests will skip (install Debian's chromium to run them)"
  fi
fi

echo "== [3/3] Default detector (coco-nanodet)"
.venv/bin/cityeye models pull coco-nanodet

echo "Set up. Run the tests with: .venv/bin/python -m pytest"
