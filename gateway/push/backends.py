"""Choosing the push store's backend from the config: the one module that knows both implementations.

Kept apart from `gateway.push.store` (the contract and its records), which the backends import: the contract knows
no backend, so the import graph has no cycle."""

from __future__ import annotations

from gateway.push.redis_store import RedisPushStore
from gateway.push.sqlite_store import SqlitePushStore
from gateway.push.store import PushStore
from gateway.settings import StorageSettings


def make_store(storage: StorageSettings, *, serving: bool = False) -> PushStore:
    """The backend the config names: `storage.backend` is "sqlite" (embedded default) or "redis" (several replicas).

    `serving` is True for the gateway process itself (False for CLI commands): an embedded SQLite store belongs to
    one gateway process, so at start it takes back the leases a crashed predecessor held instead of waiting for them
    to expire. Redis leases are shared by replicas and simply expire."""
    if storage.backend == "redis":
        return RedisPushStore(storage.redis_url, prefix=storage.redis_prefix)
    return SqlitePushStore(storage.sqlite_path, reclaim_leases=serving)
