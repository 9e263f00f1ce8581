"""Cache-miss lookup latency with a fixed upstream latency, and Shopify requests / query cost per lookup kind.

    .venv/bin/python bench/bench_query_miss.py [--latency 0.05] [--clients 50] [--seconds 8] [--requests 2000]

The local store runs in its own process with a fixed injected latency (default 50 ms) and its response cache on (warmed
first, so its own GraphQL execution time does not blur the figure); the gateway runs in another process with caching
off (TTL 0), so every lookup goes to the store. Load: `wrk -t1 -c50` (apt-get install wrk) with a Lua script cycling
through 999 pre-signed `orders` lookups by distinct order numbers (no two in flight are identical, so single-flight
never shares one); without wrk, 50 aiohttp clients in this process (more client overhead on the same cores). Prints p50
and p99 of the answer time minus the injected latency through the gateway (targets: <= 2 ms p50, <= 10 ms p99) and,
as the reference floor, the same load of the same GraphQL requests sent straight to the store; and the gateway's CPU
per lookup; and, as the floor of any aiohttp relay, a bare handler that verifies, forwards the same GraphQL over an
aiohttp session, decodes and replies (no cache, no mapping). Then 100 identical lookups at once (Shopify requests, from `/metrics`), and per lookup kind the Shopify
requests and the actual query cost of one lookup.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
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


_WRK_SCRIPT = """
local n = #bodies
local i = 0
request = function()
  i = i % n + 1
  return wrk.format("POST", nil, headers[i], bodies[i])
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d\\n", summary.requests, latency:percentile(50),
    latency:percentile(99), summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout, summary.duration))
end
"""


def _lua_string(text: str) -> str:
    if "]==]" in text:
        raise ValueError("cannot quote this body for Lua")
    return "[==[" + text + "]==]"


def wrk_latency(url: str, requests: list[tuple[bytes, dict[str, str]]], seconds: float, clients: int
                ) -> tuple[float, float, float]:
    """(p50 s, p99 s, requests/s) of `wrk -t1 -c<clients>` cycling through the pre-signed `requests`."""
    lines = ["bodies = {"]
    lines += [f"  {_lua_string(body.decode())}," for body, _ in requests]
    lines += ["}", "headers = {"]
    for _, headers in requests:
        pairs = ", ".join(f"[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in headers.items())
        lines.append(f"  {{{pairs}}},")
    lines.append("}")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write("\n".join(lines) + _WRK_SCRIPT)
        script = fh.name
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--timeout", "10s", "-s", script, url],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        os.unlink(script)
    m = re.search(r"^RESULT (\d+) (\d+) (\d+) (\d+) (\d+)$", out, re.M)
    if m is None:
        raise RuntimeError(out)
    count, p50, p99, errors, duration = (int(g) for g in m.groups())
    if errors or "Non-2xx" in out:
        raise RuntimeError(f"errors or non-2xx answers during the run:\n{out}")
    return p50 / 1e6, p99 / 1e6, count / (duration / 1e6)


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
    ap.add_argument("--seconds", type=float, default=8, help="length of each wrk run")
    ap.add_argument("--requests", type=int, default=2000, help="lookups per client run without wrk")
    args = ap.parse_args()

    orders = 1000
    tool = "wrk" if shutil.which("wrk") else "python"
    store_port, gw_port = free_port(), free_port()
    store = start_server("--serve", "store", "--port", str(store_port), "--latency", str(args.latency),
                         "--orders", str(orders))
    try:
        gateway = start_server("--serve", "gateway", "--port", str(gw_port), "--store-port", str(store_port),
                               "--ttl", "0")
        try:
            url = f"http://127.0.0.1:{gw_port}/bot/bench"
            store_url = f"http://127.0.0.1:{store_port}/admin/api/2026-10/graphql.json"
            distinct = [1001 + i for i in range(orders - 1)]
            asyncio.run(drive(url, distinct, args.clients))  # warm the store's response cache (every number once)
            rows: list[tuple[str, float, float, float]] = []
            cpu0 = cpu_seconds(gateway.pid)
            store_cpu = ""
            if tool == "wrk":
                s0 = cpu_seconds(store.pid)
                p50, p99, rate = wrk_latency(url, [order_query(n) for n in distinct], args.seconds, args.clients)
                gateway_cpu = (cpu_seconds(gateway.pid) - cpu0) / (rate * args.seconds) * 1e6
                s1 = cpu_seconds(store.pid)
                rows.append(("through the gateway", p50, p99, rate))
                rows.append(("the store directly (same GraphQL)",
                             *wrk_latency(store_url, [store_request(n) for n in distinct], args.seconds, args.clients)))
                store_cpu = (f"; store CPU {(s1 - s0) / (rate * args.seconds) * 1e6:.0f} us per request via the gateway, "
                             f"{(cpu_seconds(store.pid) - s1) / (rows[1][3] * args.seconds) * 1e6:.0f} us direct")
                proxy_port = free_port()
                proxy = start_server("--serve", "proxy", "--port", str(proxy_port), "--store-port", str(store_port))
                try:
                    proxy_url = f"http://127.0.0.1:{proxy_port}/bot/bench"
                    c0 = cpu_seconds(proxy.pid)
                    p50, p99, prate = wrk_latency(proxy_url, [order_query(n) for n in distinct], args.seconds,
                                                  args.clients)
                    proxy_cpu = (cpu_seconds(proxy.pid) - c0) / (prate * args.seconds) * 1e6
                    rows.append(("bare aiohttp relay (verify+forward)", p50, p99, prate))
                    store_cpu += f"; bare relay CPU {proxy_cpu:.0f} us per request"
                finally:
                    stop_server(proxy)
            else:
                print("bench_query_miss: wrk not found (apt-get install wrk); 50 aiohttp clients in this process "
                      "instead (their CPU competes with the gateway's, so the figures are upper bounds)")
                numbers = [1001 + (i % (orders - 1)) for i in range(args.requests)]
                started = time.perf_counter()
                lat = asyncio.run(drive(url, numbers, args.clients))
                elapsed = time.perf_counter() - started
                gateway_cpu = (cpu_seconds(gateway.pid) - cpu0) / len(lat) * 1e6
                rows.append(("through the gateway", percentile(lat, 50), percentile(lat, 99), len(lat) / elapsed))
                started = time.perf_counter()
                direct = asyncio.run(drive(store_url, numbers, args.clients, store_request))
                rows.append(("the store directly (same GraphQL)", percentile(direct, 50), percentile(direct, 99),
                             len(direct) / (time.perf_counter() - started)))
            print(
                f"cache-miss orders lookups (joinchat v1, limit 3), {args.clients} concurrent clients ({tool}), "
                f"upstream latency {args.latency * 1000:.0f} ms:"
            )
            for label, p50, p99, rate in rows:
                print(f"  {label:<36} answer time minus upstream latency: p50 {(p50 - args.latency) * 1000:6.2f} ms, "
                      f"p99 {(p99 - args.latency) * 1000:6.2f} ms  ({rate:.0f}/s)")
            p50 = (rows[0][1] - args.latency) * 1000
            p99 = (rows[0][2] - args.latency) * 1000
            print(
                f"  gateway: p50 {p50:.2f} ms (target <= 2 ms: {'met' if p50 <= 2 else 'MISSED'}), "
                f"p99 {p99:.2f} ms (target <= 10 ms: {'met' if p99 <= 10 else 'MISSED'}); "
                f"gateway CPU {gateway_cpu:.0f} us per lookup{store_cpu}"
            )
            print(
                "  (load generator, gateway and store share the machine's cores, so these include queueing for CPU;"
                " the store row is the same load without the gateway: the floor of this set-up; the relay row is"
                " the floor of any aiohttp gateway: verify, forward the same GraphQL, decode, reply)"
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
