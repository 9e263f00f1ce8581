"""The connected shops in Redis (`ShopStore`), shared by every replica: the records, the tokens and the subscription
states, each a class of its own over one `ShopsRedis` (the key layout is in gateway.shops.redis.db)."""

from __future__ import annotations

from redis.exceptions import RedisError

from gateway.shops.crypto import Sealer
from gateway.shops.redis.db import ShopsRedis
from gateway.shops.redis.records import RedisShopRecords
from gateway.shops.redis.sync import RedisSyncStates
from gateway.shops.redis.tokens import RedisShopTokens


class RedisShopStore:
    def __init__(self, url: str, sealer: Sealer | None, *, prefix: str = "gw") -> None:
        self.db = ShopsRedis(url, prefix=prefix)
        self.records = RedisShopRecords(self.db, sealer)
        self.tokens = RedisShopTokens(self.db, sealer)
        self.sync = RedisSyncStates(self.db)

    async def open(self) -> None:
        if self.db.is_open:
            return
        await self.db.open()
        try:
            await self.records.follow_others()
        except (RedisError, OSError) as exc:
            await self.records.stop()
            await self.db.close()
            raise OSError(f"shop store: cannot reach Redis ({type(exc).__name__}: {exc})") from exc

    async def close(self) -> None:
        await self.records.stop()
        await self.db.close()
