"""The embedded push store: one SQLite file in WAL mode (`SqlitePushStore`), one role object per part of the contract
over one `SqliteDb` (the group commit, gateway.push.sqlite.db; the schema, gateway.push.sqlite.schema).

Several processes: the CLI may open the file next to a running gateway, and several gateway processes on one host may
serve it, each under its own replica id (gateway.push.sqlite.leases: leases with owners, one process per replica
id). A process notices work another one committed at its next poll (within a second), not at once.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.push.lease_book import LeaseBook, Taken
from gateway.push.records import LeaseKind
from gateway.push.replica import ReplicaIdentity
from gateway.push.sqlite.compliance import SqliteCompliance
from gateway.push.sqlite.db import SqliteDb
from gateway.push.sqlite.delivery import SqlitePushDelivery
from gateway.push.sqlite.events import SqliteEventLog
from gateway.push.sqlite.leases import ReplicaLock, SqliteLeaseLedger, reclaim
from gateway.push.sqlite.outbox import SqliteOutboxAdmin
from gateway.push.sqlite.shops import SqliteShopHolds, SqliteShopLedger
from gateway.push.sqlite.states import SqliteOrderStates
from gateway.push.sqlite.tracking import SqliteTrackingIndex
from gateway.push.work_signal import WorkSignal


class SqlitePushStore:
    """`PushStore` on one SQLite file. Safe to open from several processes (the CLI next to running gateways, gateway
    processes with distinct replica ids)."""

    def __init__(
        self, path: str | Path, *, identity: ReplicaIdentity | None = None, reclaim_leases: bool = False
    ) -> None:
        self.path = str(path)
        self.db = SqliteDb(path)
        self._work = WorkSignal()
        book = LeaseBook(identity or ReplicaIdentity.start())
        self.events = SqliteEventLog(self.db, book, self._work.notify)
        self.states = SqliteOrderStates(self.db, book, self._work.notify)
        self.delivery = SqlitePushDelivery(self.db, book, self._work.notify)
        self.outbox = SqliteOutboxAdmin(self.db, book, self._work.notify)
        self.leases = SqliteLeaseLedger(self.db, book)
        self.tracking = SqliteTrackingIndex(self.db)
        self.shops = SqliteShopLedger(self.db)
        self.holds = SqliteShopHolds(self.db)
        self.compliance = SqliteCompliance(self.db)
        #: A serving gateway: it locks its replica id on the file, and takes back at once what the earlier start of
        #: that replica id held.
        self.reclaim_leases = reclaim_leases
        self._replica_lock: ReplicaLock | None = None

    async def open(self) -> None:
        identity = self.leases.identity
        if self.reclaim_leases and self.path != ":memory:" and self._replica_lock is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            lock = ReplicaLock(self.path, identity.replica_id)
            lock.acquire()
            self._replica_lock = lock
        reclaimed: dict[LeaseKind, Taken] = {}

        def take_back(c: sqlite3.Connection) -> None:
            reclaimed.update(reclaim(c, identity))

        try:
            await self.db.open(take_back if self.reclaim_leases else None)
        except BaseException:
            self._release_replica_lock()
            raise
        for kind, taken in reclaimed.items():
            self.leases.book.report_taken(kind, taken, "restart")

    async def close(self) -> None:
        await self.db.close()
        self._release_replica_lock()

    def _release_replica_lock(self) -> None:
        if self._replica_lock is not None:
            self._replica_lock.release()
            self._replica_lock = None

    async def ping(self) -> str | None:
        return await self.db.ping()

    async def wait_for_work(self, max_wait_seconds: float) -> None:
        await self._work.wait(max_wait_seconds)


__all__ = ["SqlitePushStore"]
