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
| POST /_sandbox/{shop}/settings | plan (standard, advanced, plus, commerce_components), token_ttl, bucket_size, restore_rate, max_query_cost, access_scopes, primary_locale, locales |
| POST /_sandbox/{shop}/revoke-tokens | expire every access token issued by a grant (client credentials, the app's) |
| POST /_sandbox/{shop}/apps/{client_id}/uninstall | the merchant removes the app: app/uninstalled, then its tokens and subscriptions go |
| GET/POST/DELETE /_sandbox/faults | read / set (partial) / clear fault injection |
| GET/POST /_sandbox/webhooks | read / set delivery knobs (paused, release_order, duplicates, delay, drop_next, retry_schedule, timeout) |
| POST /_sandbox/webhooks/release · /pause · /resume · /drain · /reset | control held deliveries |
| GET  /_sandbox/webhooks/log | every delivery attempt with its status |
| GET  /_sandbox/counters · POST /_sandbox/counters/reset | GraphQL requests per shop |
| GET  /_sandbox/queries?after=SEQ | the recent GraphQL queries that reached a bucket (read-only): seq, shop, search (the `query` variable), requested, actual (null when nothing ran), throttled, available (after the refund), started, ended (the store host's monotonic seconds) |
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict
from typing import Any, Protocol

from aiohttp import web

from localstore.data import SandboxShop
from localstore.faults import Faults
from localstore.oauth import OAuthProvider
from localstore.records import public
from localstore.webhooks import WebhookDispatcher


class AdminTarget(Protocol):
    """What the admin surface drives (localstore.server.SandboxServer)."""

    shops: dict[str, SandboxShop]
    faults: Faults
    webhooks: WebhookDispatcher
    oauth: OAuthProvider

    @property
    def base_url(self) -> str: ...

    def graphql_requests(self, domain: str) -> int: ...

    def reset_counters(self) -> None: ...

    def revoke_tokens(self, domain: str | None = None) -> None: ...

    @property
    def query_log(self) -> Iterable[dict[str, Any]]: ...

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


def add_admin_routes(app: web.Application, server: AdminTarget) -> None:
    """Mount the admin surface of `server` on `app` (every handler behind `_guarded`)."""
    app.router.add_routes(SandboxAdmin(server).routes())


def _guarded(handler: Handler) -> Handler:
    """A store method's refusal as a JSON answer: unknown record → 404, bad argument → 400."""

    async def run(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except KeyError as exc:
            return _json({"error": str(exc.args[0] if exc.args else exc)}, status=404)
        except (TypeError, ValueError) as exc:
            return _json({"error": str(exc)}, status=400)

    return run


#: What `POST /_sandbox/{shop}/settings` may set besides `plan`.
SHOP_SETTINGS = ("token_ttl", "bucket_size", "restore_rate", "max_query_cost", "access_scopes", "primary_locale",
                 "locales")


class SandboxAdmin:
    """The admin surface's handlers over one server: its shops, faults, webhook dispatcher and counters."""

    def __init__(self, server: AdminTarget) -> None:
        self.server = server

    def routes(self) -> list[web.RouteDef]:
        server_wide = [
            web.get("/_sandbox/shops", self.shops),
            web.get("/_sandbox/faults", self.faults),
            web.post("/_sandbox/faults", self.faults),
            web.delete("/_sandbox/faults", self.faults),
            web.get("/_sandbox/webhooks", self.webhooks),
            web.post("/_sandbox/webhooks", self.webhooks),
            web.get("/_sandbox/webhooks/log", self.webhook_log),
            *(web.post(f"/_sandbox/webhooks/{name}", self.webhook_action(name))
              for name in ("release", "pause", "resume", "drain", "reset")),
            web.get("/_sandbox/counters", self.counters),
            web.post("/_sandbox/counters/reset", self.counters),
            web.get("/_sandbox/queries", self.queries),
        ]
        per_shop = [
            web.post("/_sandbox/{shop}/orders", self.create_order),
            web.get("/_sandbox/{shop}/orders/{ref}", self.get_order),
            web.delete("/_sandbox/{shop}/orders/{ref}", self.delete_order),
            web.post("/_sandbox/{shop}/orders/{ref}/paid", self.order_action("mark_paid")),
            web.post("/_sandbox/{shop}/orders/{ref}/cancel", self.order_action("cancel_order")),
            web.post("/_sandbox/{shop}/orders/{ref}/close", self.order_action("close_order")),
            web.post("/_sandbox/{shop}/orders/{ref}/fulfillments", self.create_fulfillment),
            web.post("/_sandbox/{shop}/fulfillments/{id}", self.update_fulfillment),
            web.post("/_sandbox/{shop}/fulfillments/{id}/events", self.fulfillment_event),
            web.post("/_sandbox/{shop}/products/{id}", self.update_product),
            web.post("/_sandbox/{shop}/settings", self.shop_settings),
            web.post("/_sandbox/{shop}/revoke-tokens", self.revoke_tokens),
            web.post("/_sandbox/{shop}/apps/{client_id}/uninstall", self.uninstall_app),
        ]
        return [web.route(r.method, r.path, _guarded(r.handler), **r.kwargs) for r in (*server_wide, *per_shop)]

    # ------------------------------------------------------------------------------------------ the server

    async def shops(self, request: web.Request) -> web.Response:
        server = self.server
        return _json([{"domain": s.domain, "orders": len(s.orders), "products": len(s.products),
                       "customers": len(s.customers), "webhook_subscriptions": len(s.webhook_subscriptions),
                       "admin_api_base": server.base_url} for s in server.shops.values()])

    async def faults(self, request: web.Request) -> web.Response:
        faults = self.server.faults
        if request.method == "POST":
            faults.set(**await _body(request))
        elif request.method == "DELETE":
            faults.clear()
        return _json(faults.as_dict())

    async def webhooks(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            self.server.webhooks.configure(**await _body(request))
        return _json(self.server.webhooks.settings())

    def webhook_action(self, name: str) -> Handler:
        async def run(request: web.Request) -> web.Response:
            dispatcher = self.server.webhooks
            if name == "drain":
                await dispatcher.drain()
            else:
                getattr(dispatcher, name)()
            return _json(dispatcher.settings())

        return run

    async def webhook_log(self, request: web.Request) -> web.Response:
        return _json([asdict(a) for a in self.server.webhooks.log])

    async def counters(self, request: web.Request) -> web.Response:
        server = self.server
        if request.method == "POST":
            server.reset_counters()
        return _json({d: server.graphql_requests(d) for d in server.shops})

    async def queries(self, request: web.Request) -> web.Response:
        after = int(request.query.get("after", "0"))
        return _json([q for q in self.server.query_log if q["seq"] > after])

    # ------------------------------------------------------------------------------------------ one shop

    def _shop(self, request: web.Request) -> SandboxShop:
        domain = request.match_info["shop"].lower()
        if domain not in self.server.shops:
            raise web.HTTPNotFound(text=json.dumps({"error": f"no shop {domain}"}), content_type="application/json")
        return self.server.shops[domain]

    async def create_order(self, request: web.Request) -> web.Response:
        order = await self._shop(request).create_order(**await _body(request))
        return _json(order, status=201)

    async def get_order(self, request: web.Request) -> web.Response:
        order = self._shop(request).order(request.match_info["ref"])
        if order is None:
            raise KeyError(f"no order {request.match_info['ref']}")
        return _json(order)

    def order_action(self, action: str) -> Handler:
        async def run(request: web.Request) -> web.Response:
            method = getattr(self._shop(request), action)
            return _json(await method(request.match_info["ref"], **await _body(request)))

        return run

    async def delete_order(self, request: web.Request) -> web.Response:
        return _json(self._shop(request).delete_order(request.match_info["ref"]))

    async def create_fulfillment(self, request: web.Request) -> web.Response:
        found = await self._shop(request).create_fulfillment(request.match_info["ref"], **await _body(request))
        return _json(found, status=201)

    async def update_fulfillment(self, request: web.Request) -> web.Response:
        return _json(await self._shop(request).update_fulfillment(request.match_info["id"], **await _body(request)))

    async def fulfillment_event(self, request: web.Request) -> web.Response:
        event = await self._shop(request).add_fulfillment_event(request.match_info["id"], **await _body(request))
        return _json(event, status=201)

    async def update_product(self, request: web.Request) -> web.Response:
        return _json(await self._shop(request).update_product(request.match_info["id"], **await _body(request)))

    async def shop_settings(self, request: web.Request) -> web.Response:
        shop = self._shop(request)
        body = await _body(request)
        if "plan" in body:  # first, so bucket_size / restore_rate in the same body adjust the plan's figures
            shop.plan = body.pop("plan")
        for key, value in body.items():
            if key not in SHOP_SETTINGS:
                raise ValueError(f"unknown shop setting {key!r}")
            setattr(shop, key, list(value) if key in ("access_scopes", "locales") else value)
        shop.touch()
        return _json({"token_ttl": shop.token_ttl, "plan": shop.plan, "bucket_size": shop.bucket_size,
                      "restore_rate": shop.restore_rate, "currently_available": shop.bucket.status()["currentlyAvailable"],
                      "max_query_cost": shop.max_query_cost, "access_scopes": shop.access_scopes,
                      "primary_locale": shop.primary_locale, "locales": shop.locales})

    async def revoke_tokens(self, request: web.Request) -> web.Response:
        self.server.revoke_tokens(self._shop(request).domain)
        return _json({"revoked": True})

    async def uninstall_app(self, request: web.Request) -> web.Response:
        self.server.oauth.uninstall(self._shop(request).domain, request.match_info["client_id"])
        return _json({"uninstalled": True})
