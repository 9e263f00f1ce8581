"""Choosing the push store's backend from the config: the one module that knows both implementations.

Kept apart from `gateway.push.store` (the contract and its records), which the backends import: the contract knows
no backend, so the import graph has no cycle."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.push.redis.store import RedisPushStore
from gateway.push.replica import ReplicaIdentity
from gateway.push.sqlite.store import SqlitePushStore
from gateway.push.store import PushStore
from gateway.settings import StorageSettings


def make_store(storage: StorageSettings, *, serving: bool = False, env: Mapping[str, str] | None = None) -> PushStore:
    """The backend the config names: `storage.backend` is "sqlite" (embedded default) or "redis" (several replicas).

    `serving` is True for the gateway process itself (False for CLI commands). A serving store leases work under this
    replica's identity (`storage.replica_id`, else GATEWAY_REPLICA_ID from `env`, else the host name) and, when it
    opens, takes back at once the leases an earlier start of the same replica id still holds, instead of waiting for
    them to expire (docs/replicas.md)."""
    identity = ReplicaIdentity.start(storage.replica_id, env)
    if storage.backend == "redis":
        return RedisPushStore(storage.redis_url, prefix=storage.redis_prefix, identity=identity, reclaim=serving)
    return SqlitePushStore(storage.sqlite_path, identity=identity, reclaim_leases=serving)
