"""Shopify's install flow end to end over HTTP: the local store's admin → the gateway's App URL → the store's
authorize page → "Install" → the gateway's callback → the shop connected, queried and pushed to; and every refusal."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import urlencode

import aiohttp

from gateway.settings import APP_SCOPES
from gateway.shops.store import ShopStatus
from localstore.oauth import signed_query
from tests.fixtures_shops import APP_CLIENT_ID, APP_SECRET, AppGateway, Merchant, query_of

DOMAIN = "shop4.myshopify.com"


async def test_a_merchant_installs_the_app_and_the_shop_answers_queries(app_gateway: Any, merchant: Merchant) -> None:
    gw: AppGateway = await app_gateway()
    status, _, page = await merchant.install(gw, DOMAIN)
    assert status == 200 and "shop4.myshopify.com is connected" in page
    stored = gw.registry.stored["shop4"]
    assert stored.status is ShopStatus.CONNECTED and stored.domain == DOMAIN
    assert "shop4" in gw.settings.shops and gw.settings.shop_by_domain(DOMAIN) is not None
    status, reply = await gw.ask("shop4")
    assert status == 200, reply
    assert [o["order_number"] for o in reply["orders"]] == ["1001"], reply
    tokens = await gw.shop_store.tokens.load_tokens("shop4")
    assert tokens is not None and tokens.expiring and tokens.refresh_token


async def test_connect_a_shop_from_the_console_shows_its_secret_once(app_gateway: Any, merchant: Merchant) -> None:
    gw: AppGateway = await app_gateway()
    await merchant.sign_in(gw)
    status, _, page = await merchant.post_form(
        gw.base_url + "/console/connect", {"csrf": await merchant.csrf(gw), "domain": " Shop4.MyShopify.com "}
    )
    # a page that goes on to Shopify (the console's CSP keeps its forms from landing elsewhere)
    authorize = html.unescape(re.search(r'content="0;url=([^"]+)"', page).group(1))  # type: ignore[union-attr]
    assert status == 200 and authorize.startswith(gw.store_server.base_url + "/admin/oauth/authorize?")
    assert query_of(authorize)["shop"] == "shop4.myshopify.com"
    status, back, _ = await merchant.get(await merchant.click_install(authorize))
    assert (status, back) == (303, "/console/shops/shop4")
    status, _, page = await merchant.get(gw.base_url + back)
    secret = gw.registry.stored["shop4"].bot_secrets[0].value
    assert status == 200 and f"<code data-secret>{secret}</code>" in page and "/bot/shop4" in page
    _, _, again = await merchant.get(gw.base_url + back)
    assert secret not in again and "data-secret-name" in again  # shown once, then only named


# --- refusals ------------------------------------------------------------------------------------------------------


def install_url(gw: AppGateway, **params: str) -> str:
    """The App URL as Shopify would open it: `params` signed with the app's secret (unless `hmac` is given)."""
    query = {"shop": DOMAIN, "host": "YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvc2hvcDQ", "timestamp": str(int(gw.clock())),
             **params}  # fmt: skip
    if "hmac" not in params:
        query = signed_query(query, APP_SECRET)
    return f"{gw.base_url}/shopify/install?{urlencode(query)}"


async def test_install_requests_not_signed_by_shopify_fresh_and_for_a_myshopify_domain_are_refused(
    app_gateway: Any, merchant: Merchant
) -> None:
    gw: AppGateway = await app_gateway()
    status, location, _ = await merchant.get(install_url(gw))
    assert status == 302 and location.startswith(gw.store_server.base_url + "/admin/oauth/authorize?")
    authorize = query_of(location)
    assert authorize["client_id"] == APP_CLIENT_ID and authorize["shop"] == DOMAIN and authorize["state"]
    assert authorize["redirect_uri"] == gw.base_url + "/shopify/callback"
    assert authorize["scope"].split(",") == list(APP_SCOPES) and "grant_options[]" not in authorize

    good = query_of(install_url(gw))
    cases = {
        "bad hmac": install_url(gw, hmac="0" * 64),
        "hmac of another secret": f"{gw.base_url}/shopify/install?{urlencode(signed_query(good, 'not-the-secret'))}",
        "a changed parameter": install_url(gw).replace("shop4", "shop5"),
        "no hmac": f"{gw.base_url}/shopify/install?shop={DOMAIN}&timestamp={int(gw.clock())}",
        "stale timestamp": install_url(gw, timestamp=str(int(gw.clock()) - 3600)),
        "a timestamp from the future": install_url(gw, timestamp=str(int(gw.clock()) + 3600)),
        "a domain outside myshopify.com": install_url(gw, shop="shop4.example.com"),
        "a myshopify look-alike": install_url(gw, shop="shop4.myshopify.com.evil.example"),
        "a path in the domain": install_url(gw, shop="evil.example/x.myshopify.com"),
        "shop given twice": install_url(gw) + f"&shop={DOMAIN}",
    }
    for case, url in cases.items():
        status, location, page = await merchant.get(url)
        assert status == 400 and not location, case
        assert 'role="alert"' in page and "Traceback" not in page, case
    assert gw.registry.stored == {}


async def test_a_callback_without_this_browsers_state_is_refused(app_gateway: Any, merchant: Merchant) -> None:
    gw: AppGateway = await app_gateway()
    first = await merchant.open_app(gw, DOMAIN)
    second = await merchant.open_app(gw, DOMAIN)  # a second install in the same browser: its state cookie wins
    callback = await merchant.click_install(first)
    status, _, page = await merchant.get(callback)
    assert status == 400 and "state does not match" in page

    stranger = Merchant()  # a browser that never started the install (a forged or leaked callback link)
    try:
        status, _, page = await stranger.get(await merchant.click_install(second))
    finally:
        await stranger.close()
    assert status == 400 and "did not start this installation" in page
    assert gw.store_server.oauth.grants["authorization_code"] == 0  # no code was even exchanged
    assert gw.registry.stored == {}


async def test_a_replayed_callback_is_refused_by_the_store_as_shopify_refuses_a_used_code(
    app_gateway: Any, merchant: Merchant
) -> None:
    gw: AppGateway = await app_gateway()
    callback = await merchant.click_install(await merchant.open_app(gw, DOMAIN))
    cookie = {c.key: c.value for c in merchant.session.cookie_jar}["shopify_install"]
    status, _, _ = await merchant.get(callback)
    assert status == 200
    # the attacker kept the link and the cookie: the state matches, the code was used
    async with aiohttp.ClientSession(cookies={"shopify_install": cookie}) as replay:
        async with replay.get(callback, allow_redirects=False) as resp:
            assert resp.status == 400 and "already used" in await resp.text()
    assert gw.store_server.oauth.grants["authorization_code"] == 1


async def test_a_callback_with_a_tampered_code_is_refused(app_gateway: Any, merchant: Merchant) -> None:
    gw: AppGateway = await app_gateway()
    callback = await merchant.click_install(await merchant.open_app(gw, DOMAIN))
    status, _, page = await merchant.get(callback.replace("code=", "code=0"))
    assert status == 400 and "signature" in page


async def test_the_store_refuses_what_shopify_refuses(app_gateway: Any, merchant: Merchant) -> None:
    gw: AppGateway = await app_gateway()
    store = gw.store_server.base_url
    authorize = query_of(await merchant.open_app(gw, DOMAIN))
    for change, words in (({"client_id": "unknown"}, "client_id"), ({"redirect_uri": "https://evil.example/cb"},
                                                                     "not whitelisted")):  # fmt: skip
        status, _, page = await merchant.get(f"{store}/admin/oauth/authorize?{urlencode({**authorize, **change})}")
        assert status == 400 and words in page
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{store}/admin/oauth/access_token", json={
            "client_id": APP_CLIENT_ID, "client_secret": "wrong", "code": "x", "expiring": "1"}) as resp:  # fmt: skip
            assert resp.status == 401 and (await resp.json())["error"] == "invalid_client"
        async with session.post(f"{store}/admin/oauth/access_token", json={
            "client_id": APP_CLIENT_ID, "client_secret": APP_SECRET, "code": "never-issued"}) as resp:  # fmt: skip
            assert resp.status == 400 and (await resp.json())["error"] == "invalid_request"
