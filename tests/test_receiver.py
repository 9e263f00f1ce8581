"""`gateway receiver`: the stand-in bot platform verifies signatures, accepts pushes and prints no readable email."""

from __future__ import annotations

import json

import aiohttp

from gateway import signing
from localstore.receiver import PushReceiver, describe
from tests.fixtures_push import free_port


async def test_verifies_accepts_and_masks() -> None:
    receiver = PushReceiver(secrets=["old", "new"], port=free_port())
    await receiver.start()
    try:
        body = json.dumps({"request": {"page_id": "p", "topic": "Order/Receipt"},
                           "recipient": {"email": "shopper@example.com"}, "params": {"order_number": "1001"}}).encode()
        async with aiohttp.ClientSession() as session:
            ok = await session.post(receiver.url, data=body, headers={signing.JOINCHAT_HEADER: signing.sign_base64("new", body)})
            assert ok.status == 200 and (await ok.json()) == {"success": True, "recipient_id": "shopper@example.com"}
            bad = await session.post(receiver.url, data=body, headers={signing.JOINCHAT_HEADER: signing.sign_base64("x", body)})
            assert bad.status == 401
            receiver.fail_next(1, 503)
            down = await session.post(receiver.url, data=body, headers={signing.JOINCHAT_HEADER: signing.sign_base64("old", body)})
            assert down.status == 503
        assert len(receiver.delivered("Order/Receipt")) == 1 and receiver.bad_signatures == 1
        line = describe(receiver.received[0])
        assert "Order/Receipt" in line and "1001" in line and "shopper@example.com" not in line
    finally:
        await receiver.stop()


async def test_meetbot_shops_are_verified_with_hub_signature() -> None:
    receiver = PushReceiver(secrets=["s"], dialect="meetbot", port=free_port())
    await receiver.start()
    try:
        body = b'{"request": {"topic": "package/update"}, "recipient": {"id": "42"}, "params": {}}'
        async with aiohttp.ClientSession() as session:
            r = await session.post(receiver.url, data=body, headers={signing.MEETBOT_HEADER: signing.sign_hub("s", body)})
            assert r.status == 200
        assert receiver.delivered("package/update")[0].body["recipient"] == {"id": "42"}
    finally:
        await receiver.stop()
