"""The hub's store: one object for the ingest path, the API and the CLI, put together from the features.

Each feature keeps its own table code next to its logic, as a part of the store:

- hub.storage.core.StoreBase: the engine, the transaction runner (`write`), evidence files, deadlines.
- hub.ingest.burst.BurstIngest: a burst of events stored and deduplicated into cases in ONE transaction.
- hub.devices.registry.DeviceTables: enrolled devices, their key history, heartbeats and cameras.
- hub.ingest.events.EventReads: a stored event with its proof, read back (verification, packages).

Case transitions, queries and the overdue sweep are functions over a store (hub.cases).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

from hub.cases import bureau_days
from hub.devices.registry import DeviceTables
from hub.ingest.burst import BurstIngest
from hub.ingest.events import EventReads

if TYPE_CHECKING:
    from hub.settings import HubSettings


class Store(BurstIngest, DeviceTables, EventReads):
    @classmethod
    def from_settings(cls, settings: HubSettings) -> Self:
        """The hub's store as its settings describe it: database, evidence fsync, working-time deadlines."""
        store = cls.open(settings.db_url, settings.data_dir, evidence_fsync=settings.evidence_fsync)
        with store.engine.connect() as conn:
            days_off, working_days = bureau_days.load(conn)  # the bureau's own, edited on the page
        store.deadlines = bureau_days.deadlines(settings, days_off, working_days)
        return store
