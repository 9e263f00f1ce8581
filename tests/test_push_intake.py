"""Webhook intake: verified, deduplicated, stored before the 2xx; everything else rejected with nothing stored."""

from __future__ import annotations

import json
from typing import Any

from gateway import signing
from tests.fixtures_push import SHOP_DOMAIN, WEBHOOK_SECRET, BotReceiver, rest_order, signed_webhook_headers
from tests.store_mirror import mirror_webhook


async def _post(gw: Any, body: bytes, headers: dict[str, str]) -> int:
    resp = await gw.client.post("/webhooks/shopify", data=body, headers=headers)
    await resp.read()
    return int(resp.status)


async def test_valid_webhook_is_stored_then_acknowledged(make_push_gateway: Any) -> None:
    gw = await make_push_gateway()
    body = json.dumps(rest_order(5001)).encode()
    assert await _post(gw, body, signed_webhook_headers("orders/paid", body, event_id="ev-ok")) == 200
    event = await gw.store.events.get_event("demo", "ev-ok")
    assert event is not None and event.body == body and event.meta.topic == "orders/paid"


async def test_rejections_store_nothing(make_push_gateway: Any) -> None:
    gw = await make_push_gateway()
    body = json.dumps(rest_order(5002)).encode()

    bad_hmac = signed_webhook_headers("orders/paid", body, event_id="ev-bad-hmac", secret="not-the-secret")
    assert await _post(gw, body, bad_hmac) == 401

    no_hmac = signed_webhook_headers("orders/paid", body, event_id="ev-no-hmac")
    del no_hmac[signing.SHOPIFY_HEADER]
    assert await _post(gw, body, no_hmac) == 401

    unknown = signed_webhook_headers("orders/paid", body, event_id="ev-unknown", domain="other.myshopify.com")
    assert await _post(gw, body, unknown) == 401

    # truncated in transit: the signature was made on the whole body
    truncated = signed_webhook_headers("orders/paid", body, event_id="ev-truncated")
    assert await _post(gw, body[: len(body) // 2], truncated) == 401

    # truncated before signing (valid HMAC, not JSON): 400, not stored
    half = body[: len(body) // 2]
    assert await _post(gw, half, signed_webhook_headers("orders/paid", half, event_id="ev-half")) == 400

    huge = b'{"pad":"' + b"x" * (10 * 1024 * 1024) + b'"}'
    assert await _post(gw, huge, signed_webhook_headers("orders/paid", huge, event_id="ev-huge")) == 413

    for event_id in ("ev-bad-hmac", "ev-no-hmac", "ev-unknown", "ev-truncated", "ev-half", "ev-huge"):
        assert await gw.store.events.get_event(None, event_id) is None, event_id
    assert await gw.store.events.claim_events(10, 0) == []


async def test_same_webhook_three_times_is_one_push(make_push_gateway: Any, bot_receiver: BotReceiver) -> None:
    gw = await make_push_gateway()
    payload = rest_order(5003, financial_status="paid", psid="PSID-5003")
    mirror_webhook(gw.shopify, "orders/paid", payload)  # the store has the order the webhook is about
    body = json.dumps(payload).encode()
    headers = signed_webhook_headers("orders/paid", body, event_id="ev-dup")
    assert [await _post(gw, body, headers) for _ in range(3)] == [200, 200, 200]
    await bot_receiver.wait_for(lambda r: len(r.delivered()) >= 1)
    # a retry with a new event id (Shopify re-sends the same change) is deduped by the push's key instead
    again = signed_webhook_headers("orders/updated", body, event_id="ev-dup-2")
    assert await _post(gw, body, again) == 200
    from tests.fixtures_push import wait_until_settled

    await wait_until_settled(gw.store)
    [push] = bot_receiver.delivered()
    assert push.body["request"] == {"page_id": "407898491811542", "topic": "Order/Receipt"}
    assert push.body["recipient"] == {"id": "PSID-5003"}
    assert push.headers["X-Shop-Domain"] == SHOP_DOMAIN
    assert signing.verify(push.headers["X-Joinchat-Signature"], push.raw, ["push-secret-1"])


async def test_webhook_id_is_the_fallback_dedupe_key(make_push_gateway: Any) -> None:
    gw = await make_push_gateway()
    body = json.dumps(rest_order(5004)).encode()
    headers = signed_webhook_headers("orders/paid", body)
    del headers["X-Shopify-Event-Id"]
    assert await _post(gw, body, headers) == 200
    assert await _post(gw, body, headers) == 200
    assert await gw.store.events.get_event("demo", headers["X-Shopify-Webhook-Id"]) is not None
    assert len(await gw.store.events.claim_events(10, 0)) <= 1


def test_webhook_secret_is_the_shopify_form() -> None:
    body = b"{}"
    assert signing.verify(signing.sign_base64(WEBHOOK_SECRET, body), body, [WEBHOOK_SECRET])


async def test_a_topic_outside_the_known_ones_is_counted_as_other(make_push_gateway: Any) -> None:
    """Issue 21.10: a signed webhook's topic header must not become a metric label of any length."""
    from gateway.ops import get_metrics

    gw = await make_push_gateway()
    body = json.dumps(rest_order(5009)).encode()
    long_topic = "orders/" + "x" * 4000
    for i, topic in enumerate(["orders/paid", long_topic, "made/up"]):
        assert await _post(gw, body, signed_webhook_headers(topic, body, event_id=f"ev-topic-{i}")) == 200
    metrics = get_metrics(gw.client.server.app)
    assert metrics.total("gateway_webhooks_received_total", topic="orders/paid") == 1
    assert metrics.total("gateway_webhooks_received_total", topic="other") == 2
    text = await (await gw.client.get("/metrics")).text()
    assert "x" * 100 not in text and "made/up" not in text
