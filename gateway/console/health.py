"""The Shops page's facts about one shop: is Shopify reachable with our credentials, what it granted and served,
are our webhook subscriptions in place, when did the last webhook come, how the cache and Shopify are doing.

Two Shopify requests per shop and page view: `app_installation` (reachability, granted scopes and the API version
served, in one) and the subscription listing that `gateway webhooks list/sync` makes (`sync_shop(create=False)`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.keys import SETTINGS
from gateway.ops import get_metrics
from gateway.push.store import PUSH_STORE
from gateway.push.subscriptions import TOPICS, SyncReport, sync_shop, webhook_uri
from gateway.settings import ClientCredentialsAuth, InstalledAppAuth
from gateway.shopify.auth import ClientCredentialsTokenProvider
from gateway.shopify.client import SHOPIFY_CLIENTS, ShopifyError
from gateway.shopify.queries import load_query
from gateway.shops.tokens import InstalledTokenProvider

#: The Admin API scopes the gateway needs, and what each is for (README "Connecting a real store").
NEEDED_SCOPES: dict[str, str] = {
    "read_orders": "orders, receipts and their webhooks",
    "read_all_orders": "orders older than 60 days",
    "read_products": "product lookups and product webhooks",
    "read_customers": "phone lookups and push recipients",
    "read_fulfillments": "packages and fulfillment webhooks",
    "read_locales": "the shop's language, for package labels of orders in a language without labels",
}

SHOPIFY_ERROR_KINDS = ("unavailable", "throttled", "auth", "query")


def satisfied(needed: str, granted: set[str]) -> bool:
    """Shopify's write scopes include the read scope of the same resource."""
    return needed in granted or needed.replace("read_", "write_", 1) in granted


@dataclass
class TopicState:
    topic: str
    state: str  # present | missing | drifted
    elsewhere: list[str] = field(default_factory=list)  # where a drifted topic points instead


@dataclass
class ShopHealth:
    key: str
    domain: str
    dialect: str
    reachable: bool = False
    problem: str = ""
    token_kind: str = ""
    token_expires_at: float | None = None
    api_version_configured: str = ""
    api_version_served: str | None = None
    scopes_granted: list[str] = field(default_factory=list)
    scopes_missing: list[tuple[str, str]] = field(default_factory=list)  # (scope, what it is for)
    topics: list[TopicState] = field(default_factory=list)
    webhook_uri: str = ""
    subscriptions_problem: str = ""
    installed: bool = True
    last_webhook_at: float | None = None
    watermark: str | None = None
    cache_hits: float = 0
    cache_misses: float = 0
    shopify_requests: float = 0
    #: the shop's query budget as the gateway's copy has it: (points available, bucket size, restore per second)
    query_points: tuple[float, float, float] | None = None
    throttled: float = 0
    shopify_errors: dict[str, float] = field(default_factory=dict)

    @property
    def hit_ratio(self) -> float | None:
        total = self.cache_hits + self.cache_misses
        return self.cache_hits / total if total else None

    @property
    def missing_topics(self) -> list[TopicState]:
        return [t for t in self.topics if t.state != "present"]

    @property
    def problems(self) -> list[str]:
        """Why the shop needs attention, in a few words each."""
        found = []
        if not self.reachable:
            found.append("Shopify not reachable")
        if self.scopes_missing:
            found.append("missing scopes: " + ", ".join(s for s, _ in self.scopes_missing))
        if self.missing_topics:
            found.append(f"{len(self.missing_topics)} webhook subscription(s) missing or drifted")
        if self.subscriptions_problem:
            found.append("webhook subscriptions could not be listed")
        if not self.installed:
            found.append("app uninstalled: pushes stopped")
        return found

    @property
    def healthy(self) -> bool:
        return (
            self.reachable
            and not self.scopes_missing
            and not self.missing_topics
            and not self.subscriptions_problem
            and self.installed
        )


def _dialect_label(shop: Any) -> str:
    return f"JoinChat v{shop.joinchat_version}" if shop.dialect == "joinchat" else "Meetbot"


def topic_states(report: SyncReport) -> list[TopicState]:
    drifted: dict[str, list[str]] = {}
    for topic, uri in report.drift:
        drifted.setdefault(topic, []).append(uri)
    states = []
    for topic in TOPICS:
        if topic in report.present or topic in report.created:
            states.append(TopicState(topic, "present"))
        elif topic in drifted:
            states.append(TopicState(topic, "drifted", drifted[topic]))
        else:
            states.append(TopicState(topic, "missing"))
    return states


async def shop_health(app: web.Application, key: str) -> ShopHealth:
    settings = app[SETTINGS]
    shop = settings.shops[key]
    client = app[SHOPIFY_CLIENTS][key]
    store = app[PUSH_STORE]
    metrics = get_metrics(app)
    health = ShopHealth(key=key, domain=shop.domain, dialect=_dialect_label(shop))
    health.api_version_configured = shop.api_version
    health.webhook_uri = webhook_uri(settings)
    if isinstance(shop.auth, ClientCredentialsAuth):
        health.token_kind = "client credentials (renewed automatically)"
    elif isinstance(shop.auth, InstalledAppAuth):
        health.token_kind = "expiring offline token from the install (refreshed before it expires)"
    else:
        health.token_kind = "static Admin API token (does not expire)"
    try:
        data = await client.execute(load_query("app_installation"))
    except ShopifyError as err:
        health.problem = str(err) or type(err).__name__  # our own messages: statuses and kinds, never a token
    else:
        health.reachable = True
        scopes = (data.get("currentAppInstallation") or {}).get("accessScopes") or []
        health.scopes_granted = sorted(str(s.get("handle")) for s in scopes if isinstance(s, dict))
        granted = set(health.scopes_granted)
        health.scopes_missing = [(s, why) for s, why in NEEDED_SCOPES.items() if not satisfied(s, granted)]
    health.api_version_served = client.served_api_version
    if isinstance(client.tokens, ClientCredentialsTokenProvider | InstalledTokenProvider):
        health.token_expires_at = client.tokens.expires_at
    if health.reachable:
        report = await sync_shop(key, client, health.webhook_uri, create=False)
        if report.errors:
            health.subscriptions_problem = "; ".join(report.errors)
        else:
            health.topics = topic_states(report)
    health.installed, health.last_webhook_at, health.watermark = await asyncio.gather(
        store.shops.shop_installed(key), store.events.last_event_at(key), store.shops.get_watermark(key)
    )
    health.cache_hits = metrics.total("lookup_cache_shop_hits_total", shop=key)
    health.cache_misses = metrics.total("lookup_cache_shop_misses_total", shop=key)
    health.shopify_requests = metrics.total("shopify_requests_total", shop=key)
    health.throttled = metrics.total("shopify_throttled_total", shop=key)
    if health.reachable:  # the answer just now told the bucket
        points = await client.budget.view()
        health.query_points = (points.available, points.maximum, points.restore_rate)
    health.shopify_errors = {k: metrics.value("shopify_errors_total", shop=key, kind=k) for k in SHOPIFY_ERROR_KINDS}
    return health


async def all_shops_health(app: web.Application, keys: list[str] | None = None) -> list[ShopHealth]:
    """Every shop's health (or those of `keys`), checked at once."""
    wanted = list(app[SETTINGS].shops) if keys is None else keys
    return list(await asyncio.gather(*(shop_health(app, key) for key in wanted)))
