"""`property` lookups (PROTOCOL §7): every distinct non-empty product type or vendor of the products `products` would
show (active and published to the online store), sorted case-insensitively.

One scan of the visible products (`visible_product_facets`, 250 a page) answers both search types, so both are cached
together under one key: asking for vendors after product types costs no second scan. Shopify's root `productTypes` /
`productVendors` would be cheaper but list the values of unpublished and draft products too.
"""

from __future__ import annotations

from gateway.cache_tags import product_tags
from gateway.lookups.context import ShopContext
from gateway.lookups.products import VISIBLE
from gateway.lookups.types import InvalidRequest, PropertyQuery, PropertyResult

#: search_type → the product field it lists
FIELDS = {"product_type": "productType", "vendor": "vendor"}
#: A runaway guard: 20 pages are the first 5,000 visible products.
MAX_PAGES = 20
_CACHE_KEY = "visible product facets"


def _sorted(values: set[str]) -> PropertyResult:
    return PropertyResult(sorted(values, key=lambda v: (v.casefold(), v)))


async def find_property(ctx: ShopContext, query: PropertyQuery) -> PropertyResult:
    if query.search_type not in FIELDS:
        raise InvalidRequest("search_type must be product_type or vendor")

    async def load() -> dict[str, PropertyResult]:
        found: dict[str, set[str]] = {search_type: set() for search_type in FIELDS}
        after: str | None = None
        for _ in range(MAX_PAGES):
            data = await ctx.execute("visible_product_facets", {"query": VISIBLE, "after": after})
            connection = data["products"] or {}
            for node in connection.get("nodes") or []:
                for search_type, field in FIELDS.items():
                    value = (node.get(field) or "").strip()
                    if value:
                        found[search_type].add(value)
            info = connection.get("pageInfo") or {}
            after = info.get("endCursor")
            if not info.get("hasNextPage") or not after:
                break
        return {search_type: _sorted(values) for search_type, values in found.items()}

    facets = await ctx.cache.get_or_load(
        (ctx.key, _CACHE_KEY), load, ttl=ctx.settings.cache.property, tags=product_tags(), kind="property"
    )
    return facets[query.search_type]
