"""The PushStore contract, run against every backend (`push_store` fixture: SQLite, and Redis when it is there)."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.push.records import (
    MAX_ATTEMPTS_KEPT,
    MAX_REASON_CHARS,
    EventOutcome,
    EventStatus,
    FulfillmentState,
    NewPush,
    OrderState,
    PushAttempt,
    PushStatus,
    TrackingEntry,
    UnpaidCheck,
    WebhookMeta,
    idempotency_key,
)
from gateway.push.sqlite.schema import MIGRATIONS
from gateway.push.store import PushStore
from tests.fixtures_push import BotReceiver, rest_order, wait_until_settled

META = WebhookMeta(topic="orders/paid", webhook_id="w-1")


def push(order_id: int, key: str, *, due: float | None = None, topic: str = "Order/Receipt", **kw: object) -> NewPush:
    return NewPush(
        shop_key="shop",
        dedupe_key=key,
        order_id=order_id,
        topic=topic,
        body=b'{"k":"%s"}' % key.encode(),
        due_at=time.time() if due is None else due,
        **kw,  # type: ignore[arg-type]
    )


async def test_record_event_dedupes_concurrent_and_repeated(push_store: PushStore) -> None:
    results = await asyncio.gather(*[push_store.events.record_event("shop", "e1", META, b"{}") for _ in range(5)])
    assert sorted(results) == ["duplicate"] * 4 + ["new"]
    assert await push_store.events.record_event("other", "e1", META, b"{}") == "new"  # per shop
    event = await push_store.events.get_event("shop", "e1")
    assert event is not None and event.meta == META and event.status == EventStatus.PENDING


async def test_claim_events_leases_and_commit_marks_done(push_store: PushStore) -> None:
    for i in range(3):
        await push_store.events.record_event("shop", f"e{i}", META, b"{}")
    first = await push_store.events.claim_events(2, lease_seconds=30)
    assert [e.event_id for e in first] == ["e0", "e1"]
    second = await push_store.events.claim_events(10, lease_seconds=30)
    assert [e.event_id for e in second] == ["e2"]  # leased ones are not handed out twice
    later = time.time() + 60
    expired = await push_store.events.claim_events(10, lease_seconds=30, now=later)
    assert {e.event_id for e in expired} == {"e0", "e1", "e2"}  # leases expire: a crashed worker's events return
    await push_store.states.commit(
        [EventOutcome(event_seq=first[0].seq), EventOutcome(event_seq=first[1].seq, event_error="bad")]
    )
    e0 = await push_store.events.get_event("shop", "e0")
    e1 = await push_store.events.get_event("shop", "e1")
    assert e0 is not None and e0.status == EventStatus.DONE
    assert e1 is not None and e1.status == EventStatus.DEAD and e1.error == "bad"
    assert await push_store.events.requeue_event(e0.seq)
    again = await push_store.events.claim_events(10, lease_seconds=30, now=later + 120)
    assert "e0" in {e.event_id for e in again}


async def test_deferred_events_stay_pending_until_then_come_back_in_order(push_store: PushStore) -> None:
    """What the rules do when Shopify cannot answer the push read: claimed events are put off, not released."""
    for i in range(3):
        await push_store.events.record_event("shop", f"d{i}", META, b"{}")
    now = time.time()
    claimed = await push_store.events.claim_events(10, lease_seconds=1, now=now)
    await push_store.events.defer_events([e.seq for e in claimed], now + 100)
    assert await push_store.events.claim_events(10, lease_seconds=30, now=now + 50) == []  # past the lease, not the deferral
    assert (await push_store.outbox.backlog())["events"] == 3  # still pending: nothing lost
    back = await push_store.events.claim_events(10, lease_seconds=30, now=now + 101)
    assert [e.event_id for e in back] == ["d0", "d1", "d2"]
    await push_store.states.commit([EventOutcome(event_seq=back[0].seq)])
    await push_store.events.defer_events([back[0].seq], now + 1000)  # a processed event is not made pending again
    done = await push_store.events.get_event("shop", "d0")
    assert done is not None and done.status == EventStatus.DONE


async def test_enqueue_is_idempotent_and_orders_wait_for_their_head(push_store: PushStore) -> None:
    await push_store.states.commit(
        [EventOutcome(pushes=[push(1, "receipt:1"), push(1, "package:9:shipped"), push(2, "receipt:2")])]
    )
    await push_store.states.commit([EventOutcome(pushes=[push(1, "receipt:1")])])  # duplicate: ignored
    claimed = await push_store.delivery.claim_pushes(10, lease_seconds=30)
    assert [p.dedupe_key for p in claimed] == ["receipt:1", "receipt:2"]  # order 1's second push waits
    assert claimed[0].idempotency_key == idempotency_key("shop", "receipt:1")
    await push_store.delivery.mark_delivered(claimed[1].id)
    # the head is retried later: the order's next push still waits
    await push_store.delivery.schedule_retry(claimed[0].id, time.time() + 3600, "HTTP 503")
    assert await push_store.delivery.claim_pushes(10, lease_seconds=30) == []
    retried = await push_store.delivery.claim_pushes(10, lease_seconds=30, now=time.time() + 3601)
    assert [p.dedupe_key for p in retried] == ["receipt:1"] and retried[0].attempts == 1
    await push_store.delivery.mark_delivered(retried[0].id)
    nxt = await push_store.delivery.claim_pushes(10, lease_seconds=30)
    assert [p.dedupe_key for p in nxt] == ["package:9:shipped"]
    await push_store.delivery.dead_letter(nxt[0].id, "10010 Recipient not found")
    dead = await push_store.outbox.list_pushes(statuses=[PushStatus.DEAD])
    assert [(p.dedupe_key, p.last_error) for p in dead] == [("package:9:shipped", "10010 Recipient not found")]
    assert await push_store.outbox.retry_push(nxt[0].id)
    again = await push_store.delivery.claim_pushes(10, lease_seconds=30)
    assert [p.id for p in again] == [nxt[0].id]
    assert await push_store.outbox.drop_push(nxt[0].id)
    got = await push_store.outbox.get_push(nxt[0].id)
    assert got is not None and got.status == PushStatus.DROPPED
    assert await push_store.delivery.next_due() is None
    assert await push_store.outbox.backlog() == {"events": 0, "pushes": 0, "dead": 0, "checks": 0}


async def test_unpushable_is_recorded_not_sent(push_store: PushStore) -> None:
    await push_store.states.commit(
        [EventOutcome(pushes=[push(5, "receipt:5", status=PushStatus.UNPUSHABLE, reason="no recipient")])]
    )
    assert await push_store.delivery.claim_pushes(10, lease_seconds=30) == []
    [p] = await push_store.outbox.list_pushes(statuses=[PushStatus.UNPUSHABLE])
    assert p.last_error == "no recipient"


async def test_order_state_watermark(push_store: PushStore) -> None:
    newer = OrderState("shop", 7, "1007", updated_at=200.0, financial_status="paid", receipt_decided=True)
    older = OrderState("shop", 7, "1007", updated_at=100.0, financial_status="pending")
    await push_store.states.commit([EventOutcome(order_states=[newer])])
    await push_store.states.commit([EventOutcome(order_states=[older])])
    states = await push_store.states.load_order_states("shop", [7, 8])
    assert states == {7: newer}
    f_new = FulfillmentState("shop", 70, 7, updated_at=300.0, status="delivered", tracking_number="T1")
    f_old = FulfillmentState("shop", 70, 7, updated_at=250.0, status="in_transit", tracking_number="T1")
    await push_store.states.commit([EventOutcome(fulfillment_states=[f_new]), EventOutcome(fulfillment_states=[f_old])])
    assert await push_store.states.load_fulfillment_states("shop", [70]) == {70: f_new}


async def test_unpaid_checks_once_per_order(push_store: PushStore) -> None:
    now = time.time()
    await push_store.states.commit([EventOutcome(unpaid_checks=[UnpaidCheck("shop", 3, now + 10)])])
    await push_store.states.commit([EventOutcome(unpaid_checks=[UnpaidCheck("shop", 3, now)])])  # ignored: once per order
    assert await push_store.states.claim_unpaid_checks(10, 30) == []
    [check] = await push_store.states.claim_unpaid_checks(10, 30, now=now + 11)
    assert check.order_id == 3
    await push_store.states.commit([EventOutcome(done_checks=[("shop", 3)])])
    assert await push_store.states.claim_unpaid_checks(10, 30, now=now + 100) == []
    await push_store.states.commit([EventOutcome(unpaid_checks=[UnpaidCheck("shop", 3, now)])])
    assert await push_store.states.claim_unpaid_checks(10, 30, now=now + 100) == []  # done stays done


async def test_tracking_index_delivery_log_and_purges(push_store: PushStore) -> None:
    await push_store.states.commit(
        [
            EventOutcome(
                order_states=[OrderState("shop", 11, "1011", 1.0, customer_id=500, receipt_decided=True)],
                tracking=[TrackingEntry("shop", "1Z999", 11, "1011", customer_id=500)],
                pushes=[push(11, "package:90:shipped", topic="package/update", fulfillment_id=90, customer_id=500)],
            ),
            EventOutcome(order_states=[OrderState("shop", 12, "1012", 1.0, customer_id=600)]),
        ]
    )
    assert await push_store.tracking.order_name_for_tracking("shop", "1Z999") == "1011"
    assert await push_store.tracking.order_name_for_tracking("other", "1Z999") is None
    [p] = await push_store.delivery.claim_pushes(10, 30)
    await push_store.delivery.mark_delivered(p.id)
    assert await push_store.tracking.delivered_package_pushes("shop", 11) == {"90": 1}
    counts = await push_store.compliance.count_customer_data("shop", 500, [])
    assert counts.orders == 1 and counts.pushes == 1 and counts.tracking_numbers == 1
    purged = await push_store.compliance.purge_customer("shop", 500, [])
    assert purged.orders == 1 and purged.pushes == 1 and purged.tracking_numbers == 1
    assert await push_store.tracking.order_name_for_tracking("shop", "1Z999") is None
    assert await push_store.states.load_order_states("shop", [11, 12]) != {}  # the other customer's order stays
    await push_store.compliance.purge_shop("shop")
    assert await push_store.states.load_order_states("shop", [12]) == {}


async def test_watermark_and_install_flag(push_store: PushStore) -> None:
    assert await push_store.shops.get_watermark("shop") is None
    await push_store.shops.set_watermark("shop", "2026-11-01T00:00:00Z")
    assert await push_store.shops.get_watermark("shop") == "2026-11-01T00:00:00Z"
    assert await push_store.shops.shop_installed("shop")
    await push_store.shops.set_shop_installed("shop", False)
    assert not await push_store.shops.shop_installed("shop")
    assert await push_store.ping() is None


async def test_attempts_are_recorded_bounded_and_purged_with_their_push(push_store: PushStore) -> None:
    await push_store.states.commit([EventOutcome(customer_id=500, pushes=[push(21, "receipt:21", customer_id=500)])])
    [p] = await push_store.delivery.claim_pushes(10, 30)
    assert await push_store.outbox.push_attempts(p.id) == []
    first = PushAttempt(1000.0, 503, '{"success":false,"errors":{"code":500,"msg":"down"}}', "retry")
    await push_store.delivery.record_attempt(p.id, first)
    await push_store.delivery.record_attempt(p.id, PushAttempt(1001.0, None, "ClientConnectorError", "retry"))
    await push_store.delivery.record_attempt(p.id, PushAttempt(1002.0, 200, "x" * 1000, "delivered"))
    got = await push_store.outbox.push_attempts(p.id)
    assert got[:2] == [first, PushAttempt(1001.0, None, "ClientConnectorError", "retry")]
    assert got[2].http_status == 200 and got[2].outcome == "delivered" and len(got[2].answer) == 300
    for i in range(MAX_ATTEMPTS_KEPT + 5):
        await push_store.delivery.record_attempt(p.id, PushAttempt(2000.0 + i, 503, "", "retry"))
    kept = await push_store.outbox.push_attempts(p.id)
    assert len(kept) == MAX_ATTEMPTS_KEPT and kept[-1].at == 2000.0 + MAX_ATTEMPTS_KEPT + 4  # the newest
    assert await push_store.outbox.push_attempts(p.id + 999) == []
    await push_store.compliance.purge_customer("shop", 500, [21])
    assert await push_store.outbox.push_attempts(p.id) == []


async def test_last_event_at_is_the_latest_arrival_per_shop(push_store: PushStore) -> None:
    assert await push_store.events.last_event_at("shop") is None
    before = time.time()
    await push_store.events.record_event("shop", "a1", META, b"{}")
    await push_store.events.record_event("shop", "a2", META, b"{}")
    await push_store.events.record_event("other", "b1", META, b"{}")
    at = await push_store.events.last_event_at("shop")
    assert at is not None and before - 1 <= at <= time.time() + 1
    assert await push_store.events.last_event_at("nobody") is None


async def test_wait_for_work_wakes_on_enqueue(push_store: PushStore) -> None:
    waiter = asyncio.create_task(push_store.wait_for_work(30))
    await asyncio.sleep(0.05)  # the waiter runs up to its wait
    assert not waiter.done()  # nothing was committed: it waits (a wait_for_work that returns at once fails here)
    await push_store.states.commit([EventOutcome(pushes=[push(1, "receipt:1")])])
    await asyncio.wait_for(waiter, 5)  # woken by the commit, long before its 30 s


async def test_long_reasons_are_cut_the_same_way_by_every_backend(push_store: PushStore) -> None:
    long = "x" * (MAX_REASON_CHARS - 1) + "é" + "y" * 1000
    cut = long[:MAX_REASON_CHARS]
    await push_store.states.commit([EventOutcome(pushes=[push(5, "receipt:5", status=PushStatus.UNPUSHABLE, reason=long)])])
    [unpushable] = await push_store.outbox.list_pushes(statuses=[PushStatus.UNPUSHABLE])
    assert unpushable.last_error == cut and cut.endswith("é")

    await push_store.states.commit([EventOutcome(pushes=[push(6, "receipt:6")])])
    [claimed] = await push_store.delivery.claim_pushes(10, lease_seconds=30)
    await push_store.delivery.schedule_retry(claimed.id, time.time() + 3600, long)
    retried = await push_store.outbox.get_push(claimed.id)
    assert retried is not None and retried.last_error == cut
    [again] = await push_store.delivery.claim_pushes(10, lease_seconds=30, now=time.time() + 3601)  # due again: retried
    await push_store.delivery.dead_letter(again.id, long + "!")
    dead = await push_store.outbox.get_push(claimed.id)
    assert dead is not None and dead.status == PushStatus.DEAD and dead.last_error == cut

    await push_store.events.record_event("shop", "e-long", META, b"{}")
    [event] = await push_store.events.claim_events(10, lease_seconds=30)
    await push_store.states.commit([EventOutcome(event_seq=event.seq, event_error=long)])
    stored = await push_store.events.get_event("shop", "e-long")
    assert stored is not None and stored.status == EventStatus.DEAD and stored.error == cut


def test_a_redis_backend_that_cannot_be_imported_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fixture's skip is for a developer's machine without redis-py; CI must run the Redis backend or fail."""
    from tests.fixtures_push import _redis_store

    monkeypatch.setitem(sys.modules, "gateway.push.redis.store", None)  # `import` now raises ImportError
    monkeypatch.setenv("CI", "1")
    with pytest.raises(ImportError):
        _redis_store("unused")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="with CI set this fails instead"):
        _redis_store("unused")


# --- stores written by earlier versions (SQLite; the Redis twin is in test_push_redis.py) ------------------------


def _file_of_the_version_before(path: Path, rows: list[tuple[Any, ...]]) -> None:
    """A store file as the gateway before the plain `receipt_decided` flag left it (schema version 2), holding these
    orders rows (shop, id, name, updated_at, financial status, receipt blob, recipient JSON, recipient name)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version (version) VALUES (2)")
    for statement in MIGRATIONS[0] + MIGRATIONS[1]:
        conn.execute(statement)
    conn.executemany(
        "INSERT INTO orders (shop_key, order_id, order_name, updated_at, financial_status, receipt, recipient,"
        " recipient_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.close()


async def test_order_states_written_by_earlier_versions_keep_their_receipt_decision(
    make_push_gateway: Any, bot_receiver: BotReceiver, tmp_path: Path
) -> None:
    """Rows written by earlier versions kept the receipt's JSON in the `receipt` blob for every order, paid or not:
    that is not "the receipt was decided", and the order's receipt still goes out when it is paid. A blob starting
    "receipt:" is: that order is not announced again. The migration keeps no shopper data (recipient, name)."""
    path = tmp_path / "before.sqlite3"
    t0 = time.time() - 600
    _file_of_the_version_before(
        path,
        [
            ("demo", 7301, "7301", t0, "pending", b'{"order_number": "7301"}', '{"email": "a@b.c"}', "Ann"),
            ("demo", 7302, "7302", t0, "paid", b"receipt:7302", None, ""),
        ],
    )
    gw = await make_push_gateway(sqlite_path=path)
    states = await gw.store.states.load_order_states("demo", [7301, 7302])
    assert [states[7301].receipt_decided, states[7302].receipt_decided] == [False, True]
    assert await gw.webhook("orders/paid", rest_order(7301, name="#7301", updated_at=t0 + 60)) == 200
    assert await gw.webhook("orders/paid", rest_order(7302, name="#7302", updated_at=t0 + 60)) == 200
    await bot_receiver.wait_for(lambda r: len(r.delivered("Order/Receipt")) == 1)
    await wait_until_settled(gw.store)
    [receipt] = bot_receiver.delivered("Order/Receipt")
    assert receipt.body["params"]["order_number"] == "7301"
    states = await gw.store.states.load_order_states("demo", [7301, 7302])
    assert states[7301].receipt_decided and states[7302].receipt_decided
    with sqlite3.connect(path) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(orders)")}
    assert {"receipt_decided"} <= columns and not {"receipt", "recipient", "recipient_name"} & columns
