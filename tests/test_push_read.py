"""What a push says is read from Shopify (PROTOCOL §8, issue #8): the push for an order equals the `orders` reply for
it; package/update gets the order's recipient and the fulfillment's tracking and image even when the webhook carries
none of them; reads are batched and cost-split; when Shopify cannot answer, nothing incomplete goes out and the push
arrives once it answers again. Real servers throughout: the gateway, the local Shopify store, the receiver."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import aiohttp

from gateway.ops import Metrics, get_metrics
from gateway.push.processor import build_processor
from gateway.push.reader import (
    FULFILLMENT_COST,
    MAX_LINE_ITEMS,
    MAX_REQUEST_COST,
    PACKAGE_COST,
    PACKAGE_FULFILLMENTS,
    RECEIPT_LINE_ITEMS,
    PushReader,
    receipt_cost,
)
from gateway.push.reconcile import OVERLAP_SECONDS
from gateway.push.records import EventStatus, PushStatus, WebhookMeta
from gateway.push.store import PushStore
from gateway.settings import Settings
from gateway.shopify.client import open_clients
from gateway.shopify.queries import load_query
from localstore import SandboxServer, SandboxShop
from localstore import payloads as store_payloads
from tests.fixtures_push import (
    SHOP_DOMAIN,
    SHOP_KEY,
    SHOPIFY_TOKEN,
    BotReceiver,
    SandboxGateway,
    as_push,
    eventually,
    orders_reply,
    packages_reply,
    push_settings,
    reconcile_now,
    signed_webhook_headers,
    wait_until_settled,
)
from tests.fixtures_query import document_cost
from tests.fixtures_sandbox import SANDBOX_CLIENT_SECRET, SANDBOX_DOMAIN, gql


async def post_store_webhook(gw: SandboxGateway, topic: str, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    headers = signed_webhook_headers(topic, body, secret=SANDBOX_CLIENT_SECRET, domain=SANDBOX_DOMAIN)
    resp = await gw.client.post("/webhooks/shopify", data=body, headers=headers)
    assert resp.status == 200, await resp.text()


async def settle(sandbox: SandboxServer, gw: SandboxGateway) -> None:
    await sandbox.webhooks.drain()
    await wait_until_settled(gw.store)


# --- one receipt ---------------------------------------------------------------------------------------------------


async def test_the_push_equals_the_orders_reply_for_every_seeded_order(
    sandbox_gateway: Any, sandbox: SandboxServer, bot_receiver: BotReceiver
) -> None:
    gw: SandboxGateway = await sandbox_gateway(push={"unpaid_delay_seconds": 3600})
    shop = sandbox.shop(SANDBOX_DOMAIN)
    assert len(shop.orders) >= 60
    for order in shop.orders:  # an orders/paid for each (the webhook decides *whether*; the read says *what*)
        payload = store_payloads.order_payload(shop, order)
        await post_store_webhook(gw, "orders/paid", {**payload, "financial_status": "paid", "cancelled_at": None})
    await bot_receiver.wait_for(lambda r: len(r.delivered("Order/Receipt")) == len(shop.orders), within=30)
    pushed = {r.body["params"]["order_url"]: r.body["params"] for r in bot_receiver.delivered("Order/Receipt")}
    assert len(pushed) == len(shop.orders)
    for order in shop.orders:
        reply = await orders_reply(gw.client, order["name"].lstrip("#"), order["statusPageUrl"])
        assert pushed[order["statusPageUrl"]] == as_push(reply), order["name"]
    methods = {p["payment_method"] for p in pushed.values()}
    assert any(m.split(" ")[-1].isdigit() for m in methods) and "manual" in methods  # "Visa 4242"-like and gateways
    assert any(e["image_url"] for p in pushed.values() for e in p["elements"])


async def test_card_and_gateway_payments_eur_discount_and_psid_attribute(
    sandbox_gateway: Any, sandbox: SandboxServer, bot_receiver: BotReceiver
) -> None:
    gw: SandboxGateway = await sandbox_gateway(push={"unpaid_delay_seconds": 3600})
    shop = sandbox.shop(SANDBOX_DOMAIN)
    card = await shop.create_order(email="card@example.com", card=("Visa", "4242"), gateway="shopify_payments")
    manual = await shop.create_order(email="cash@example.com", gateway="manual", financial_status="PENDING")
    await shop.mark_paid(manual["id"])
    eur = await shop.create_order(
        email="euro@example.com", currency="EUR", discount_code="TENOFF", note_attributes={"joinchat_psid": "PSID-EU"}
    )
    await settle(sandbox, gw)
    await bot_receiver.wait_for(lambda r: len(r.delivered("Order/Receipt")) == 3)
    by_number = {r.body["params"]["order_number"]: r.body for r in bot_receiver.delivered("Order/Receipt")}
    for order in (card, manual, eur):
        body = by_number[order["name"].lstrip("#")]
        assert body["params"] == as_push(
            await orders_reply(gw.client, order["name"].lstrip("#"), order["statusPageUrl"])
        )
    assert by_number[card["name"].lstrip("#")]["params"]["payment_method"] == "Visa 4242"
    assert by_number[manual["name"].lstrip("#")]["params"]["payment_method"] == "manual"
    euro = by_number[eur["name"].lstrip("#")]
    assert euro["recipient"] == {"id": "PSID-EU"}  # the note attribute, read as the order's custom attribute
    assert euro["params"]["currency"] == "EUR" and {e["currency"] for e in euro["params"]["elements"]} == {"EUR"}
    [adjustment] = euro["params"]["adjustments"]
    assert adjustment["name"] == "TENOFF" and adjustment["amount"] > 0
    presentment = eur["totalPriceSet"]["presentmentMoney"]
    assert presentment["currencyCode"] == "EUR"
    assert euro["params"]["summary"]["total_cost"] == float(presentment["amount"])


async def test_an_order_with_more_line_items_than_the_batch_reads_is_pushed_whole(
    sandbox_gateway: Any, sandbox: SandboxServer, bot_receiver: BotReceiver
) -> None:
    gw: SandboxGateway = await sandbox_gateway(push={"unpaid_delay_seconds": 3600})
    shop = sandbox.shop(SANDBOX_DOMAIN)
    active = [p for p in shop.products if p["status"] == "ACTIVE"]
    lines = [{"product_id": p["legacyResourceId"], "quantity": 1} for p in active[: RECEIPT_LINE_ITEMS + 4]]
    order = await shop.create_order(email="many@example.com", line_items=lines)
    await settle(sandbox, gw)
    await bot_receiver.wait_for(lambda r: len(r.delivered("Order/Receipt")) == 1)
    [push] = bot_receiver.delivered("Order/Receipt")
    assert len(push.body["params"]["elements"]) == len(lines)  # the batch's first page, then a second read
    reply = await orders_reply(gw.client, order["name"].lstrip("#"), order["statusPageUrl"])
    assert push.body["params"] == as_push(reply)


# --- package/update ------------------------------------------------------------------------------------------------


async def test_fulfillment_webhooks_for_an_order_the_gateway_never_saw(
    make_push_gateway: Any, bot_receiver: BotReceiver, push_sandbox: SandboxServer
) -> None:
    """Only fulfillment webhooks arrive (the orders/* were lost, or the order predates the gateway): the recipient is
    the order's PSID (a custom attribute under a key the shop configured), the image and tracking the store's."""
    gw = await make_push_gateway(push={"psid_attribute_keys": ["messenger_psid"]})
    shop: SandboxShop = push_sandbox.shop(SHOP_DOMAIN)
    order = await shop.create_order(email="never@example.com", note_attributes={"Messenger_PSID": "PSID-NEVER"})
    fulfillment = await shop.create_fulfillment(order["id"], tracking_numbers=["1ZNEVERSEEN1"], company="UPS")
    created = store_payloads.fulfillment_payload(shop, order, fulfillment)
    assert await gw.webhook("fulfillments/create", created, mirror=False) == 200
    await bot_receiver.wait_for(lambda r: len(r.delivered("package/update")) == 1)
    [push] = bot_receiver.delivered("package/update")
    line = order["lineItems"][0]
    assert push.body["recipient"] == {"id": "PSID-NEVER"}
    assert push.body["params"] == {
        "tracking_number": "1ZNEVERSEEN1",
        "image_url": line["image"]["url"],
        "tracking_url": fulfillment["trackingInfo"][0]["url"],
        "carrier": "UPS",
        "recipient_name": order["shippingAddress"]["name"],
        "tracking_status": "shipped",
    }
    assert await gw.store.tracking.order_name_for_tracking(SHOP_KEY, "1ZNEVERSEEN1") == order["name"].lstrip("#")
    assert bot_receiver.delivered("Order/Receipt") == []  # no orders/* webhook: nothing says it became paid


async def test_package_update_carries_the_packages_replys_carrier(
    sandbox_gateway: Any, sandbox: SandboxServer, bot_receiver: BotReceiver
) -> None:
    """Decided (README): package/update also carries `carrier`, the fulfillment's tracking company as the `packages`
    reply has it for the same fulfillment; "" for a fulfillment without tracking."""
    gw: SandboxGateway = await sandbox_gateway(push={"unpaid_delay_seconds": 3600})
    shop = sandbox.shop(SANDBOX_DOMAIN)
    order = await shop.create_order(email="carrier@example.com")
    tracked = await shop.create_fulfillment(order["id"], tracking_numbers=["CARRIER0001"], company="FedEx")
    untracked = await shop.create_fulfillment(order["id"], tracking_numbers=[])
    await settle(sandbox, gw)
    await bot_receiver.wait_for(lambda r: len(r.delivered("package/update")) == 2)
    by_number = {
        p.body["params"]["tracking_number"]: p.body["params"] for p in bot_receiver.delivered("package/update")
    }
    assert by_number.keys() == {"CARRIER0001", ""}
    assert by_number["CARRIER0001"]["carrier"] == "FedEx" and by_number[""]["carrier"] == ""
    packages = {p["package_number"]: p for p in await packages_reply(gw.client, order["name"].lstrip("#"))}
    for fulfillment, pushed in ((tracked, by_number["CARRIER0001"]), (untracked, by_number[""])):
        package = packages[fulfillment["name"].lstrip("#")]
        assert (pushed["carrier"], pushed["tracking_number"], pushed["tracking_url"]) == (
            package["carrier"],
            package["tracking_number"],
            package["tracking_url"],
        )


async def test_event_only_transitions_are_pushed_once_each_in_order(
    make_push_gateway: Any, bot_receiver: BotReceiver, push_sandbox: SandboxServer
) -> None:
    """fulfillment_events/create alone (no tracking, no recipient in Shopify's payload), repeated and late: one push
    per transition, in order, each complete."""
    gw = await make_push_gateway()
    shop: SandboxShop = push_sandbox.shop(SHOP_DOMAIN)
    order = await shop.create_order(email="events@example.com", phone="+16135550135")
    fulfillment = await shop.create_fulfillment(order["id"], tracking_numbers=["1ZEVENTS0001"])
    events = [await shop.add_fulfillment_event(fulfillment["id"], s) for s in ("IN_TRANSIT", "OUT_FOR_DELIVERY")]
    payloads = [store_payloads.fulfillment_event_payload(shop, order, fulfillment, e) for e in events]
    for payload in (payloads[0], payloads[0], payloads[1]):
        assert await gw.webhook("fulfillment_events/create", payload, mirror=False) == 200
        await wait_until_settled(gw.store)
    delivered = await shop.add_fulfillment_event(fulfillment["id"], "DELIVERED")
    last = store_payloads.fulfillment_event_payload(shop, order, fulfillment, delivered)
    assert await gw.webhook("fulfillment_events/create", last, mirror=False) == 200
    assert await gw.webhook("fulfillment_events/create", payloads[1], mirror=False) == 200  # late, older
    await wait_until_settled(gw.store)
    pushes = bot_receiver.delivered("package/update")
    assert [p.body["params"]["tracking_status"] for p in pushes] == ["in_transit", "out_for_delivery", "delivered"]
    assert {p.body["params"]["tracking_number"] for p in pushes} == {"1ZEVENTS0001"}
    assert {json.dumps(p.body["recipient"]) for p in pushes} == {json.dumps({"email": "events@example.com"})}
    assert all(p.body["params"]["image_url"] == order["lineItems"][0]["image"]["url"] for p in pushes)


async def _order_in_parts(shop: SandboxShop, email: str, parts: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An order of `parts` line items, shipped one item per fulfillment, each tracked."""
    active = [p for p in shop.products if p["status"] == "ACTIVE"]
    assert len(active) >= parts
    order = await shop.create_order(
        email=email, line_items=[{"product_id": p["legacyResourceId"], "quantity": 1} for p in active[:parts]]
    )
    fulfillments = [
        await shop.create_fulfillment(
            order["id"],
            tracking_numbers=[f"1ZPART{n:02d}{order['legacyResourceId']}"],
            company="DHL Express",
            line_items=[item["id"]],
        )
        for n, item in enumerate(order["lineItems"], 1)
    ]
    return order, fulfillments


def _expected_package(order: dict[str, Any], fulfillment: dict[str, Any], n: int, status: str) -> dict[str, Any]:
    """The package/update params for the n-th fulfillment of `_order_in_parts` (its own item's image)."""
    [tracking] = fulfillment["trackingInfo"]
    return {
        "tracking_number": tracking["number"],
        "image_url": (order["lineItems"][n - 1]["image"] or {}).get("url", ""),
        "tracking_url": tracking["url"],
        "carrier": "DHL Express",
        "recipient_name": order["shippingAddress"]["name"],
        "tracking_status": status,
    }


async def test_the_store_answers_the_follow_up_read_as_shopify_does(push_sandbox: SandboxServer) -> None:
    """push_fulfillments.graphql on the local store: a Fulfillment gid resolves to the fulfillment (its order named),
    an unknown one to null, a node of another type to {} (the inline fragment does not apply); priced per id."""
    shop: SandboxShop = push_sandbox.shop(SHOP_DOMAIN)
    order, [fulfillment] = await _order_in_parts(shop, "lookup@example.com", 1)
    ids = [fulfillment["id"], "gid://shopify/Fulfillment/999999999", order["id"]]
    async with aiohttp.ClientSession() as http:
        async with http.post(
            push_sandbox.graphql_url(),
            json={"query": load_query("push_fulfillments"), "variables": {"ids": ids}},
            headers={"X-Shopify-Access-Token": SHOPIFY_TOKEN},
        ) as resp:
            assert resp.status == 200
            answer = await resp.json()
    assert "errors" not in answer, answer
    found, unknown, other = answer["data"]["fulfillments"]
    assert (unknown, other) == (None, {})
    assert found["legacyResourceId"] == fulfillment["legacyResourceId"]
    assert found["order"] == {"legacyResourceId": order["legacyResourceId"]}
    assert found["trackingInfo"] == fulfillment["trackingInfo"]
    assert answer["extensions"]["cost"]["requestedQueryCost"] == len(ids) * FULFILLMENT_COST


async def test_a_fulfillment_beyond_the_orders_first_page_is_read_again_and_pushed_whole(
    make_push_gateway: Any, bot_receiver: BotReceiver, push_sandbox: SandboxServer
) -> None:
    """An order shipped in 7 parts: the push read lists its first PACKAGE_FULFILLMENTS fulfillments, so the
    fulfillments/create of the 7th reads that fulfillment again by id (one more request) — a complete package/update,
    not an unpushable one."""
    gw = await make_push_gateway()
    shop: SandboxShop = push_sandbox.shop(SHOP_DOMAIN)
    parts = PACKAGE_FULFILLMENTS + 2
    order, fulfillments = await _order_in_parts(shop, "parts@example.com", parts)
    before = push_sandbox.graphql_requests(SHOP_DOMAIN)
    created = store_payloads.fulfillment_payload(shop, order, fulfillments[-1])
    assert await gw.webhook("fulfillments/create", created, mirror=False) == 200
    await bot_receiver.wait_for(lambda r: len(r.delivered("package/update")) == 1)
    [push] = bot_receiver.delivered("package/update")
    assert push.body["recipient"] == {"email": "parts@example.com"}
    assert push.body["params"] == _expected_package(order, fulfillments[-1], parts, "shipped")
    assert push.body["params"]["image_url"] and push.body["params"]["tracking_number"]
    assert push_sandbox.graphql_requests(SHOP_DOMAIN) - before == 2  # the batch's read and one follow-up
    number = fulfillments[-1]["trackingInfo"][0]["number"]
    assert await gw.store.tracking.order_name_for_tracking(SHOP_KEY, number) == order["name"].lstrip("#")


async def test_the_store_filters_an_orders_fulfillments_by_timestamp_as_shopify_does(
    push_sandbox: SandboxServer,
) -> None:
    """`Order.fulfillments(query:)` filters by created_at/updated_at (the schema's own description), before `first`:
    the fulfillments changed since a time, wherever they are in the order's list."""
    shop: SandboxShop = push_sandbox.shop(SHOP_DOMAIN)
    order, fulfillments = await _order_in_parts(shop, "filter@example.com", 7)
    since = shop.now()
    await shop.add_fulfillment_event(fulfillments[-1]["id"], "IN_TRANSIT")
    document = """query($id: ID!, $q: String!) { order(id: $id) {
      changed: fulfillments(first: 5, query: $q) { legacyResourceId }
      all: fulfillments(first: 5) { legacyResourceId } } }"""
    answer = await gql(push_sandbox, document, {"id": order["id"], "q": f"updated_at:>='{since.isoformat()}'"},
                         token=SHOPIFY_TOKEN)
    assert "errors" not in answer, answer
    assert answer["data"]["order"]["changed"] == [{"legacyResourceId": fulfillments[-1]["legacyResourceId"]}]
    assert [f["legacyResourceId"] for f in answer["data"]["order"]["all"]] == [
        f["legacyResourceId"] for f in fulfillments[:5]
    ]


async def test_reconciliation_sees_a_change_to_an_orders_seventh_fulfillment(
    make_push_gateway: Any, bot_receiver: BotReceiver, push_sandbox: SandboxServer
) -> None:
    """The webhooks of a big order's 7th shipment were lost; reconciliation lists the fulfillments changed since its
    watermark (not the order's first five), so the 7th's transition is pushed, complete."""
    gw = await make_push_gateway()
    shop: SandboxShop = push_sandbox.shop(SHOP_DOMAIN)
    order, fulfillments = await _order_in_parts(shop, "bigorder@example.com", 7)
    # the gateway has seen everything up to here (its watermark), then the 7th shipment moves and no webhook arrives;
    # a watermark is whole seconds (as Shopify's updated_at search), so the move comes in the next second
    await asyncio.sleep(1.01 - shop.now().microsecond / 1e6)
    seen = shop.now()
    await gw.store.shops.set_watermark(SHOP_KEY, (seen + timedelta(seconds=OVERLAP_SECONDS)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    await shop.add_fulfillment_event(fulfillments[-1]["id"], "IN_TRANSIT")
    report = await reconcile_now(gw.app, SHOP_KEY)
    assert (report.orders, report.pushes) == (1, 2)  # the order's receipt (never seen either) and the 7th's move
    await bot_receiver.wait_for(lambda r: any(
        p.body["params"]["tracking_number"] == fulfillments[-1]["trackingInfo"][0]["number"]
        for p in r.delivered("package/update")))
    pushes = [p for p in bot_receiver.delivered("package/update")
              if p.body["params"]["tracking_number"] == fulfillments[-1]["trackingInfo"][0]["number"]]
    assert [p.body["params"] for p in pushes] == [_expected_package(order, fulfillments[-1], 7, "in_transit")]
    assert len(bot_receiver.delivered("package/update")) == 1  # the unchanged shipments 1-6 are not listed again
    assert pushes[-1].body["recipient"] == {"email": "bigorder@example.com"}


# --- cancelled fulfillments ------------------------------------------------------------------------------------------
# Decided (README): a fulfillment whose label was voided counts as cancelled, as on the query side (packages does not
# list it: tests/test_lookups_sandbox.py), so no package/update announces it, whichever way the gateway learns of it.


async def test_a_fulfillment_with_a_voided_label_is_not_pushed_from_its_webhook(
    make_push_gateway: Any, bot_receiver: BotReceiver, push_sandbox: SandboxServer
) -> None:
    """The REST payload does not say the label was voided (its status is "success"): the push read does, and the
    push is recorded unpushable with the reason instead of announcing a package the `packages` reply does not show."""
    gw = await make_push_gateway()
    shop: SandboxShop = push_sandbox.shop(SHOP_DOMAIN)
    order = await shop.create_order(email="voided@example.com")
    voided = await shop.create_fulfillment(order["id"], tracking_numbers=["1ZVOIDED01"], display_status="LABEL_VOIDED")
    created = store_payloads.fulfillment_payload(shop, order, voided)
    assert created["status"] == "success"
    assert await gw.webhook("fulfillments/create", created, mirror=False) == 200
    await wait_until_settled(gw.store)
    assert bot_receiver.delivered("package/update") == []
    [push] = await gw.store.outbox.list_pushes(SHOP_KEY, [PushStatus.UNPUSHABLE])
    assert push.topic == "package/update"
    assert push.last_error == f"not pushable: Shopify's fulfillment {voided['legacyResourceId']} is cancelled"
    assert await packages_reply(gw.client, order["name"].lstrip("#")) == []


async def test_reconciliation_announces_no_fulfillment_with_a_voided_label(
    make_push_gateway: Any, bot_receiver: BotReceiver, push_sandbox: SandboxServer
) -> None:
    gw = await make_push_gateway()
    shop: SandboxShop = push_sandbox.shop(SHOP_DOMAIN)
    order = await shop.create_order(email="voided-rec@example.com")
    await shop.create_fulfillment(order["id"], tracking_numbers=["1ZVOIDED02"], display_status="LABEL_VOIDED")
    shipped = await shop.create_fulfillment(order["id"], tracking_numbers=["1ZSHIPPED02"])
    report = await reconcile_now(gw.app, SHOP_KEY)  # the webhooks were lost: the first pass finds the order
    assert (report.orders, report.pushes) == (1, 2)  # its receipt and the live fulfillment's shipment
    await wait_until_settled(gw.store)
    [package] = bot_receiver.delivered("package/update")
    assert package.body["params"]["tracking_number"] == shipped["trackingInfo"][0]["number"]
    assert len(bot_receiver.delivered("Order/Receipt")) == 1


# --- batched, cost-aware reads ---------------------------------------------------------------------------------------


def _requested_cost(receipts: int, packages: int, line_items: int) -> int:
    ids = {"receiptIds": ["gid://shopify/Order/1"] * receipts, "packageIds": ["gid://shopify/Order/1"] * packages}
    return document_cost("push_orders", {**ids, "lineItems": line_items, "fulfillments": PACKAGE_FULFILLMENTS})


def test_the_readers_cost_figures_are_the_stores() -> None:
    for receipts, packages in ((1, 0), (0, 1), (7, 5)):
        expected = receipts * receipt_cost(RECEIPT_LINE_ITEMS) + packages * PACKAGE_COST
        assert _requested_cost(receipts, packages, RECEIPT_LINE_ITEMS) == expected
    assert _requested_cost(1, 0, MAX_LINE_ITEMS) == receipt_cost(MAX_LINE_ITEMS) <= MAX_REQUEST_COST
    assert MAX_REQUEST_COST // receipt_cost(RECEIPT_LINE_ITEMS) >= 10 and MAX_REQUEST_COST // PACKAGE_COST >= 10
    for fulfillments in (1, 4):
        ids = ["gid://shopify/Fulfillment/1"] * fulfillments
        assert document_cost("push_fulfillments", {"ids": ids}) == fulfillments * FULFILLMENT_COST


async def _decide_stored_events(push_store: PushStore, settings: Settings, events: int) -> tuple[Metrics, Metrics]:
    """Claim the stored events (`events` of them) and process them as one batch, reading through a PushReader of
    the shop's own client → the push side's metrics and the client's."""
    metrics = Metrics()
    async with open_clients(settings) as clients:
        claimed = await push_store.events.claim_events(100, 30.0)
        assert len(claimed) == events
        await build_processor(settings, push_store, metrics=metrics, reader=PushReader(clients, metrics)).process(claimed)
        return metrics, clients[SHOP_KEY].metrics


async def test_one_read_per_batch_split_to_stay_within_1000_points(
    push_store: PushStore, push_sandbox: SandboxServer, tmp_path: Any
) -> None:
    """A claimed batch of 40 paid orders and 15 shipped ones: one request per 1000 points (5), never one per event;
    the store never throttles them; every push is complete."""
    shop: SandboxShop = push_sandbox.shop(SHOP_DOMAIN)
    settings = push_settings(
        "http://127.0.0.1:9/push", tmp_path / "unused.sqlite3", admin_api_base=push_sandbox.base_url
    )
    orders = [await shop.create_order(email=f"batch{i}@example.com") for i in range(40)]
    shipped = [
        (o, await shop.create_fulfillment(o["id"], tracking_numbers=[f"1ZBATCH{i:04d}"]))
        for i, o in enumerate(orders[:15])
    ]
    for i, order in enumerate(orders):
        body = json.dumps({**store_payloads.order_payload(shop, order), "financial_status": "paid"}).encode()
        await push_store.events.record_event(SHOP_KEY, f"batch-paid-{i}", WebhookMeta("orders/paid"), body)
    for i, (order, fulfillment) in enumerate(shipped):
        body = json.dumps(store_payloads.fulfillment_payload(shop, order, fulfillment)).encode()
        await push_store.events.record_event(SHOP_KEY, f"batch-ship-{i}", WebhookMeta("fulfillments/create"), body)
    before = push_sandbox.graphql_requests(SHOP_DOMAIN)
    _, metrics = await _decide_stored_events(push_store, settings, 55)
    costs = (40 * receipt_cost(RECEIPT_LINE_ITEMS), 15 * PACKAGE_COST)
    requests = push_sandbox.graphql_requests(SHOP_DOMAIN) - before
    assert requests == metrics.value("shopify_requests_total", shop=SHOP_KEY) == -(-sum(costs) // MAX_REQUEST_COST)
    assert metrics.value("shopify_throttled_total", shop=SHOP_KEY) == 0
    pushes = await push_store.outbox.list_pushes(SHOP_KEY, [PushStatus.PENDING], limit=100)
    assert sorted(p.topic for p in pushes) == ["Order/Receipt"] * 40 + ["package/update"] * 15
    for push in pushes:
        params = json.loads(push.body)["params"]
        assert params["image_url"] if push.topic == "package/update" else params["elements"][0]["image_url"]


async def test_only_the_order_missing_a_fulfillment_gets_a_follow_up_read(
    push_store: PushStore, push_sandbox: SandboxServer, tmp_path: Any
) -> None:
    """One batch: the 7th and the 2nd fulfillment of an order shipped in 7 parts, the 6th of one shipped in 6, and
    three orders shipped in one part. One request for the batch, one follow-up carrying only the two fulfillments
    their orders did not list; every push complete."""
    shop: SandboxShop = push_sandbox.shop(SHOP_DOMAIN)
    settings = push_settings(
        "http://127.0.0.1:9/push", tmp_path / "unused.sqlite3", admin_api_base=push_sandbox.base_url
    )
    parts = PACKAGE_FULFILLMENTS + 2
    big, big_parts = await _order_in_parts(shop, "parts-a@example.com", parts)
    other, other_parts = await _order_in_parts(shop, "parts-b@example.com", parts - 1)
    ordinary = [await _order_in_parts(shop, f"parts-{i}@example.com", 1) for i in range(3)]
    wanted = [(big, big_parts, 7), (big, big_parts, 2), (other, other_parts, 6)] + [(o, f, 1) for o, f in ordinary]
    for i, (order, fulfillments, n) in enumerate(wanted):
        body = json.dumps(store_payloads.fulfillment_payload(shop, order, fulfillments[n - 1])).encode()
        await push_store.events.record_event(SHOP_KEY, f"parts-{i}", WebhookMeta("fulfillments/create"), body)
    before = push_sandbox.graphql_requests(SHOP_DOMAIN)
    push_metrics, client_metrics = await _decide_stored_events(push_store, settings, len(wanted))
    requests = push_sandbox.graphql_requests(SHOP_DOMAIN) - before
    assert requests == client_metrics.value("shopify_requests_total", shop=SHOP_KEY) == 2
    # the 7th of one order and the 6th of the other, nothing else
    assert push_metrics.value("gateway_push_fulfillments_read_again_total", shop=SHOP_KEY) == 2
    pushes = {p.fulfillment_id: p for p in await push_store.outbox.list_pushes(SHOP_KEY, [PushStatus.PENDING], limit=100)}
    assert len(pushes) == len(wanted)
    for order, fulfillments, n in wanted:
        body = json.loads(pushes[int(fulfillments[n - 1]["legacyResourceId"])].body)
        assert body["recipient"] == {"email": order["email"]}
        assert body["params"] == _expected_package(order, fulfillments[n - 1], n, "shipped")


# --- Shopify cannot answer -------------------------------------------------------------------------------------------


async def test_shopify_down_during_the_read_then_the_complete_push_arrives(
    make_push_gateway: Any, bot_receiver: BotReceiver, push_sandbox: SandboxServer
) -> None:
    gw = await make_push_gateway()
    shop: SandboxShop = push_sandbox.shop(SHOP_DOMAIN)
    order = await shop.create_order(email="down@example.com", card=("Visa", "4242"), gateway="shopify_payments")
    push_sandbox.faults.set(error_rate=1.0)  # every Admin API request answers 503
    before = push_sandbox.graphql_requests(SHOP_DOMAIN)
    assert await gw.webhook("orders/paid", store_payloads.order_payload(shop, order), mirror=False) == 200

    await eventually(lambda: push_sandbox.graphql_requests(SHOP_DOMAIN) >= before + 6, what="reads retried")
    assert bot_receiver.received == []  # nothing incomplete went out
    assert (await gw.store.outbox.backlog())["events"] == 1  # the webhook waits, stored

    push_sandbox.faults.clear()
    await bot_receiver.wait_for(lambda r: len(r.delivered("Order/Receipt")) == 1)
    [push] = bot_receiver.delivered("Order/Receipt")
    assert push.body["params"] == as_push(
        await orders_reply(gw.client, order["name"].lstrip("#"), order["statusPageUrl"])
    )
    assert push.body["params"]["payment_method"] == "Visa 4242"
    await wait_until_settled(gw.store)


async def test_a_failed_follow_up_read_defers_the_push_until_shopify_answers(
    make_push_gateway: Any, bot_receiver: BotReceiver, push_sandbox: SandboxServer
) -> None:
    """The batch's read answers, the follow-up for a fulfillment beyond the order's first page does not: nothing is
    pushed (not even an unpushable or incomplete push), the event waits, and the complete push arrives later."""
    gw = await make_push_gateway()
    shop: SandboxShop = push_sandbox.shop(SHOP_DOMAIN)
    parts = PACKAGE_FULFILLMENTS + 2
    order, fulfillments = await _order_in_parts(shop, "parts-down@example.com", parts)
    before = push_sandbox.graphql_requests(SHOP_DOMAIN)
    push_sandbox.faults.set(fail_after=1)  # the batch's read is answered, every request after it fails
    created = store_payloads.fulfillment_payload(shop, order, fulfillments[-1])
    assert await gw.webhook("fulfillments/create", created, mirror=False) == 200
    await eventually(lambda: push_sandbox.graphql_requests(SHOP_DOMAIN) >= before + 4, what="reads retried")
    # the follow-up was what failed first
    assert get_metrics(gw.app).value("gateway_push_fulfillments_read_again_total", shop=SHOP_KEY) >= 1
    assert bot_receiver.received == [] and await gw.store.outbox.list_pushes(SHOP_KEY) == []
    assert (await gw.store.outbox.backlog())["events"] == 1  # the webhook waits, stored

    push_sandbox.faults.clear()
    await bot_receiver.wait_for(lambda r: len(r.delivered("package/update")) == 1)
    [push] = bot_receiver.delivered("package/update")
    assert push.body["params"] == _expected_package(order, fulfillments[-1], parts, "shipped")
    await wait_until_settled(gw.store)


async def test_a_read_failing_past_max_age_dead_letters_the_event_with_the_reason(
    make_push_gateway: Any, bot_receiver: BotReceiver, push_sandbox: SandboxServer
) -> None:
    gw = await make_push_gateway(push={"max_age_seconds": 0.5})
    shop: SandboxShop = push_sandbox.shop(SHOP_DOMAIN)
    order = await shop.create_order(email="gone@example.com")
    push_sandbox.faults.set(error_rate=1.0)
    payload = store_payloads.order_payload(shop, order)
    assert await gw.webhook("orders/paid", payload, mirror=False, event_id="evt-read-dead") == 200

    async def dead() -> bool:
        event = await gw.store.events.get_event(SHOP_KEY, "evt-read-dead")
        return event is not None and event.status == EventStatus.DEAD

    await eventually(dead, what="event dead-lettered")
    event = await gw.store.events.get_event(SHOP_KEY, "evt-read-dead")
    assert event is not None and event.error.startswith("Shopify read failed") and "503" in event.error
    push_sandbox.faults.clear()
    # settled for good: nothing waits (no event, no push) that could still go out now that Shopify answers
    assert await gw.store.outbox.backlog() == {"events": 0, "pushes": 0, "dead": 0, "checks": 0}
    assert bot_receiver.received == [] and await gw.store.outbox.list_pushes(SHOP_KEY) == []
