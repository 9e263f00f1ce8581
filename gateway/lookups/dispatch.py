"""`run_lookup`: dispatch a dialect-neutral query to its lookup (see the package docstring).

    ctx = request.app[SHOP_CONTEXTS][shop_key]   # each shop's ready ShopContext (built when the app starts)
    result = await run_lookup(ctx, query)   # OrdersResult | PackagesResult | ProductsResult | PropertyResult | OpenApiOrderResult

Raises the failures of `gateway.lookups.types`: InvalidRequest, NotFound("user" | "order"), StoreUnavailable (Shopify
unavailable and nothing cached to serve, or Shopify refused the query / our credentials). `TestQuery` is answered by
the dialect codec, never here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, overload

from gateway.lookups.context import LOOKUP_DEADLINE, ShopContext
from gateway.lookups.open_api import find_open_api_order
from gateway.lookups.orders import orders_by_account, orders_by_number
from gateway.lookups.packages import find_packages
from gateway.lookups.products import find_products
from gateway.lookups.properties import find_property
from gateway.lookups.types import (
    OpenApiOrderQuery,
    OpenApiOrderResult,
    OrdersByAccount,
    OrdersByNumber,
    OrdersResult,
    PackagesQuery,
    PackagesResult,
    ProductsQuery,
    ProductsResult,
    PropertyQuery,
    PropertyResult,
    Query,
    StoreUnavailable,
)
from gateway.shopify.client import ShopifyAuthError, ShopifyError, ShopifyQueryError, ShopifyUnavailable

log = logging.getLogger(__name__)

LookupResult = OrdersResult | PackagesResult | ProductsResult | PropertyResult | OpenApiOrderResult

_HANDLERS: dict[type, Callable[[ShopContext, Any], Awaitable[LookupResult]]] = {
    OrdersByNumber: orders_by_number,
    OrdersByAccount: orders_by_account,
    PackagesQuery: find_packages,
    ProductsQuery: find_products,
    PropertyQuery: find_property,
    OpenApiOrderQuery: find_open_api_order,
}


def store_unavailable(shop_key: str, lookup: str, err: ShopifyError) -> StoreUnavailable:
    """The one place a Shopify failure becomes a lookup failure (the dialects answer 503), logged without variables
    or Shopify's messages about them (PII). It runs after the cache, so an outage is only reported here when no stale
    answer could cover it."""
    if isinstance(err, ShopifyUnavailable):
        log.warning("shop %s: %s lookup failed: %s", shop_key, lookup, type(err).__name__)
    elif isinstance(err, ShopifyAuthError):
        log.error("shop %s: Shopify refused our credentials for a %s lookup: %s", shop_key, lookup, err)
    elif isinstance(err, ShopifyQueryError):
        # codes only: a GraphQL error message may echo a variable's value (an email, a phone)
        codes = sorted({str((e.get("extensions") or {}).get("code", "")) for e in err.errors})
        log.error("shop %s: Shopify rejected a %s lookup (error codes %s)", shop_key, lookup, codes)
    else:
        log.error("shop %s: Shopify failed on a %s lookup: %s", shop_key, lookup, err)
    return StoreUnavailable()


@overload
async def run_lookup(ctx: ShopContext, query: OrdersByNumber | OrdersByAccount) -> OrdersResult: ...
@overload
async def run_lookup(ctx: ShopContext, query: PackagesQuery) -> PackagesResult: ...
@overload
async def run_lookup(ctx: ShopContext, query: ProductsQuery) -> ProductsResult: ...
@overload
async def run_lookup(ctx: ShopContext, query: PropertyQuery) -> PropertyResult: ...
@overload
async def run_lookup(ctx: ShopContext, query: OpenApiOrderQuery) -> OpenApiOrderResult: ...
@overload
async def run_lookup(ctx: ShopContext, query: Query) -> LookupResult: ...


async def run_lookup(ctx: ShopContext, query: Query) -> LookupResult:
    kind = type(query)
    handler = _HANDLERS.get(kind)
    if handler is None:
        raise TypeError(f"no lookup for {kind.__name__} (TestQuery is answered by the codec)")
    # the lookup's deadline (see LOOKUP_DEADLINE): now + the shop's deadline_seconds
    deadline = LOOKUP_DEADLINE.set(asyncio.get_running_loop().time() + ctx.settings.deadline_seconds)
    try:
        return await handler(ctx, query)
    except ShopifyError as err:
        raise store_unavailable(ctx.key, kind.__name__, err) from err
    finally:
        LOOKUP_DEADLINE.reset(deadline)


__all__ = ["LookupResult", "ShopContext", "run_lookup", "store_unavailable"]
