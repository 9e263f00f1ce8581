"""Async Shopify Admin GraphQL client: one keep-alive session, deadlines, cost-aware throttling, token refresh.

One `aiohttp.ClientSession` for all Shopify traffic, opened in the app's cleanup_ctx (`setup_shopify`); one
`ShopifyAdminClient` per configured shop in `app[SHOPIFY_CLIENTS][shop_key]`. Outside an app (CLI, benchmarks):

    async with open_clients(settings) as clients:
        data = await clients["demo"].execute(DOCUMENT, {"first": 3})

`execute()` returns the response's `data` and raises only `ShopifyError` subclasses:
- timeouts, connection errors, 5xx, a 200 whose body is not JSON, 402/423 (shop frozen/locked) → `ShopifyUnavailable`,
  after one quick retry when the deadline allows (not for 402/423; a mutation is retried only when the request
  cannot have reached Shopify);
- `THROTTLED` (HTTP 200 or 429) → wait `(requestedQueryCost - currentlyAvailable) / restoreRate` and retry while the
  deadline allows, else `ShopifyThrottled`;
- 401/403 → one token refresh (client credentials) and retry, else `ShopifyAuthError`;
- other GraphQL `errors` → `ShopifyQueryError` (with `errors` and any partial `data`).
  Decided: partial data whose errors are all field-level `ACCESS_DENIED` (a scope or protected-customer-data
  approval missing for one field) is returned, with those fields null, a warning naming the paths and the
  `shopify_partial_data_total` counter; the lookups already treat those fields as optional, and answering without
  (say) the customer's name beats failing every lookup of a shop whose app lacks one scope.

Query points: every request is booked with the shop's `QueryBudget` (gateway.shopify.budget) before it is sent and
settled with its answer; the budget decides who waits for points and who is refused. Nothing here knows about points.

The ShopifyAPI package (`import shopify`) is used only for API version handling (`shopify.ApiVersion`: validation and
the `/admin/api/{version}` path). Its GraphQL executor is synchronous urllib without timeouts, so no traffic goes
through it.

Tokens, secrets and query variables (emails, phones) are never logged.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import shopify
from aiohttp import web
from multidict import CIMultiDict

from gateway import jsoncodec
from gateway.keys import SETTINGS
from gateway.ops import Metrics, get_metrics
from gateway.settings import Settings, ShopSettings
from gateway.shopify.auth import TokenProvider, token_provider_for
from gateway.shopify.bucket import LocalBucket, SharedBucket
from gateway.shopify.bucket_redis import RedisBuckets
from gateway.shopify.budget import MIN_START_SECONDS, CostKey, Outcome, QueryBudget
from gateway.shopify.errors import (
    ShopifyAuthError,
    ShopifyError,
    ShopifyQueryError,
    ShopifyThrottled,
    ShopifyUnavailable,
)
from gateway.shopify.queries import load_query
from gateway.shops.registry import watch_shops

__all__ = [
    "SHOPIFY_CLIENTS",
    "ShopifyAdminClient",
    "ShopifyAuthError",
    "ShopifyClients",
    "ShopifyError",
    "ShopifyQueryError",
    "ShopifyThrottled",
    "ShopifyUnavailable",
    "new_session",
    "open_clients",
    "setup_shopify",
]

log = logging.getLogger(__name__)

USER_AGENT = "shopify-bot-gateway/0.1 (aiohttp; +chatbot adapter gateway)"
#: Pause before the single retry after a transport failure or 5xx.
RETRY_PAUSE_SECONDS = 0.05
#: When a throttled answer carries no throttleStatus and no Retry-After.
DEFAULT_THROTTLE_DELAY = 1.0
@dataclass(slots=True, eq=False)
class _Request:
    """One `execute` call: what it sends, and the one quick retry and one token refresh it may spend."""

    key: CostKey
    payload: bytes
    is_mutation: bool
    deadline: float
    background: bool
    retried: bool = False
    refreshed: bool = False
    #: the budget's advice after the last answer: seconds to pause (None: no balance in a THROTTLED answer)
    pause: float | None = 0.0


@dataclass(slots=True, eq=False)
class _Answer:
    """What one request got back: the HTTP status, the JSON body (None when not JSON) and what it says."""

    status: int
    body: Any
    cost: Mapping[str, Any] | None
    errors: Any
    throttled: bool
    retry_after: str | None  # read only when throttled
    token: str  # the token it was sent with


class _TransportError(ShopifyUnavailable):
    """Timeout or connection failure; `may_have_arrived` False when the request surely never reached Shopify."""

    def __init__(self, message: str, *, may_have_arrived: bool) -> None:
        super().__init__(message)
        self.may_have_arrived = may_have_arrived


class ShopifyAdminClient:
    def __init__(
        self,
        shop: ShopSettings,
        session: aiohttp.ClientSession,
        *,
        shop_key: str | None = None,
        metrics: Metrics | None = None,
        token_provider: TokenProvider | None = None,
        budget: QueryBudget | None = None,
    ) -> None:
        self.shop = shop
        self.shop_key = shop_key or shop.domain
        self.session = session
        # shopify.ApiVersion validates the configured version and knows the versioned path
        self.api_version = shopify.ApiVersion.coerce_to_version(shop.api_version)
        self.url = self.api_version.api_path(shop.admin_base_url) + "/graphql.json"
        #: Counters land here; a private Metrics when none is given, so benchmarks can always read them.
        self.metrics = metrics if metrics is not None else Metrics()
        # the counters every request adds to, kept as cells: no label key built per request
        self._requests_sent = self.metrics.counter("shopify_requests_total", shop=self.shop_key)
        self.tokens = token_provider or token_provider_for(shop, session, user_agent=USER_AGENT)
        #: Who may spend the shop's query points when (this process's bucket copy unless one is shared).
        self.budget = budget if budget is not None else QueryBudget(LocalBucket(), shop_key=self.shop_key, metrics=self.metrics)
        self.budget.probe = self._look_at_bucket
        # the request headers, built once per token
        self._headers_token: str | None = None
        self._headers: CIMultiDict[str] = CIMultiDict()
        #: The `X-Shopify-API-Version` of the last answer: the version Shopify served (the operator console shows it).
        self.served_api_version: str | None = None

    def __repr__(self) -> str:
        return f"ShopifyAdminClient({self.shop_key!r}, {self.url!r})"

    # --- the one public call ---------------------------------------------------------------------------------------

    async def execute(
        self,
        document: str,
        variables: dict[str, Any] | None = None,
        *,
        deadline: float | None = None,
        background: bool = False,
    ) -> dict[str, Any]:
        """Run one GraphQL document; return its `data`. `deadline` is an absolute `loop.time()`;
        default now + the shop's `deadline_seconds`. `background` reads (reconciliation, push re-reads) wait behind
        every lookup for the shop's query points. Raises a ShopifyError subclass, never anything else.

        Each round sends the request once (`_send`); an answer that calls for another round (`_retries_after`: a
        quick retry, a refreshed token, a throttle wait) loops, any other is read into `data` (`_data_of`)."""
        if deadline is None:
            deadline = asyncio.get_running_loop().time() + self.shop.deadline_seconds
        payload = _request_body(document, variables)
        request = _Request(_cost_key(document, variables), payload, _is_mutation(document), deadline, background)
        while True:
            answer = await self._send(request)
            if answer is None:
                continue
            # a plain 200 with a JSON body (nearly every answer) calls for no other round
            usual = answer.status == 200 and not answer.throttled and isinstance(answer.body, dict)
            if not usual and await self._retries_after(request, answer):
                continue
            return self._data_of(answer)

    async def _send(self, request: _Request) -> _Answer | None:
        """One request within a booking of the shop's query points; None when a transport failure was retried."""
        try:
            booking = await self.budget.acquire(request.key, request.deadline, background=request.background)
        except ShopifyThrottled:
            self._count_error("throttled")
            raise
        outcome: Outcome = "not_run"
        answer: _Answer | None = None
        failure: ShopifyUnavailable | None = None
        try:
            answer = await self._post(request)
            # an HTTP answer without a cost (401, 5xx) ran no query
            outcome = "throttled" if answer.throttled else "answered" if answer.cost is not None else "not_run"
        except _TransportError as exc:
            outcome = "unknown" if exc.may_have_arrived else "not_run"
            failure = exc
        finally:
            # (also when cancelled: the hold goes back)
            request.pause = await self.budget.settle(booking, answer.cost if answer else None, outcome)
        if failure is not None:
            await self._retry_once_or_raise(request, failure)
            return None
        return answer

    async def _post(self, request: _Request) -> _Answer:
        """POST the request once and read the answer; raises _TransportError when none came."""
        loop = asyncio.get_running_loop()
        token = await self._token(request.deadline)
        remaining = request.deadline - loop.time()
        if remaining <= 0:
            raise _TransportError("deadline passed before the request", may_have_arrived=False)
        if token != self._headers_token:
            self._headers = CIMultiDict({"X-Shopify-Access-Token": token, **_HEADERS})
            self._headers_token = token
        self._requests_sent.add()
        try:
            resp = await self.session.post(
                self.url, data=request.payload, headers=self._headers, timeout=aiohttp.ClientTimeout(total=remaining)
            )
            try:
                raw = await resp.read()
            finally:
                resp.release()
        except aiohttp.ClientConnectorError as exc:
            raise _TransportError(f"cannot connect to Shopify: {type(exc).__name__}", may_have_arrived=False) from None
        except TimeoutError:
            raise _TransportError("Shopify did not answer before the deadline", may_have_arrived=True) from None
        except aiohttp.ClientError as exc:
            raise _TransportError(f"Shopify connection failed: {type(exc).__name__}", may_have_arrived=True) from None
        status = resp.status
        self.served_api_version = resp.headers.get("X-Shopify-API-Version") or self.served_api_version
        body = _json_or_none(raw)
        cost = errors = None
        if isinstance(body, dict):
            extensions = body.get("extensions")
            cost = extensions.get("cost") if isinstance(extensions, dict) else None
            if not isinstance(cost, dict):
                cost = None
            errors = body.get("errors")
        throttled = status == 429 or (errors is not None and _is_throttled(errors))
        # only a throttled answer's wait reads it
        retry_after = resp.headers.get("Retry-After") if throttled else None
        return _Answer(status, body, cost, errors, throttled, retry_after, token)

    async def _look_at_bucket(self, deadline: float) -> Mapping[str, Any] | None:
        """The budget's probe (one point, outside the budget): the `extensions.cost` of a trivial query, or None
        when Shopify did not answer with one before `deadline`."""
        request = _Request(_cost_key(_PROBE, None), _request_body(_PROBE, None), False, deadline, background=True)
        try:
            answer = await self._post(request)
        except ShopifyUnavailable:
            return None
        return answer.cost

    async def _retries_after(self, request: _Request, answer: _Answer) -> bool:
        """True when `answer` calls for another round (after any wait it needs); raises when it ends the execute
        with a failure; False when it is to be read (`_data_of`)."""
        status = answer.status
        if status in (401, 403):
            if not request.refreshed:
                request.refreshed = True
                fresh = await self._refreshed_token(answer.token, request.deadline)
                if fresh != answer.token:
                    self.metrics.inc("shopify_token_refresh_total", shop=self.shop_key)
                    return True
            self._count_error("auth")
            raise ShopifyAuthError(f"Shopify answered HTTP {status} for shop {self.shop_key}")
        if status >= 500 or status in (402, 423):
            # a 5xx mutation may have been applied; a frozen or locked shop stays so for longer than a retry
            retriable = status >= 500 and not request.is_mutation
            await self._retry_once_or_raise(request, ShopifyUnavailable(f"Shopify answered HTTP {status}"), retriable)
            return True
        if answer.throttled:
            await self._wait_after_throttled(request, answer)
            return True
        if not isinstance(answer.body, dict) and status == 200:
            # a truncated or mangled body: treated like a failed transport
            mangled = ShopifyUnavailable("Shopify answered HTTP 200 with a body that is not JSON")
            await self._retry_once_or_raise(request, mangled, not request.is_mutation)
            return True
        return False

    async def _retry_once_or_raise(self, request: _Request, exc: ShopifyUnavailable, allowed: bool = True) -> None:
        """Pause before the one quick retry an unavailable answer gets (when `allowed` and the deadline leaves time),
        else count the failure and raise it."""
        if allowed and not request.retried and self._may_retry(exc, request.is_mutation, request.deadline):
            request.retried = True
            await asyncio.sleep(RETRY_PAUSE_SECONDS)
            return
        self._count_error("unavailable")
        raise exc

    async def _wait_after_throttled(self, request: _Request, answer: _Answer) -> None:
        """Pause before a THROTTLED query is booked again, or raise ShopifyThrottled when the pause passes the
        deadline. An answer with Shopify's balance leaves the wait to the budget (`request.pause`: its advice); one
        without (a 429) waits its Retry-After."""
        pause = request.pause if request.pause is not None else self._throttle_delay(answer.retry_after)
        if not pause:
            return
        if asyncio.get_running_loop().time() + pause + MIN_START_SECONDS >= request.deadline:
            self._count_error("throttled")
            raise ShopifyThrottled(f"throttled by Shopify; {pause:.2f} s to wait exceeds the deadline")
        self.metrics.inc("shopify_throttle_wait_seconds_total", pause, shop=self.shop_key)
        await asyncio.sleep(pause)

    def _data_of(self, answer: _Answer) -> dict[str, Any]:
        """The `data` of a final answer, or the ShopifyQueryError it carries (partial data denied only field-level
        access is returned, see the module docstring)."""
        body, errors, status = answer.body, answer.errors, answer.status
        if not isinstance(body, dict):
            self._count_error("query")
            raise ShopifyQueryError(f"Shopify answered HTTP {status}")
        data = body.get("data")
        if errors:
            if isinstance(data, dict) and _only_field_access_denied(errors):
                self.metrics.inc("shopify_partial_data_total", shop=self.shop_key)
                log.warning(
                    "shop %s: access denied to %s; answering without those fields",
                    self.shop_key,
                    ", ".join(".".join(str(p) for p in e.get("path", [])) for e in errors),
                )
                return data
            self._count_error("query")
            raise ShopifyQueryError(_first_message(errors), errors if isinstance(errors, list) else [], data)
        if status != 200 or not isinstance(data, dict):
            self._count_error("query")
            raise ShopifyQueryError(f"Shopify answered HTTP {status} without data")
        return data

    # --- transport -------------------------------------------------------------------------------------------------

    def _may_retry(self, exc: ShopifyUnavailable, is_mutation: bool, deadline: float) -> bool:
        if is_mutation and getattr(exc, "may_have_arrived", False):
            return False  # a mutation that may have been applied is not repeated blindly
        left = deadline - asyncio.get_running_loop().time()
        return left > RETRY_PAUSE_SECONDS + MIN_START_SECONDS

    async def _token(self, deadline: float) -> str:
        try:
            async with asyncio.timeout_at(deadline):
                return await self.tokens.token()
        except TimeoutError:
            raise _TransportError("no access token before the deadline", may_have_arrived=False) from None

    async def _refreshed_token(self, rejected: str, deadline: float) -> str:
        try:
            async with asyncio.timeout_at(deadline):
                return await self.tokens.refresh(rejected)
        except TimeoutError:
            raise _TransportError("no access token before the deadline", may_have_arrived=False) from None

    def _throttle_delay(self, retry_after: str | None) -> float:
        """How long to sleep after a THROTTLED answer that brought no throttleStatus (429 with Retry-After)."""
        if retry_after:
            try:
                return max(float(retry_after), 0.0)
            except ValueError:
                pass
        return DEFAULT_THROTTLE_DELAY

    def _count_error(self, kind: str) -> None:
        self.metrics.inc("shopify_errors_total", shop=self.shop_key, kind=kind)


# --- response helpers ----------------------------------------------------------------------------------------------


def _json_or_none(raw: bytes) -> Any:
    try:
        return jsoncodec.loads(raw)
    except ValueError:
        return None


def _error_code(error: Any) -> str | None:
    if isinstance(error, dict) and isinstance(error.get("extensions"), dict):
        code = error["extensions"].get("code")
        return code if isinstance(code, str) else None
    return None


def _is_throttled(errors: Any) -> bool:
    return isinstance(errors, list) and any(_error_code(e) == "THROTTLED" for e in errors)


def _only_field_access_denied(errors: Any) -> bool:
    return (
        isinstance(errors, list)
        and bool(errors)
        and all(_error_code(e) == "ACCESS_DENIED" and isinstance(e.get("path"), list) and e["path"] for e in errors)
    )


def _first_message(errors: Any) -> str:
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        code = _error_code(errors[0])
        message = str(errors[0].get("message", "GraphQL error"))
        return f"{code}: {message}" if code else message
    if isinstance(errors, str):  # Shopify answers e.g. {"errors": "Not Found"} for some HTTP errors
        return errors
    return "GraphQL error"


#: What the budget asks to see the shop's bucket (docs/query-budget.md).
_PROBE = load_query("budget_probe")

_HEADERS = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": USER_AGENT}


def _request_body(document: str, variables: dict[str, Any] | None) -> bytes:
    """`{"query": document, "variables": variables}` as compact JSON, the (large, constant) document part encoded once
    per document."""
    try:
        return b"".join((_body_prefix(document), jsoncodec.dumps(variables or {}), b"}"))
    except (TypeError, ValueError) as exc:
        raise ShopifyQueryError(f"variables are not JSON-serializable: {exc}") from None


@functools.lru_cache(maxsize=256)
def _body_prefix(document: str) -> bytes:
    """`{"query":<document>,"variables":` as compact JSON bytes: documents are module constants, so each is encoded
    once instead of on every request."""
    return b'{"query":' + jsoncodec.dumps(document) + b',"variables":'


def _cost_key(document: str, variables: dict[str, Any] | None) -> CostKey:
    """The document, then each integer variable's name and value: the page sizes that decide Shopify's price."""
    sizes = ((name, value) for name, value in (variables or {}).items() if isinstance(value, int) and not isinstance(value, bool))
    return (document, *(part for pair in sizes for part in pair))


_MUTATION = re.compile(r"^\s*mutation\b", re.MULTILINE)


@functools.lru_cache(maxsize=256)
def _is_mutation(document: str) -> bool:
    # An operation starts a line in our documents; fragments may come before or after it.
    return _MUTATION.search(document) is not None


# --- wiring --------------------------------------------------------------------------------------------------------

#: Connection pool for all shops: enough for a burst of concurrent cache misses, bounded per host so one shop
#: can't exhaust it. Shopify itself meters by query cost, not connections.
POOL_LIMIT = 100
POOL_LIMIT_PER_HOST = 50


def new_session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=POOL_LIMIT, limit_per_host=POOL_LIMIT_PER_HOST, ttl_dns_cache=300, keepalive_timeout=30
    )
    # No cookie jar: the Admin API is token-authenticated, and keeping Shopify's cookies would only cost time.
    return aiohttp.ClientSession(
        connector=connector, headers={"User-Agent": USER_AGENT}, cookie_jar=aiohttp.DummyCookieJar()
    )


@asynccontextmanager
async def open_clients(settings: Settings, *, metrics: Metrics | None = None) -> AsyncIterator[ShopifyClients]:
    """Clients for every configured shop over one fresh session, closed on exit (CLI commands, benchmarks); each
    shop's points in this process's own bucket copy."""
    clients = ShopifyClients(metrics)
    async with new_session() as session:
        clients.open(settings.shops, session)
        try:
            yield clients
        finally:
            await clients.close()


def _describe_metrics(metrics: Metrics) -> None:
    metrics.describe("shopify_requests_total", "Admin GraphQL requests sent, per shop.")
    metrics.describe("shopify_throttled_total", "THROTTLED answers received, per shop.")
    metrics.describe("shopify_throttle_wait_seconds_total", "Seconds spent waiting for query points, per shop.")
    metrics.describe("shopify_errors_total", "Failed executes by kind (unavailable, throttled, auth, query), per shop.")
    metrics.describe("shopify_query_cost_total", "Sum of actualQueryCost, per shop.")
    metrics.describe("shopify_query_requested_cost_total", "Sum of requestedQueryCost (throttled answers too), per shop.")
    metrics.describe("shopify_token_refresh_total", "Requests retried with a new token after a 401/403, per shop.")
    metrics.describe("shopify_partial_data_total", "Answers returned with fields denied by missing access.")


class ShopifyClients(dict[str, ShopifyAdminClient]):
    """Shop key → its client, built on first use over the app's one session: a shop connected while serving has a
    client as soon as something asks for it, a thousand idle shops cost nothing, and a shop whose settings change
    (the live registry tells, gateway.shops.registry) gets a new client on its next use.

    Shopify keeps one cost bucket per shop domain: every client of a domain books from one copy of it (this
    process's, or the replicas' in Redis when `shared` is given), whatever its shop key or incarnation."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        super().__init__()
        self.metrics = metrics
        self.shops: Mapping[str, ShopSettings] = {}
        self.session: aiohttp.ClientSession | None = None
        #: The token provider of a shop whose tokens the gateway keeps itself (gateway.shops); None: from `auth:`.
        self.token_providers: Callable[[str, ShopSettings, aiohttp.ClientSession], TokenProvider | None] | None = None
        self.buckets: dict[str, SharedBucket] = {}
        self._shared: RedisBuckets | None = None

    def open(
        self, shops: Mapping[str, ShopSettings], session: aiohttp.ClientSession, shared: RedisBuckets | None = None
    ) -> None:
        self.shops, self.session, self._shared = shops, session, shared
        watch_shops(shops, self._forget)

    async def close(self) -> None:
        self.clear()
        self.buckets.clear()
        self.session = None
        if self._shared is not None:
            await self._shared.close()
            self._shared = None

    def _forget(self, key: str) -> None:
        self.pop(key, None)

    def bucket(self, domain: str) -> SharedBucket:
        bucket = self.buckets.get(domain)
        if bucket is None:
            bucket = self.buckets[domain] = self._shared.bucket(domain) if self._shared is not None else LocalBucket()
        return bucket

    def __missing__(self, key: str) -> ShopifyAdminClient:
        shop = self.shops.get(key)
        if shop is None or self.session is None:
            raise KeyError(key)
        provider = self.token_providers(key, shop, self.session) if self.token_providers is not None else None
        budget = QueryBudget(self.bucket(shop.domain), shop_key=key, metrics=self.metrics)
        client = self[key] = ShopifyAdminClient(
            shop, self.session, shop_key=key, metrics=self.metrics, token_provider=provider, budget=budget
        )
        return client

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        try:
            return self[key]
        except KeyError:
            return default


SHOPIFY_CLIENTS = web.AppKey("shopify_clients", ShopifyClients)


def setup_shopify(app: web.Application) -> None:
    """`app[SHOPIFY_CLIENTS]`: each shop's client, built on first use over one shared session (opened at startup,
    closed at cleanup).

    The mapping exists from the start (so others may hold a reference); it serves once the app has started."""
    metrics = get_metrics(app)  # created now: the app is frozen by the time the cleanup_ctx runs
    clients = ShopifyClients(metrics)
    app[SHOPIFY_CLIENTS] = clients
    _describe_metrics(metrics)

    async def shopify_session(app: web.Application) -> AsyncIterator[None]:
        storage = app[SETTINGS].storage
        # with Redis storage the replicas share each shop's query budget as they share the rest
        shared = RedisBuckets(storage.redis_url, storage.redis_prefix) if storage.backend == "redis" else None
        async with new_session() as session:
            clients.open(app[SETTINGS].shops, session, shared)
            yield
            await clients.close()

    app.cleanup_ctx.append(shopify_session)
