"""`property` lookups (PROTOCOL §7): every distinct non-empty product type or vendor, sorted case-insensitively.

Uses the root `productTypes` / `productVendors` connections (the `Shop` fields are deprecated): one request for a shop
with up to 250 values, one more per further 250."""

from __future__ import annotations

from gateway.cache_tags import product_tags
from gateway.lookups.context import ShopContext
from gateway.lookups.types import InvalidRequest, PropertyQuery, PropertyResult

_DOCUMENTS = {"product_type": ("product_types", "productTypes"), "vendor": ("product_vendors", "productVendors")}
#: A runaway guard: 20 pages are 5,000 distinct values.
MAX_PAGES = 20


async def find_property(ctx: ShopContext, query: PropertyQuery) -> PropertyResult:
    if query.search_type not in _DOCUMENTS:
        raise InvalidRequest("search_type must be product_type or vendor")
    document, field = _DOCUMENTS[query.search_type]

    async def load() -> PropertyResult:
        values: set[str] = set()
        after: str | None = None
        for _ in range(MAX_PAGES):
            data = await ctx.execute(document, {"after": after})
            connection = data[field] or {}
            values.update(v.strip() for v in connection.get("nodes") or [] if v and v.strip())
            info = connection.get("pageInfo") or {}
            after = info.get("endCursor")
            if not info.get("hasNextPage") or not after:
                break
        return PropertyResult(sorted(values, key=lambda v: (v.casefold(), v)))

    return await ctx.cache.get_or_load(
        (ctx.key, query), load, ttl=ctx.settings.cache.property, tags=product_tags(), kind="property"
    )
