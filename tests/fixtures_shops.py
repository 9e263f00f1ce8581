"""Fixtures of the shops flow: a gateway in app mode on the local store, a merchant's browser, a clock to move.

- `app_gateway`: `await app_gateway(backend="sqlite"|"redis", clock=...)` → `AppGateway`: the gateway (app mode,
  no config shops) served on a free port, and the local store it installs from (`SandboxServer`, the app
  registered with the gateway's callback URL). The same clock drives both unless told otherwise.
- `Merchant`: a browser without rendering (aiohttp with cookies): opens the app from the store's admin, follows the
  redirects, clicks "Install".
- `FakeClock`: epoch seconds that move only when told (`advance`).
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest
from aiohttp import web

from gateway import signing
from gateway.app import create_app
from gateway.keys import SETTINGS
from gateway.settings import Settings, parse_settings
from gateway.shops.redis.store import RedisShopStore
from gateway.shops.registry import SHOP_REGISTRY, ShopRegistry
from gateway.shops.setup import SHOP_STORE
from gateway.shops.store import ShopStore
from localstore import SandboxServer
from localstore.oauth import SandboxApp
from tests.fixtures_push import free_port, open_redis_or_skip, purge_redis_prefix

APP_CLIENT_ID = "test-app-client-id"
APP_SECRET = "test-app-client-secret-0123456789"
TOKEN_KEY = base64.b64encode(bytes(range(32))).decode()


@dataclass
class FakeClock:
    now: float = field(default_factory=lambda: float(int(time.time())))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


CONSOLE_TOKEN = "test-console-token"


def app_config(store_base: str, port: int, storage: dict[str, Any], **app: Any) -> dict[str, Any]:
    return {
        "server": {"port": port, "public_url": f"http://127.0.0.1:{port}", "reconcile_interval_seconds": 0},
        "storage": storage,
        "console": {"token": CONSOLE_TOKEN},
        "app": {"client_id": APP_CLIENT_ID, "client_secret": APP_SECRET, "token_key": TOKEN_KEY,
                "admin_api_base": store_base, **app},
    }  # fmt: skip


def register_app(store: SandboxServer, public_url: str) -> None:
    store.oauth.add_app(SandboxApp(
        APP_CLIENT_ID, APP_SECRET, redirect_urls=(public_url + "/shopify/callback",),
        app_url=public_url + "/shopify/install",
    ))  # fmt: skip


@dataclass
class AppGateway:
    base_url: str
    app: web.Application
    settings: Settings
    store_server: SandboxServer
    clock: Callable[[], float]
    raw_config: dict[str, Any] = field(default_factory=dict)  # as given to the gateway

    @property
    def registry(self) -> ShopRegistry:
        return self.app[SHOP_REGISTRY]

    @property
    def shop_store(self) -> ShopStore:
        return self.app[SHOP_STORE]

    async def ask(self, key: str, order_number: str = "1001", secret: str | None = None) -> tuple[int, Any]:
        """A JoinChat v1 `orders` query for one order, signed with the shop's first secret (as its platform does)."""
        if secret is None:
            secret = self.registry.stored[key].bot_secrets[0].value
        body = json.dumps({"method": "orders", "params": {"order_number": order_number},
                           "pagination": {"page": 1, "limit": 1}}).encode()  # fmt: skip
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{self.base_url}/bot/{key}", data=body,
                                    headers={"X-Joinchat-Signature": signing.sign_base64(secret, body)}) as resp:
                return resp.status, await resp.json()

    async def readyz(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{self.base_url}/readyz") as resp:
                return await resp.json()  # type: ignore[no-any-return]


@pytest.fixture
async def app_gateway(aiohttp_client: Any, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[SandboxServer] = []
    redis_prefixes: set[str] = set()
    store_clock = FakeClock()

    async def make(
        backend: str = "sqlite",
        *,
        clock: Callable[[], float] | None = None,
        store: SandboxServer | None = None,
        sqlite_path: Path | None = None,
        redis_prefix: str | None = None,
        **app: Any,
    ) -> AppGateway:
        clock = clock or store_clock
        if store is None:
            store = SandboxServer([], host="127.0.0.1", port=0, webhook_retry_schedule=[0.05, 0.1, 0.2], clock=clock)
            store.new_shop_orders, store.new_shop_products = 20, 10
            await store.start()
            started.append(store)
        port = free_port()
        if backend == "redis":
            storage = {"backend": "redis", "redis_prefix": redis_prefix or f"test-shops-{os.getpid()}-{port}"}
            redis_prefixes.add(storage["redis_prefix"])
        else:
            storage = {"backend": "sqlite", "sqlite_path": str(sqlite_path or tmp_path / f"gw-{port}.sqlite3")}
        storage["replica_id"] = f"gw-{port}"  # each gateway its own replica (two on one file would be refused)
        raw = app_config(store.base_url, port, storage, **app)
        settings = parse_settings(raw, env={})
        register_app(store, settings.server.public_url)
        gateway = create_app(settings, clock=clock)
        if backend == "redis":
            await open_redis_or_skip(gateway[SHOP_STORE])  # skips without Redis (fails in CI); the app reopens it
            await gateway[SHOP_STORE].close()
        await aiohttp_client(gateway, server_kwargs={"port": port})
        return AppGateway(f"http://127.0.0.1:{port}", gateway, gateway[SETTINGS], store, clock, raw)

    try:
        yield make
    finally:
        for server in started:
            await server.stop()
        for prefix in redis_prefixes:
            cleaner = RedisShopStore("redis://127.0.0.1:6379/0", None, prefix=prefix)
            await cleaner.open()
            await purge_redis_prefix(cleaner)  # type: ignore[arg-type]
            await cleaner.close()


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


_FORM_FIELD = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


class Merchant:
    """A merchant's browser: cookies kept, redirects followed by hand so each step can be looked at."""

    def __init__(self) -> None:
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def close(self) -> None:
        await self.session.close()

    async def get(self, url: str) -> tuple[int, str, str]:
        """(status, Location or "", body)."""
        async with self.session.get(url, allow_redirects=False) as resp:
            return resp.status, resp.headers.get("Location", ""), await resp.text()

    async def post_form(self, url: str, form: dict[str, str]) -> tuple[int, str, str]:
        async with self.session.post(url, data=form, allow_redirects=False) as resp:
            return resp.status, resp.headers.get("Location", ""), await resp.text()

    async def open_app(self, gw: AppGateway, domain: str) -> str:
        """Open the app from the store's admin: the store sends the browser to the App URL (signed); the gateway
        answers with the redirect to the authorize page. Returns the authorize URL."""
        store = gw.store_server.base_url
        status, location, _ = await self.get(f"{store}/admin/oauth/install?client_id={APP_CLIENT_ID}&shop={domain}")
        assert status == 302 and location.startswith(gw.base_url + "/shopify/install?"), (status, location)
        status, authorize, body = await self.get(location)
        assert status == 302, (status, body)
        return authorize

    async def click_install(self, authorize_url: str) -> str:
        """Load the authorize page and press "Install"; returns the callback URL the store redirects to."""
        status, _, page = await self.get(authorize_url)
        assert status == 200 and ">Install</button>" in page, (status, page)
        form = dict(_FORM_FIELD.findall(page))
        base = authorize_url.split("/admin/oauth/authorize", 1)[0]
        status, callback, _ = await self.post_form(base + "/admin/oauth/authorize", form)
        assert status == 302, status
        return callback

    async def sign_in(self, gw: AppGateway, token: str = CONSOLE_TOKEN) -> None:
        """The operator signs in to the console in this browser."""
        status, _, _ = await self.post_form(gw.base_url + "/console/login",
                                            {"csrf": await self.csrf(gw, "/console/login"), "token": token})
        assert status == 303

    async def csrf(self, gw: AppGateway, path: str = "/console") -> str:
        _, _, page = await self.get(gw.base_url + path)
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        assert found, f"no CSRF token on {path}"
        return found.group(1)

    async def console_post(self, gw: AppGateway, path: str, form: dict[str, str] | None = None,
                           page: str = "/console") -> tuple[int, str, str]:
        """Post a console form as its page does (the page's CSRF token); (status, Location, body)."""
        return await self.post_form(gw.base_url + path, {"csrf": await self.csrf(gw, page), **(form or {})})

    async def install(self, gw: AppGateway, domain: str) -> tuple[int, str, str]:
        """The whole flow from the store's admin; the callback's (status, Location, body)."""
        callback = await self.click_install(await self.open_app(gw, domain))
        return await self.get(callback)


@pytest.fixture
async def merchant() -> AsyncIterator[Merchant]:
    m = Merchant()
    try:
        yield m
    finally:
        await m.close()
