"""Lookups: one use case each (dialect-neutral query → Shopify → mappings → result).

    from gateway.lookups import ShopContext, run_lookup

    ctx = ShopContext.from_app(request.app, shop_key)
    result = await run_lookup(ctx, query)   # OrdersResult | PackagesResult | ProductsResult | PropertyResult | OpenApiOrderResult

Raises the failures of `gateway.lookups.types`: InvalidRequest, NotFound("user" | "order"), StoreUnavailable (Shopify
unavailable and nothing cached to serve, or Shopify refused the query / our credentials). `TestQuery` is answered by
the dialect codec, never here.

The names are resolved lazily: `gateway.keys` imports `gateway.lookups.types`, and `gateway.cache` imports
`gateway.keys`, so importing the lookups (which use the cache) eagerly here would make an import cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.lookups.context import ShopContext
    from gateway.lookups.dispatch import LookupResult, run_lookup

__all__ = ["LookupResult", "ShopContext", "run_lookup"]


def __getattr__(name: str) -> Any:
    if name == "ShopContext":
        from gateway.lookups.context import ShopContext

        return ShopContext
    if name in ("run_lookup", "LookupResult"):
        from gateway.lookups import dispatch

        return getattr(dispatch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
