"""Reconciliation (PROTOCOL §9): webhooks are not guaranteed, so every `server.reconcile_interval_seconds` the
gateway asks Shopify, per shop with pushes on, for the orders updated since its watermark and feeds them through the
same rules as the webhooks, and the pushes they decide on get what they say from the same push read
(gateway.push.reader). Dedupe keys make the overlap with webhooks harmless; the tracking index is fed too.

The watermark is the newest `updatedAt` seen; each pass re-reads from `watermark - OVERLAP_SECONDS` so changes that
share a second with the watermark are not skipped. The first pass starts `FIRST_LOOKBACK_SECONDS` back (not the whole
history: the gateway must not announce old orders it was never told about).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.push.reader import ReadFailed
from gateway.push.records import EventOutcome
from gateway.push.render import PushRenderer
from gateway.push.rules import Decided, Rules, StateBatch
from gateway.push.store import PushStore
from gateway.settings import Settings
from gateway.shopify.client import ShopifyAdminClient
from gateway.shopify.queries import load_query
from mappings.push import order_change_from_node

log = logging.getLogger(__name__)

OVERLAP_SECONDS = 2.0
FIRST_LOOKBACK_SECONDS = 3600.0
MAX_PAGES_PER_PASS = 100


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@dataclass
class PassReport:
    shop_key: str
    orders: int = 0
    pushes: int = 0
    watermark: str = ""


async def reconcile_shop(
    shop_key: str,
    settings: Settings,
    store: PushStore,
    rules: Rules,
    renderer: PushRenderer,
    client: Any,
    *,
    now: float | None = None,
) -> PassReport:
    """One pass for one shop. Raises ShopifyError (listing) or ReadFailed (push read) when Shopify cannot answer;
    the caller logs and retries at the next pass, from the same watermark."""
    shop = settings.shops[shop_key]
    now = time.time() if now is None else now
    report = PassReport(shop_key)
    stored = await store.shops.get_watermark(shop_key)
    since = (_parse(stored) - OVERLAP_SECONDS) if stored else now - FIRST_LOOKBACK_SECONDS
    newest = _parse(stored) if stored else since
    after: str | None = None
    changed_since = f"updated_at:>='{_iso(since)}'"
    for _ in range(MAX_PAGES_PER_PASS):
        data = await client.execute(
            load_query("push_orders_updated"),
            {"query": changed_since, "fulfillmentQuery": changed_since, "after": after},
            background=True,  # behind every lookup on the shop's query points: a shopper is waiting for those
        )
        conn = data.get("orders") or {}
        facts = [f for f in (order_change_from_node(n) for n in conn.get("nodes") or ()) if f]
        if facts:
            batch = StateBatch()
            fids = {ff.fulfillment_id for f in facts for ff in f.fulfillments}
            await batch.load(store.states, {shop_key: {f.order_id for f in facts}}, {shop_key: fids} if fids else {})
            decided = []
            for f in facts:
                item = Decided(EventOutcome(order_id=f.order_id, customer_id=f.customer_id), [], shop_key)
                # An order first seen here and created long ago gets its state recorded, not announced.
                fresh = shop.push is not None and now - f.created_at <= shop.push.max_age_seconds
                known = (shop_key, f.order_id) in batch.orders
                rules.apply_order(shop_key, shop, f, batch, item, created=False, now=now)
                if not fresh and not known:
                    item.intents = [i for i in item.intents if i.topic == "package/update"]
                    item.outcome.unpaid_checks = []
                decided.append(item)
                newest = max(newest, f.updated_at)
            # the same read and mappings as the webhook path; a failed read fails the pass (the watermark stays)
            failed = await renderer.render(decided, now=now)
            if shop_key in failed:
                raise ReadFailed(failed[shop_key])
            await store.states.commit([d.outcome for d in decided])
            report.pushes += sum(len(d.outcome.pushes) for d in decided)
            report.orders += len(facts)
        page = conn.get("pageInfo") or {}
        if not page.get("hasNextPage") or not page.get("endCursor"):
            break
        after = page["endCursor"]
    report.watermark = _iso(newest)
    await store.shops.set_watermark(shop_key, report.watermark)
    return report


async def run_reconciler(
    settings: Settings,
    clients: Mapping[str, ShopifyAdminClient],
    rules: Rules,
    renderer: PushRenderer,
    store: PushStore,
) -> None:
    """Every `server.reconcile_interval_seconds`, one pass per installed shop with pushes on (`clients` is the app's
    `SHOPIFY_CLIENTS`, filled when the app starts)."""
    interval = settings.server.reconcile_interval_seconds
    while True:
        await asyncio.sleep(interval)
        for shop_key, shop in list(settings.shops.items()):  # a copy: shops may be connected during the pass
            if shop.push is None or not shop.push.enabled:
                continue
            client = clients.get(shop_key)
            if client is None or not await store.shops.shop_installed(shop_key):
                continue
            try:
                report = await reconcile_shop(shop_key, settings, store, rules, renderer, client)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "reconciliation of %s failed (%s); next pass in %ss", shop_key, type(exc).__name__, interval
                )
                rules.metrics.inc("gateway_reconcile_errors_total", shop=shop_key)
                continue
            rules.metrics.inc("gateway_reconcile_orders_total", report.orders, shop=shop_key)
            if report.pushes:
                log.info(
                    "reconciliation of %s: %d orders, %d pushes enqueued (dedupe drops repeats)",
                    shop_key,
                    report.orders,
                    report.pushes,
                )


def start_reconciler(
    settings: Settings,
    clients: Mapping[str, ShopifyAdminClient],
    rules: Rules,
    renderer: PushRenderer,
    store: PushStore,
) -> asyncio.Task[None] | None:
    """The reconciler's task, or None when reconciliation is off or no shop has pushes on."""
    if settings.server.reconcile_interval_seconds <= 0:
        return None
    if settings.app is None and not any(s.push is not None and s.push.enabled for s in settings.shops.values()):
        return None
    return asyncio.create_task(run_reconciler(settings, clients, rules, renderer, store), name="push-reconciler")
