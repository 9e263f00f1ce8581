"""`products` lookups (PROTOCOL §7): OR of title (fuzzy, word prefixes) / product_type / vendor (exact, case-insensitive),
only active products published to the online store, one request (`products_search` with `productsCount`)."""

from __future__ import annotations

import dataclasses

from gateway.cache_tags import product_tags
from gateway.lookups.context import ShopContext
from gateway.lookups.paging import CursorSpec, corrected_total, remember_cursor, start_cursor
from gateway.lookups.search import both, search_term, title_prefix_terms, title_words
from gateway.lookups.types import InvalidRequest, Page, ProductsQuery, ProductsResult, Sort, SortField
from mappings.nodes import Node, dig, nodes
from mappings.product import product_to_product

_SORT_KEYS = {
    SortField.TITLE: "TITLE",
    SortField.CREATED_AT: "CREATED_AT",
    SortField.UPDATED_AT: "UPDATED_AT",
    SortField.RELEVANCE: "RELEVANCE",
}
#: Whatever the user asks, only these products exist for the bot.
VISIBLE = "status:active AND published_status:published"


def title_matches(title_query: str, product_title: str) -> bool:
    """Every word of the query prefix-matches a word of the title, case-insensitive ("T_shirt" ~ "Classic T-Shirt")."""
    words = title_words(product_title)
    return all(any(word.startswith(q) for word in words) for q in title_words(title_query))


def product_matches(node: Node, query: ProductsQuery) -> bool:
    """The PROTOCOL §7 rule, applied to what Shopify returned: visible, and title OR type OR vendor."""
    if (node.get("status") or "").upper() != "ACTIVE" or not node.get("onlineStoreUrl"):
        return False
    if query.title and title_matches(query.title, node.get("title") or ""):
        return True
    if query.product_type and (node.get("productType") or "").strip().lower() == query.product_type.strip().lower():
        return True
    return bool(query.vendor) and (node.get("vendor") or "").strip().lower() == (query.vendor or "").strip().lower()


def search_string(query: ProductsQuery) -> str:
    alternatives = []
    if query.title:
        terms = title_prefix_terms(query.title)
        if terms:
            alternatives.append(terms)
    if query.product_type and query.product_type.strip():
        alternatives.append(search_term("product_type", query.product_type.strip()))
    if query.vendor and query.vendor.strip():
        alternatives.append(search_term("vendor", query.vendor.strip()))
    if not alternatives:
        raise InvalidRequest("products needs a title, product_type or vendor")
    return both(VISIBLE, "(" + " OR ".join(alternatives) + ")")


def effective_sort(query: ProductsQuery) -> Sort:
    """Default: relevance when a title is given, else title ascending."""
    if query.sort is not None:
        return query.sort
    return Sort(SortField.RELEVANCE, False) if query.title else Sort(SortField.TITLE, False)


async def find_products(ctx: ShopContext, query: ProductsQuery) -> ProductsResult:
    search = search_string(query)
    sort = effective_sort(query)
    sort_key = _SORT_KEYS.get(sort.field)
    if sort_key is None:
        raise InvalidRequest(f"products cannot be sorted by {sort.field.value}")
    sorting = {"sortKey": sort_key, "reverse": sort.descending}
    ttl = ctx.settings.cache.products
    tags = product_tags()
    base = dataclasses.replace(query, page=Page(1, query.page.limit))

    async def load() -> ProductsResult:
        shop = await ctx.shop_info()
        after, past_end = await start_cursor(
            ctx, base, query.page, CursorSpec("products_cursor", "products", {"query": search, **sorting})
        )
        data = await ctx.execute(
            "products_search", {"query": search, "first": query.page.limit, "after": after, **sorting}
        )
        total = int(dig(data, "productsCount", "count") or 0)
        if past_end:
            return ProductsResult([], False, total)
        found = nodes(data["products"])
        kept = [node for node in found if product_matches(node, query)]
        info = data["products"].get("pageInfo") or {}
        remember_cursor(ctx, base, query.page, info.get("endCursor"), ttl=ttl, tags=tags)
        products = [product_to_product(n, store_domain=shop.storefront_host, currency=shop.currency) for n in kept]
        total = corrected_total(total, query.page, len(found), len(kept))
        return ProductsResult(products, bool(info.get("hasNextPage")), total)

    return await ctx.cache.get_or_load((ctx.key, query), load, ttl=ttl, tags=tags, kind="products")
