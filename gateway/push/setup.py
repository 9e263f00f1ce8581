"""Push flow wiring: the webhook route, the store, and the background workers, all tied to the app's lifetime.

Workers (one asyncio task each, started in cleanup_ctx, cancelled on shutdown):
- processor: claims stored webhook events and turns them into pushes (gateway.push.processor), in batches;
- unpaid checker: re-reads orders whose Order/Unpaid delay elapsed and enqueues what is due (gateway.push.unpaid);
- sender: delivers the outbox (gateway.push.sender);
- lease heartbeat: renews the leases this replica holds on claimed work (gateway.push.leases);
- reconciler (gateway.push.reconcile), when configured (the start-up webhook subscription sync is gateway.shops.setup's:
  it knows which shops need one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from gateway import ops
from gateway.flows import LOOKUP_INVALIDATOR, PUSH_STATE
from gateway.keys import SETTINGS
from gateway.push.backends import make_store
from gateway.push.intake import handle_webhook
from gateway.push.leases import count_leases, start_heartbeat
from gateway.push.processor import APP_LIFECYCLE, build_processor, run_processor
from gateway.push.reader import PushReader
from gateway.push.reconcile import start_reconciler
from gateway.push.sender import PushSender
from gateway.push.store import PUSH_STORE
from gateway.push.unpaid import UnpaidChecks, run_unpaid_checker
from gateway.shopify.client import SHOPIFY_CLIENTS

log = logging.getLogger(__name__)

#: Deliveries in flight at once (and the HTTP connections they may use).
SEND_CONCURRENCY = 64


def setup_push(app: web.Application) -> None:
    settings = app[SETTINGS]
    store = make_store(settings.storage, serving=True)
    app[PUSH_STORE] = store
    app[PUSH_STATE] = store.tracking
    count_leases(store.leases, ops.get_metrics(app))
    app.router.add_post("/webhooks/shopify", handle_webhook)

    async def push_store_ready() -> str | None:
        return await store.ping()

    ops.add_readiness_check(app, push_store_ready)
    app.cleanup_ctx.append(_push_ctx)


async def _push_ctx(app: web.Application) -> AsyncIterator[None]:
    settings, store, metrics = app[SETTINGS], app[PUSH_STORE], ops.get_metrics(app)
    await store.open()
    # No cookies: pushes are stateless, and a cookie the platform sets must not ride along on later pushes.
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=SEND_CONCURRENCY),
        raise_for_status=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    clients = app[SHOPIFY_CLIENTS]  # filled by setup_shopify's cleanup_ctx, which runs first
    # The query side's lookup cache (setup_query): webhooks evict what they make stale.
    processor = build_processor(
        settings, store, metrics=metrics, invalidator=app.get(LOOKUP_INVALIDATOR), reader=PushReader(clients, metrics),
        lifecycle=app.get(APP_LIFECYCLE),
    )  # fmt: skip
    lease = settings.storage.lease_seconds
    tasks = [
        start_heartbeat(settings.storage, store.leases),
        asyncio.create_task(run_processor(processor, store, lease), name="push-processor"),
    ]
    # Shops connected from the browser may push from their first minute: with app mode the sender always runs.
    if settings.app is not None or any(s.push is not None for s in settings.shops.values()):
        sender = PushSender(settings, store, session, metrics, concurrency=SEND_CONCURRENCY)
        tasks.append(asyncio.create_task(sender.run(), name="push-sender"))
        min_delay = min((s.push.unpaid_delay_seconds for s in settings.shops.values() if s.push), default=60.0)
        poll = min(max(min_delay / 4, 0.05), 5.0)
        checks = UnpaidChecks(settings, store.states, store.shops, processor.renderer, metrics)
        tasks.append(asyncio.create_task(run_unpaid_checker(checks, store, poll, lease), name="push-unpaid-checker"))
    reconciler = start_reconciler(settings, clients, processor.rules, processor.renderer, store)
    if reconciler is not None:
        tasks.append(reconciler)
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await session.close()
        await store.close()
