"""Failover: two gateway replicas on one Redis behind a round-robin load balancer; one is killed with SIGKILL once 40 %
of the webhooks were acknowledged, and restarted 2 s later, or never (docs/replicas.md).

    .venv/bin/python bench/bench_push_failover.py [--orders 2000] [--kill-at 0.4] [--restart-after 2]
        [--throughput-orders 1000] [--rounds 2] [--tree PATH] [--lease 6 --heartbeat 2]

The webhooks are the local store's own orders/paid deliveries (captured first, as bench_push_e2e.py does; the store
runs in its own process with a bucket that never runs dry), `--orders` distinct orders per scenario. 32 senders post
them through the balancer: each webhook goes to the next replica in turn, and a send that fails (the killed replica)
goes to the other one, as a load balancer retries. Each replica pushes to a path of its own on this process's
receiver, so every push that arrives says which replica sent it.

Per scenario (no restart; restart after `--restart-after` s) it prints:
- lost: acknowledged webhooks whose push never arrived (within `--timeout` s of the last acknowledgement); target 0;
- duplicates: Idempotency-Keys that arrived more than once, and how many of them were in flight at the kill (their
  first copy reached the killed replica's path before the kill's restart: that replica sent it and never recorded it);
  every duplicate should be one of those;
- kill → last push: from the kill to the last first-arrival of any push (target <= 10 s), to the last push of the
  orders the killed replica had acknowledged but not yet pushed (its stranded work), and to nothing pending in the
  store (re-sends at a lease's expiry included: duplicates are counted then);
- what the replicas counted (gateway_push_lease_takeovers_total).

Throughput: `--throughput-orders` orders through one replica, then through two (fresh prefix, fresh orders each),
`--rounds` times interleaved; pushes/s = orders / (first webhook sent → last push arrived), and the replicas' CPU per
push (steadier when other jobs share the cores). Target: two >= one (the median of the paired ratios).

`--tree PATH` runs the gateway of another checkout (for instance the branch point, exported with `git archive`): its
config then carries no lease settings, which a gateway from before leases would refuse.
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
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_push_e2e import WEBHOOK_SECRET, Delivery, Platform, capture_webhooks, shopify_requests  # noqa: E402
from bench.bench_query_hit import DOMAIN, TOKEN, cpu_seconds, start_server, stop_server  # noqa: E402
from gateway import signing  # noqa: E402
from gateway.push.redis.store import RedisPushStore  # noqa: E402
from tests.fixtures_push import PUSH_SECRET, free_port  # noqa: E402
from tests.fixtures_replicas import REDIS_URL, ReplicaProcess, purge, replica_config  # noqa: E402

E2E_SCRIPT = ROOT / "bench" / "bench_push_e2e.py"
SENDERS = 32


@dataclass
class Arrival:
    replica: str  # the path it came in on: the replica that sent it
    key: str  # Idempotency-Key
    order: str  # params.order_number
    at: float  # time.time()


@dataclass
class Receiver:
    """The bot platform: POST /push/{replica}, signature checked, every arrival kept."""

    arrivals: list[Arrival] = field(default_factory=list)
    bad: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if not signing.verify(request.headers.get(signing.JOINCHAT_HEADER), raw, [PUSH_SECRET]):
            self.bad += 1
            return web.json_response({"success": False}, status=401)
        order = str(json.loads(raw)["params"]["order_number"])
        replica, key = request.match_info["replica"], request.headers["Idempotency-Key"]
        self.arrivals.append(Arrival(replica, key, order, time.time()))
        self.changed.set()
        return web.json_response({"success": True, "recipient_id": "r"})

    def first_arrivals(self) -> dict[str, Arrival]:
        first: dict[str, Arrival] = {}
        for a in self.arrivals:
            first.setdefault(a.order, a)
        return first

    async def until(self, orders: set[str], quiet_seconds: float) -> bool:
        """Until a push arrived for each of `orders`; False after `quiet_seconds` without a new arrival."""
        while not orders <= {a.order for a in self.arrivals}:
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), quiet_seconds)
            except TimeoutError:
                return False
        return True


class Balancer:
    """Round robin over the replicas; a failed send goes to the next one (each replica twice at most)."""

    def __init__(self, replicas: list[ReplicaProcess]) -> None:
        self.replicas = replicas
        self.turn = 0
        self.acked: dict[str, str] = {}  # order number → the replica that acknowledged it

    async def send(self, session: aiohttp.ClientSession, delivery: Delivery) -> None:
        first, self.turn = self.turn, self.turn + 1
        for attempt in range(2 * len(self.replicas)):
            replica = self.replicas[(first + attempt) % len(self.replicas)]
            try:
                async with session.post(
                    f"{replica.url}/webhooks/shopify", data=delivery.body, headers=delivery.headers
                ) as resp:
                    await resp.read()
                    if resp.status == 200:
                        self.acked[delivery.number] = replica.name
                        return
            except (aiohttp.ClientError, ConnectionError):
                pass
            if replica.proc is None or replica.proc.returncode is not None:
                await asyncio.sleep(0)  # the dead one: straight to the next
        raise RuntimeError(f"no replica acknowledged order {delivery.number}")


@dataclass
class Bench:
    args: argparse.Namespace
    store: str
    receiver: Receiver
    receiver_port: int
    workdir: Path

    def replica(self, name: str, prefix: str) -> ReplicaProcess:
        raw = replica_config(
            port=free_port(),
            receiver_url=f"http://127.0.0.1:{self.receiver_port}/push/{name}",
            admin_api_base=self.store,
            prefix=prefix,
            lease_seconds=None if self.args.tree else self.args.lease,
            heartbeat_seconds=None if self.args.tree else self.args.heartbeat,
            push={"timeout_seconds": 10},  # the default: a branch-point gateway leases a push for 10 + 30 s
        )
        raw["shops"]["demo"].update(
            domain=DOMAIN, auth={"mode": "token", "access_token": TOKEN}, webhook_secret=WEBHOOK_SECRET
        )
        return ReplicaProcess(name, raw, self.workdir, tree=self.args.tree or ROOT)


async def send_all(balancer: Balancer, deliveries: list[Delivery], on_ack: object = None) -> None:
    pending = list(deliveries)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=SENDERS)) as session:

        async def sender() -> None:
            while pending:
                await balancer.send(session, pending.pop(0))
                if callable(on_ack):
                    await on_ack()

        await asyncio.gather(*(sender() for _ in range(SENDERS)))


async def drained(prefix: str, quiet_seconds: float) -> float:
    """Wait until the store has no pending event or push left (a re-send after a lease expiry comes before that);
    returns when (time.time()), or NaN after `quiet_seconds` more. The key layout read here is the branch point's
    too."""
    view = RedisPushStore(REDIS_URL, prefix=prefix)
    await view.open()
    try:
        deadline = time.time() + quiet_seconds
        while time.time() < deadline:
            backlog = await view.outbox.backlog()
            if backlog["events"] == 0 and backlog["pushes"] == 0:
                return time.time()
            await asyncio.sleep(0.1)
        return float("nan")
    finally:
        await view.close()


@dataclass
class Throughput:
    rate: float  # pushes/s: orders / (first webhook sent → last push arrived)
    cpu_us: float  # the replicas' CPU per push (all their threads), steadier than the rate on a shared machine
    reads: float  # Shopify (local store) GraphQL requests per push: how well the replicas batch their reads


async def throughput(bench: Bench, replicas: int, deliveries: list[Delivery]) -> Throughput:
    prefix = f"bench-failover-{uuid.uuid4().hex[:8]}"
    processes = [bench.replica(name, prefix) for name in "ab"[:replicas]]
    await asyncio.gather(*(p.start() for p in processes))
    bench.receiver.arrivals.clear()
    pids = [p.proc.pid for p in processes if p.proc is not None]
    try:
        cpu0 = sum(cpu_seconds(pid) for pid in pids)
        requests0 = await shopify_requests(bench.store)
        started = time.time()
        await send_all(Balancer(processes), deliveries)
        orders = {d.number for d in deliveries}
        if not await bench.receiver.until(orders, bench.args.timeout):
            raise RuntimeError(f"{replicas} replica(s): pushes missing after {bench.args.timeout} s")
        finished = max(a.at for a in bench.receiver.first_arrivals().values())
        cpu = sum(cpu_seconds(pid) for pid in pids) - cpu0
        reads = (await shopify_requests(bench.store) - requests0) / len(deliveries)
        return Throughput(len(deliveries) / (finished - started), cpu / len(deliveries) * 1e6, reads)
    finally:
        for p in processes:
            await p.stop()
        await purge(prefix)


@dataclass
class Failover:
    restart_after: float | None
    acked: int = 0
    lost: int = 0
    duplicates: int = 0
    in_flight_duplicates: int = 0
    kill_to_last: float = 0.0
    kill_to_last_stranded: float = 0.0
    kill_to_drained: float = 0.0
    stranded: int = 0
    restart_ready: float | None = None  # seconds from the kill to the restarted replica's /readyz
    takeovers: str = ""

    def line(self) -> str:
        kind = "no restart" if self.restart_after is None else f"restart after {self.restart_after:g} s"
        return (
            f"  {kind:18}: acked {self.acked}, lost {self.lost} (target 0: {'met' if self.lost == 0 else 'MISSED'}),"
            f" duplicates by key {self.duplicates}, of them in flight at the kill {self.in_flight_duplicates}"
            f" ({'all' if self.duplicates == self.in_flight_duplicates else 'NOT all'});"
            f" kill → last push {self.kill_to_last:.1f} s (target <= 10 s:"
            f" {'met' if self.kill_to_last <= 10 else 'MISSED'}), → last of the {self.stranded} stranded"
            f" {self.kill_to_last_stranded:.1f} s, → nothing pending {self.kill_to_drained:.1f} s"
            + (f"; restarted replica ready {self.restart_ready:.1f} s after the kill" if self.restart_ready else "")
            + (f"; {self.takeovers}" if self.takeovers else "")
        )


async def failover(bench: Bench, deliveries: list[Delivery], restart_after: float | None) -> Failover:
    prefix = f"bench-failover-{uuid.uuid4().hex[:8]}"
    a, b = bench.replica("a", prefix), bench.replica("b", prefix)
    await asyncio.gather(a.start(), b.start())
    bench.receiver.arrivals.clear()
    balancer = Balancer([a, b])
    kill_after = int(len(deliveries) * bench.args.kill_at)
    killed_at: list[float] = []
    restarted_at: list[float] = []
    background: list[asyncio.Task[None]] = []

    async def restart_later(delay: float) -> None:
        await asyncio.sleep(delay)
        restarted_at.append(time.time())
        await a.start()
        restarted_at.append(time.time())

    async def on_ack() -> None:
        if len(balancer.acked) >= kill_after and not killed_at:
            killed_at.append(time.time())
            a.signal(signal.SIGKILL)
            if restart_after is not None:
                background.append(asyncio.create_task(restart_later(restart_after)))

    try:
        await send_all(balancer, deliveries, on_ack)
        for task in background:
            await task
        orders = set(balancer.acked)
        await bench.receiver.until(orders, bench.args.timeout)
        kill = killed_at[0]
        # duplicates are counted once nothing is pending: a re-send at a lease's expiry may come after the last
        # order's first push
        settled = await drained(prefix, bench.args.timeout)
        # What the killed replica acknowledged and had not pushed at the kill: the work it stranded.
        first = bench.receiver.first_arrivals()
        stranded = {o for o, r in balancer.acked.items() if r == "a" and (o not in first or first[o].at > kill)}
        result = Failover(restart_after, acked=len(orders), lost=len(orders - set(first)), stranded=len(stranded))
        arrived = [first[o].at for o in orders if o in first]
        result.kill_to_last = max(arrived) - kill if arrived else float("nan")
        stranded_at = [first[o].at for o in stranded if o in first]
        result.kill_to_last_stranded = max(stranded_at) - kill if stranded_at else 0.0
        result.kill_to_drained = settled - kill
        result.restart_ready = restarted_at[1] - kill if len(restarted_at) > 1 else None
        counts = Counter(x.key for x in bench.receiver.arrivals)
        duplicates = {k for k, n in counts.items() if n > 1}
        cutoff = restarted_at[0] if restarted_at else float("inf")
        # in flight at the kill: its first copy came from the killed start of replica a (before its restart)
        first_copy: dict[str, Arrival] = {}
        for x in bench.receiver.arrivals:
            first_copy.setdefault(x.key, x)
        result.duplicates = sum(counts[k] - 1 for k in duplicates)
        result.in_flight_duplicates = sum(
            counts[k] - 1 for k in duplicates if first_copy[k].replica == "a" and first_copy[k].at < cutoff
        )
        if not bench.args.tree:
            b_took = await b.metric("gateway_push_lease_takeovers_total", reason="expired")
            result.takeovers = f"b took over {b_took:.0f} leases"
            if restart_after is not None:
                a_back = await a.metric("gateway_push_lease_takeovers_total", reason="restart")
                result.takeovers += f", the restarted a took back {a_back:.0f}"
        return result
    finally:
        for p in (a, b):
            await p.stop()
        await purge(prefix)


async def main(args: argparse.Namespace) -> None:
    platform = Platform()
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/capture", platform.capture)
    app.router.add_post("/push/{replica}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", platform.port).start()
    store_port = free_port()
    store_proc = start_server("--serve", "store", "--port", str(store_port), "--seeded", "60", script=str(E2E_SCRIPT))
    store = f"http://127.0.0.1:{store_port}"
    tree = f"the gateway of {args.tree}" if args.tree else f"lease {args.lease:g} s, heartbeat {args.heartbeat:g} s"
    print(f"failover bench: {args.orders} orders per scenario, kill at {args.kill_at:.0%} acknowledged; {tree}")
    try:
        per_round = 2 * args.throughput_orders
        deliveries = await capture_webhooks(store, platform, 2 * args.orders + args.rounds * per_round)
        store_proc.send_signal(signal.SIGUSR1)  # the store freezes what set-up made (see bench_push_e2e)
        with tempfile.TemporaryDirectory() as tmp:
            bench = Bench(args, store, receiver, platform.port, Path(tmp))
            one: list[Throughput] = []
            two: list[Throughput] = []
            base = 2 * args.orders
            for n in range(args.rounds):
                batch = deliveries[base + n * per_round : base + (n + 1) * per_round]
                one.append(await throughput(bench, 1, batch[: args.throughput_orders]))
                two.append(await throughput(bench, 2, batch[args.throughput_orders :]))
                print(
                    f"  throughput round {n + 1}: one replica {one[-1].rate:.0f} pushes/s ({one[-1].cpu_us:.0f} us CPU"
                    f" and {one[-1].reads:.3f} store requests per push), two {two[-1].rate:.0f} pushes/s"
                    f" ({two[-1].cpu_us:.0f} us, {two[-1].reads:.3f})",
                    flush=True,
                )
            results = [
                await failover(bench, deliveries[: args.orders], None),
                await failover(bench, deliveries[args.orders : 2 * args.orders], args.restart_after),
            ]
            for r in results:
                print(r.line(), flush=True)
            ratios = [t.rate / o.rate for t, o in zip(two, one, strict=True)]
            ratio = statistics.median(ratios)
            print(
                f"  throughput: one replica {statistics.median(t.rate for t in one):.0f} pushes/s, two"
                f" {statistics.median(t.rate for t in two):.0f} (medians of {args.rounds} interleaved rounds); two / one"
                f" {ratio:.2f}, the median of {' · '.join(f'{r:.2f}' for r in ratios)}"
                f" (target >= 1: {'met' if ratio >= 1 else 'MISSED'}); CPU per push one"
                f" {statistics.median(t.cpu_us for t in one):.0f} us, two {statistics.median(t.cpu_us for t in two):.0f} us"
            )
            if receiver.bad:
                print(f"  bad push signatures: {receiver.bad}")
    finally:
        stop_server(store_proc)
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--kill-at", type=float, default=0.4)
    parser.add_argument("--restart-after", type=float, default=2.0)
    parser.add_argument("--throughput-orders", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds without a new push before giving up")
    parser.add_argument("--tree", type=Path, help="run the gateway of this checkout (e.g. the branch point)")
    parser.add_argument("--lease", type=float, default=6.0)
    parser.add_argument("--heartbeat", type=float, default=2.0)
    asyncio.run(main(parser.parse_args()))
