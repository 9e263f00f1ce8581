"""Fixtures of the sandbox flow: a running local Shopify store with one small seeded shop.

- `sandbox_shop`: `SandboxShop` demo.myshopify.com (seed 42, 60 orders, 30 products; token `shpat_sandbox_demo`,
  client id/secret `sandbox-client-id` / `sandbox-client-secret`).
- `sandbox`: a started `SandboxServer` serving it, with a fast webhook retry schedule ([0.05, 0.1, 0.2]).
- `receiver`: a local webhook endpoint (`Receiver`) recording every delivery; `subscribe(sandbox, url, *topics)`
  subscribes it through `webhookSubscriptionCreate`, `gql(sandbox, query)` posts any GraphQL document.
Function scope: startup is cheap (the schema is built once per process, seeding 60 orders takes ~40 ms).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from localstore import SandboxServer, SandboxShop

SANDBOX_DOMAIN = "demo.myshopify.com"
SANDBOX_TOKEN = "shpat_sandbox_demo"
SANDBOX_CLIENT_ID = "sandbox-client-id"
SANDBOX_CLIENT_SECRET = "sandbox-client-secret"
FAST_RETRIES = [0.05, 0.1, 0.2]


@pytest.fixture
def sandbox_shop() -> SandboxShop:
    return SandboxShop.seeded(
        domain=SANDBOX_DOMAIN, seed=42, orders=60, products=30, access_token=SANDBOX_TOKEN,
        client_id=SANDBOX_CLIENT_ID, client_secret=SANDBOX_CLIENT_SECRET,
    )


@pytest.fixture
async def sandbox(sandbox_shop: SandboxShop) -> AsyncIterator[SandboxServer]:
    server = SandboxServer([sandbox_shop], host="127.0.0.1", port=0, webhook_retry_schedule=FAST_RETRIES)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@dataclass
class Receiver:
    """A local webhook endpoint that records every request and answers the queued statuses (then 200)."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)

    def topics(self) -> list[str]:
        return [h["X-Shopify-Topic"] for h, _ in self.received]

    def bodies(self, topic: str | None = None) -> list[dict[str, Any]]:
        return [json.loads(b) for h, b in self.received if topic is None or h["X-Shopify-Topic"] == topic]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hooks", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    rec.url = f"http://127.0.0.1:{port}/hooks"
    try:
        yield rec
    finally:
        await runner.cleanup()


async def gql(
    server: SandboxServer, query: str, variables: dict[str, Any] | None = None, token: str = SANDBOX_TOKEN
) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.post(server.graphql_url(), json={"query": query, "variables": variables or {}},
                                headers={"X-Shopify-Access-Token": token}) as response:
            return await response.json()  # type: ignore[no-any-return]


SUBSCRIBE = """mutation($topic: WebhookSubscriptionTopic!, $uri: String!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: {uri: $uri, format: JSON}) {
    webhookSubscription { id topic uri format } userErrors { field message } } }"""


async def subscribe(server: SandboxServer, uri: str, *topics: str) -> list[str]:
    ids = []
    for topic in topics:
        body = await gql(server, SUBSCRIBE, {"topic": topic, "uri": uri})
        result = body["data"]["webhookSubscriptionCreate"]
        assert result["userErrors"] == [], result
        ids.append(result["webhookSubscription"]["id"])
    return ids
