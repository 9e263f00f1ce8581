"""Fixtures of the query flow: a gateway with one shop per dialect, and a helper that signs and posts like a platform.

Shops (keys): `jc1` joinchat v1 (two secrets: a rotation in progress; open API enabled), `jc2` joinchat v2, `mb` meetbot.
- `query_settings(admin_base, domains)` builds the Settings; `offline_gateway` runs the app against a store address where
  nothing listens (for everything that never reaches Shopify: `test`, signatures, errors, sizes).
- `Platform` signs bodies exactly as each bot platform does and posts them (`await platform.ask("jc1", body)`).
- `lookup_context(...)` is one shop's `ShopContext` on a local store, for running lookups without the HTTP layer.
- `document_cost(name, variables)`: the requested cost of one of our documents by the local store's cost model.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from graphql import OperationDefinitionNode, parse

from gateway import signing
from gateway.app import create_app
from gateway.cache import LookupCache
from gateway.lookups.context import ShopContext
from gateway.settings import Settings, parse_settings
from gateway.shopify.client import ShopifyAdminClient, ShopifyUnavailable
from gateway.shopify.queries import load_query
from localstore import SandboxServer, SandboxShop
from localstore.cost import CostCalculator
from localstore.executor import admin_schema

JC1_SECRETS = ["jc1-current-secret", "jc1-previous-secret"]
JC2_SECRET = "jc2-bot-secret"
MB_SECRET = "mb-bot-secret"
APP_ID = "vend-app-1"
APP_SECRET = "vend-app-secret"
MACHINE = "16327129"
SANDBOX_CLIENT_SECRET = "sandbox-client-secret"
#: One store token per shop: the local store picks the shop by token when the Host is 127.0.0.1.
TOKENS = {"jc1": "shpat_sandbox_demo", "jc2": "shpat_sandbox_v2", "mb": "shpat_sandbox_meetbot"}
#: Somewhere nothing listens: lookups fail fast with a connection error.
NOWHERE = "http://127.0.0.1:9"

DEFAULT_DOMAINS = {"jc1": "demo.myshopify.com", "jc2": "demo-v2.myshopify.com", "mb": "demo-meetbot.myshopify.com"}


def document_cost(name: str, variables: dict[str, Any]) -> int:
    """The requested cost of our document `name` with `variables`, by the local store's model of Shopify's rules
    (localstore/cost.py), without sending it."""
    document = parse(load_query(name))
    [operation] = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    return CostCalculator(admin_schema(), document, variables).plan(operation).requested


def lookup_context(
    base_url: str, session: aiohttp.ClientSession, *, domain: str, token: str, push_state: Any = None, **shop: Any
) -> ShopContext:
    """Shop `demo` (`domain`, static `token`) on the store at `base_url`, with its own client and an empty cache."""
    settings = parse_settings(
        {
            "shops": {
                "demo": {
                    "domain": domain,
                    "admin_api_base": base_url,
                    "auth": {"mode": "token", "access_token": token},
                    "secrets": ["test-bot-secret"],
                    **shop,
                }
            }
        },
        env={},
    )
    shop_settings = settings.shops["demo"]
    return ShopContext(
        key="demo",
        settings=shop_settings,
        client=ShopifyAdminClient(shop_settings, session, shop_key="demo"),
        cache=LookupCache(serve_stale_on=(ShopifyUnavailable,)),  # as the app's (gateway.query)
        push_state=push_state,
    )


def query_settings(
    admin_base: str | dict[str, str] = NOWHERE,
    domains: dict[str, str] | None = None,
    *,
    shop_overrides: dict[str, dict[str, Any]] | None = None,
) -> Settings:
    """One shop per dialect against `admin_base` (one URL for all, or per shop key)."""
    domains = domains or DEFAULT_DOMAINS
    bases = admin_base if isinstance(admin_base, dict) else dict.fromkeys(domains, admin_base)

    def shop(key: str, **extra: Any) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "domain": domains[key],
            "admin_api_base": bases[key],
            "auth": {"mode": "token", "access_token": TOKENS[key]},
            "webhook_secret": SANDBOX_CLIENT_SECRET,
            "deadline_seconds": 2,
            "limits": {"max_limit": 10, "default_limit": 3, "max_page": 100, "max_body_bytes": 64 * 1024},
        }
        cfg.update(extra)
        cfg.update((shop_overrides or {}).get(key, {}))
        return cfg

    raw = {
        "server": {"sync_webhooks_on_start": False, "reconcile_interval_seconds": 0},
        "storage": {"backend": "sqlite", "sqlite_path": ":memory:"},
        "shops": {
            "jc1": shop(
                "jc1",
                dialect="joinchat",
                joinchat_version=1,
                secrets=JC1_SECRETS,
                openapi={
                    "app_id": APP_ID,
                    "app_secret": APP_SECRET,
                    "allowed_machines": [MACHINE],
                    "max_order_age_days": 0,
                },
            ),
            "jc2": shop("jc2", dialect="joinchat", joinchat_version=2, secrets=[JC2_SECRET]),
            "mb": shop("mb", dialect="meetbot", secrets=[MB_SECRET]),
        },
    }
    return parse_settings(raw, env={})


def sign_for(shop_key: str, body: bytes, secret: str | None = None, form: str = "default") -> dict[str, str]:
    """The signature header a platform sends for `shop_key` (meetbot forms: default sha256=hex, hex, HEX, base64)."""
    if shop_key == "mb":
        secret = secret or MB_SECRET
        raw = signing.digest(secret, body)
        value = {
            "default": "sha256=" + raw.hex(),
            "hex": raw.hex(),
            "HEX": raw.hex().upper(),
            "base64": base64.b64encode(raw).decode(),
        }[form]
        return {signing.MEETBOT_HEADER: value}
    secret = secret or (JC1_SECRETS[0] if shop_key == "jc1" else JC2_SECRET)
    return {signing.JOINCHAT_HEADER: signing.sign_base64(secret, body)}


def envelope(
    shop_key: str, method: str, params: dict[str, Any] | None = None, pagination: Any = None
) -> dict[str, Any]:
    """A query body in the shop's dialect."""
    body: dict[str, Any]
    if shop_key == "mb":
        body = {"request": {"category": "ecommerce", "method": method, "id": f"{method}_1", "page_id": "1", "meta": ""}}
    else:
        body = {"method": method}
    body["params"] = params or {}
    if pagination is not None:
        body["pagination"] = pagination
    return body


def openapi_body(machine_no: str = MACHINE, timestamp: int | str | None = None) -> bytes:
    inner = {"machine_no": machine_no, "timestamp": str(int(time.time()) if timestamp is None else timestamp)}
    return json.dumps({"payload": base64.b64encode(json.dumps(inner).encode()).decode()}).encode()


@dataclass
class Reply:
    status: int
    json: Any
    headers: dict[str, str]


@dataclass
class Platform:
    """Posts signed queries to a running gateway, as the bot platforms do."""

    client: TestClient  # type: ignore[type-arg]
    #: The local store behind the gateway (None for `offline_gateway`).
    store: SandboxServer | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> Reply:
        async with self.client.post(path, data=body, headers=headers or {}) as resp:
            raw = await resp.read()
            return Reply(resp.status, json.loads(raw), dict(resp.headers))

    async def ask(self, shop_key: str, body: Any, *, secret: str | None = None, form: str = "default") -> Reply:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **sign_for(shop_key, raw, secret, form)}
        return await self.post(f"/bot/{shop_key}", raw, headers)

    async def query(
        self, shop_key: str, method: str, params: dict[str, Any] | None = None, pagination: Any = None
    ) -> Reply:
        return await self.ask(shop_key, envelope(shop_key, method, params, pagination))

    async def openapi(
        self, order_id: str, body: bytes | None = None, app_id: str = APP_ID, app_secret: str = APP_SECRET
    ) -> Reply:
        headers = {"Appid": app_id, "AppSecret": app_secret, "Content-Type": "application/json"}
        return await self.post(f"/api/openapi/v1/orders/{order_id}", openapi_body() if body is None else body, headers)


AiohttpClient = Callable[..., Awaitable[TestClient]]  # type: ignore[type-arg]


@pytest.fixture
async def offline_gateway(aiohttp_client: AiohttpClient) -> Platform:
    """The gateway with every shop pointing at an address where no store listens."""
    client = await aiohttp_client(create_app(query_settings()))
    return Platform(client)


@pytest.fixture
async def query_store() -> AsyncIterator[SandboxServer]:
    """The local store with the three shops, each seeded alike (seed 42: the well-known fixtures of sandbox/data.py)."""
    shops = [
        SandboxShop.seeded(domain=domain, seed=42, orders=60, products=30, access_token=TOKENS[key],
                           client_secret=SANDBOX_CLIENT_SECRET)
        for key, domain in DEFAULT_DOMAINS.items()
    ]
    server = SandboxServer(shops, host="127.0.0.1", port=0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def gateway(aiohttp_client: AiohttpClient, query_store: SandboxServer) -> Platform:
    """The gateway in front of the local store; `platform.store` is the store (faults, request counters)."""
    client = await aiohttp_client(create_app(query_settings(query_store.base_url)))
    return Platform(client, query_store)
