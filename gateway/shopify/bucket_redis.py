"""One shop's bucket copy in Redis, shared by every replica of the gateway (`storage.backend: redis`).

Each operation is one Lua script (`bucket_lua/<name>.lua` after `bucket_lua/prelude.lua`) on Redis's clock, so the
replicas agree on time and no two book the same points. A hold carries an expiry (the request's deadline and a
margin): a replica that dies with points held gives them back when it passes. While Redis cannot be reached the
replica books from a copy of its own (`LocalBucket`) and says so once in the log: shoppers are still answered, only the
sharing is lost until Redis is back.
"""

from __future__ import annotations

import importlib.resources
import logging
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.shopify.bucket import REACHED_AFTER_SECONDS, STALE_AFTER_SECONDS, BucketStatus, BucketView, LocalBucket

__all__ = ["HOLD_MARGIN_SECONDS", "RedisBucket", "RedisBuckets"]

log = logging.getLogger(__name__)

#: A hold outlives its request's deadline by this much before Redis gives its points back.
HOLD_MARGIN_SECONDS = 5.0
#: Learnt prices of query shapes are forgotten after a week without a change (documents change with releases).
PRICES_KEEP_SECONDS = 7 * 86400

_LUA = importlib.resources.files("gateway.shopify") / "bucket_lua"


def _script(name: str) -> str:
    return (_LUA / "prelude.lua").read_text(encoding="utf-8") + (_LUA / f"{name}.lua").read_text(encoding="utf-8")


_SCRIPTS = {name: _script(name) for name in ("take", "give_back", "view")}


class RedisBuckets:
    """The connection and scripts every shop's `RedisBucket` uses; `bucket(domain)` gives a shop's."""

    def __init__(self, url: str, prefix: str, *, hold_margin: float = HOLD_MARGIN_SECONDS) -> None:
        self.prefix = prefix
        self.hold_margin = hold_margin
        # A blocking pool: a burst of lookups books at once, and a command waits for a free connection instead of
        # failing with MaxConnectionsError (which would send the booking to the replica's own copy).
        pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=32, timeout=5, decode_responses=True)
        self.client = aioredis.Redis(connection_pool=pool)
        self.scripts = {name: self.client.register_script(body) for name, body in _SCRIPTS.items()}

    def bucket(self, domain: str) -> RedisBucket:
        return RedisBucket(self, domain)

    async def close(self) -> None:
        await self.client.aclose()


class RedisBucket:
    def __init__(self, buckets: RedisBuckets, domain: str) -> None:
        base = f"{buckets.prefix}:budget:{domain}"
        self._keys = [base, f"{base}:holds", f"{base}:expiry", f"{base}:order"]
        self._prices_key = f"{base}:prices"
        self._client = buckets.client
        self._scripts = buckets.scripts
        self._hold_margin = buckets.hold_margin
        #: where bookings go while Redis is unreachable
        self._fallback = LocalBucket()
        self._fallback_holds: set[str] = set()
        self._unreachable = False

    async def take(self, hold: str, points: float, keep_free: float, ttl: float) -> tuple[bool, BucketView]:
        args = [hold, points, keep_free, ttl + self._hold_margin, STALE_AFTER_SECONDS, REACHED_AFTER_SECONDS]
        found = await self._run("take", args)
        if found is None:
            taken, view = await self._fallback.take(hold, points, keep_free, ttl)
            if taken:
                self._fallback_holds.add(hold)
            return taken, view
        return bool(int(found[0])), _view(found)

    async def give_back(
        self, hold: str, refund: float, status: BucketStatus | None, *, throttled: bool = False
    ) -> None:
        if hold in self._fallback_holds:
            self._fallback_holds.discard(hold)
            await self._fallback.give_back(hold, refund, status, throttled=throttled)
            return
        args: list[Any] = [hold, refund]
        if status is not None:
            args += [status.maximum, status.available, status.restore_rate, int(throttled), REACHED_AFTER_SECONDS]
        await self._run("give_back", args)  # unreachable: the hold expires in Redis and gives its points back

    async def view(self) -> BucketView:
        found = await self._run("view", [STALE_AFTER_SECONDS])
        return _view(found) if found is not None else await self._fallback.view()

    async def price(self, shape: str) -> float | None:
        try:
            found = await self._client.hget(self._prices_key, shape)
        except (RedisError, OSError):
            return await self._fallback.price(shape)
        return float(found) if found is not None else None

    async def remember_price(self, shape: str, price: float) -> None:
        await self._fallback.remember_price(shape, price)
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.hset(self._prices_key, shape, repr(price))
                pipe.expire(self._prices_key, PRICES_KEEP_SECONDS)
                await pipe.execute()
        except (RedisError, OSError):
            pass  # each replica learns it again from its own answers

    async def _run(self, name: str, args: list[Any]) -> Any:
        try:
            found = await self._scripts[name](keys=self._keys, args=args)
        except (RedisError, OSError) as exc:
            if not self._unreachable:
                self._unreachable = True
                log.warning("shared query budget unreachable (%s): booking from this replica's own copy",
                            type(exc).__name__)
            return None
        if self._unreachable:
            self._unreachable = False
            log.warning("shared query budget reachable again")
        return found


def _view(found: list[Any]) -> BucketView:
    return BucketView(
        available=float(found[1]),
        maximum=float(found[2]),
        restore_rate=float(found[3]),
        held=float(found[4]),
        fresh=bool(int(found[5])),
    )
