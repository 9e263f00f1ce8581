"""Push flow wiring: the webhook route, the store, and the background workers, all tied to the app's lifetime.

Workers (one asyncio task each, started in cleanup_ctx, cancelled on shutdown):
- processor: claims stored webhook events and runs the rules (gateway.push.rules) on them, in batches;
- unpaid checker: re-reads orders whose Order/Unpaid delay elapsed (the push read) and enqueues what is due;
- sender: delivers the outbox (gateway.push.sender);
- reconciler (gateway.push.reconcile), when configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from gateway import ops
from gateway.cache import LOOKUP_CACHE
from gateway.keys import PUSH_STATE, SETTINGS
from gateway.push.backends import make_store
from gateway.push.intake import handle_webhook
from gateway.push.reader import PushReader
from gateway.push.reconcile import start_reconciler
from gateway.push.rules import APP_LIFECYCLE, Rules
from gateway.push.sender import PushSender
from gateway.push.store import PUSH_STORE, PushStore
from gateway.settings import Settings
from gateway.shopify.client import SHOPIFY_CLIENTS

log = logging.getLogger(__name__)

#: How many stored events one rules pass takes (one store transaction for all of them).
EVENT_BATCH = 256
EVENT_LEASE_SECONDS = 30.0
UNPAID_LEASE_SECONDS = 60.0
IDLE_SECONDS = 1.0


async def run_processor(rules: Rules, store: PushStore) -> None:
    """Run the rules on stored events as they arrive; idle waits are woken by the intake's notifications."""
    while True:
        try:
            events = await store.claim_events(EVENT_BATCH, EVENT_LEASE_SECONDS)
            if events:
                await rules.process(events)
                continue
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("push processor failed; retrying")
            await asyncio.sleep(IDLE_SECONDS)
            continue
        await store.wait_for_work(IDLE_SECONDS)


async def run_unpaid_checker(rules: Rules, store: PushStore, poll_seconds: float) -> None:
    while True:
        try:
            checks = await store.claim_unpaid_checks(64, UNPAID_LEASE_SECONDS)
            if checks:
                await rules.run_unpaid_checks(checks)
                continue
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("unpaid checker failed; retrying")
        await asyncio.sleep(poll_seconds)


class PushRuntime:
    """The running push machinery of one app (kept in `app[PUSH_RUNTIME]`, mostly for tests and benchmarks)."""

    def __init__(self, settings: Settings, store: PushStore, metrics: ops.Metrics) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.tasks: list[asyncio.Task[None]] = []
        self.rules: Rules | None = None
        self.sender: PushSender | None = None


PUSH_RUNTIME = web.AppKey("push_runtime", PushRuntime)


def setup_push(app: web.Application) -> None:
    settings = app[SETTINGS]
    store = make_store(settings.storage, serving=True)
    metrics = ops.get_metrics(app)
    app[PUSH_STORE] = store
    app[PUSH_STATE] = store
    app[PUSH_RUNTIME] = PushRuntime(settings, store, metrics)
    app.router.add_post("/webhooks/shopify", handle_webhook)

    async def push_store_ready() -> str | None:
        return await store.ping()

    ops.add_readiness_check(app, push_store_ready)
    app.cleanup_ctx.append(_push_ctx)


async def _push_ctx(app: web.Application) -> AsyncIterator[None]:
    runtime = app[PUSH_RUNTIME]
    settings, store = runtime.settings, runtime.store
    await store.open()
    # Shops connected from the browser may push from their first minute: with app mode the sender always runs.
    pushing = settings.app is not None or any(s.push is not None for s in settings.shops.values())
    concurrency = 64
    # No cookies: pushes are stateless, and a cookie the platform sets must not ride along on later pushes.
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency), raise_for_status=False, cookie_jar=aiohttp.DummyCookieJar()
    )
    clients = app[SHOPIFY_CLIENTS]  # filled by setup_shopify's cleanup_ctx, which runs first
    reader = PushReader(clients)
    # The query side's lookup cache (setup_query): webhooks evict what they make stale.
    rules = Rules(
        settings, store, runtime.metrics, invalidator=app.get(LOOKUP_CACHE), reader=reader,
        lifecycle=app.get(APP_LIFECYCLE),
    )  # fmt: skip
    runtime.rules = rules
    runtime.sender = PushSender(settings, store, session, runtime.metrics, concurrency=concurrency)
    runtime.tasks.append(asyncio.create_task(run_processor(rules, store), name="push-processor"))
    if pushing:
        runtime.tasks.append(asyncio.create_task(runtime.sender.run(), name="push-sender"))
        min_delay = min((s.push.unpaid_delay_seconds for s in settings.shops.values() if s.push), default=60.0)
        poll = min(max(min_delay / 4, 0.05), 5.0)
        runtime.tasks.append(asyncio.create_task(run_unpaid_checker(rules, store, poll), name="push-unpaid-checker"))
    # (the start-up webhook subscription sync is gateway.shops.setup's: it knows which shops need one)
    reconciler = start_reconciler(settings, clients, rules, store)
    if reconciler is not None:
        runtime.tasks.append(reconciler)
    try:
        yield
    finally:
        for task in runtime.tasks:
            task.cancel()
        for task in runtime.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        runtime.tasks.clear()
        await session.close()
        await store.close()
