"""Expiring offline tokens of a shop connected through the install flow, in virtual time (one clock for the gateway
and the local store; no test waits an hour, let alone 90 days): refresh before expiry, the previous refresh token
kept until the new pair has worked, a refresh refused for good, migration of a non-expiring token, and two
replicas that find the token stale at the same moment."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from gateway.shopify.client import SHOPIFY_CLIENTS
from gateway.shops.setup import INSTALL_FLOW
from gateway.shops.store import ShopStatus, TokenSet
from gateway.shops.tokens import InstalledTokenProvider
from tests.fixtures_push import eventually
from tests.fixtures_shops import APP_CLIENT_ID, APP_SECRET, AppGateway, FakeClock, Merchant, query_of

DOMAIN = "shop4.myshopify.com"
HOUR = 3600.0
DAY = 86400.0


async def connected(app_gateway: Any, merchant: Merchant, **kw: Any) -> AppGateway:
    gw: AppGateway = await app_gateway(**kw)
    status, _, _ = await merchant.install(gw, DOMAIN)
    assert status == 200
    return gw


def provider(gw: AppGateway, key: str = "shop4") -> InstalledTokenProvider:
    tokens = gw.app[SHOPIFY_CLIENTS][key].tokens
    assert isinstance(tokens, InstalledTokenProvider)
    return tokens


async def test_the_access_token_is_refreshed_before_it_expires_and_the_old_refresh_token_dropped_once_it_works(
    app_gateway: Any, merchant: Merchant, fake_clock: FakeClock
) -> None:
    gw = await connected(app_gateway, merchant, clock=fake_clock)
    first = await gw.shop_store.tokens.load_tokens("shop4")
    assert first is not None and first.access_expires_at == first.obtained_at + HOUR
    assert first.refresh_expires_at == first.obtained_at + 90 * DAY
    assert (await gw.ask("shop4", "1001"))[0] == 200
    fake_clock.advance(50 * 60)  # 10 minutes left: more than the 5-minute margin
    assert (await gw.ask("shop4", "1002"))[0] == 200
    assert gw.store_server.oauth.grants["refresh_token"] == 0
    fake_clock.advance(6 * 60)  # 4 minutes left
    status, reply = await gw.ask("shop4", "1003")
    assert status == 200, reply
    assert gw.store_server.oauth.grants["refresh_token"] == 1
    second = await gw.shop_store.tokens.load_tokens("shop4")
    assert second is not None and second.access_token != first.access_token
    assert second.refresh_token != first.refresh_token
    assert second.previous_refresh_token is None  # the new access token answered: the old refresh token is gone
    assert provider(gw).expires_at == second.access_expires_at == fake_clock() + HOUR


async def test_a_lost_refresh_falls_back_on_the_previous_refresh_token_under_the_grace_rule(
    app_gateway: Any, merchant: Merchant, fake_clock: FakeClock
) -> None:
    gw = await connected(app_gateway, merchant, clock=fake_clock)
    stored = await gw.shop_store.tokens.load_tokens("shop4")
    assert stored is not None and stored.refresh_token
    # a pair whose refresh token Shopify never issued (a write torn by a crash), the real one kept as the previous
    torn = TokenSet(stored.access_token, stored.scope, stored.obtained_at, stored.access_expires_at, "shprt_lost",
                    stored.refresh_expires_at, stored.refresh_token)  # fmt: skip
    assert await gw.shop_store.tokens.save_tokens("shop4", torn, replacing=stored)
    fake_clock.advance(HOUR)
    assert (await gw.ask("shop4"))[0] == 200
    assert gw.store_server.oauth.grants["refresh_token"] == 1
    assert gw.registry.stored["shop4"].status is ShopStatus.CONNECTED


async def test_an_expired_refresh_token_marks_the_shop_reinstall_needed_until_it_is_installed_again(
    app_gateway: Any, merchant: Merchant, fake_clock: FakeClock
) -> None:
    gw = await connected(app_gateway, merchant, clock=fake_clock)
    fake_clock.advance(91 * DAY)
    status, reply = await gw.ask("shop4")
    assert status == 503 and reply["success"] is False  # the dialect's unavailable answer, never a 500
    assert gw.store_server.oauth.grants["refresh_token"] == 0  # refused: nothing issued
    assert gw.registry.stored["shop4"].status is ShopStatus.REINSTALL_NEEDED
    assert await gw.shop_store.tokens.load_tokens("shop4") is None
    ready = await gw.readyz()
    assert ready["status"] == "ready" and ready["shops"] == {"shop4": "reinstall needed"}
    await merchant.sign_in(gw)
    _, _, listing = await merchant.get(gw.base_url + "/console")
    _, _, page = await merchant.get(gw.base_url + "/console/shops/shop4")
    assert 'data-status="reinstall_needed"' in listing and "Reinstall needed" in page
    # the merchant installs again: connected, with the same key, secret and settings
    secret = gw.registry.stored["shop4"].bot_secrets[0].value
    status, _, _ = await merchant.install(gw, DOMAIN)
    assert status == 200
    assert gw.registry.stored["shop4"].status is ShopStatus.CONNECTED
    assert (await gw.ask("shop4", secret=secret))[0] == 200
    assert "shops" not in await gw.readyz()


async def test_a_non_expiring_offline_token_is_migrated_by_token_exchange(
    app_gateway: Any, merchant: Merchant, fake_clock: FakeClock
) -> None:
    gw = await connected(app_gateway, merchant, clock=fake_clock)
    # an install from before expiring tokens: the code exchanged without `expiring`
    callback = query_of(await merchant.click_install(gw.app[INSTALL_FLOW].authorize_url(DOMAIN, "legacy")))
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{gw.store_server.base_url}/admin/oauth/access_token", json={
            "client_id": APP_CLIENT_ID, "client_secret": APP_SECRET, "code": callback["code"]}) as resp:  # fmt: skip
            legacy = await resp.json()
    assert set(legacy) == {"access_token", "scope"}
    current = await gw.shop_store.tokens.load_tokens("shop4")
    assert current is not None
    old = TokenSet(legacy["access_token"], legacy["scope"], fake_clock())
    assert await gw.shop_store.tokens.save_tokens("shop4", old, replacing=current)
    gw.app[SHOPIFY_CLIENTS].pop("shop4", None)  # a replica starting with the legacy token

    assert (await gw.ask("shop4"))[0] == 200
    assert gw.store_server.oauth.grants["token_exchange"] == 1
    migrated = await gw.shop_store.tokens.load_tokens("shop4")
    assert migrated is not None and migrated.expiring and migrated.refresh_token
    assert not gw.store_server.oauth.access_valid(DOMAIN, legacy["access_token"])  # irreversible


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_two_replicas_finding_the_token_stale_at_once_make_one_refresh_and_both_use_the_new_token(
    app_gateway: Any, merchant: Merchant, fake_clock: FakeClock, backend: str, tmp_path: Any
) -> None:
    shared: dict[str, Any] = {"sqlite_path": tmp_path / "shared.sqlite3"} if backend == "sqlite" else {
        "redis_prefix": f"test-two-replicas-{id(tmp_path)}"}  # fmt: skip
    one = await connected(app_gateway, merchant, backend=backend, clock=fake_clock, **shared)
    two: AppGateway = await app_gateway(backend=backend, clock=fake_clock, store=one.store_server, **shared)
    await eventually(lambda: "shop4" in two.registry, within=15, what="the other replica hears of the new shop")
    assert [s[0] for s in await asyncio.gather(one.ask("shop4", "1001"), two.ask("shop4", "1001"))] == [200, 200]

    fake_clock.advance(58 * 60)
    answers = await asyncio.gather(*(gw.ask("shop4", n) for gw in (one, two) for n in ("1002", "1004")))
    assert [status for status, _ in answers] == [200] * 4
    assert one.store_server.oauth.grants["refresh_token"] == 1
    stored = await one.shop_store.tokens.load_tokens("shop4")
    assert stored is not None
    for gw in (one, two):
        held = provider(gw)._tokens
        assert held is not None and held.access_token == stored.access_token
