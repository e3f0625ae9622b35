#!/usr/bin/env bash
# Sets CityEye up on a fresh machine: a virtualenv in .venv with every extra needed to run and
# test it, the browser the web tests drive, and the default detector (pulled once, then cached).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}

echo "== [1/4] Python environment in .venv"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet --progress-bar off -e '.[dev]'

echo "== [2/4] Browser for the web tests (Debian chromium)"
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "   chromium not found; web tests will skip (install Debian's chromium to run them)"
  fi
fi

echo "== [3/4] Real RTSP camera for the live-source tests (GStreamer's gst-rtsp-server, Debian packages)"
GST_PACKAGES="gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad gstreamer1.0-libav"
if ! /usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer', '1.0')" >/dev/null 2>&1 \
   || ! dpkg -s $GST_PACKAGES >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $GST_PACKAGES >/dev/null
  else
    echo "   GStreamer RTSP server not installed and not root; the RTSP tests will skip"
  fi
fi

echo "== [4/4] Default detector (coco-nanodet)"
.venv/bin/cityeye models pull coco-nanodet

echo "Set up. Run the tests with: .venv/bin/python -m pytest"
