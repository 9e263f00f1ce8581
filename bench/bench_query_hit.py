"""Cache-hit `orders` lookups per second (joinchat v1, limit 3) versus a bare aiohttp handler, same run, same machine.

    .venv/bin/python bench/bench_query_hit.py [--seconds 5] [--connections 32] [--rounds 2]

Each server runs alone in its own process (the gateway, with the local store idle in a third process, then a bare
aiohttp app that only verifies the X-Joinchat-Signature and echoes the JSON body); load comes from `wrk` (apt-get
install wrk) in another process, one thread; without wrk, from a slower aiohttp load generator (figures then only
indicative). The gateway's cache is warmed first, so every measured request is a cache hit. Prints lookups/s of both,
the ratio (target ≥ 0.7) and each server's CPU time per request. The best of `--rounds` alternating rounds is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402

from gateway import signing  # noqa: E402
from gateway.settings import Settings, parse_settings  # noqa: E402

SECRET = "bench-joinchat-secret"
TOKEN = "shpat_bench"
DOMAIN = "bench.myshopify.com"
HIT_BODY = json.dumps(
    {"method": "orders", "params": {"order_number": "1001"}, "pagination": {"page": 1, "limit": 3}}
).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_config(store_url: str, dialect: str = "joinchat", ttl: float = 3600, deadline: float = 10,
                 domain: str = DOMAIN, token: str = TOKEN) -> dict[str, Any]:
    """The benchmarks' gateway config (one shop `bench`, secret SECRET), as the dict a config file holds."""
    return {
        "server": {"sync_webhooks_on_start": False, "reconcile_interval_seconds": 0, "log_level": "WARNING"},
        "storage": {"backend": "sqlite", "sqlite_path": ":memory:"},
        "shops": {"bench": {
            "domain": domain, "admin_api_base": store_url, "auth": {"mode": "token", "access_token": token},
            "dialect": dialect, "secrets": [SECRET], "deadline_seconds": deadline,
            "cache": {"orders": ttl, "packages": ttl, "products": ttl, "property": ttl, "customer": ttl,
                      "openapi": ttl},
        }},
    }


def bench_settings(store_url: str, dialect: str = "joinchat", ttl: float = 3600, deadline: float = 10) -> Settings:
    return parse_settings(bench_config(store_url, dialect, ttl, deadline), env={})


async def serve_store(port: int, latency: float = 0.0, orders: int = 200, plan: str | None = None) -> None:
    """The local store in its own process, so the gateway's process holds only the gateway."""
    from localstore import SandboxServer, SandboxShop
    from localstore.cost import Bucket

    shop = SandboxShop.seeded(domain=DOMAIN, seed=42, orders=orders, products=60, access_token=TOKEN)
    if plan:
        shop.plan = plan  # Shopify's bucket for that plan (bench_query_burst.py)
    else:
        # A bucket that never runs dry: these benchmarks measure the gateway, not Shopify's throttling.
        shop.bucket = Bucket(size=10**9, restore_rate=10**9, available=10**9)
    # The response cache answers a repeated GraphQL request from memory: the store's own execution time stays out
    # of the gateway's figures.
    store = SandboxServer([shop], host="127.0.0.1", port=port, response_cache_size=100_000)
    store.faults.latency = latency
    await store.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


async def serve_gateway(port: int, store_port: int, ttl: float = 3600, deadline: float = 10) -> None:
    from gateway.app import create_app
    from gateway.cli_common import freeze_startup_objects
    from gateway.server import start_site

    settings = bench_settings(f"http://127.0.0.1:{store_port}", ttl=ttl, deadline=deadline)
    await start_site(create_app(settings), settings.server, "127.0.0.1", port)  # the server `gateway serve` runs
    freeze_startup_objects()  # as `gateway serve` does
    print("ready", flush=True)
    await asyncio.Event().wait()


async def bare_handler(request: web.Request) -> web.Response:
    body = await request.read()
    if not signing.verify(request.headers.get(signing.JOINCHAT_HEADER), body, (SECRET,)):
        return web.json_response({"success": False}, status=401)
    return web.Response(body=json.dumps(json.loads(body)).encode(), content_type="application/json")


async def serve_forever(port: int, handler: Callable[[web.Request], Awaitable[web.Response]]) -> None:
    """Serve `handler` at POST /bot/{shop} until killed; print "ready" once listening (the parent waits for it)."""
    app = web.Application()
    app.router.add_post("/bot/{shop}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


async def serve_bare(port: int) -> None:
    await serve_forever(port, bare_handler)


async def serve_proxy(port: int, store_port: int, fast_json: bool = False) -> None:
    """The floor of an aiohttp relay, for bench_query_miss.py: verify the signature, decode the JSON, send the same
    GraphQL request as the gateway to the store over one keep-alive aiohttp session, decode the answer and reply with
    its order nodes as JSON. No cache, no mapping, no throttling. JSON with the standard library (the issue's relay),
    or with `fast_json` the gateway's own codec (orjson): the lowest floor an aiohttp relay can have."""
    import aiohttp

    from gateway import jsoncodec
    from gateway.lookups.orders import line_items_per_order, sort_variables
    from gateway.lookups.search import search_term
    from gateway.lookups.types import DEFAULT_ORDER_SORT
    from gateway.shopify.queries import load_query

    loads: Callable[[bytes], Any] = jsoncodec.loads if fast_json else json.loads

    def dumps(value: Any, separators: tuple[str, str] | None = None) -> bytes:
        return jsoncodec.dumps(value) if fast_json else json.dumps(value, separators=separators).encode()

    document = load_query("orders_search")
    url = f"http://127.0.0.1:{store_port}/admin/api/2026-10/graphql.json"
    headers = {"Content-Type": "application/json", "X-Shopify-Access-Token": TOKEN}
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100, limit_per_host=50))

    async def relay(request: web.Request) -> web.Response:
        body = await request.read()
        if not signing.verify(request.headers.get(signing.JOINCHAT_HEADER), body, (SECRET,)):
            return web.json_response({"success": False}, status=401)
        number = str(loads(body)["params"]["order_number"])
        variables = {"query": search_term("name", number), "first": 3, "after": None, **sort_variables(DEFAULT_ORDER_SORT),
                     "lineItems": line_items_per_order(3)}
        payload = dumps({"query": document, "variables": variables}, separators=(",", ":"))
        async with session.post(url, data=payload, headers=headers) as resp:
            data = loads(await resp.read())["data"]
        reply = {"success": True, "orders": data["orders"]["nodes"]}
        return web.Response(body=dumps(reply), content_type="application/json")

    await serve_forever(port, relay)


def start_server(*args: str, script: str = __file__) -> subprocess.Popen[str]:
    """`script` (this file by default) run with `args` in its own process, once it printed "ready"."""
    proc = subprocess.Popen([sys.executable, script, *args], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return proc


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc; 0.0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop_server(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, json.loads(resp.read())


def wrk(url: str, body: bytes, headers: dict[str, str], seconds: int, connections: int) -> float:
    lua = "wrk.method = 'POST'\nwrk.body = [==[" + body.decode() + "]==]\n" + "".join(
        f"wrk.headers['{k}'] = '{v}'\n" for k, v in headers.items())
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(lua)
        script = fh.name
    try:
        out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script, url],
                             capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script)
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx answers during the run:\n{out}")
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m is None:
        raise RuntimeError(out)
    return float(m.group(1))


async def _py_load(url: str, body: bytes, headers: dict[str, str], seconds: float, connections: int) -> None:
    """The fallback load generator (no wrk): `connections` keep-alive clients posting back to back; prints req/s."""
    import aiohttp

    done = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:

        async def client(end: float) -> None:
            nonlocal done
            while time.perf_counter() < end:
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"HTTP {resp.status}")
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(client(started + seconds) for _ in range(connections)))
        print(done / (time.perf_counter() - started), flush=True)


def py_load(url: str, body: bytes, headers: dict[str, str], seconds: int, connections: int) -> float:
    spec = json.dumps({"url": url, "body": body.decode(), "headers": headers})
    out = subprocess.run(
        [sys.executable, __file__, "--load", spec, "--seconds", str(seconds), "--connections", str(connections)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout  # fmt: skip
    return float(out.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve", choices=["gateway", "bare", "store", "proxy", "proxy-orjson"], help=argparse.SUPPRESS)
    ap.add_argument("--load", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--store-port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--latency", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--orders", type=int, default=200, help=argparse.SUPPRESS)
    ap.add_argument("--plan", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--deadline", type=float, default=10, help=argparse.SUPPRESS)
    ap.add_argument("--ttl", type=float, default=3600, help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    if args.serve == "gateway":
        asyncio.run(serve_gateway(args.port, args.store_port, args.ttl, args.deadline))
        return 0
    if args.serve == "store":
        asyncio.run(serve_store(args.port, args.latency, args.orders, args.plan))
        return 0
    if args.serve == "bare":
        asyncio.run(serve_bare(args.port))
        return 0
    if args.serve in ("proxy", "proxy-orjson"):
        asyncio.run(serve_proxy(args.port, args.store_port, fast_json=args.serve == "proxy-orjson"))
        return 0
    if args.load:
        spec = json.loads(args.load)
        asyncio.run(_py_load(spec["url"], spec["body"].encode(), spec["headers"], args.seconds, args.connections))
        return 0
    tool = "wrk" if shutil.which("wrk") else "python"
    if tool == "python":
        print("bench_query_hit: wrk not found (apt-get install wrk); falling back to an aiohttp load generator, which")
        print("  is slower than either server, so both figures are lower and the ratio is closer to 1 than with wrk")

    headers = {"Content-Type": "application/json", signing.JOINCHAT_HEADER: signing.sign_base64(SECRET, HIT_BODY)}
    best = {"gateway": (0.0, 0.0), "bare": (0.0, 0.0)}
    store_port = free_port()
    store = start_server("--serve", "store", "--port", str(store_port))
    try:
        for _ in range(args.rounds):
            for kind in ("gateway", "bare"):
                rate, cpu = measure(kind, store_port, headers, args.seconds, args.connections, tool)
                print(f"  round: {kind:7} {rate:7.0f} req/s, server CPU {cpu:5.0f} us/request", flush=True)
                best[kind] = max(best[kind], (rate, cpu))
    finally:
        stop_server(store)
    ratio = best["gateway"][0] / best["bare"][0]
    verdict = ("met" if ratio >= 0.7 else "MISSED") if tool == "wrk" else "not judged without wrk"
    print(
        f"cache-hit orders lookups/s (joinchat v1, limit 3): gateway {best['gateway'][0]:.0f}/s, "
        f"bare verify+echo handler {best['bare'][0]:.0f}/s, ratio {ratio:.2f} (target >= 0.7: {verdict})"
    )
    print(
        f"  server CPU per request: gateway {best['gateway'][1]:.0f} us, bare {best['bare'][1]:.0f} us; "
        f"{tool} -c{args.connections} {args.seconds}s, best of {args.rounds} rounds, {os.cpu_count()} cores"
    )
    return 0


def measure(
    kind: str, store_port: int, headers: dict[str, str], seconds: int, connections: int, tool: str = "wrk"
) -> tuple[float, float]:
    """(requests/s, server CPU microseconds per request) of one server under load."""
    port = free_port()
    extra = ["--store-port", str(store_port)] if kind == "gateway" else []
    proc = start_server("--serve", kind, "--port", str(port), *extra)
    try:
        url = f"http://127.0.0.1:{port}/bot/bench"
        status, reply = post(url, HIT_BODY, headers)  # warm the cache (and check the answer)
        assert status == 200, reply
        if kind == "gateway":
            assert reply["orders"][0]["order_number"] == "1001", reply
        time.sleep(0.2)
        cpu0 = cpu_seconds(proc.pid)
        rate = (wrk if tool == "wrk" else py_load)(url, HIT_BODY, headers, seconds, connections)
        cpu = cpu_seconds(proc.pid) - cpu0
        return rate, cpu / (rate * seconds) * 1e6
    finally:
        stop_server(proc)


if __name__ == "__main__":
    raise SystemExit(main())
