"""The hub's rollout watch: judges the open canary every `poll_s` (promote, roll back, or wait); each
decision is audited by the registry as `system:rollout`."""

from __future__ import annotations

import logging
import threading

from sqlalchemy import select

from hub.releases import registry
from hub.storage import schema
from hub.storage.core import StoreBase

log = logging.getLogger(__name__)


def judge_open(store: StoreBase) -> list[registry.Judgement]:
    """Judge every rollout still in its canary stage."""
    with store.engine.connect() as conn:
        open_ids = [r[0] for r in conn.execute(select(schema.model_rollouts.c.rollout_id)
                                               .where(schema.model_rollouts.c.status == "canary"))]
    judged = []
    for rollout_id in open_ids:
        try:
            judgement = registry.judge(store, rollout_id)
        except registry.ReleaseError as exc:  # another hub process decided it meanwhile
            log.info("rollout %d: %s", rollout_id, exc)
            continue
        if judgement.verdict.value != "wait":
            log.warning("rollout %d: %s (%s)", rollout_id, judgement.verdict.value, judgement.reason)
        judged.append(judgement)
    return judged


def start(store: StoreBase, stop: threading.Event, *, poll_s: float) -> threading.Thread:
    def run() -> None:
        while not stop.wait(poll_s):
            try:
                judge_open(store)
            except Exception:  # a database hiccup: the next tick tries again
                log.exception("rollout judge failed; trying again in %.0f s", poll_s)

    thread = threading.Thread(target=run, name="rollout-judge", daemon=True)
    thread.start()
    return thread
