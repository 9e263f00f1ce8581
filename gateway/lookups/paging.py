"""Page N of a Shopify search in one request, with cursors kept in the lookup cache.

Shopify connections paginate by cursor, bot platforms by page number. After page N is loaded, its end cursor is kept
in the lookup cache (same TTL and tags as the page, so a webhook eviction drops both); page N+1 then starts `after`
that cursor: one request. Platforms page forward one step at a time ("more" buttons), so that is the usual case. A cold
deep page (page N asked first) walks the search with a cursor-only document (no node fields, almost free) in steps of
250, then fetches the page: one extra request per 250 skipped results.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from gateway.lookups.context import ShopContext
from gateway.lookups.types import Page

MAX_FIRST = 250


@dataclass(frozen=True, slots=True)
class CursorSpec:
    """How to reach the start of a page: the cursor-only document, its connection field and its variables."""

    document: str  # e.g. "orders_cursor"
    connection: str  # e.g. "orders"
    variables: dict[str, Any]  # query, sortKey, reverse


def cursor_key(ctx: ShopContext, base: Hashable, page_number: int) -> tuple[Any, ...]:
    return (ctx.key, "cursor", base, page_number)


async def start_cursor(ctx: ShopContext, base: Hashable, page: Page, spec: CursorSpec) -> tuple[str | None, bool]:
    """(`after` cursor for `page`, past_end). past_end: the search ends before this page starts (empty page)."""
    if page.page <= 1:
        return None, False
    cached = ctx.cache.peek(cursor_key(ctx, base, page.page - 1))
    if cached is not None:
        return cached, False
    remaining = (page.page - 1) * page.limit
    after: str | None = None
    while remaining > 0:
        step = min(MAX_FIRST, remaining)
        data = await ctx.execute(spec.document, {**spec.variables, "first": step, "after": after})
        info = data[spec.connection]["pageInfo"]
        remaining -= step
        if info.get("endCursor"):
            after = info["endCursor"]
        if not info.get("hasNextPage"):
            # the walk used up the search: whatever page N would hold, there is nothing after it
            return after, True
    return after, False


def remember_cursor(
    ctx: ShopContext, base: Hashable, page: Page, cursor: str | None, *, ttl: float, tags: Iterable[str]
) -> None:
    """Keep page N's end cursor for page N+1 (stored like the page: nothing when `ttl` is 0)."""
    if cursor and ttl > 0:
        ctx.cache.put(cursor_key(ctx, base, page.page), cursor, ttl=ttl, tags=tags)


def corrected_total(total: int, page: Page, returned: int, kept: int) -> int:
    """Shopify's count minus the results the code-side re-check refused on this page, and never less than what the
    pages so far prove exists."""
    total -= returned - kept
    if kept:
        proven = (page.page - 1) * page.limit + kept
        if total < proven:
            total = proven
    return total if total > 0 else 0
