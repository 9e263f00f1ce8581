"""Replicas as real processes on one Redis prefix (docs/replicas.md): a replica killed mid-burst hands its work over (on
one shared SQLite file too), a replica that restarts takes its own work back at once, and a replica paused past its
lease does not deliver or commit the work it lost.

Each replica pushes to a receiver of its own, so every push that arrives says which replica sent it. The order
reads come from the local store in this process. Leases are short (seconds) so the tests run in seconds; they
assert on what happened (who delivered what, who owns what in Redis, the replicas' counters), never on how long it
took. A duplicate delivery is allowed only for a push that was in flight at the kill or the pause: its first copy
reached the receiver of the replica that was killed or paused (that replica sent it and never recorded it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.push.redis.store import RedisPushStore
from tests.fixtures_push import (
    SHOP_DOMAIN,
    eventually,
    free_port,
    open_redis_or_skip,
    purge_redis_prefix,
    rest_order,
)
from tests.fixtures_replicas import (
    REDIS_URL,
    Door,
    HeldReceiver,
    LoadBalancer,
    ReplicaProcess,
    receipt_orders,
    replica_config,
)
from tests.store_mirror import mirror_webhook

pytestmark = pytest.mark.slow


@pytest.fixture
async def redis_view() -> AsyncIterator[RedisPushStore]:
    """A store on a fresh prefix, to look at what the replicas wrote (the prefix is purged after the test)."""
    store = RedisPushStore(REDIS_URL, prefix=f"test-replicas-{uuid.uuid4().hex[:12]}")
    await open_redis_or_skip(store)
    try:
        yield store
    finally:
        await purge_redis_prefix(store)
        await store.close()


@pytest.fixture
async def receivers() -> AsyncIterator[dict[str, HeldReceiver]]:
    """A bot platform per replica name."""
    made = {name: HeldReceiver() for name in ("a", "b")}
    for receiver in made.values():
        await receiver.start()
    try:
        yield made
    finally:
        for receiver in made.values():
            receiver.release()
            await receiver.stop()


class Cluster:
    """The replicas of a test, their receivers, and a view of the store they share: the Redis prefix, or (backend
    "sqlite") one SQLite file that every replica process serves under its own replica id."""

    def __init__(
        self, tmp_path: Path, view: RedisPushStore, sandbox: Any, receivers: dict[str, HeldReceiver], backend: str
    ) -> None:
        self.tmp_path = tmp_path
        self.view = view
        self.sqlite_path = tmp_path / "shared.sqlite3" if backend == "sqlite" else None
        self.sandbox = sandbox
        self.receivers = receivers
        self.replicas: list[ReplicaProcess] = []
        self.shop = sandbox.shop(SHOP_DOMAIN)
        # Hundreds of receipt reads in seconds: a Commerce Components bucket (this is about leases, not pacing).
        self.shop.bucket_size, self.shop.restore_rate = 40_000, 2_000

    def replica(self, name: str, *, lease: float, heartbeat: float, store_url: str | None = None) -> ReplicaProcess:
        config = replica_config(
            port=free_port(),
            receiver_url=self.receivers[name].url,
            admin_api_base=store_url or self.sandbox.base_url,
            prefix=self.view.db.prefix,
            sqlite_path=self.sqlite_path,
            lease_seconds=lease,
            heartbeat_seconds=heartbeat,
            # A delivery may wait far longer than a lease: the heartbeat keeps its lease (held answers test it).
            push={"timeout_seconds": 30},
        )
        replica = ReplicaProcess(name, config, self.tmp_path)
        self.replicas.append(replica)
        return replica

    def orders(self, first: int, count: int) -> dict[int, bytes]:
        """`count` paid orders the local store holds, as their orders/paid bodies."""
        bodies = {}
        for order_id in range(first, first + count):
            payload = rest_order(order_id, name=f"#{order_id}")
            mirror_webhook(self.shop, "orders/paid", payload)
            bodies[order_id] = json.dumps(payload).encode()
        return bodies

    async def post_all(self, to: list[ReplicaProcess], bodies: dict[int, bytes]) -> LoadBalancer:
        balancer = LoadBalancer(to)
        async with aiohttp.ClientSession() as session:
            for order_id, body in bodies.items():
                assert await balancer.send(session, order_id, body, f"evt-{order_id}"), balancer.failures[-4:]
        return balancer

    def delivered(self) -> Counter[str]:
        """Idempotency-Key → how many times any receiver accepted it."""
        return Counter(r.headers["Idempotency-Key"] for rec in self.receivers.values() for r in rec.delivered())

    def keys_at(self, name: str) -> set[str]:
        return {r.headers["Idempotency-Key"] for r in self.receivers[name].delivered()}

    def receipts(self) -> set[int]:
        return {o for rec in self.receivers.values() for o in receipt_orders(rec)}

    async def token_of(self, name: str) -> str:
        """The owner token of the replica's current start, from its heartbeat entry."""
        if self.sqlite_path is not None:
            [(nonce,)] = self._sqlite("SELECT nonce FROM replicas WHERE replica_id = ?", name)
            return f"{name}/{nonce}"
        entry = _text(await self.view.db.redis.hget(f"{self.view.db.prefix}:replicas", name))
        assert entry, f"replica {name} has not registered"
        return f"{name}/{entry.split(chr(9))[0]}"

    async def owned_by(self, token: str) -> dict[str, set[str]]:
        """The rows the owner token holds now, by kind letter (e: events, p: pushes, c: checks), from Redis."""
        out: dict[str, set[str]] = {"e": set(), "p": set(), "c": set()}
        if self.sqlite_path is not None:
            out["e"] = {str(r[0]) for r in self._sqlite("SELECT seq FROM events WHERE lease_owner = ?", token)}
            out["p"] = {str(r[0]) for r in self._sqlite("SELECT id FROM outbox WHERE lease_owner = ?", token)}
            return out
        prefix, rid = self.view.db.prefix, token.partition("/")[0]
        for raw in await self.view.db.redis.smembers(f"{prefix}:held:{rid}"):
            kind, _, key = _text(raw).partition(":")
            row = f"{prefix}:ev:{key}" if kind == "e" else f"{prefix}:push:{key}"
            if kind in "ep" and _text(await self.view.db.redis.hget(row, "own")) == token:
                out[kind].add(key)
        return out

    def _sqlite(self, sql: str, *args: object) -> list[Any]:
        with contextlib.closing(sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True)) as conn:
            return conn.execute(sql, args).fetchall()

    async def close(self) -> None:
        for replica in self.replicas:
            await replica.stop()


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else value or ""


@pytest.fixture
async def cluster(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    redis_view: RedisPushStore,
    push_sandbox: Any,
    receivers: dict[str, HeldReceiver],
) -> AsyncIterator[Cluster]:
    """Replicas on Redis; `indirect` "sqlite" puts them on one shared SQLite file instead."""
    made = Cluster(tmp_path, redis_view, push_sandbox, receivers, getattr(request, "param", "redis"))
    try:
        yield made
    finally:
        await made.close()


def assert_duplicates_only_in_flight(cluster: Cluster, stopped: str) -> Counter[str]:
    """Every key that arrived twice arrived first at the receiver of the replica `stopped` (killed or paused): it was
    in flight there. Returns the duplicates."""
    counts = cluster.delivered()
    duplicates = Counter({k: n for k, n in counts.items() if n > 1})
    assert all(n == 2 for n in duplicates.values()), duplicates
    assert set(duplicates) <= cluster.keys_at(stopped), "a duplicate that was not in flight at the stopped replica"
    return duplicates


@pytest.mark.parametrize("cluster", ["redis", "sqlite"], indirect=True)
async def test_a_replica_killed_mid_burst_hands_its_work_to_the_other(cluster: Cluster) -> None:
    a = cluster.replica("a", lease=4, heartbeat=1)
    b = cluster.replica("b", lease=4, heartbeat=1)
    await asyncio.gather(a.start(), b.start())
    bodies = cluster.orders(80_000_000, 600)
    kill_after = 240  # 40 % acknowledged
    balancer = LoadBalancer([a, b])
    pending = list(bodies.items())
    killed = asyncio.Event()
    held_at_kill: dict[str, set[str]] = {}
    token = await cluster.token_of("a")

    async def sender(session: aiohttp.ClientSession) -> None:
        while pending:
            order_id, body = pending.pop(0)
            assert await balancer.send(session, order_id, body, f"evt-{order_id}"), balancer.failures[-8:]
            if len(balancer.acked) >= kill_after and not killed.is_set():
                killed.set()
                await a.kill()
                held_at_kill.update(await cluster.owned_by(token))

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as session:
        await asyncio.gather(*(sender(session) for _ in range(32)))
    assert killed.is_set() and balancer.acked == set(bodies)  # every webhook was acknowledged by one or the other

    await eventually(lambda: cluster.receipts() >= balancer.acked, within=60, what="every acknowledged order pushed")
    duplicates = assert_duplicates_only_in_flight(cluster, "a")
    assert len(duplicates) <= 64  # at most a's deliveries in flight (its sender's concurrency)
    assert await cluster.owned_by(token) == {"e": set(), "p": set(), "c": set()}  # a holds nothing any more
    if held_at_kill["e"] or held_at_kill["p"]:
        taken = await b.metric("gateway_push_lease_takeovers_total", reason="expired")
        assert taken >= 1 and "lease(s) from replica a (start" in b.log_text()


async def test_a_restarted_replica_takes_its_work_back_at_once(cluster: Cluster) -> None:
    """The lease is a minute: anything still held by the dead start would wait that long. The restarted replica
    releases it as it opens the store, before it reports ready, and delivers it."""
    door = Door(cluster.sandbox.base_url)
    await door.start()
    try:
        a = cluster.replica("a", lease=60, heartbeat=1, store_url=door.url)
        await a.start()
        token = await cluster.token_of("a")
        in_flight, mid_read = cluster.orders(81_000_000, 5), cluster.orders(81_100_000, 5)
        cluster.receivers["a"].hold()  # pushes reach the platform; its answers wait
        await cluster.post_all([a], in_flight)
        await cluster.receivers["a"].wait_for(lambda r: len(r.received) >= len(in_flight))
        door.close()  # push reads wait at the door: the processor's batch stays claimed, the later events pending
        await cluster.post_all([a], mid_read)

        async def holding() -> bool:
            held = await cluster.owned_by(token)
            return len(held["p"]) == len(in_flight) and len(held["e"]) >= 1 and door.waiting >= 1

        await eventually(holding, what="the first start holding pushes in flight and events mid-read")
        held = await cluster.owned_by(token)
        await a.kill()
        door.open()
        cluster.receivers["a"].release()

        await a.start()  # the same replica id, a new start
        new_token = await cluster.token_of("a")
        assert new_token != token
        assert await cluster.owned_by(token) == {"e": set(), "p": set(), "c": set()}  # released before ready
        expected = set(in_flight) | set(mid_read)
        await eventually(lambda: cluster.receipts() >= expected, within=30, what="the taken-back work delivered")
        assert await a.metric("gateway_push_lease_takeovers_total", kind="push", reason="restart") == len(held["p"])
        assert await a.metric("gateway_push_lease_takeovers_total", kind="event", reason="restart") == len(held["e"])
        assert f"took back {len(held['p'])} push lease(s) its earlier start {token} held" in a.log_text()
        duplicates = assert_duplicates_only_in_flight(cluster, "a")
        assert len(duplicates) <= len(in_flight)
    finally:
        await door.stop()


async def test_a_paused_replica_loses_its_work_and_after_resuming_does_not_deliver_it(cluster: Cluster) -> None:
    door = Door(cluster.sandbox.base_url)
    await door.start()
    try:
        a = cluster.replica("a", lease=2, heartbeat=0.5, store_url=door.url)
        await a.start()
        token = await cluster.token_of("a")
        in_flight, mid_read = cluster.orders(82_000_000, 5), cluster.orders(82_100_000, 5)
        cluster.receivers["a"].hold()
        await cluster.post_all([a], in_flight)
        await cluster.receivers["a"].wait_for(lambda r: len(r.received) >= len(in_flight))
        door.close()
        await cluster.post_all([a], mid_read)

        async def holding() -> bool:
            held = await cluster.owned_by(token)
            return len(held["p"]) == len(in_flight) and len(held["e"]) >= 1 and door.waiting >= 1

        await eventually(holding, what="a holding pushes in flight and events mid-read")
        held = await cluster.owned_by(token)
        b = cluster.replica("b", lease=2, heartbeat=0.5)
        await b.start()  # b starts while a still holds everything (a renews its leases)

        a.signal(signal.SIGSTOP)
        expected = set(in_flight) | set(mid_read)
        await eventually(lambda: set(receipt_orders(cluster.receivers["b"])) >= expected, within=30, what="b done")
        assert await cluster.owned_by(token) == {"e": set(), "p": set(), "c": set()}
        arrived_at_a = len(cluster.receivers["a"].received)

        door.open()
        cluster.receivers["a"].release()  # a's reads and its platform's answers are there when it runs again
        a.signal(signal.SIGCONT)

        async def a_found_out() -> bool:
            lost = await a.metric("gateway_push_leases_lost_total", kind="push")
            return lost >= len(in_flight) and await a.metric("gateway_push_leases_lost_total", kind="event") >= 1

        await eventually(a_found_out, within=30, what="a finding its leases gone")
        await eventually(lambda: a.log_text().count("not recorded as delivered") >= len(in_flight), what="a fenced")
        assert len(cluster.receivers["a"].received) == arrived_at_a  # a sent nothing after it resumed
        assert await b.metric("gateway_push_lease_takeovers_total", kind="push", reason="expired") == len(in_flight)
        assert await b.metric("gateway_push_lease_takeovers_total", kind="event", reason="expired") == len(held["e"])
        duplicates = assert_duplicates_only_in_flight(cluster, "a")
        assert len(duplicates) == len(in_flight)  # each in-flight push once from a, once again from b
        mid_read_keys = {r.headers["Idempotency-Key"] for r in cluster.receivers["b"].delivered()} - set(duplicates)
        assert len(mid_read_keys) == len(mid_read)  # the events a held mid-read: pushed once, by b
        assert cluster.delivered()[next(iter(mid_read_keys))] == 1
    finally:
        await door.stop()
