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
uninstall changes nothing. A replica applies the others' changes from the channel, and every `POLL_SECONDS`
compares `P:shops:ver` with the last version it heard of, so a message lost while Redis was away only delays a change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.redis_pubsub import Subscription
from gateway.shops.crypto import Sealer
from gateway.shops.store import KEEP, ChangeListener, StoredShop, TokenSet, open_tokens, seal_tokens, token_id

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
# KEYS: shop hash; ARGV: tokens, their id, the id of the tokens they replace
_SAVE_TOKENS = """
if (redis.call('HGET', KEYS[1], 'tokens_id') or '') ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], 'tokens', ARGV[1], 'tokens_id', ARGV[2])
return 1
"""
_UNLOCK = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


def _stored(value: Any) -> str:
    """A field as this store writes it ("" for None, which `StoredShop.from_row` reads back as None)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _pairs(row: dict[str, Any]) -> list[str]:
    return [part for name in _FIELDS for part in (name, _stored(row[name]))]


class RedisShopStore:
    def __init__(self, url: str, sealer: Sealer | None, *, prefix: str = "gw") -> None:
        self.url = url
        self._sealer = sealer
        self.prefix = prefix
        self.channel = f"{prefix}:shops:chg"
        self.replica_id = uuid.uuid4().hex[:16]
        self._redis: aioredis.Redis | None = None
        self._subscription: Subscription | None = None
        self._listeners: list[ChangeListener] = []
        self._seen_version = 0
        self._poller: asyncio.Task[None] | None = None

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("the shop store is not open")
        return self._redis

    def sealer(self) -> Sealer:
        """The cipher of connected shops' records (app.token_key); without app mode the store keeps only the
        webhook subscription states."""
        if self._sealer is None:
            raise RuntimeError("connected shops are sealed with app.token_key: configure app: to read them")
        return self._sealer

    # --- lifecycle -------------------------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._redis is not None:
            return
        client = aioredis.Redis.from_url(self.url, max_connections=8, decode_responses=True)
        try:
            self._subscription = await Subscription.open(client, self.channel, self._heard, "shop store")
            self._seen_version = int(await client.get(self._k("shops", "ver")) or 0)
        except (RedisError, OSError) as exc:
            await client.aclose()
            raise OSError(f"shop store: cannot reach Redis ({type(exc).__name__}: {exc})") from exc
        self._redis = client
        self._poller = asyncio.create_task(self._poll(), name="shops-change-poller")

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None
        if self._redis is not None:
            client, self._redis = self._redis, None
            await client.aclose()

    def on_change(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    # --- shops -----------------------------------------------------------------------------------------------------

    async def load_all(self) -> list[StoredShop]:
        keys = sorted(str(k) for k in await self.redis.smembers(self._k("shops")))
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(self._k("shop", key), *_FIELDS)
            rows = await pipe.execute()
        return [self._shop(values) for values in rows if values[0] is not None]

    async def load(self, key: str) -> StoredShop | None:
        values = await self.redis.hmget(self._k("shop", key), *_FIELDS)
        return self._shop(values) if values[0] is not None else None

    def _shop(self, values: list[Any]) -> StoredShop:
        return StoredShop.from_row(dict(zip(_FIELDS, values, strict=True)), self.sealer())

    async def key_for_domain(self, domain: str) -> str | None:
        found = await self.redis.hget(self._k("shopdomain"), domain)
        return str(found) if found is not None else None

    async def create(self, shop: StoredShop, tokens: TokenSet | None) -> bool:
        row = shop.with_changes(version=1).row(self.sealer())
        pairs = _pairs(row)
        if tokens is not None:
            pairs += ["tokens", seal_tokens(self.sealer(), shop.key, tokens), "tokens_id", token_id(tokens)]
        keys = [self._k("shop", shop.key), self._k("shops"), self._k("shopdomain"), self._k("shops", "ver")]
        done = await self.redis.eval(
            _CREATE, len(keys), *keys, self.channel, self.replica_id, shop.domain, shop.key, *pairs
        )
        return self._written(shop.key, done)

    async def save(self, shop: StoredShop, *, tokens: Any = KEEP, expected_version: int) -> bool:
        row = shop.with_changes(version=expected_version + 1).row(self.sealer())
        row.pop("domain")  # fixed at creation (the domain index names it)
        pairs = [part for name in _FIELDS if name in row for part in (name, _stored(row[name]))]
        if tokens is KEEP:
            mode, sealed = "keep", ""
        elif tokens is None:
            mode, sealed = "drop", ""
        else:
            mode, sealed = "set", seal_tokens(self.sealer(), shop.key, tokens)
        keys = [self._k("shop", shop.key), self._k("shops", "ver")]
        done = await self.redis.eval(
            _SAVE, len(keys), *keys, self.channel, self.replica_id, shop.key, str(expected_version), mode, sealed,
            token_id(tokens if tokens is not KEEP else None), *pairs,
        )  # fmt: skip
        return self._written(shop.key, done)

    async def delete(self, key: str) -> bool:
        keys = [self._k("shop", key), self._k("shops"), self._k("shopdomain"), self._k("shops", "ver"),
                self._k("whsync")]  # fmt: skip
        done = await self.redis.eval(_DELETE, len(keys), *keys, self.channel, self.replica_id, key)
        return self._written(key, done)

    def _written(self, key: str, done: Any) -> bool:
        if int(done) != 1:
            return False
        self._tell(key)
        return True

    # --- tokens ----------------------------------------------------------------------------------------------------

    async def load_tokens(self, key: str) -> TokenSet | None:
        sealed = await self.redis.hget(self._k("shop", key), "tokens")
        return open_tokens(self.sealer(), key, str(sealed)) if sealed else None

    async def save_tokens(self, key: str, tokens: TokenSet, *, replacing: TokenSet) -> bool:
        sealed = seal_tokens(self.sealer(), key, tokens)
        done = await self.redis.eval(_SAVE_TOKENS, 1, self._k("shop", key), sealed, token_id(tokens), token_id(replacing))
        return int(done) == 1

    async def try_lock(self, key: str, owner: str, seconds: float) -> bool:
        return bool(await self.redis.set(self._k("shoplock", key), owner, nx=True, px=int(seconds * 1000)))

    async def unlock(self, key: str, owner: str) -> None:
        await self.redis.eval(_UNLOCK, 1, self._k("shoplock", key), owner)

    # --- webhook subscription state --------------------------------------------------------------------------------

    async def sync_states(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (await self.redis.hgetall(self._k("whsync"))).items()}

    async def set_sync_state(self, key: str, fingerprint: str | None) -> None:
        if fingerprint is None:
            await self.redis.hdel(self._k("whsync"), key)
        else:
            await self.redis.hset(self._k("whsync"), key, fingerprint)

    # --- changes ---------------------------------------------------------------------------------------------------

    def _tell(self, key: str) -> None:
        for listener in self._listeners:
            try:
                listener(key)
            except Exception:  # one broken listener must not hide the change from the others
                log.exception("shop store: a change listener failed")

    def _heard(self, data: bytes | str) -> None:
        text = data.decode() if isinstance(data, bytes) else data
        origin, _, rest = text.partition("\n")
        key, _, version = rest.partition("\n")
        self._seen_version = max(self._seen_version, int(version or 0))
        if origin != self.replica_id:
            self._tell(key)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                version = int(await self.redis.get(self._k("shops", "ver")) or 0)
            except (RedisError, OSError, RuntimeError) as exc:
                log.warning("shop store: change poll failed (%s)", type(exc).__name__)
                continue
            if version > self._seen_version:
                self._seen_version = version
                self._tell("*")
