"""The outbox on SQLite as the operator sees it (`OutboxAdmin`): the backlog, the pushes and their attempts; a push
retried or dropped."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from gateway.push.lease_book import LeaseBook
from gateway.push.records import Push, PushAttempt, PushStatus
from gateway.push.sqlite.db import SqliteDb
from gateway.push.sqlite.rows import OUTBOX_COLUMNS, placeholders, push_from_row
from gateway.push.store_base import OutboxAdminBase


class SqliteOutboxAdmin(OutboxAdminBase):
    """`OutboxAdmin` on the SQLite file: the `outbox` and `push_attempts` tables, and the backlog counts."""

    def __init__(self, db: SqliteDb, book: LeaseBook, notify: Callable[[], None]) -> None:
        super().__init__(book, notify)
        self.db = db

    async def backlog(self) -> dict[str, int]:
        def op(c: sqlite3.Connection) -> dict[str, int]:
            return {
                "events": c.execute("SELECT COUNT(*) FROM events WHERE status = 'pending'").fetchone()[0],
                "pushes": c.execute("SELECT COUNT(*) FROM outbox WHERE status = 'pending'").fetchone()[0],
                "dead": c.execute("SELECT COUNT(*) FROM outbox WHERE status = 'dead'").fetchone()[0],
                "checks": c.execute("SELECT COUNT(*) FROM unpaid_checks WHERE done = 0").fetchone()[0],
            }

        return await self.db.call(op)

    async def push_attempts(self, push_id: int) -> list[PushAttempt]:
        def op(c: sqlite3.Connection) -> list[PushAttempt]:
            rows = c.execute(
                "SELECT at, http_status, answer, outcome FROM push_attempts WHERE push_id = ? ORDER BY rowid",
                (push_id,),
            ).fetchall()
            return [PushAttempt(r[0], r[1], r[2], r[3]) for r in rows]

        return await self.db.call(op)

    async def list_pushes(
        self, shop_key: str | None = None, statuses: Sequence[PushStatus] = (), limit: int = 50
    ) -> list[Push]:
        def op(c: sqlite3.Connection) -> list[Push]:
            where, args = [], []
            if shop_key is not None:
                where.append("shop_key = ?")
                args.append(shop_key)
            if statuses:
                where.append(f"status IN ({placeholders(statuses)})")
                args += [str(s) for s in statuses]
            sql = f"SELECT {OUTBOX_COLUMNS} FROM outbox"
            if where:
                sql += " WHERE " + " AND ".join(where)
            return [push_from_row(r) for r in c.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit))]

        return await self.db.call(op)

    async def get_push(self, push_id: int) -> Push | None:
        def op(c: sqlite3.Connection) -> Push | None:
            row = c.execute(f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = ?", (push_id,)).fetchone()
            return push_from_row(row) if row else None

        return await self.db.call(op)

    async def _retry_push(self, push_id: int, now: float, from_statuses: Sequence[PushStatus]) -> bool:
        def op(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "UPDATE outbox SET status = 'pending', due_at = ?, created_at = ?, attempts = 0, lease_until = 0"
                f" WHERE id = ? AND status IN ({placeholders(from_statuses)})",
                (now, now, push_id, *map(str, from_statuses)),
            )
            return cur.rowcount == 1

        return await self.db.call(op)

    async def _drop_push(self, push_id: int, from_statuses: Sequence[PushStatus]) -> bool:
        def op(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "UPDATE outbox SET status = 'dropped', lease_until = 0"
                f" WHERE id = ? AND status IN ({placeholders(from_statuses)})",
                (push_id, *map(str, from_statuses)),
            )
            return cur.rowcount == 1

        return await self.db.call(op)
