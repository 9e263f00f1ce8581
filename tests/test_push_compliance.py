"""Compliance webhooks (PROTOCOL §9): shop/redact and customers/redact purge what the gateway stores, and
customers/data_request reports what it stores as counts an operator can read (never the personal data itself)."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.push.processor import EventProcessor, build_processor
from gateway.push.reader import PushReader
from gateway.push.records import EventStatus, StoredCounts, WebhookMeta
from gateway.push.store import PushStore
from gateway.shopify.client import open_clients
from localstore import SandboxServer, SandboxShop
from tests.fixtures_push import (
    QUERY_SECRET,
    SHOP_DOMAIN,
    SHOP_KEY,
    BotReceiver,
    eventually,
    push_settings,
    rest_fulfillment,
    rest_order,
    signed_webhook_headers,
    wait_until_settled,
)
from tests.fixtures_query import Platform, envelope
from tests.fixtures_sandbox import SANDBOX_CLIENT_SECRET, SANDBOX_DOMAIN
from tests.store_mirror import mirror_webhook

CUSTOMER_A, CUSTOMER_B = 115310627314723954, 207119551
NOTHING = StoredCounts().as_dict()


def sqlite_rows_of_shop(path: str | Path, shop_key: str) -> dict[str, int]:
    """Rows per table of the SQLite store that belong to the shop (read beside the running gateway)."""
    with sqlite3.connect(path) as conn:
        tables = [
            t
            for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if "shop_key" in {c[1] for c in conn.execute(f"PRAGMA table_info({t})")}
        ]
        return {
            t: conn.execute(f"SELECT COUNT(*) FROM {t} WHERE shop_key = ?", (shop_key,)).fetchone()[0] for t in tables
        }


async def test_shop_redact_purges_everything_stored_for_the_shop_and_its_cache(
    sandbox_gateway: Any, sandbox: SandboxServer, bot_receiver: BotReceiver
) -> None:
    gw = await sandbox_gateway()
    shop = sandbox.shop(SANDBOX_DOMAIN)
    order = await shop.create_order(email="redact@example.com", note_attributes={"joinchat_psid": "PSID-R"})
    if order["displayFinancialStatus"] != "PAID":
        await shop.mark_paid(order["id"])
    await shop.create_fulfillment(order["id"], tracking_numbers=["1ZREDACT01"])
    await sandbox.webhooks.drain()
    await wait_until_settled(gw.store)
    await bot_receiver.wait_for(lambda r: len(r.delivered("package/update")) == 1)
    order_id, name = int(order["legacyResourceId"]), order["name"].lstrip("#")
    assert await gw.store.tracking.order_name_for_tracking(SHOP_KEY, "1ZREDACT01") == name
    before = sqlite_rows_of_shop(gw.config["storage"]["sqlite_path"], SHOP_KEY)
    assert before["events"] and before["outbox"] and before["orders"] and before["tracking"]

    # a bot query fills the lookup cache: the same query again does not reach the store
    platform = Platform(gw.client)
    query = envelope(SHOP_KEY, "orders", {"order_number": name})
    assert (await platform.ask(SHOP_KEY, query, secret=QUERY_SECRET)).status == 200
    reads = sandbox.graphql_requests(SANDBOX_DOMAIN)
    assert (await platform.ask(SHOP_KEY, query, secret=QUERY_SECRET)).status == 200
    assert sandbox.graphql_requests(SANDBOX_DOMAIN) == reads

    body = json.dumps({"shop_id": 954889, "shop_domain": SANDBOX_DOMAIN}).encode()
    headers = signed_webhook_headers(
        "shop/redact", body, event_id="evt-shop-redact", secret=SANDBOX_CLIENT_SECRET, domain=SANDBOX_DOMAIN
    )
    async with gw.client.post("/webhooks/shopify", data=body, headers=headers) as resp:
        assert resp.status == 200

    async def redacted() -> bool:  # the request purges its own event too
        return await gw.store.events.get_event(SHOP_KEY, "evt-shop-redact") is None

    await eventually(redacted, what="shop/redact processed")
    await wait_until_settled(gw.store)
    assert set(sqlite_rows_of_shop(gw.config["storage"]["sqlite_path"], SHOP_KEY).values()) == {0}
    assert await gw.store.outbox.list_pushes(SHOP_KEY) == []
    assert await gw.store.tracking.order_name_for_tracking(SHOP_KEY, "1ZREDACT01") is None
    assert await gw.store.tracking.delivered_package_pushes(SHOP_KEY, order_id) == {}
    assert await gw.store.states.load_order_states(SHOP_KEY, [order_id]) == {}
    assert await gw.store.shops.get_watermark(SHOP_KEY) is None
    # the cache went too: the next query reads the store again (and still answers)
    again = await platform.ask(SHOP_KEY, query, secret=QUERY_SECRET)
    assert again.status == 200 and again.json["orders"][0]["order_number"] == name
    assert sandbox.graphql_requests(SANDBOX_DOMAIN) > reads


@pytest.fixture
async def processor(
    push_store: PushStore, push_sandbox: SandboxServer, tmp_path: Path
) -> AsyncIterator[EventProcessor]:
    """The event processor on `push_store`, reading from the local store `push_sandbox` (no gateway around it)."""
    settings = push_settings(
        "http://127.0.0.1:9/push", tmp_path / "unused.sqlite3", admin_api_base=push_sandbox.base_url
    )
    async with open_clients(settings) as clients:
        yield build_processor(settings, push_store, reader=PushReader(clients))


async def _run_one_batch(
    store: PushStore, processor: EventProcessor, shopify: SandboxShop, events: list[tuple[str, str, dict[str, Any]]]
) -> None:
    """Store the webhooks and hand them to the processor as one claimed batch, as the worker does under load (the
    local store holds the orders they are about: tests.store_mirror)."""
    for event_id, topic, payload in events:
        mirror_webhook(shopify, topic, payload)
        assert await store.events.record_event(SHOP_KEY, event_id, WebhookMeta(topic), json.dumps(payload).encode()) == "new"
    claimed = await store.events.claim_events(100, 30.0)
    assert [e.event_id for e in claimed] == [e[0] for e in events]
    await processor.process(claimed)


async def test_customers_redact_in_the_middle_of_a_batch(
    push_store: PushStore, processor: EventProcessor, push_sandbox: SandboxServer
) -> None:
    """What came before the redact in the same batch is purged too; the other customer's data and what came after
    stay; the redact request (it names the customer) does not outlive the purge."""
    a1 = rest_order(8101, name="#8101", customer_id=CUSTOMER_A)
    b1 = rest_order(8201, name="#8201", email="other@example.com", customer_id=CUSTOMER_B)
    redact = {
        "shop_domain": SANDBOX_DOMAIN,
        "customer": {"id": CUSTOMER_A, "email": "jon@example.com", "phone": "555-625-1199"},
        "orders_to_redact": [8101],
    }
    await _run_one_batch(
        push_store,
        processor,
        push_sandbox.shop(SHOP_DOMAIN),
        [
            ("a-paid", "orders/paid", a1),
            ("a-shipped", "fulfillments/create", rest_fulfillment(9101, 8101, name="#8101.1", tracking_number="1ZA")),
            ("b-paid", "orders/paid", b1),
            ("a-redact", "customers/redact", redact),
            ("a-late", "orders/updated", rest_order(8102, name="#8102", customer_id=CUSTOMER_B)),
        ],
    )
    assert (await push_store.compliance.count_customer_data(SHOP_KEY, CUSTOMER_A, [8101])).as_dict() == NOTHING
    for event_id in ("a-paid", "a-shipped", "a-redact"):
        assert await push_store.events.get_event(SHOP_KEY, event_id) is None, event_id
    assert await push_store.tracking.order_name_for_tracking(SHOP_KEY, "1ZA") is None
    assert sorted(p.order_id for p in await push_store.outbox.list_pushes(SHOP_KEY)) == [8102, 8201]
    assert set(await push_store.states.load_order_states(SHOP_KEY, [8101, 8201, 8102])) == {8201, 8102}
    for event_id in ("b-paid", "a-late"):
        event = await push_store.events.get_event(SHOP_KEY, event_id)
        assert event is not None and event.status == EventStatus.DONE


async def test_shop_redact_in_the_middle_of_a_batch(
    push_store: PushStore, processor: EventProcessor, push_sandbox: SandboxServer
) -> None:
    await push_store.shops.set_watermark(SHOP_KEY, "2026-01-01T00:00:00Z")
    await _run_one_batch(
        push_store,
        processor,
        push_sandbox.shop(SHOP_DOMAIN),
        [
            ("paid", "orders/paid", rest_order(8301, name="#8301")),
            ("shipped", "fulfillments/create", rest_fulfillment(9301, 8301, name="#8301.1", tracking_number="1ZS")),
            ("redact", "shop/redact", {"shop_id": 1, "shop_domain": SANDBOX_DOMAIN}),
        ],
    )
    assert await push_store.outbox.list_pushes(SHOP_KEY) == []
    assert await push_store.states.load_order_states(SHOP_KEY, [8301]) == {}
    assert await push_store.states.load_fulfillment_states(SHOP_KEY, [9301]) == {}
    assert await push_store.tracking.order_name_for_tracking(SHOP_KEY, "1ZS") is None
    assert await push_store.shops.get_watermark(SHOP_KEY) is None
    for event_id in ("paid", "shipped", "redact"):
        assert await push_store.events.get_event(SHOP_KEY, event_id) is None, event_id
    assert await push_store.outbox.backlog() == {"events": 0, "pushes": 0, "dead": 0, "checks": 0}


async def test_data_request_logs_counts_only_and_a_later_redact_removes_it(
    make_push_gateway: Any, bot_receiver: BotReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    gw = await make_push_gateway()
    assert await gw.webhook("orders/paid", rest_order(8401, name="#8401", phone="+1 555 625 1199")) == 200
    await bot_receiver.wait_for(lambda r: len(r.delivered("Order/Receipt")) == 1)
    await wait_until_settled(gw.store)
    customer = {"id": CUSTOMER_A, "email": "jon@example.com", "phone": "+15556251199"}
    request = {"shop_domain": SANDBOX_DOMAIN, "orders_requested": [8401], "customer": customer,
               "data_request": {"id": 9999}}  # fmt: skip
    assert await gw.webhook("customers/data_request", request, event_id="evt-data-request") == 200

    async def answered() -> bool:
        event = await gw.store.events.get_event(SHOP_KEY, "evt-data-request")
        return event is not None and event.status == EventStatus.DONE

    await eventually(answered, what="data request processed")
    [line] = [r.getMessage() for r in caplog.records if "customers/data_request" in r.getMessage()]
    expected = {"events": 1, "orders": 1, "fulfillments": 0, "pushes": 1, "tracking_numbers": 0, "unpaid_checks": 0}
    assert line == f"shop {SHOP_KEY}: customers/data_request 9999 (1 order(s) named): gateway stores {expected}"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for personal in ("jon@example.com", "555", "1199", str(CUSTOMER_A), "8401"):
        assert personal not in logged, personal

    redact = {"shop_domain": SANDBOX_DOMAIN, "customer": customer, "orders_to_redact": [8401]}
    assert await gw.webhook("customers/redact", redact, event_id="evt-redact") == 200

    async def purged() -> bool:
        return await gw.store.events.get_event(SHOP_KEY, "evt-redact") is None

    await eventually(purged, what="customers/redact processed")
    assert await gw.store.events.get_event(SHOP_KEY, "evt-data-request") is None  # the request named the customer
    assert (await gw.store.compliance.count_customer_data(SHOP_KEY, CUSTOMER_A, [8401])).as_dict() == NOTHING
    assert await gw.store.outbox.list_pushes(SHOP_KEY) == []


async def test_customers_redact_without_orders_leaves_no_trace(
    push_store: PushStore, processor: EventProcessor, push_sandbox: SandboxServer
) -> None:
    """A redact that names only the customer (no orders_to_redact): the request itself, which carries the
    customer's email and phone, is not kept on either backend."""
    redact = {
        "shop_domain": SANDBOX_DOMAIN,
        "customer": {"id": CUSTOMER_A, "email": "jon@example.com", "phone": "555-625-1199"},
        "orders_to_redact": [],
    }
    await _run_one_batch(
        push_store, processor, push_sandbox.shop(SHOP_DOMAIN), [("only-redact", "customers/redact", redact)]
    )
    assert await push_store.events.get_event(SHOP_KEY, "only-redact") is None
