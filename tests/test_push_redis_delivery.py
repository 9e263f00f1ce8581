"""The push engineer's end-to-end intake and delivery tests, run again with the gateway on the Redis backend.

The test functions are imported from tests/test_push_delivery.py and tests/test_push_intake.py unchanged; only the
`make_push_gateway` fixture differs: its gateways store in Redis under a fresh prefix, deleted after the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests import test_push_delivery, test_push_intake
from tests.fixtures_push import SHOP_DOMAIN, BotReceiver, PushGateway
from tests.test_push_redis import redis_prefix, redis_push_settings

__all__ = ["redis_prefix"]  # the fixture, used below

for _module in (test_push_delivery, test_push_intake):
    for _name, _test in vars(_module).items():
        if _name.startswith("test_") and callable(_test):
            globals()[_name] = _test


@pytest.fixture
async def make_push_gateway(
    aiohttp_client: Any, bot_receiver: BotReceiver, push_sandbox: Any, tmp_path: Path, redis_prefix: str
) -> AsyncIterator[Callable[..., Any]]:
    """Like tests.fixtures_push.make_push_gateway, on Redis. Gateways are closed before the prefix is purged."""
    from gateway.app import create_app

    clients: list[Any] = []

    async def make(**kw: Any) -> PushGateway:
        kw.setdefault("admin_api_base", push_sandbox.base_url)
        app = create_app(redis_push_settings(bot_receiver, tmp_path, redis_prefix, **kw))
        client = await aiohttp_client(app)
        clients.append(client)
        return PushGateway(client, app, push_sandbox.shop(SHOP_DOMAIN))

    try:
        yield make
    finally:
        for client in clients:
            await client.close()
