"""End to end: distinct paid orders → Shopify webhooks → gateway (its own process, reading from the local store in
another) → signed pushes delivered to a local bot-platform receiver (this process, which also sends the webhooks);
in the same run, interleaved, the same webhooks through a bare aiohttp relay: the floor.

    .venv/bin/python bench/bench_push_e2e.py [--orders 1000] [--concurrency 32] [--rounds 3] [--backend sqlite|redis]
        [--timeout 120]

The webhooks are the local store's own: this process subscribes to ORDERS_PAID at the store, creates
`orders × rounds` paid orders through its admin surface and keeps every orders/paid delivery exactly as the store
signed it (Shopify's shape: no payment details, no line-item images; whatever else a push needs, the gateway reads).
The store runs with a bucket that never runs dry and its response cache on (bench_query_hit's `serve_store`): the
figures are the gateway's, not Shopify's throttling.

Rounds alternate gateway, relay, durable-read, durable-only, gateway, relay... Each gateway round starts a fresh
gateway (`gateway serve`, empty store) and gets orders of its own (it dedupes by event and pushes one receipt per
order); the relay round after it replays the same deliveries. The relay (its own process) is the ceiling of any
aiohttp design on this machine: it verifies the webhook's HMAC, answers 200 and pushes a signed POST to the same
receiver; no store, no rules, no read. The durable floors (`serve_durable`, their own process and SQLite file) are the
least a design meeting issue #8's durability does: durable-read (orders of its own, so no read is answered from the
store's response cache) appends the raw webhook to SQLite before the 200 (WAL, synchronous=FULL, group commit), reads
the orders with the gateway's push_orders document, 16 per request and at most 2 requests in flight as the gateway's
reader, pushes one signed POST per order and marks the rows delivered in batches; durable-only (replaying the same
deliveries) does the same without the read.

Prints per round and, best of rounds, for both: pushes/s (first webhook sent → last push received), webhook-to-push
p50/p99 (webhook sent → its push received), server CPU per push (all its threads); the ratio gateway/relay (target
≥ 0.8): the median over the pairs of a gateway round and the relay round right after it, since this shared 2-core
machine's speed drifts between minutes; and Shopify requests per push: GraphQL requests the store received during the
gateway round / pushes (target ≤ 0.1, i.e. reads batched over at least 10 orders). Then, for the durable floors and
the gateway: pushes/s over the rounds, CPU per push, the local store's CPU per push in the reading rounds (its GraphQL
execution of the reads, on the same cores), and the paired ratios durable/relay and gateway/durable.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_push_intake import pct, wait_up  # noqa: E402
from bench_query_hit import DOMAIN, TOKEN, cpu_seconds, serve_store, start_server, stop_server  # noqa: E402

from gateway import jsoncodec, signing  # noqa: E402
from gateway.push.reader import (  # noqa: E402
    CONCURRENT_REQUESTS,
    MAX_REQUEST_COST,
    PACKAGE_FULFILLMENTS,
    RECEIPT_LINE_ITEMS,
    receipt_cost,
)
from gateway.shopify.queries import load_query  # noqa: E402
from tests.fixtures_push import PUSH_SECRET, free_port, purge_redis_prefix, push_config  # noqa: E402
from tests.fixtures_sandbox import SANDBOX_CLIENT_SECRET  # noqa: E402

#: What the store signs its webhooks with (`serve_store`'s shop keeps SandboxShop.seeded's client secret).
WEBHOOK_SECRET = SANDBOX_CLIENT_SECRET
SUBSCRIBE = """mutation($uri: String!) { webhookSubscriptionCreate(topic: ORDERS_PAID,
  webhookSubscription: {uri: $uri, format: JSON}) { webhookSubscription { id } userErrors { message } } }"""
#: The durable floor's read: as many pending orders per `nodes(ids:)` request as fit Shopify's 1000 requested points
#: (16, as the gateway's reader splits), at most as many requests at once as the gateway's reader sends.
READ_BATCH = MAX_REQUEST_COST // receipt_cost(RECEIPT_LINE_ITEMS)
READS_IN_FLIGHT = CONCURRENT_REQUESTS
#: One bench round of each, in this order, per --rounds: the gateway; the bare relay on the same deliveries; the durable
#: floor with the read on orders of its own; the durable floor without the read on those.
KINDS = ("gateway", "relay", "durable-read", "durable-only")
READING = frozenset({"gateway", "durable-read"})


@dataclass
class Delivery:
    """One orders/paid webhook as the store sent it."""

    number: str  # the order's name without "#": what its push carries as params.order_number
    body: bytes
    headers: dict[str, str]


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
        number = jsoncodec.loads(raw)["params"]["order_number"]
        self.arrivals.setdefault(number, time.perf_counter())
        if len(self.arrivals) >= self.expected:
            self.done.set()
        return web.json_response({"success": True, "recipient_id": "r"})


@dataclass
class Platform:
    """This process's HTTP side: the bot platform receiving pushes (one Receiver per round) and the endpoint the store
    delivers the captured webhooks to."""

    port: int = field(default_factory=free_port)
    receiver: Receiver = field(default_factory=lambda: Receiver(0))
    captured: list[Delivery] = field(default_factory=list)

    async def push(self, request: web.Request) -> web.Response:
        return await self.receiver.handle(request)

    async def capture(self, request: web.Request) -> web.Response:
        body = await request.read()
        assert signing.verify(request.headers.get(signing.SHOPIFY_HEADER), body, [WEBHOOK_SECRET])
        headers = {k: v for k, v in request.headers.items() if k.startswith("X-Shopify-") or k == "Content-Type"}
        self.captured.append(Delivery(str(jsoncodec.loads(body)["name"]).lstrip("#"), body, headers))
        return web.Response(text="ok")


async def capture_webhooks(store: str, platform: Platform, count: int) -> list[Delivery]:
    """`count` paid orders created at the store, and the orders/paid webhook it sent for each."""
    async with aiohttp.ClientSession() as session:
        graphql = f"{store}/admin/api/2026-10/graphql.json"
        variables = {"uri": f"http://127.0.0.1:{platform.port}/capture"}
        async with session.post(graphql, json={"query": SUBSCRIBE, "variables": variables},
                                headers={"X-Shopify-Access-Token": TOKEN}) as r:
            assert (await r.json())["data"]["webhookSubscriptionCreate"]["userErrors"] == []
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(count):
            queue.put_nowait(i)

        async def creator() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                order = {"email": f"bench{i}@example.com", "financial_status": "PAID"}
                async with session.post(f"{store}/_sandbox/{DOMAIN}/orders", json=order) as r:
                    assert r.status == 201, await r.text()

        await asyncio.gather(*(creator() for _ in range(8)))
        async with session.post(f"{store}/_sandbox/webhooks/drain") as r:
            assert r.status == 200
        async with session.post(f"{store}/_sandbox/counters/reset") as r:
            assert r.status == 200
    assert len(platform.captured) == count, f"captured {len(platform.captured)} of {count} webhooks"
    return list(platform.captured)


def serve_frozen_store(port: int, orders: int) -> None:
    """bench_query_hit's store, which on SIGUSR1 collects and freezes what it holds (sent once the rounds' orders
    exist): the collector's full passes over thousands of orders made by the set-up would otherwise land on
    whichever round comes next (the store's CPU per push doubled in one round of each run)."""
    import gc

    signal.signal(signal.SIGUSR1, lambda *_: (gc.collect(), gc.freeze()))
    asyncio.run(serve_store(port, orders=orders))


class FloorServer:
    """What the relay and the durable floors share: one push session (as the gateway's: 64 keep-alive connections,
    no cookie jar), the signed push of two fields, background tasks kept alive, and the aiohttp app around them."""

    def __init__(self, push_url: str) -> None:
        self.push_url = push_url
        self.sessions: list[aiohttp.ClientSession] = []
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def push(self, email: Any, name: Any) -> None:
        body = jsoncodec.dumps({"topic": "Order/Receipt", "recipient": {"email": email},
                                "params": {"order_number": str(name).lstrip("#")}})
        headers = {"Content-Type": "application/json", signing.JOINCHAT_HEADER: signing.sign_base64(PUSH_SECRET, body)}
        async with self.sessions[0].post(self.push_url, data=body, headers=headers) as r:
            await r.read()

    @staticmethod
    def verified(request: web.Request, raw: bytes) -> bool:
        return signing.verify(request.headers.get(signing.SHOPIFY_HEADER), raw, [WEBHOOK_SECRET])

    def run(self, port: int, webhook: Callable[[web.Request], Any], closing: Callable[[], None] = lambda: None) -> None:
        async def session(app: web.Application) -> AsyncIterator[None]:
            self.sessions.append(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64),
                                                       cookie_jar=aiohttp.DummyCookieJar()))
            yield
            await self.sessions.pop().close()
            closing()

        app = web.Application(client_max_size=2 * 1024 * 1024)
        app.router.add_post("/webhooks/shopify", webhook)
        app.cleanup_ctx.append(session)
        print("ready", flush=True)
        web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def serve_relay(port: int, push_url: str) -> None:
    """The floor: verify the Shopify HMAC, answer 200, then push a signed POST over one keep-alive session."""
    server = FloorServer(push_url)

    async def webhook(request: web.Request) -> web.Response:
        raw = await request.read()
        if not server.verified(request, raw):
            return web.Response(status=401)
        order = jsoncodec.loads(raw)
        server.spawn(server.push(order.get("email"), order["name"]))
        return web.Response(text="ok")

    server.run(port, webhook)


class Journal:
    """The durable floor's store: SQLite in WAL mode with synchronous=FULL, as the gateway's push store, and group
    commit the same way — the statements of every operation queued meanwhile run on the loop in one transaction,
    its COMMIT (the fsync) in a thread, and only then are their callers answered."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, body BLOB NOT NULL,"
                          " delivered INTEGER NOT NULL DEFAULT 0)")
        self.pending: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self.busy = False
        self.pool = ThreadPoolExecutor(1)

    async def call(self, op: Callable[[sqlite3.Connection], Any]) -> Any:
        future = asyncio.get_running_loop().create_future()
        self.pending.append((op, future))
        if not self.busy:  # one flush at a time; what arrives meanwhile forms its next transaction
            self.busy = True
            asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending, []
                self.conn.execute("BEGIN IMMEDIATE")
                results = [op(self.conn) for op, _ in batch]
                await asyncio.get_running_loop().run_in_executor(self.pool, self.conn.execute, "COMMIT")
                for (_, future), result in zip(batch, results, strict=True):
                    future.set_result(result)
        finally:
            self.busy = False

    async def append(self, body: bytes) -> int:
        return int(await self.call(lambda c: c.execute("INSERT INTO events (body) VALUES (?)", (body,)).lastrowid))

    async def delivered(self, seqs: list[int]) -> None:
        await self.call(lambda c: c.executemany("UPDATE events SET delivered = 1 WHERE seq = ?",
                                                [(s,) for s in seqs]))


def serve_durable(port: int, push_url: str, store_url: str | None, journal_path: Path) -> None:
    """The durable floor: the least a design meeting issue #8's durability does. Verify the Shopify HMAC, append the
    raw webhook to SQLite (group commit) before the 200; then (with `store_url`) read the orders in batches — one
    `nodes(ids:)` request, the gateway's own push_orders document, for up to READ_BATCH pending orders, at most
    READS_IN_FLIGHT at once — and push one signed POST per order; rows are marked delivered in batches. No rules, no
    mapping beyond two fields, no retries. Without `store_url` the push is made from the webhook (durable only)."""
    journal = Journal(journal_path)
    server = FloorServer(push_url)
    unread: list[tuple[int, dict[str, Any]]] = []
    reads = asyncio.Semaphore(READS_IN_FLIGHT)
    done: list[int] = []
    document = load_query("push_orders")
    graphql = f"{store_url}/admin/api/2026-10/graphql.json"

    async def mark(seq: int) -> None:
        done.append(seq)
        if len(done) == 1:  # the first of a batch: the others delivered meanwhile ride along in one statement
            await asyncio.sleep(0)
            seqs = done[:]
            del done[:]
            await journal.delivered(seqs)

    async def push(seq: int, email: Any, name: Any) -> None:
        await server.push(email, name)
        await mark(seq)

    async def read_and_push() -> None:
        async with reads:
            batch = unread[:READ_BATCH]
            del unread[:READ_BATCH]
            if not batch:
                return
            variables = {"receiptIds": [o["admin_graphql_api_id"] for _, o in batch], "packageIds": [],
                         "lineItems": RECEIPT_LINE_ITEMS, "fulfillments": PACKAGE_FULFILLMENTS}
            async with server.sessions[0].post(graphql, json={"query": document, "variables": variables},
                                        headers={"X-Shopify-Access-Token": TOKEN}) as r:
                answer = await r.json(loads=jsoncodec.loads)
            assert answer.get("data"), answer  # a document the store refuses shows here, not as a hang
            nodes = answer["data"]["receipts"]
            for (seq, _), node in zip(batch, nodes, strict=True):
                server.spawn(push(seq, node["email"], node["name"]))
        if unread:
            server.spawn(read_and_push())

    async def webhook(request: web.Request) -> web.Response:
        raw = await request.read()
        if not server.verified(request, raw):
            return web.Response(status=401)
        order = jsoncodec.loads(raw)
        seq = await journal.append(raw)
        if store_url is None:
            server.spawn(push(seq, order.get("email"), order["name"]))
        else:
            unread.append((seq, order))
            if not reads.locked():
                server.spawn(read_and_push())
        return web.Response(text="ok")

    server.run(port, webhook, closing=journal.pool.shutdown)


@dataclass
class Round:
    kind: str
    pushes: int
    seconds: float
    acked_seconds: float
    latencies_ms: list[float]
    cpu_seconds: float
    shopify_requests: int | None
    bad: int
    store_cpu_seconds: float = 0.0  # the local store's CPU during the round (its GraphQL execution of the reads)
    bench_cpu_seconds: float = 0.0  # this process's: the webhook senders and the receiving bot platform

    def total_us(self) -> float:
        """CPU per push of every process of the round (server, local store, this bench), in µs."""
        return (self.cpu_seconds + self.store_cpu_seconds + self.bench_cpu_seconds) / self.pushes * 1e6

    @property
    def rate(self) -> float:
        return self.pushes / self.seconds

    def line(self) -> str:
        shopify = ("" if self.shopify_requests is None else
                   f", Shopify requests {self.shopify_requests} ({self.shopify_requests / self.pushes:.3f}/push)")
        store = f", store CPU {self.store_cpu_seconds / self.pushes * 1e6:.0f} us/push" if self.store_cpu_seconds else ""
        return (f"  round: {self.kind:12} {self.rate:6.0f} pushes/s (acked {self.pushes / self.acked_seconds:.0f}/s), "
                f"p50 {pct(self.latencies_ms, 0.5):.0f} ms, p99 {pct(self.latencies_ms, 0.99):.0f} ms, "
                f"CPU {self.cpu_seconds / self.pushes * 1e6:.0f} us/push{shopify}{store}, "
                f"bench CPU {self.bench_cpu_seconds / self.pushes * 1e6:.0f} us/push")


async def send_all(url: str, deliveries: list[Delivery], concurrency: int, sent: dict[str, float]) -> None:
    queue: asyncio.Queue[Delivery] = asyncio.Queue()
    for d in deliveries:
        queue.put_nowait(d)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def sender() -> None:
            while not queue.empty():
                d = queue.get_nowait()
                sent[d.number] = time.perf_counter()
                async with session.post(url, data=d.body, headers=d.headers) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"webhook answered HTTP {r.status}")

        await asyncio.gather(*(sender() for _ in range(concurrency)))


async def warm_store(store: str) -> None:
    """One push read of each id-list length a round sends, on the seeded orders: the store prices a document once per
    length, and that one-time work would land on the first reading round only."""
    async with aiohttp.ClientSession() as session:
        graphql = f"{store}/admin/api/2026-10/graphql.json"
        ids = [f"gid://shopify/Order/{n}" for n in range(1, READ_BATCH + 1)]
        for length in range(1, READ_BATCH + 1):
            variables = {"receiptIds": ids[:length], "packageIds": [], "lineItems": RECEIPT_LINE_ITEMS,
                         "fulfillments": PACKAGE_FULFILLMENTS}
            async with session.post(graphql, json={"query": load_query("push_orders"), "variables": variables},
                                    headers={"X-Shopify-Access-Token": TOKEN}) as r:
                assert "data" in await r.json(), await r.text()


async def shopify_requests(store: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"{store}/_sandbox/counters") as r:
        return int((await r.json())[DOMAIN])


async def purge_redis(raw: dict[str, Any]) -> None:
    """Delete the round's keys (each gateway round has a prefix of its own)."""
    from gateway.push.redis.store import RedisPushStore
    from gateway.settings import parse_settings

    storage = parse_settings(raw, env={}).storage
    janitor = RedisPushStore(storage.redis_url, prefix=storage.redis_prefix)
    await janitor.open()
    try:
        await purge_redis_prefix(janitor)
    finally:
        await janitor.close()


async def one_round(kind: str, deliveries: list[Delivery], platform: Platform, store: str, store_pid: int, tmp: Path,
                    args: argparse.Namespace) -> Round:
    push_url = f"http://127.0.0.1:{platform.port}/push"
    port = free_port()
    platform.receiver = receiver = Receiver(len(deliveries))
    if kind == "gateway":
        raw = push_config(push_url, tmp / f"e2e-{port}.sqlite3", server={"port": port}, admin_api_base=store,
                          shop={"domain": DOMAIN, "auth": {"mode": "token", "access_token": TOKEN},
                                "webhook_secret": WEBHOOK_SECRET})
        if args.backend == "redis":
            raw["storage"] = {"backend": "redis", "redis_prefix": f"bench-e2e-{uuid.uuid4().hex[:8]}"}
        config = tmp / f"config-{port}.yaml"
        config.write_text(yaml.safe_dump(raw))
        gateway = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.cli", "serve", "--config", str(config), cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        pid = gateway.pid
        await wait_up(f"http://127.0.0.1:{port}")
    else:
        extra = [] if kind == "relay" else ["--journal", str(tmp / f"journal-{port}.sqlite3")]
        if kind == "durable-read":
            extra += ["--store-url", store]
        serve = "relay" if kind == "relay" else "durable"
        relay = start_server("--serve", serve, "--port", str(port), "--push-url", push_url, *extra, script=__file__)
        pid = relay.pid
        await wait_up(f"http://127.0.0.1:{port}")
    try:
        requests_before = await shopify_requests(store)
        sent: dict[str, float] = {}
        cpu0, store_cpu0, bench_cpu0 = cpu_seconds(pid), cpu_seconds(store_pid), cpu_seconds(os.getpid())
        started = time.perf_counter()
        await send_all(f"http://127.0.0.1:{port}/webhooks/shopify", deliveries, args.concurrency, sent)
        acked = time.perf_counter()
        await asyncio.wait_for(receiver.done.wait(), args.timeout)
        finished = max(receiver.arrivals.values())
        cpu, store_cpu = cpu_seconds(pid) - cpu0, cpu_seconds(store_pid) - store_cpu0
        bench_cpu = cpu_seconds(os.getpid()) - bench_cpu0
        requests = await shopify_requests(store) - requests_before
    finally:
        if kind == "gateway":
            gateway.send_signal(signal.SIGTERM)
            await gateway.wait()
            if args.backend == "redis":
                await purge_redis(raw)
        else:
            stop_server(relay)
    latencies = [(receiver.arrivals[k] - sent[k]) * 1000 for k in receiver.arrivals]
    return Round(kind, len(receiver.arrivals), finished - started, acked - started, latencies, cpu,
                 requests if kind in READING else None, receiver.bad, store_cpu if kind in READING else 0.0,
                 bench_cpu)


async def main(args: argparse.Namespace) -> None:
    platform = Platform()
    app = web.Application()
    app.router.add_post("/push", platform.push)
    app.router.add_post("/capture", platform.capture)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", platform.port).start()
    store_port = free_port()
    store_proc = start_server("--serve", "store", "--port", str(store_port), "--seeded", "60", script=__file__)
    store = f"http://127.0.0.1:{store_port}"
    rounds: list[Round] = []
    try:
        # orders of its own for each reading round (gateway, durable-read): no read finds its answer in the store's
        # response cache; the relay and durable-only rounds replay the deliveries of the reading round before them
        deliveries = await capture_webhooks(store, platform, args.orders * args.rounds * 2)
        store_proc.send_signal(signal.SIGUSR1)
        await warm_store(store)  # answered once the store's main thread ran the collection
        with tempfile.TemporaryDirectory() as tmp:
            for n in range(args.rounds):
                own = deliveries[2 * n * args.orders:(2 * n + 1) * args.orders]
                floor = deliveries[(2 * n + 1) * args.orders:(2 * n + 2) * args.orders]
                for kind, batch in zip(KINDS, (own, own, floor, floor), strict=True):
                    rounds.append(await one_round(kind, batch, platform, store, store_proc.pid, Path(tmp), args))
                    print(rounds[-1].line(), flush=True)
    finally:
        stop_server(store_proc)
        await runner.cleanup()
    gateway = max((r for r in rounds if r.kind == "gateway"), key=lambda r: r.rate)
    relay = max((r for r in rounds if r.kind == "relay"), key=lambda r: r.rate)
    by_kind = {kind: [r for r in rounds if r.kind == kind] for kind in KINDS}

    def paired(a: str, b: str) -> list[float]:
        """a's pushes/s over b's, round by round: the same minutes of this shared machine."""
        return [x.rate / y.rate for x, y in zip(by_kind[a], by_kind[b], strict=True)]

    # each gateway round against the relay round right after it
    pairs = paired("gateway", "relay")
    ratio = statistics.median(pairs)
    assert gateway.shopify_requests is not None
    per_push = gateway.shopify_requests / gateway.pushes
    print(f"push end to end ({args.backend}): {args.orders} paid orders per round, {args.concurrency} concurrent "
          f"webhook senders, best of {args.rounds} interleaved rounds each, {os.cpu_count()} cores")
    print(f"  pushes/s              : gateway {gateway.rate:.0f}, bare relay {relay.rate:.0f} (best rounds); ratio "
          f"{ratio:.2f}, the median of the interleaved pairs {' · '.join(f'{p:.2f}' for p in pairs)} "
          f"(target >= 0.8: {'met' if ratio >= 0.8 else 'MISSED'})")
    for r in (gateway, relay):
        p99 = pct(r.latencies_ms, 0.99)
        verdict = f" (target <= 250 ms: {'met' if p99 <= 250 else 'MISSED'})" if r is gateway else ""
        print(f"  webhook-to-push {r.kind:7}: p50 {pct(r.latencies_ms, 0.5):.0f} ms, p99 {p99:.0f} ms{verdict}; "
              f"CPU {r.cpu_seconds / r.pushes * 1e6:.0f} us per push (all its threads); bad signatures {r.bad}")
    cpu_ratio = statistics.median(r.cpu_seconds / r.pushes for r in rounds if r.kind == "relay") / statistics.median(
        g.cpu_seconds / g.pushes for g in rounds if g.kind == "gateway")
    print(f"  CPU per push          : relay / gateway {cpu_ratio:.2f} (medians over the rounds; steadier than pushes/s "
          f"when other jobs share the cores)")
    print(f"  Shopify requests/push : {per_push:.3f} ({gateway.shopify_requests} GraphQL requests for "
          f"{gateway.pushes} pushes; target <= 0.1: {'met' if per_push <= 0.1 else 'MISSED'})")
    print("  durable floors (the least issue #8's durability asks: HMAC, SQLite group commit before the 200, batched "
          "read, signed push, delivered marked in batches; no rules, no retries):")
    for kind in ("durable-read", "durable-only", "gateway"):
        runs = by_kind[kind]
        store = statistics.median(r.store_cpu_seconds / r.pushes for r in runs) if kind in READING else 0.0
        print(f"  {kind:12}          : pushes/s {min(r.rate for r in runs):.0f}-{max(r.rate for r in runs):.0f}, "
              f"p50 {statistics.median(pct(r.latencies_ms, 0.5) for r in runs):.0f} ms, CPU "
              f"{statistics.median(r.cpu_seconds / r.pushes for r in runs) * 1e6:.0f} us/push"
              + (f", local store CPU {store * 1e6:.0f} us/push (same cores)" if kind in READING else "")
              + (f", Shopify requests {statistics.median(r.shopify_requests or 0 for r in runs) / args.orders:.3f}"
                 "/push" if kind in READING else "")
              + f"; bad signatures {sum(r.bad for r in runs)} (medians over the rounds)")
    for a, b in (("durable-read", "relay"), ("durable-only", "relay"), ("gateway", "durable-read"),
                 ("gateway", "durable-only")):
        ratios = paired(a, b)
        verdict = f" (0.8 {'met' if statistics.median(ratios) >= 0.8 else 'MISSED'})" if b == "relay" else ""
        print(f"  ratio {a} / {b:12}: {statistics.median(ratios):.2f}, the median of "
              f"{' · '.join(f'{p:.2f}' for p in ratios)}{verdict}")
    # The relay round is bound by the relay's one core (its CPU per push ~ its wall time per push), so a design
    # spending T us of CPU per push over all the round's processes can reach at most cores x relay CPU / T of the
    # relay's pushes/s, even with every core busy; 0.8x needs T <= cores x relay CPU / 0.8. CPU per push is steadier
    # than pushes/s when other jobs share the cores.
    cores = os.cpu_count() or 1
    relay_us = statistics.median(r.cpu_seconds / r.pushes for r in by_kind["relay"]) * 1e6
    spent = {kind: statistics.median(r.total_us() for r in by_kind[kind]) for kind in KINDS}
    print(f"  CPU bound on the ratio: 0.8x needs <= {cores * relay_us / 0.8:.0f} us per push over all processes "
          f"({cores} cores x relay {relay_us:.0f} us / 0.8); spent (server + store + bench, medians) and the ceiling "
          f"that leaves: " + " · ".join(f"{kind} {spent[kind]:.0f} us -> {cores * relay_us / spent[kind]:.2f}"
                                        for kind in ("gateway", "durable-read", "durable-only")))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a round may take")
    parser.add_argument("--serve", choices=["relay", "durable", "store"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--push-url", help=argparse.SUPPRESS)
    parser.add_argument("--store-url", help=argparse.SUPPRESS)
    parser.add_argument("--journal", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--seeded", type=int, default=60, help=argparse.SUPPRESS)
    cli = parser.parse_args()
    if cli.serve == "relay":
        serve_relay(cli.port, cli.push_url)
    elif cli.serve == "store":
        serve_frozen_store(cli.port, cli.seeded)
    elif cli.serve == "durable":
        serve_durable(cli.port, cli.push_url, cli.store_url, cli.journal)
    else:
        asyncio.run(main(cli))
