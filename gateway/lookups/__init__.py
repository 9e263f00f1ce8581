"""Lookups: one use case each (dialect-neutral query → Shopify → mappings → result).

    from gateway.lookups.context import SHOP_CONTEXTS
    from gateway.lookups.dispatch import run_lookup

    ctx = request.app[SHOP_CONTEXTS][shop_key]   # each shop's ready ShopContext (built when the app starts)
    result = await run_lookup(ctx, query)   # OrdersResult | PackagesResult | ProductsResult | PropertyResult | OpenApiOrderResult

Raises the failures of `gateway.lookups.types`: InvalidRequest, NotFound("user" | "order"), StoreUnavailable (Shopify
unavailable and nothing cached to serve, or Shopify refused the query / our credentials). `TestQuery` is answered by
the dialect codec, never here.

This package's `__init__` imports nothing, so a module that needs one lookup (or only the types) does not import them
all.
"""
