"""Fixtures of the operator console: the shipped demo (config.yaml's three shops on the local store) running for real.

- `console_demo`: `config.yaml` as shipped, moved to free ports and a temporary SQLite file, its `demo` shop pushing
  to the test receiver (`bot_receiver`); the local store is `SandboxServer.for_settings` exactly as `gateway serve`
  starts it, and the gateway subscribes itself at start. `make(...)` takes overrides (console, push, server).
- `Operator`: an HTTP client that signs in through the login form and posts forms with the page's CSRF token.
"""

from __future__ import annotations

import copy
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from gateway.app import create_app
from gateway.push.store import PUSH_STORE, PushStore
from gateway.push.subscriptions import TOPICS
from gateway.settings import Settings, parse_settings
from localstore import SandboxServer
from tests.fixtures_push import PUSH_SECRET, BotReceiver, eventually, free_port

CONFIG = Path(__file__).resolve().parent.parent / "config.yaml"
CONSOLE_TOKEN = "demo-console-token"  # the shipped default of ${CONSOLE_TOKEN:-...}
DEMO_DOMAINS = ("demo.myshopify.com", "demo-v2.myshopify.com", "demo-meetbot.myshopify.com")
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def demo_config(
    tmp_path: Path,
    receiver_url: str,
    *,
    console: dict[str, Any] | None = None,
    push: dict[str, Any] | None = None,
    storage: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], int]:
    """The shipped config.yaml on free ports; returns (raw config, gateway port)."""
    raw = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    raw = copy.deepcopy(raw)
    port, store_port = free_port(), free_port()
    raw["server"].update(
        {"port": port, "public_url": f"http://127.0.0.1:{port}", "reconcile_interval_seconds": 0, "log_level": "INFO"}
    )
    raw["storage"] = storage or {"backend": "sqlite", "sqlite_path": str(tmp_path / f"console-{port}.sqlite3")}
    raw["sandbox"]["port"] = store_port
    for shop in raw["shops"].values():
        shop["admin_api_base"] = f"http://127.0.0.1:{store_port}"
    raw["app"]["admin_api_base"] = f"http://127.0.0.1:{store_port}"
    demo_push = raw["shops"]["demo"]["push"]
    demo_push.update(
        {"url": receiver_url, "secrets": [PUSH_SECRET], "backoff_base_seconds": 0.05, "backoff_max_seconds": 0.2,
         "timeout_seconds": 2, **(push or {})}
    )  # fmt: skip
    raw["console"].update(console or {})
    return raw, port


@dataclass
class ConsoleDemo:
    base_url: str  # the gateway, e.g. http://127.0.0.1:PORT
    app: web.Application
    settings: Settings
    store_server: SandboxServer  # the local Shopify store
    receiver: BotReceiver
    raw_config: dict[str, Any]  # the config as given to the gateway (free ports, temporary storage)

    @property
    def push_store(self) -> PushStore:
        return self.app[PUSH_STORE]

    async def graphql(self, domain: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Talk to the local store as the shop's app would (its token), e.g. to delete a subscription."""
        shop = self.store_server.shop(domain)
        async with aiohttp.ClientSession() as session:
            async with session.post(
                self.store_server.graphql_url(),
                json={"query": query, "variables": variables or {}},
                headers={"X-Shopify-Access-Token": shop.access_token or "", "Host": domain},
            ) as resp:
                return await resp.json()  # type: ignore[no-any-return]

    async def delete_subscription(self, domain: str, topic: str) -> None:
        shop = self.store_server.shop(domain)
        sub = next(s for s in shop.webhook_subscriptions if s["topic"] == topic)
        if shop.access_token:
            done = await self.graphql(
                domain,
                "mutation($id: ID!) { webhookSubscriptionDelete(id: $id) { deletedWebhookSubscriptionId } }",
                {"id": sub["id"]},
            )
            assert done["data"]["webhookSubscriptionDelete"]["deletedWebhookSubscriptionId"] == sub["id"]
        else:  # a client-credentials shop: the store's own surface, like deleting it in the Shopify admin
            shop.webhook_subscriptions.remove(sub)
            shop.touch()

    async def store_post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """The local store's admin surface (`/_sandbox/...`): mark an order paid, ship it..."""
        async with aiohttp.ClientSession() as session:
            async with session.post(self.store_server.base_url + path, json=body or {}) as resp:
                assert resp.status == 200, await resp.text()
                return await resp.json()


@pytest.fixture
async def console_demo(
    aiohttp_client: Any, bot_receiver: BotReceiver, tmp_path: Path
) -> AsyncIterator[Callable[..., Any]]:
    """`await console_demo(console={...}, push={...})` → ConsoleDemo, subscribed and ready."""
    started: list[SandboxServer] = []

    async def make(**overrides: Any) -> ConsoleDemo:
        raw, port = demo_config(tmp_path, bot_receiver.url, **overrides)
        settings = parse_settings(raw, env={})
        store_server = SandboxServer.for_settings(settings)
        store_server.webhooks.configure(retry_schedule=[0.05, 0.1, 0.2])
        await store_server.start()
        started.append(store_server)
        app = create_app(settings)
        await aiohttp_client(app, server_kwargs={"port": port})
        for domain in DEMO_DOMAINS:
            shop = store_server.shop(domain)
            await eventually(lambda s=shop: len(s.webhook_subscriptions) == len(TOPICS), what="start-up sync")
        return ConsoleDemo(f"http://127.0.0.1:{port}", app, settings, store_server, bot_receiver, raw)

    try:
        yield make
    finally:
        for server in started:
            await server.stop()


class Operator:
    """A store owner's browser, minus the rendering: follows the login form, keeps cookies, posts with CSRF."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def close(self) -> None:
        await self.session.close()

    async def get(self, path: str, **kw: Any) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.session.get(self.base_url + path, allow_redirects=False, **kw) as resp:
            return resp.status, await resp.text(), resp

    async def post(self, path: str, data: dict[str, str], **kw: Any) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.session.post(self.base_url + path, data=data, allow_redirects=False, **kw) as resp:
            return resp.status, await resp.text(), resp

    async def csrf(self, path: str = "/console") -> str:
        status, html, _ = await self.get(path)
        assert status == 200, (status, path)
        found = _CSRF.search(html)
        assert found, f"no CSRF token on {path}"
        return found.group(1)

    async def sign_in(self, token: str = CONSOLE_TOKEN) -> tuple[int, str, aiohttp.ClientResponse]:
        csrf = await self.csrf("/console/login")
        return await self.post("/console/login", {"csrf": csrf, "token": token})

    async def action(self, path: str, fields: dict[str, str] | None = None, *, page: str = "/console") -> int:
        """Post a console form the way the page does (with the page's CSRF token); returns the status."""
        csrf = await self.csrf(page)
        status, _, _ = await self.post(path, {"csrf": csrf, **(fields or {})})
        return status

    def cookie(self, name: str) -> Any:
        return next((c for c in self.session.cookie_jar if c.key == name), None)


@pytest.fixture
async def operator() -> AsyncIterator[Callable[[str], Operator]]:
    made: list[Operator] = []

    def make(base_url: str) -> Operator:
        op = Operator(base_url)
        made.append(op)
        return op

    try:
        yield make
    finally:
        for op in made:
            await op.close()
