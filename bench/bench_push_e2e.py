"""End to end: 1,000 distinct paid orders → Shopify webhooks → gateway (its own process) → signed pushes delivered to a
local bot-platform receiver (this process, which also sends the webhooks).

    .venv/bin/python bench/bench_push_e2e.py [--orders 1000] [--concurrency 32] [--backend sqlite|redis]

Prints pushes delivered per second (first webhook sent → last push received) and webhook-to-push latency p50/p99
(webhook sent → its push received). Targets: ≥ 1,500 pushes/s, p99 ≤ 250 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_query_hit import cpu_seconds  # noqa: E402

from gateway import signing  # noqa: E402
from tests.fixtures_push import PUSH_SECRET, free_port, push_config, rest_order, signed_webhook_headers  # noqa: E402


class Receiver:
    def __init__(self, expected: int) -> None:
        self.arrivals: dict[str, float] = {}
        self.expected = expected
        self.done = asyncio.Event()
        self.bad = 0

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if not signing.verify(request.headers.get(signing.JOINCHAT_HEADER), raw, [PUSH_SECRET]):
            self.bad += 1
            return web.json_response({"success": False}, status=401)
        number = json.loads(raw)["params"]["order_number"]
        self.arrivals.setdefault(number, time.perf_counter())
        if len(self.arrivals) >= self.expected:
            self.done.set()
        return web.json_response({"success": True, "recipient_id": "r"})


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


async def main(args: argparse.Namespace) -> None:
    receiver = Receiver(args.orders)
    app = web.Application()
    app.router.add_post("/push", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    rport = free_port()
    await web.TCPSite(runner, "127.0.0.1", rport).start()

    with tempfile.TemporaryDirectory() as tmp:
        gport = free_port()
        raw = push_config(f"http://127.0.0.1:{rport}/push", Path(tmp) / "e2e.sqlite3", server={"port": gport})
        if args.backend == "redis":
            raw["storage"] = {"backend": "redis", "redis_prefix": f"bench-e2e-{gport}"}
        config = Path(tmp) / "config.yaml"
        config.write_text(yaml.safe_dump(raw))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--config",
            str(config),
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,
        )
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.concurrency)) as session:
                for _ in range(300):
                    try:
                        async with session.get(f"http://127.0.0.1:{gport}/readyz") as r:
                            if r.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.05)
                orders = [90_000_000 + i for i in range(args.orders)]
                bodies = {o: json.dumps(rest_order(o, name=f"#{o}")).encode() for o in orders}
                sent: dict[str, float] = {}
                queue: asyncio.Queue[int] = asyncio.Queue()
                for o in orders:
                    queue.put_nowait(o)

                async def sender() -> None:
                    while not queue.empty():
                        o = queue.get_nowait()
                        body = bodies[o]
                        sent[str(o)] = time.perf_counter()
                        async with session.post(
                            f"http://127.0.0.1:{gport}/webhooks/shopify",
                            data=body,
                            headers=signed_webhook_headers("orders/paid", body, event_id=f"e2e-{o}"),
                        ) as r:
                            await r.read()

                cpu0 = cpu_seconds(proc.pid)
                started = time.perf_counter()
                await asyncio.gather(*(sender() for _ in range(args.concurrency)))
                acked = time.perf_counter()
                await asyncio.wait_for(receiver.done.wait(), 120)
                finished = max(receiver.arrivals.values())
                gateway_cpu = cpu_seconds(proc.pid) - cpu0
        finally:
            proc.send_signal(signal.SIGTERM)
            await proc.wait()
    await runner.cleanup()
    latencies = [(receiver.arrivals[k] - sent[k]) * 1000 for k in receiver.arrivals]
    print(f"push end to end ({args.backend}): {args.orders} paid orders, {args.concurrency} concurrent webhook senders")
    print(f"  webhooks acknowledged in {acked - started:.2f} s ({args.orders / (acked - started):.0f}/s)")
    print(
        f"  pushes delivered      : {len(receiver.arrivals)} in {finished - started:.2f} s "
        f"→ {len(receiver.arrivals) / (finished - started):.0f} pushes/s "
        f"(target >= 1500: {'met' if len(receiver.arrivals) / (finished - started) >= 1500 else 'MISSED'})"
    )
    print(
        f"  webhook-to-push       : p50 {pct(latencies, 0.5):.0f} ms, p99 {pct(latencies, 0.99):.0f} ms "
        f"(target p99 <= 250 ms: {'met' if pct(latencies, 0.99) <= 250 else 'MISSED'}); bad signatures {receiver.bad}"
    )
    print(f"  gateway CPU           : {gateway_cpu / args.orders * 1e6:.0f} us per webhook+push (all its threads)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--backend", choices=["sqlite", "redis"], default="sqlite")
    asyncio.run(main(parser.parse_args()))
