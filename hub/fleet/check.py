"""The check a camera config must pass before the hub saves it: the agent's own validation.

The hub never imports the agent; `cityeye hub serve` (which ships both) hands the agent's check in with
`use()`, so the page refuses exactly what `cityeye edge check-config` and the agent refuse. A hub run
without it (tests of other parts, a hub-only install) saves unchecked configs and the agent remains the
check: it rejects a bad push with the same messages, which the page then shows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from protocol.catalog import ZoneKind

log = logging.getLogger(__name__)

# (the new body, the body the box runs) -> [{"path": "zones[0].polygon", "message": "..."}]
ConfigCheck = Callable[[dict[str, Any], dict[str, Any]], list[dict[str, str]]]

_check: ConfigCheck | None = None


def use(check: ConfigCheck | None) -> None:
    global _check
    _check = check


def check_config(body: dict[str, Any], running: dict[str, Any]) -> list[dict[str, str]]:
    if _check is None:
        log.warning("no camera-config check installed on this hub: the agent is the only check")
        return []
    return _check(body, running)


def zone_kinds() -> list[str]:
    return [k.value for k in ZoneKind]
