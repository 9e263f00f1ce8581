"""`POST /webhooks/shopify`: verify, deduplicate, store durably, THEN acknowledge (PROTOCOL §9).

Nothing is parsed for business meaning here: the rules run later on the stored event (gateway.push.processor), so a
crash right after the 2xx loses nothing and Shopify's 5-second budget is never at risk.

Decisions:
- Body cap 2 MiB (the app's `client_max_size`): a large order with hundreds of line items stays well under it; more is
  answered 413 before anything is stored.
- An unknown `X-Shopify-Shop-Domain` answers 401, like a bad HMAC: without a configured secret the sender cannot be
  authenticated, and the reply does not reveal which shops this gateway serves.
- A body with a valid HMAC that is not a JSON object (truncated, garbage) answers 400 and is not stored: nothing is
  half-processed, and it is visible in Shopify's delivery log and in our metrics. The check here is structural (an
  object's braces) to keep the ack cheap; the processor parses fully and dead-letters, with the reason, a body that
  passes the braces check but is still not JSON (it stays replayable with `gateway replay`).
- Dedupe key: `X-Shopify-Event-Id`, else `X-Shopify-Webhook-Id`, else a hash of topic + body.
"""

from __future__ import annotations

import hashlib
import logging

from aiohttp import web

from gateway import signing
from gateway.keys import SETTINGS
from gateway.ops import get_metrics
from gateway.push.records import WebhookMeta
from gateway.push.store import PUSH_STORE
from gateway.push.subscriptions import TOPICS

log = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 2 * 1024 * 1024
#: Topics a metric label may name: those the gateway subscribes to and the compliance ones. A signed webhook can carry
#: any topic header; each distinct label is a new time series, so every other topic is counted as "other".
METRIC_TOPICS = frozenset(
    {"/".join(t.lower().rsplit("_", 1)) for t in TOPICS} | {"customers/data_request", "customers/redact", "shop/redact"}
)


def topic_label(topic: str) -> str:
    return topic if topic in METRIC_TOPICS else "other"


def _looks_like_json_object(body: bytes) -> bool:
    """A cheap structural check (a parse of a 30 KB order costs more than everything else here): truncated bodies
    lose their closing brace. The processor parses fully and dead-letters the rare body that still fails."""
    stripped = body.strip()
    return len(stripped) >= 2 and stripped[:1] == b"{" and stripped[-1:] == b"}"


def _reply(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text)


async def handle_webhook(request: web.Request) -> web.Response:
    metrics = get_metrics(request.app)
    if request.content_length is not None and request.content_length > MAX_WEBHOOK_BYTES:
        metrics.inc("gateway_webhooks_rejected_total", reason="too_large")
        return _reply(413, "payload too large")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        metrics.inc("gateway_webhooks_rejected_total", reason="too_large")
        return _reply(413, "payload too large")
    if len(body) > MAX_WEBHOOK_BYTES:
        metrics.inc("gateway_webhooks_rejected_total", reason="too_large")
        return _reply(413, "payload too large")

    found = request.app[SETTINGS].shop_by_domain(request.headers.get("X-Shopify-Shop-Domain", ""))
    secret = found[1].webhook_hmac_secret if found else None
    if (
        found is None
        or secret is None
        or not signing.verify(request.headers.get(signing.SHOPIFY_HEADER), body, [secret])
    ):
        if found is not None and secret is None:
            log.warning("shop %s has no webhook secret configured: webhooks cannot be verified", found[0])
        metrics.inc("gateway_webhooks_rejected_total", reason="unauthenticated")
        return _reply(401, "invalid webhook signature")
    shop_key = found[0]

    topic = request.headers.get("X-Shopify-Topic", "").strip()
    if not topic:
        metrics.inc("gateway_webhooks_rejected_total", reason="no_topic")
        return _reply(400, "missing X-Shopify-Topic")
    if not _looks_like_json_object(body):
        metrics.inc("gateway_webhooks_rejected_total", reason="bad_json")
        return _reply(400, "body is not a JSON object")

    webhook_id = request.headers.get("X-Shopify-Webhook-Id", "").strip()
    event_id = request.headers.get("X-Shopify-Event-Id", "").strip() or webhook_id
    if not event_id:
        event_id = "sha256:" + hashlib.sha256(topic.encode() + b"\n" + body).hexdigest()
    meta = WebhookMeta(
        topic=topic,
        webhook_id=webhook_id,
        triggered_at=request.headers.get("X-Shopify-Triggered-At", ""),
        api_version=request.headers.get("X-Shopify-API-Version", ""),
    )
    try:
        result = await request.app[PUSH_STORE].events.record_event(shop_key, event_id, meta, body)
    except Exception as exc:  # not stored: Shopify must retry, so never 2xx here
        log.error("shop %s: could not store webhook %s: %s", shop_key, topic, type(exc).__name__)
        metrics.inc("gateway_webhooks_rejected_total", reason="store_error")
        return _reply(503, "could not store the webhook, retry later")
    metrics.inc("gateway_webhooks_received_total", shop=shop_key, topic=topic_label(topic), result=result)
    return _reply(200, result)
