"""The connected shops in Redis, shared by every replica (`storage.backend: redis`, same `redis_prefix`).

Key layout (P = the prefix):

    P:shop:<key>        hash: the shop's fields (StoredShop.row: config sealed), `tokens` (sealed), `tokens_id`
    P:shops             set: every connected shop's key
    P:shopdomain        hash: domain → key (unique domains)
    P:shops:ver         counter: bumped by every change of a shop (not of its tokens)
    P:shoplock:<key>    the shop's refresh lock: SET NX PX, released only by its owner
    P:whsync            hash: shop key → fingerprint of its complete webhook subscriptions
    channel P:shops:chg "<replica>\\n<key>\\n<version>" after each change

Each write is one Lua script, so a save with a stale version, a create over a taken domain or a token write after an
uninstall changes nothing.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError


class ShopsRedis:
    """The client and the key names."""

    def __init__(self, url: str, *, prefix: str = "gw") -> None:
        self.url = url
        self.prefix = prefix
        self._redis: aioredis.Redis | None = None

    @property
    def is_open(self) -> bool:
        return self._redis is not None

    async def open(self) -> None:
        client = aioredis.Redis.from_url(self.url, max_connections=8, decode_responses=True)
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            await client.aclose()
            raise OSError(f"shop store: cannot reach Redis ({type(exc).__name__}: {exc})") from exc
        self._redis = client

    async def close(self) -> None:
        if self._redis is not None:
            client, self._redis = self._redis, None
            await client.aclose()

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("the shop store is not open")
        return self._redis

    def k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))
