"""The open-API order query (PROTOCOL §10): by numeric order id (`order(id:)`), falling back to the order name."""

from __future__ import annotations

from gateway.cache_tags import order_number_tag
from gateway.lookups.context import ShopContext
from gateway.lookups.orders import complete_line_items, line_items_per_order, orders_named
from gateway.lookups.types import InvalidRequest, NotFound, OpenApiOrderQuery, OpenApiOrderResult
from mappings.nodes import Node, epoch_seconds, numeric_id, strip_hash
from mappings.open_api import order_to_open_api


async def _order_node(ctx: ShopContext, order_id: str) -> Node | None:
    ttl = ctx.settings.cache.openapi
    numeric = numeric_id(order_id)
    if numeric is not None:

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
    tags = (order_number_tag(name),)

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
    return OpenApiOrderResult(order, created_at=epoch_seconds(node.get("createdAt")))
