"""The local store's webhook bodies are no kinder than Shopify's: every key of every body it emits is a key of
Shopify's example for that topic (tests/shopify_examples.py), walked recursively, on bodies received over HTTP from
the running store after driving it through its admin surface. The gateway's intake accepts them as they are."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import aiohttp

from localstore import SandboxServer, SandboxShop
from tests.fixtures_push import rest_fulfillment, rest_fulfillment_event, rest_order
from tests.fixtures_sandbox import SANDBOX_DOMAIN, Receiver, subscribe
from tests.shopify_examples import TOPIC_EXAMPLES, example, extra_keys, reference_shape

#: The topics Shopify gave an example body for (all the topics the local store emits).
EXAMPLE_TOPICS = ["orders/create", "orders/updated", "orders/paid", "orders/cancelled", "fulfillments/create",
                  "fulfillments/update", "fulfillment_events/create", "products/update"]
PSID = "psid-shape-check"


async def admin(session: aiohttp.ClientSession, sandbox: SandboxServer, path: str, body: dict[str, Any] | None = None) -> Any:
    async with session.post(f"{sandbox.base_url}/_sandbox/{SANDBOX_DOMAIN}/{path}", json=body or {}) as response:
        assert response.status in (200, 201), (path, await response.text())
        return await response.json()


async def drive_store(sandbox: SandboxServer, shop: SandboxShop, *, every_seeded_record: bool) -> dict[str, Any]:
    """Every kind of change the store makes, through its admin surface: a code-discounted order with a PSID paid,
    fulfilled, tracked and delivered; an EUR order with an automatic discount, cancelled; a product update. With
    `every_seeded_record`, also an orders/updated for every seeded order (refunds, partial payments, fulfillments,
    currencies, no shipping address...), a carrier event on every seeded fulfillment and every product updated."""
    seeded_orders = [o["legacyResourceId"] for o in shop.orders]
    seeded_fulfillments = [f["legacyResourceId"] for o in shop.orders for f in o["fulfillments"]]
    async with aiohttp.ClientSession() as session:
        coded = await admin(session, sandbox, "orders", {
            "email": "shape@example.com", "financial_status": "PENDING", "discount_code": "TENOFF",
            "note_attributes": {"joinchat_psid": PSID},
            "line_items": [{"title": "Classic T-Shirt", "quantity": 2, "price": "19.99"},
                           {"title": "Graphic T-Shirt", "quantity": 1, "price": "24.99"}]})
        await admin(session, sandbox, f"orders/{coded['legacyResourceId']}/paid")
        euro = await admin(session, sandbox, "orders", {"currency": "EUR", "automatic_discount": "Autumn sale",
                                                        "note_attributes": {"psid": PSID}})
        fulfillment = await admin(session, sandbox, f"orders/{coded['legacyResourceId']}/fulfillments",
                                  {"tracking_numbers": ["1ZSHAPE0001"], "company": "UPS"})
        await admin(session, sandbox, f"fulfillments/{fulfillment['legacyResourceId']}/events", {"status": "in_transit"})
        await admin(session, sandbox, f"fulfillments/{fulfillment['legacyResourceId']}", {"display_status": "delivered"})
        await admin(session, sandbox, f"orders/{euro['legacyResourceId']}/cancel")
        await admin(session, sandbox, f"products/{shop.products[0]['legacyResourceId']}", {"title": "Classic T-Shirt v2"})
        if every_seeded_record:
            for order_id in seeded_orders:
                await admin(session, sandbox, f"orders/{order_id}/close")
            for fulfillment_id in seeded_fulfillments:
                await admin(session, sandbox, f"fulfillments/{fulfillment_id}/events", {"status": "out_for_delivery"})
            for product in shop.products[1:]:
                await admin(session, sandbox, f"products/{product['legacyResourceId']}", {"vendor": product["vendor"]})
    await sandbox.webhooks.drain()
    return {"coded": coded, "euro": euro, "fulfillment": fulfillment}


def received(receiver: Receiver) -> list[tuple[str, bytes, Any]]:
    """(topic, raw body, parsed body) of every delivery, ids parsed as exact integers."""
    return [(h["X-Shopify-Topic"], body, json.loads(body)) for h, body in receiver.received]


def test_the_shape_walk_finds_what_shopify_does_not_send() -> None:
    order = example("orders/paid")
    assert extra_keys(order, reference_shape("orders/paid")) == []
    kinder = {**order, "payment_details": {"credit_card_company": "Visa", "credit_card_number": "•••• 4242"},
              "line_items": [{**order["line_items"][0], "image": {"src": "https://cdn.example/a.png"}}],
              "customer": {**order["customer"], "tags": "vip"}}
    assert sorted(extra_keys(kinder, reference_shape("orders/paid"))) == [
        "$.customer.tags", "$.line_items[].image", "$.payment_details"]
    # empty lists in the webhook example take their element shape from the REST order: allocations with amounts
    allocation = {"amount": "3.34", "amount_set": order["total_price_set"], "discount_application_index": 0}
    discounted = {**order, "line_items": [{**order["line_items"][0], "discount_allocations": [allocation]}]}
    assert extra_keys(discounted, reference_shape("orders/paid")) == []
    fulfillment = {**example("fulfillments/create"), "note_attributes": [{"name": "joinchat_psid", "value": "x"}]}
    assert extra_keys(fulfillment, reference_shape("fulfillments/create")) == ["$.note_attributes"]
    event = {**example("fulfillment_events/create"), "line_items": [], "email": "a@b.c"}
    assert sorted(extra_keys(event, reference_shape("fulfillment_events/create"))) == ["$.email", "$.line_items"]
    assert extra_keys({"properties": [{"name": "n"}]}, {"properties": []}) == [
        "$.properties[] (elements where Shopify's examples have none)"]
    assert extra_keys({"tags": ["a"], "customer": "Bob", "note": None}, {"tags": "a", "customer": {}, "note": {}}) == [
        "$.tags (a list where Shopify's example has str)", "$.customer (a str where Shopify's example has dict)"]


async def test_every_emitted_body_has_only_keys_of_shopifys_example(
    sandbox: SandboxServer, sandbox_shop: SandboxShop, receiver: Receiver
) -> None:
    await subscribe(sandbox, receiver.url, *(t.upper().replace("/", "_") for t in EXAMPLE_TOPICS))
    await drive_store(sandbox, sandbox_shop, every_seeded_record=True)
    deliveries = received(receiver)
    assert len(deliveries) == len(sandbox_shop.events)  # every body the store emitted was walked
    assert {topic for topic, _, _ in deliveries} == set(EXAMPLE_TOPICS)
    extras: dict[str, set[str]] = {}
    for topic, _, body in deliveries:
        assert topic in TOPIC_EXAMPLES, f"{topic}: the store emits a topic with no reference shape"
        found = extra_keys(body, reference_shape(topic))
        if found:
            extras.setdefault(topic, set()).update(found)
    assert extras == {}


async def test_bodies_leave_out_what_shopify_leaves_out(
    sandbox: SandboxServer, sandbox_shop: SandboxShop, receiver: Receiver
) -> None:
    await subscribe(sandbox, receiver.url, *(t.upper().replace("/", "_") for t in EXAMPLE_TOPICS))
    made = await drive_store(sandbox, sandbox_shop, every_seeded_record=False)
    deliveries = received(receiver)
    for topic, raw, body in deliveries:
        if topic.startswith("orders/"):
            # card brand and digits come from the order's transactions in GraphQL; images from its line items there
            assert "payment_details" not in body
            assert all("image" not in li for li in body["line_items"])
        if topic.startswith("fulfillment"):
            # no order attributes, so no PSID: the recipient is the order's, read from Shopify
            assert "note_attributes" not in body and PSID.encode() not in raw
        if topic == "fulfillment_events/create":
            assert set(body) <= set(example(topic)) and "line_items" not in body and "email" not in body
            assert body["fulfillment_id"] == int(made["fulfillment"]["legacyResourceId"])
            assert body["order_id"] == int(made["coded"]["legacyResourceId"])

    # line items carry Shopify's discount allocations, with amounts, adding up to the order's discounts
    def allocations(body: dict[str, Any]) -> list[dict[str, Any]]:
        return [a for li in body["line_items"] for a in li["discount_allocations"]]

    coded_id, euro_id = int(made["coded"]["legacyResourceId"]), int(made["euro"]["legacyResourceId"])
    [paid] = [b for t, _, b in deliveries if t == "orders/paid" and b["id"] == coded_id]
    assert sum(Decimal(a["amount"]) for a in allocations(paid)) == Decimal(paid["total_discounts"]) == Decimal("10.00")
    assert len(allocations(paid)) == 2
    for allocation in allocations(paid):
        assert paid["discount_applications"][allocation["discount_application_index"]]["code"] == "TENOFF"
        assert allocation["amount_set"]["shop_money"]["amount"] == allocation["amount"]
    [shipped] = [b for t, _, b in deliveries if t == "fulfillments/create"]
    assert allocations(shipped) == allocations(paid)
    [cancelled] = [b for t, _, b in deliveries if t == "orders/cancelled"]
    assert cancelled["id"] == euro_id and cancelled["discount_applications"][0]["title"] == "Autumn sale"
    presentment = [a["amount_set"]["presentment_money"] for a in allocations(cancelled)]
    assert presentment and {m["currency_code"] for m in presentment} == {"EUR"}
    assert sum(Decimal(m["amount"]) for m in presentment) == Decimal(
        cancelled["total_discounts_set"]["presentment_money"]["amount"])


async def test_emitted_bodies_pass_the_gateway_intake(sandbox_gateway: Any, sandbox: SandboxServer) -> None:
    gateway = await sandbox_gateway()
    shop = sandbox.shop(SANDBOX_DOMAIN)
    await drive_store(sandbox, shop, every_seeded_record=False)
    deliveries = sandbox.webhooks.deliveries
    assert {d.topic for d in deliveries} == set(EXAMPLE_TOPICS)
    assert [a.status for a in sandbox.webhooks.log] == [200] * len(deliveries)  # signature, shop, topic all accepted
    for delivery in deliveries:
        stored = await gateway.store.events.get_event("demo", delivery.event_id)
        assert stored is not None, f"{delivery.topic} was answered 200 but not recorded"


def test_hand_made_bodies_of_the_push_tests_have_shopifys_shape() -> None:
    """The payload builders of tests/fixtures_push.py (and the benches) are held to the same shapes."""
    fulfillment = rest_fulfillment(255858046, 450789469, shipment_status="in_transit")
    order = rest_order(450789469, psid="psid-1", phone="+16136120707", cancelled=True, fulfillments=[fulfillment])
    for topic in ("orders/create", "orders/paid", "orders/updated", "orders/cancelled"):
        assert extra_keys(order, reference_shape(topic)) == []
    for topic in ("fulfillments/create", "fulfillments/update"):
        assert extra_keys(fulfillment, reference_shape(topic)) == []
    event = rest_fulfillment_event(255858046, 450789469, "delivered")
    assert extra_keys(event, reference_shape("fulfillment_events/create")) == []
