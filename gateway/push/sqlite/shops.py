"""What the push store keeps per shop, on SQLite: the reconciliation watermark and the install flag (`ShopLedger`), and
the hold of a shop whose push read fails (`ShopHoldStore`), which every process on the file sees alike."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from gateway.push.records import ShopHold
from gateway.push.sqlite.db import SqliteDb
from gateway.push.sqlite.rows import placeholders


class SqliteShopLedger:
    """`ShopLedger` on the SQLite file: the `watermarks` and `shops` tables."""

    def __init__(self, db: SqliteDb) -> None:
        self.db = db

    async def get_watermark(self, shop_key: str) -> str | None:
        def op(c: sqlite3.Connection) -> str | None:
            row = c.execute("SELECT watermark FROM watermarks WHERE shop_key = ?", (shop_key,)).fetchone()
            return row[0] if row else None

        return await self.db.call(op)

    async def set_watermark(self, shop_key: str, watermark: str) -> None:
        await self.db.call(
            lambda c: c.execute(
                "INSERT INTO watermarks (shop_key, watermark) VALUES (?, ?)"
                " ON CONFLICT (shop_key) DO UPDATE SET watermark = excluded.watermark",
                (shop_key, watermark),
            )
        )

    async def set_shop_installed(self, shop_key: str, installed: bool) -> None:
        await self.db.call(
            lambda c: c.execute(
                "INSERT INTO shops (shop_key, installed) VALUES (?, ?)"
                " ON CONFLICT (shop_key) DO UPDATE SET installed = excluded.installed",
                (shop_key, int(installed)),
            )
        )

    async def shop_installed(self, shop_key: str) -> bool:
        def op(c: sqlite3.Connection) -> bool:
            row = c.execute("SELECT installed FROM shops WHERE shop_key = ?", (shop_key,)).fetchone()
            return True if row is None else bool(row[0])

        return await self.db.call(op)


class SqliteShopHolds:
    """`ShopHoldStore` on the SQLite file: the `shop_holds` table."""

    def __init__(self, db: SqliteDb) -> None:
        self.db = db

    async def shop_holds(self, shop_keys: Sequence[str]) -> dict[str, ShopHold]:
        keys = list(dict.fromkeys(shop_keys))
        if not keys:
            return {}

        def op(c: sqlite3.Connection) -> dict[str, ShopHold]:
            rows = c.execute(
                f"SELECT shop_key, until, failures FROM shop_holds WHERE shop_key IN ({placeholders(keys)})", keys
            )
            return {r[0]: ShopHold(r[1], r[2]) for r in rows}

        return await self.db.call(op)

    async def hold_shop(self, shop_key: str, hold: ShopHold) -> None:
        await self.db.call(
            lambda c: c.execute(
                "INSERT INTO shop_holds (shop_key, until, failures) VALUES (?, ?, ?) ON CONFLICT (shop_key)"
                " DO UPDATE SET until = excluded.until, failures = excluded.failures",
                (shop_key, hold.until, hold.failures),
            )
        )

    async def release_shop(self, shop_key: str) -> None:
        await self.db.call(lambda c: c.execute("DELETE FROM shop_holds WHERE shop_key = ?", (shop_key,)))
