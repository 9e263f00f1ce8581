"""Wiring of the shops flow into the app: the live registry, the shop store, app mode's install routes, token
providers for connected shops, the start-up webhook subscription sync, and what /readyz says about shops.

`setup_shops` runs first in `create_app`: it turns `app[SETTINGS].shops` into the live `ShopRegistry`, so every
later setup (and every handler) reads the registry, and its cleanup context opens the store and loads the
connected shops before any other flow starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web

from gateway import ops
from gateway.keys import SETTINGS
from gateway.push.processor import APP_LIFECYCLE
from gateway.push.store import PUSH_STORE
from gateway.push.subscriptions import fingerprint, start_sync_task, sync_shop, webhook_uri
from gateway.settings import AppSettings, InstalledAppAuth, Settings, ShopSettings
from gateway.shopify.auth import TokenProvider
from gateway.shopify.client import SHOPIFY_CLIENTS
from gateway.shops.backends import make_shop_store
from gateway.shops.install import InstallFlow, add_install_routes
from gateway.shops.lifecycle import Installed, ShopLifecycle
from gateway.shops.registry import SHOP_REGISTRY, ShopRegistry
from gateway.shops.store import ShopStatus, ShopStore
from gateway.shops.tokens import AppTokenEndpoint, InstalledTokenProvider

log = logging.getLogger(__name__)

SHOP_STORE = web.AppKey("shop_store", ShopStore)  # type: ignore[type-abstract]
SHOP_LIFECYCLE = web.AppKey("shop_lifecycle", ShopLifecycle)
INSTALL_FLOW = web.AppKey("install_flow", InstallFlow)


def setup_shops(app: web.Application, *, clock: Callable[[], float] = time.time) -> None:
    settings: Settings = app[SETTINGS]
    registry = ShopRegistry(settings.shops, settings.app)
    app[SETTINGS] = settings = settings.model_copy(update={"shops": registry})
    app[SHOP_REGISTRY] = registry
    store = make_shop_store(settings, clock=clock, serving=True)
    app[SHOP_STORE] = store
    background: set[asyncio.Task[None]] = set()
    lifecycle = ShopLifecycle(registry, store, settings.app, clock=clock)
    app[SHOP_LIFECYCLE] = app[APP_LIFECYCLE] = lifecycle
    if settings.app is not None:

        def endpoint() -> AppTokenEndpoint:
            session = app[SHOPIFY_CLIENTS].session
            if session is None:
                raise RuntimeError("the Shopify session is not open")
            assert settings.app is not None
            return AppTokenEndpoint(session, settings.app, clock=clock)

        async def after_install(installed: Installed) -> None:
            # the subscriptions (app/uninstalled included) in the background: the merchant's page does not wait
            task = asyncio.ensure_future(_sync_one(app, installed.key))
            background.add(task)
            task.add_done_callback(background.discard)

        flow = InstallFlow(settings.app, settings.server.public_url, lifecycle, endpoint, after_install=after_install,
                           clock=clock)  # fmt: skip
        app[INSTALL_FLOW] = flow
        add_install_routes(app, flow)
    ops.add_readiness_detail(app, "shops", lambda: _attention(registry))

    async def shops_ctx(app: web.Application) -> AsyncIterator[None]:
        await store.open()
        if settings.app is not None:
            await registry.follow(store.records)
        try:
            yield
        finally:
            for task in list(background):
                task.cancel()
            await store.close()

    async def start(app: web.Application) -> None:
        # After every cleanup context: the Shopify session, the push store and the lookup contexts exist.
        clients = app[SHOPIFY_CLIENTS]
        push_store = app.get(PUSH_STORE)
        lifecycle.ledger = push_store.shops if push_store is not None else None
        if settings.app is not None:
            clients.token_providers = _token_providers(store, settings.app, lifecycle, clock)
        task = start_sync_task(settings, clients, store.sync, eligible=lambda key: _connected(registry, key))
        if task is not None:
            background.add(task)
            task.add_done_callback(background.discard)

    async def stop(app: web.Application) -> None:
        for task in list(background):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    app.cleanup_ctx.append(shops_ctx)
    app.on_startup.append(start)
    app.on_shutdown.append(stop)


def _token_providers(
    store: ShopStore, app: AppSettings, lifecycle: ShopLifecycle, clock: Callable[[], float]
) -> Callable[[str, ShopSettings, aiohttp.ClientSession], TokenProvider | None]:
    def provider(key: str, shop: ShopSettings, session: aiohttp.ClientSession) -> TokenProvider | None:
        if not isinstance(shop.auth, InstalledAppAuth):
            return None
        return InstalledTokenProvider(
            key, shop.domain, store.tokens, AppTokenEndpoint(session, app, clock=clock),
            refresh_margin_seconds=app.refresh_margin_seconds, on_refused=lifecycle.refused, clock=clock,
        )  # fmt: skip

    return provider


def _connected(registry: ShopRegistry, key: str) -> bool:
    stored = registry.stored.get(key)
    return stored is None or stored.status is ShopStatus.CONNECTED


def _attention(registry: ShopRegistry) -> dict[str, str]:
    """/readyz's `shops` detail: connected shops that need their owner (the gateway stays ready for the others)."""
    found = {key: "left out: " + problem for key, problem in registry.problems.items()}
    for key, stored in registry.stored.items():
        if stored.status is ShopStatus.REINSTALL_NEEDED:
            found[key] = "reinstall needed"
    return found


async def _sync_one(app: web.Application, shop_key: str) -> None:
    """Create a newly installed shop's webhook subscriptions (retried a few times: Shopify may lag the install)."""
    settings = app[SETTINGS]
    uri = webhook_uri(settings)
    for attempt in range(4):
        client = app[SHOPIFY_CLIENTS].get(shop_key)
        if client is None:
            return
        report = await sync_shop(shop_key, client, uri)
        if report.ok:
            log.info("webhook subscriptions: %s", report.summary())
            try:
                await app[SHOP_STORE].sync.set_sync_state(shop_key, fingerprint(uri))
            except Exception as exc:  # only means the next start checks this shop again
                log.warning("webhook subscriptions of %s: state not kept (%s)", shop_key, type(exc).__name__)
            return
        log.warning("webhook subscriptions after install: %s", report.summary())
        await asyncio.sleep(2.0 * (attempt + 1))
