"""The stored webhooks on SQLite (`EventLog`): intake records them, the processor claims them, `gateway replay`
requeues one."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from gateway.push.lease_book import LeaseBook, Taken
from gateway.push.records import RecordResult, StoredEvent, WebhookMeta
from gateway.push.sqlite import leases as sqlite_leases
from gateway.push.sqlite.db import SqliteDb
from gateway.push.sqlite.rows import EVENT_COLUMNS, event_from_row
from gateway.push.store_base import EventLogBase


class SqliteEventLog(EventLogBase):
    """`EventLog` on the SQLite file: the `events` table."""

    def __init__(self, db: SqliteDb, book: LeaseBook, notify: Callable[[], None]) -> None:
        super().__init__(book, notify)
        self.db = db

    async def _record_event(
        self, shop_key: str, event_id: str, meta: WebhookMeta, body: bytes, received_at: float
    ) -> RecordResult:
        def op(c: sqlite3.Connection) -> RecordResult:
            cur = c.execute(
                "INSERT OR IGNORE INTO events (shop_key, event_id, topic, webhook_id, triggered_at, api_version, body,"
                " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (shop_key, event_id, meta.topic, meta.webhook_id, meta.triggered_at, meta.api_version, body,
                 received_at),
            )  # fmt: skip
            return "new" if cur.rowcount == 1 else "duplicate"

        return await self.db.call(op)

    async def _claim_events(
        self, limit: int, now: float, lease_until: float, owner: str
    ) -> tuple[list[StoredEvent], Taken]:
        def op(c: sqlite3.Connection) -> tuple[list[StoredEvent], Taken]:
            rows = c.execute(
                f"SELECT {EVENT_COLUMNS}, lease_owner FROM events WHERE status = 'pending' AND lease_until <= ?"
                " ORDER BY seq LIMIT ?",
                (now, limit),
            ).fetchall()
            c.executemany(
                "UPDATE events SET lease_until = ?, lease_owner = ?, leased_at = ? WHERE seq = ?",
                [(lease_until, owner, now, r[0]) for r in rows],
            )
            return [event_from_row(r) for r in rows], sqlite_leases.taken_from([r[11] for r in rows], owner)

        return await self.db.call(op)

    async def _defer_events(self, seqs: Sequence[int], until: float, owner: str) -> None:
        def op(c: sqlite3.Connection) -> None:
            c.executemany(
                "UPDATE events SET lease_until = ?, lease_owner = '' WHERE seq = ? AND status = 'pending'"
                " AND lease_owner = ?",
                [(until, s, owner) for s in seqs],
            )

        await self.db.call(op)

    async def get_event(self, shop_key: str | None, event_id: str) -> StoredEvent | None:
        def op(c: sqlite3.Connection) -> StoredEvent | None:
            sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE event_id = ?"
            args: tuple[Any, ...] = (event_id,)
            if shop_key is not None:
                sql += " AND shop_key = ?"
                args += (shop_key,)
            row = c.execute(sql + " ORDER BY seq LIMIT 1", args).fetchone()
            return event_from_row(row) if row else None

        return await self.db.call(op)

    async def _requeue_event(self, seq: int) -> bool:
        def op(c: sqlite3.Connection) -> bool:
            cur = c.execute("UPDATE events SET status = 'pending', error = '', lease_until = 0 WHERE seq = ?", (seq,))
            return cur.rowcount == 1

        return await self.db.call(op)

    async def last_event_at(self, shop_key: str) -> float | None:
        def op(c: sqlite3.Connection) -> float | None:
            row = c.execute("SELECT MAX(received_at) FROM events WHERE shop_key = ?", (shop_key,)).fetchone()
            return float(row[0]) if row and row[0] is not None else None

        return await self.db.call(op)
