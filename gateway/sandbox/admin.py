"""The local store's admin surface (`/_sandbox/...`): drive the store from tests, scripts and curl.

Every body is JSON; every answer is JSON. `{shop}` is a shop domain (e.g. demo.myshopify.com).

| method, path | does |
|---|---|
| GET  /_sandbox/shops | domains, credentials hints, record counts |
| POST /_sandbox/{shop}/orders | `create_order(**body)` → the order |
| GET  /_sandbox/{shop}/orders/{ref} | an order by id, gid or name (`%231001` or `1001`) |
| POST /_sandbox/{shop}/orders/{ref}/paid · /cancel · /close | mark_paid / cancel_order / close_order |
| DELETE /_sandbox/{shop}/orders/{ref} | delete_order (no webhook: a "missed webhook") |
| POST /_sandbox/{shop}/orders/{ref}/fulfillments | create_fulfillment(**body) |
| POST /_sandbox/{shop}/fulfillments/{id} | update_fulfillment(**body) |
| POST /_sandbox/{shop}/fulfillments/{id}/events | add_fulfillment_event(**body) (`{"status": "out_for_delivery"}`) |
| POST /_sandbox/{shop}/products/{id} | update_product(**body) |
| POST /_sandbox/{shop}/settings | plan (standard, advanced, plus, commerce_components), token_ttl, bucket_size, restore_rate, max_query_cost |
| POST /_sandbox/{shop}/revoke-tokens | expire every token issued by the grant |
| GET/POST/DELETE /_sandbox/faults | read / set (partial) / clear fault injection |
| GET/POST /_sandbox/webhooks | read / set delivery knobs (paused, release_order, duplicates, delay, drop_next, retry_schedule) |
| POST /_sandbox/webhooks/release · /pause · /resume · /drain · /reset | control held deliveries |
| GET  /_sandbox/webhooks/log | every delivery attempt with its status |
| GET  /_sandbox/counters · POST /_sandbox/counters/reset | GraphQL requests per shop |
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.sandbox.records import public

if TYPE_CHECKING:
    from gateway.sandbox.data import SandboxShop
    from gateway.sandbox.server import SandboxServer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(value: Any, status: int = 200) -> web.Response:
    return web.json_response(public(value), status=status, dumps=lambda v: json.dumps(v, default=str))


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except json.JSONDecodeError:
        raise web.HTTPBadRequest(text='{"error": "body is not JSON"}', content_type="application/json") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text='{"error": "body must be a JSON object"}', content_type="application/json")
    return data


def add_admin_routes(app: web.Application, server: SandboxServer) -> None:
    def shop_of(request: web.Request) -> SandboxShop:
        domain = request.match_info["shop"].lower()
        if domain not in server.shops:
            raise web.HTTPNotFound(text=json.dumps({"error": f"no shop {domain}"}), content_type="application/json")
        return server.shops[domain]

    def guarded(handler: Handler) -> Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except KeyError as exc:
                return _json({"error": str(exc.args[0] if exc.args else exc)}, status=404)
            except (TypeError, ValueError) as exc:
                return _json({"error": str(exc)}, status=400)

        return run

    async def shops(request: web.Request) -> web.Response:
        return _json([{"domain": s.domain, "orders": len(s.orders), "products": len(s.products),
                       "customers": len(s.customers), "webhook_subscriptions": len(s.webhook_subscriptions),
                       "admin_api_base": server.base_url} for s in server.shops.values()])

    async def create_order(request: web.Request) -> web.Response:
        order = await shop_of(request).create_order(**await _body(request))
        return _json(order, status=201)

    async def get_order(request: web.Request) -> web.Response:
        order = shop_of(request).order(request.match_info["ref"])
        if order is None:
            raise KeyError(f"no order {request.match_info['ref']}")
        return _json(order)

    def order_action(action: str) -> Handler:
        async def run(request: web.Request) -> web.Response:
            shop = shop_of(request)
            method = getattr(shop, action)
            return _json(await method(request.match_info["ref"], **await _body(request)))

        return run

    async def delete_order(request: web.Request) -> web.Response:
        return _json(shop_of(request).delete_order(request.match_info["ref"]))

    async def create_fulfillment(request: web.Request) -> web.Response:
        found = await shop_of(request).create_fulfillment(request.match_info["ref"], **await _body(request))
        return _json(found, status=201)

    async def update_fulfillment(request: web.Request) -> web.Response:
        return _json(await shop_of(request).update_fulfillment(request.match_info["id"], **await _body(request)))

    async def fulfillment_event(request: web.Request) -> web.Response:
        event = await shop_of(request).add_fulfillment_event(request.match_info["id"], **await _body(request))
        return _json(event, status=201)

    async def update_product(request: web.Request) -> web.Response:
        return _json(await shop_of(request).update_product(request.match_info["id"], **await _body(request)))

    async def shop_settings(request: web.Request) -> web.Response:
        shop = shop_of(request)
        body = await _body(request)
        if "plan" in body:  # first, so bucket_size / restore_rate in the same body adjust the plan's figures
            shop.plan = body.pop("plan")
        for key, value in body.items():
            if key not in ("token_ttl", "bucket_size", "restore_rate", "max_query_cost", "access_scopes"):
                raise ValueError(f"unknown shop setting {key!r}")
            setattr(shop, key, list(value) if key == "access_scopes" else value)
        return _json({"token_ttl": shop.token_ttl, "plan": shop.plan, "bucket_size": shop.bucket_size,
                      "restore_rate": shop.restore_rate, "currently_available": shop.bucket.status()["currentlyAvailable"],
                      "max_query_cost": shop.max_query_cost, "access_scopes": shop.access_scopes})

    async def revoke_tokens(request: web.Request) -> web.Response:
        server.revoke_tokens(shop_of(request).domain)
        return _json({"revoked": True})

    async def faults(request: web.Request) -> web.Response:
        if request.method == "POST":
            server.faults.set(**await _body(request))
        elif request.method == "DELETE":
            server.faults.clear()
        return _json(server.faults.as_dict())

    async def webhooks(request: web.Request) -> web.Response:
        if request.method == "POST":
            server.webhooks.configure(**await _body(request))
        return _json(server.webhooks.settings())

    def webhook_action(name: str) -> Handler:
        async def run(request: web.Request) -> web.Response:
            if name == "drain":
                await server.webhooks.drain()
            else:
                getattr(server.webhooks, name)()
            return _json(server.webhooks.settings())

        return run

    async def webhook_log(request: web.Request) -> web.Response:
        return _json([asdict(a) for a in server.webhooks.log])

    async def counters(request: web.Request) -> web.Response:
        if request.method == "POST":
            server.reset_counters()
        return _json({d: server.graphql_requests(d) for d in server.shops})

    r = app.router
    r.add_get("/_sandbox/shops", guarded(shops))
    r.add_get("/_sandbox/faults", guarded(faults))
    r.add_post("/_sandbox/faults", guarded(faults))
    r.add_delete("/_sandbox/faults", guarded(faults))
    r.add_get("/_sandbox/webhooks", guarded(webhooks))
    r.add_post("/_sandbox/webhooks", guarded(webhooks))
    r.add_get("/_sandbox/webhooks/log", guarded(webhook_log))
    for name in ("release", "pause", "resume", "drain", "reset"):
        r.add_post(f"/_sandbox/webhooks/{name}", guarded(webhook_action(name)))
    r.add_get("/_sandbox/counters", guarded(counters))
    r.add_post("/_sandbox/counters/reset", guarded(counters))
    r.add_post("/_sandbox/{shop}/orders", guarded(create_order))
    r.add_get("/_sandbox/{shop}/orders/{ref}", guarded(get_order))
    r.add_delete("/_sandbox/{shop}/orders/{ref}", guarded(delete_order))
    r.add_post("/_sandbox/{shop}/orders/{ref}/paid", guarded(order_action("mark_paid")))
    r.add_post("/_sandbox/{shop}/orders/{ref}/cancel", guarded(order_action("cancel_order")))
    r.add_post("/_sandbox/{shop}/orders/{ref}/close", guarded(order_action("close_order")))
    r.add_post("/_sandbox/{shop}/orders/{ref}/fulfillments", guarded(create_fulfillment))
    r.add_post("/_sandbox/{shop}/fulfillments/{id}", guarded(update_fulfillment))
    r.add_post("/_sandbox/{shop}/fulfillments/{id}/events", guarded(fulfillment_event))
    r.add_post("/_sandbox/{shop}/products/{id}", guarded(update_product))
    r.add_post("/_sandbox/{shop}/settings", guarded(shop_settings))
    r.add_post("/_sandbox/{shop}/revoke-tokens", guarded(revoke_tokens))
