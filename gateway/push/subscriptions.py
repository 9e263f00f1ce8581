"""Webhook subscriptions (PROTOCOL §9): the gateway creates and repairs its own, idempotently, and reports drift.

`sync_shop` lists the shop's subscriptions and creates every topic the gateway needs that does not already point at
`{server.public_url}/webhooks/shopify`. Subscriptions of those topics pointing elsewhere are reported as drift (they
may belong to an old public URL); they are left alone. The compliance topics (customers/data_request,
customers/redact, shop/redact) cannot be subscribed through the API: they are set in the app's configuration
(Dev Dashboard / shopify.app.toml) to the same URL.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.push.store import ShopLedger
from gateway.settings import Settings
from gateway.shopify.queries import load_query

log = logging.getLogger(__name__)

#: Topics the gateway subscribes to (GraphQL enum names); REST names are the lower-case slash form.
TOPICS = (
    "ORDERS_CREATE",
    "ORDERS_PAID",
    "ORDERS_UPDATED",
    "ORDERS_CANCELLED",
    "FULFILLMENTS_CREATE",
    "FULFILLMENTS_UPDATE",
    "FULFILLMENT_EVENTS_CREATE",
    "PRODUCTS_CREATE",
    "PRODUCTS_UPDATE",
    "PRODUCTS_DELETE",
    "APP_UNINSTALLED",
    "APP_SCOPES_UPDATE",
)

WEBHOOK_PATH = "/webhooks/shopify"


def webhook_uri(settings: Settings) -> str:
    return settings.server.public_url.rstrip("/") + WEBHOOK_PATH


@dataclass
class SyncReport:
    shop_key: str
    uri: str
    present: list[str] = field(default_factory=list)  # topics already pointing at us
    created: list[str] = field(default_factory=list)
    drift: list[tuple[str, str]] = field(default_factory=list)  # (topic, uri) of ours pointing elsewhere
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        parts = [f"{self.shop_key}: {len(self.present)} present, {len(self.created)} created"]
        if self.created:
            parts.append("created " + ", ".join(self.created))
        if self.drift:
            parts.append("drift: " + ", ".join(f"{t} → {u}" for t, u in self.drift))
        if self.errors:
            parts.append("errors: " + "; ".join(self.errors))
        return "; ".join(parts)


async def list_subscriptions(client: Any) -> list[dict[str, Any]]:
    """Every subscription of the shop (paginated)."""
    found: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        data = await client.execute(load_query("push_webhook_subscriptions"), {"after": after})
        conn = data.get("webhookSubscriptions") or {}
        found += [n for n in conn.get("nodes") or () if isinstance(n, dict)]
        page = conn.get("pageInfo") or {}
        if not page.get("hasNextPage") or not page.get("endCursor"):
            return found
        after = page["endCursor"]


async def sync_shop(shop_key: str, client: Any, uri: str, *, create: bool = True) -> SyncReport:
    """Create the missing subscriptions (when `create`), report the rest. Never raises for Shopify errors."""
    report = SyncReport(shop_key, uri)
    try:
        existing = await list_subscriptions(client)
    except Exception as exc:
        report.errors.append(f"listing failed: {type(exc).__name__}: {exc}")
        return report
    ours = {(s.get("topic"), s.get("uri")) for s in existing}
    for topic in TOPICS:
        if (topic, uri) in ours:
            report.present.append(topic)
            continue
        report.drift += [(topic, str(u)) for t, u in sorted(ours, key=str) if t == topic]
        if not create:
            continue
        try:
            data = await client.execute(load_query("push_webhook_subscription_create"), {"topic": topic, "uri": uri})
        except Exception as exc:
            report.errors.append(f"{topic}: {type(exc).__name__}: {exc}")
            continue
        result = data.get("webhookSubscriptionCreate") or {}
        errors = result.get("userErrors") or []
        if errors:
            report.errors.append(f"{topic}: " + "; ".join(str(e.get("message")) for e in errors))
        else:
            report.created.append(topic)
    return report


async def repair_shop(shop_key: str, client: Any, uri: str, store: ShopLedger | None = None) -> SyncReport:
    """`gateway webhooks sync` for one shop (also the console's "repair" button): create what is missing, and mark
    the shop installed again when that worked."""
    report = await sync_shop(shop_key, client, uri)
    if report.ok and store is not None:
        # A successful sync means the app is installed again: pushes may resume.
        await store.set_shop_installed(shop_key, True)
    return report


def fingerprint(uri: str) -> str:
    """What a shop's complete set of subscriptions is remembered by: our topics and where they point. A new public
    URL or a topic added in a new release changes it, so the next start checks every shop again."""
    return hashlib.sha256(("\n".join((uri, *TOPICS))).encode()).hexdigest()[:16]


class SyncStates(Protocol):
    """Where the start-up sync remembers which shops' subscriptions it found complete (gateway.shops' store)."""

    async def sync_states(self) -> dict[str, str]: ...

    async def set_sync_state(self, key: str, fingerprint: str | None) -> None: ...


#: Pause between two shops of the start-up sync: with many shops, Shopify sees a trickle, never a burst.
SYNC_PACE_SECONDS = 0.05


def start_sync_task(
    settings: Settings,
    clients: Mapping[str, Any],
    states: SyncStates,
    *,
    eligible: Callable[[str], bool] = lambda key: True,
) -> asyncio.Task[None] | None:
    """Start-up sync (server.sync_webhooks_on_start) of the shops whose subscriptions are unknown or drifted: a shop
    whose subscriptions were last found complete for today's URL and topics (`fingerprint`) is not asked. One shop
    at a time (one request in flight), `SYNC_PACE_SECONDS` apart; failed shops are retried with backoff. Runs in the
    background and never stops the gateway from serving queries. `clients` is the app's `SHOPIFY_CLIENTS`."""
    if not settings.server.sync_webhooks_on_start:
        return None

    async def run() -> None:
        uri = webhook_uri(settings)
        expected = fingerprint(uri)
        try:
            known = await states.sync_states()
        except Exception as exc:  # the store is away: check every shop
            log.warning("webhook subscriptions: sync states unreadable (%s); checking every shop", type(exc).__name__)
            known = {}
        pending = [key for key in list(settings.shops) if known.get(key) != expected]
        if known:
            log.info("webhook subscriptions: %d of %d shops to check", len(pending), len(settings.shops))
        delay = 5.0
        while pending:
            still: list[str] = []
            for shop_key in pending:
                if shop_key not in settings.shops or not eligible(shop_key):
                    continue  # removed, or not connected now (it is synced again when it is)
                client = clients.get(shop_key)
                if client is None:
                    still.append(shop_key)
                    continue
                report = await sync_shop(shop_key, client, uri)
                if report.ok:
                    log.info("webhook subscriptions: %s", report.summary())
                    try:
                        await states.set_sync_state(shop_key, expected)
                    except Exception as exc:  # only means the next start checks this shop again
                        log.warning("webhook subscriptions: state of %s not kept (%s)", shop_key, type(exc).__name__)
                else:
                    log.warning("webhook subscriptions: %s (will retry)", report.summary())
                    still.append(shop_key)
                await asyncio.sleep(SYNC_PACE_SECONDS)
            pending = still
            if pending:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 600.0)

    return asyncio.create_task(run(), name="push-webhook-sync")
