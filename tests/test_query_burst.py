"""A platform broadcast: many distinct lookups at once against a bucket that works as Shopify's does (requested cost
held while a query runs, the rest refunded at its end), with 50 ms per Shopify request. Real gateway, real store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from gateway.app import create_app
from gateway.ops import Metrics
from gateway.shopify.client import ShopifyAdminClient, ShopifyThrottled
from localstore import SandboxServer, SandboxShop
from tests.fixtures_query import AiohttpClient, Platform, query_settings
from tests.fixtures_sandbox import SANDBOX_DOMAIN
from tests.test_shopify_client import TOKEN_AUTH, shop_settings

LATENCY = 0.05


async def test_fifty_concurrent_distinct_lookups_on_a_standard_bucket_all_answer(gateway: Platform) -> None:
    store = gateway.store
    assert store is not None
    shop = store.shop("demo.myshopify.com")
    assert shop.plan == "standard"
    store.faults.latency = LATENCY
    numbers = [str(1001 + i) for i in range(50)]
    replies = await asyncio.gather(*(gateway.query("jc1", "orders", {"order_number": n}) for n in numbers))
    assert [r.status for r in replies] == [200] * 50
    assert all(r.json["success"] is True and len(r.json["orders"]) == 1 for r in replies)
    assert [r.json["orders"][0]["order_number"] for r in replies] == numbers
    assert store.graphql_requests("demo.myshopify.com") == 50  # one Shopify request each: paced, never throttled
    metrics = await gateway.client.get("/metrics")
    text = await metrics.text()
    assert 'shopify_throttled_total{shop="jc1"}' not in text


async def test_a_throttled_answer_is_waited_out(gateway: Platform) -> None:
    store = gateway.store
    assert store is not None
    shop = store.shop("demo.myshopify.com")
    shop.restore_rate = 400
    shop.bucket.available = 0  # the gateway has not seen this shop yet: it sends, and Shopify says THROTTLED
    reply = await gateway.query("jc1", "orders", {"order_number": "1001"})
    assert reply.status == 200 and reply.json["orders"][0]["order_number"] == "1001"
    assert store.graphql_requests("demo.myshopify.com") == 2
    text = await (await gateway.client.get("/metrics")).text()
    assert 'shopify_throttled_total{shop="jc1"} 1' in text


async def test_lookups_answer_503_only_when_the_deadline_cannot_be_met(
    aiohttp_client: AiohttpClient, query_store: SandboxServer
) -> None:
    settings = query_settings(query_store.base_url, shop_overrides={"jc1": {"deadline_seconds": 1}})
    platform = Platform(await aiohttp_client(create_app(settings)), query_store)
    shop = query_store.shop("demo.myshopify.com")
    first = await platform.query("jc1", "orders", {"order_number": "1001"})  # prices the document
    assert first.status == 200
    shop.restore_rate = 1  # a bucket drained by someone else, refilling 1 point a second
    shop.bucket.available = 0
    replies = await asyncio.gather(*(platform.query("jc1", "orders", {"order_number": str(1002 + i)}) for i in range(3)))
    assert [r.status for r in replies] == [503] * 3
    assert all(r.json["success"] is False for r in replies)


# --- the client on its own: pacing and priorities --------------------------------------------------------------------

ORDERS = "query Orders($n: Int!) { orders(first: $n) { nodes { id customer { id } } } }"  # 2 + n × 2


@pytest.fixture
async def paced(sandbox: SandboxServer) -> AsyncIterator[ShopifyAdminClient]:
    async with aiohttp.ClientSession() as session:
        yield ShopifyAdminClient(shop_settings(sandbox.base_url, TOKEN_AUTH), session, shop_key="demo",
                                 metrics=Metrics())


async def test_requests_in_flight_give_back_their_refunds_so_waiters_go_on(
    sandbox: SandboxServer, sandbox_shop: SandboxShop, paced: ShopifyAdminClient
) -> None:
    # requested 202, actual 122 (60 orders): 9 fit at once in 2000 points; with no restore at all, the other 21 can
    # only go through on the refunds of those in flight (80 each), which the client must count on
    sandbox_shop.restore_rate = 0
    sandbox_shop.bucket_size = 2000
    sandbox.faults.latency = LATENCY
    await paced.execute(ORDERS, {"n": 100})  # prices the document: 2000 → 1878
    sandbox_shop.bucket.available = 2000
    deadline = asyncio.get_running_loop().time() + 4
    results = await asyncio.gather(*(paced.execute(ORDERS, {"n": 100}, deadline=deadline) for _ in range(12)),
                                   return_exceptions=True)
    assert not [r for r in results if isinstance(r, BaseException)]
    assert paced.metrics.value("shopify_throttled_total", shop="demo") == 0
    assert sandbox.graphql_requests(SANDBOX_DOMAIN) == 13
    assert sandbox_shop.bucket.available == 2000 - 12 * 122


async def test_what_the_bucket_cannot_give_before_the_deadline_fails_fast_without_a_request(
    sandbox: SandboxServer, sandbox_shop: SandboxShop, paced: ShopifyAdminClient
) -> None:
    sandbox_shop.restore_rate = 10
    await paced.execute(ORDERS, {"n": 100})
    sandbox_shop.bucket.available = 0
    await paced.execute("{ shop { name } }")  # a cheap query brings the news: the bucket is empty
    sent = sandbox.graphql_requests(SANDBOX_DOMAIN)
    with pytest.raises(ShopifyThrottled):  # 202 points at 10/s: 20 s, far past a 1 s deadline
        await paced.execute(ORDERS, {"n": 100}, deadline=asyncio.get_running_loop().time() + 1)
    assert sandbox.graphql_requests(SANDBOX_DOMAIN) == sent


async def test_background_reads_wait_behind_lookups(
    sandbox: SandboxServer, sandbox_shop: SandboxShop, paced: ShopifyAdminClient
) -> None:
    sandbox_shop.restore_rate = 1000
    sandbox.faults.latency = LATENCY
    await paced.execute(ORDERS, {"n": 100})
    sandbox_shop.bucket.available = 0  # everybody has to wait for the restore: who goes first?
    await paced.execute("{ shop { name } }")
    finished: list[str] = []
    deadline = asyncio.get_running_loop().time() + 10

    async def read(kind: str) -> None:
        await paced.execute(ORDERS, {"n": 100}, deadline=deadline, background=kind == "background")
        finished.append(kind)

    background = [asyncio.create_task(read("background")) for _ in range(8)]
    await asyncio.sleep(0)  # the background reads queue first
    lookups = [asyncio.create_task(read("lookup")) for _ in range(8)]
    await asyncio.gather(*background, *lookups)
    assert finished[:8] == ["lookup"] * 8, finished
