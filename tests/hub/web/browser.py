"""Debian's Chromium for the page tests, and the flags it runs with on a box without a screen.
Importing this module skips the importing test module, with the reason, where no Chromium is installed."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CITYEYE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no chromium binary at {CHROMIUM} (apt-get install chromium, or set CITYEYE_CHROMIUM)",
                allow_module_level=True)
