"""What a lookup needs about one shop: its settings, its Shopify client, the lookup cache and the push side's state."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateway.cache import LookupCache
from gateway.flows import PushStateReader
from gateway.settings import Settings, ShopSettings
from gateway.shopify.client import ShopifyAdminClient
from gateway.shopify.queries import load_query

#: The deadline (absolute loop time) of the lookup being run: every Shopify request of one lookup (a phone lookup's
#: two, a cursor walk and its page) shares it, so the lookup as a whole answers within the shop's deadline_seconds.
#: A context variable because cache loads run in their own tasks, which inherit the caller's context.
LOOKUP_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("lookup_deadline", default=None)

#: Shop facts change rarely (time zone, currency, domain); webhooks don't cover them, so a plain hour.
SHOP_INFO_TTL = 3600.0


@dataclass(frozen=True, slots=True)
class ShopInfo:
    name: str
    myshopify_domain: str
    currency: str
    timezone: str
    #: The storefront host (primary domain) used in buy/detail links.
    storefront_host: str


@dataclass(slots=True)
class ShopContext:
    key: str
    settings: ShopSettings
    client: ShopifyAdminClient
    cache: LookupCache
    push_state: PushStateReader | None = None

    async def execute(self, document_name: str, variables: dict[str, Any]) -> dict[str, Any]:
        """Run one of our GraphQL documents within the lookup's deadline. Shopify failures propagate as
        `ShopifyError` (a `ShopifyUnavailable` lets the cache serve a stale answer); `run_lookup` turns them into
        `StoreUnavailable`."""
        return await self.client.execute(load_query(document_name), variables, deadline=LOOKUP_DEADLINE.get())

    async def shop_info(self) -> ShopInfo:
        """Name, currency, time zone and storefront host, fetched once and cached."""
        return await self.cache.get_or_load((self.key, "shop_info"), self._load_shop_info, ttl=SHOP_INFO_TTL)

    async def _load_shop_info(self) -> ShopInfo:
        shop = (await self.execute("shop_info", {}))["shop"]
        primary = shop.get("primaryDomain") or {}
        return ShopInfo(
            name=shop.get("name") or "",
            myshopify_domain=shop.get("myshopifyDomain") or self.settings.domain,
            currency=shop.get("currencyCode") or "",
            timezone=shop.get("ianaTimezone") or "UTC",
            storefront_host=primary.get("host") or shop.get("myshopifyDomain") or self.settings.domain,
        )


def shop_contexts(
    settings: Settings,
    clients: dict[str, ShopifyAdminClient],
    cache: LookupCache,
    push_state: PushStateReader | None,
) -> dict[str, ShopContext]:
    """One ready context per configured shop (built once, when the app starts: the clients exist only then)."""
    return {
        key: ShopContext(key=key, settings=shop, client=clients[key], cache=cache, push_state=push_state)
        for key, shop in settings.shops.items()
    }


#: Every configured shop's ShopContext, filled when the app starts (gateway.query.setup_query); handlers and the
#: console take the ready one instead of assembling it from the settings, clients, cache and push state.
SHOP_CONTEXTS = web.AppKey("shop_contexts", dict[str, ShopContext])
