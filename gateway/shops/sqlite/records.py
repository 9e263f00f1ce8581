"""The connected shops' records on SQLite (`ShopRecords`). Other processes' changes are noticed by polling a change
counter (`shops_meta.version`) every `POLL_SECONDS`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from gateway.shops.crypto import Sealer
from gateway.shops.sqlite.db import ShopsDb
from gateway.shops.store import (
    KEEP,
    ChangeListener,
    ChangeListeners,
    StoredShop,
    TokenSet,
    need_sealer,
    seal_tokens,
    token_id,
)

log = logging.getLogger(__name__)

#: How often other processes' changes are looked for.
POLL_SECONDS = 2.0

_COLUMNS = "key, domain, config, status, problem, scope, paused, installed_at, uninstalled_at, created_at, version"


class SqliteShopRecords:
    def __init__(self, db: ShopsDb, sealer: Sealer | None, *, poll_seconds: float = POLL_SECONDS) -> None:
        self.db = db
        self._sealer = sealer
        self._poll_seconds = poll_seconds
        self._listeners = ChangeListeners()
        self._seen_version = 0
        self._poller: asyncio.Task[None] | None = None

    def on_change(self, listener: ChangeListener) -> None:
        self._listeners.add(listener)

    async def follow_others(self) -> None:
        """Start noticing other processes' changes (from the counter as it is now)."""
        self._seen_version = await self.db.run(_meta_version)
        self._poller = asyncio.create_task(self._poll(), name="shops-change-poller")

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None

    async def load_all(self) -> list[StoredShop]:
        rows = await self.db.run(lambda c: c.execute(f"SELECT {_COLUMNS} FROM connected_shops ORDER BY key").fetchall())
        return [StoredShop.from_row(dict(r), need_sealer(self._sealer)) for r in rows]

    async def load(self, key: str) -> StoredShop | None:
        row = await self.db.run(
            lambda c: c.execute(f"SELECT {_COLUMNS} FROM connected_shops WHERE key = ?", (key,)).fetchone()
        )
        return StoredShop.from_row(dict(row), need_sealer(self._sealer)) if row is not None else None

    async def key_for_domain(self, domain: str) -> str | None:
        row = await self.db.run(
            lambda c: c.execute("SELECT key FROM connected_shops WHERE domain = ?", (domain,)).fetchone()
        )
        return str(row[0]) if row is not None else None

    async def create(self, shop: StoredShop, tokens: TokenSet | None) -> bool:
        sealer = need_sealer(self._sealer)
        row = shop.with_changes(version=1).row(sealer)
        row["tokens"] = seal_tokens(sealer, shop.key, tokens) if tokens is not None else None
        row["tokens_id"] = token_id(tokens)

        def insert(c: sqlite3.Connection) -> bool:
            try:
                c.execute(
                    f"INSERT INTO connected_shops ({_COLUMNS}, tokens, tokens_id) VALUES "
                    "(:key, :domain, :config, :status, :problem, :scope, :paused, :installed_at, :uninstalled_at,"
                    " :created_at, :version, :tokens, :tokens_id)",
                    row,
                )
            except sqlite3.IntegrityError:
                return False
            _bump(c)
            return True

        return await self._write(shop.key, insert)

    async def save(self, shop: StoredShop, *, tokens: Any = KEEP, expected_version: int) -> bool:
        sealer = need_sealer(self._sealer)
        row = shop.with_changes(version=expected_version + 1).row(sealer)
        row["expected"] = expected_version
        sets = "config = :config, status = :status, problem = :problem, scope = :scope, paused = :paused, " \
               "installed_at = :installed_at, uninstalled_at = :uninstalled_at, version = :version"  # fmt: skip
        if tokens is not KEEP:
            sets += ", tokens = :tokens, tokens_id = :tokens_id"
            row["tokens"] = seal_tokens(sealer, shop.key, tokens) if tokens is not None else None
            row["tokens_id"] = token_id(tokens)

        def update(c: sqlite3.Connection) -> bool:
            done = c.execute(f"UPDATE connected_shops SET {sets} WHERE key = :key AND version = :expected", row)
            if done.rowcount != 1:
                return False
            _bump(c)
            return True

        return await self._write(shop.key, update)

    async def delete(self, key: str) -> bool:
        def remove(c: sqlite3.Connection) -> bool:
            if c.execute("DELETE FROM connected_shops WHERE key = ?", (key,)).rowcount != 1:
                return False
            c.execute("DELETE FROM webhook_sync WHERE shop_key = ?", (key,))
            _bump(c)
            return True

        return await self._write(key, remove)

    async def _write(self, key: str, fn: Callable[[sqlite3.Connection], bool]) -> bool:
        done = await self.db.transaction(fn)
        if done:
            self._seen_version += 1  # our own bump: the poller need not reload for it
            self._listeners.tell(key)
        return done

    async def _poll(self) -> None:
        """Another process wrote: "*" asks the listeners to reload every shop (a shop deleted elsewhere is in no
        listing, so naming the changed ones would need a log of deletions; a change from elsewhere is rare)."""
        while True:
            await asyncio.sleep(self._poll_seconds)
            try:
                version = await self.db.run(_meta_version)
            except (sqlite3.Error, RuntimeError) as exc:
                log.warning("shop store: change poll failed (%s)", type(exc).__name__)
                continue
            if version != self._seen_version:
                self._seen_version = version
                self._listeners.tell("*")


def _bump(c: sqlite3.Connection) -> None:
    c.execute("UPDATE shops_meta SET version = version + 1 WHERE id = 1")


def _meta_version(c: sqlite3.Connection) -> int:
    return int(c.execute("SELECT version FROM shops_meta WHERE id = 1").fetchone()[0])
