"""Platform broadcasts against Shopify's query budget: does the gateway answer every lookup the bucket can afford?

    .venv/bin/python bench/bench_query_burst.py [--scenarios fresh,trickle,rush,plan,replicas] [--tree PATH]
        [--latency 0.05] [--replica-sizes 50,150]

One local store in its own process (a standard plan: 2,000 points, 100/s; the requested cost of a query is taken
when it starts and held through the injected latency, 50 ms, and requested − actual refunded at its end, as Shopify
does). Gateways run as `gateway serve` processes (of this checkout, or of `--tree PATH` for a before/after
comparison; the store always from this one), with the cache off (every lookup a miss) and a 4 s deadline. The
lookups are `orders` by email with page sizes 2, 3 and 5, mixed filters and sorts, over 40 customers with 1–20 orders
made through the store's admin API, so actual costs vary (≈ 5–200 points); no two in a burst share a search.

Scenarios (only the last burst of each is judged):
- fresh: a fresh gateway, 50 lookups at once;
- trickle: 5 lookups every 0.5 s for 10 s, 21 s of quiet (the bucket is full again), then 50 at once;
- rush: 100 at once with no upstream latency, 21 s of quiet, then 50 at once (50 ms latency);
- plan: the shop on `plus`, 100 lookups at once (the gateway learns a large bucket), the plan changes to `standard`,
  21 s of quiet, then 50 at once;
- replicas: 1, 2 and 3 gateways on `storage.backend: redis` sharing one prefix, against the one store; 50 and 150
  lookups at once (the bucket full again each time after 21 s of quiet), round-robin over the replicas.

Each lookup's requested and actual cost is measured first (one at a time through a gateway of the tree under test,
from the store's query log, `GET /_sandbox/queries`); **affordable** is how many of a burst a greedy in-order scheduler
that knows those costs serves before the deadline (tests/query_budget.py: `affordable`). Prints per scenario:
answered / affordable, answered / sent, THROTTLED answers per Shopify request (the gateways' /metrics, summed over
replicas), p50 and p99 answer time. Targets: answered ≥ 95 % of affordable, and all N when the bucket affords N;
THROTTLED ≤ 2 % of requests with 3 replicas. About 3 minutes for all scenarios (the three quiet periods are 63 s).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_query_hit import DOMAIN, TOKEN, free_port, start_server, stop_server  # noqa: E402
from tests.query_budget import Result, Rig, Timing, lookup_pool, seed_customers  # noqa: E402

SCENARIOS = ("fresh", "trickle", "rush", "plan", "replicas")
CUSTOMERS = 40  # 4 filters × 40 customers: up to 160 distinct searches in one burst
HIT_SCRIPT = ROOT / "bench" / "bench_query_hit.py"


def verdict(result: Result, replicas: int | None = None) -> str:
    parts = [f"answered >= 95 % of affordable, all when affordable >= N: {'met' if result.target_met() else 'MISSED'}"]
    if replicas == 3:
        parts.append(f"THROTTLED <= 2 %: {'met' if result.throttled_share <= 0.02 else 'MISSED'}")
    return "; ".join(parts)


async def run(args: argparse.Namespace) -> int:
    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenarios: {', '.join(sorted(unknown))} (known: {', '.join(SCENARIOS)})")
    sizes = [int(x) for x in args.replica_sizes.split(",")]
    timing = Timing(latency=args.latency)
    store_port = free_port()
    store_proc = start_server("--serve", "store", "--port", str(store_port), "--latency", str(args.latency),
                              "--orders", "60", "--plan", "standard", script=str(HIT_SCRIPT))
    store = f"http://127.0.0.1:{store_port}"
    failed = False
    try:
        with tempfile.TemporaryDirectory() as workdir:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
                rig = Rig(session, store, DOMAIN, TOKEN, timing, Path(workdir), tree=args.tree)
                emails = await seed_customers(session, store, DOMAIN, CUSTOMERS)
                pool = lookup_pool(emails, 4 * CUSTOMERS)
                await rig.calibrate(pool)
                costs = [rig.costs[lk] for lk in pool]
                print(f"gateway of {args.tree}; {len(pool)} distinct email lookups, requested cost "
                      f"{min(c[0] for c in costs):.0f}–{max(c[0] for c in costs):.0f}, actual "
                      f"{min(c[1] for c in costs):.0f}–{max(c[1] for c in costs):.0f} "
                      f"(mean {sum(c[1] for c in costs) / len(costs):.0f}); standard bucket 2000 points, 100/s; "
                      f"latency {args.latency * 1000:.0f} ms; deadline {timing.deadline:g} s", flush=True)
                for name in scenarios:
                    if name == "replicas":
                        for count in (1, 2, 3):
                            for size, result in zip(sizes, await rig.replicas(pool, count, sizes), strict=True):
                                failed |= not result.target_met() or (count == 3 and result.throttled_share > 0.02)
                                print(f"{f'replicas={count}, {size} at once':22} {result.line()}\n"
                                      f"{'':22} target: {verdict(result, count)}", flush=True)
                        continue
                    result = await getattr(rig, name)(pool)
                    failed |= not result.target_met()
                    print(f"{name:22} {result.line()}\n{'':22} target: {verdict(result)}", flush=True)
    finally:
        stop_server(store_proc)
    print("(affordable: what a greedy in-order scheduler knowing each lookup's requested and actual cost serves from "
          "the bucket as it was at the burst's start, each lookup starting by the deadline minus the latency; "
          "THROTTLED and requests: the judged burst's, from /metrics)")
    return 1 if failed and args.strict else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated subset of: " + ",".join(SCENARIOS))
    ap.add_argument("--tree", type=Path, default=ROOT, help="the checkout whose gateway runs (default: this one)")
    ap.add_argument("--latency", type=float, default=0.05, help="seconds per Shopify request")
    ap.add_argument("--replica-sizes", default="50,150", help="lookups per burst in the replicas scenario")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args()
    args.tree = args.tree.resolve()
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
