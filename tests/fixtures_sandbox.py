"""Fixtures of the sandbox flow: a running local Shopify store with one small seeded shop.

- `sandbox_shop`: `SandboxShop` demo.myshopify.com (seed 42, 60 orders, 30 products; token `shpat_sandbox_demo`,
  client id/secret `sandbox-client-id` / `sandbox-client-secret`).
- `sandbox`: a started `SandboxServer` serving it, with a fast webhook retry schedule ([0.05, 0.1, 0.2]).
Function scope: startup is cheap (the schema is built once per process, seeding 60 orders takes ~40 ms).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.sandbox import SandboxServer, SandboxShop

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
