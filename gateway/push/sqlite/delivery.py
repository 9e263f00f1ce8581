"""The outbox on SQLite as the delivery workers see it (`PushDelivery`): due pushes leased, one order's pushes in
order, each settled and its attempts recorded."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from gateway.push.lease_book import LeaseBook, Taken
from gateway.push.records import Push, PushAttempt
from gateway.push.sqlite import leases as sqlite_leases
from gateway.push.sqlite.db import SqliteDb
from gateway.push.sqlite.rows import OUTBOX_COLUMNS, push_from_row
from gateway.push.store_base import PushDeliveryBase


class SqlitePushDelivery(PushDeliveryBase):
    """`PushDelivery` on the SQLite file: the `outbox` table (each order's head first) and `push_attempts`."""

    def __init__(self, db: SqliteDb, book: LeaseBook, notify: Callable[[], None]) -> None:
        super().__init__(book, notify)
        self.db = db

    async def _claim_pushes(self, limit: int, now: float, lease_until: float, owner: str) -> tuple[list[Push], Taken]:
        def op(c: sqlite3.Connection) -> tuple[list[Push], Taken]:
            # The head of each order's queue only: an earlier pending push (due later, being retried, or leased)
            # holds back every later push of the same order.
            rows = c.execute(
                f"SELECT {OUTBOX_COLUMNS}, lease_owner FROM outbox o WHERE o.status = 'pending' AND o.due_at <= ?"
                " AND o.lease_until <= ? AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.shop_key = o.shop_key"
                " AND e.order_id = o.order_id AND e.status = 'pending' AND e.id < o.id)"
                # due_at, id: the partial index's own order (rowid breaks ties), so LIMIT stops early instead of
                # sorting the whole backlog on every claim; per-order order is the NOT EXISTS above.
                " ORDER BY o.due_at, o.id LIMIT ?",
                (now, now, limit),
            ).fetchall()
            c.executemany(
                "UPDATE outbox SET lease_until = ?, lease_owner = ?, leased_at = ? WHERE id = ?",
                [(lease_until, owner, now, r[0]) for r in rows],
            )
            return [push_from_row(r) for r in rows], sqlite_leases.taken_from([r[14] for r in rows], owner)

        return await self.db.call(op)

    async def next_due(self) -> float | None:
        def op(c: sqlite3.Connection) -> float | None:
            a = c.execute("SELECT MIN(MAX(due_at, lease_until)) FROM outbox WHERE status = 'pending'").fetchone()[0]
            b = c.execute("SELECT MIN(MAX(due_at, lease_until)) FROM unpaid_checks WHERE done = 0").fetchone()[0]
            values = [v for v in (a, b) if v is not None]
            return min(values) if values else None

        return await self.db.call(op)

    async def _mark_delivered(self, push_id: int, now: float, owner: str) -> bool:
        return await self._settle_push(
            "UPDATE outbox SET status = 'delivered', delivered_at = ?, attempts = attempts + 1, lease_until = 0,"
            " lease_owner = '', last_error = '' WHERE id = ? AND lease_owner = ?",
            (now, push_id, owner),
        )

    async def _schedule_retry(self, push_id: int, due_at: float, error: str, owner: str) -> bool:
        return await self._settle_push(
            "UPDATE outbox SET due_at = ?, last_error = ?, attempts = attempts + 1, lease_until = 0,"
            " lease_owner = '' WHERE id = ? AND status = 'pending' AND lease_owner = ?",
            (due_at, error, push_id, owner),
        )

    async def _dead_letter(self, push_id: int, reason: str, owner: str) -> bool:
        return await self._settle_push(
            "UPDATE outbox SET status = 'dead', last_error = ?, attempts = attempts + 1, lease_until = 0,"
            " lease_owner = '' WHERE id = ? AND lease_owner = ?",
            (reason, push_id, owner),
        )

    async def _settle_push(self, sql: str, args: tuple[Any, ...]) -> bool:
        """Run a fenced settle (its WHERE names the lease owner); True when it applied."""
        return await self.db.call(lambda c: c.execute(sql, args).rowcount == 1)

    async def _record_attempt(self, push_id: int, attempt: PushAttempt, keep: int) -> None:
        def op(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO push_attempts (push_id, at, http_status, answer, outcome) VALUES (?, ?, ?, ?, ?)",
                (push_id, attempt.at, attempt.http_status, attempt.answer, attempt.outcome),
            )
            c.execute(
                "DELETE FROM push_attempts WHERE push_id = ? AND rowid NOT IN"
                " (SELECT rowid FROM push_attempts WHERE push_id = ? ORDER BY rowid DESC LIMIT ?)",
                (push_id, push_id, keep),
            )

        await self.db.call(op)
