"""The Redis push backend: webhook intake vs a bare HMAC handler, and end to end with one or two gateway replicas.

    .venv/bin/python bench/bench_push_redis.py [--requests 4000] [--concurrency 32] [--orders 1000] [--replicas 1|2]

1. intake: the same load as bench/bench_push_intake.py (bare aiohttp handler that only checks the Shopify HMAC vs the
   gateway, each in its own process, same run), with the gateway storing in Redis (acknowledged once Redis applied
   the write; see gateway/push/redis/store.py on durability). Prints acks/s, p50/p99 and the ratio.
2. end to end: `--orders` distinct paid orders → the local store's orders/paid webhooks (captured first, as in
   bench_push_e2e.py) spread round-robin over `--replicas` gateway processes sharing one Redis → each push read from
   that store → signed pushes to a local receiver. Prints pushes/s, webhook-to-push p50/p99 and Shopify requests per
   push, and checks that every push arrived exactly once (Idempotency-Key) even though every replica's sender
   competes for them.

Needs Redis at 127.0.0.1:6379 (or --redis-url). Keys live under a fresh prefix, deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_push_e2e import WEBHOOK_SECRET as E2E_SECRET  # noqa: E402
from bench.bench_push_e2e import Platform, capture_webhooks, shopify_requests  # noqa: E402
from bench.bench_push_intake import load, pct, serve_bare, serve_intake_gateway, wait_up  # noqa: E402
from bench.bench_query_hit import DOMAIN, TOKEN, start_server, stop_server  # noqa: E402
from gateway import signing  # noqa: E402
from gateway.push.redis.store import RedisPushStore  # noqa: E402
from tests.fixtures_push import (  # noqa: E402
    PUSH_SECRET,
    free_port,
    purge_redis_prefix,
    push_config,
    rest_order,
)


def serve_gateway_redis(port: int, redis_url: str, prefix: str) -> None:
    serve_intake_gateway(port, {"backend": "redis", "redis_url": redis_url, "redis_prefix": prefix})


async def intake_one(mode: str, bodies: list[bytes], args: argparse.Namespace, prefix: str) -> tuple[float, ...]:
    port = free_port()
    command = [sys.executable, __file__, "--serve", mode, "--port", str(port)]
    command += ["--redis-url", args.redis_url, "--prefix", prefix]
    proc = await asyncio.create_subprocess_exec(*command, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_up(url)
        await load(url, bodies[:200], args.concurrency)  # warm-up
        elapsed, lat = await load(url, bodies[200:], args.concurrency)
        return (len(bodies) - 200) / elapsed, statistics.median(lat) * 1000, pct(lat, 0.99) * 1000
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 10)


async def bench_intake(args: argparse.Namespace, prefix: str) -> None:
    bodies = [json.dumps(rest_order(10_000_000 + i, name=f"#{10000 + i}")).encode() for i in range(args.requests + 200)]
    bare = await intake_one("bare", bodies, args, prefix)
    gw = await intake_one("gateway-redis", bodies, args, prefix + "-intake")
    print(f"webhook intake, {args.requests} orders/paid webhooks (~{len(bodies[0])} B), {args.concurrency} concurrent")
    print(f"  bare HMAC handler : {bare[0]:8.0f} acks/s  p50 {bare[1]:6.2f} ms  p99 {bare[2]:6.2f} ms")
    print(f"  gateway (Redis)   : {gw[0]:8.0f} acks/s  p50 {gw[1]:6.2f} ms  p99 {gw[2]:6.2f} ms")
    ratio = gw[0] / bare[0]
    print(
        f"  ratio             : {ratio:.2f} (target >= 0.5: {'met' if ratio >= 0.5 else 'MISSED'}), "
        f"p99 {gw[2]:.1f} ms (target <= 20 ms: {'met' if gw[2] <= 20 else 'MISSED'})"
    )


class Receiver:
    """Records the first arrival per order and every Idempotency-Key (to count duplicates)."""

    def __init__(self, expected: int) -> None:
        self.arrivals: dict[str, float] = {}
        self.keys: Counter[str] = Counter()
        self.expected = expected
        self.done = asyncio.Event()
        self.bad = 0

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if not signing.verify(request.headers.get(signing.JOINCHAT_HEADER), raw, [PUSH_SECRET]):
            self.bad += 1
            return web.json_response({"success": False}, status=401)
        self.keys[request.headers.get("Idempotency-Key", "")] += 1
        self.arrivals.setdefault(json.loads(raw)["params"]["order_number"], time.perf_counter())
        if len(self.arrivals) >= self.expected:
            self.done.set()
        return web.json_response({"success": True, "recipient_id": "r"})


async def bench_e2e(args: argparse.Namespace, prefix: str) -> None:
    receiver = Receiver(args.orders)
    # The pushes read their orders from the local store; the webhooks are the store's own (bench_push_e2e).
    platform = Platform()
    app = web.Application()
    app.router.add_post("/push", receiver.handle)
    app.router.add_post("/capture", platform.capture)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    rport = platform.port
    await web.TCPSite(runner, "127.0.0.1", rport).start()
    procs: list[asyncio.subprocess.Process] = []
    ports = [free_port() for _ in range(args.replicas)]
    store_port = free_port()
    store_proc = start_server("--serve", "store", "--port", str(store_port), "--orders", "60")
    store = f"http://127.0.0.1:{store_port}"
    deliveries = {d.number: d for d in await capture_webhooks(store, platform, args.orders)}
    with tempfile.TemporaryDirectory() as tmp:
        for port in ports:
            raw: dict[str, Any] = push_config(
                f"http://127.0.0.1:{rport}/push",
                Path(tmp) / "x.sqlite3",
                admin_api_base=store,
                shop={"domain": DOMAIN, "auth": {"mode": "token", "access_token": TOKEN}, "webhook_secret": E2E_SECRET},
            )
            raw["server"]["port"] = port
            raw["storage"] = {"backend": "redis", "redis_url": args.redis_url, "redis_prefix": prefix + "-e2e"}
            config = Path(tmp) / f"config-{port}.yaml"
            config.write_text(yaml.safe_dump(raw))
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "gateway.cli",
                    "serve",
                    "--config",
                    str(config),
                    cwd=ROOT,
                    stdout=asyncio.subprocess.DEVNULL,
                )  # fmt: skip
            )
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.concurrency)) as session:
                for port in ports:
                    await wait_up(f"http://127.0.0.1:{port}")
                sent: dict[str, float] = {}
                queue: asyncio.Queue[str] = asyncio.Queue()
                for number in deliveries:
                    queue.put_nowait(number)

                async def sender() -> None:
                    while not queue.empty():
                        number = queue.get_nowait()
                        port = ports[int(number) % len(ports)]  # the load balancer
                        delivery = deliveries[number]
                        sent[number] = time.perf_counter()
                        async with session.post(
                            f"http://127.0.0.1:{port}/webhooks/shopify", data=delivery.body, headers=delivery.headers
                        ) as r:
                            await r.read()

                reads0 = await shopify_requests(store)
                started = time.perf_counter()
                await asyncio.gather(*(sender() for _ in range(args.concurrency)))
                acked = time.perf_counter()
                await asyncio.wait_for(receiver.done.wait(), 120)
                finished = max(receiver.arrivals.values())
                reads = await shopify_requests(store) - reads0
                await asyncio.sleep(0.5)  # a duplicate delivery would arrive by now
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                await proc.wait()
            stop_server(store_proc)
    await runner.cleanup()
    latencies = [(receiver.arrivals[k] - sent[k]) * 1000 for k in receiver.arrivals]
    duplicates = sum(n - 1 for n in receiver.keys.values())
    print(f"push end to end (Redis, {args.replicas} replica(s)): {args.orders} paid orders, {args.concurrency} senders")
    print(f"  webhooks acknowledged in {acked - started:.2f} s ({args.orders / (acked - started):.0f}/s)")
    print(
        f"  pushes delivered      : {len(receiver.arrivals)} in {finished - started:.2f} s "
        f"→ {len(receiver.arrivals) / (finished - started):.0f} pushes/s "
        f"(target >= 1500: {'met' if len(receiver.arrivals) / (finished - started) >= 1500 else 'MISSED'})"
    )
    print(
        f"  webhook-to-push       : p50 {pct(latencies, 0.5):.0f} ms, p99 {pct(latencies, 0.99):.0f} ms "
        f"(target p99 <= 250 ms: {'met' if pct(latencies, 0.99) <= 250 else 'MISSED'}); duplicate deliveries {duplicates}; bad signatures {receiver.bad}"
    )
    per_push = reads / max(1, len(receiver.arrivals))
    print(
        f"  Shopify requests      : {reads} for {len(receiver.arrivals)} pushes → {per_push:.3f} per push "
        f"(target <= 0.1: {'met' if per_push <= 0.1 else 'MISSED'})"
    )


async def main(args: argparse.Namespace) -> None:
    prefix = f"bench-redis-{uuid.uuid4().hex[:8]}"
    janitor = RedisPushStore(args.redis_url, prefix=prefix)
    await janitor.open()
    try:
        if args.part in ("all", "intake"):
            await bench_intake(args, prefix)
        if args.part in ("all", "e2e"):
            await bench_e2e(args, prefix)
    finally:
        for suffix in ("-intake", "-e2e"):
            cleaner = RedisPushStore(args.redis_url, prefix=prefix + suffix)
            await cleaner.open()
            await purge_redis_prefix(cleaner)
            await cleaner.close()
        await janitor.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", choices=["bare", "gateway-redis"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--prefix", default="bench-redis")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--replicas", type=int, choices=[1, 2], default=1)
    parser.add_argument("--part", choices=["all", "intake", "e2e"], default="all")
    a = parser.parse_args()
    if a.serve == "bare":
        serve_bare(a.port)
    elif a.serve == "gateway-redis":
        serve_gateway_redis(a.port, a.redis_url, a.prefix)
    else:
        asyncio.run(main(a))
