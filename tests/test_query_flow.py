"""The query flow end to end over HTTP: Shopify requests per lookup, single-flight, outages, hostile input.

The gateway runs in front of the local store (`gateway` fixture); `platform.store` counts GraphQL requests per shop
and injects faults.
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.app import create_app
from localstore import SandboxServer
from tests.fixtures_query import DEFAULT_DOMAINS, AiohttpClient, Platform, query_settings

JC1 = DEFAULT_DOMAINS["jc1"]
BOB = "bob.norman@mail.example.com"


def store(platform: Platform) -> SandboxServer:
    assert platform.store is not None
    return platform.store


async def test_one_shopify_request_per_lookup_then_cache_hits(gateway: Platform) -> None:
    sandbox = store(gateway)
    # Shop facts (storefront host for product links) are read once an hour: warm them first.
    assert (await gateway.query("jc1", "products", {"vendor": "Apple"})).status == 200
    cases = [
        ("orders", {"order_number": "1001"}),
        ("orders", {"user_account": BOB}),
        ("packages", {"order_number": "1001"}),
        ("products", {"title": "t-shirt"}),
        ("property", {"search_type": "vendor"}),
    ]
    for method, params in cases:
        sandbox.reset_counters()
        first = await gateway.query("jc1", method, params)
        assert first.status == 200 and first.json["success"] is True, (method, params, first.json)
        assert sandbox.graphql_requests(JC1) == 1, (method, params)
        again = await gateway.query("jc1", method, params)
        assert again.json == first.json and sandbox.graphql_requests(JC1) == 1  # served from the cache
    sandbox.reset_counters()
    r = await gateway.query("jc1", "orders", {"user_account": "+16136120707"})
    assert r.json["success"] is True and sandbox.graphql_requests(JC1) <= 2  # customer by phone, then orders


async def test_local_phone_number_read_in_the_shops_country(
    aiohttp_client: AiohttpClient, query_store: SandboxServer
) -> None:
    # Chloé Durand's phone is +33612345678; a French shopper types it the French way.
    settings = query_settings(query_store.base_url, shop_overrides={"jc1": {"phone_region": "fr"}})
    platform = Platform(await aiohttp_client(create_app(settings)), query_store)
    r = await platform.query("jc1", "orders", {"user_account": "06 12 34 56 78"})
    assert r.status == 200 and r.json["success"] is True, r.json
    assert [o["order_number"] for o in r.json["orders"]] == ["1006"]
    # A shop without a country rejects the same local number instead of guessing a country for it.
    r = await platform.query("jc2", "orders", {"user_account": "06 12 34 56 78"})
    assert r.json["success"] is False and "phone" in str(r.json)


async def test_hundred_concurrent_identical_lookups_one_upstream_request(gateway: Platform) -> None:
    sandbox = store(gateway)
    sandbox.faults.latency = 0.05  # keep the first request in flight while the others arrive
    sandbox.reset_counters()
    replies = await asyncio.gather(*(gateway.query("jc1", "orders", {"order_number": "1004"}) for _ in range(100)))
    assert {r.status for r in replies} == {200}
    assert all(r.json == replies[0].json for r in replies)
    assert sandbox.graphql_requests(JC1) == 1


async def test_outage_serves_stale_answer_or_503(aiohttp_client: AiohttpClient, query_store: SandboxServer) -> None:
    # Tiny TTLs so the entry expires at once; stale answers allowed for an hour (the default).
    settings = query_settings(query_store.base_url, shop_overrides={
        "jc1": {"cache": {"orders": 0.01}, "deadline_seconds": 1}})
    platform = Platform(await aiohttp_client(create_app(settings)), query_store)
    fresh = await platform.query("jc1", "orders", {"order_number": "1001"})
    assert fresh.status == 200
    await asyncio.sleep(0.05)
    query_store.faults.set(error_rate=1.0)
    stale = await platform.query("jc1", "orders", {"order_number": "1001"})
    assert (stale.status, stale.json) == (200, fresh.json)
    never_cached = await platform.query("jc1", "orders", {"order_number": "1002"})
    assert never_cached.status == 503 and never_cached.json == {
        "success": False, "errors": {"message": "store unavailable, try again later"}}
    assert never_cached.headers.get("Retry-After") == "1"
    query_store.faults.clear()
    query_store.faults.set(hang=True, hang_seconds=5)
    r = await platform.query("jc1", "orders", {"order_number": "1003"})  # deadline 1 s: 503, not a hang
    assert r.status == 503
    query_store.faults.clear()
    assert (await platform.query("jc1", "orders", {"order_number": "1002"})).status == 200


@pytest.mark.parametrize(
    "account",
    [
        f"{BOB} OR status:any",
        f'"{BOB}" OR email:*',
        "*@mail.example.com",
        f"{BOB}\\",
        f"({BOB})",
        "email:" + BOB,
        f"{BOB},x@y.com OR x",
        "' OR 1=1 --",
        "+1613612070*",
    ],
)
async def test_injection_never_widens_a_search(gateway: Platform, account: str) -> None:
    for shop in ("jc1", "mb"):
        r = await gateway.query(shop, "orders", {"user_account": account})
        assert r.status == 400, (shop, account, r.json)


async def test_exact_match_only(gateway: Platform) -> None:
    # A prefix or a look-alike of Bob's address is somebody else: nobody, here.
    for account in ("bob.norman@mail.example", "ob.norman@mail.example.com", "bob.norman@mail.example.co",
                    "bob.norman+x@mail.example.com"):
        r = await gateway.query("jc1", "orders", {"user_account": account})
        assert r.json == {"success": False, "errors": {"message": "User not found"}}, account
    for number in ("100", "10011", "1001.1", "1001-1", "#1001#"):
        r = await gateway.query("jc1", "orders", {"order_number": number})
        assert r.json.get("orders", []) == [] or all(o["order_number"] == number.lstrip("#")
                                                     for o in r.json["orders"]), number
    r = await gateway.query("jc1", "products", {"title": "*"})
    # '*' is never a wildcard: either refused or a title word that no product has.
    assert r.status == 400 or r.json["products"] == []


async def test_pagination_and_giant_limits(gateway: Platform) -> None:
    r = await gateway.query("jc1", "orders", {"user_account": BOB}, {"page": 1, "limit": 10**9})
    assert r.status == 200 and len(r.json["orders"]) == 4 and r.json["has_next_page"] is False  # capped at 10
    page1 = await gateway.query("jc1", "orders", {"user_account": BOB}, {"page": "1", "limit": "3"})
    page2 = await gateway.query("jc1", "orders", {"user_account": BOB}, {"page": 2, "limit": 3})
    assert page1.json["has_next_page"] is True and page2.json["has_next_page"] is False
    numbers = [o["order_number"] for o in page1.json["orders"] + page2.json["orders"]]
    assert sorted(numbers) == ["1001", "1002", "1003", "1004"]
    r = await gateway.query("jc1", "orders", {"user_account": BOB}, {"page": 99, "limit": 3})
    assert r.json == {"success": True, "has_next_page": False, "orders": []}


async def test_memoized_reply_follows_a_fresh_result(gateway: Platform) -> None:
    sandbox = store(gateway)
    first = await gateway.query("jc1", "products", {"vendor": "Apple"})
    (ipod,) = first.json["products"]
    shop = sandbox.shops[JC1]
    product = shop.product(int(ipod["product_number"]))
    assert product is not None
    await shop.update_product(product["id"], title="IPod Nano - 16gb")
    from gateway.cache import LOOKUP_CACHE

    gateway.client.app[LOOKUP_CACHE].invalidate_shop("jc1")
    second = await gateway.query("jc1", "products", {"vendor": "Apple"})
    assert second.json["products"][0]["title"] == "IPod Nano - 16gb"


def test_render_memo_does_not_keep_a_result_alive() -> None:
    """The memo answers for the very Result it rendered, and only while something else (the lookup cache) holds it."""
    import gc
    import weakref

    from gateway.lookups.types import OrdersResult
    from gateway.query import RenderMemo

    rendered: list[object] = []

    def render(key: object, result: object) -> bytes:
        rendered.append(result)
        return b"reply %d" % len(rendered)

    memo = RenderMemo()
    result = OrdersResult([], False, 0)
    assert memo.reply("q", result, render) == b"reply 1"
    assert memo.reply("q", result, render) == b"reply 1"  # the very same Result: not rendered again
    fresh = OrdersResult([], False, 0)
    assert memo.reply("q", fresh, render) == b"reply 2"  # an equal but fresh Result is rendered again
    rendered.clear()
    alive = weakref.ref(fresh)
    del result, fresh
    gc.collect()
    assert alive() is None  # the memo kept nothing alive
    assert memo.reply("q", OrdersResult([], False, 0), render) == b"reply 1"


def test_render_memo_is_bounded() -> None:
    from gateway.lookups.types import OrdersResult
    from gateway.query import RenderMemo

    memo = RenderMemo(max_entries=2)
    results = [OrdersResult([], False, i) for i in range(3)]
    for i, result in enumerate(results):
        memo.reply(f"q{i}", result, lambda key, result: b"reply")
    assert len(memo) == 2
    assert memo.reply("q0", results[0], lambda key, result: b"again") == b"again"  # the oldest went


async def test_package_number_sent_as_a_json_number(gateway: Platform) -> None:
    raw = b'{"method":"packages","params":{"package_number":1001.2}}'
    reply = await gateway.ask("jc1", raw)
    assert reply.status == 200 and reply.json["success"] is True
    assert [p["package_number"] for p in reply.json["packages"]] == ["1001.2"]
    assert reply.json == (await gateway.query("jc1", "packages", {"package_number": "1001.2"})).json
