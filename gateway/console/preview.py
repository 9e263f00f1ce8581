"""The Preview page: what a shopper will see for one order, and the exact JSON each dialect answers for it.

Nothing here has its own idea of an order: each dialect's request body goes through that dialect's codec (`parse`),
the query through `run_lookup` (cache, single-flight, the same GraphQL documents and mappings as `/bot/{shop}`), and
the result through the codec's `render` — the bytes a platform would receive. The receipt and package cards are drawn
from the same Result objects.

"Send as a test push" enqueues an `Order/Receipt` with the previewed receipt to a recipient the operator types, into
the outbox like any push (signed, retried, listed on the Pushes page; dedupe key `test:<random>`).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.dialects.base import GatewayError, classify
from gateway.dialects.joinchat import JoinChatCodec
from gateway.dialects.meetbot import MeetbotCodec
from gateway.dialects.openapi import OpenApiCodec, check_age, order_query
from gateway.keys import SETTINGS
from gateway.lookups.context import SHOP_CONTEXTS, ShopContext
from gateway.lookups.dispatch import run_lookup
from gateway.lookups.types import LookupFailure, OrdersResult, PackagesResult
from gateway.push.records import EventOutcome, NewPush
from gateway.push.render import push_body
from gateway.push.store import PUSH_STORE
from gateway.settings import ShopSettings
from mappings.models import Package, Receipt
from mappings.nodes import strip_hash
from mappings.phone import normalize_phone
from mappings.push import receipt_push_params
from mappings.status_labels import built_in_labels

#: Test pushes carry no Shopify order id: they share this one, so they queue behind each other, never behind (or
#: ahead of) a real order's pushes.
TEST_PUSH_ORDER_ID = 0
TEST_PUSH_PREFIX = "test:"
RECENT_ORDERS = 10


@dataclass
class DialectAnswer:
    name: str  # "JoinChat v1", ...
    method: str  # orders | packages | open API
    request: str  # the request body the platform sends (pretty-printed)
    answer: str  # the gateway's answer (pretty-printed; the wire is compact)
    this_shop: bool  # the dialect this shop's platform speaks


@dataclass
class Preview:
    order_number: str
    receipt: Receipt | None = None
    packages: list[Package] = field(default_factory=list)
    #: The locale the package statuses are in (the order's language, else the shop's, else English), and its name.
    label_language: str = ""
    problem: str = ""
    answers: list[DialectAnswer] = field(default_factory=list)

    @property
    def label_language_name(self) -> str:
        """The language's own name and code, "Français (fr)"; the bare code for one only the shop's overrides speak."""
        shipped = built_in_labels().get(self.label_language)
        return f"{shipped.name} ({self.label_language})" if shipped else self.label_language


def _pretty(raw: bytes) -> str:
    return json.dumps(json.loads(raw), indent=2, ensure_ascii=False)


def _dialects(shop: ShopSettings) -> list[tuple[str, Any, bool]]:
    own = "meetbot" if shop.dialect == "meetbot" else f"joinchat_v{shop.joinchat_version}"
    return [
        ("JoinChat v1", JoinChatCodec(1, shop.limits, shop.phone_region), own == "joinchat_v1"),
        ("JoinChat v2", JoinChatCodec(2, shop.limits, shop.phone_region), own == "joinchat_v2"),
        ("Meetbot", MeetbotCodec(shop.limits, shop.phone_region), own == "meetbot"),
    ]


def _request_body(codec: Any, method: str, params: dict[str, Any]) -> dict[str, Any]:
    if isinstance(codec, MeetbotCodec):
        return {
            "request": {"category": "ecommerce", "method": method, "id": f"{method}_1", "page_id": "", "meta": ""},
            "params": params,
        }
    return {"method": method, "params": params}


async def _answer(ctx: ShopContext, codec: Any, body: dict[str, Any]) -> tuple[bytes, Any]:
    """What `POST /bot/{shop}` answers for this (already verified) body: the reply bytes and the Result (or None)."""
    try:
        query = codec.parse(body)
        result = await run_lookup(ctx, query)
    except LookupFailure as failure:
        return codec.error(classify(failure)), None
    return codec.render(query, result), result


async def build_preview(app: web.Application, shop_key: str, order_number: str) -> Preview:
    shop = app[SETTINGS].shops[shop_key]
    ctx = app[SHOP_CONTEXTS][shop_key]
    number = strip_hash(order_number)
    preview = Preview(order_number=number)
    for name, codec, own in _dialects(shop):
        for method in ("orders", "packages"):
            body = _request_body(codec, method, {"order_number": number})
            raw, result = await _answer(ctx, codec, body)
            preview.answers.append(DialectAnswer(name, method, json.dumps(body, indent=2), _pretty(raw), own))
            if own and isinstance(result, OrdersResult) and result.orders:
                preview.receipt = result.orders[0]
            if own and isinstance(result, PackagesResult):
                preview.packages = list(result.packages)
                preview.label_language = result.label_language
    if shop.openapi is not None:
        preview.answers.append(await _open_api_answer(ctx, shop, number))
    if preview.receipt is None:
        own_orders = next(a for a in preview.answers if a.this_shop and a.method == "orders")
        preview.problem = _problem_of(own_orders.answer)
    return preview


async def _open_api_answer(ctx: ShopContext, shop: ShopSettings, number: str) -> DialectAnswer:
    codec = OpenApiCodec()
    assert shop.openapi is not None
    try:
        # the open API takes the numeric id, falling back to the order name; text that is neither ("a b") is its
        # 40002, shown like any other answer
        query = order_query(number)
        result = await run_lookup(ctx, query)
        check_age(result, shop.openapi, time.time())
        raw = codec.render(query, result)
    except LookupFailure as failure:
        raw = codec.error(classify(failure))
    except GatewayError as err:
        raw = codec.error(err)
    request = f"POST /api/openapi/v1/orders/{number}  (Appid, AppSecret headers; payload with machine_no, timestamp)"
    return DialectAnswer("Open API", "order", request, _pretty(raw), False)


def _problem_of(answer: str) -> str:
    data = json.loads(answer)
    errors = data.get("errors") or data.get("error") or {}
    message = errors.get("message") if isinstance(errors, dict) else errors
    if data.get("success") and not message:
        return "No order with that number in this shop."
    return str(message or "The order could not be read.")


async def recent_orders(app: web.Application, shop_key: str) -> list[dict[str, str]]:
    """The shop's latest orders (name, date, payment state) for the picker; empty when Shopify does not answer."""
    ctx = app[SHOP_CONTEXTS][shop_key]
    try:
        data = await ctx.execute("recent_orders", {"first": RECENT_ORDERS})
    except Exception:  # the picker is a convenience: the page still works by typing a number
        return []
    return [
        {
            "number": strip_hash(n.get("name")),
            "created": str(n.get("createdAt") or "")[:10],
            "payment": str(n.get("displayFinancialStatus") or "").replace("_", " ").lower(),
        }
        for n in (data.get("orders") or {}).get("nodes") or []
        if isinstance(n, dict)
    ]


class BadRecipient(ValueError):
    pass


def recipient_from_form(kind: str, value: str, shop: ShopSettings) -> dict[str, str]:
    """The push recipient of PROTOCOL §8 from what the operator typed."""
    value = value.strip()
    if not value or len(value) > 200:
        raise BadRecipient("Type a recipient (at most 200 characters).")
    if kind == "psid":
        return {"id": value}
    if kind == "email":
        if "@" not in value or " " in value:
            raise BadRecipient("That is not an email address.")
        return {"email": value}
    if kind == "phone":
        phone = normalize_phone(value, shop.phone_region)
        if phone is None:
            raise BadRecipient("That is not a phone number (use the international form, +1 613 555 0135).")
        return {"phone": phone}
    raise BadRecipient("Choose PSID, email or phone.")


async def enqueue_test_push(app: web.Application, shop_key: str, receipt: Receipt, recipient: dict[str, str]) -> str:
    """Put an Order/Receipt test push in the outbox; returns its dedupe key."""
    shop = app[SETTINGS].shops[shop_key]
    dedupe_key = TEST_PUSH_PREFIX + secrets.token_hex(8)
    body = push_body(shop, "Order/Receipt", recipient, receipt_push_params(receipt))
    push = NewPush(
        shop_key=shop_key,
        dedupe_key=dedupe_key,
        order_id=TEST_PUSH_ORDER_ID,
        topic="Order/Receipt",
        body=body,
        due_at=time.time(),
    )
    await app[PUSH_STORE].states.commit([EventOutcome(pushes=[push])])
    return dedupe_key
