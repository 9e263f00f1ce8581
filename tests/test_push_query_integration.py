"""Where the push flow feeds the query flow, end to end over HTTP: one gateway (SQLite store) in front of the local
Shopify store, which sends it signed webhooks, a bot platform asking signed queries, and the bot receiver.

- fulfillment webhooks feed the tracking index a `packages` lookup by tracking number reads (PROTOCOL §6);
- order webhooks evict the cached lookups they make stale (§9);
- the open-API order query counts the delivered package/update pushes (§10)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from localstore import SandboxServer
from tests.fixtures_push import QUERY_SECRET, SHOP_KEY, BotReceiver, SandboxGateway, wait_until_settled
from tests.fixtures_query import APP_ID, APP_SECRET, MACHINE, Platform, Reply, envelope
from tests.fixtures_sandbox import SANDBOX_DOMAIN

OPENAPI = {"app_id": APP_ID, "app_secret": APP_SECRET, "allowed_machines": [MACHINE], "max_order_age_days": 0}


@pytest.fixture
async def gw(sandbox_gateway: Any) -> SandboxGateway:
    # No Order/Unpaid re-check (a Shopify read of its own) fires during a test: these tests count the store's reads.
    gateway: SandboxGateway = await sandbox_gateway(shop={"openapi": OPENAPI}, push={"unpaid_delay_seconds": 3600})
    return gateway


async def ask(gw: SandboxGateway, method: str, params: dict[str, Any]) -> Reply:
    """A signed bot query, as the JoinChat platform sends it."""
    return await Platform(gw.client).ask(SHOP_KEY, envelope(SHOP_KEY, method, params), secret=QUERY_SECRET)


async def settle(sandbox: SandboxServer, gw: SandboxGateway) -> None:
    """Every webhook the store emitted is delivered, and the gateway has processed and pushed what it produced."""
    await sandbox.webhooks.drain()
    await wait_until_settled(gw.store)


async def test_fulfillment_webhook_feeds_the_tracking_index_of_packages_queries(
    gw: SandboxGateway, sandbox: SandboxServer
) -> None:
    shop = sandbox.shop(SANDBOX_DOMAIN)
    order = await shop.create_order(email="track@example.com")
    await settle(sandbox, gw)
    sandbox.webhooks.pause()  # the fulfillment exists at Shopify, its webhook has not arrived yet
    await shop.create_fulfillment(order["id"], tracking_numbers=["1ZTRACKIDX01"], company="UPS")
    before = await ask(gw, "packages", {"package_number": "1ZTRACKIDX01"})
    assert before.status == 200 and before.json["success"] is False  # Shopify cannot search by tracking number

    sandbox.webhooks.resume()
    await settle(sandbox, gw)
    r = await ask(gw, "packages", {"package_number": "1ZTRACKIDX01"})
    assert r.status == 200 and r.json["success"] is True
    [package] = r.json["packages"]
    name = order["name"].lstrip("#")
    assert (package["order_number"], package["package_number"]) == (name, f"{name}.1")
    assert (package["tracking_number"], package["carrier"]) == ("1ZTRACKIDX01", "UPS")
    # the fulfillment name keeps working, and finds the same package
    by_name = await ask(gw, "packages", {"package_number": f"{name}.1"})
    assert by_name.json["packages"] == [package]


async def test_order_webhook_evicts_the_cached_orders_lookup(gw: SandboxGateway, sandbox: SandboxServer) -> None:
    shop = sandbox.shop(SANDBOX_DOMAIN)
    order = await shop.create_order(email="evict@example.com", financial_status="PENDING")
    await settle(sandbox, gw)
    name = order["name"].lstrip("#")
    first = await ask(gw, "orders", {"order_number": name})
    assert first.status == 200 and first.json["orders"][0]["status"] == "unpaid"
    reads = sandbox.graphql_requests(SANDBOX_DOMAIN)

    # The order is paid at Shopify (through the store's admin API); its webhooks are held back for a moment.
    sandbox.webhooks.pause()
    async with aiohttp.ClientSession() as http:
        url = f"{sandbox.base_url}/_sandbox/{SANDBOX_DOMAIN}/orders/{order['legacyResourceId']}/paid"
        async with http.post(url) as resp:
            assert resp.status == 200
    cached = await ask(gw, "orders", {"order_number": name})
    assert cached.json == first.json and sandbox.graphql_requests(SANDBOX_DOMAIN) == reads  # served from the cache

    sandbox.webhooks.resume()
    await settle(sandbox, gw)
    fresh = await ask(gw, "orders", {"order_number": name})
    assert fresh.status == 200 and fresh.json["orders"][0]["status"] != "unpaid"
    assert sandbox.graphql_requests(SANDBOX_DOMAIN) > reads  # evicted: read again from the store


async def test_openapi_order_reports_delivered_package_pushes(
    gw: SandboxGateway, sandbox: SandboxServer, bot_receiver: BotReceiver
) -> None:
    shop = sandbox.shop(SANDBOX_DOMAIN)
    order = await shop.create_order(email="vend@example.com", note_attributes={"joinchat_psid": "PSID-OPEN"})
    if order["displayFinancialStatus"] != "PAID":
        await shop.mark_paid(order["id"])
    await settle(sandbox, gw)
    order_id = str(order["legacyResourceId"])
    platform = Platform(gw.client)

    before = await platform.openapi(order_id)
    assert before.status == 200 and before.json["code"] == 0
    assert "notify_send_count" not in before.json["data"]  # zero is omitted (the seed's protobuf convention)
    assert {rec.get("notify_sent") for rec in before.json["data"]["records"]} <= {"0", None}

    fulfillment = await shop.create_fulfillment(order["id"], tracking_numbers=["1ZOPENAPI01"])
    await settle(sandbox, gw)
    await bot_receiver.wait_for(lambda r: len(r.delivered("package/update")) == 1)
    after = await platform.openapi(order_id)
    assert after.status == 200 and after.json["data"]["notify_send_count"] == 1
    assert {rec["notify_sent"] for rec in after.json["data"]["records"]} == {"1"}

    await shop.add_fulfillment_event(fulfillment["id"], "IN_TRANSIT")
    await settle(sandbox, gw)
    await bot_receiver.wait_for(lambda r: len(r.delivered("package/update")) == 2)
    statuses = [r.body["params"]["tracking_status"] for r in bot_receiver.delivered("package/update")]
    assert statuses == ["shipped", "in_transit"]
    later = await platform.openapi(order_id)
    assert later.json["data"]["notify_send_count"] == 2
