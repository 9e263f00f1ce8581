"""What a lookup needs about one shop: its settings, its Shopify client, the lookup cache and the push side's state."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateway.cache import LookupCache
from gateway.flows import PushStateReader
from gateway.settings import ShopSettings
from gateway.shopify.client import ShopifyAdminClient, ShopifyError, ShopifyQueryError
from gateway.shopify.queries import load_query
from gateway.shops.registry import watch_shops
from mappings.status_labels import PackageLabels

log = logging.getLogger(__name__)

#: The deadline (absolute loop time) of the lookup being run: every Shopify request of one lookup (a phone lookup's
#: two, a cursor walk and its page) shares it, so the lookup as a whole answers within the shop's deadline_seconds.
#: A context variable because cache loads run in their own tasks, which inherit the caller's context.
LOOKUP_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("lookup_deadline", default=None)

#: Shop facts change rarely (time zone, currency, domain, primary language); webhooks don't cover them, so a plain
#: hour.
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

    async def primary_locale(self) -> str | None:
        """The shop's primary language (`shopLocales`), read once and cached like `shop_info`; None when the shop
        does not say or the app may not read it (no `read_locales` scope: labels then end in English, and the
        Shops page lists the missing scope)."""
        return await self.cache.get_or_load((self.key, "primary_locale"), self._load_primary_locale, ttl=SHOP_INFO_TTL)

    async def _load_primary_locale(self) -> str | None:
        try:
            data = await self.execute("shop_locales", {})
        except ShopifyQueryError as err:
            # cached as "unknown" for the hour: one warning, not one extra request per lookup
            log.warning("shop %s: cannot read its languages (%s); package labels fall back to English", self.key, err)
            return None
        return next((loc.get("locale") for loc in data.get("shopLocales") or () if loc.get("primary")), None)

    async def package_labels(self, customer_locale: str | None) -> PackageLabels:
        """The labels of an order's packages: its own language when we have labels for it, else the shop's primary
        locale (read only then), else English (mappings.status_labels). A Shopify failure reading the shop's
        language is not the lookup's failure: those labels are English this once."""
        labels = self.settings.labels
        shop_locale = None
        if labels.needs_shop_locale(customer_locale):
            try:
                shop_locale = await self.primary_locale()
            except ShopifyError:
                pass
        return labels.for_order(customer_locale, shop_locale)

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


class ShopContexts(dict[str, ShopContext]):
    """Shop key → its ready ShopContext, built on first use (its client then exists: the app has started) and
    dropped when the shop's settings change, like the clients (gateway.shopify.client.ShopifyClients)."""

    def __init__(self) -> None:
        super().__init__()
        self.shops: Mapping[str, ShopSettings] = {}
        self.clients: Mapping[str, ShopifyAdminClient] = {}
        self.cache: LookupCache | None = None
        self.push_state: PushStateReader | None = None
        #: Called with each context built after start-up (the metrics of a newly connected shop's cache).
        self.on_new: Callable[[ShopContext], None] | None = None

    def open(
        self,
        shops: Mapping[str, ShopSettings],
        clients: Mapping[str, ShopifyAdminClient],
        cache: LookupCache,
        push_state: PushStateReader | None,
    ) -> None:
        self.shops, self.clients, self.cache, self.push_state = shops, clients, cache, push_state
        watch_shops(shops, self._forget)

    def _forget(self, key: str) -> None:
        self.pop(key, None)

    def __missing__(self, key: str) -> ShopContext:
        shop = self.shops.get(key)
        if shop is None or self.cache is None:
            raise KeyError(key)
        context = self[key] = ShopContext(
            key=key, settings=shop, client=self.clients[key], cache=self.cache, push_state=self.push_state
        )
        self.cache.configure_shop(key, max_entries=shop.cache.max_entries, stale_if_error=shop.cache.stale_if_error)
        if self.on_new is not None:
            self.on_new(context)
        return context

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        try:
            return self[key]
        except KeyError:
            return default


#: Every shop's ShopContext, built on first use once the app has started (gateway.query.setup_query); handlers and
#: the console take the ready one instead of assembling it from the settings, clients, cache and push state.
SHOP_CONTEXTS = web.AppKey("shop_contexts", ShopContexts)
