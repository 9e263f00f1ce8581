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
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from gateway.push.records import (
    LeaseKind,
    StoredCounts,
    idempotency_key,
)
from gateway.push.replica import ReplicaIdentity
from gateway.push.sqlite import leases as sqlite_leases
from gateway.push.sqlite.db import SqliteDb
from gateway.push.sqlite.delivery import SqlitePushDelivery
from gateway.push.sqlite.events import SqliteEventLog
from gateway.push.sqlite.leases import SqliteLeaseLedger
from gateway.push.sqlite.outbox import SqliteOutboxAdmin
from gateway.push.sqlite.rows import chunks, placeholders
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

    async def _customer_data(
        self, shop_key: str, customer_id: int | None, order_ids: Sequence[int], *, delete: bool
    ) -> StoredCounts:
        def op(c: sqlite3.Connection) -> StoredCounts:
            counts = _customer_rows(c, shop_key, customer_id, order_ids, delete=delete)
            if delete:
                _forget_orphan_attempts(c)
            return counts

        return await self.db.call(op)

    async def purge_shop(self, shop_key: str) -> StoredCounts:
        def op(c: sqlite3.Connection) -> StoredCounts:
            n = {
                table: c.execute(f"DELETE FROM {table} WHERE shop_key = ?", (shop_key,)).rowcount
                for table in ("events", "orders", "fulfillments", "outbox", "tracking", "unpaid_checks", "watermarks")
            }
            _forget_orphan_attempts(c)
            return StoredCounts(
                events=n["events"],
                orders=n["orders"],
                fulfillments=n["fulfillments"],
                pushes=n["outbox"],
                tracking_numbers=n["tracking"],
                unpaid_checks=n["unpaid_checks"],
            )

        return await self.db.call(op)


# --- commit: what one outcome writes --------------------------------------------------------------------------------


def _customer_rows(
    c: sqlite3.Connection, shop_key: str, customer_id: int | None, order_ids: Sequence[int], *, delete: bool
) -> StoredCounts:
    """Count (or delete) every row about the customer's orders: the given ids plus any order stored under the
    customer id."""
    ids = set(order_ids)
    if customer_id is not None:
        for table in ("orders", "events", "outbox", "tracking", "unpaid_checks"):
            ids.update(
                r[0]
                for r in c.execute(
                    f"SELECT DISTINCT order_id FROM {table} WHERE shop_key = ? AND customer_id = ?"
                    " AND order_id IS NOT NULL",
                    (shop_key, customer_id),
                )
            )
    counts: dict[str, int] = {}
    for table in ("events", "orders", "fulfillments", "outbox", "tracking", "unpaid_checks"):
        total = 0
        for chunk in chunks(sorted(ids)):
            marks = placeholders(chunk)
            verb = "DELETE" if delete else "SELECT COUNT(*)"
            cur = c.execute(f"{verb} FROM {table} WHERE shop_key = ? AND order_id IN ({marks})", (shop_key, *chunk))
            total += cur.rowcount if delete else cur.fetchone()[0]
        if customer_id is not None and table in ("events", "orders", "outbox", "tracking", "unpaid_checks"):
            verb = "DELETE" if delete else "SELECT COUNT(*)"
            cur = c.execute(
                f"{verb} FROM {table} WHERE shop_key = ? AND customer_id = ? AND order_id IS NULL",
                (shop_key, customer_id),
            )
            total += cur.rowcount if delete else cur.fetchone()[0]
        counts[table] = total
    return StoredCounts(
        events=counts["events"],
        orders=counts["orders"],
        fulfillments=counts["fulfillments"],
        pushes=counts["outbox"],
        tracking_numbers=counts["tracking"],
        unpaid_checks=counts["unpaid_checks"],
    )


def _forget_orphan_attempts(c: sqlite3.Connection) -> None:
    """Attempts of pushes a purge deleted (purges are rare: a scan is fine)."""
    c.execute("DELETE FROM push_attempts WHERE push_id NOT IN (SELECT id FROM outbox)")


__all__ = ["SqlitePushStore", "MIGRATIONS", "idempotency_key"]
