"""The lookup-cache fan-out: with several replicas, a webhook processed by one evicts the stale lookups of all.

Replicas share a store only with `storage.backend: redis`; each then runs a `RedisCacheFanOut` on the same Redis and
`storage.redis_prefix`. It publishes its LookupCache's local invalidations (the `on_invalidate` hook) on the pub/sub
channel `P:inval` and applies the other replicas' with `LookupCache.apply_remote_invalidation`, which does not
broadcast again: one message per invalidation, whichever replica made it. Tags carry no raw emails or phones
(gateway.cache_tags hashes them). A message lost while Redis is away only leaves the other replicas' entries until their
TTL ends. With the embedded SQLite store there is one replica and nothing to fan out.

Its own Redis connections, not the push store's: the cache and the push pipeline only share the server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import RedisError

from gateway.cache import LOOKUP_CACHE, Invalidation, LookupCache
from gateway.keys import SETTINGS
from gateway.redis_pubsub import Subscription
from gateway.settings import StorageSettings

log = logging.getLogger(__name__)


class RedisCacheFanOut:
    """Publishes the attached caches' invalidations to the other replicas and applies theirs to those caches."""

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, prefix: str = "gw") -> None:
        self.url = url
        self.channel = f"{prefix}:inval"
        #: Identifies this replica's messages on the channel, so it ignores its own.
        self.replica_id = uuid.uuid4().hex[:16]
        self._redis: aioredis.Redis | None = None
        self._subscription: Subscription | None = None
        self._caches: list[LookupCache] = []
        self._outgoing: list[dict[str, Any]] = []
        self._publishing: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        """Subscribe, and return once Redis confirmed it: from then on no other replica's message is missed."""
        if self._redis is not None:
            return
        client = aioredis.Redis.from_url(self.url, max_connections=4, decode_responses=False)
        try:
            subscription = await Subscription.open(client, self.channel, self._apply, "cache fan-out")
        except (RedisError, OSError) as exc:
            await client.aclose()
            raise OSError(f"cache fan-out: cannot reach Redis ({type(exc).__name__}: {exc})") from exc
        self._redis, self._subscription = client, subscription

    def attach(self, cache: LookupCache) -> None:
        """Publish `cache`'s invalidations to the others, and apply theirs to it."""
        if cache in self._caches:
            return
        self._caches.append(cache)
        cache.on_invalidate.append(self._publish)

    async def close(self) -> None:
        for cache in self._caches:
            if self._publish in cache.on_invalidate:
                cache.on_invalidate.remove(self._publish)
        self._caches.clear()
        if self._publishing:
            await asyncio.gather(*self._publishing, return_exceptions=True)
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None
        if self._redis is not None:
            client, self._redis = self._redis, None
            await client.aclose()

    def _publish(self, event: Invalidation) -> None:
        """LookupCache hook. Invalidations made in one loop iteration (a rules batch makes hundreds) travel as ONE
        message, published by one task: no connection storm, and the order of invalidations is kept."""
        self._outgoing.append(
            {"shop": event.shop_key, "tags": list(event.tags) if event.tags is not None else None, "kind": event.kind}
        )
        if len(self._outgoing) == 1 and self._redis is not None:
            task = asyncio.ensure_future(self._flush(self._redis))
            self._publishing.add(task)
            task.add_done_callback(self._publishing.discard)

    async def _flush(self, client: aioredis.Redis) -> None:
        await asyncio.sleep(0)
        items, self._outgoing = self._outgoing, []
        if not items:
            return
        try:
            await client.publish(self.channel, json.dumps({"origin": self.replica_id, "items": items}))
        except (RedisError, RuntimeError) as exc:
            # Other replicas keep their entries until the TTL ends: logged, never fatal to the push pipeline.
            log.warning("cache fan-out: %d invalidations not published (%s)", len(items), type(exc).__name__)

    def _apply(self, data: bytes) -> None:
        message = json.loads(data)
        if message.get("origin") == self.replica_id:
            return
        for item in message.get("items", ()):
            tags = item.get("tags")
            event = Invalidation(str(item["shop"]), tuple(tags) if tags is not None else None, item.get("kind"))
            for cache in self._caches:
                cache.apply_remote_invalidation(event)


def make_cache_fan_out(storage: StorageSettings) -> RedisCacheFanOut | None:
    """The fan-out the storage backend needs: Redis (shared by replicas) has one, embedded SQLite (one replica) none."""
    if storage.backend == "redis":
        return RedisCacheFanOut(storage.redis_url, prefix=storage.redis_prefix)
    return None


def setup_cache_fan_out(app: web.Application) -> None:
    """Fan the app's lookup-cache invalidations out to the other replicas, for the app's lifetime.

    Call it after setup_query (which creates the cache) and before setup_push: cleanup contexts close in reverse
    order, so the fan-out keeps publishing until the push workers, which invalidate, have stopped."""
    fan_out = make_cache_fan_out(app[SETTINGS].storage)
    cache = app.get(LOOKUP_CACHE)
    if fan_out is None or cache is None:
        return

    async def fan_out_ctx(app: web.Application) -> AsyncIterator[None]:
        await fan_out.open()
        fan_out.attach(cache)
        try:
            yield
        finally:
            await fan_out.close()

    app.cleanup_ctx.append(fan_out_ctx)
