"""The local store under pressure and at the edges: pagination, sorting, cost and throttling, auth, faults, admin surface."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from localstore import SandboxServer, SandboxShop
from tests.fixtures_sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_TOKEN

ORDER_PAGE = """query($first: Int, $last: Int, $after: String, $before: String, $sortKey: OrderSortKeys, $reverse: Boolean,
                     $query: String) {
  orders(first: $first, last: $last, after: $after, before: $before, sortKey: $sortKey, reverse: $reverse, query: $query) {
    edges { cursor node { name createdAt } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  } }"""


async def gql(server: SandboxServer, query: str, variables: dict[str, Any] | None = None, token: str = SANDBOX_TOKEN,
              client_timeout: float = 10) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=client_timeout)) as session:
        async with session.post(server.graphql_url(), json={"query": query, "variables": variables or {}},
                                headers={"X-Shopify-Access-Token": token}) as response:
            return response.status, await response.json(content_type=None)


# ------------------------------------------------------------------------------------------------ connections


async def test_cursor_pagination_walks_every_order_once(sandbox: SandboxServer, sandbox_shop: SandboxShop) -> None:
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        _, body = await gql(sandbox, ORDER_PAGE, {"first": 25, "after": after, "sortKey": "CREATED_AT"})
        conn = body["data"]["orders"]
        seen += [e["node"]["name"] for e in conn["edges"]]
        assert conn["pageInfo"]["hasPreviousPage"] is (pages > 0)
        pages += 1
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
        assert after == conn["edges"][-1]["cursor"]
    assert seen == [o["name"] for o in sandbox_shop.orders] and pages == 3


async def test_last_and_before(sandbox: SandboxServer) -> None:
    _, body = await gql(sandbox, ORDER_PAGE, {"first": 5, "sortKey": "ORDER_NUMBER"})
    fifth = body["data"]["orders"]["edges"][4]["cursor"]
    _, body = await gql(sandbox, ORDER_PAGE, {"last": 2, "before": fifth, "sortKey": "ORDER_NUMBER"})
    conn = body["data"]["orders"]
    assert [e["node"]["name"] for e in conn["edges"]] == ["#1003", "#1004"]
    assert conn["pageInfo"]["hasPreviousPage"] and conn["pageInfo"]["hasNextPage"]


async def test_missing_first_and_last_is_an_error(sandbox: SandboxServer) -> None:
    _, body = await gql(sandbox, "{ orders { nodes { id } } }")
    assert body["data"] is None and "first or last" in body["errors"][0]["message"]


async def test_sort_keys_and_reverse(sandbox: SandboxServer, sandbox_shop: SandboxShop) -> None:
    _, body = await gql(sandbox, ORDER_PAGE, {"first": 3, "sortKey": "CREATED_AT", "reverse": True})
    newest = sorted(sandbox_shop.orders, key=lambda o: o["createdAt"], reverse=True)[:3]
    assert [e["node"]["name"] for e in body["data"]["orders"]["edges"]] == [o["name"] for o in newest]
    _, body = await gql(sandbox, ORDER_PAGE, {"first": 2, "sortKey": "ORDER_NUMBER"})
    assert [e["node"]["name"] for e in body["data"]["orders"]["edges"]] == ["#1001", "#1002"]
    _, body = await gql(sandbox, """{ orders(first: 60, sortKey: TOTAL_PRICE) { nodes { totalPriceSet { shopMoney { amount } } } } }""")
    totals = [float(n["totalPriceSet"]["shopMoney"]["amount"]) for n in body["data"]["orders"]["nodes"]]
    assert totals == sorted(totals)
    _, body = await gql(sandbox, """{ products(first: 50, sortKey: TITLE, reverse: true) { nodes { title } } }""")
    got = [n["title"] for n in body["data"]["products"]["nodes"]]
    assert got == sorted(got, key=str.lower, reverse=True)
    _, body = await gql(sandbox, """{ products(first: 50, sortKey: VENDOR) { nodes { vendor } } }""")
    vendors = [n["vendor"].lower() for n in body["data"]["products"]["nodes"]]
    assert vendors == sorted(vendors)


async def test_products_visibility_through_graphql(sandbox: SandboxServer) -> None:
    _, body = await gql(sandbox, """query($q: String) { products(first: 250, query: $q) {
        nodes { title status publishedAt onlineStoreUrl } } }""",
                        {"q": "status:active AND published_status:published"})
    titles = {n["title"] for n in body["data"]["products"]["nodes"]}
    assert "Classic T-Shirt" in titles and not titles & {"Draft Hoodie", "Archived Jeans", "Unlisted Cap"}
    assert all(n["status"] == "ACTIVE" and n["publishedAt"] and n["onlineStoreUrl"] for n in body["data"]["products"]["nodes"])
    _, body = await gql(sandbox, """{ products(first: 250, query: "status:draft,archived") { nodes { title status } } }""")
    assert {"Draft Hoodie", "Archived Jeans"} <= {n["title"] for n in body["data"]["products"]["nodes"]}
    assert {n["status"] for n in body["data"]["products"]["nodes"]} <= {"DRAFT", "ARCHIVED"}


async def test_product_fields(sandbox: SandboxServer) -> None:
    _, body = await gql(sandbox, """{ products(first: 2, query: "title:\\"Classic T-Shirt\\" OR title:graphic") { nodes {
        title vendor productType handle totalInventory featuredMedia { preview { image { url } } ... on MediaImage { image { url } } }
        priceRangeV2 { minVariantPrice { amount currencyCode } }
        compareAtPriceRange { minVariantCompareAtPrice { amount } }
        variants(first: 5) { nodes { legacyResourceId price compareAtPrice availableForSale inventoryQuantity title } } } } }""")
    assert "errors" not in body, body
    classic, graphic = body["data"]["products"]["nodes"]
    assert classic["vendor"] == "JACK & JONES" and classic["productType"] == "T-Shirt"
    assert classic["priceRangeV2"]["minVariantPrice"] == {"amount": "19.99", "currencyCode": "USD"}
    assert classic["compareAtPriceRange"]["minVariantCompareAtPrice"]["amount"] == "25.00"
    assert classic["featuredMedia"]["image"]["url"].endswith("classic-t-shirt.jpg")
    assert classic["totalInventory"] == 49 and len(classic["variants"]["nodes"]) == 3
    assert graphic["featuredMedia"] is None and graphic["compareAtPriceRange"] is None


async def test_types_vendors_counts_and_shop(sandbox: SandboxServer, sandbox_shop: SandboxShop) -> None:
    _, body = await gql(sandbox, """{ productTypes(first: 50) { nodes } productVendors(first: 50) { edges { node } }
        ordersCount(query: "status:cancelled") { count precision } productsCount { count }
        shop { name myshopifyDomain currencyCode ianaTimezone primaryDomain { url host } } }""")
    data = body["data"]
    assert "T-Shirt" in data["productTypes"]["nodes"]
    assert "JACK & JONES" in [e["node"] for e in data["productVendors"]["edges"]]
    cancelled = [o for o in sandbox_shop.orders if o["cancelledAt"]]
    assert data["ordersCount"] == {"count": len(cancelled), "precision": "EXACT"}
    assert data["productsCount"]["count"] == len(sandbox_shop.products)
    assert data["shop"]["myshopifyDomain"] == "demo.myshopify.com" and data["shop"]["currencyCode"] == "USD"


async def test_customer_orders_and_nodes(sandbox: SandboxServer, sandbox_shop: SandboxShop) -> None:
    bob = sandbox_shop.customer_by_email("bob.norman@mail.example.com")
    jane = next(c for c in sandbox_shop.customers if c["lastName"] == "Phoneonly")
    assert bob is not None
    _, body = await gql(sandbox, """query($ids: [ID!]!) { nodes(ids: $ids) { __typename
        ... on Customer { displayName numberOfOrders defaultEmailAddress { emailAddress }
                          orders(first: 10, sortKey: CREATED_AT, reverse: true, query: "status:open") { nodes { name } } } } }""",
                        {"ids": [bob["id"], jane["id"], "gid://shopify/Customer/1"]})
    bob_node, jane_node, missing = body["data"]["nodes"]
    assert bob_node["numberOfOrders"] == "4" and [n["name"] for n in bob_node["orders"]["nodes"]] == ["#1002", "#1001"]
    assert jane_node["defaultEmailAddress"] is None and missing is None


# ------------------------------------------------------------------------------------------------ cost and throttling


async def test_cost_extension_is_reported(sandbox: SandboxServer) -> None:
    _, body = await gql(sandbox, "{ orders(first: 10) { nodes { id lineItems(first: 5) { nodes { title } } } } }")
    cost = body["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 2 + 10 * (1 + 2 + 5)
    assert 0 < cost["actualQueryCost"] <= cost["requestedQueryCost"]
    assert cost["throttleStatus"]["maximumAvailable"] == 2000 and cost["throttleStatus"]["restoreRate"] == 100
    assert cost["throttleStatus"]["currentlyAvailable"] <= 2000 - cost["actualQueryCost"] + 1


async def test_max_cost_exceeded(sandbox: SandboxServer) -> None:
    _, body = await gql(sandbox, "{ orders(first: 250) { nodes { lineItems(first: 250) { nodes { title } } } } }")
    assert body["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert "data" not in body or body["data"] is None


async def test_throttled_then_recovers(sandbox: SandboxServer, sandbox_shop: SandboxShop) -> None:
    sandbox_shop.bucket_size = 60
    sandbox_shop.restore_rate = 1  # slow enough that a busy machine cannot refill between requests
    query = "{ orders(first: 10) { nodes { id customer { id } } } }"  # requested 2 + 10 * 2 = 22
    bodies = [(await gql(sandbox, query))[1] for _ in range(6)]
    codes = [b["errors"][0]["extensions"]["code"] if "errors" in b else "ok" for b in bodies]
    assert codes[0] == "ok" and "THROTTLED" in codes
    throttled = bodies[codes.index("THROTTLED")]
    assert throttled["errors"][0]["message"] == "Throttled"
    assert throttled["extensions"]["cost"]["throttleStatus"]["maximumAvailable"] == 60
    assert throttled["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] < 22
    sandbox_shop.restore_rate = 100_000  # the bucket refills: the same query goes through again
    await asyncio.sleep(0.01)
    _, body = await gql(sandbox, query)
    assert "errors" not in body and body["data"]["orders"]["nodes"]


# The bucket as Shopify documents it (shared/shopify/README.md): requested cost taken at the start and held while the
# query runs, requested − actual refunded at the end, currentlyAvailable reported after the refund, THROTTLED (HTTP
# 200) only when the requested cost exceeds what is available at the start.
HUNDRED_ORDERS = "{ orders(first: 100) { nodes { id customer { id } } } }"  # requested 2 + 100 × 2 = 202


async def test_requested_cost_is_held_while_a_query_runs_and_refunded_after(
    sandbox: SandboxServer, sandbox_shop: SandboxShop
) -> None:
    sandbox_shop.restore_rate = 0  # nothing refills: every point is accounted for
    sandbox.faults.latency = 1.0
    running = asyncio.create_task(gql(sandbox, HUNDRED_ORDERS))
    for _ in range(90):  # until the query has started (a busy machine may take a while to connect)
        if sandbox_shop.bucket.available < 2000:
            break
        await asyncio.sleep(0.01)
    assert not running.done()
    assert sandbox_shop.bucket.available == 2000 - 202  # taken at the start, held through the latency
    status, body = await running
    cost = body["extensions"]["cost"]
    # 60 orders, not 100: actual 2 + 60 × 2, and the balance reported is the one after the refund
    assert status == 200 and cost["requestedQueryCost"] == 202 and cost["actualQueryCost"] == 122
    assert cost["throttleStatus"]["currentlyAvailable"] == 2000 - 122 == sandbox_shop.bucket.available


async def test_concurrent_queries_hold_their_requested_cost_at_once_and_the_rest_are_throttled(
    sandbox: SandboxServer, sandbox_shop: SandboxShop
) -> None:
    sandbox_shop.restore_rate = 0
    sandbox.faults.latency = 0.2
    answers = await asyncio.gather(*(gql(sandbox, HUNDRED_ORDERS) for _ in range(12)))
    throttled = [b for status, b in answers if status == 200 and "errors" in b]
    ran = [b for status, b in answers if status == 200 and "data" in b]
    assert len(ran) == 2000 // 202 == 9 and len(throttled) == 3  # 9 × 202 held at once; the 10th does not fit
    for body in throttled:
        assert body["errors"][0]["extensions"]["code"] == "THROTTLED"
        cost = body["extensions"]["cost"]
        assert cost["requestedQueryCost"] == 202 and cost["actualQueryCost"] is None
        assert cost["throttleStatus"]["currentlyAvailable"] < 202
    assert sandbox_shop.bucket.available == 2000 - 9 * 122  # each refunded 80 when it ended


async def test_a_query_that_fits_exactly_is_not_throttled(sandbox: SandboxServer, sandbox_shop: SandboxShop) -> None:
    sandbox_shop.restore_rate = 0
    sandbox_shop.bucket.available = 202
    _, body = await gql(sandbox, HUNDRED_ORDERS)
    assert "errors" not in body and body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 80


async def test_plan_presets_over_the_admin_surface(sandbox: SandboxServer, sandbox_shop: SandboxShop) -> None:
    url = f"{sandbox.base_url}/_sandbox/{sandbox_shop.domain}/settings"
    async with aiohttp.ClientSession() as session:
        for plan, size, rate in (("plus", 20000, 1000), ("advanced", 4000, 200), ("standard", 2000, 100)):
            async with session.post(url, json={"plan": plan}) as r:
                got = await r.json()
            assert r.status == 200 and got["plan"] == plan
            assert (got["bucket_size"], got["restore_rate"], got["currently_available"]) == (size, rate, size)
            _, body = await gql(sandbox, "{ shop { name } }")
            status = body["extensions"]["cost"]["throttleStatus"]
            assert (status["maximumAvailable"], status["restoreRate"]) == (size, rate)
        async with session.post(url, json={"plan": "platinum"}) as r:
            assert r.status == 400 and "unknown plan" in (await r.json())["error"]


def test_the_configured_plan_sizes_the_demo_store() -> None:
    from gateway.settings import parse_settings

    settings = parse_settings({
        "sandbox": {"enabled": True, "plan": "plus", "orders": 3, "products": 2},
        "shops": {"demo": {"domain": "demo.myshopify.com", "admin_api_base": "http://127.0.0.1:8765",
                           "auth": {"mode": "token", "access_token": "t"}, "secrets": ["test-bot-secret"]}},
    })
    shop = SandboxServer.for_settings(settings).shop()
    assert shop.plan == "plus" and (shop.bucket_size, shop.restore_rate) == (20000, 1000)


# ------------------------------------------------------------------------------------------------ auth


async def _grant(server: SandboxServer, form: bool = False, secret: str = SANDBOX_CLIENT_SECRET) -> tuple[int, dict[str, Any]]:
    fields = {"grant_type": "client_credentials", "client_id": SANDBOX_CLIENT_ID, "client_secret": secret}
    async with aiohttp.ClientSession() as session:
        kwargs: dict[str, Any] = {"data": fields} if form else {"json": fields}
        async with session.post(f"{server.base_url}/admin/oauth/access_token", **kwargs) as response:
            return response.status, await response.json()


async def test_client_credentials_grant_and_expiry(sandbox: SandboxServer, sandbox_shop: SandboxShop) -> None:
    status, grant = await _grant(sandbox)
    assert status == 200 and grant["expires_in"] == 86399 and "read_orders" in grant["scope"]
    status, body = await gql(sandbox, "{ shop { name } }", token=grant["access_token"])
    assert status == 200 and body["data"]["shop"]["name"]

    sandbox_shop.token_ttl = 0.2
    status, short = await _grant(sandbox, form=True)
    assert status == 200 and short["expires_in"] == 0
    assert (await gql(sandbox, "{ shop { name } }", token=short["access_token"]))[0] == 200
    await asyncio.sleep(0.3)
    status, body = await gql(sandbox, "{ shop { name } }", token=short["access_token"])
    assert status == 401 and "Invalid API key or access token" in body["errors"]
    assert (await gql(sandbox, "{ shop { name } }", token=grant["access_token"]))[0] == 200  # the long one lives on


async def test_grant_refuses_a_wrong_secret(sandbox: SandboxServer) -> None:
    status, body = await _grant(sandbox, secret="wrong")
    assert status == 401 and body["error"] == "invalid_client"


async def test_routing_by_host_header_between_two_shops() -> None:
    one = SandboxShop.seeded(domain="one.myshopify.com", orders=30, products=8, access_token="tok-one")
    two = SandboxShop.seeded(domain="two.myshopify.com", orders=30, products=8, access_token="tok-two")
    async with SandboxServer([one, two]) as server:
        async with aiohttp.ClientSession() as session:
            async def shop_name(host: str | None, token: str) -> tuple[int, Any]:
                headers = {"X-Shopify-Access-Token": token}
                if host:
                    headers["Host"] = host
                async with session.post(server.graphql_url(), json={"query": "{ shop { myshopifyDomain } }"},
                                        headers=headers) as r:
                    return r.status, await r.json()

            assert (await shop_name("two.myshopify.com", "tok-two"))[1]["data"]["shop"]["myshopifyDomain"] == "two.myshopify.com"
            assert (await shop_name(None, "tok-one"))[1]["data"]["shop"]["myshopifyDomain"] == "one.myshopify.com"
            assert (await shop_name("two.myshopify.com", "tok-one"))[0] == 401
        assert server.graphql_requests("two.myshopify.com") == 2 and server.graphql_requests("one.myshopify.com") == 1


# ------------------------------------------------------------------------------------------------ faults


async def test_fault_5xx_next_n_and_rate(sandbox: SandboxServer) -> None:
    sandbox.faults.fail_next = 2
    assert [(await gql(sandbox, "{ shop { name } }"))[0] for _ in range(3)] == [503, 503, 200]
    sandbox.faults.set(error_rate=1.0, error_status=502)
    assert (await gql(sandbox, "{ shop { name } }"))[0] == 502
    sandbox.faults.clear()
    assert (await gql(sandbox, "{ shop { name } }"))[0] == 200


async def test_fault_latency_beats_a_short_client_timeout(sandbox: SandboxServer) -> None:
    sandbox.faults.latency = 0.5
    with pytest.raises(TimeoutError):
        await gql(sandbox, "{ shop { name } }", client_timeout=0.1)
    sandbox.faults.set(latency=0.0, latency_range=[0.0, 0.01])
    assert (await gql(sandbox, "{ shop { name } }"))[0] == 200


async def test_fault_hang_until_the_client_gives_up(sandbox: SandboxServer) -> None:
    sandbox.faults.hang_next = 1
    with pytest.raises(TimeoutError):
        await gql(sandbox, "{ shop { name } }", client_timeout=0.2)
    assert (await gql(sandbox, "{ shop { name } }"))[0] == 200


async def test_fault_connection_reset(sandbox: SandboxServer) -> None:
    sandbox.faults.reset_next = 1
    with pytest.raises(aiohttp.ClientError):
        await gql(sandbox, "{ shop { name } }")
    assert (await gql(sandbox, "{ shop { name } }"))[0] == 200


async def test_fault_forced_throttle(sandbox: SandboxServer) -> None:
    sandbox.faults.throttle_next = 1
    _, body = await gql(sandbox, "{ shop { name } }")
    assert body["errors"][0]["extensions"]["code"] == "THROTTLED"
    _, body = await gql(sandbox, "{ shop { name } }")
    assert body["data"]["shop"]["name"]


async def test_faults_over_the_admin_surface(sandbox: SandboxServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{sandbox.base_url}/_sandbox/faults", json={"fail_next": 1, "error_status": 500}) as r:
            assert r.status == 200 and (await r.json())["fail_next"] == 1
        assert (await gql(sandbox, "{ shop { name } }"))[0] == 500
        async with session.post(f"{sandbox.base_url}/_sandbox/faults", json={"no_such_fault": 1}) as r:
            assert r.status == 404
        async with session.delete(f"{sandbox.base_url}/_sandbox/faults") as r:
            assert (await r.json())["error_rate"] == 0.0


async def test_admin_surface_mutations(sandbox: SandboxServer, sandbox_shop: SandboxShop) -> None:
    base = f"{sandbox.base_url}/_sandbox/demo.myshopify.com"
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/orders", json={"email": "new.buyer@example.com", "financial_status": "PENDING"}) as r:
            assert r.status == 201
            created = await r.json()
        assert created["displayFinancialStatus"] == "PENDING" and "_customerId" not in created
        async with session.post(f"{base}/orders/{created['legacyResourceId']}/paid") as r:
            assert (await r.json())["displayFinancialStatus"] == "PAID"
        async with session.post(f"{base}/orders/{created['legacyResourceId']}/fulfillments",
                                json={"tracking_numbers": ["1ZTEST"], "company": "UPS"}) as r:
            fulfillment = await r.json()
        async with session.post(f"{base}/fulfillments/{fulfillment['legacyResourceId']}/events",
                                json={"status": "in_transit"}) as r:
            assert r.status == 201
        async with session.get(f"{base}/orders/{created['name'].replace('#', '%23')}") as r:
            order = await r.json()
        assert order["fulfillments"][0]["displayStatus"] == "IN_TRANSIT"
        async with session.post(f"{base}/orders/999/paid") as r:
            assert r.status == 404
        async with session.get(f"{sandbox.base_url}/_sandbox/counters") as r:
            assert await r.json() == {"demo.myshopify.com": 0}
    _, body = await gql(sandbox, 'query { orders(first: 1, query: "email:new.buyer@example.com") { nodes { displayFinancialStatus } } }')
    assert body["data"]["orders"]["nodes"] == [{"displayFinancialStatus": "PAID"}]


async def test_optional_response_cache_follows_changes() -> None:
    shop = SandboxShop.seeded(orders=30, products=8)
    async with SandboxServer([shop], response_cache_size=64) as server:
        query = '{ orders(first: 1, query: "name:1002") { nodes { displayFinancialStatus } } }'
        first = (await gql(server, query))[1]
        again = (await gql(server, query))[1]
        assert first["data"] == again["data"] == {"orders": {"nodes": [{"displayFinancialStatus": "PENDING"}]}}
        assert again["extensions"]["cost"]["actualQueryCost"] == first["extensions"]["cost"]["actualQueryCost"]
        await shop.mark_paid("#1002")
        assert (await gql(server, query))[1]["data"]["orders"]["nodes"] == [{"displayFinancialStatus": "PAID"}]
        order = shop.order_by_name("#1002")
        assert order is not None
        order["displayFinancialStatus"] = "REFUNDED"  # a direct edit is invisible until touch()
        assert (await gql(server, query))[1]["data"]["orders"]["nodes"] == [{"displayFinancialStatus": "PAID"}]
        shop.touch()
        assert (await gql(server, query))[1]["data"]["orders"]["nodes"] == [{"displayFinancialStatus": "REFUNDED"}]


# ------------------------------------------------------------------------------------------------ app installation


async def test_granted_scopes_and_served_api_version(sandbox: SandboxServer, sandbox_shop: SandboxShop) -> None:
    """Like Shopify: `currentAppInstallation.accessScopes` lists what the app was granted (the grant's `scope` says
    the same), and every answer names the API version served in `X-Shopify-API-Version`."""
    from gateway.shopify.queries import load_query

    async with aiohttp.ClientSession() as session:
        async with session.post(sandbox.graphql_url(), json={"query": load_query("app_installation")},
                                headers={"X-Shopify-Access-Token": SANDBOX_TOKEN}) as response:
            body = await response.json()
            assert response.headers["X-Shopify-API-Version"] == "2026-10"
    handles = [s["handle"] for s in body["data"]["currentAppInstallation"]["accessScopes"]]
    assert "read_orders" in handles and "read_all_orders" in handles
    sandbox_shop.access_scopes.remove("read_all_orders")
    _, body = await gql(sandbox, load_query("app_installation"))
    assert "read_all_orders" not in [s["handle"] for s in body["data"]["currentAppInstallation"]["accessScopes"]]
    async with aiohttp.ClientSession() as session:
        form = {"grant_type": "client_credentials", "client_id": SANDBOX_CLIENT_ID, "client_secret": SANDBOX_CLIENT_SECRET}
        async with session.post(f"{sandbox.base_url}/admin/oauth/access_token", data=form) as response:
            granted = await response.json()
    assert "read_all_orders" not in granted["scope"].split(",") and "read_orders" in granted["scope"].split(",")
