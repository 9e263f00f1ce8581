"""Shopify requests and query cost per lookup kind, and single-flight: 100 concurrent identical misses → 1 request.

    .venv/bin/python bench/bench_lookup_cost.py [--orders 60]

Runs each lookup kind once, on a cold cache, through `gateway.lookups.dispatch.run_lookup` with a real ShopifyAdminClient over
HTTP against the local store (localstore, in this process; its cost model follows Shopify's calculated query cost,
see localstore/cost.py). Per kind it prints the GraphQL requests the store received, and the summed
`requestedQueryCost` / `actualQueryCost` of those requests (from each response's `extensions.cost`). Targets: one
request per lookup, except a phone number (the customer first), a cold page N (the cursor of page N-1 first), the
open API's fallback from an id to a name, an order with more line items than the first request's page (one
follow-up for the rest), and the packages of an order with more than 5 fulfillments (one follow-up for the whole list); requested cost ≤ 1000 (Shopify's per-query maximum), and at the default limit of 3 ≤ 200
for a list of receipts (RECEIPTS_COST_BUDGET: what a burst holds at once) and ≤ 500 with fulfillments
(QUERY_COST_BUDGET), gateway/lookups/orders.py.

Then 100 concurrent identical `orders` lookups on a cold cache: how many requests reached the store (target: exactly 1).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.lookups.context import ShopContext  # noqa: E402
from gateway.lookups.dispatch import run_lookup  # noqa: E402
from gateway.lookups.orders import MAX_QUERY_COST, QUERY_COST_BUDGET, RECEIPTS_COST_BUDGET  # noqa: E402
from gateway.lookups.types import (  # noqa: E402
    OpenApiOrderQuery,
    OrdersByAccount,
    OrdersByNumber,
    PackagesQuery,
    Page,
    ProductsQuery,
    PropertyQuery,
)
from gateway.shopify.client import ShopifyAdminClient  # noqa: E402
from localstore import SandboxServer, SandboxShop  # noqa: E402
from tests.fixtures_query import lookup_context  # noqa: E402

DOMAIN = "cost.myshopify.com"
TOKEN = "shpat_bench_cost"
BOB_EMAIL = "bob.norman@mail.example.com"  # well-known fixtures: localstore/data.py
BOB_PHONE = "+16136120707"

# (label, query, warm the customer-by-phone cache first?, Shopify requests it may take)
KINDS: list[tuple[str, Any, bool, int]] = [
    ("orders by number", OrdersByNumber("1001"), False, 1),
    ("orders by number, limit 10", OrdersByNumber("1001", Page(1, 10)), False, 1),
    ("orders by email, limit 3", OrdersByAccount(email=BOB_EMAIL), False, 1),
    ("orders by email, limit 10", OrdersByAccount(email=BOB_EMAIL, page=Page(1, 10)), False, 1),
    ("orders by email, cold page 2 (+ cursor)", OrdersByAccount(email=BOB_EMAIL, page=Page(2, 1)), False, 2),
    ("orders by phone, limit 3 (+ customer)", OrdersByAccount(phone=BOB_PHONE), False, 2),
    ("orders by phone, limit 10 (+ customer)", OrdersByAccount(phone=BOB_PHONE, page=Page(1, 10)), False, 2),
    ("orders by phone, limit 10, customer cached", OrdersByAccount(phone=BOB_PHONE, page=Page(1, 10)), True, 1),
    ("packages by order number", PackagesQuery(order_number="1001"), False, 1),
    ("packages by package number", PackagesQuery(package_number="1001.2"), False, 1),
    ("packages by order, 3 fulfillments", PackagesQuery(order_number="1012"), False, 1),
    ("products by title", ProductsQuery(title="shirt"), False, 1),
    ("products by title, limit 10", ProductsQuery(title="shirt", page=Page(1, 10)), False, 1),
    ("products title OR vendor", ProductsQuery(title="t-shirt", vendor="Apple"), False, 1),
    ("property vendor", PropertyQuery("vendor"), False, 1),
    ("open api order by name (+ by-id first)", OpenApiOrderQuery("1001"), False, 2),
]


class CostLog:
    """Every `extensions.cost` the client observes (the client keeps only the last one)."""

    def __init__(self, client: ShopifyAdminClient) -> None:
        self.costs: list[dict[str, Any]] = []
        original = client._learn

        def learn(key: Any, cost: Any) -> None:
            self.costs.append(dict(cost))
            original(key, cost)

        client._learn = learn  # type: ignore[method-assign]


def make_context(base_url: str, session: aiohttp.ClientSession) -> ShopContext:
    return lookup_context(base_url, session, domain=DOMAIN, token=TOKEN)


async def main(orders: int) -> int:
    shop = SandboxShop.seeded(domain=DOMAIN, seed=7, orders=orders, products=30, access_token=TOKEN)
    first = shop.order_by_name("#1001")
    assert first is not None
    long = await shop.create_order(line_items=[{"title": f"Part {i}", "price": "1.00"} for i in range(105)])
    long_kind = ("orders by number, 105-line order (+ follow-up)", OrdersByNumber(long["name"].lstrip("#")), False, 2)
    parts = await shop.create_order(line_items=[{"title": f"Part {i}", "price": "1.00"} for i in range(7)])
    for item in parts["lineItems"]:
        await shop.create_fulfillment(parts["id"], tracking_numbers=[f"1ZBENCH{item['id'][-6:]}"], line_items=[item["id"]])
    parts_kind = ("packages by order, 7 fulfillments (+ follow-up)", PackagesQuery(order_number=parts["name"].lstrip("#")),
                  False, 2)
    kinds = [*KINDS[:2], long_kind, *KINDS[2:11], parts_kind, *KINDS[11:-1],
             ("open api order by id", OpenApiOrderQuery(str(first["legacyResourceId"])), False, 1), KINDS[-1]]
    async with SandboxServer([shop], host="127.0.0.1", port=0) as server, aiohttp.ClientSession() as session:
        print(f"Shopify requests and query cost per lookup (cold cache, local store with {orders} orders):")
        print(f"  {'lookup':50} {'requests':>8} {'requested':>9} {'actual':>7}   target")
        for label, query, warm_customer, expected in kinds:
            ctx = make_context(server.base_url, session)  # a fresh cache: every lookup below is a miss
            await ctx.shop_info()  # shop facts are read once an hour, not per lookup
            if warm_customer:
                await run_lookup(ctx, OrdersByAccount(phone=BOB_PHONE))
            log = CostLog(ctx.client)
            server.reset_counters()
            shop.bucket.available = shop.bucket.size
            await run_lookup(ctx, query)
            requests = server.graphql_requests(DOMAIN)
            requested = sum(float(c.get("requestedQueryCost") or 0) for c in log.costs)
            actual = sum(float(c.get("actualQueryCost") or 0) for c in log.costs)
            limit = getattr(getattr(query, "page", None), "limit", 3)
            receipts = isinstance(query, OrdersByNumber | OrdersByAccount)
            budget = MAX_QUERY_COST if limit > 3 else RECEIPTS_COST_BUDGET if receipts else QUERY_COST_BUDGET
            first_request = float(log.costs[-requests].get("requestedQueryCost") or 0) if log.costs else 0.0
            most = max((float(c.get("requestedQueryCost") or 0) for c in log.costs), default=0.0)
            met = requests <= expected and first_request <= budget and most <= MAX_QUERY_COST
            print(
                f"  {label:50} {requests:8d} {requested:9.0f} {actual:7.0f}   "
                f"{expected} request(s), requested <= {budget}: {'met' if met else 'MISSED'}"
            )

        ctx = make_context(server.base_url, session)
        await ctx.shop_info()
        server.reset_counters()
        server.faults.latency = 0.05  # so the 100 lookups are surely in flight together
        results = await asyncio.gather(*(run_lookup(ctx, OrdersByNumber("1004")) for _ in range(100)))
        server.faults.latency = 0.0
        requests = server.graphql_requests(DOMAIN)
        shared = all(r is results[0] for r in results)
        print(
            f"100 concurrent identical cache-miss lookups (orders 1004, 50 ms upstream latency): "
            f"{requests} upstream request(s), all callers got the same result: {shared} "
            f"(target exactly 1: {'met' if requests == 1 and shared else 'MISSED'})"
        )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=60)
    raise SystemExit(asyncio.run(main(parser.parse_args().orders)))
