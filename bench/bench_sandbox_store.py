"""How fast is the local Shopify store? (It sits under every gateway benchmark, so its own time counts there.)

    .venv/bin/python bench/bench_sandbox_store.py [--orders 10000] [--requests 400] [--concurrency 10] [--response-cache N]

Prints: schema build time, seeding time (60 and --orders orders), and for the gateway's own query documents the
server-side time per request (in process, no HTTP) and HTTP requests/s with p50/p99 latency at the given concurrency,
against a small (60 orders) and a large (--orders) shop.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.shopify.queries import load_query  # noqa: E402
from localstore import SandboxServer, SandboxShop  # noqa: E402
from localstore.cost import Bucket  # noqa: E402
from localstore.executor import GraphQLRunner, admin_schema  # noqa: E402,F401
from localstore.resolvers import RequestContext  # noqa: E402

TOKEN = "shpat_sandbox_demo"


def cases(shop: SandboxShop) -> dict[str, tuple[str, dict[str, Any]]]:
    orders = {"first": 3, "after": None, "sortKey": "CREATED_AT", "reverse": True, "lineItems": 10}
    bob = shop.customer_by_email("bob.norman@mail.example.com")
    assert bob is not None
    return {
        "orders by email (limit 3)": ("orders_search", {**orders, "query": 'email:"bob.norman@mail.example.com"'}),
        "orders by name": ("orders_search", {**orders, "query": 'name:"1001"'}),
        "orders by customer_id OR": ("orders_search", {**orders, "query": f"(customer_id:{bob['legacyResourceId']} OR customer_id:1)"}),
        "orders updated since (scan)": ("orders_search", {**orders, "first": 10, "lineItems": 5, "query": "updated_at:>2000-01-01T00:00:00Z"}),
        "products search": ("products_search", {"query": "status:active AND published_status:published AND (title:t* AND title:shirt*)",
                                                "first": 3, "after": None, "sortKey": "RELEVANCE", "reverse": False}),
        "customers by phone": ("customers_by_phone", {"query": 'phone:"+16136120707"'}),
    }


def in_process(shop: SandboxShop, runner: GraphQLRunner, name: str, variables: dict[str, Any], rounds: int = 50) -> float:
    document = load_query(name)
    bucket = Bucket(10**12, 10**12, 10**12)
    body = runner.run(document, variables, None, RequestContext(shop, "2026-10"), bucket, 10**9)
    assert "errors" not in body, body["errors"]
    started = time.perf_counter()
    for _ in range(rounds):
        runner.run(document, variables, None, RequestContext(shop, "2026-10"), bucket, 10**9)
    return (time.perf_counter() - started) / rounds * 1000


async def over_http(server: SandboxServer, name: str, variables: dict[str, Any], requests: int,
                    concurrency: int) -> tuple[float, float, float]:
    document = load_query(name)
    latencies: list[float] = []
    queue = list(range(requests))
    async with aiohttp.ClientSession(headers={"X-Shopify-Access-Token": TOKEN}) as session:
        async def worker() -> None:
            while queue:
                queue.pop()
                started = time.perf_counter()
                async with session.post(server.graphql_url(), json={"query": document, "variables": variables}) as r:
                    body = await r.json()
                    assert "errors" not in body, body
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return requests / elapsed, statistics.median(latencies), latencies[int(len(latencies) * 0.99) - 1]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--response-cache", type=int, default=0, help="SandboxServer(response_cache_size=N)")
    args = parser.parse_args()

    started = time.perf_counter()
    admin_schema()
    print(f"schema build: {time.perf_counter() - started:.2f} s (once per process)")
    for size in (60, args.orders):
        started = time.perf_counter()
        shop = SandboxShop.seeded(orders=size, products=max(30, size // 50), access_token=TOKEN)
        print(f"\nseeding {size} orders, {len(shop.products)} products, {len(shop.customers)} customers: "
              f"{time.perf_counter() - started:.2f} s")
        shop.bucket_size = shop.restore_rate = 10**12
        async with SandboxServer([shop], response_cache_size=args.response_cache) as server:
            print(f"{'document':32} {'in-process ms':>14} {'HTTP req/s':>11} {'p50 ms':>8} {'p99 ms':>8}")
            for label, (name, variables) in cases(shop).items():
                cpu = in_process(shop, server.runner_graphql, name, variables)
                rate, p50, p99 = await over_http(server, name, variables, args.requests, args.concurrency)
                print(f"{label:32} {cpu:14.2f} {rate:11.0f} {p50:8.2f} {p99:8.2f}")


if __name__ == "__main__":
    asyncio.run(main())
