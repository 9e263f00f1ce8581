"""Choosing the shop store's backend from the config, and reading the connected shops outside a running app.

The one module that knows both store implementations (gateway.shops.sqlite.store, gateway.shops.redis.store).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp

from gateway.push.replica import ReplicaIdentity
from gateway.settings import AppSettings, InstalledAppAuth, Settings, ShopSettings
from gateway.shopify.auth import TokenProvider
from gateway.shopify.client import ShopifyClients, new_session
from gateway.shops.crypto import Sealer
from gateway.shops.lifecycle import ShopLifecycle
from gateway.shops.redis.store import RedisShopStore
from gateway.shops.registry import ShopRegistry
from gateway.shops.sqlite.store import SqliteShopStore
from gateway.shops.store import ShopStore
from gateway.shops.tokens import AppTokenEndpoint, InstalledTokenProvider


def sealer_for(app: AppSettings | None) -> Sealer | None:
    if app is None:
        return None
    return Sealer(app.token_key.get_secret_value(), [k.get_secret_value() for k in app.previous_token_keys])


def make_shop_store(settings: Settings, *, clock: Callable[[], float] = time.time, serving: bool = False) -> ShopStore:
    """The store the config names (`storage.backend`), sealing with `app.token_key`. Without app mode it keeps only
    the webhook subscription states (connected shops need the key to be read). `serving`: the gateway process itself
    (with an embedded SQLite file, refresh locks an earlier start of this replica held are taken back)."""
    sealer = sealer_for(settings.app)
    storage = settings.storage
    if storage.backend == "redis":
        return RedisShopStore(storage.redis_url, sealer, prefix=storage.redis_prefix)
    replica_id = ReplicaIdentity.start(storage.replica_id).replica_id if serving else None
    return SqliteShopStore(storage.sqlite_path, sealer, clock=clock, replica_id=replica_id)


def with_connected_shops(settings: Settings) -> Settings:
    """`settings` whose `shops` are the config's plus the connected ones, read once from the store: what the CLI's
    `gateway ask` / `gateway sign` sign with. Without app mode, `settings` as they are."""
    if settings.app is None:
        return settings

    async def load() -> ShopRegistry:
        registry = ShopRegistry(settings.shops, settings.app)
        store = make_shop_store(settings)
        await store.open()
        try:
            registry.replace_all(await store.records.load_all())
        finally:
            await store.close()
        return registry

    return settings.model_copy(update={"shops": asyncio.run(load())})


@asynccontextmanager
async def shop_clients(settings: Settings) -> AsyncIterator[ShopifyClients]:
    """Every shop's Shopify client, connected shops included (their tokens read from the store and refreshed under
    the same lock as the serving replicas'), for CLI commands such as `gateway webhooks`."""
    store = make_shop_store(settings)
    await store.open()
    registry = ShopRegistry(settings.shops, settings.app)
    try:
        if settings.app is not None:
            registry.replace_all(await store.records.load_all())
        lifecycle = ShopLifecycle(registry, store, settings.app)
        async with new_session() as session:
            clients = ShopifyClients()
            clients.open(registry, session)
            app = settings.app

            def provider(key: str, shop: ShopSettings, session: aiohttp.ClientSession) -> TokenProvider | None:
                if app is None or not isinstance(shop.auth, InstalledAppAuth):
                    return None
                return InstalledTokenProvider(
                    key, shop.domain, store.tokens, AppTokenEndpoint(session, app),
                    refresh_margin_seconds=app.refresh_margin_seconds, on_refused=lifecycle.refused,
                )  # fmt: skip

            clients.token_providers = provider
            yield clients
    finally:
        await store.close()
