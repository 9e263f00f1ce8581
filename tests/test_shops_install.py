"""Shopify's install flow end to end over HTTP: the local store's admin → the gateway's App URL → the store's
authorize page → "Install" → the gateway's callback → the shop connected, queried and pushed to; and every refusal."""

from __future__ import annotations

from typing import Any

from gateway import signing
from gateway.shops.store import ShopStatus
from tests.fixtures_shops import CONSOLE_TOKEN, AppGateway, Merchant

DOMAIN = "shop4.myshopify.com"


async def bot_query(gw: AppGateway, key: str, secret: str, body: bytes) -> tuple[int, Any]:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{gw.base_url}/bot/{key}", data=body, headers={"X-Joinchat-Signature": signing.sign_base64(secret, body)}
        ) as resp:
            return resp.status, await resp.json()


async def test_a_merchant_installs_the_app_and_the_shop_answers_queries(app_gateway: Any, merchant: Merchant) -> None:
    gw: AppGateway = await app_gateway()
    status, _, page = await merchant.install(gw, DOMAIN)
    assert status == 200 and "shop4.myshopify.com is connected" in page
    stored = gw.registry.stored["shop4"]
    assert stored.status is ShopStatus.CONNECTED and stored.domain == DOMAIN
    assert "shop4" in gw.settings.shops and gw.settings.shop_by_domain(DOMAIN) is not None
    secret = stored.bot_secrets[0].value
    body = b'{"method":"orders","params":{"order_number":"1001"},"pagination":{"page":1,"limit":1}}'
    status, reply = await bot_query(gw, "shop4", secret, body)
    assert status == 200, reply
    assert [o["order_number"] for o in reply["orders"]] == ["1001"], reply
    tokens = await gw.shop_store.load_tokens("shop4")
    assert tokens is not None and tokens.expiring and tokens.refresh_token


async def sign_in(merchant: Merchant, gw: AppGateway) -> None:
    """The operator signs in to the console in the same browser (tests.fixtures_console's form, by hand)."""
    import re

    _, _, page = await merchant.get(gw.base_url + "/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    status, _, _ = await merchant.post_form(gw.base_url + "/console/login", {"csrf": csrf, "token": CONSOLE_TOKEN})
    assert status == 303


async def console_csrf(merchant: Merchant, gw: AppGateway, path: str = "/console") -> str:
    import re

    _, _, page = await merchant.get(gw.base_url + path)
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]


async def test_connect_a_shop_from_the_console_shows_its_secret_once(app_gateway: Any, merchant: Merchant) -> None:
    gw: AppGateway = await app_gateway()
    await sign_in(merchant, gw)
    status, authorize, _ = await merchant.post_form(
        gw.base_url + "/console/connect", {"csrf": await console_csrf(merchant, gw), "domain": " Shop4.MyShopify.com "}
    )
    assert status == 302 and authorize.startswith(gw.store_server.base_url + "/admin/oauth/authorize?")
    status, back, _ = await merchant.get(await merchant.click_install(authorize))
    assert (status, back) == (303, "/console/shops/shop4")
    status, _, page = await merchant.get(gw.base_url + back)
    secret = gw.registry.stored["shop4"].bot_secrets[0].value
    assert status == 200 and f"<code data-secret>{secret}</code>" in page and "/bot/shop4" in page
    _, _, again = await merchant.get(gw.base_url + back)
    assert secret not in again and "data-secret-name" in again  # shown once, then only named
