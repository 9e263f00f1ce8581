"""The local Shopify store as an aiohttp server: Admin GraphQL, the client credentials grant, and an admin surface.

Routes:
- `POST /admin/api/{version}/graphql.json` — Admin GraphQL (shop picked by Host header, else by token, else the only
  shop); `X-Shopify-Access-Token` must be the shop's static token or a live token from the grant, else 401.
- `POST /admin/oauth/access_token` — client credentials grant (JSON or form body) → `{access_token, scope, expires_in}`;
  the app's grants (authorization code, refresh, token exchange) are localstore.oauth's.
- `GET/POST /admin/oauth/authorize`, `GET /admin/oauth/install` — the install flow's pages (localstore.oauth).
- `/_sandbox/...` — the admin surface for tests and humans (see localstore/README.md).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from localstore.admin import add_admin_routes
from localstore.cost import Bucket
from localstore.data import SandboxShop
from localstore.executor import GraphQLRunner
from localstore.faults import Faults
from localstore.oauth import OAuthProvider, SandboxApp
from localstore.resolvers import RequestContext
from localstore.webhooks import WebhookDispatcher

if TYPE_CHECKING:
    from gateway.settings import Settings

QUERY_LOG_SIZE = 10_000
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
DEFAULT_API_VERSION = "2026-10"


class SandboxServer:
    """Serves one or more `SandboxShop`s. `await start()`, then point the gateway at `base_url`."""

    def __init__(self, shops: list[SandboxShop], host: str = "127.0.0.1", port: int = 0,
                 api_version: str = DEFAULT_API_VERSION, webhook_retry_schedule: list[float] | None = None,
                 response_cache_size: int = 0, clock: Callable[[], float] = time.time) -> None:
        self.shops: dict[str, SandboxShop] = {shop.domain: shop for shop in shops}
        self.host = host
        self.port = port
        self.api_version = api_version
        self.faults = Faults()
        #: Wall time of the install flow and its tokens (90-day refresh tokens: tests move it, never wait).
        self.clock = clock
        self.webhooks = WebhookDispatcher(api_version, webhook_retry_schedule, clock=clock)
        self.oauth = OAuthProvider(self, clock)
        #: How a shop created by an install is seeded (`create_shop`): the next seed, these many orders/products.
        self.new_shop_seed = 1000
        self.new_shop_orders = 60
        self.new_shop_products = 30
        self.new_shop_plan = "standard"
        #: `response_cache_size` > 0 answers repeated queries from memory until the shop changes (benchmarks)
        self.runner_graphql = GraphQLRunner(response_cache_size=response_cache_size)
        self._graphql_requests: defaultdict[str, int] = defaultdict(int)
        #: The last QUERY_LOG_SIZE GraphQL queries that reached the bucket (`GET /_sandbox/queries`)
        self.query_log: deque[dict[str, Any]] = deque(maxlen=QUERY_LOG_SIZE)
        self._query_seq = 0
        self._issued_tokens: dict[str, tuple[str, float]] = {}  # token → (shop domain, expiry monotonic)
        self._runner: web.AppRunner | None = None
        self._hanging: set[asyncio.Task[Any]] = set()
        for shop in shops:
            shop.emit = self.webhooks.emit

    # ------------------------------------------------------------------------------------------ lifecycle

    @classmethod
    def for_settings(cls, settings: Settings) -> SandboxServer:
        """The demo store of `gateway serve`: one seeded shop per configured shop whose admin_api_base is this store."""
        from gateway.settings import ClientCredentialsAuth, TokenAuth

        box = settings.sandbox
        base = f"http://{box.host}:{box.port}"
        shops = []
        for index, shop_settings in enumerate(s for s in settings.shops.values() if s.admin_api_base == base):
            auth = shop_settings.auth
            if isinstance(auth, ClientCredentialsAuth):
                token, client_id, secret = None, auth.client_id, auth.client_secret.get_secret_value()
            elif not isinstance(auth, TokenAuth):
                continue
            else:
                token, client_id, secret = auth.access_token.get_secret_value(), None, None
            shop = SandboxShop.seeded(
                domain=shop_settings.domain, seed=box.seed + index, orders=box.orders, products=box.products,
                access_token=token, client_id=client_id,
                client_secret=shop_settings.webhook_hmac_secret or secret,
            )
            shop.plan = box.plan
            shops.append(shop)
        app = settings.app
        serves_app = app is not None and app.admin_api_base == base
        if not shops and not serves_app:
            raise ValueError(f"sandbox is enabled but no shop has admin_api_base: {base}")
        server = cls(shops, host=box.host, port=box.port, api_version=DEFAULT_API_VERSION)
        server.new_shop_seed, server.new_shop_orders, server.new_shop_products = box.seed + 100, box.orders, box.products
        server.new_shop_plan = box.plan
        if app is not None and serves_app:
            public = settings.server.public_url.rstrip("/")
            server.oauth.add_app(SandboxApp(
                app.client_id, app.client_secret.get_secret_value(), redirect_urls=(public + "/shopify/callback",),
                app_url=public + "/shopify/install",
            ))  # fmt: skip
        return server

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post("/admin/api/{version}/graphql.json", self.handle_graphql)
        app.router.add_post("/admin/oauth/access_token", self.handle_access_token)
        app.router.add_routes(self.oauth.routes())
        add_admin_routes(app, self)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = getattr(site, "_server", None)
        if self.port == 0 and server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        await self.webhooks.start()

    async def stop(self) -> None:
        for task in list(self._hanging):
            task.cancel()
        await self.webhooks.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SandboxServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def graphql_url(self, version: str | None = None) -> str:
        return f"{self.base_url}/admin/api/{version or self.api_version}/graphql.json"

    # ------------------------------------------------------------------------------------------ counters

    def graphql_requests(self, domain: str) -> int:
        """GraphQL POSTs received for that shop since the last reset (including refused and faulted ones)."""
        return self._graphql_requests[domain.lower()]

    def last_cost(self, domain: str) -> dict[str, Any]:
        """The requested and actual cost of the last query the shop's bucket saw (the query log; {} before any)."""
        domain = domain.lower()
        for entry in reversed(self.query_log):
            if entry["shop"] == domain:
                return {"requestedQueryCost": entry["requested"], "actualQueryCost": entry["actual"]}
        return {}

    def reset_counters(self) -> None:
        self._graphql_requests.clear()

    def bucket(self, domain: str) -> Bucket:
        return self.shops[domain.lower()].bucket

    # ------------------------------------------------------------------------------------------ auth

    def _shop_for(self, request: web.Request, token: str | None) -> SandboxShop | None:
        host = (request.headers.get("Host") or "").split(":")[0].lower()
        if host in self.shops:
            return self.shops[host]
        if token:
            for shop in self.shops.values():
                if token == shop.access_token:
                    return shop
            issued = self._issued_tokens.get(token)
            if issued is not None and issued[0] in self.shops:
                return self.shops[issued[0]]
            installed = self.oauth.shop_of(token)
            if installed is not None and installed in self.shops:
                return self.shops[installed]
        if len(self.shops) == 1:
            return next(iter(self.shops.values()))
        return None

    def token_valid(self, shop: SandboxShop, token: str | None) -> bool:
        if not token:
            return False
        if shop.access_token and secrets.compare_digest(token, shop.access_token):
            return True
        issued = self._issued_tokens.get(token)
        if issued is not None:
            return issued[0] == shop.domain and issued[1] > time.monotonic()
        return self.oauth.access_valid(shop.domain, token)

    def issue_token(self, shop: SandboxShop) -> dict[str, Any]:
        token = "shpat_" + secrets.token_hex(16)
        self._issued_tokens[token] = (shop.domain, time.monotonic() + shop.token_ttl)
        return {"access_token": token, "scope": ",".join(shop.access_scopes), "expires_in": int(shop.token_ttl)}

    def revoke_tokens(self, domain: str | None = None) -> None:
        """Expire every issued access token (of one shop, or all): the next request with one gets 401. Refresh
        tokens stay: the app can get a new access token with one."""
        for token, (owner, _) in list(self._issued_tokens.items()):
            if domain is None or owner == domain:
                del self._issued_tokens[token]
        self.oauth.revoke_access(domain)

    def create_shop(self, domain: str, app: SandboxApp) -> SandboxShop:
        """A new seeded shop, as when a merchant installs the app on a store this server does not have yet."""
        shop = SandboxShop.seeded(
            domain=domain, seed=self.new_shop_seed + len(self.shops), orders=self.new_shop_orders,
            products=self.new_shop_products, access_token=None, client_id=app.client_id, client_secret=app.client_secret,
        )  # fmt: skip
        shop.plan = self.new_shop_plan
        shop.emit = self.webhooks.emit
        self.shops[shop.domain] = shop
        return shop

    async def handle_access_token(self, request: web.Request) -> web.Response:
        if request.content_type == "application/json":
            try:
                form: dict[str, Any] = await request.json()
            except json.JSONDecodeError:
                form = {}
        else:
            form = dict(await request.post())
            form.update({k: v for k, v in request.query.items() if k not in form})
        if not isinstance(form, dict):
            form = {}
        grant = form.get("grant_type")
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if grant != "client_credentials":
            return self.oauth.token_request(form)  # the app's grants: code, refresh, token exchange
        host = (request.headers.get("Host") or "").split(":")[0].lower()
        candidates = [self.shops[host]] if host in self.shops else list(self.shops.values())
        for shop in candidates:
            if (shop.client_id and shop.client_secret and client_id == shop.client_id
                    and isinstance(client_secret, str) and secrets.compare_digest(client_secret, shop.client_secret)):
                return web.json_response(self.issue_token(shop))
        return web.json_response({"error": "invalid_client", "error_description": "Client authentication failed"}, status=401)

    # ------------------------------------------------------------------------------------------ GraphQL

    async def handle_graphql(self, request: web.Request) -> web.StreamResponse:
        token = request.headers.get("X-Shopify-Access-Token")
        shop = self._shop_for(request, token)
        if shop is None:
            return web.json_response({"errors": "Not Found"}, status=404)
        self._graphql_requests[shop.domain] += 1

        fault = self.faults.next_fault()
        loop = asyncio.get_running_loop()
        answer_at = loop.time() + self.faults.delay()  # the injected latency: the answer leaves no earlier
        if fault != "ok" and fault != "throttle":
            await _sleep_until(answer_at)
        if fault == "hang":
            await self._hang()
        if fault == "reset":
            if request.transport is not None:
                request.transport.abort()
            # what aiohttp sees when a peer vanishes mid-request: handled quietly, no error log
            raise asyncio.CancelledError("sandbox fault: connection reset")
        if fault == "error":
            status = self.faults.error_status
            return web.json_response({"errors": "Service Unavailable" if status == 503 else "Internal Server Error"},
                                     status=status)

        if not self.token_valid(shop, token):
            await _sleep_until(answer_at)
            return web.json_response({"errors": INVALID_TOKEN}, status=401)

        try:
            raw = await request.read()
        except ConnectionResetError:  # the client gave up mid-upload (its deadline): nobody is left to answer
            return web.Response(status=499)
        try:
            if request.content_type == "application/graphql":
                payload: Any = {"query": raw.decode()}
            else:
                payload = json.loads(raw or b"{}")
        except (UnicodeDecodeError, json.JSONDecodeError):
            await _sleep_until(answer_at)
            return web.json_response({"errors": "Bad Request: body is not valid JSON"}, status=400)
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            await _sleep_until(answer_at)
            return web.json_response({"errors": {"query": "Required parameter missing or invalid"}}, status=400)
        variables = payload.get("variables") or {}
        if not isinstance(variables, dict):
            await _sleep_until(answer_at)
            return web.json_response({"errors": [{"message": "Variables must be an object",
                                                  "extensions": {"code": "BAD_REQUEST"}}]})
        context = RequestContext(shop=shop, api_version=request.match_info["version"])
        began = time.monotonic()
        # Shopify's bucket: the requested cost is taken now and held while the query runs (here: through the
        # injected latency); finish() refunds requested − actual and reports the balance after the refund.
        started = self.runner_graphql.start(payload["query"], variables, payload.get("operationName"), context,
                                            self.bucket(shop.domain), shop.max_query_cost, throttle=fault == "throttle")
        # Shopify names the version it actually served (an unsupported one falls back); this store serves only its own.
        served = {"X-Shopify-API-Version": self.api_version}
        if isinstance(started, dict):
            self._log_query(shop, variables, started, began)
            await _sleep_until(answer_at)
            return web.json_response(started, dumps=_dumps, headers=served)
        try:
            await _sleep_until(answer_at)
        finally:
            body = self.runner_graphql.finish(started)  # a client that left still had its query run
            self._log_query(shop, variables, body, began)
        return web.json_response(body, dumps=_dumps, headers=served)

    def _log_query(self, shop: SandboxShop, variables: dict[str, Any], body: dict[str, Any], began: float) -> None:
        """One line of the query log: what the bucket charged (requested, at `started`) and kept (actual, at `ended`;
        None when nothing ran: THROTTLED, invalid, over the max cost). Times are `time.monotonic()` of this host."""
        cost = (body.get("extensions") or {}).get("cost") or {}
        if "requestedQueryCost" not in cost:
            return  # refused before pricing (a parse or validation error): the bucket never saw it
        self._query_seq += 1
        errors = body.get("errors") or []
        self.query_log.append({
            "seq": self._query_seq, "shop": shop.domain, "search": variables.get("query"),
            "requested": cost["requestedQueryCost"], "actual": cost.get("actualQueryCost"),
            "throttled": any((e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors
                             if isinstance(e, dict)),
            "available": (cost.get("throttleStatus") or {}).get("currentlyAvailable"),
            "started": began, "ended": time.monotonic(),
        })

    async def _hang(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._hanging.add(task)
        try:
            await asyncio.sleep(self.faults.hang_seconds)
        finally:
            if task is not None:
                self._hanging.discard(task)

    # ------------------------------------------------------------------------------------------ helpers for tests

    def shop(self, domain: str | None = None) -> SandboxShop:
        if domain is None:
            return next(iter(self.shops.values()))
        return self.shops[domain.lower()]


async def _sleep_until(when: float) -> None:
    delay = when - asyncio.get_running_loop().time()
    if delay > 0:
        await asyncio.sleep(delay)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)
