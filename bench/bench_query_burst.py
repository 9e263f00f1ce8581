"""A platform broadcast: N distinct cache-miss `orders` lookups sent at once, against Shopify's cost bucket.

    .venv/bin/python bench/bench_query_burst.py [--latency 0.05] [--sizes 50,200] [--plans standard,plus] [--rounds 1]

The local store runs in its own process with the plan's bucket (standard 2000 points / 100 per s, plus 20000 / 1000;
the requested cost of a query is held while it runs, through the injected latency, and requested − actual refunded
at its end, as Shopify does) and a fixed latency per request (default 50 ms). The gateway runs in another process
with the shop's default deadline (4 s). Before each burst the gateway has seen the shop once (it knows the bucket
and the document's cost, as a running gateway does) and the store's bucket is full again. Then N lookups of
distinct order numbers are sent at once (no two share a cache entry or a single-flight load). Prints per plan and
size: answered/total (HTTP 200), p50 and p99 answer time (of every lookup, 503s included), Shopify requests, THROTTLED
answers, and the requested and actual query cost per Shopify request (one per answered lookup). Targets: 50/50 on standard with p99 <= 1.5 s; 200/200 on plus.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_query_hit import DOMAIN, free_port, start_server, stop_server  # noqa: E402
from bench_query_miss import metric, order_query, percentile  # noqa: E402

ORDERS = 1000


async def burst(base: str, numbers: list[int]) -> tuple[list[int], list[float]]:
    """(HTTP status, seconds) of each lookup, all sent at once."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one(n: int) -> tuple[int, float]:
            body, headers = order_query(n)
            started = time.perf_counter()
            async with session.post(f"{base}/bot/bench", data=body, headers=headers) as resp:
                await resp.read()
                return resp.status, time.perf_counter() - started

        results = await asyncio.gather(*(one(n) for n in numbers))
    return [status for status, _ in results], [seconds for _, seconds in results]


async def run_one(base: str, store: str, plan: str, size: int, offset: int) -> dict[str, float]:
    async with aiohttp.ClientSession() as session:
        # a running gateway has seen the shop: one lookup teaches it the bucket and the document's cost
        await burst(base, [ORDERS])
        async with session.post(f"{store}/_sandbox/{DOMAIN}/settings", json={"plan": plan}) as resp:
            resp.raise_for_status()  # the plan's bucket, full
        before = {name: await metric(session, base, name) for name in (
            "shopify_requests_total", "shopify_throttled_total", "shopify_query_cost_total",
            "shopify_query_requested_cost_total")}
        statuses, seconds = await burst(base, [1001 + offset + i for i in range(size)])
        after = {name: await metric(session, base, name) for name in before}
    spent = {name: after[name] - before[name] for name in before}
    return {
        "answered": statuses.count(200), "total": size, "p50": percentile(seconds, 50), "p99": percentile(seconds, 99),
        "requests": spent["shopify_requests_total"], "throttled": spent["shopify_throttled_total"],
        # per Shopify request: one per answered lookup here (by order number, no long orders)
        "requested": spent["shopify_query_requested_cost_total"] / max(1.0, spent["shopify_requests_total"]),
        "actual": spent["shopify_query_cost_total"] / max(1.0, spent["shopify_requests_total"]),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--sizes", default="50,200")
    ap.add_argument("--plans", default="standard,plus")
    ap.add_argument("--rounds", type=int, default=1, help="bursts per plan and size (a fresh gateway each)")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    plans = args.plans.split(",")

    print(f"{'plan':9} {'lookups':>7} {'answered':>9} {'p50 s':>6} {'p99 s':>6} {'requests':>8} {'throttled':>9} "
          f"{'requested/request':>17} {'actual/request':>14}   target")
    offset = 0
    for plan in plans:
        store_port = free_port()
        store = start_server("--serve", "store", "--port", str(store_port), "--latency", str(args.latency),
                             "--orders", str(ORDERS), "--plan", plan)
        try:
            for size in sizes:
                for _ in range(args.rounds):
                    gw_port = free_port()
                    # default TTLs: every lookup of the burst is a miss all the same (distinct numbers)
                    gateway = start_server("--serve", "gateway", "--port", str(gw_port), "--store-port",
                                           str(store_port), "--deadline", "4")
                    try:
                        row = asyncio.run(run_one(f"http://127.0.0.1:{gw_port}", f"http://127.0.0.1:{store_port}",
                                                  plan, size, offset % (ORDERS - 250)))
                    finally:
                        stop_server(gateway)
                    offset += size
                    target = ""
                    if plan == "standard" and size == 50:
                        met = row["answered"] == 50 and row["p99"] <= 1.5
                        target = f"50/50, p99 <= 1.5 s: {'met' if met else 'MISSED'}"
                    elif plan == "plus" and size == 200:
                        target = f"200/200: {'met' if row['answered'] == 200 else 'MISSED'}"
                    print(f"{plan:9} {size:7d} {row['answered']:5.0f}/{row['total']:<3.0f} {row['p50']:6.2f} "
                          f"{row['p99']:6.2f} {row['requests']:8.0f} {row['throttled']:9.0f} {row['requested']:17.0f} "
                          f"{row['actual']:14.1f}   {target}", flush=True)
        finally:
            stop_server(store)
    print(f"(upstream latency {args.latency * 1000:.0f} ms per Shopify request; deadline 4 s; requested and actual "
          "cost: Shopify's figures for the burst's requests, one per answered lookup; THROTTLED answers count as "
          "requests)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
