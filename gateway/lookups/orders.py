"""`orders` lookups (PROTOCOL §5): by order number, by email, by phone (through the customer).

One Shopify request per lookup (`orders_search`: the page, the total via `ordersCount`, and for email lookups whether
a customer has that email, all aliased into one document); phone lookups first resolve the customer
(`customers_by_phone`, cached on its own), so two requests on a cold cache.

"User not found" (NotFound "user"): no customer has that phone; for an email, no customer has it AND no order carries
it (guest checkouts have orders but no customer, and they are the shopper's orders all the same). A customer with no
orders gets an empty list.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from gateway.cache_tags import email_tag, order_number_tag, phone_tag
from gateway.lookups.context import ShopContext
from gateway.lookups.paging import CursorSpec, corrected_total, remember_cursor, start_cursor
from gateway.lookups.search import both, order_filter_terms, search_term
from gateway.lookups.types import (
    DEFAULT_ORDER_SORT,
    InvalidRequest,
    NotFound,
    OrderFilter,
    OrdersByAccount,
    OrdersByNumber,
    OrdersResult,
    Page,
    Sort,
    SortField,
)
from mappings.nodes import Node, dig, nodes, strip_hash
from mappings.phone import normalize_phone
from mappings.receipt import order_status, order_to_receipt

# --- query cost ------------------------------------------------------------------------------------------------------
# Shopify prices a query before running it (every object 1, a connection 2 + first × one item), takes that requested
# cost from the shop's bucket when the query starts and holds it while it runs (2000 points on standard plans,
# refilling 100/s; the unused part is refunded at the end). A query must stay ≤ 1000, and what a lookup requests is
# what a burst of lookups holds at once: ten lookups of 200 points fit a standard bucket together, four of 500 do.
# So a list of receipts asks for few line items per order (RECEIPTS_COST_BUDGET) and the rare order with more gets
# one follow-up request for the rest (`complete_line_items`), as the rare order shipped in more parts than the first
# request lists gets one for its packages (`complete_fulfillments`); lookups with fulfillments stay within
# QUERY_COST_BUDGET. The costs below are our documents' pieces, measured with the local store's model of Shopify's
# rules (localstore/cost.py); tests/test_lookups_sandbox.py checks them.
MAX_QUERY_COST = 1000
QUERY_COST_BUDGET = 500
RECEIPTS_COST_BUDGET = 200
QUERY_OVERHEAD = 8  # the orders connection, ordersCount, the customers alias (6), plus a margin
ORDER_BASE_COST = 31  # GatewayOrder without its line items (incl. the lineItems connection's 2)
LINE_ITEM_COST = 10  # one line item of GatewayOrder
#: One GatewayFulfillment: the fulfillment 1, trackingInfo(first: 3) 3, the titles' connection 2 + 10 × 2, the first
#: item's image 2 + 3.
FULFILLMENT_COST = 31
#: GatewayFulfillments' page (`fulfillments(first: 5)`): an order listing that many may have more.
FULFILLMENTS_PAGE = 5
FULFILLMENTS_COST = FULFILLMENTS_PAGE * FULFILLMENT_COST  # GatewayFulfillments: 155
MAX_LINE_ITEMS = 100  # PROTOCOL §5: at most 100 elements
#: Even a page of max_limit receipts lists this many line items per order in the first request (then the budget is
#: exceeded, not 1000); longer orders get the follow-up.
MIN_LINE_ITEMS = 3
#: The follow-up's page: the rest up to 100, within one query's max cost (the order 1, the connection 2).
FOLLOW_UP_LINE_ITEMS = min(MAX_LINE_ITEMS, (MAX_QUERY_COST - 3) // LINE_ITEM_COST)
#: The packages follow-up's page (order_fulfillments.graphql): as many fulfillments as fit within one query's max
#: cost (the order 1): 32, requested 1 + 32 × 31 = 993. An order shipped in more parts lists its first 32; one
#: in fewer asks for as many as its fulfillmentsCount.
FOLLOW_UP_FULFILLMENTS = (MAX_QUERY_COST - 1) // FULFILLMENT_COST

_SORT_KEYS = {
    SortField.CREATED_AT: "CREATED_AT",
    SortField.UPDATED_AT: "UPDATED_AT",
    SortField.PROCESSED_AT: "PROCESSED_AT",
}


def line_items_per_order(orders_per_request: int, *, with_fulfillments: bool = False) -> int:
    """The first request's line-item page: what keeps `orders_per_request` orders within RECEIPTS_COST_BUDGET (with
    fulfillments: QUERY_COST_BUDGET), at least MIN_LINE_ITEMS, at most 100. 16 for a single receipt, 3 each at
    limit 3 (requested 191) and at limit 10; an order with more gets `complete_line_items`."""
    budget = QUERY_COST_BUDGET if with_fulfillments else RECEIPTS_COST_BUDGET
    per_order = (budget - QUERY_OVERHEAD) // max(1, orders_per_request)
    fixed = ORDER_BASE_COST + (FULFILLMENTS_COST if with_fulfillments else 0)
    return max(MIN_LINE_ITEMS, min(MAX_LINE_ITEMS, (per_order - fixed) // LINE_ITEM_COST))


def sort_variables(sort: Sort) -> dict[str, Any]:
    key = _SORT_KEYS.get(sort.field)
    if key is None:
        raise InvalidRequest(f"orders cannot be sorted by {sort.field.value}")
    return {"sortKey": key, "reverse": sort.descending}


def name_matches(node: Node, order_number: str) -> bool:
    """PROTOCOL §5: Order.name equals the number with or without '#', case-insensitive."""
    return strip_hash(node.get("name")).lower() == strip_hash(order_number).lower()


def matches_filter(node: Node, order_filter: OrderFilter) -> bool:
    status = order_status(node)
    if order_filter is OrderFilter.OPEN:
        return status in ("open", "unpaid")
    if order_filter is OrderFilter.UNPAID:
        return status == "unpaid"
    if order_filter is OrderFilter.CLOSED:
        return status in ("closed", "cancelled")
    return True


class LazyTags:
    """Cache tags computed only when an entry is stored (hits never pay for hashing an email)."""

    __slots__ = ("_make",)

    def __init__(self, make: Callable[[], Iterable[str]]) -> None:
        self._make = make

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._make()))


# --- the shared search ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class SearchPage:
    nodes: list[Node]
    has_next_page: bool
    total: int
    customer_found: bool


async def search_orders(
    ctx: ShopContext,
    *,
    base: Any,
    query: str,
    sort: Sort,
    page: Page,
    keep: Callable[[Node], bool],
    ttl: float,
    tags: Iterable[str],
    customer_query: str | None = None,
) -> SearchPage:
    """One page of an order search, each result re-checked with `keep` (Shopify's search is a superset at best)."""
    sorting = sort_variables(sort)
    after: str | None = None
    past_end = False
    if page.page > 1:  # page 1 (most lookups) starts at the beginning: no cursor to find
        after, past_end = await start_cursor(
            ctx, base, page, CursorSpec("orders_cursor", "orders", {"query": query, **sorting})
        )
    variables: dict[str, Any] = {
        "query": query,
        "first": page.limit,
        "after": after,
        **sorting,
        "lineItems": line_items_per_order(page.limit),
    }
    if customer_query is not None:
        variables["customerQuery"] = customer_query
        variables["withCustomer"] = True
    data = await ctx.execute("orders_search", variables)
    connection = data["orders"]
    total = int(dig(data, "ordersCount", "count") or 0)
    # without customerQuery the document leaves the customers alias out
    customer_found = customer_query is not None and bool(nodes(data.get("customers")))
    if past_end:
        return SearchPage([], False, total, customer_found)
    found = nodes(connection)
    kept = await complete_line_items(ctx, [node for node in found if keep(node)])
    info = connection.get("pageInfo") or {}
    remember_cursor(ctx, base, page, info.get("endCursor"), ttl=ttl, tags=tags)
    total = corrected_total(total, page, len(found), len(kept))
    return SearchPage(kept, bool(info.get("hasNextPage")), total, customer_found)


async def orders_named(ctx: ShopContext, name: str, *, first: int, line_items: int | None) -> list[Node]:
    """The orders whose name is `name` (with or without '#', case-insensitive), with their fulfillments; newest first.
    For packages (`line_items=None`: names and fulfillments only) and the open API's name fallback (whole orders, long
    ones completed): no page, no count."""
    query = search_term("name", name)
    if line_items is None:
        data = await ctx.execute("orders_packages", {"query": query, "first": first})
        return await complete_fulfillments(ctx, [node for node in nodes(data["orders"]) if name_matches(node, name)])
    data = await ctx.execute("orders_by_name", {"query": query, "first": first, "lineItems": line_items})
    return await complete_line_items(ctx, [node for node in nodes(data["orders"]) if name_matches(node, name)])


def _incomplete(order: Node) -> bool:
    """The first request did not bring all the order's line items (up to 100)."""
    page = order.get("lineItems") or {}
    info = page.get("pageInfo") or {}
    return bool(info.get("hasNextPage") and info.get("endCursor") and order.get("id")) and (
        len(nodes(page)) < MAX_LINE_ITEMS
    )


async def complete_line_items(ctx: ShopContext, orders: list[Node]) -> list[Node]:
    """Orders whose first request did not bring all their line items get the rest, up to 100 in all, with one
    follow-up request each (run together); the others cost nothing more. Returns `orders`, completed in place."""

    async def complete(order: Node) -> None:
        page = order.get("lineItems") or {}
        have = list(nodes(page))
        info = page.get("pageInfo") or {}
        wanted = min(FOLLOW_UP_LINE_ITEMS, MAX_LINE_ITEMS - len(have))
        data = await ctx.execute("order_line_items", {"id": order["id"], "first": wanted, "after": info["endCursor"]})
        rest = dig(data, "order", "lineItems") or {}
        order["lineItems"] = {"nodes": have + list(nodes(rest)), "pageInfo": rest.get("pageInfo") or {}}

    long_orders = [order for order in orders if _incomplete(order)]
    if long_orders:
        await asyncio.gather(*(complete(order) for order in long_orders))
    return orders


async def complete_fulfillments(ctx: ShopContext, orders: list[Node]) -> list[Node]:
    """Orders with more fulfillments than their first page lists (`fulfillmentsCount` says how many; the list has no
    cursor) get their list read again from the start, as many as there are up to FOLLOW_UP_FULFILLMENTS, one
    follow-up request each (run together); the others cost nothing more. Without a count (a document that does not
    ask for it), a full page (FULFILLMENTS_PAGE) counts as maybe more. Only the packages reply needs every
    fulfillment (the open API's record statuses read the first page). Returns `orders`, completed in place."""

    async def complete(order: Node, first: int) -> None:
        data = await ctx.execute("order_fulfillments", {"id": order["id"], "first": first})
        listed = dig(data, "order", "fulfillments")
        if listed is not None:  # None: the order is gone since the first request; keep what it listed
            order["fulfillments"] = listed

    wanted: list[tuple[Node, int]] = []
    for order in orders:
        listed = len(order.get("fulfillments") or ())
        count = dig(order, "fulfillmentsCount", "count")
        total = count if isinstance(count, int) else (FOLLOW_UP_FULFILLMENTS if listed >= FULFILLMENTS_PAGE else 0)
        if order.get("id") and total > listed:
            wanted.append((order, min(total, FOLLOW_UP_FULFILLMENTS)))
    if wanted:
        await asyncio.gather(*(complete(order, first) for order, first in wanted))
    return orders


def _first_page_key(query: Any) -> Any:
    """The query with page 1: the identity of a search across its pages (cursor keys)."""
    return dataclasses.replace(query, page=Page(1, query.page.limit))


# --- by order number -----------------------------------------------------------------------------------------------


async def orders_by_number(ctx: ShopContext, query: OrdersByNumber) -> OrdersResult:
    number = strip_hash(query.order_number)
    if not number:
        raise InvalidRequest("order_number is empty")
    tags = (order_number_tag(number),)

    async def load() -> OrdersResult:
        found = await search_orders(
            ctx,
            base=_first_page_key(query),
            query=search_term("name", number),
            sort=DEFAULT_ORDER_SORT,
            page=query.page,
            keep=lambda node: name_matches(node, number),
            ttl=ctx.settings.cache.orders,
            tags=tags,
        )
        if found.total == 0:
            raise NotFound("order")
        receipts = [order_to_receipt(node) for node in found.nodes]
        return OrdersResult(receipts, found.has_next_page, found.total)

    return await ctx.cache.get_or_load((ctx.key, query), load, ttl=ctx.settings.cache.orders, tags=tags, kind="orders")


# --- by account ----------------------------------------------------------------------------------------------------


async def orders_by_account(ctx: ShopContext, query: OrdersByAccount) -> OrdersResult:
    # The query holds exactly one of them, the email already lower-cased and the phone in E.164 (OrdersByAccount).
    if query.email:
        return await _orders_by_email(ctx, query, query.email)
    assert query.phone is not None
    return await _orders_by_phone(ctx, query, query.phone)


def _account_keep(order_filter: OrderFilter, belongs: Callable[[Node], bool]) -> Callable[[Node], bool]:
    return lambda node: belongs(node) and matches_filter(node, order_filter)


async def _orders_by_email(ctx: ShopContext, query: OrdersByAccount, email: str) -> OrdersResult:
    tags = LazyTags(lambda: (email_tag(email),))
    mask = ctx.settings.privacy.mask_account_lookups

    async def load() -> OrdersResult:
        found = await search_orders(
            ctx,
            base=_first_page_key(query),
            query=both(search_term("email", email), order_filter_terms(query.filter)),
            sort=query.sort,
            page=query.page,
            keep=_account_keep(query.filter, lambda node: (node.get("email") or "").strip().lower() == email),
            ttl=ctx.settings.cache.orders,
            tags=tags,
            customer_query=search_term("email", email),
        )
        if not found.customer_found and found.total == 0 and not await _email_has_orders(ctx, query, email):
            raise NotFound("user")
        receipts = [order_to_receipt(node, mask_personal=mask) for node in found.nodes]
        return OrdersResult(receipts, found.has_next_page, found.total)

    return await ctx.cache.get_or_load((ctx.key, query), load, ttl=ctx.settings.cache.orders, tags=tags, kind="orders")


async def _email_has_orders(ctx: ShopContext, query: OrdersByAccount, email: str) -> bool:
    """A guest (no customer record) with orders outside the current filter is still a known user. Only asked when the
    filtered search found nothing and no customer exists, so the usual lookup stays one request."""
    if query.filter is OrderFilter.ALL:
        return False
    data = await ctx.execute(
        "orders_cursor",
        {"query": search_term("email", email), "first": 1, "after": None, "sortKey": "ID", "reverse": False},
    )
    return bool(data["orders"]["pageInfo"].get("endCursor"))


async def customers_with_phone(ctx: ShopContext, phone: str) -> tuple[str, ...]:
    """Numeric ids of the customers whose default phone is `phone` (E.164), re-checked after Shopify's search."""

    async def load() -> tuple[str, ...]:
        data = await ctx.execute("customers_by_phone", {"query": search_term("phone", phone)})
        return tuple(
            str(node["legacyResourceId"])
            for node in nodes(data["customers"])
            if normalize_phone(dig(node, "defaultPhoneNumber", "phoneNumber") or "") == phone
        )

    return await ctx.cache.get_or_load(
        (ctx.key, "customers_by_phone", phone),
        load,
        ttl=ctx.settings.cache.customer,
        tags=LazyTags(lambda: (phone_tag(phone),)),
        kind="customers",
    )


async def _orders_by_phone(ctx: ShopContext, query: OrdersByAccount, phone: str) -> OrdersResult:
    customer_ids = await customers_with_phone(ctx, phone)
    if not customer_ids:
        raise NotFound("user")
    ids = set(customer_ids)
    tags = LazyTags(lambda: (phone_tag(phone), *(f"customer:{cid}" for cid in customer_ids)))
    mask = ctx.settings.privacy.mask_account_lookups
    # ids come from Shopify and are digits only; they go into the search string as they are
    by_customer = " OR ".join(f"customer_id:{int(cid)}" for cid in customer_ids)

    async def load() -> OrdersResult:
        found = await search_orders(
            ctx,
            base=_first_page_key(query),
            query=both(f"({by_customer})", order_filter_terms(query.filter)),
            sort=query.sort,
            page=query.page,
            keep=_account_keep(query.filter, lambda node: str(dig(node, "customer", "legacyResourceId")) in ids),
            ttl=ctx.settings.cache.orders,
            tags=tags,
        )
        receipts = [order_to_receipt(node, mask_personal=mask) for node in found.nodes]
        return OrdersResult(receipts, found.has_next_page, found.total)

    return await ctx.cache.get_or_load((ctx.key, query), load, ttl=ctx.settings.cache.orders, tags=tags, kind="orders")
