"""The connected shops' tokens on SQLite (`ShopTokens`).

The refresh lock is a lease row (`lease_owner`, `lease_until`), taken by a conditional UPDATE: processes that share
the file (the CLI) take turns, and a lease left by a process killed mid-refresh expires, or is taken back at once
by the next start of the same replica (`replica_id`: a serving gateway writes its locks under its replica id and at
open takes back those an earlier start of that replica left; other replicas sharing the file keep theirs).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from gateway.shops.crypto import Sealer
from gateway.shops.sqlite.db import ShopsDb
from gateway.shops.store import TokenSet, need_sealer, open_tokens, seal_tokens, token_id


class SqliteShopTokens:
    def __init__(
        self, db: ShopsDb, sealer: Sealer | None, *, clock: Callable[[], float] = time.time,
        replica_id: str | None = None,
    ) -> None:  # fmt: skip
        self.db = db
        self._sealer = sealer
        self._clock = clock
        #: A serving gateway's replica id: its refresh locks are written as `<replica id>/<owner>`, so at open it can
        #: take back the ones an earlier start of the same replica left (killed mid-refresh) and no one else's.
        self._replica_id = replica_id

    async def take_back_locks(self) -> None:
        """At a serving start: free the refresh locks an earlier start of this replica id left."""
        if self._replica_id is None:
            return
        mine = self._lock_owner("")
        await self.db.run(
            lambda c: c.execute(
                "UPDATE connected_shops SET lease_owner = '', lease_until = 0 WHERE substr(lease_owner, 1, ?) = ?",
                (len(mine), mine),
            )
        )

    async def load_tokens(self, key: str) -> TokenSet | None:
        row = await self.db.run(
            lambda c: c.execute("SELECT tokens FROM connected_shops WHERE key = ?", (key,)).fetchone()
        )
        if row is None or row[0] is None:
            return None
        return open_tokens(need_sealer(self._sealer), key, row[0])

    async def save_tokens(self, key: str, tokens: TokenSet, *, replacing: TokenSet) -> bool:
        sealed = seal_tokens(need_sealer(self._sealer), key, tokens)

        def update(c: sqlite3.Connection) -> bool:
            done = c.execute(
                "UPDATE connected_shops SET tokens = ?, tokens_id = ? WHERE key = ? AND tokens_id = ?",
                (sealed, token_id(tokens), key, token_id(replacing)),
            )
            return done.rowcount == 1

        return await self.db.transaction(update)

    def _lock_owner(self, owner: str) -> str:
        return owner if self._replica_id is None else f"{self._replica_id}/{owner}"

    async def try_lock(self, key: str, owner: str, seconds: float) -> bool:
        now = self._clock()
        owner = self._lock_owner(owner)

        def take(c: sqlite3.Connection) -> bool:
            done = c.execute(
                "UPDATE connected_shops SET lease_owner = ?, lease_until = ?"
                " WHERE key = ? AND (lease_until <= ? OR lease_owner = ?)",
                (owner, now + seconds, key, now, owner),
            )
            return done.rowcount == 1

        return await self.db.transaction(take)

    async def unlock(self, key: str, owner: str) -> None:
        owner = self._lock_owner(owner)
        await self.db.run(
            lambda c: c.execute(
                "UPDATE connected_shops SET lease_owner = '', lease_until = 0 WHERE key = ? AND lease_owner = ?",
                (key, owner),
            )
        )
