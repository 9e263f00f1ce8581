"""Which shops' webhook subscriptions were last found complete, in Redis (`SyncStates`: the hash `P:whsync`)."""

from __future__ import annotations

from gateway.shops.redis.db import ShopsRedis


class RedisSyncStates:
    def __init__(self, db: ShopsRedis) -> None:
        self.db = db

    async def sync_states(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (await self.db.redis.hgetall(self.db.k("whsync"))).items()}

    async def set_sync_state(self, key: str, fingerprint: str | None) -> None:
        if fingerprint is None:
            await self.db.redis.hdel(self.db.k("whsync"), key)
        else:
            await self.db.redis.hset(self.db.k("whsync"), key, fingerprint)
