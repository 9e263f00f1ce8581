"""The open-API order query (PROTOCOL §10): by numeric order id (`order(id:)`), falling back to the order name."""

from __future__ import annotations

from gateway.cache_tags import order_name_tag
from gateway.lookups.context import ShopContext
from gateway.lookups.orders import complete_line_items, line_items_per_order, orders_named
from gateway.lookups.types import InvalidRequest, NotFound, OpenApiOrderQuery, OpenApiOrderResult
from mappings.nodes import Node, numeric_id, parse_time, strip_hash
from mappings.open_api import order_to_open_api

#: A Shopify id is an unsigned 64-bit integer.
MAX_ORDER_ID = 2**64 - 1


async def _order_node(ctx: ShopContext, order_id: str) -> Node | None:
    ttl = ctx.settings.cache.openapi
    numeric = int(order_id) if order_id.isascii() and order_id.isdigit() else None
    if numeric is not None and 0 < numeric <= MAX_ORDER_ID:

        async def load_by_id() -> Node | None:
            data = await ctx.execute(
                "order_by_id",
                {"id": f"gid://shopify/Order/{numeric}", "lineItems": line_items_per_order(1, with_fulfillments=True)},
            )
            order = data.get("order")
            return (await complete_line_items(ctx, [order]))[0] if order else None

        node = await ctx.cache.get_or_load(
            (ctx.key, "openapi_order_id", numeric), load_by_id, ttl=ttl, tags=(f"order_id:{numeric}",), kind="openapi"
        )
        if node is not None:
            return node
    # decided fallback: the order name ("1001" / "#1001")
    name = strip_hash(order_id)
    tags = (order_name_tag(name),)

    async def load_by_name() -> Node | None:
        found = await orders_named(ctx, name, first=1, line_items=line_items_per_order(1, with_fulfillments=True))
        return found[0] if found else None

    return await ctx.cache.get_or_load(
        (ctx.key, "openapi_order_name", name.lower()), load_by_name, ttl=ttl, tags=tags, kind="openapi"
    )


async def find_open_api_order(ctx: ShopContext, query: OpenApiOrderQuery) -> OpenApiOrderResult:
    order_id = (query.order_id or "").strip()
    if not order_id or len(order_id) > 64:
        raise InvalidRequest("invalid order_id")
    node = await _order_node(ctx, order_id)
    if node is None:
        raise NotFound("order")
    shop = await ctx.shop_info()
    delivered: dict[str, int] = {}
    numeric = numeric_id(node.get("legacyResourceId") or node.get("id"))
    if ctx.push_state is not None and numeric is not None:
        # not cached: the push counts change as pushes go out, and the push store answers locally
        delivered = await ctx.push_state.delivered_package_pushes(ctx.key, numeric)
    order = order_to_open_api(node, shop_timezone=shop.timezone, delivered_pushes=delivered)
    created = parse_time(node.get("createdAt"))
    return OpenApiOrderResult(order, created_at=created.timestamp() if created else None)
