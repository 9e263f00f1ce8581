"""The embedded push store: SQLite in WAL mode, written by one dedicated thread with group commit.

Durability: `journal_mode=WAL` with `synchronous=FULL`. In WAL mode FULL fsyncs the log on every commit, so a webhook
whose `record_event` returned survives a process crash *and* a power loss; NORMAL would only survive a process crash
(commits since the last checkpoint can roll back when the machine loses power), which is not "stored before the 2xx".
The price of FULL is one fsync per commit; group commit pays it once per batch instead of once per webhook.

Group commit: every operation (reads included, so they see their own writes in order) is a small function queued in
arrival order. The queued operations run in ONE transaction; the COMMIT (the fsync) runs in the writer thread, and only
after it returns are the callers' futures resolved. If one operation raises, the batch is rolled back and its
operations are redone one transaction each (in the thread), so only the failing one reports an error.
Requests that arrive while a commit is fsyncing form the next batch, so the batch size adapts to the load without a
fixed delay.

Where the statements run: on the event loop that opened the store, between `BEGIN IMMEDIATE` and the hand-off of the
COMMIT to the thread, so the thread needs the GIL about twice per batch, not once per statement (why that matters:
docs/benchmarks.md, `bench_push_intake.py`). The loop never waits for a lock or a disk: `BEGIN IMMEDIATE` runs with
`busy_timeout=0` there, and a batch that finds the file locked by another process (the CLI) runs wholly in the thread,
which waits for the lock.

Schema changes are ordered migrations recorded in `schema_version`; add a new entry to `MIGRATIONS`, never edit one.

Several processes: the CLI may open the file next to a running gateway, and several gateway processes on one host may
serve it, each under its own replica id (`gateway.push.sqlite_leases`: leases with owners, one process per replica
id). A process notices work another one committed at its next poll (within a second), not at once.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import TypeVar

from gateway.push.records import (
    LeaseKind,
    idempotency_key,
)
from gateway.push.replica import ReplicaIdentity
from gateway.push.sqlite import leases as sqlite_leases
from gateway.push.sqlite.compliance import SqliteCompliance
from gateway.push.sqlite.db import SqliteDb
from gateway.push.sqlite.delivery import SqlitePushDelivery
from gateway.push.sqlite.events import SqliteEventLog
from gateway.push.sqlite.leases import SqliteLeaseLedger
from gateway.push.sqlite.outbox import SqliteOutboxAdmin
from gateway.push.sqlite.schema import MIGRATIONS
from gateway.push.sqlite.shops import SqliteShopHolds, SqliteShopLedger
from gateway.push.sqlite.states import SqliteOrderStates
from gateway.push.sqlite.tracking import SqliteTrackingIndex
from gateway.push.store_base import PushStoreBase, Taken

log = logging.getLogger(__name__)

T = TypeVar("T")


class SqlitePushStore(PushStoreBase):
    """`PushStore` on one SQLite file: `PushStoreBase`'s primitives as SQL run through the group commit. Safe to open
    from several processes (the CLI next to running gateways, gateway processes with distinct replica ids)."""

    def __init__(
        self, path: str | Path, *, identity: ReplicaIdentity | None = None, reclaim_leases: bool = False
    ) -> None:
        super().__init__(identity)
        self.path = str(path)
        self.db = SqliteDb(path)
        self.compliance = SqliteCompliance(self.db)
        self.shops = SqliteShopLedger(self.db)
        self.holds = SqliteShopHolds(self.db)
        self.tracking = SqliteTrackingIndex(self.db)
        self.leases = SqliteLeaseLedger(self.db, self.book)
        self.events = SqliteEventLog(self.db, self.book, self._notify)
        self.states = SqliteOrderStates(self.db, self.book, self._notify)
        self.delivery = SqlitePushDelivery(self.db, self.book, self._notify)
        self.outbox = SqliteOutboxAdmin(self.db, self.book, self._notify)
        #: A serving gateway: it locks its replica id on the file, and takes back at once what the earlier start of
        #: that replica id held.
        self.reclaim_leases = reclaim_leases
        self._replica_lock: sqlite_leases.ReplicaLock | None = None

    # lifecycle ----------------------------------------------------------------------------------------------------

    async def open(self) -> None:
        if self.reclaim_leases and self.path != ":memory:" and self._replica_lock is None:
            lock = sqlite_leases.ReplicaLock(self.path, self.identity.replica_id)
            lock.acquire()
            self._replica_lock = lock
        reclaimed: dict[LeaseKind, Taken] = {}

        def reclaim(c: sqlite3.Connection) -> None:
            reclaimed.update(sqlite_leases.reclaim(c, self.identity))

        try:
            await self.db.open(reclaim if self.reclaim_leases else None)
        except BaseException:
            self._release_replica_lock()
            raise
        for kind, taken in reclaimed.items():
            self.book.report_taken(kind, taken, "restart")

    async def close(self) -> None:
        await self.db.close()
        self._release_replica_lock()

    def _release_replica_lock(self) -> None:
        if self._replica_lock is not None:
            self._replica_lock.release()
            self._replica_lock = None

    async def ping(self) -> str | None:
        return await self.db.ping()

    # intake -------------------------------------------------------------------------------------------------------

    # rules --------------------------------------------------------------------------------------------------------

    # delivery -----------------------------------------------------------------------------------------------------

    # leases -------------------------------------------------------------------------------------------------------

    # operator CLI -------------------------------------------------------------------------------------------------

    # PushStateReader ----------------------------------------------------------------------------------------------

    # reconciliation and shop lifecycle ----------------------------------------------------------------------------

    # shop holds ---------------------------------------------------------------------------------------------------

    # compliance ---------------------------------------------------------------------------------------------------

# --- commit: what one outcome writes --------------------------------------------------------------------------------


__all__ = ["SqlitePushStore", "MIGRATIONS", "idempotency_key"]
