"""The check a camera config must pass before the hub saves it: the agent's own validation.

The hub never imports the agent; `cityeye hub serve` (which ships both) hands the agent's check in with
`use()`, so the page refuses exactly what `cityeye edge check-config` and the agent refuse. A hub run
without it (tests of other parts, a hub-only install) saves unchecked configs and the agent remains the
check: it rejects a bad push with the same messages, which the page then shows.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from protocol.catalog import ZoneKind

log = logging.getLogger(__name__)

# (the new body, the body the box runs) -> [{"path": "zones[0].polygon", "message": "..."}]
ConfigCheck = Callable[[dict[str, Any], dict[str, Any]], list[dict[str, str]]]

_check: ConfigCheck | None = None
_change_params: type[BaseModel] | None = None
# "dwell rule: params.min_dwell_s: Input should be ..." (one of several joined by "; ")
_PARAM_PROBLEM = re.compile(r"^(?:[\w ]+ rule: )?params\.(?P<field>[A-Za-z0-9_]+)[^:]*: ")


def use(check: ConfigCheck | None, change_params: type[BaseModel] | None = None) -> None:
    """Install the agent's check, and its change-detection params model (the form's fields for
    `source: change` rules; without it the page edits those params as JSON)."""
    global _check, _change_params
    _check, _change_params = check, change_params


def change_params() -> type[BaseModel] | None:
    return _change_params


def check_config(body: dict[str, Any], running: dict[str, Any]) -> list[dict[str, str]]:
    if _check is None:
        log.warning("no camera-config check installed on this hub: the agent is the only check")
        return []
    return [refined for issue in _check(body, running) for refined in _by_field(issue)]


def _by_field(issue: dict[str, str]) -> list[dict[str, str]]:
    """The agent reports a rule's params as one problem at `rules[i].params` whose message names the
    fields ("dwell rule: params.min_dwell_s: ...; params.labels: ..."): one problem per field, at its
    path, so the page marks the input that is wrong."""
    if not issue["path"].endswith(".params"):
        return [issue]
    parts = issue["message"].split("; ")
    found = [_PARAM_PROBLEM.match(p) for p in parts]
    if not all(found):
        return [issue]
    return [{"path": f"{issue['path']}.{m['field']}", "message": p}
            for m, p in zip(found, parts, strict=True) if m is not None]


def zone_kinds() -> list[str]:
    return [k.value for k in ZoneKind]
