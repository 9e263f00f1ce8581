"""Webhook intake throughput: the gateway (SQLite store, durable before the 2xx) vs a bare aiohttp handler that only
checks the Shopify HMAC, in the same run, each server in its own process, load from this process.

    .venv/bin/python bench/bench_push_intake.py [--requests 4000] [--concurrency 32] [--rounds 2]

Prints acks/s, p50/p99 time to acknowledge and the server's CPU time per webhook for both, and the ratio (target ≥ 0.5,
p99 ≤ 20 ms). The load is closed-loop (32 clients back to back), so p99 includes queueing at saturation. The gateway's
figure includes its push processor, which handles each stored event in the same process while intake goes on. The
best of `--rounds` alternating rounds is kept for each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_query_hit import cpu_seconds  # noqa: E402

from gateway import signing  # noqa: E402
from tests.fixtures_push import SHOP_DOMAIN, WEBHOOK_SECRET, free_port, rest_order  # noqa: E402


def serve_bare(port: int) -> None:
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        if not signing.verify(request.headers.get(signing.SHOPIFY_HEADER), body, [WEBHOOK_SECRET]):
            return web.Response(status=401)
        return web.Response(text="ok")

    app = web.Application(client_max_size=2 * 1024 * 1024)
    app.router.add_post("/webhooks/shopify", handle)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def serve_gateway(port: int, db: str) -> None:
    serve_intake_gateway(port, {"backend": "sqlite", "sqlite_path": db})


def serve_intake_gateway(port: int, storage: dict[str, str]) -> None:
    """A gateway that takes the shop's webhooks into `storage` and pushes nothing (no push section)."""
    from aiohttp import web

    from gateway.app import create_app
    from gateway.settings import parse_settings

    settings = parse_settings(
        {
            "server": {"sync_webhooks_on_start": False, "reconcile_interval_seconds": 0},
            "storage": storage,
            "shops": {
                "demo": {
                    "domain": SHOP_DOMAIN,
                    "auth": {"mode": "token", "access_token": "x"},
                    "webhook_secret": WEBHOOK_SECRET,
                    "secrets": ["bench-bot-secret"],
                }
            },
        },
        env={},
    )
    web.run_app(create_app(settings), host="127.0.0.1", port=port, access_log=None, print=None)


async def wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(200):
            try:
                async with s.get(url + "/healthz") as r:
                    if r.status in (200, 404):
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("server did not start")


async def load(url: str, bodies: list[bytes], concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    for i, b in enumerate(bodies):
        queue.put_nowait((i, b))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while not queue.empty():
                i, body = queue.get_nowait()
                headers = {
                    "Content-Type": "application/json",
                    "X-Shopify-Topic": "orders/paid",
                    "X-Shopify-Shop-Domain": SHOP_DOMAIN,
                    "X-Shopify-Hmac-Sha256": signing.sign_base64(WEBHOOK_SECRET, body),
                    "X-Shopify-Event-Id": f"bench-{os.getpid()}-{i}",
                    "X-Shopify-Webhook-Id": f"bench-w-{i}",
                }
                t = time.perf_counter()
                async with session.post(url + "/webhooks/shopify", data=body, headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"HTTP {r.status}")
                latencies.append(time.perf_counter() - t)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def unprocessed(db: str) -> int:
    """Stored events the gateway's processor has not yet run the rules on (read beside it, WAL allows that): shows
    whether the processor kept up with the intake or the figure was bought by deferring work."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM events WHERE status = 'pending'").fetchone()[0])


async def run_one(
    mode: str, bodies: list[bytes], concurrency: int, db: str
) -> tuple[float, float, float, float, int]:
    """(acks/s, p50 ms, p99 ms, server CPU microseconds per webhook, events still unprocessed when the load ended)."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--serve",
        mode,
        "--port",
        str(port),
        "--db",
        db,
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_up(url)
        await load(url, bodies[:200], concurrency)  # warm-up
        cpu0 = cpu_seconds(proc.pid)
        elapsed, lat = await load(url, bodies[200:], concurrency)
        cpu = (cpu_seconds(proc.pid) - cpu0) / len(lat) * 1e6
        waiting = unprocessed(db) if db else 0
        return (len(bodies) - 200) / elapsed, statistics.median(lat) * 1000, pct(lat, 0.99) * 1000, cpu, waiting
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 10)


async def main(args: argparse.Namespace) -> None:
    bodies = [json.dumps(rest_order(10_000_000 + i, name=f"#{10000 + i}")).encode() for i in range(args.requests + 200)]
    best: dict[str, tuple[float, ...]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.rounds):
            for mode in ("bare", "gateway"):
                db = str(Path(tmp) / f"bench-{n}.sqlite3") if mode == "gateway" else ""
                got = await run_one(mode, bodies, args.concurrency, db)
                print(f"  round: {mode:7} {got[0]:6.0f} acks/s  p50 {got[1]:6.2f} ms  p99 {got[2]:6.2f} ms  "
                      f"server CPU {got[3]:4.0f} us/webhook" + (f"  unprocessed at the end {got[4]}" if mode == "gateway" else ""),
                      flush=True)
                best[mode] = max(best.get(mode, (0.0,)), got)
    bare, gw = best["bare"], best["gateway"]
    ratio = gw[0] / bare[0]
    print(f"webhook intake, {args.requests} orders/paid webhooks (~{len(bodies[0])} B), {args.concurrency} concurrent "
          f"aiohttp clients, best of {args.rounds} rounds")
    print(f"  bare HMAC handler : {bare[0]:8.0f} acks/s  p50 {bare[1]:6.2f} ms  p99 {bare[2]:6.2f} ms  CPU {bare[3]:4.0f} us")
    print(f"  gateway (SQLite)  : {gw[0]:8.0f} acks/s  p50 {gw[1]:6.2f} ms  p99 {gw[2]:6.2f} ms  CPU {gw[3]:4.0f} us  "
          f"(events not yet processed when the load ended: {gw[4]})")
    print(f"  ratio             : {ratio:.2f} (target >= 0.5: {'met' if ratio >= 0.5 else 'MISSED'}), "
          f"p99 {gw[2]:.1f} ms (target <= 20 ms: {'met' if gw[2] <= 20 else 'MISSED'})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", choices=["bare", "gateway"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--db", default="")
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    a = parser.parse_args()
    if a.serve == "bare":
        serve_bare(a.port)
    elif a.serve == "gateway":
        serve_gateway(a.port, a.db)
    else:
        asyncio.run(main(a))
