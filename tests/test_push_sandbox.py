"""The push pipeline against the local Shopify store: real signed webhooks (duplicates, disorder, drops), real
GraphQL reads (unpaid re-check, reconciliation, subscriptions), a real receiver."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.push.records import PushStatus
from gateway.push.store import PUSH_STORE
from gateway.push.subscriptions import TOPICS, list_subscriptions, sync_shop
from gateway.shopify.client import SHOPIFY_CLIENTS
from localstore import SandboxServer
from tests.fixtures_push import BotReceiver, as_push, eventually, orders_reply, reconcile_now, wait_until_settled
from tests.fixtures_sandbox import SANDBOX_DOMAIN


@pytest.fixture
def wired(sandbox_gateway: Any) -> Any:
    """`await wired(**config)` → (gateway client, app): the gateway subscribed to the sandbox's webhooks."""

    async def make(push: dict[str, Any] | None = None, server: dict[str, Any] | None = None) -> Any:
        gw = await sandbox_gateway(push=push, server=server)
        return gw.client, gw.app

    return make


async def test_subscriptions_sync_is_idempotent(wired: Any, sandbox: SandboxServer) -> None:
    client, app = await wired()
    shopify = app[SHOPIFY_CLIENTS]["demo"]
    uri = f"http://127.0.0.1:{client.server.port}/webhooks/shopify"
    again = await sync_shop("demo", shopify, uri)
    assert again.ok and again.created == [] and sorted(again.present) == sorted(TOPICS)
    subs = await list_subscriptions(shopify)
    assert sorted(s["topic"] for s in subs) == sorted(TOPICS) and {s["uri"] for s in subs} == {uri}
    moved = await sync_shop("demo", shopify, "http://127.0.0.1:1/webhooks/shopify", create=False)
    assert len(moved.drift) == len(TOPICS) and moved.created == []


async def test_paid_order_duplicated_and_shuffled_is_one_receipt(
    wired: Any, sandbox: SandboxServer, bot_receiver: BotReceiver
) -> None:
    _, app = await wired()
    sandbox.webhooks.configure(duplicates=3, release_order="shuffle")
    sandbox.webhooks.pause()
    shop = sandbox.shop(SANDBOX_DOMAIN)
    order = await shop.create_order(email="dup@example.com", note_attributes={"joinchat_psid": "PSID-77"})
    await shop.mark_paid(order["id"]) if order["displayFinancialStatus"] != "PAID" else None
    fulfillment = await shop.create_fulfillment(order["id"], tracking_numbers=["1ZSANDBOX1"])
    await shop.add_fulfillment_event(fulfillment["id"], "IN_TRANSIT")
    await shop.add_fulfillment_event(fulfillment["id"], "DELIVERED")
    sandbox.webhooks.resume()
    await sandbox.webhooks.drain()
    store = app[PUSH_STORE]
    await wait_until_settled(store)
    receipts = bot_receiver.delivered("Order/Receipt")
    assert len(receipts) == 1 and receipts[0].body["recipient"] == {"id": "PSID-77"}
    statuses = [r.body["params"]["tracking_status"] for r in bot_receiver.delivered("package/update")]
    assert statuses[-1] == "delivered" and len(statuses) == len(set(statuses))  # never a repeated status
    assert await store.tracking.order_name_for_tracking("demo", "1ZSANDBOX1") == order["name"].lstrip("#")


async def test_unpaid_after_delay_only_when_still_unpaid(
    wired: Any, sandbox: SandboxServer, bot_receiver: BotReceiver
) -> None:
    client, app = await wired(push={"unpaid_delay_seconds": 0.3})
    shop = sandbox.shop(SANDBOX_DOMAIN)
    still_unpaid = await shop.create_order(email="late@example.com", financial_status="PENDING")
    paid_later = await shop.create_order(email="payer@example.com", financial_status="PENDING")
    cancelled = await shop.create_order(email="gone@example.com", financial_status="PENDING")
    await shop.mark_paid(paid_later["id"])
    await shop.cancel_order(cancelled["id"])
    await sandbox.webhooks.drain()
    await bot_receiver.wait_for(lambda r: len(r.delivered("Order/Unpaid")) >= 1)
    store = app[PUSH_STORE]

    async def checks_done() -> bool:
        return (await store.outbox.backlog())["checks"] == 0

    await eventually(checks_done, what="unpaid checks settled")
    await wait_until_settled(store)
    unpaid = [r.body["recipient"] for r in bot_receiver.delivered("Order/Unpaid")]
    assert unpaid == [{"email": "late@example.com"}]
    receipts = [r.body["recipient"] for r in bot_receiver.delivered("Order/Receipt")]
    assert receipts == [{"email": "payer@example.com"}]
    [push] = bot_receiver.delivered("Order/Unpaid")
    assert push.body["params"]["order_number"] == still_unpaid["name"].lstrip("#")
    # the re-check's read is the push read: the reminder says what the `orders` reply says
    reply = await orders_reply(client, still_unpaid["name"].lstrip("#"), still_unpaid["statusPageUrl"])
    assert push.body["params"] == as_push(reply) and reply["status"] == "unpaid"


async def test_reconciliation_catches_a_dropped_webhook(
    wired: Any, sandbox: SandboxServer, bot_receiver: BotReceiver
) -> None:
    client, app = await wired()
    shop = sandbox.shop(SANDBOX_DOMAIN)
    sandbox.webhooks.configure(drop_next=2)  # orders/create and orders/paid of the next order are lost
    order = await shop.create_order(email="lost@example.com")
    await sandbox.webhooks.drain()
    store = app[PUSH_STORE]
    await wait_until_settled(store)
    assert bot_receiver.delivered() == []
    report = await reconcile_now(app, "demo")
    assert report.orders >= 1
    await bot_receiver.wait_for(lambda r: len(r.delivered("Order/Receipt")) == 1)
    [receipt] = bot_receiver.delivered("Order/Receipt")
    assert receipt.body["params"]["order_number"] == order["name"].lstrip("#")
    assert isinstance(receipt.body["params"]["timestamp"], int)
    assert receipt.body["params"] == as_push(
        await orders_reply(client, order["name"].lstrip("#"), order["statusPageUrl"])
    )
    assert receipt.body["recipient"] == {"email": "lost@example.com"}
    # a second pass (overlap) enqueues nothing new
    await reconcile_now(app, "demo")
    await wait_until_settled(store)
    assert len(bot_receiver.delivered("Order/Receipt")) == 1
    assert await store.outbox.list_pushes(statuses=[PushStatus.DEAD]) == []


async def test_periodic_reconciliation_runs(wired: Any, sandbox: SandboxServer, bot_receiver: BotReceiver) -> None:
    await wired(server={"reconcile_interval_seconds": 0.2})
    shop = sandbox.shop(SANDBOX_DOMAIN)
    sandbox.webhooks.configure(drop_next=2)
    await shop.create_order(email="periodic@example.com")
    await bot_receiver.wait_for(lambda r: len(r.delivered("Order/Receipt")) == 1, within=10)
