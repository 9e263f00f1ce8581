"""The two reads the query side makes of the push store, on SQLite (`TrackingIndex`, seen there as
`gateway.flows.PushStateReader`): a tracking number's order, and how many package pushes an order's fulfillments got."""

from __future__ import annotations

import sqlite3

from gateway.push.sqlite.db import SqliteDb
from gateway.push.store_base import TrackingIndexBase


class SqliteTrackingIndex(TrackingIndexBase):
    """`TrackingIndex` on the SQLite file: the `tracking` table, and the delivered package pushes of the `outbox`."""

    def __init__(self, db: SqliteDb) -> None:
        self.db = db

    async def _order_name_for_tracking(self, shop_key: str, tracking_number: str) -> str | None:
        def op(c: sqlite3.Connection) -> str | None:
            row = c.execute(
                "SELECT order_name FROM tracking WHERE shop_key = ? AND tracking_number = ?",
                (shop_key, tracking_number),
            ).fetchone()
            return row[0] if row else None

        return await self.db.call(op)

    async def delivered_package_pushes(self, shop_key: str, order_id: int) -> dict[str, int]:
        def op(c: sqlite3.Connection) -> dict[str, int]:
            rows = c.execute(
                "SELECT fulfillment_id, COUNT(*) FROM outbox WHERE shop_key = ? AND order_id = ?"
                " AND topic = 'package/update' AND status = 'delivered' GROUP BY fulfillment_id",
                (shop_key, order_id),
            ).fetchall()
            return {str(f): n for f, n in rows if f is not None}

        return await self.db.call(op)
