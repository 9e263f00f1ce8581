"""The query flow's HTTP side: `POST /bot/{shop}` and `POST /api/openapi/v1/orders/{order_id}` (PROTOCOL §1–§7, §10).

Per request: read the body with a size cap → verify the signature on the raw bytes (every accepted secret) → decode
JSON → the dialect codec builds a Query → `run_lookup` (cached, single-flight) → the codec renders the Result.
Failures are raised and rendered by gateway.errors.error_middleware in the caller's dialect.

The cache-hit path is kept lean: per-shop state is computed once per shop (`BotRoute`, at start-up for config shops,
on the first query for a shop connected from the browser or changed since; each shop's `ShopContext` in
`app[SHOP_CONTEXTS]`, built once the Shopify clients exist), and rendered
reply bytes are memoized per (shop, query) together with the Result object they were rendered from, so a cache hit
that returns the same Result object reuses the bytes, and a fresh Result (new object) is rendered again.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway import jsoncodec, signing
from gateway.bodies import read_body
from gateway.cache import export_shop_counts, setup_cache
from gateway.dialects import bot_codec
from gateway.dialects.base import Codec, ErrorKind, GatewayError
from gateway.dialects.openapi import (
    APPID_HEADER,
    APPSECRET_HEADER,
    OpenApiCodec,
    check_age,
    credentials_match,
)
from gateway.errors import BOT_CODECS
from gateway.flows import PUSH_STATE
from gateway.keys import SETTINGS
from gateway.lookups.context import SHOP_CONTEXTS, ShopContext, ShopContexts
from gateway.lookups.dispatch import run_lookup
from gateway.lookups.types import InvalidRequest, OpenApiOrderResult, Query, TestQuery
from gateway.ops import Metrics, get_metrics
from gateway.settings import Settings, ShopSettings
from gateway.shopify.client import SHOPIFY_CLIENTS, ShopifyUnavailable
from gateway.shops.registry import watch_shops

MEMO_MAX_ENTRIES = 4096


class RenderMemo:
    """Rendered reply bytes per query, valid while the lookup returns the very same Result object.

    The entry refers to that Result weakly: a dead reference never matches, so an identity check cannot be fooled by
    a recycled id, and the memo does not keep alive what the lookup cache has let go (a cache miss's Result that was
    not stored, or an evicted one), which the garbage collector would otherwise walk again and again. Bounded: when
    full, the oldest entry goes (insertion order), which is all a memo in front of a TTL cache needs.
    """

    __slots__ = ("_entries", "_max")

    def __init__(self, max_entries: int = MEMO_MAX_ENTRIES) -> None:
        # key -> [weak reference to the Result, its reply bytes]; a list, so a query rendered again updates its entry
        # in place instead of hashing and comparing its key a second time
        self._entries: dict[Any, list[Any]] = {}
        self._max = max_entries

    def reply(self, key: Any, result: Any, render: Callable[[Any, Any], bytes]) -> bytes:
        """The reply bytes for `result`: the memoized ones if they were rendered from this very object, else
        `render(key, result)` (then memoized)."""
        entries = self._entries
        entry = entries.get(key)
        if entry is not None:
            if entry[0]() is result:
                return entry[1]  # type: ignore[no-any-return]
            body = render(key, result)
            entry[0] = weakref.ref(result)
            entry[1] = body
            return body
        body = render(key, result)
        if len(entries) >= self._max:
            del entries[next(iter(entries))]
        entries[key] = [weakref.ref(result), body]
        return body

    def __len__(self) -> int:
        return len(self._entries)


@dataclass
class BotRoute:
    """Everything `POST /bot/{shop}` needs for one shop, computed once."""

    key: str
    shop: ShopSettings
    codec: Any  # JoinChatCodec | MeetbotCodec
    signature_header: str
    secrets: tuple[str, ...]
    max_body: int
    paused: bool = False
    memo: RenderMemo = field(default_factory=RenderMemo)
    context: ShopContext | None = None  # set when the app starts (the Shopify clients exist only then)


@dataclass
class OpenApiRoute:
    key: str
    shop: ShopSettings
    app_secret: str
    memo: RenderMemo = field(default_factory=RenderMemo)
    context: ShopContext | None = None  # set when the app starts, like BotRoute.context


OPENAPI_ROUTES = web.AppKey("openapi_routes", dict[str, OpenApiRoute])

_OPENAPI_CODEC = OpenApiCodec()
_JSON = "application/json"


def bot_route(key: str, shop: ShopSettings) -> BotRoute:
    codec = bot_codec(shop)
    return BotRoute(
        key=key,
        shop=shop,
        codec=codec,
        signature_header=codec.signature_header,
        secrets=tuple(s.get_secret_value() for s in shop.secrets),
        max_body=shop.limits.max_body_bytes,
        paused=shop.paused,
    )


class BotRoutes(dict[str, BotRoute]):
    """Shop key → its BotRoute: the config shops' built at start, a connected shop's on its first query (`build`),
    dropped when its settings change. The handler reads it with a plain `dict.get`, so the hit path is unchanged."""

    def __init__(self, shops: Mapping[str, ShopSettings], contexts: ShopContexts) -> None:
        super().__init__({key: bot_route(key, shop) for key, shop in shops.items()})
        self.shops = shops
        self.contexts = contexts
        watch_shops(shops, self._forget)

    def _forget(self, key: str) -> None:
        self.pop(key, None)

    def build(self, key: str) -> BotRoute | None:
        shop = self.shops.get(key)
        if shop is None:
            return None
        route = self[key] = bot_route(key, shop)
        route.context = self.contexts[key]
        return route


BOT_ROUTES = web.AppKey("bot_routes", BotRoutes)


class BotCodecs(dict[str, Codec]):
    """Shop key → its bot codec, for errors rendered outside the handler (gateway.errors): from its route."""

    def __init__(self, routes: BotRoutes) -> None:
        super().__init__()
        self.routes = routes

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        route = self.routes.get(key)
        if route is None and key in self.routes.shops:
            route = self.routes.build(key)
        return route.codec if route is not None else default


def decode_json(body: bytes) -> Any:
    try:
        return jsoncodec.loads(body)
    except (ValueError, RecursionError):
        raise InvalidRequest("the body is not valid JSON") from None


def bot_query_handler(routes: BotRoutes) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The `POST /bot/{shop}` handler over the app's routes (`app[BOT_ROUTES]`), bound at start-up."""

    async def bot_query(request: web.Request) -> web.Response:
        route = routes.get(request.match_info["shop"])
        if route is None:
            route = routes.build(request.match_info["shop"])  # a shop connected since start-up, or changed
            if route is None:
                raise GatewayError(ErrorKind.UNKNOWN_SHOP)
        if route.paused:
            raise GatewayError(ErrorKind.UNAVAILABLE, "this shop is paused")
        body = await read_body(request, route.max_body)
        if not signing.verify(request.headers.get(route.signature_header), body, route.secrets):
            raise GatewayError(ErrorKind.BAD_SIGNATURE)
        query: Query = route.codec.parse(decode_json(body))
        if isinstance(query, TestQuery):
            return web.Response(body=route.codec.render(query, None), content_type=_JSON)
        context = route.context
        assert context is not None  # set by ready_contexts before the app serves
        result = await run_lookup(context, query)
        return web.Response(body=route.memo.reply(query, result, route.codec.render), content_type=_JSON)

    return bot_query


async def openapi_order(request: web.Request) -> web.Response:
    app_id = request.headers.get(APPID_HEADER, "").strip()
    route = request.app[OPENAPI_ROUTES].get(app_id)
    # Compare even for an unknown Appid, so its absence is not measurably faster.
    expected = route.app_secret if route is not None else "-"
    if not credentials_match(request.headers.get(APPSECRET_HEADER), expected) or route is None:
        raise GatewayError(ErrorKind.BAD_SIGNATURE, "invalid Appid or AppSecret")
    cfg = route.shop.openapi
    assert cfg is not None
    body = await read_body(request, route.shop.limits.max_body_bytes)
    try:
        data = decode_json(body)
    except InvalidRequest:
        raise GatewayError(ErrorKind.INVALID, "the body is not valid JSON") from None
    now = time.time()
    query = _OPENAPI_CODEC.parse(data, request.match_info["order_id"], cfg, now)
    assert route.context is not None  # set by ready_contexts before the app serves
    result: OpenApiOrderResult = await run_lookup(route.context, query)
    check_age(result, cfg, now)
    return web.Response(body=route.memo.reply(query, result, _OPENAPI_CODEC.render), content_type=_JSON)


def _describe(metrics: Metrics) -> None:
    metrics.describe("gateway_unhandled_errors_total", "Requests that ended in an unexpected exception (HTTP 500).")


def setup_query(app: web.Application) -> None:
    settings: Settings = app[SETTINGS]
    contexts = ShopContexts()
    app[SHOP_CONTEXTS] = contexts  # the mapping exists from the start; it serves once the app has started
    routes = BotRoutes(settings.shops, contexts)
    app[BOT_ROUTES] = routes
    app[BOT_CODECS] = BotCodecs(routes)
    app[OPENAPI_ROUTES] = {
        shop.openapi.app_id: OpenApiRoute(key, shop, shop.openapi.app_secret.get_secret_value())
        for key, shop in settings.shops.items()
        if shop.openapi is not None
    }
    metrics = get_metrics(app)
    _describe(metrics)
    # an outage (or throttling past the deadline) may be answered from an expired lookup
    cache = setup_cache(app, serve_stale_on=(ShopifyUnavailable,))

    async def ready_contexts(app: web.Application) -> AsyncIterator[None]:
        # After setup_shopify's cleanup context (registered before this one), which opens the clients.
        clients = app[SHOPIFY_CLIENTS]
        contexts.open(settings.shops, clients, cache, app.get(PUSH_STATE))
        contexts.on_new = lambda context: export_shop_counts(metrics, cache, context.key)
        for bot in list(routes.values()):
            bot.context = contexts[bot.key]
        for open_api in app[OPENAPI_ROUTES].values():
            open_api.context = contexts[open_api.key]
        yield
        contexts.clear()

    app.cleanup_ctx.append(ready_contexts)
    app.router.add_post("/bot/{shop}", bot_query_handler(routes))
    app.router.add_post("/api/openapi/v1/orders/{order_id}", openapi_order)
