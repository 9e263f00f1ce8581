"""Rules and delivery end to end: signed webhooks in, signed pushes out to a local receiver (real sockets)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from gateway.push.records import EventStatus, PushStatus
from tests.fixtures_push import (
    BotReceiver,
    as_push,
    orders_reply,
    rest_fulfillment,
    rest_fulfillment_event,
    rest_order,
    wait_until_settled,
)


def statuses(receiver: BotReceiver) -> list[str]:
    return [r.body["params"]["tracking_status"] for r in receiver.delivered("package/update")]


async def test_receipt_params_and_headers(make_push_gateway: Any, bot_receiver: BotReceiver) -> None:
    gw = await make_push_gateway()
    created = 1_700_000_000
    assert await gw.webhook("orders/create", rest_order(820982911946154508, name="#9999", created_at=created)) == 200
    await bot_receiver.wait_for(lambda r: len(r.delivered()) == 1)
    [push] = bot_receiver.delivered()
    params = push.body["params"]
    assert params["order_number"] == "9999"
    assert params["timestamp"] == created and isinstance(params["timestamp"], int)
    assert params["recipient_name"] == "Steve Shipper"
    assert params["address"] == {
        "street_1": "123 Shipping Street",
        "street_2": "",
        "city": "Shippington",
        "postal_code": "40003",
        "state": "KY",
        "country": "US",
    }
    # what the push says is the order as the store has it: the `orders` reply's receipt, field by field
    assert params == as_push(await orders_reply(gw.client, "9999", params["order_url"]))
    assert params["elements"] and all(e["image_url"].startswith("https://") for e in params["elements"])
    assert push.body["recipient"] == {"email": "jon@example.com"}
    assert push.headers["Content-Type"] == "application/json"
    assert len(push.headers["Idempotency-Key"]) == 32


async def test_recipient_selection(make_push_gateway: Any, bot_receiver: BotReceiver) -> None:
    gw = await make_push_gateway()
    await gw.webhook("orders/paid", rest_order(1, psid="PSID-1", email="a@example.com", phone="+16135550135"))
    await gw.webhook("orders/paid", rest_order(2, email="b@example.com", phone="+16135550135"))
    await gw.webhook("orders/paid", rest_order(3, email=None, phone="+16135550135", customer_id=None))
    await gw.webhook("orders/paid", rest_order(4, email=None, phone=None, customer_id=None))
    await bot_receiver.wait_for(lambda r: len(r.delivered()) == 3)
    await wait_until_settled(gw.store)
    got = sorted((r.body["params"]["order_number"], r.body["recipient"]) for r in bot_receiver.delivered())
    assert got == [("1", {"id": "PSID-1"}), ("2", {"email": "b@example.com"}), ("3", {"phone": "+16135550135"})]
    [unpushable] = await gw.store.outbox.list_pushes(statuses=[PushStatus.UNPUSHABLE])
    assert unpushable.order_id == 4 and "no PSID" in unpushable.last_error


async def test_out_of_order_one_push_per_transition_newest_wins(
    make_push_gateway: Any, bot_receiver: BotReceiver
) -> None:
    gw = await make_push_gateway()
    t0 = time.time() - 600
    order = rest_order(77, name="#1077", updated_at=t0)
    await gw.webhook("orders/paid", order)
    fid = 9077
    # delivered first (newest), then the older states arrive late, twice
    await gw.webhook("fulfillments/create", rest_fulfillment(fid, 77, name="#1077.1", updated_at=t0 + 10))
    await gw.webhook("fulfillment_events/create", rest_fulfillment_event(fid, 77, "delivered", happened_at=t0 + 300))
    await gw.webhook("fulfillment_events/create", rest_fulfillment_event(fid, 77, "in_transit", happened_at=t0 + 100))
    await gw.webhook("fulfillment_events/create", rest_fulfillment_event(fid, 77, "in_transit", happened_at=t0 + 100))
    await gw.webhook("fulfillment_events/create", rest_fulfillment_event(fid, 77, "delivered", happened_at=t0 + 300))
    # an older order state (unpaid) arriving late does not undo "paid"
    await gw.webhook("orders/updated", rest_order(77, name="#1077", financial_status="pending", updated_at=t0 - 60))
    await wait_until_settled(gw.store)
    assert statuses(bot_receiver) == ["shipped", "delivered"]
    [pkg] = bot_receiver.delivered("package/update")[-1:]
    assert pkg.body["params"]["tracking_number"] == "1Z827WK74630"
    assert pkg.body["params"]["recipient_name"] == "Steve Shipper"
    assert len(bot_receiver.delivered("Order/Receipt")) == 1
    states = await gw.store.states.load_order_states("demo", [77])
    assert states[77].financial_status == "paid"
    assert await gw.store.tracking.order_name_for_tracking("demo", "1Z827WK74630") == "1077"
    assert await gw.store.tracking.delivered_package_pushes("demo", 77) == {str(fid): 2}


async def test_in_order_transitions_each_pushed_once(make_push_gateway: Any, bot_receiver: BotReceiver) -> None:
    gw = await make_push_gateway()
    t0 = time.time() - 600
    await gw.webhook("orders/paid", rest_order(78, updated_at=t0))
    await gw.webhook("fulfillments/create", rest_fulfillment(9078, 78, updated_at=t0 + 1))
    for i, status in enumerate(["in_transit", "in_transit", "out_for_delivery", "delivered"]):
        await gw.webhook("fulfillment_events/create", rest_fulfillment_event(9078, 78, status, happened_at=t0 + 10 + i))
    await gw.webhook("fulfillments/update", rest_fulfillment(9078, 78, shipment_status="delivered", updated_at=t0 + 20))
    await wait_until_settled(gw.store)
    assert statuses(bot_receiver) == ["shipped", "in_transit", "out_for_delivery", "delivered"]


async def test_receiver_down_then_recovers_all_delivered_in_order(
    make_push_gateway: Any, bot_receiver: BotReceiver
) -> None:
    gw = await make_push_gateway()
    bot_receiver.fail_next(6, status=503)
    t0 = time.time() - 600
    for oid in (201, 202, 203):
        await gw.webhook("orders/paid", rest_order(oid, updated_at=t0))
        await gw.webhook(
            "fulfillments/create", rest_fulfillment(oid * 10, oid, updated_at=t0 + 1, tracking_number=f"T{oid}")
        )
        await gw.webhook(
            "fulfillment_events/create", rest_fulfillment_event(oid * 10, oid, "in_transit", happened_at=t0 + 2)
        )
    await bot_receiver.wait_for(lambda r: len(r.delivered()) == 9, within=20)
    await wait_until_settled(gw.store)
    for oid in (201, 202, 203):
        sequence = [
            r.body["request"]["topic"]
            + ("/" + r.body["params"]["tracking_status"] if "tracking_status" in r.body["params"] else "")
            for r in bot_receiver.delivered()
            if r.body["params"].get("order_number") == str(oid % 100000)
            or r.body["params"].get("tracking_number") == f"T{oid}"
        ]
        assert sequence == ["Order/Receipt", "package/update/shipped", "package/update/in_transit"], sequence
    # retried pushes kept their Idempotency-Key
    keys: dict[str, set[str]] = {}
    for r in bot_receiver.received:
        keys.setdefault(r.raw.decode(), set()).add(r.headers["Idempotency-Key"])
    assert all(len(v) == 1 for v in keys.values())
    assert any(r.status == 503 for r in bot_receiver.received)


async def test_connection_refused_then_back(make_push_gateway: Any, bot_receiver: BotReceiver) -> None:
    gw = await make_push_gateway()
    await bot_receiver.stop()
    await gw.webhook("orders/paid", rest_order(301))
    # wait until at least one attempt failed (attempts counted on the row), then bring the receiver back
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = await gw.store.outbox.list_pushes()
        if rows and rows[0].attempts >= 1:
            break
        await __import__("asyncio").sleep(0.05)
    assert rows and rows[0].attempts >= 1 and rows[0].status == PushStatus.PENDING
    await bot_receiver.start()
    await bot_receiver.wait_for(lambda r: len(r.delivered()) == 1)


async def test_recipient_not_found_is_dead_letter(make_push_gateway: Any, bot_receiver: BotReceiver) -> None:
    gw = await make_push_gateway()
    bot_receiver.reject_recipients["gone@example.com"] = 10010
    await gw.webhook("orders/paid", rest_order(401, email="gone@example.com"))
    await wait_until_settled(gw.store)
    [dead] = await gw.store.outbox.list_pushes(statuses=[PushStatus.DEAD])
    assert "10010" in dead.last_error
    assert len(bot_receiver.received) == 1  # not retried


async def test_retries_stop_at_max_age(make_push_gateway: Any, bot_receiver: BotReceiver) -> None:
    gw = await make_push_gateway(push={"max_age_seconds": 0.5})
    bot_receiver.fail_next(1000, status=500)
    await gw.webhook("orders/paid", rest_order(501))
    await wait_until_settled(gw.store)
    [dead] = await gw.store.outbox.list_pushes(statuses=[PushStatus.DEAD])
    assert "gave up" in dead.last_error and "HTTP 500" in dead.last_error


async def test_disabled_topic_and_push_off(make_push_gateway: Any, bot_receiver: BotReceiver) -> None:
    gw = await make_push_gateway(push={"topics": ["package/update"]})
    await gw.webhook("orders/paid", rest_order(601))
    await gw.webhook("fulfillments/create", rest_fulfillment(6010, 601))
    await bot_receiver.wait_for(lambda r: len(r.delivered()) == 1)
    await wait_until_settled(gw.store)
    assert [r.body["request"]["topic"] for r in bot_receiver.delivered()] == ["package/update"]


async def test_app_uninstalled_stops_pushes(make_push_gateway: Any, bot_receiver: BotReceiver) -> None:
    gw = await make_push_gateway()
    await gw.webhook("app/uninstalled", {"id": 1, "domain": "demo-shop.myshopify.com"})
    await wait_until_settled(gw.store)
    await gw.webhook("orders/paid", rest_order(701))
    await wait_until_settled(gw.store)
    assert bot_receiver.received == []
    [dead] = await gw.store.outbox.list_pushes(statuses=[PushStatus.DEAD])
    assert dead.last_error == "app uninstalled"


async def test_meetbot_shop_signs_with_hub_signature(make_push_gateway: Any, bot_receiver: BotReceiver) -> None:
    bot_receiver.dialect = "meetbot"
    gw = await make_push_gateway(shop={"dialect": "meetbot"})
    await gw.webhook("orders/paid", rest_order(801))
    await bot_receiver.wait_for(lambda r: len(r.delivered()) == 1)
    [push] = bot_receiver.delivered()
    assert push.headers["X-Hub-Signature"].startswith("sha256=")
    assert "X-Joinchat-Signature" not in push.headers


async def test_customers_redact_purges(make_push_gateway: Any, bot_receiver: BotReceiver) -> None:
    gw = await make_push_gateway()
    await gw.webhook("orders/paid", rest_order(901, customer_id=4242))
    await gw.webhook("fulfillments/create", rest_fulfillment(9010, 901, tracking_number="RED1"))
    await gw.webhook("orders/paid", rest_order(902, customer_id=5353))
    await bot_receiver.wait_for(lambda r: len(r.delivered()) == 3)
    await wait_until_settled(gw.store)
    assert await gw.store.tracking.order_name_for_tracking("demo", "RED1") is not None
    redact = {
        "shop_id": 1,
        "shop_domain": "demo-shop.myshopify.com",
        "customer": {"id": 4242, "email": "jon@example.com"},
        "orders_to_redact": [901],
    }
    await gw.webhook("customers/redact", redact)
    await wait_until_settled(gw.store)
    assert await gw.store.tracking.order_name_for_tracking("demo", "RED1") is None
    states = await gw.store.states.load_order_states("demo", [901, 902])
    assert list(states) == [902]
    assert all(p.order_id != 901 for p in await gw.store.outbox.list_pushes(limit=100))
    await gw.webhook("shop/redact", {"shop_id": 1, "shop_domain": "demo-shop.myshopify.com"})
    await wait_until_settled(gw.store)
    assert await gw.store.states.load_order_states("demo", [902]) == {}
    assert await gw.store.outbox.list_pushes(limit=100) == []


async def test_each_attempt_is_recorded_with_status_and_answer(make_push_gateway: Any, bot_receiver: BotReceiver) -> None:
    gw = await make_push_gateway()
    bot_receiver.fail_next(1, status=503)
    await gw.webhook("orders/paid", rest_order(401))
    await bot_receiver.wait_for(lambda r: len(r.delivered()) == 1)
    await wait_until_settled(gw.store)
    [p] = await gw.store.outbox.list_pushes(statuses=[PushStatus.DELIVERED])
    attempts = await gw.store.outbox.push_attempts(p.id)
    assert [(a.http_status, a.outcome) for a in attempts] == [(503, "retry"), (200, "delivered")]
    assert '"msg": "down"' in attempts[0].answer and '"success": true' in attempts[1].answer
    assert attempts[0].at <= attempts[1].at


async def test_poison_webhooks_do_not_hold_back_the_genuine_one(make_push_gateway: Any, bot_receiver: BotReceiver) -> None:
    """Issue #21: correctly signed orders/paid webhooks whose id is no Shopify id ("²" as a digit, past 2^63) or
    whose fulfillments are not a list arrive together with a genuine one. The genuine receipt goes out; each poison
    event is settled on its own (dead with the reason), none is left pending to be claimed again and again."""
    gw = await make_push_gateway()
    poison = {
        "evt-poison-digit": {**rest_order(1), "id": "gid://shopify/Order/²"},
        "evt-poison-big": {**rest_order(1), "id": 2**63 + 5},
        "evt-poison-list": {**rest_order(7402, name="#7402"), "fulfillments": 5},
    }
    genuine = rest_order(7401, name="#7401")
    statuses = await asyncio.gather(
        *(gw.webhook("orders/paid", payload, mirror=False, event_id=event_id) for event_id, payload in poison.items()),
        gw.webhook("orders/paid", genuine, event_id="evt-genuine"),
    )
    assert statuses == [200] * 4
    await bot_receiver.wait_for(lambda r: any(p.body["params"]["order_number"] == "7401" for p in r.delivered()))
    await wait_until_settled(gw.store)
    events = {event_id: await gw.store.events.get_event("demo", event_id) for event_id in (*poison, "evt-genuine")}
    assert {k: (e.status, e.error) for k, e in events.items() if e is not None} == {
        "evt-poison-digit": (EventStatus.DEAD, "order payload without a valid id"),
        "evt-poison-big": (EventStatus.DEAD, "order payload without a valid id"),
        "evt-poison-list": (EventStatus.DONE, ""),  # a valid order: its fulfillments, not a list, are none
        "evt-genuine": (EventStatus.DONE, ""),
    }
    assert (await gw.store.outbox.backlog())["events"] == 0
