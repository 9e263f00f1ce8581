"""The local store's expiring tokens behave as Shopify documents them: 60-minute access tokens, 90-day refresh tokens
that rotate, and the grace rule (the previous refresh token stays valid until its replacement is first used, at most
30 days after its own first use, never past its 90 days). Virtual time: the store's clock is moved, never waited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from localstore import SandboxServer
from localstore.oauth import SandboxApp
from tests.fixtures_shops import APP_CLIENT_ID, APP_SECRET, FakeClock

DOMAIN = "grace.myshopify.com"
DAY = 86400.0
REDIRECT = "https://gateway.example/shopify/callback"


@pytest.fixture
async def store(fake_clock: FakeClock) -> AsyncIterator[SandboxServer]:
    server = SandboxServer([], host="127.0.0.1", port=0, clock=fake_clock)
    server.new_shop_orders, server.new_shop_products = 3, 2
    server.oauth.add_app(SandboxApp(APP_CLIENT_ID, APP_SECRET, redirect_urls=(REDIRECT,)))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def grant(store: SandboxServer, **fields: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{store.base_url}/admin/oauth/access_token",
                                json={"client_id": APP_CLIENT_ID, "client_secret": APP_SECRET, **fields}) as resp:
            return resp.status, await resp.json()


async def installed(store: SandboxServer) -> dict[str, Any]:
    form = {"client_id": APP_CLIENT_ID, "scope": "read_orders", "redirect_uri": REDIRECT, "state": "s", "shop": DOMAIN}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{store.base_url}/admin/oauth/authorize", data=form, allow_redirects=False) as resp:
            location = resp.headers["Location"]
    code = dict(p.split("=", 1) for p in location.split("?", 1)[1].split("&"))["code"]
    status, pair = await grant(store, code=code, expiring="1")
    assert status == 200
    return pair


async def test_access_tokens_last_an_hour_and_refresh_tokens_rotate(store: SandboxServer, fake_clock: FakeClock) -> None:
    pair = await installed(store)
    assert pair["expires_in"] == 3600 and pair["refresh_token_expires_in"] == 90 * 86400
    assert store.oauth.access_valid(DOMAIN, pair["access_token"])
    fake_clock.advance(3600)
    assert not store.oauth.access_valid(DOMAIN, pair["access_token"])
    status, second = await grant(store, grant_type="refresh_token", refresh_token=pair["refresh_token"])
    assert status == 200 and second["refresh_token"] != pair["refresh_token"]
    assert store.oauth.access_valid(DOMAIN, second["access_token"])


async def test_the_grace_rule(store: SandboxServer, fake_clock: FakeClock) -> None:
    first = await installed(store)
    refresh = {"grant_type": "refresh_token"}
    _, second = await grant(store, **refresh, refresh_token=first["refresh_token"])
    # the answer was lost: the same refresh token again, its replacement never used
    status, again = await grant(store, **refresh, refresh_token=first["refresh_token"])
    assert status == 200
    assert not store.oauth.access_valid(DOMAIN, second["access_token"])  # issued by the first use: superseded
    # the replacement is used: from now on the first refresh token is refused
    status, _ = await grant(store, **refresh, refresh_token=again["refresh_token"])
    assert status == 200
    status, refused = await grant(store, **refresh, refresh_token=first["refresh_token"])
    assert status == 400 and refused["error"] == "invalid_grant"


async def test_the_grace_period_ends_30_days_after_the_first_use_and_a_refresh_token_after_90(
    store: SandboxServer, fake_clock: FakeClock
) -> None:
    first = await installed(store)
    refresh = {"grant_type": "refresh_token"}
    _, second = await grant(store, **refresh, refresh_token=first["refresh_token"])
    fake_clock.advance(31 * DAY)
    status, _ = await grant(store, **refresh, refresh_token=first["refresh_token"])
    assert status == 400
    status, third = await grant(store, **refresh, refresh_token=second["refresh_token"])
    assert status == 200
    fake_clock.advance(90 * DAY)
    status, refused = await grant(store, **refresh, refresh_token=third["refresh_token"])
    assert status == 400 and refused["error"] == "invalid_grant"


async def test_codes_serve_once_for_their_app_and_not_for_long(store: SandboxServer, fake_clock: FakeClock) -> None:
    await installed(store)
    form = {"client_id": APP_CLIENT_ID, "scope": "read_orders", "redirect_uri": REDIRECT, "state": "s", "shop": DOMAIN}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{store.base_url}/admin/oauth/authorize", data=form, allow_redirects=False) as resp:
            code = resp.headers["Location"].split("code=", 1)[1].split("&", 1)[0]
    fake_clock.advance(601)
    status, refused = await grant(store, code=code, expiring="1")
    assert status == 400 and refused["error"] == "invalid_request"
    status, refused = await grant(store, grant_type="password")
    assert status == 400 and refused["error"] == "unsupported_grant_type"
