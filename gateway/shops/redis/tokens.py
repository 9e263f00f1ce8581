"""The connected shops' tokens in Redis (`ShopTokens`): the sealed pair in the shop's hash, the refresh lock
`P:shoplock:<key>` (SET NX PX, released only by its owner)."""

from __future__ import annotations

from gateway.shops.crypto import Sealer
from gateway.shops.redis.db import ShopsRedis
from gateway.shops.store import TokenSet, need_sealer, open_tokens, seal_tokens, token_id

# KEYS: shop hash; ARGV: tokens, their id, the id of the tokens they replace
_SAVE_TOKENS = """
if (redis.call('HGET', KEYS[1], 'tokens_id') or '') ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], 'tokens', ARGV[1], 'tokens_id', ARGV[2])
return 1
"""
_UNLOCK = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class RedisShopTokens:
    def __init__(self, db: ShopsRedis, sealer: Sealer | None) -> None:
        self.db = db
        self._sealer = sealer

    async def load_tokens(self, key: str) -> TokenSet | None:
        sealed = await self.db.redis.hget(self.db.k("shop", key), "tokens")
        return open_tokens(need_sealer(self._sealer), key, str(sealed)) if sealed else None

    async def save_tokens(self, key: str, tokens: TokenSet, *, replacing: TokenSet) -> bool:
        sealed = seal_tokens(need_sealer(self._sealer), key, tokens)
        done = await self.db.redis.eval(
            _SAVE_TOKENS, 1, self.db.k("shop", key), sealed, token_id(tokens), token_id(replacing)
        )
        return int(done) == 1

    async def try_lock(self, key: str, owner: str, seconds: float) -> bool:
        return bool(await self.db.redis.set(self.db.k("shoplock", key), owner, nx=True, px=int(seconds * 1000)))

    async def unlock(self, key: str, owner: str) -> None:
        await self.db.redis.eval(_UNLOCK, 1, self.db.k("shoplock", key), owner)
