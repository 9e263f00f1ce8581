"""The connected shops in the embedded SQLite file (`ShopStore`): the records, the tokens and the subscription states,
each a class of its own over one `ShopsDb`."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from gateway.shops.crypto import Sealer
from gateway.shops.sqlite.db import ShopsDb
from gateway.shops.sqlite.records import POLL_SECONDS, SqliteShopRecords
from gateway.shops.sqlite.sync import SqliteSyncStates
from gateway.shops.sqlite.tokens import SqliteShopTokens


class SqliteShopStore:
    def __init__(
        self, path: str | Path, sealer: Sealer | None, *, clock: Callable[[], float] = time.time,
        replica_id: str | None = None, poll_seconds: float = POLL_SECONDS,
    ) -> None:  # fmt: skip
        self.db = ShopsDb(path)
        self.records = SqliteShopRecords(self.db, sealer, poll_seconds=poll_seconds)
        self.tokens = SqliteShopTokens(self.db, sealer, clock=clock, replica_id=replica_id)
        self.sync = SqliteSyncStates(self.db)

    async def open(self) -> None:
        if self.db.is_open:
            return
        await self.db.open()
        await self.tokens.take_back_locks()
        await self.records.follow_others()

    async def close(self) -> None:
        await self.records.stop()
        self.db.close()
