"""Cache-miss lookup latency with a fixed upstream latency, and Shopify requests / query cost per lookup kind.

    .venv/bin/python bench/bench_query_miss.py [--latency 0.05] [--clients 50] [--requests 2000]

The local store runs in its own process with a fixed injected latency (default 50 ms) and its response cache on (so
its own GraphQL execution time does not blur the figure); the gateway runs in another process with caching off (TTL 0),
so every lookup goes to the store; 50 concurrent clients (this process, aiohttp) send `orders` lookups by distinct
order numbers (no two in flight are identical, so single-flight never shares one). Prints p50/p99 of the gateway's
answer time minus the injected latency (targets: ≤ 2 ms p50, ≤ 10 ms p99); the figure includes this process's own
client overhead and the store's, so it is an upper bound of the gateway's. Then, per lookup kind, the Shopify requests and the actual query cost of one lookup (from the gateway's /metrics).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_query_hit import SECRET, cpu_seconds, free_port, start_server, stop_server  # noqa: E402

from gateway import signing  # noqa: E402


def signed(body: dict[str, object]) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    return raw, {"Content-Type": "application/json", signing.JOINCHAT_HEADER: signing.sign_base64(SECRET, raw)}


def order_query(n: int) -> tuple[bytes, dict[str, str]]:
    return signed({"method": "orders", "params": {"order_number": str(n)}, "pagination": {"page": 1, "limit": 3}})


async def drive(url: str, numbers: list[int], clients: int, make: Any = order_query) -> list[float]:
    """Send one lookup per number, `clients` at a time; return each answer time in seconds."""
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in numbers:
        queue.put_nowait(n)
    conn = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=conn) as session:

        async def worker() -> None:
            while not queue.empty():
                body, headers = make(queue.get_nowait())
                t0 = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"HTTP {resp.status}")
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies


def store_request(n: int) -> tuple[bytes, dict[str, str]]:
    """The GraphQL request the gateway sends for an `orders` lookup by number (same document, same variables)."""
    from bench_query_hit import TOKEN

    from gateway.lookups.orders import DEFAULT_SORT, line_items_per_order, sort_variables
    from gateway.lookups.search import search_term
    from gateway.shopify.queries import load_query

    variables = {"query": search_term("name", str(n)), "first": 3, "after": None, **sort_variables(DEFAULT_SORT),
                 "lineItems": line_items_per_order(3)}
    body = json.dumps({"query": load_query("orders_search"), "variables": variables}).encode()
    return body, {"Content-Type": "application/json", "X-Shopify-Access-Token": TOKEN}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def metric(session: aiohttp.ClientSession, base: str, name: str) -> float:
    async with session.get(f"{base}/metrics") as resp:
        text = await resp.text()
    total = 0.0
    for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? ([\d.e+-]+)$", text, re.M):
        total += float(m.group(1))
    return total


async def cost_per_kind(base: str) -> list[tuple[str, float, float]]:
    kinds: list[tuple[str, dict[str, object]]] = [
        ("orders by number", {"method": "orders", "params": {"order_number": "1001"}}),
        ("orders by email, limit 10", {"method": "orders", "params": {"user_account": "bob.norman@mail.example.com"},
                                       "pagination": {"page": 1, "limit": 10}}),
        ("orders by phone, limit 10", {"method": "orders", "params": {"user_account": "+16136120707"},
                                       "pagination": {"page": 1, "limit": 10}}),
        ("packages by order", {"method": "packages", "params": {"order_number": "1001"}}),
        ("packages by name", {"method": "packages", "params": {"package_number": "1001.2"}}),
        ("products (title OR vendor)", {"method": "products", "params": {"title": "t-shirt", "vendor": "Apple"}}),
        ("property vendor", {"method": "property", "params": {"search_type": "vendor"}}),
    ]
    out = []
    async with aiohttp.ClientSession() as session:
        warm, headers = signed({"method": "products", "params": {"vendor": "Apple"}})
        async with session.post(f"{base}/bot/bench", data=warm, headers=headers) as resp:
            await resp.read()  # shop facts (storefront host) are read once and kept an hour
        for label, body in kinds:
            raw, headers = signed(body)
            req0 = await metric(session, base, "shopify_requests_total")
            cost0 = await metric(session, base, "shopify_query_cost_total")
            async with session.post(f"{base}/bot/bench", data=raw, headers=headers) as resp:
                reply = await resp.json()
                if resp.status != 200 or reply.get("success") is not True:
                    raise RuntimeError(f"{label}: {resp.status} {reply}")
            req1 = await metric(session, base, "shopify_requests_total")
            cost1 = await metric(session, base, "shopify_query_cost_total")
            out.append((label, req1 - req0, cost1 - cost0))
    return out


async def single_flight(base: str, latency: float) -> float:
    """Shopify requests for 100 identical lookups sent at once (an order number nothing else asked for)."""
    raw, headers = signed({"method": "orders", "params": {"order_number": "1050"}, "pagination": {"page": 1, "limit": 3}})
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
        before = await metric(session, base, "shopify_requests_total")

        async def one() -> None:
            async with session.post(f"{base}/bot/bench", data=raw, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}")

        await asyncio.gather(*(one() for _ in range(100)))
        return await metric(session, base, "shopify_requests_total") - before


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=2000)
    args = ap.parse_args()

    orders = 1000
    store_port, gw_port = free_port(), free_port()
    store = start_server("--serve", "store", "--port", str(store_port), "--latency", str(args.latency),
                         "--orders", str(orders))
    try:
        gateway = start_server("--serve", "gateway", "--port", str(gw_port), "--store-port", str(store_port),
                               "--ttl", "0")
        try:
            url = f"http://127.0.0.1:{gw_port}/bot/bench"
            numbers = [1001 + (i % (orders - 1)) for i in range(args.requests)]
            asyncio.run(drive(url, numbers[: orders - 1], args.clients))  # warm the store's response cache
            cpu0 = cpu_seconds(gateway.pid)
            started = time.perf_counter()
            lat = asyncio.run(drive(url, numbers, args.clients))
            elapsed = time.perf_counter() - started
            gateway_cpu = (cpu_seconds(gateway.pid) - cpu0) / len(lat) * 1e6
            store_url = f"http://127.0.0.1:{store_port}/admin/api/2026-10/graphql.json"
            direct = asyncio.run(drive(store_url, numbers, args.clients, store_request))
            print(
                f"cache-miss orders lookups (joinchat v1, limit 3), {args.clients} concurrent clients, upstream latency "
                f"{args.latency * 1000:.0f} ms, {len(lat)} lookups at {len(lat) / elapsed:.0f}/s:"
            )
            for label, values in (("through the gateway", lat), ("the store directly (same GraphQL)", direct)):
                p50 = (percentile(values, 50) - args.latency) * 1000
                p99 = (percentile(values, 99) - args.latency) * 1000
                print(f"  {label:<36} answer time minus upstream latency: p50 {p50:6.2f} ms, p99 {p99:6.2f} ms")
            p50 = (percentile(lat, 50) - args.latency) * 1000
            p99 = (percentile(lat, 99) - args.latency) * 1000
            print(
                f"  gateway: p50 {p50:.2f} ms (target <= 2 ms: {'met' if p50 <= 2 else 'MISSED'}), "
                f"p99 {p99:.2f} ms (target <= 10 ms: {'met' if p99 <= 10 else 'MISSED'}); "
                f"gateway CPU {gateway_cpu:.0f} us per lookup"
            )
            print(
                "  (client, gateway and store share the machine's cores, so these include queueing for CPU; the store"
                " row is the same load without the gateway)"
            )
            base = f"http://127.0.0.1:{gw_port}"
            shared = asyncio.run(single_flight(base, args.latency))
            print(
                f"100 concurrent identical cache-miss lookups through the gateway (cache TTL 0): {shared:.0f} Shopify "
                f"request(s) (target exactly 1: {'met' if shared == 1 else 'MISSED'})"
            )
            print("Shopify requests and actual query cost per lookup through the gateway (cold; requested cost: "
                  "bench/bench_lookup_cost.py):")
            for label, requests, cost in asyncio.run(cost_per_kind(base)):
                print(f"  {label:<28} requests {requests:.0f}  actual cost {cost:.0f}")
        finally:
            stop_server(gateway)
    finally:
        stop_server(store)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
