"""The processing worker on its own (gateway.push.processor): a claimed batch in, what it produced committed, on both
store backends. The end-to-end behaviour (real webhooks, reads and pushes) is in test_push_delivery / test_push_read."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.cache import LookupCache
from gateway.cache_tags import canonical_tag, order_tags
from gateway.push.holds import ShopHolds
from gateway.push.processor import EventProcessor, build_processor
from gateway.push.reader import PushReader
from gateway.push.records import EventOutcome, EventStatus, OrderState, StoredEvent, WebhookMeta
from gateway.push.redis.store import RedisPushStore
from gateway.push.rules import Decided, PushIntent
from gateway.push.sqlite.store import SqlitePushStore
from gateway.push.store import PushStore
from gateway.shopify.client import open_clients
from localstore import SandboxServer
from tests.fixtures_push import SHOP_KEY, open_redis_or_skip, purge_redis_prefix, push_settings, push_shop, rest_order

T = TypeVar("T")
REDIS_URL = os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def _process(store: PushStore, processor: Any, events: list[tuple[str, dict[str, Any]]]) -> None:
    """Store the webhooks (topic, payload) and process them as one claimed batch."""
    for n, (topic, payload) in enumerate(events):
        await store.events.record_event(SHOP_KEY, f"evt-{n}", WebhookMeta(topic), json.dumps(payload).encode())
    claimed = await store.events.claim_events(100, 30.0)
    assert len(claimed) == len(events)
    await processor.process(claimed)


async def test_an_order_named_with_two_hashes_evicts_only_its_own_lookups(push_store: PushStore, tmp_path: Path) -> None:
    """Order "##1001" has the number "#1001" (one leading '#' stripped, PROTOCOL §5), not "1001": its webhook evicts
    the lookups of its own number and leaves those of order "#1001" (whose number is "1001") cached."""
    assert canonical_tag("order:##1001") == order_tags(number="#1001")[0] != order_tags(number="1001")[0]
    cache = LookupCache()

    async def load() -> str:
        return "cached"

    for number in ("1001", "#1001"):
        await cache.get_or_load((SHOP_KEY, number), load, ttl=60, tags=order_tags(number=number))
    processor = build_processor(push_settings("http://127.0.0.1:9/push", tmp_path / "unused"), push_store,
                                invalidator=cache)  # fmt: skip
    # not paid: nothing to push, so no Shopify read is needed (this processor has none)
    await _process(push_store, processor, [("orders/updated", rest_order(7, name="##1001", financial_status="pending"))])
    assert cache.peek((SHOP_KEY, "#1001")) is None
    assert cache.peek((SHOP_KEY, "1001")) == "cached"
    assert (await push_store.events.get_event(SHOP_KEY, "evt-0")).status == EventStatus.DONE  # type: ignore[union-attr]


# --- hostile payloads (issue #21): nothing a signed payload holds stops the queue -------------------------------------

#: Every topic the gateway subscribes to or receives (compliance topics come without a subscription), and one more.
TOPICS = (
    "orders/create", "orders/paid", "orders/updated", "orders/cancelled", "fulfillments/create", "fulfillments/update",
    "fulfillment_events/create", "products/create", "products/update", "products/delete", "app/uninstalled",
    "customers/redact", "customers/data_request", "shop/redact", "orders/edited", "unknown/topic",
)  # fmt: skip

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=False),
    st.text(max_size=20),
)  # fmt: skip
junk = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                              max_size=3), max_leaves=6)  # fmt: skip
ids = st.one_of(
    st.integers(min_value=-5, max_value=2**64 + 5),
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, "gid://shopify/Order/²", "gid://shopify/Order/9223372036854775808",
                     "gid://shopify/Order/450789469", "١٢٣", "12?x", "/", ""]),
    junk,
)  # fmt: skip
times = st.one_of(
    st.sampled_from(["2024-04-26T10:00:00-04:00", "2024-04-26T14:00:00Z", "2024-04-26T14:00:00", "9999-12-31T23:59:59-14:00",
                     "0001-01-01T00:00:00+14:00", "2024-02-30T00:00:00Z", "", "now"]),
    junk,
)  # fmt: skip
words = st.one_of(
    st.sampled_from(["paid", "pending", "authorized", "partially_paid", "refunded", "success", "cancelled", "error",
                     "in_transit", "delivered", "failure", "#1001", "##1001", "a@b.c", "+16135550135"]),
    st.text(max_size=30), junk,
)  # fmt: skip
fulfillment_payload = st.fixed_dictionaries({}, optional={
    "id": ids, "order_id": ids, "fulfillment_id": ids, "status": words, "shipment_status": words, "name": words,
    "tracking_number": words, "tracking_numbers": st.one_of(st.lists(words, max_size=3), junk),
    "updated_at": times, "created_at": times, "happened_at": times,
})  # fmt: skip
customer = st.one_of(st.fixed_dictionaries({}, optional={"id": ids, "email": words, "phone": words}), junk)
order_payload = st.fixed_dictionaries({}, optional={
    "id": ids, "name": words, "created_at": times, "updated_at": times, "financial_status": words,
    "cancelled_at": st.one_of(times, junk), "customer": customer, "email": words, "phone": words,
    "fulfillments": st.one_of(st.lists(st.one_of(fulfillment_payload, junk), max_size=3), junk),
    "note_attributes": junk,
})  # fmt: skip
compliance_payload = st.fixed_dictionaries({}, optional={
    "shop_id": ids, "customer": customer, "orders_to_redact": st.one_of(st.lists(ids, max_size=3), junk),
    "orders_requested": st.one_of(st.lists(ids, max_size=3), junk),
    "data_request": st.one_of(st.fixed_dictionaries({}, optional={"id": ids}), junk),
})  # fmt: skip


@st.composite
def webhooks(draw: st.DrawFn) -> tuple[str, bytes]:
    """(topic, body): a payload of the topic's shape with hostile values, any JSON, or bytes that are not JSON."""
    topic = draw(st.sampled_from(TOPICS))
    shape = order_payload if topic.startswith("orders/") else (
        fulfillment_payload if topic.startswith("fulfillment") else compliance_payload if "/" in topic else junk
    )  # fmt: skip
    kind = draw(st.sampled_from(["shaped", "shaped", "shaped", "json", "bytes"]))
    if kind == "bytes":
        return topic, draw(st.binary(max_size=60))
    payload = draw(shape if kind == "shaped" else junk)
    return topic, json.dumps(payload).encode()


class LivePipeline:
    """A processor per store backend, reading from the local store, on an event loop of its own (hypothesis examples
    are plain functions: each runs its coroutine there)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._exit = contextlib.AsyncExitStack()
        self.processors: dict[str, EventProcessor] = {}
        self.stores: dict[str, PushStore] = {}
        self.redis_skipped = ""
        self.run(self._start())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    async def _start(self) -> None:
        sandbox = SandboxServer([push_shop()], host="127.0.0.1", port=0, webhook_retry_schedule=None)
        await sandbox.start()
        self._exit.push_async_callback(sandbox.stop)
        settings = push_settings("http://127.0.0.1:9/push", self.tmp / "unused", admin_api_base=sandbox.base_url)
        clients = await self._exit.enter_async_context(open_clients(settings))
        stores: dict[str, PushStore] = {"sqlite": SqlitePushStore(self.tmp / "hostile.sqlite3")}
        await stores["sqlite"].open()
        self._exit.push_async_callback(stores["sqlite"].close)
        redis = RedisPushStore(REDIS_URL, prefix=f"test-hostile-{uuid.uuid4().hex[:12]}")
        try:
            await redis.open()
        except OSError as exc:
            if os.environ.get("CI"):
                raise
            self.redis_skipped = f"no Redis reachable ({exc}); with CI set this fails instead"
        else:
            stores["redis"] = redis
            self._exit.push_async_callback(redis.close)
            self._exit.push_async_callback(purge_redis_prefix, redis)
        for backend, store in stores.items():
            self.stores[backend] = store
            self.processors[backend] = build_processor(settings, store, reader=PushReader(clients))

    def stop(self) -> None:
        self.run(self._exit.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePipeline]:
    pipeline = LivePipeline(tmp_path_factory.mktemp("hostile"))
    try:
        yield pipeline
    finally:
        pipeline.stop()


async def _process_hostile(store: PushStore, processor: EventProcessor, events: list[tuple[str, bytes]]) -> None:
    ids = [f"hostile-{uuid.uuid4().hex}" for _ in events]
    for event_id, (topic, body) in zip(ids, events, strict=True):
        await store.events.record_event(SHOP_KEY, event_id, WebhookMeta(topic), body)
    claimed = await store.events.claim_events(100, 30.0)
    assert sorted(e.event_id for e in claimed) == sorted(ids)
    await processor.process(claimed)  # raises nothing
    for event_id in ids:  # each event settled on its own: done, or dead with its reason (or purged by a redact)
        event = await store.events.get_event(SHOP_KEY, event_id)
        assert event is None or event.status is EventStatus.DONE or (event.status is EventStatus.DEAD and event.error)
    assert (await store.outbox.backlog())["events"] == 0


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(webhooks(), min_size=1, max_size=6))
def test_no_payload_escapes_the_per_event_guard(live: LivePipeline, backend: str, events: list[tuple[str, bytes]]) -> None:
    """Generated payloads for every topic, in batches, through parse → decide → read → commit on both backends: no
    exception escapes the processor, and every event is settled on its own (none stays pending for a re-claim)."""
    if backend not in live.processors:
        pytest.skip(live.redis_skipped)
    live.run(_process_hostile(live.stores[backend], live.processors[backend], events))


async def test_an_outcome_the_store_cannot_keep_dead_letters_only_its_own_event(
    push_store: PushStore, tmp_path: Path
) -> None:
    """Should an outcome hold what the store cannot keep (SQLite: an integer past 64 bits), its event is dead with the
    reason and the batch's other events are committed."""
    processor = build_processor(push_settings("http://127.0.0.1:9/push", tmp_path / "unused"), push_store)
    for n in range(2):
        await push_store.events.record_event(SHOP_KEY, f"evt-{n}", WebhookMeta("orders/updated"), b"{}")
    good, bad = await push_store.events.claim_events(10, 30.0)
    unstorable = OrderState(SHOP_KEY, 2**64, "1001", 1.0)
    committed = await processor._commit([EventOutcome(event_seq=bad.seq, order_states=[unstorable]),
                                         EventOutcome(event_seq=good.seq)])  # fmt: skip
    assert len(committed) == 2
    assert (await push_store.events.get_event(SHOP_KEY, "evt-0")).status is EventStatus.DONE  # type: ignore[union-attr]
    dead = await push_store.events.get_event(SHOP_KEY, "evt-1")
    assert dead is not None and dead.status in (EventStatus.DONE, EventStatus.DEAD)  # Redis keeps any integer as text
    if isinstance(push_store, SqlitePushStore):
        assert (dead.status, dead.error) == (EventStatus.DEAD, "cannot be stored: OverflowError")


# --- shop holds, shared (issue #20 item 3) ---------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "redis"])
async def two_stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[PushStore, PushStore]]:
    """Two opened stores over one backing store, as two replicas (Redis) or two processes on one file (SQLite) have."""
    if request.param == "sqlite":
        stores: tuple[PushStore, PushStore] = (
            SqlitePushStore(tmp_path / "shared.sqlite3"),
            SqlitePushStore(tmp_path / "shared.sqlite3"),
        )
        for store in stores:
            await store.open()
    else:
        prefix = f"test-holds-{uuid.uuid4().hex[:12]}"
        stores = (RedisPushStore(REDIS_URL, prefix=prefix), RedisPushStore(REDIS_URL, prefix=prefix))
        for store in stores:
            await open_redis_or_skip(store)
    try:
        yield stores
    finally:
        if request.param == "redis":
            await purge_redis_prefix(stores[0])  # type: ignore[arg-type]
        for store in stores:
            await store.close()


async def test_a_shop_held_by_one_replica_is_held_by_the_other(
    two_stores: tuple[PushStore, PushStore], tmp_path: Path
) -> None:
    """Replica A's push read fails: the shop is held in the store, so replica B defers the shop's events without
    reading; B's read failing too backs off from both failures; A's read answering releases the shop for both."""
    a, b = two_stores
    settings = push_settings("http://127.0.0.1:9/push", tmp_path / "unused", push={"backoff_base_seconds": 10, "backoff_max_seconds": 600})
    now = [time.time()]
    holds_a, holds_b = (ShopHolds(settings, store.events, store.holds, clock=lambda: now[0]) for store in (a, b))
    intent = PushIntent(SHOP_KEY, "Order/Receipt", "receipt:1", 1, None)

    async def claim(store: PushStore, event_id: str) -> StoredEvent:
        await store.events.record_event(SHOP_KEY, event_id, WebhookMeta("orders/paid"), b"{}")
        [event] = await store.events.claim_events(10, 30.0, now=now[0])
        return event

    async def read_fails(holds: ShopHolds, events: list[StoredEvent]) -> list[Decided]:
        held = await holds.defer_held(events)
        assert held.events == events
        decided = [Decided(EventOutcome(event_seq=e.seq), [intent], SHOP_KEY, now[0]) for e in events]
        return await holds.settle(decided, {SHOP_KEY: "ShopifyUnavailable: down"}, held)

    assert await read_fails(holds_a, [await claim(a, "e1")]) == []  # not committed: the event waits
    [hold] = (await b.holds.shop_holds([SHOP_KEY])).values()
    assert hold.failures == 1 and now[0] + 5 <= hold.until <= now[0] + 10  # backoff_base, with jitter
    e2 = await claim(b, "e2")
    assert (await holds_b.defer_held([e2])).events == []  # B holds the shop too: e2 deferred, no read
    assert await b.events.claim_events(10, 30.0, now=hold.until - 0.1) == []
    now[0] = hold.until + 0.1  # the hold is over: both events come back together; B's read fails as well
    again = await b.events.claim_events(10, 30.0, now=now[0])
    assert [e.event_id for e in again] == ["e1", "e2"]
    assert await read_fails(holds_b, again) == []
    [hold] = (await a.holds.shop_holds([SHOP_KEY])).values()
    assert hold.failures == 2 and now[0] + 10 <= hold.until <= now[0] + 20  # doubled: A's failure counted
    now[0] = hold.until + 0.1
    events = await a.events.claim_events(10, 30.0, now=now[0])
    held = await holds_a.defer_held(events)
    decided = [Decided(EventOutcome(event_seq=e.seq), [intent], SHOP_KEY, now[0]) for e in held.events]
    assert len(await holds_a.settle(decided, {}, held)) == len(events) == 2  # A's read answers: both go on
    assert await a.holds.shop_holds([SHOP_KEY]) == await b.holds.shop_holds([SHOP_KEY]) == {}
