"""The Redis push store with several replicas sharing one real Redis (127.0.0.1:6379, or GATEWAY_TEST_REDIS_URL).

Each test uses its own key prefix and deletes its keys afterwards. Without a reachable Redis the tests are skipped with
the reason, unless CI is set: then an unreachable Redis is a failure.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.cache import LOOKUP_CACHE, LookupCache
from gateway.cache_fanout import RedisCacheFanOut
from gateway.push.records import EventOutcome, NewPush, PushStatus, UnpaidCheck, WebhookMeta
from gateway.push.redis.store import RedisPushStore
from gateway.settings import parse_settings
from tests.fixtures_push import (
    SHOP_DOMAIN,
    BotReceiver,
    PushGateway,
    free_port,
    open_redis_or_skip,
    purge_redis_prefix,
    push_config,
    rest_order,
)

REDIS_URL = os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
META = WebhookMeta(topic="orders/paid")

MakeReplica = Callable[[], Awaitable[RedisPushStore]]


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A fresh key prefix on the test Redis; every key under it is deleted after the test."""
    prefix = f"test-redis-{uuid.uuid4().hex[:12]}"
    janitor = RedisPushStore(REDIS_URL, prefix=prefix)
    await open_redis_or_skip(janitor)
    try:
        yield prefix
    finally:
        await purge_redis_prefix(janitor)
        await janitor.close()


@pytest.fixture
async def make_replica(redis_prefix: str) -> AsyncIterator[MakeReplica]:
    """`await make_replica()` → another opened RedisPushStore on the same Redis and prefix (one gateway replica)."""
    stores: list[RedisPushStore] = []

    async def make() -> RedisPushStore:
        store = RedisPushStore(REDIS_URL, prefix=redis_prefix)
        await store.open()
        stores.append(store)
        return store

    try:
        yield make
    finally:
        for store in stores:
            await store.close()


@pytest.fixture
async def fan_out_pair(redis_prefix: str) -> AsyncIterator[tuple[RedisCacheFanOut, RedisCacheFanOut]]:
    """Two gateway replicas' cache fan-outs on the same Redis and prefix, opened (and closed after the test)."""
    pair = (RedisCacheFanOut(REDIS_URL, prefix=redis_prefix), RedisCacheFanOut(REDIS_URL, prefix=redis_prefix))
    for fan_out in pair:
        await fan_out.open()
    try:
        yield pair
    finally:
        for fan_out in pair:
            await fan_out.close()


def new_push(order_id: int, key: str, *, due: float | None = None) -> NewPush:
    return NewPush(
        shop_key="shop",
        dedupe_key=key,
        order_id=order_id,
        topic="Order/Receipt",
        body=json.dumps({"k": key}).encode(),
        due_at=time.time() if due is None else due,
    )


async def test_unreachable_redis_is_an_oserror() -> None:
    store = RedisPushStore(f"redis://127.0.0.1:{free_port()}/0", prefix="nowhere")
    with pytest.raises(OSError):
        await store.open()
    assert await store.ping() == "push store not open"


async def test_two_replicas_deliver_every_push_exactly_once(make_replica: MakeReplica) -> None:
    a, b = await make_replica(), await make_replica()
    # 120 orders, some with a chain of three pushes that must go out in order
    pushes = [new_push(o, f"receipt:{o}") for o in range(120)]
    pushes += [new_push(o, f"package:{o}:{s}") for o in range(0, 120, 10) for s in ("shipped", "delivered")]
    await a.states.commit([EventOutcome(pushes=pushes[: len(pushes) // 2])])
    await b.states.commit([EventOutcome(pushes=pushes[len(pushes) // 2 :])])

    delivered: list[tuple[str, str, int]] = []  # (replica, dedupe key, order)

    async def worker(name: str, store: RedisPushStore) -> None:
        idle = 0
        while idle < 3:
            claimed = await store.delivery.claim_pushes(7, lease_seconds=30)
            if not claimed:
                idle += 1
                await asyncio.sleep(0.01)
                continue
            idle = 0
            for p in claimed:
                delivered.append((name, p.dedupe_key, p.order_id))
                await store.delivery.mark_delivered(p.id)

    await asyncio.gather(*(worker(n, s) for n, s in (("a", a), ("b", b), ("a2", a), ("b2", b))))
    keys = [k for _, k, _ in delivered]
    assert len(keys) == len(pushes) and set(keys) == {p.dedupe_key for p in pushes}  # each once, none lost
    for o in range(0, 120, 10):
        chain = [k for _, k, order in delivered if order == o]
        assert chain == [f"receipt:{o}", f"package:{o}:shipped", f"package:{o}:delivered"]
    assert await a.outbox.backlog() == {"events": 0, "pushes": 0, "dead": 0, "checks": 0}


async def test_dedupe_is_shared_across_replicas(make_replica: MakeReplica) -> None:
    a, b = await make_replica(), await make_replica()
    results = await asyncio.gather(
        *(s.events.record_event("shop", "evt-1", META, b"{}") for s in (a, b, a, b, a, b)),
    )
    assert sorted(results) == ["duplicate"] * 5 + ["new"]
    event = await b.events.get_event(None, "evt-1")
    assert event is not None and event.shop_key == "shop"
    # one replica claims the event; the other sees nothing to do
    assert len(await a.events.claim_events(10, 30)) == 1
    assert await b.events.claim_events(10, 30) == []
    # the same push enqueued by both (duplicate webhook on each replica) is one outbox row
    await asyncio.gather(
        a.states.commit([EventOutcome(pushes=[new_push(1, "receipt:1")])]),
        b.states.commit([EventOutcome(pushes=[new_push(1, "receipt:1")])]),
    )
    assert len(await b.outbox.list_pushes()) == 1


async def test_expired_lease_is_picked_up_by_the_other_replica(make_replica: MakeReplica) -> None:
    a, b = await make_replica(), await make_replica()
    await a.states.commit([EventOutcome(pushes=[new_push(1, "receipt:1"), new_push(1, "package:1:shipped")])])
    [p] = await a.delivery.claim_pushes(10, lease_seconds=0.2)  # replica a "crashes" holding the lease
    assert await b.delivery.claim_pushes(10, lease_seconds=30) == []  # leased, and the order's next push waits behind it
    await asyncio.sleep(0.3)
    [again] = await b.delivery.claim_pushes(10, lease_seconds=30)
    assert again.id == p.id and again.idempotency_key == p.idempotency_key  # same key: the receiver dedupes
    await b.delivery.mark_delivered(again.id)
    [nxt] = await b.delivery.claim_pushes(10, lease_seconds=30)
    assert nxt.dedupe_key == "package:1:shipped"
    # events and unpaid checks have leases too
    await a.events.record_event("shop", "evt-9", META, b"{}")
    [event] = await a.events.claim_events(10, lease_seconds=30)
    assert await b.events.claim_events(10, 30) == []
    [same] = await b.events.claim_events(10, 30, now=time.time() + 31)
    assert same.seq == event.seq
    now = time.time()
    await a.states.commit([EventOutcome(unpaid_checks=[UnpaidCheck("shop", 5, now)])])
    assert len(await a.states.claim_unpaid_checks(10, 30, now=now)) == 1
    assert await b.states.claim_unpaid_checks(10, 30, now=now) == []
    assert [c.order_id for c in await b.states.claim_unpaid_checks(10, 30, now=now + 31)] == [5]


async def test_retry_and_dead_letter_across_replicas(make_replica: MakeReplica) -> None:
    a, b = await make_replica(), await make_replica()
    await a.states.commit([EventOutcome(pushes=[new_push(1, "receipt:1"), new_push(1, "package:1:shipped")])])
    [p] = await a.delivery.claim_pushes(10, 30)
    await a.delivery.schedule_retry(p.id, time.time() + 3600, "HTTP 503")
    assert await b.delivery.claim_pushes(10, 30) == []  # the head waits for its retry; the order's next push waits too
    due = await b.delivery.next_due()
    assert due is not None and due > time.time() + 3000
    [retried] = await b.delivery.claim_pushes(10, 30, now=time.time() + 3601)
    assert retried.attempts == 1 and retried.last_error == "HTTP 503"
    await b.delivery.dead_letter(retried.id, "code 10010 Recipient not found")
    [dead] = await a.outbox.list_pushes(shop_key="shop", statuses=[PushStatus.DEAD])
    assert dead.last_error == "code 10010 Recipient not found"
    [nxt] = await a.delivery.claim_pushes(10, 30)  # a dead head frees the order's next push
    assert nxt.dedupe_key == "package:1:shipped"
    assert await a.outbox.backlog() == {"events": 0, "pushes": 1, "dead": 1, "checks": 0}


async def test_work_notifications_wake_the_other_replica(make_replica: MakeReplica) -> None:
    a, b = await make_replica(), await make_replica()
    waiter = asyncio.create_task(b.wait_for_work(30))
    await asyncio.sleep(0.05)  # the waiter runs up to its wait
    assert not waiter.done()  # nothing was committed: it waits (a wait_for_work that returns at once fails here)
    await a.states.commit([EventOutcome(pushes=[new_push(1, "receipt:1")])])
    await asyncio.wait_for(waiter, 5)  # woken by a's commit, through Redis, long before its 30 s


async def _cached(cache: LookupCache, key: str, tags: tuple[str, ...], shop_key: str = "shop") -> str:
    """Look `key` up: "hit" when the cache answered it, "miss" when it was loaded."""

    async def load() -> str:
        return key

    hits = cache.hits
    await cache.get_or_load((shop_key, key), load, ttl=300, tags=tags)
    return "hit" if cache.hits > hits else "miss"


async def _until(predicate: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met")
        await asyncio.sleep(0.02)


async def test_cache_invalidation_fans_out_once(
    make_replica: MakeReplica, fan_out_pair: tuple[RedisCacheFanOut, RedisCacheFanOut], redis_prefix: str
) -> None:
    store = await make_replica()  # for its Redis connection: the listener below
    a, b = fan_out_pair
    cache_a, cache_b = LookupCache(), LookupCache()
    a.attach(cache_a)
    b.attach(cache_b)
    listener = store.db.redis.pubsub()
    await listener.subscribe(f"{redis_prefix}:inval")
    confirmation = await listener.get_message(timeout=2.0)
    assert confirmation is not None and confirmation["type"] == "subscribe"
    for cache in (cache_a, cache_b):
        assert await _cached(cache, "order-1001", ("order:1001",)) == "miss"
        assert await _cached(cache, "products", ("products",)) == "miss"
    assert await _cached(cache_b, "order-1001", ("order:1001",)) == "hit"

    cache_a.invalidate("shop", ["order:1001"])
    assert await _cached(cache_a, "order-1001", ("order:1001",)) == "miss"

    async def evicted_on_b() -> bool:
        return cache_b.entries._partitions["shop"].peek(("shop", "order-1001")) is None

    await _until(evicted_on_b)
    assert await _cached(cache_b, "products", ("products",)) == "hit"  # other entries stay

    cache_b.invalidate_shop("shop")  # the other direction, whole shop

    async def shop_cleared_on_a() -> bool:
        return len(cache_a.entries._partitions["shop"]) == 0

    await _until(shop_cleared_on_a)
    # exactly one message per invalidation: replicas applying a remote one do not broadcast it again
    messages: list[dict[str, Any]] = []
    while (msg := await listener.get_message(timeout=0.3)) is not None:
        messages.append(json.loads(msg["data"]))
    await listener.aclose()
    sent = [(m["origin"], [item["tags"] for item in m["items"]]) for m in messages]
    assert sent == [(a.replica_id, [["order:#1001"]]), (b.replica_id, [None])]
    assert "@" not in json.dumps(messages)


# --- two gateway apps sharing one Redis ----------------------------------------------------------------------------


def redis_push_settings(receiver: BotReceiver, tmp_path: Path, prefix: str, **kw: Any) -> Any:
    """A gateway on Redis under `prefix`, with a replica id of its own (two in one test process are two replicas,
    not two starts of one)."""
    config = push_config(receiver.url, tmp_path / "unused.sqlite3", **kw)
    config["storage"] = {
        "backend": "redis",
        "redis_url": REDIS_URL,
        "redis_prefix": prefix,
        "replica_id": f"gw-{uuid.uuid4().hex[:8]}",
    }
    return parse_settings(config, env={})


async def test_two_gateways_share_dedupe_outbox_and_cache_invalidation(
    aiohttp_client: Any, bot_receiver: BotReceiver, push_sandbox: Any, tmp_path: Path, redis_prefix: str
) -> None:
    from gateway.app import create_app

    gateways = []
    for _ in range(2):
        app = create_app(
            redis_push_settings(bot_receiver, tmp_path, redis_prefix, admin_api_base=push_sandbox.base_url)
        )
        gateways.append(PushGateway(await aiohttp_client(app), app, push_sandbox.shop(SHOP_DOMAIN)))
    one, two = gateways
    n = 60
    for i in range(n):
        payload = rest_order(700_000 + i, name=f"#{7000 + i}", email=f"buyer{i}@example.com")
        event_id = f"evt-two-{i}"
        # Shopify's retry of the same event lands on the other replica (load balancer): still one push
        assert await gateways[i % 2].webhook("orders/paid", payload, event_id=event_id) == 200
        assert await gateways[(i + 1) % 2].webhook("orders/paid", payload, event_id=event_id) == 200
    await bot_receiver.wait_for(lambda r: len(r.delivered()) >= n, within=20)
    await asyncio.sleep(0.3)  # anything delivered twice would show up by now
    keys = Counter(r.headers["Idempotency-Key"] for r in bot_receiver.received)
    assert len(keys) == n and set(keys.values()) == {1}
    assert await one.store.outbox.backlog() == {"events": 0, "pushes": 0, "dead": 0, "checks": 0}

    # a product webhook is processed by ONE replica (events are claimed once); both replicas' caches lose the
    # product lookups: the processing one locally, the other through the fan-out
    caches = [gw.app[LOOKUP_CACHE] for gw in gateways]
    for cache in caches:
        assert await _cached(cache, "products-all", ("products",), "demo") == "miss"
        assert await _cached(cache, "products-all", ("products",), "demo") == "hit"
    assert await one.webhook("products/update", {"id": 1, "title": "x"}) == 200

    async def evicted_everywhere() -> bool:
        return all(c.entries._partitions["demo"].peek(("demo", "products-all")) is None for c in caches)

    await _until(evicted_everywhere)


async def test_scripts_are_reloaded_when_redis_lost_them(make_replica: MakeReplica) -> None:
    """After a Redis restart (or SCRIPT FLUSH) the Lua scripts are gone; every path reloads them and nothing is lost."""
    a = await make_replica()
    await a.db.redis.script_flush()
    assert await a.events.record_event("shop", "evt-after-flush", META, b"{}") == "new"  # auto-pipelined path
    await a.db.redis.script_flush()
    await a.states.commit([EventOutcome(pushes=[new_push(1, "receipt:1")])])  # MULTI/EXEC path
    await a.db.redis.script_flush()
    [p] = await a.delivery.claim_pushes(10, 30)  # single-script path
    await a.db.redis.script_flush()
    await a.delivery.mark_delivered(p.id)
    [delivered] = await a.outbox.list_pushes(statuses=[PushStatus.DELIVERED])
    assert delivered.id == p.id and await a.outbox.backlog() == {"events": 1, "pushes": 0, "dead": 0, "checks": 0}


async def test_order_states_written_by_earlier_versions_keep_their_receipt_decision(make_replica: MakeReplica) -> None:
    """Hashes written before `receipt_decided` was a plain field said it as a `receipt` value starting "receipt:"
    (earlier still, the receipt's JSON for every order, which is no decision), next to shopper data no longer kept:
    read tolerantly, and rewriting a row leaves only the plain field."""
    store = await make_replica()
    for oid, receipt in ((7301, b'{"order_number": "7301"}'), (7302, b"receipt:7302")):
        await store.db.redis.hset(
            f"{store.db.prefix}:s:shop:ord:{oid}",
            mapping={"name": str(oid), "updated": "100.0", "fin": "paid", "cancelled": "0", "cid": "",
                     "recipient": '{"email": "a@b.c"}', "rname": "Ann", "receipt": receipt},
        )  # fmt: skip
    states = await store.states.load_order_states("shop", [7301, 7302])
    assert [states[7301].receipt_decided, states[7302].receipt_decided] == [False, True]
    await store.states.commit([EventOutcome(order_states=[dataclasses.replace(states[7302], updated_at=200.0)])])
    assert (await store.states.load_order_states("shop", [7302]))[7302].receipt_decided
    fields = await store.db.redis.hkeys(f"{store.db.prefix}:s:shop:ord:7302")
    assert {f.decode() for f in fields} == {"name", "updated", "fin", "cancelled", "cid", "decided"}
