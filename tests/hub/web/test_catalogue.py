"""The page's message catalogue (hub/web/i18n.js): both languages hold the same keys, and every key the
page's scripts name literally is in it. Read as text, no browser: a missing key would otherwise show
only where a test happens to walk."""

from __future__ import annotations

import re
from pathlib import Path

WEB = Path(__file__).resolve().parents[3] / "hub" / "web"
KEY = re.compile(r'^\s{4}"([a-z0-9_.]+)":', re.M)


def catalogue() -> dict[str, set[str]]:
    text = (WEB / "i18n.js").read_text(encoding="utf-8")
    zh_at, en_at = text.index('\n  "zh-CN": {'), text.index("\n  en: {")
    end = text.index("\n};", en_at)
    return {"zh-CN": set(KEY.findall(text[zh_at:en_at])), "en": set(KEY.findall(text[en_at:end]))}


def test_both_languages_have_the_same_keys() -> None:
    keys = catalogue()
    assert len(keys["zh-CN"]) > 300
    assert keys["zh-CN"] - keys["en"] == set(), "keys without English"
    assert keys["en"] - keys["zh-CN"] == set(), "keys without Chinese"


def test_every_key_the_page_names_is_in_the_catalogue() -> None:
    keys = catalogue()["zh-CN"]
    groups = {k.split(".")[0] for k in keys}  # queue, action, stats, ...
    used: set[str] = set()
    for script in ("app.js", "index.html"):
        text = (WEB / script).read_text(encoding="utf-8")
        used |= set(re.findall(r'data-i18n(?:-[a-z-]+)?="([a-z0-9_.]+)"', text))  # static HTML
        # every string literal shaped like a key of a catalogue group: t("queue.total"), ["queue.col.case", ...]
        used |= {k for k in re.findall(r'"([a-z]+\.[a-z0-9_.]+)"', text)
                 if k.split(".")[0] in groups and not re.search(r"\.(js|css|html|svg|otf)$", k)}  # not file names
    assert len(used) > 150
    assert used - keys == set(), "keys the page uses but the catalogue lacks"
