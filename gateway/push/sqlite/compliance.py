"""The GDPR webhooks' side of the push store on SQLite (`ComplianceStore`): what is stored about a customer's orders,
counted or deleted, and a shop's data deleted."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence

from gateway.push.records import StoredCounts
from gateway.push.sqlite.db import SqliteDb
from gateway.push.sqlite.rows import chunks, placeholders
from gateway.push.store_base import ComplianceBase


class SqliteCompliance(ComplianceBase):
    """`ComplianceStore` on the SQLite file: every table that names a shop, an order or a customer."""

    def __init__(self, db: SqliteDb) -> None:
        self.db = db

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
            return _counts(n)

        return await self.db.call(op)


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
    return _counts(counts)


def _counts(by_table: Mapping[str, int]) -> StoredCounts:
    """Rows counted or deleted per table, as the contract reports them."""
    return StoredCounts(
        events=by_table["events"],
        orders=by_table["orders"],
        fulfillments=by_table["fulfillments"],
        pushes=by_table["outbox"],
        tracking_numbers=by_table["tracking"],
        unpaid_checks=by_table["unpaid_checks"],
    )


def _forget_orphan_attempts(c: sqlite3.Connection) -> None:
    """Attempts of pushes a purge deleted (purges are rare: a scan is fine)."""
    c.execute("DELETE FROM push_attempts WHERE push_id NOT IN (SELECT id FROM outbox)")
