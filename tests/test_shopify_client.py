"""ShopifyAdminClient and token providers against the local Shopify store (real HTTP, real faults, no mocks)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.cache import LookupCache
from gateway.keys import SETTINGS
from gateway.ops import Metrics
from gateway.settings import Settings, ShopSettings, parse_settings
from gateway.shopify.auth import ClientCredentialsTokenProvider, StaticTokenProvider
from gateway.shopify.client import (
    SHOPIFY_CLIENTS,
    ShopifyAdminClient,
    ShopifyAuthError,
    ShopifyQueryError,
    ShopifyThrottled,
    ShopifyUnavailable,
    open_clients,
    setup_shopify,
)
from localstore import SandboxServer, SandboxShop
from tests.fixtures_sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_DOMAIN, SANDBOX_TOKEN

SHOP_NAME = "{ shop { name } }"
#: requested = actual = 2 + 10 × 1 in the local store's cost model (the shop has 60 orders)
TEN_ORDERS = "query TenOrders { orders(first: 10) { nodes { id } } }"
TEN_ORDERS_COST = 12


def shop_settings(base_url: str, auth: dict[str, Any], **extra: Any) -> ShopSettings:
    settings = parse_settings(
        {
            "shops": {
                "demo": {"domain": SANDBOX_DOMAIN, "admin_api_base": base_url, "auth": auth, "secrets": ["test-bot-secret"], **extra}
            }
        }
    )
    return settings.shops["demo"]


TOKEN_AUTH = {"mode": "token", "access_token": SANDBOX_TOKEN}
CC_AUTH = {
    "mode": "client_credentials",
    "client_id": SANDBOX_CLIENT_ID,
    "client_secret": SANDBOX_CLIENT_SECRET,
    "refresh_margin_seconds": 0,
}

MakeClient = Callable[..., ShopifyAdminClient]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def make_client(sandbox: SandboxServer, session: aiohttp.ClientSession) -> MakeClient:
    def make(auth: dict[str, Any] = TOKEN_AUTH, base_url: str | None = None, **extra: Any) -> ShopifyAdminClient:
        return ShopifyAdminClient(
            shop_settings(base_url or sandbox.base_url, auth, **extra), session, shop_key="demo", metrics=Metrics()
        )

    return make


def requests_of(client: ShopifyAdminClient) -> float:
    return client.metrics.value("shopify_requests_total", shop="demo")


def deadline_in(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


# --- happy path ----------------------------------------------------------------------------------------------------


async def test_one_request_per_execute_and_the_cost_is_tracked(sandbox: SandboxServer, make_client: MakeClient) -> None:
    client = make_client()
    data = await client.execute(TEN_ORDERS)
    assert len(data["orders"]["nodes"]) == 10
    assert sandbox.graphql_requests(SANDBOX_DOMAIN) == 1
    assert requests_of(client) == 1
    assert client.metrics.value("shopify_query_cost_total", shop="demo") == TEN_ORDERS_COST
    assert (await client.budget.view()).maximum == 2000  # the answer told the shop's bucket
    assert client.url == f"{sandbox.base_url}/admin/api/2026-10/graphql.json"
    await client.execute(SHOP_NAME, {})
    assert sandbox.graphql_requests(SANDBOX_DOMAIN) == 2


async def test_variables_travel_as_json(make_client: MakeClient) -> None:
    client = make_client()
    data = await client.execute("query Q($n: Int!) { orders(first: $n) { nodes { id } } }", {"n": 3})
    assert len(data["orders"]["nodes"]) == 3


async def test_graphql_errors_raise_query_error(sandbox: SandboxServer, make_client: MakeClient) -> None:
    client = make_client()
    with pytest.raises(ShopifyQueryError) as caught:
        await client.execute("{ shop { nmae } }")  # misspelled field: the store validates against the schema
    assert caught.value.errors and "nmae" in caught.value.errors[0]["message"]
    assert sandbox.graphql_requests(SANDBOX_DOMAIN) == 1  # not retried
    assert client.metrics.value("shopify_errors_total", shop="demo", kind="query") == 1


async def test_unserialisable_variables_are_a_query_error(make_client: MakeClient) -> None:
    with pytest.raises(ShopifyQueryError):
        await make_client().execute(SHOP_NAME, {"x": object()})


# --- throttling ----------------------------------------------------------------------------------------------------


async def test_throttled_answer_waits_the_computed_delay_and_succeeds(
    sandbox: SandboxServer, sandbox_shop: SandboxShop, make_client: MakeClient
) -> None:
    sandbox_shop.restore_rate = 400  # (12 - 0) / 400 = 30 ms to wait
    sandbox.bucket(SANDBOX_DOMAIN).available = 0
    client = make_client()
    data = await client.execute(TEN_ORDERS)
    assert len(data["orders"]["nodes"]) == 10
    assert sandbox.graphql_requests(SANDBOX_DOMAIN) == 2
    assert client.metrics.value("shopify_throttled_total", shop="demo") == 1
    assert client.metrics.value("shopify_throttle_wait_seconds_total", shop="demo") > 0


async def test_throttled_fault_with_http_200_is_retried(sandbox: SandboxServer, make_client: MakeClient) -> None:
    sandbox.faults.throttle_next = 2
    client = make_client()
    await client.execute(SHOP_NAME)
    assert sandbox.graphql_requests(SANDBOX_DOMAIN) == 3


async def test_throttled_past_the_deadline_raises_and_then_fails_fast_locally(
    sandbox: SandboxServer, sandbox_shop: SandboxShop, make_client: MakeClient
) -> None:
    client = make_client()
    await client.execute(TEN_ORDERS)  # learn this document's cost
    sandbox_shop.restore_rate = 1  # 12 points take 12 s to come back: far past a 0.5 s deadline
    sandbox.bucket(SANDBOX_DOMAIN).available = 0
    # (the client's copy of the bucket still shows the points: the store has to say THROTTLED)
    with pytest.raises(ShopifyThrottled):
        await client.execute(TEN_ORDERS, deadline=deadline_in(0.5))
    assert sandbox.graphql_requests(SANDBOX_DOMAIN) == 2
    # now the client knows the bucket is empty: it gives up without spending a request
    with pytest.raises(ShopifyThrottled):
        await client.execute(TEN_ORDERS, deadline=deadline_in(0.5))
    assert sandbox.graphql_requests(SANDBOX_DOMAIN) == 2
    assert client.metrics.value("shopify_errors_total", shop="demo", kind="throttled") == 2


async def test_cost_aware_client_waits_locally_instead_of_being_throttled(
    sandbox: SandboxServer, sandbox_shop: SandboxShop, make_client: MakeClient
) -> None:
    sandbox_shop.bucket_size = 40
    sandbox_shop.restore_rate = 200
    client = make_client()
    await client.execute(TEN_ORDERS)  # 40 → 28 points, and the client learns the cost (12)
    # 8 concurrent queries need 96 points: the bucket must refill ~70 of them (~0.35 s) while they queue
    results = await asyncio.gather(*(client.execute(TEN_ORDERS, deadline=deadline_in(5)) for _ in range(8)))
    assert all(len(r["orders"]["nodes"]) == 10 for r in results)
    assert client.metrics.value("shopify_throttled_total", shop="demo") == 0  # never hit THROTTLED
    assert client.metrics.value("shopify_throttle_wait_seconds_total", shop="demo") > 0
    assert sandbox.graphql_requests(SANDBOX_DOMAIN) == 9


# --- failures ------------------------------------------------------------------------------------------------------


async def test_one_5xx_is_retried(sandbox: SandboxServer, make_client: MakeClient) -> None:
    sandbox.faults.fail_next = 1
    client = make_client()
    assert "shop" in await client.execute(SHOP_NAME)
    assert sandbox.graphql_requests(SANDBOX_DOMAIN) == 2


@pytest.mark.parametrize("fault", ["fail_next", "reset_next"])
async def test_repeated_5xx_or_reset_is_unavailable(
    sandbox: SandboxServer, make_client: MakeClient, fault: str
) -> None:
    sandbox.faults.set(**{fault: 2})
    client = make_client()
    with pytest.raises(ShopifyUnavailable):
        await client.execute(SHOP_NAME)
    assert sandbox.graphql_requests(SANDBOX_DOMAIN) == 2
    assert client.metrics.value("shopify_errors_total", shop="demo", kind="unavailable") == 1


async def test_one_reset_is_retried(sandbox: SandboxServer, make_client: MakeClient) -> None:
    sandbox.faults.reset_next = 1
    assert "shop" in await make_client().execute(SHOP_NAME)
    assert sandbox.graphql_requests(SANDBOX_DOMAIN) == 2


async def test_a_hanging_store_is_unavailable_at_the_deadline(sandbox: SandboxServer, make_client: MakeClient) -> None:
    sandbox.faults.hang = True
    client = make_client()
    async with asyncio.timeout(5):  # safety net: the client's own deadline must end it long before
        with pytest.raises(ShopifyUnavailable):
            await client.execute(SHOP_NAME, deadline=deadline_in(0.3))


async def test_default_deadline_comes_from_the_shop(sandbox: SandboxServer, make_client: MakeClient) -> None:
    sandbox.faults.hang = True
    client = make_client(deadline_seconds=0.2)
    async with asyncio.timeout(5):
        with pytest.raises(ShopifyUnavailable):
            await client.execute(SHOP_NAME)


async def test_nobody_listening_is_unavailable(make_client: MakeClient) -> None:
    with pytest.raises(ShopifyUnavailable):
        await make_client(base_url="http://127.0.0.1:9").execute(SHOP_NAME, deadline=deadline_in(1))


async def test_mutations_are_not_retried_after_an_ambiguous_failure(
    sandbox: SandboxServer, make_client: MakeClient
) -> None:
    sandbox.faults.fail_next = 1
    with pytest.raises(ShopifyUnavailable):
        await make_client().execute(
            'mutation { webhookSubscriptionDelete(id: "gid://shopify/WebhookSubscription/1") { deletedWebhookSubscriptionId } }'
        )
    assert sandbox.graphql_requests(SANDBOX_DOMAIN) == 1


# --- auth ----------------------------------------------------------------------------------------------------------


async def test_wrong_static_token_is_an_auth_error_without_retry(
    sandbox: SandboxServer, make_client: MakeClient
) -> None:
    client = make_client({"mode": "token", "access_token": "shpat_wrong"})
    with pytest.raises(ShopifyAuthError):
        await client.execute(SHOP_NAME)
    assert sandbox.graphql_requests(SANDBOX_DOMAIN) == 1


async def test_client_credentials_fetches_one_token_lazily(sandbox: SandboxServer, make_client: MakeClient) -> None:
    client = make_client(CC_AUTH)
    assert isinstance(client.tokens, ClientCredentialsTokenProvider)
    assert client.tokens.fetches == 0
    await asyncio.gather(*(client.execute(SHOP_NAME) for _ in range(10)))
    assert client.tokens.fetches == 1  # single-flight: ten cold callers, one token request
    await client.execute(SHOP_NAME)
    assert client.tokens.fetches == 1


async def test_401_refreshes_the_token_once_and_retries(sandbox: SandboxServer, make_client: MakeClient) -> None:
    client = make_client(CC_AUTH)
    await client.execute(SHOP_NAME)
    sandbox.revoke_tokens()  # the store forgets the token: the next request gets 401
    sandbox.reset_counters()
    results = await asyncio.gather(*(client.execute(SHOP_NAME) for _ in range(5)))
    assert all("shop" in r for r in results)
    assert client.tokens.fetches == 2  # type: ignore[attr-defined]  # five 401s, one new token
    assert sandbox.graphql_requests(SANDBOX_DOMAIN) == 10
    assert client.metrics.value("shopify_token_refresh_total", shop="demo") == 5


async def test_token_is_renewed_before_it_expires(
    sandbox: SandboxServer, sandbox_shop: SandboxShop, session: aiohttp.ClientSession
) -> None:
    sandbox_shop.token_ttl = 100
    now = [0.0]
    provider = ClientCredentialsTokenProvider(
        session,
        sandbox.base_url,
        SANDBOX_CLIENT_ID,
        SANDBOX_CLIENT_SECRET,
        refresh_margin_seconds=30,
        clock=lambda: now[0],
    )
    first = await provider.token()
    now[0] = 69.0
    assert await provider.token() == first
    now[0] = 71.0  # inside the 30 s margin before the 100 s expiry
    second = await provider.token()
    assert second != first and provider.fetches == 2
    # a margin longer than the lifetime renews at half-life, not on every call
    sandbox_shop.token_ttl = 10
    short = ClientCredentialsTokenProvider(
        session,
        sandbox.base_url,
        SANDBOX_CLIENT_ID,
        SANDBOX_CLIENT_SECRET,
        refresh_margin_seconds=300,
        clock=lambda: now[0],
    )
    token = await short.token()
    now[0] += 4.9
    assert await short.token() == token
    now[0] += 0.2
    assert await short.token() != token


async def test_short_lived_tokens_are_renewed_in_the_margin_not_after_a_401(
    sandbox: SandboxServer, sandbox_shop: SandboxShop, make_client: MakeClient
) -> None:
    sandbox_shop.token_ttl = 1  # the store announces whole seconds
    client = make_client({**CC_AUTH, "refresh_margin_seconds": 0.5})
    await client.execute(SHOP_NAME)
    await asyncio.sleep(0.55)  # inside the margin: renewed before use, with no 401 on the way
    await client.execute(SHOP_NAME)
    assert client.tokens.fetches == 2  # type: ignore[attr-defined]
    assert client.metrics.value("shopify_token_refresh_total", shop="demo") == 0
    assert sandbox.graphql_requests(SANDBOX_DOMAIN) == 2


async def test_wrong_client_secret_is_an_auth_error(sandbox: SandboxServer, make_client: MakeClient) -> None:
    client = make_client({**CC_AUTH, "client_secret": "not-the-client-secret"})
    with pytest.raises(ShopifyAuthError) as caught:
        await client.execute(SHOP_NAME)
    assert "not-the-client-secret" not in str(caught.value)
    assert sandbox.graphql_requests(SANDBOX_DOMAIN) == 0


def test_providers_do_not_show_secrets() -> None:
    assert SANDBOX_TOKEN not in repr(StaticTokenProvider(SANDBOX_TOKEN))


# --- with the lookup cache -----------------------------------------------------------------------------------------


async def test_100_concurrent_identical_cache_misses_make_one_upstream_request(
    sandbox: SandboxServer, make_client: MakeClient
) -> None:
    sandbox.faults.latency = 0.05  # keep the first request in flight while the others arrive
    client = make_client()
    cache = LookupCache()

    async def lookup() -> Any:
        return await cache.get_or_load(("demo", "ten orders"), lambda: client.execute(TEN_ORDERS), ttl=60)

    results = await asyncio.gather(*(lookup() for _ in range(100)))
    assert sandbox.graphql_requests(SANDBOX_DOMAIN) == 1
    assert all(r is results[0] for r in results)


async def test_stale_value_answers_while_the_store_is_down(sandbox: SandboxServer, make_client: MakeClient) -> None:
    client = make_client()
    now = [0.0]
    cache = LookupCache(clock=lambda: now[0], stale_if_error=600, serve_stale_on=(ShopifyUnavailable,))
    fresh = await cache.get_or_load(("demo", "shop"), lambda: client.execute(SHOP_NAME), ttl=60)
    now[0] = 120.0
    sandbox.faults.error_rate = 1.0
    assert await cache.get_or_load(("demo", "shop"), lambda: client.execute(SHOP_NAME), ttl=60) is fresh
    assert sandbox.graphql_requests(SANDBOX_DOMAIN) == 3  # the refresh attempt and its one retry


# --- wiring --------------------------------------------------------------------------------------------------------


def settings_for(sandbox: SandboxServer) -> Settings:
    return parse_settings(
        {
            "shops": {
                "demo": {
                    "domain": SANDBOX_DOMAIN,
                    "admin_api_base": sandbox.base_url,
                    "auth": TOKEN_AUTH,
                    "secrets": ["test-bot-secret"],
                }
            }
        }
    )


async def test_setup_shopify_builds_one_client_per_shop_over_one_session(sandbox: SandboxServer) -> None:
    app = web.Application()
    app[SETTINGS] = settings_for(sandbox)
    setup_shopify(app)
    assert app[SHOPIFY_CLIENTS] == {}
    runner = web.AppRunner(app)
    await runner.setup()  # runs the cleanup_ctx startup half
    try:
        client = app[SHOPIFY_CLIENTS]["demo"]
        assert "shop" in await client.execute(SHOP_NAME)
        session = client.session
        assert not session.closed
    finally:
        await runner.cleanup()
    assert session.closed and app[SHOPIFY_CLIENTS] == {}


async def test_open_clients_outside_an_app(sandbox: SandboxServer) -> None:
    metrics = Metrics()
    async with open_clients(settings_for(sandbox), metrics=metrics) as clients:
        assert "shop" in await clients["demo"].execute(SHOP_NAME)
    assert metrics.value("shopify_requests_total", shop="demo") == 1


# --- answer shapes the local store does not produce ----------------------------------------------------------------
# The local store never answers HTTP 429 or field-level ACCESS_DENIED, so a tiny server in this test replays those
# exact Shopify response shapes (documented in Shopify's rate-limit and access-scope pages) one after another.


class ScriptedShopify:
    """Answers each GraphQL POST with the next scripted (status, body, headers); records the request headers."""

    def __init__(self, script: list[tuple[int, Any, dict[str, str]]]) -> None:
        self.script = list(script)
        self.seen_headers: list[dict[str, str]] = []
        self.runner: web.AppRunner | None = None
        self.base_url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.seen_headers.append(dict(request.headers))
        status, body, headers = self.script.pop(0)
        if isinstance(body, str):
            return web.Response(status=status, text=body, headers=headers)
        return web.json_response(body, status=status, headers=headers)

    async def __aenter__(self) -> ScriptedShopify:
        app = web.Application()
        app.router.add_post("/admin/api/{version}/graphql.json", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


def _throttled_429() -> dict[str, Any]:
    return {
        "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
        "extensions": {
            "cost": {
                "requestedQueryCost": 12,
                "actualQueryCost": None,
                "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 10, "restoreRate": 100.0},
            }
        },
    }


OK_BODY = {"data": {"shop": {"name": "Demo"}}}


async def test_http_429_throttled_is_waited_out_and_headers_are_shopify_s(session: aiohttp.ClientSession) -> None:
    script = [(429, _throttled_429(), {}), (429, "Too Many Requests", {"Retry-After": "0.02"}), (200, OK_BODY, {})]
    async with ScriptedShopify(script) as shopify:
        client = ShopifyAdminClient(shop_settings(shopify.base_url, TOKEN_AUTH), session, shop_key="demo")
        assert await client.execute(SHOP_NAME) == OK_BODY["data"]
    assert len(shopify.seen_headers) == 3
    headers = shopify.seen_headers[0]
    assert headers["X-Shopify-Access-Token"] == SANDBOX_TOKEN
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("shopify-bot-gateway/")
    assert client.metrics.value("shopify_throttled_total", shop="demo") == 2


async def test_field_level_access_denied_returns_the_partial_data(session: aiohttp.ClientSession) -> None:
    denied = {
        "data": {"orders": {"nodes": [{"name": "#1001", "email": None}]}},
        "errors": [
            {
                "message": "Access denied for email field.",
                "extensions": {"code": "ACCESS_DENIED"},
                "path": ["orders", "nodes", 0, "email"],
            }
        ],
    }
    async with ScriptedShopify([(200, denied, {})]) as shopify:
        client = ShopifyAdminClient(shop_settings(shopify.base_url, TOKEN_AUTH), session, shop_key="demo")
        data = await client.execute("{ orders(first: 1) { nodes { name email } } }")
    assert data == denied["data"]
    assert client.metrics.value("shopify_partial_data_total", shop="demo") == 1


async def test_other_errors_with_partial_data_raise_and_carry_the_data(session: aiohttp.ClientSession) -> None:
    body = {
        "data": {"shop": None},
        "errors": [{"message": "Internal error", "extensions": {"code": "INTERNAL_SERVER_ERROR"}, "path": ["shop"]}],
    }
    async with ScriptedShopify(
        [(200, body, {}), (200, "<html>oops", {}), (402, {"errors": "Unavailable Shop"}, {})]
    ) as shopify:
        client = ShopifyAdminClient(shop_settings(shopify.base_url, TOKEN_AUTH), session, shop_key="demo")
        with pytest.raises(ShopifyQueryError) as caught:
            await client.execute(SHOP_NAME)
        assert caught.value.data == {"shop": None}
        assert str(caught.value).startswith("INTERNAL_SERVER_ERROR")
        with pytest.raises(ShopifyUnavailable):  # a mangled 200 body (retried once), then 402 (frozen shop)
            await client.execute(SHOP_NAME)
    assert len(shopify.seen_headers) == 3


def _priced(requested: float, actual: float | None) -> dict[str, Any]:
    return {**OK_BODY, "extensions": {"cost": {"requestedQueryCost": requested, "actualQueryCost": actual}}}


async def test_each_document_is_priced_as_shopify_last_priced_it(session: aiohttp.ClientSession) -> None:
    """The budget books a query shape at the requested cost Shopify last reported for it (the single-query maximum
    before it has); metrics count what each answer said."""
    from gateway.shopify.client import _cost_key

    script = [(200, _priced(*costs), {}) for costs in ((12, 5), (12, 5), (12, 8), (20, None), (6, None))]
    async with ScriptedShopify(script) as shopify:
        client = ShopifyAdminClient(shop_settings(shopify.base_url, TOKEN_AUTH), session, shop_key="demo")
        key = _cost_key(SHOP_NAME, None)
        assert client.budget.price(key) is None
        for requested in (12.0, 12.0, 12.0, 20.0, 6.0):
            assert await client.execute(SHOP_NAME) == OK_BODY["data"]
            assert client.budget.price(key) == requested
    assert client.metrics.value("shopify_query_requested_cost_total", shop="demo") == 12 * 3 + 20 + 6
    assert client.metrics.value("shopify_query_cost_total", shop="demo") == 5 + 5 + 8
    assert client.metrics.value("shopify_requests_total", shop="demo") == 5


def test_mutations_are_recognised_after_fragments() -> None:
    from gateway.shopify.client import _is_mutation

    assert _is_mutation("fragment F on WebhookSubscription { id }\nmutation Create { x }")
    assert not _is_mutation("query Q { shop { name } }\nfragment F on Shop { name }")
    assert not _is_mutation("{ shop { name } }")


async def test_served_api_version_and_token_expiry_are_known(
    sandbox: SandboxServer, sandbox_shop: SandboxShop, session: aiohttp.ClientSession
) -> None:
    """What the operator console shows: the version Shopify answered with, and when the granted token expires."""
    import time

    sandbox_shop.token_ttl = 3600
    client = ShopifyAdminClient(shop_settings(sandbox.base_url, CC_AUTH), session, shop_key="demo")
    assert client.served_api_version is None
    assert isinstance(client.tokens, ClientCredentialsTokenProvider) and client.tokens.expires_at is None
    await client.execute("{ shop { name } }")
    assert client.served_api_version == "2026-10"
    assert client.tokens.expires_at is not None and abs(client.tokens.expires_at - (time.time() + 3600)) < 60
