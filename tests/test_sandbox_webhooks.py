"""Webhooks from the local store: subscriptions through GraphQL, signed deliveries, duplicates, disorder, retries, drops."""

from __future__ import annotations

import aiohttp

from gateway.signing import SHOPIFY_HEADER, verify
from localstore import SandboxServer, SandboxShop
from tests.fixtures_sandbox import SANDBOX_CLIENT_SECRET, SUBSCRIBE, Receiver, gql, subscribe


async def test_subscriptions_through_graphql(sandbox: SandboxServer, receiver: Receiver) -> None:
    [sub_id] = await subscribe(sandbox, receiver.url, "ORDERS_CREATE")
    again = await gql(sandbox, SUBSCRIBE, {"topic": "ORDERS_CREATE", "uri": receiver.url})
    assert again["data"]["webhookSubscriptionCreate"]["userErrors"][0]["message"].startswith("Address for this topic")
    listed = await gql(sandbox, """{ webhookSubscriptions(first: 10, topics: [ORDERS_CREATE]) {
        nodes { id topic uri format } } }""")
    assert listed["data"]["webhookSubscriptions"]["nodes"] == [
        {"id": sub_id, "topic": "ORDERS_CREATE", "uri": receiver.url, "format": "JSON"}]
    deleted = await gql(sandbox, "mutation($id: ID!) { webhookSubscriptionDelete(id: $id) { deletedWebhookSubscriptionId userErrors { message } } }",
                        {"id": sub_id})
    assert deleted["data"]["webhookSubscriptionDelete"] == {"deletedWebhookSubscriptionId": sub_id, "userErrors": []}
    assert deleted["extensions"]["cost"]["requestedQueryCost"] == 10


async def test_signed_deliveries_with_shopify_headers(sandbox: SandboxServer, sandbox_shop: SandboxShop,
                                                      receiver: Receiver) -> None:
    await subscribe(sandbox, receiver.url, "ORDERS_CREATE", "ORDERS_PAID")
    order = await sandbox_shop.create_order(email="ann@example.com", financial_status="PAID",
                                            note_attributes={"joinchat_psid": "psid-ann"})
    await sandbox.webhooks.drain()
    assert sorted(receiver.topics()) == ["orders/create", "orders/paid"]
    for headers, body in receiver.received:
        assert verify(headers[SHOPIFY_HEADER], body, [SANDBOX_CLIENT_SECRET])
        assert not verify(headers[SHOPIFY_HEADER], body, ["some-other-secret"])
        assert headers["X-Shopify-Shop-Domain"] == "demo.myshopify.com"
        assert headers["X-Shopify-API-Version"] == "2026-10"
        for name in ("X-Shopify-Webhook-Id", "X-Shopify-Event-Id", "X-Shopify-Triggered-At"):
            assert headers[name]
    payload = receiver.bodies("orders/create")[0]
    assert payload["id"] == int(order["legacyResourceId"]) and isinstance(payload["id"], int)
    assert payload["admin_graphql_api_id"] == order["id"] and payload["name"] == order["name"]
    assert payload["financial_status"] == "paid" and payload["email"] == "ann@example.com"
    assert {"name": "joinchat_psid", "value": "psid-ann"} in payload["note_attributes"]
    assert payload["updated_at"] == order["updatedAt"].replace("Z", "+00:00")
    assert [a.status for a in sandbox.webhooks.log] == [200, 200]


async def test_duplicates_share_their_ids(sandbox: SandboxServer, sandbox_shop: SandboxShop, receiver: Receiver) -> None:
    await subscribe(sandbox, receiver.url, "ORDERS_CANCELLED")
    sandbox.webhooks.duplicates = 3
    await sandbox_shop.cancel_order("#1002")
    await sandbox.webhooks.drain()
    assert receiver.topics() == ["orders/cancelled"] * 3
    assert len({h["X-Shopify-Event-Id"] for h, _ in receiver.received}) == 1
    assert len({h["X-Shopify-Webhook-Id"] for h, _ in receiver.received}) == 1
    assert receiver.bodies()[0]["cancel_reason"] == "customer"


async def test_out_of_order_release(sandbox: SandboxServer, sandbox_shop: SandboxShop, receiver: Receiver) -> None:
    await subscribe(sandbox, receiver.url, "ORDERS_UPDATED")
    sandbox.webhooks.pause()
    await sandbox_shop.mark_paid("#1002")  # orders/paid (not subscribed) + orders/updated
    await sandbox_shop.close_order("#1002")  # orders/updated
    await sandbox.webhooks.drain()
    assert receiver.received == [] and len(sandbox.webhooks.pending) == 2
    sandbox.webhooks.release_order = "reverse"
    sandbox.webhooks.resume()
    await sandbox.webhooks.drain()
    stamps = [b["updated_at"] for b in receiver.bodies()]
    assert len(stamps) == 2 and stamps[0] > stamps[1]  # the newer state arrives first
    assert receiver.bodies()[0]["closed_at"] is not None and receiver.bodies()[1]["closed_at"] is None


async def test_retries_on_non_2xx_then_success(sandbox: SandboxServer, sandbox_shop: SandboxShop, receiver: Receiver) -> None:
    await subscribe(sandbox, receiver.url, "ORDERS_CREATE")
    receiver.statuses = [500, 503]
    await sandbox_shop.create_order(financial_status="PENDING")
    await sandbox.webhooks.drain()
    attempts = sandbox.webhooks.attempts_for("orders/create")
    assert [(a.attempt, a.status) for a in attempts] == [(1, 500), (2, 503), (3, 200)]
    assert len({a.webhook_id for a in attempts}) == 1
    assert len({body for _, body in receiver.received}) == 1  # the original payload every time
    assert sandbox.webhooks.delivered("orders/create")[0].attempts == 3


async def test_gives_up_after_the_schedule(sandbox: SandboxServer, sandbox_shop: SandboxShop, receiver: Receiver) -> None:
    await subscribe(sandbox, receiver.url, "ORDERS_CREATE")
    receiver.statuses = [500] * 10
    await sandbox_shop.create_order()
    await sandbox.webhooks.drain()
    assert len(receiver.received) == 1 + len(sandbox.webhooks.retry_schedule)
    assert sandbox.webhooks.deliveries[-1].outcome == "gave_up"


async def test_connection_refused_is_retried_and_logged(sandbox: SandboxServer, sandbox_shop: SandboxShop) -> None:
    await subscribe(sandbox, "http://127.0.0.1:9/nobody-listens", "ORDERS_CREATE")
    sandbox.webhooks.retry_schedule = [0.01]
    await sandbox_shop.create_order()
    await sandbox.webhooks.drain()
    assert [(a.status, a.error is not None) for a in sandbox.webhooks.log] == [(None, True), (None, True)]


async def test_dropped_delivery(sandbox: SandboxServer, sandbox_shop: SandboxShop, receiver: Receiver) -> None:
    await subscribe(sandbox, receiver.url, "ORDERS_CREATE")
    sandbox.webhooks.drop_next = 1
    first = await sandbox_shop.create_order()
    second = await sandbox_shop.create_order()
    await sandbox.webhooks.drain()
    assert [b["id"] for b in receiver.bodies()] == [int(second["legacyResourceId"])]
    assert "orders/create" in {t for t, p in sandbox_shop.events if p["id"] == int(first["legacyResourceId"])}


async def test_fulfillment_and_product_topics(sandbox: SandboxServer, sandbox_shop: SandboxShop, receiver: Receiver) -> None:
    await subscribe(sandbox, receiver.url, "FULFILLMENTS_CREATE", "FULFILLMENTS_UPDATE", "FULFILLMENT_EVENTS_CREATE",
                    "PRODUCTS_UPDATE")
    order = await sandbox_shop.create_order(financial_status="PAID")
    fulfillment = await sandbox_shop.create_fulfillment(order["id"], tracking_numbers=["1ZAAA", "1ZBBB"], company="UPS")
    await sandbox_shop.add_fulfillment_event(fulfillment["id"], status="out_for_delivery")
    await sandbox_shop.update_fulfillment(fulfillment["legacyResourceId"], display_status="DELIVERED")
    await sandbox_shop.update_product(sandbox_shop.products[0]["id"], title="Classic T-Shirt v2", published=False)
    await sandbox.webhooks.drain()
    assert receiver.topics().count("fulfillments/update") == 2
    created = receiver.bodies("fulfillments/create")[0]
    assert created["tracking_numbers"] == ["1ZAAA", "1ZBBB"] and created["tracking_company"] == "UPS"
    assert created["name"] == f"{order['name']}.1" and created["order_id"] == int(order["legacyResourceId"])
    event = receiver.bodies("fulfillment_events/create")[0]
    assert event["status"] == "out_for_delivery" and event["fulfillment_id"] == int(fulfillment["legacyResourceId"])
    statuses = [b["shipment_status"] for b in receiver.bodies("fulfillments/update")]
    assert statuses == ["out_for_delivery", "delivered"]
    product = receiver.bodies("products/update")[0]
    assert product["title"] == "Classic T-Shirt v2" and product["published_at"] is None
    assert sandbox_shop.order(order["id"])["fulfillments"][0]["deliveredAt"]  # type: ignore[index]


async def test_webhook_knobs_over_the_admin_surface(sandbox: SandboxServer, sandbox_shop: SandboxShop,
                                                    receiver: Receiver) -> None:
    await subscribe(sandbox, receiver.url, "ORDERS_CREATE")
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{sandbox.base_url}/_sandbox/webhooks", json={"paused": True, "duplicates": 2}) as r:
            assert (await r.json())["paused"] is True
        await sandbox_shop.create_order()
        assert len(sandbox.webhooks.pending) == 2
        async with session.post(f"{sandbox.base_url}/_sandbox/webhooks/release") as r:
            assert r.status == 200
        async with session.post(f"{sandbox.base_url}/_sandbox/webhooks/drain") as r:
            assert (await r.json())["in_flight"] == 0
        async with session.get(f"{sandbox.base_url}/_sandbox/webhooks/log") as r:
            log = await r.json()
    assert [entry["status"] for entry in log] == [200, 200] and len(receiver.received) == 2
