"""The console's route handlers: thin; the facts come from health, pushes and preview, the actions from the code the
CLI runs (`repair_shop`, `PushStore.retry_push` / `drop_push`)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web

from gateway.console import health, preview, pushes
from gateway.console.auth import COOKIE_PATH, REQUEST_SESSION, console_path, operator_only, see_other, set_cookie
from gateway.keys import SETTINGS
from gateway.push.store import PUSH_STORE
from gateway.push.subscriptions import repair_shop, webhook_uri
from gateway.shopify.client import SHOPIFY_CLIENTS
from gateway.shops.registry import SHOP_REGISTRY
from mappings.nodes import strip_hash

log = logging.getLogger(__name__)

FLASH_COOKIE = "console_flash"


# --- rendering helpers ---------------------------------------------------------------------------------------------


def _when(ts: float | None) -> str:
    if not ts:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def _when_precise(ts: float | None) -> str:
    """To the millisecond: retries can be milliseconds apart."""
    if not ts:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d} UTC"


def _ago(ts: float | None) -> str:
    if not ts:
        return "never"
    seconds = max(0, int(time.time() - ts))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def _until(ts: float | None) -> str:
    if not ts:
        return ""
    seconds = int(ts - time.time())
    if seconds <= 0:
        return "expired"
    if seconds < 3600:
        return f"in {seconds // 60} min"
    return f"in {seconds // 3600} h {seconds % 3600 // 60} min"


def _money(amount: Any, currency: str) -> str:
    try:
        return f"{float(amount):,.2f} {currency}".strip()
    except (TypeError, ValueError):
        return f"{amount} {currency}".strip()


def _safe_url(url: str) -> str:
    """An address without what may be a credential: no user:password@, no query string (some platforms put a key
    there). The console never shows a secret."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    shown = urlunsplit((parts.scheme, host, parts.path, "", ""))
    return shown + ("?…" if parts.query else "")


def _rest_topic(graphql_topic: str) -> str:
    """ORDERS_CREATE → orders/create, FULFILLMENT_EVENTS_CREATE → fulfillment_events/create (the names Shopify's
    admin and webhook headers use)."""
    resource, _, action = graphql_topic.lower().rpartition("_")
    return f"{resource}/{action}"


def add_filters(env: jinja2.Environment) -> None:
    env.filters.update(when=_when, when_precise=_when_precise, ago=_ago, until=_until, money=_money, rest_topic=_rest_topic, safe_url=_safe_url)


def _flash(request: web.Request) -> str:
    return unquote(request.cookies.get(FLASH_COOKIE, ""))[:300]


def _render(request: web.Request, template: str, context: dict[str, Any], status: int = 200) -> web.Response:
    session = request[REQUEST_SESSION]
    flash = _flash(request)
    response = aiohttp_jinja2.render_template(
        template, request, {"csrf": session.csrf, "flash": flash, "path": request.path, **context}, status=status
    )
    if flash:
        response.del_cookie(FLASH_COOKIE, path=COOKIE_PATH)
    return response


def _back(request: web.Request, location: str, message: str) -> web.Response:
    """303 back to a page, with a one-time message."""
    response = see_other(location)
    set_cookie(request, response, FLASH_COOKIE, quote(message[:300]), 60)
    return response


#: For the console's other page modules (gateway.console.shops).
render = _render
back = _back


def _not_found(request: web.Request, what: str) -> web.Response:
    return _render(request, "error.html", {"title": "Not found", "message": what}, status=404)


# --- Shops ---------------------------------------------------------------------------------------------------------


#: Shops whose health is checked per page view (two Shopify requests each): a thousand are listed by pages.
SHOPS_PER_PAGE = 20


@operator_only
async def shops_page(request: web.Request) -> web.StreamResponse:
    registry = request.app[SHOP_REGISTRY]
    keys = sorted(set(registry) | set(registry.stored))
    pages = max(1, -(-len(keys) // SHOPS_PER_PAGE))
    try:
        page = min(max(int(request.query.get("page", "1")), 1), pages)
    except ValueError:
        page = 1
    shown = keys[(page - 1) * SHOPS_PER_PAGE : page * SHOPS_PER_PAGE]
    shops = await health.all_shops_health(request.app, [k for k in shown if k in registry])
    backlog = await request.app[PUSH_STORE].outbox.backlog()
    return _render(request, "shops.html", {
        "title": "Shops", "shops": shops, "backlog": backlog, "page": page, "pages": pages, "total": len(keys),
        "stored": registry.stored, "problems": registry.problems, "app_mode": request.app[SETTINGS].app is not None,
        "left_out": [k for k in shown if k not in registry],
    })  # fmt: skip


@operator_only
async def repair(request: web.Request) -> web.StreamResponse:
    key = request.match_info["shop"]
    settings = request.app[SETTINGS]
    if key not in settings.shops:
        return _not_found(request, "No such shop.")
    client = request.app[SHOPIFY_CLIENTS][key]
    report = await repair_shop(key, client, webhook_uri(settings), request.app[PUSH_STORE].shops)
    if report.ok:
        created = ", ".join(report.created) if report.created else "nothing was missing"
        message = f"{key}: webhook subscriptions repaired ({created})."
    else:
        message = f"{key}: repair failed: " + "; ".join(report.errors)
    log.info("console: webhook repair of %s: %s", key, report.summary())
    return _back(request, f"/console#shop-{key}", message)


# --- Pushes --------------------------------------------------------------------------------------------------------


@operator_only
async def pushes_page(request: web.Request) -> web.StreamResponse:
    shop_keys = list(request.app[SETTINGS].shops)
    flt = pushes.PushFilter.from_query(request.query, shop_keys)
    store = request.app[PUSH_STORE]
    rows = await pushes.list_rows(store, flt)
    return _render(
        request,
        "pushes.html",
        {
            "title": "Pushes",
            "rows": rows,
            "filter": flt,
            "shops": shop_keys,
            "topics": pushes.TOPICS,
            "statuses": pushes.STATUSES,
            "backlog": await store.outbox.backlog(),
            "replicas": await pushes.replica_rows(store.leases, request.app[SETTINGS].storage.lease_seconds),
            "limit": pushes.LIST_LIMIT,
            "query": request.query_string,
        },
    )


@operator_only
async def push_page(request: web.Request) -> web.StreamResponse:
    store = request.app[PUSH_STORE]
    row = await pushes.push_row(store, int(request.match_info["id"]))
    if row is None:
        return _not_found(request, "No such push.")
    body = pushes.body_of(row.push)
    return _render(
        request,
        "push.html",
        {
            "title": f"Push {row.push.id}",
            "row": row,
            "body": body,
            # the exact body, keys in the order they go on the wire (only indented)
            "body_text": json.dumps(body, indent=2, ensure_ascii=False),
            "attempts": await store.outbox.push_attempts(row.push.id),
        },
    )


def _return_to(form: Any, default: str) -> str:
    return console_path(form.get("back"), default)


async def _push_action(request: web.Request, act: str) -> web.Response:
    """Retry or drop one push with the store call `gateway outbox retry/drop` makes, then back to the page."""
    push_id = int(request.match_info["id"])
    store = request.app[PUSH_STORE]
    if act == "retry":
        ok = await store.outbox.retry_push(push_id)
        message = f"Push {push_id} queued again." if ok else f"Push {push_id} not found or already delivered."
    else:
        ok = await store.outbox.drop_push(push_id)
        message = f"Push {push_id} dropped." if ok else f"Push {push_id} not found, delivered or already dropped."
    return _back(request, _return_to(await request.post(), f"/console/pushes/{push_id}"), message)


@operator_only
async def retry(request: web.Request) -> web.StreamResponse:
    return await _push_action(request, "retry")


@operator_only
async def drop(request: web.Request) -> web.StreamResponse:
    return await _push_action(request, "drop")


# --- Preview -------------------------------------------------------------------------------------------------------


def _shop_param(request: web.Request, value: Any) -> str:
    shops = list(request.app[SETTINGS].shops)
    return value if isinstance(value, str) and value in shops else shops[0]


@operator_only
async def preview_page(request: web.Request) -> web.StreamResponse:
    shop_key = _shop_param(request, request.query.get("shop"))
    number = request.query.get("order", "").strip()[:64]
    shop = request.app[SETTINGS].shops[shop_key]
    result = await preview.build_preview(request.app, shop_key, number) if number else None
    return _render(
        request,
        "preview.html",
        {
            "title": f"Preview #{result.order_number}" if result else "Preview",
            "shops": list(request.app[SETTINGS].shops),
            "shop_key": shop_key,
            "shop": shop,
            "number": strip_hash(number),
            "recent": await preview.recent_orders(request.app, shop_key),
            "preview": result,
            "can_push": shop.push is not None and shop.push.enabled,
        },
    )


@operator_only
async def test_push(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    shop_key = _shop_param(request, form.get("shop"))
    number = str(form.get("order") or "").strip()[:64]
    shop = request.app[SETTINGS].shops[shop_key]
    back = "/console/preview?" + urlencode({"shop": shop_key, "order": number})
    if shop.push is None or not shop.push.enabled:
        return _back(request, back, f"{shop_key} has no push settings: nothing to send.")
    try:
        recipient = preview.recipient_from_form(str(form.get("kind") or ""), str(form.get("recipient") or ""), shop)
    except preview.BadRecipient as err:
        return _back(request, back, str(err))
    result = await preview.build_preview(request.app, shop_key, number)
    if result.receipt is None:
        return _back(request, back, f"No receipt to send: {result.problem}")
    await preview.enqueue_test_push(request.app, shop_key, result.receipt, recipient)
    # no recipient value in the log: it is shopper (or operator) data
    log.info("console: test push of a receipt queued for shop %s", shop_key)
    return _back(
        request,
        "/console/pushes?" + urlencode({"shop": shop_key, "order": result.order_number}),
        f"Test push of order #{result.order_number} queued; it is listed below.",
    )
