"""`packages` lookups (PROTOCOL §6): by order number, or by package number = a fulfillment name ("1001.1") or a
tracking number (through the push side's tracking index: Shopify cannot search by tracking number).

The packages of an order are fetched once (`orders_packages` by name: names and fulfillments) and cached as a list; every
page and every package-number lookup of that order reads the same entry. That request lists an order's first 5
fulfillments and its `fulfillmentsCount`; an order with more gets one follow-up request for its whole list
(`complete_fulfillments`), so an order shipped in 7 parts shows its 7 packages.

Each order's labels are in its shopper's language (`customerLocale`, read by that same request; docs/labels.md): the
shop's primary locale is read, once per shop and hour, only for an order whose own language has no labels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.cache_tags import order_number_tag
from gateway.lookups.context import ShopContext
from gateway.lookups.orders import orders_named
from gateway.lookups.types import InvalidRequest, NotFound, PackagesQuery, PackagesResult, Page
from mappings.models import Package
from mappings.nodes import strip_hash
from mappings.package import order_to_packages

#: Orders sharing one name (names are not unique) fetched for a package lookup.
MAX_ORDERS_PER_NAME = 3

_FULFILLMENT_NAME = re.compile(r"(?P<order>.+)\.(?P<index>\d+)")


@dataclass(frozen=True, slots=True)
class OrderPackages:
    packages: list[Package]
    #: The language the labels are in (of the newest order, when several share the name): for the console.
    label_language: str


async def packages_of_order(ctx: ShopContext, order_number: str) -> OrderPackages | None:
    """Every package of the order(s) named `order_number`; None when no order has that name."""
    number = strip_hash(order_number)
    tags = (order_number_tag(number),)

    async def load() -> OrderPackages | None:
        # packages read names, languages and fulfillments only (orders_packages.graphql): the lookup requests little
        found = await orders_named(ctx, number, first=MAX_ORDERS_PER_NAME, line_items=None)
        if not found:
            return None
        packages: list[Package] = []
        label_language = ""
        for node in found:
            labels = await ctx.package_labels(node.get("customerLocale"))
            label_language = label_language or labels.language
            packages.extend(order_to_packages(node, labels))
        return OrderPackages(packages, label_language)

    return await ctx.cache.get_or_load(
        (ctx.key, "packages_of", number.lower()), load, ttl=ctx.settings.cache.packages, tags=tags, kind="packages"
    )


def _page(packages: list[Package], page: Page, label_language: str) -> PackagesResult:
    start = (page.page - 1) * page.limit
    return PackagesResult(
        packages[start : start + page.limit], start + page.limit < len(packages), len(packages), label_language
    )


async def find_packages(ctx: ShopContext, query: PackagesQuery) -> PackagesResult:
    if query.order_number:
        found = await packages_of_order(ctx, query.order_number)
        if found is None:
            raise NotFound("order")
        return _page(found.packages, query.page, found.label_language)

    wanted = strip_hash(query.package_number or "")
    if not wanted:
        raise InvalidRequest("package_number is empty")
    # 1. a fulfillment name: "<order name>.<n>"
    match = _FULFILLMENT_NAME.fullmatch(wanted)
    if match:
        found = await packages_of_order(ctx, match.group("order"))
        chosen = [p for p in found.packages if p.package_number.lower() == wanted.lower()] if found else []
        if found and chosen:
            return _page(chosen, query.page, found.label_language)
    # 2. a tracking number, through the tracking index the push side keeps
    if ctx.push_state is not None:
        order_name = await ctx.push_state.order_name_for_tracking(ctx.key, wanted)
        if order_name:
            found = await packages_of_order(ctx, order_name)
            chosen = [p for p in found.packages if p.tracking_number == wanted] if found else []
            if found and chosen:
                return _page(chosen, query.page, found.label_language)
    raise NotFound("order")
