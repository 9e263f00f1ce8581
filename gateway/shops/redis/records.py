"""The connected shops' records in Redis (`ShopRecords`). A replica applies the others' changes from the channel
`P:shops:chg`, and every `POLL_SECONDS` compares `P:shops:ver` with the last version it heard of, so a message lost
while Redis was away only delays a change."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from redis.exceptions import RedisError

from gateway.redis_pubsub import Subscription
from gateway.shops.crypto import Sealer
from gateway.shops.redis.db import ShopsRedis
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

POLL_SECONDS = 10.0

_FIELDS = ("key", "domain", "config", "status", "problem", "scope", "paused", "installed_at", "uninstalled_at",
           "created_at", "version")  # fmt: skip

# KEYS: shop hash, set, domain index, version counter; ARGV: channel, origin, domain, key, then field/value pairs
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('HEXISTS', KEYS[3], ARGV[3]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
local v = redis.call('INCR', KEYS[4])
redis.call('PUBLISH', ARGV[1], ARGV[2] .. '\\n' .. ARGV[4] .. '\\n' .. v)
return 1
"""
# KEYS: shop hash, version counter; ARGV: channel, origin, key, expected version, tokens mode (keep|set|drop),
# tokens, tokens id, then field/value pairs
_SAVE = """
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[4] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 8))
if ARGV[5] == 'set' then redis.call('HSET', KEYS[1], 'tokens', ARGV[6], 'tokens_id', ARGV[7])
elseif ARGV[5] == 'drop' then redis.call('HDEL', KEYS[1], 'tokens', 'tokens_id') end
local v = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[1], ARGV[2] .. '\\n' .. ARGV[3] .. '\\n' .. v)
return 1
"""
# KEYS: shop hash, set, domain index, version counter, sync hash; ARGV: channel, origin, key
_DELETE = """
local domain = redis.call('HGET', KEYS[1], 'domain')
if not domain then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[3])
redis.call('HDEL', KEYS[3], domain)
redis.call('HDEL', KEYS[5], ARGV[3])
local v = redis.call('INCR', KEYS[4])
redis.call('PUBLISH', ARGV[1], ARGV[2] .. '\\n' .. ARGV[3] .. '\\n' .. v)
return 1
"""


def _stored(value: Any) -> str:
    """A field as this store writes it ("" for None, which `StoredShop.from_row` reads back as None)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _pairs(row: dict[str, Any]) -> list[str]:
    return [part for name in _FIELDS for part in (name, _stored(row[name]))]


class RedisShopRecords:
    def __init__(self, db: ShopsRedis, sealer: Sealer | None) -> None:
        self.db = db
        self._sealer = sealer
        self.channel = f"{db.prefix}:shops:chg"
        #: Who wrote a change (the channel's messages name it): a replica ignores its own.
        self.replica_id = uuid.uuid4().hex[:16]
        self._listeners = ChangeListeners()
        self._subscription: Subscription | None = None
        self._seen_version = 0
        self._poller: asyncio.Task[None] | None = None

    def on_change(self, listener: ChangeListener) -> None:
        self._listeners.add(listener)

    async def follow_others(self) -> None:
        """Start hearing other replicas' changes (from the counter as it is now)."""
        self._subscription = await Subscription.open(self.db.redis, self.channel, self._heard, "shop store")
        self._seen_version = int(await self.db.redis.get(self.db.k("shops", "ver")) or 0)
        self._poller = asyncio.create_task(self._poll(), name="shops-change-poller")

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None

    async def load_all(self) -> list[StoredShop]:
        keys = sorted(str(k) for k in await self.db.redis.smembers(self.db.k("shops")))
        async with self.db.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(self.db.k("shop", key), *_FIELDS)
            rows = await pipe.execute()
        return [self._shop(values) for values in rows if values[0] is not None]

    async def load(self, key: str) -> StoredShop | None:
        values = await self.db.redis.hmget(self.db.k("shop", key), *_FIELDS)
        return self._shop(values) if values[0] is not None else None

    def _shop(self, values: list[Any]) -> StoredShop:
        return StoredShop.from_row(dict(zip(_FIELDS, values, strict=True)), need_sealer(self._sealer))

    async def key_for_domain(self, domain: str) -> str | None:
        found = await self.db.redis.hget(self.db.k("shopdomain"), domain)
        return str(found) if found is not None else None

    async def create(self, shop: StoredShop, tokens: TokenSet | None) -> bool:
        row = shop.with_changes(version=1).row(need_sealer(self._sealer))
        pairs = _pairs(row)
        if tokens is not None:
            pairs += ["tokens", seal_tokens(need_sealer(self._sealer), shop.key, tokens), "tokens_id", token_id(tokens)]
        keys = [self.db.k("shop", shop.key), self.db.k("shops"), self.db.k("shopdomain"), self.db.k("shops", "ver")]
        done = await self.db.redis.eval(
            _CREATE, len(keys), *keys, self.channel, self.replica_id, shop.domain, shop.key, *pairs
        )
        return self._written(shop.key, done)

    async def save(self, shop: StoredShop, *, tokens: Any = KEEP, expected_version: int) -> bool:
        row = shop.with_changes(version=expected_version + 1).row(need_sealer(self._sealer))
        row.pop("domain")  # fixed at creation (the domain index names it)
        pairs = [part for name in _FIELDS if name in row for part in (name, _stored(row[name]))]
        if tokens is KEEP:
            mode, sealed = "keep", ""
        elif tokens is None:
            mode, sealed = "drop", ""
        else:
            mode, sealed = "set", seal_tokens(need_sealer(self._sealer), shop.key, tokens)
        keys = [self.db.k("shop", shop.key), self.db.k("shops", "ver")]
        done = await self.db.redis.eval(
            _SAVE, len(keys), *keys, self.channel, self.replica_id, shop.key, str(expected_version), mode, sealed,
            token_id(tokens if tokens is not KEEP else None), *pairs,
        )  # fmt: skip
        return self._written(shop.key, done)

    async def delete(self, key: str) -> bool:
        keys = [self.db.k("shop", key), self.db.k("shops"), self.db.k("shopdomain"), self.db.k("shops", "ver"),
                self.db.k("whsync")]  # fmt: skip
        done = await self.db.redis.eval(_DELETE, len(keys), *keys, self.channel, self.replica_id, key)
        return self._written(key, done)

    def _written(self, key: str, done: Any) -> bool:
        if int(done) != 1:
            return False
        self._listeners.tell(key)
        return True

    def _heard(self, data: bytes | str) -> None:
        text = data.decode() if isinstance(data, bytes) else data
        origin, _, rest = text.partition("\n")
        key, _, version = rest.partition("\n")
        self._seen_version = max(self._seen_version, int(version or 0))
        if origin != self.replica_id:
            self._listeners.tell(key)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                version = int(await self.db.redis.get(self.db.k("shops", "ver")) or 0)
            except (RedisError, OSError, RuntimeError) as exc:
                log.warning("shop store: change poll failed (%s)", type(exc).__name__)
                continue
            if version > self._seen_version:
                self._seen_version = version
                self._listeners.tell("*")
