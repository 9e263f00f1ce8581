"""1,000 shops connected from the browser, kept in the store: start-up, memory, Shopify requests at start, and a
lookup of the 1,000th shop against the first.

    .venv/bin/python bench/bench_shops_scale.py [--shops 1000] [--unknown 10] [--lookups 100]

The gateway runs as `gateway serve` (a subprocess, app mode, SQLite store) against the local store (in this process:
it counts the Shopify requests and how many are in flight at once). The store holds `--shops` connected shops,
written as the install callback writes them (sealed settings, secret and tokens); shops #1, #N and `--unknown`
others are real installs on the local store (the authorization-code grant with expiring=1), the rest idle shops
whose webhook subscriptions were last found complete. The others' subscriptions are unknown, so the start-up sync
checks exactly those, one shop at a time.

Printed, each beside the floor measured in the same run (the same gateway with no connected shop):
- start-up time to ready (spawn → /readyz 200), target ≤ 10 s;
- resident memory per idle shop ((RSS with N shops − RSS of the floor) / N, after start-up), target ≤ 200 KB;
- Shopify requests made at start (until the start-up sync is done) and the most in flight at once: only the unknown
  shops' listing and creations, never 11 × N;
- a lookup of shop #N against shop #1: the first lookup of each (it builds the shop's client and context), then
  `--lookups` cache misses each, interleaved (medians); target: #N as fast as #1 (ratio ≈ 1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway import signing  # noqa: E402
from gateway.push.subscriptions import TOPICS, fingerprint  # noqa: E402
from gateway.shops.crypto import Sealer  # noqa: E402
from gateway.shops.sqlite.store import SqliteShopStore  # noqa: E402
from gateway.shops.store import StoredSecret, StoredShop, TokenSet  # noqa: E402
from gateway.shops.tokens import token_set  # noqa: E402
from localstore import SandboxServer  # noqa: E402
from localstore.oauth import SandboxApp  # noqa: E402

CLIENT_ID = "bench-app"
CLIENT_SECRET = "bench-app-client-secret-0123456789"
TOKEN_KEY = "YmVuY2gtb25seS10b2tlbi1rZXktMzItYnl0ZXMhISE="  # 32 bytes, this benchmark's own
SCOPES = "read_orders,read_all_orders,read_products,read_customers,read_fulfillments,read_locales"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CountingStore(SandboxServer):
    """The local store, counting GraphQL requests in flight at once (and their peak)."""

    in_flight = 0
    peak = 0

    def make_app(self) -> web.Application:
        app = super().make_app()

        @web.middleware
        async def count(request: web.Request, handler: Any) -> web.StreamResponse:
            if not request.path.endswith("/graphql.json"):
                return await handler(request)  # type: ignore[no-any-return]
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            try:
                return await handler(request)  # type: ignore[no-any-return]
            finally:
                self.in_flight -= 1

        app.middlewares.append(count)
        return app

    def requests(self) -> int:
        return sum(self.graphql_requests(d) for d in self.shops)


async def install_on_store(session: aiohttp.ClientSession, store: SandboxServer, domain: str, redirect: str) -> TokenSet:
    """The merchant's "Install" and the app's code exchange, straight against the store (no gateway yet)."""
    form = {"client_id": CLIENT_ID, "scope": SCOPES, "redirect_uri": redirect, "state": "bench", "shop": domain}
    async with session.post(f"{store.base_url}/admin/oauth/authorize", data=form, allow_redirects=False) as resp:
        location = resp.headers["Location"]
    code = dict(part.split("=", 1) for part in location.split("?", 1)[1].split("&"))["code"]
    body = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "code": code, "expiring": "1"}
    async with session.post(f"{store.base_url}/admin/oauth/access_token", json=body) as resp:
        return token_set(await resp.json(), time.time())


def key_of(n: int) -> str:
    return f"shop{n:04d}"


async def fill_store(db: Path, store: SandboxServer, shops: int, unknown: int, redirect: str) -> dict[str, str]:
    """Write `shops` connected shops; returns key → bot secret of the two looked up."""
    real = {1, shops, *range(2, 2 + unknown)}
    shop_store = SqliteShopStore(db, Sealer(TOKEN_KEY))
    await shop_store.open()
    secrets: dict[str, str] = {}
    now = time.time()
    try:
        async with aiohttp.ClientSession() as session:
            for n in range(1, shops + 1):
                key, domain = key_of(n), f"{key_of(n)}.myshopify.com"
                if n in real:
                    tokens = await install_on_store(session, store, domain, redirect)
                else:
                    tokens = TokenSet(f"shpat_idle_{n}", SCOPES, now, now + 3600, f"shprt_idle_{n}", now + 90 * 86400)
                secret = f"bench-bot-secret-{n:04d}-0123456789abcdef"
                shop = StoredShop(key=key, domain=domain, settings={"dialect": "joinchat", "joinchat_version": 1},
                                  bot_secrets=(StoredSecret(secret, now, True),), scope=SCOPES, installed_at=now,
                                  created_at=now)  # fmt: skip
                assert await shop_store.records.create(shop, tokens)
                if n in (1, shops):
                    secrets[key] = secret
        uri_fingerprint = fingerprint(redirect.rsplit("/shopify/", 1)[0] + "/webhooks/shopify")
        for n in range(1, shops + 1):
            if not 2 <= n < 2 + unknown:  # the unknown ones were never synced
                await shop_store.sync.set_sync_state(key_of(n), uri_fingerprint)
    finally:
        await shop_store.close()
    return secrets


def config(tmp: Path, port: int, store: SandboxServer, db: Path) -> Path:
    raw = {
        "server": {"host": "127.0.0.1", "port": port, "public_url": f"http://127.0.0.1:{port}",
                   "reconcile_interval_seconds": 0, "log_level": "WARNING"},
        "storage": {"backend": "sqlite", "sqlite_path": str(db)},
        "app": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "token_key": TOKEN_KEY,
                "admin_api_base": store.base_url},
    }  # fmt: skip
    path = tmp / f"config-{port}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def start(config_path: Path, port: int) -> tuple[asyncio.subprocess.Process, float]:
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "serve", "--config", str(config_path), cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(f"http://127.0.0.1:{port}/readyz") as resp:
                    if resp.status == 200:
                        return proc, time.perf_counter() - started
            except aiohttp.ClientError:
                pass
            if proc.returncode is not None or time.perf_counter() - started > 120:
                raise SystemExit("the gateway did not start")
            await asyncio.sleep(0.02)


async def ask(session: aiohttp.ClientSession, base: str, key: str, secret: str, number: str) -> float:
    body = json.dumps({"method": "orders", "params": {"order_number": number}, "pagination": {"limit": 1}}).encode()
    started = time.perf_counter()
    async with session.post(f"{base}/bot/{key}", data=body,
                            headers={"X-Joinchat-Signature": signing.sign_base64(secret, body)}) as resp:
        await resp.read()
        assert resp.status == 200, resp.status
    return time.perf_counter() - started


async def wait_sync(store: CountingStore, unknown: int, within: float = 120) -> float:
    """Until every unknown shop has all its subscriptions; seconds it took."""
    started = time.perf_counter()
    domains = [f"{key_of(n)}.myshopify.com" for n in range(2, 2 + unknown)]
    while any(len(store.shop(d).webhook_subscriptions) < len(TOPICS) for d in domains):
        if time.perf_counter() - started > within:
            raise SystemExit("the start-up sync did not finish")
        await asyncio.sleep(0.05)
    return time.perf_counter() - started


async def run(args: argparse.Namespace) -> None:
    store = CountingStore([], host="127.0.0.1", port=0)
    store.new_shop_orders, store.new_shop_products = 60, 10
    await store.start()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        results: dict[str, Any] = {}
        for label, shops in (("floor", 0), ("shops", args.shops)):
            port = free_port()
            db = tmp / f"{label}.sqlite3"
            public = f"http://127.0.0.1:{port}"
            store.oauth.add_app(SandboxApp(CLIENT_ID, CLIENT_SECRET, redirect_urls=(public + "/shopify/callback",)))
            secrets = await fill_store(db, store, shops, args.unknown, public + "/shopify/callback") if shops else {}
            store.reset_counters()
            store.peak = 0
            proc, ready = await start(config(tmp, port, store, db), port)
            try:
                sync = await wait_sync(store, args.unknown) if shops else 0.0
                await asyncio.sleep(1.0)  # what start-up allocated has settled
                results[label] = {"ready": ready, "rss": rss_kb(proc.pid), "requests": store.requests(),
                                  "peak": store.peak, "sync": sync}  # fmt: skip
                if shops:
                    results["lookups"] = await lookups(public, secrets, shops, args.lookups)
            finally:
                proc.terminate()
                await proc.wait()
    await store.stop()
    report(results, args)


async def lookups(base: str, secrets: dict[str, str], shops: int, rounds: int) -> dict[str, Any]:
    first, last = key_of(1), key_of(shops)
    async with aiohttp.ClientSession() as session:
        cold = {key: await ask(session, base, key, secrets[key], "1001") for key in (first, last)}
        warm: dict[str, list[float]] = {first: [], last: []}
        for i in range(rounds):
            number = str(1002 + i % 58)  # a different order each round: a cache miss, one Shopify request
            for key in ((first, last) if i % 2 == 0 else (last, first)):
                warm[key].append(await ask(session, base, key, secrets[key], number))
    return {"cold": cold, "warm": {k: statistics.median(v) for k, v in warm.items()}, "first": first, "last": last}


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    floor, full, lk = results["floor"], results["shops"], results["lookups"]
    per_shop_kb = (full["rss"] - floor["rss"]) / args.shops
    unknown_requests = args.unknown * (1 + len(TOPICS))
    print(f"shops in the store: {args.shops} ({args.unknown} with unknown webhook subscriptions)")
    print(f"start-up to ready: {full['ready']:.2f} s (floor, no shop: {floor['ready']:.2f} s; "
          f"ratio {full['ready'] / floor['ready']:.2f})   target ≤ 10 s: {'met' if full['ready'] <= 10 else 'MISSED'}")
    print(f"resident memory: {full['rss'] / 1024:.1f} MiB (floor {floor['rss'] / 1024:.1f} MiB) → "
          f"{per_shop_kb:.1f} KB per idle shop   target ≤ 200 KB: {'met' if per_shop_kb <= 200 else 'MISSED'}")
    print(f"Shopify requests at start: {full['requests']} (the {args.unknown} unknown shops: list + "
          f"{len(TOPICS)} creations each = {unknown_requests}; floor {floor['requests']}), at most {full['peak']} in "
          f"flight at once; sync done {full['sync']:.2f} s after ready   "
          f"(11 × N would be {11 * args.shops})")
    ratio_cold = lk["cold"][lk["last"]] / lk["cold"][lk["first"]]
    ratio_warm = lk["warm"][lk["last"]] / lk["warm"][lk["first"]]
    print(f"first lookup (builds the shop's client): #1 {lk['cold'][lk['first']] * 1000:.1f} ms, "
          f"#{args.shops} {lk['cold'][lk['last']] * 1000:.1f} ms (ratio {ratio_cold:.2f})")
    print(f"cache-miss lookups, median of {args.lookups}: #1 {lk['warm'][lk['first']] * 1000:.2f} ms, "
          f"#{args.shops} {lk['warm'][lk['last']] * 1000:.2f} ms (ratio {ratio_warm:.2f})   target ≈ 1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shops", type=int, default=1000)
    parser.add_argument("--unknown", type=int, default=10)
    parser.add_argument("--lookups", type=int, default=100)
    args = parser.parse_args()
    if args.shops < 2 + args.unknown:
        raise SystemExit("--shops must exceed --unknown + 1")
    asyncio.run(run(args))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
