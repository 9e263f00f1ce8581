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

Cost-aware throttling: each response's `extensions.cost.throttleStatus` updates this shop's bucket estimate; the last
`requestedQueryCost` of each document is what it is expected to cost next time. Before sending, a query waits locally
until the estimate (refilled at `restoreRate`, minus the expected cost of requests still in flight) covers its cost,
if the deadline allows; otherwise it fails with `ShopifyThrottled` without spending a request.

The ShopifyAPI package (`import shopify`) is used only for API version handling (`shopify.ApiVersion`: validation and
the `/admin/api/{version}` path). Its GraphQL executor is synchronous urllib without timeouts, so no traffic goes
through it.

Tokens, secrets and query variables (emails, phones) are never logged.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import shopify
from aiohttp import web

from gateway import jsoncodec
from gateway.keys import SETTINGS
from gateway.ops import Metrics, get_metrics
from gateway.settings import Settings, ShopSettings
from gateway.shopify.auth import StaticTokenProvider, TokenProvider, token_provider_for
from gateway.shopify.errors import (
    ShopifyAuthError,
    ShopifyError,
    ShopifyQueryError,
    ShopifyThrottled,
    ShopifyUnavailable,
)

__all__ = [
    "SHOPIFY_CLIENTS",
    "CostBucket",
    "ShopifyAdminClient",
    "ShopifyAuthError",
    "ShopifyError",
    "ShopifyQueryError",
    "ShopifyThrottled",
    "ShopifyUnavailable",
    "build_clients",
    "new_session",
    "open_clients",
    "setup_shopify",
]

log = logging.getLogger(__name__)

USER_AGENT = "shopify-bot-gateway/0.1 (aiohttp; +chatbot adapter gateway)"
#: Pause before the single retry after a transport failure or 5xx.
RETRY_PAUSE_SECONDS = 0.05
#: Don't start an attempt (or a wait) that would leave less than this before the deadline.
MIN_ATTEMPT_SECONDS = 0.05
#: When a throttled answer carries no throttleStatus and no Retry-After.
DEFAULT_THROTTLE_DELAY = 1.0
#: Documents are module constants; the cap only guards against a caller building documents on the fly.
_MAX_TRACKED_DOCUMENTS = 1024


@dataclass(slots=True)
class CostBucket:
    """The shop's leaky bucket as of `read_at` (loop time), from `extensions.cost.throttleStatus`."""

    maximum_available: float
    currently_available: float
    restore_rate: float
    read_at: float

    def estimate(self, now: float) -> float:
        refilled = self.currently_available + (now - self.read_at) * self.restore_rate
        return min(self.maximum_available, refilled)


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
    ) -> None:
        self.shop = shop
        self.shop_key = shop_key or shop.domain
        self.session = session
        # shopify.ApiVersion validates the configured version and knows the versioned path
        self.api_version = shopify.ApiVersion.coerce_to_version(shop.api_version)
        self.url = self.api_version.api_path(shop.admin_base_url) + "/graphql.json"
        #: Counters land here; a private Metrics when none is given, so benchmarks can always read them.
        self.metrics = metrics if metrics is not None else Metrics()
        self.tokens = token_provider or token_provider_for(shop, session, user_agent=USER_AGENT)
        self.bucket: CostBucket | None = None
        #: The last `extensions.cost` seen (benchmarks print it).
        self.last_cost: dict[str, Any] | None = None
        self._expected_cost: dict[str, float] = {}
        self._reserved = 0.0  # expected cost of requests sent and not yet answered
        self._budget_lock = asyncio.Lock()
        #: The `X-Shopify-API-Version` of the last answer: the version Shopify served (the operator console shows it).
        self.served_api_version: str | None = None

    def __repr__(self) -> str:
        return f"ShopifyAdminClient({self.shop_key!r}, {self.url!r})"

    # --- the one public call ---------------------------------------------------------------------------------------

    async def execute(
        self, document: str, variables: dict[str, Any] | None = None, *, deadline: float | None = None
    ) -> dict[str, Any]:
        """Run one GraphQL document; return its `data`. `deadline` is an absolute `loop.time()`;
        default now + the shop's `deadline_seconds`. Raises a ShopifyError subclass, never anything else."""
        loop = asyncio.get_running_loop()
        if deadline is None:
            deadline = loop.time() + self.shop.deadline_seconds
        try:
            # {"query": document, "variables": variables} as compact JSON, with the (large, constant) document part
            # encoded once per document
            payload = b"".join((_body_prefix(document), jsoncodec.dumps(variables or {}), b"}"))
        except (TypeError, ValueError) as exc:
            raise ShopifyQueryError(f"variables are not JSON-serializable: {exc}") from None
        is_mutation = _is_mutation(document)
        retried = refreshed = False
        while True:
            reserved = await self._reserve(document, deadline)
            try:
                token = await self._token(deadline)
                status, raw, retry_after = await self._post(payload, token, deadline)
            except ShopifyUnavailable as exc:
                if not retried and self._may_retry(exc, is_mutation, deadline):
                    retried = True
                    await asyncio.sleep(RETRY_PAUSE_SECONDS)
                    continue
                self._count_error("unavailable")
                raise
            finally:
                self._reserved -= reserved

            if status in (401, 403):
                if not refreshed:
                    refreshed = True
                    fresh = await self._refreshed_token(token, deadline)
                    if fresh != token:
                        self.metrics.inc("shopify_token_refresh_total", shop=self.shop_key)
                        continue
                self._count_error("auth")
                raise ShopifyAuthError(f"Shopify answered HTTP {status} for shop {self.shop_key}")
            if status >= 500 or status in (402, 423):
                unavailable = ShopifyUnavailable(f"Shopify answered HTTP {status}")
                retriable = status >= 500 and not is_mutation  # a 5xx mutation may have been applied
                if not retried and retriable and self._may_retry(unavailable, is_mutation, deadline):
                    retried = True
                    await asyncio.sleep(RETRY_PAUSE_SECONDS)
                    continue
                self._count_error("unavailable")
                raise unavailable

            body = _json_or_none(raw)
            cost = _cost_of(body)
            if cost is not None:
                self._observe_cost(document, cost, loop.time())
            errors = body.get("errors") if isinstance(body, dict) else None

            if status == 429 or _is_throttled(errors):
                self.metrics.inc("shopify_throttled_total", shop=self.shop_key)
                delay = self._throttle_delay(document, cost, retry_after)
                if loop.time() + delay + MIN_ATTEMPT_SECONDS < deadline:
                    self.metrics.inc("shopify_throttle_wait_seconds_total", delay, shop=self.shop_key)
                    await asyncio.sleep(delay)
                    continue
                self._count_error("throttled")
                raise ShopifyThrottled(f"throttled by Shopify; {delay:.2f} s to wait exceeds the deadline")

            if not isinstance(body, dict):
                if status == 200:  # a truncated or mangled body: treated like a failed transport
                    mangled = ShopifyUnavailable("Shopify answered HTTP 200 with a body that is not JSON")
                    if not retried and not is_mutation and self._may_retry(mangled, is_mutation, deadline):
                        retried = True
                        await asyncio.sleep(RETRY_PAUSE_SECONDS)
                        continue
                    self._count_error("unavailable")
                    raise mangled
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

    async def _post(self, payload: bytes, token: str, deadline: float) -> tuple[int, bytes, str | None]:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise _TransportError("deadline passed before the request", may_have_arrived=False)
        headers = {"X-Shopify-Access-Token": token, **_HEADERS}
        self.metrics.inc("shopify_requests_total", shop=self.shop_key)
        try:
            async with self.session.post(
                self.url, data=payload, headers=headers, timeout=aiohttp.ClientTimeout(total=remaining)
            ) as resp:
                raw = await resp.read()
                self.served_api_version = resp.headers.get("X-Shopify-API-Version") or self.served_api_version
                return resp.status, raw, resp.headers.get("Retry-After")
        except aiohttp.ClientConnectorError as exc:
            raise _TransportError(f"cannot connect to Shopify: {type(exc).__name__}", may_have_arrived=False) from None
        except TimeoutError:
            raise _TransportError("Shopify did not answer before the deadline", may_have_arrived=True) from None
        except aiohttp.ClientError as exc:
            raise _TransportError(f"Shopify connection failed: {type(exc).__name__}", may_have_arrived=True) from None

    def _may_retry(self, exc: ShopifyUnavailable, is_mutation: bool, deadline: float) -> bool:
        if is_mutation and getattr(exc, "may_have_arrived", False):
            return False  # a mutation that may have been applied is not repeated blindly
        left = deadline - asyncio.get_running_loop().time()
        return left > RETRY_PAUSE_SECONDS + MIN_ATTEMPT_SECONDS

    async def _token(self, deadline: float) -> str:
        if type(self.tokens) is StaticTokenProvider:
            return await self.tokens.token()  # never waits: no deadline to arm
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

    # --- cost-aware throttling -------------------------------------------------------------------------------------

    async def _reserve(self, document: str, deadline: float) -> float:
        """Wait until the bucket should cover this document's expected cost; book that cost; return it."""
        expected = self._expected_cost.get(document)
        bucket = self.bucket
        if expected is None or bucket is None:
            return 0.0  # nothing known yet: send, and learn from the answer
        expected = min(expected, bucket.maximum_available)
        now = asyncio.get_running_loop().time()
        if bucket.estimate(now) - self._reserved >= expected and not self._budget_lock.locked():
            self._reserved += expected
            return expected
        return await self._wait_for_points(expected, deadline)

    async def _wait_for_points(self, expected: float, deadline: float) -> float:
        loop = asyncio.get_running_loop()
        try:
            # one waiter at a time, in arrival order, so waiters don't all wake for the same refill
            await asyncio.wait_for(self._budget_lock.acquire(), max(deadline - loop.time(), 0.0))
        except TimeoutError:
            self._count_error("throttled")
            raise ShopifyThrottled("queued for Shopify query points until the deadline") from None
        try:
            while True:
                bucket = self.bucket
                assert bucket is not None
                now = loop.time()
                short = expected + self._reserved - bucket.estimate(now)
                if short <= 0:
                    self._reserved += expected
                    return expected
                wait = short / bucket.restore_rate if bucket.restore_rate > 0 else math.inf
                if now + wait + MIN_ATTEMPT_SECONDS >= deadline:
                    self._count_error("throttled")
                    raise ShopifyThrottled(
                        f"Shopify query points short by {short:.0f}; refilling takes {wait:.2f} s, past the deadline"
                    )
                self.metrics.inc("shopify_throttle_wait_seconds_total", wait, shop=self.shop_key)
                await asyncio.sleep(wait)
        finally:
            self._budget_lock.release()

    def _observe_cost(self, document: str, cost: Mapping[str, Any], now: float) -> None:
        self.last_cost = dict(cost)
        requested = cost.get("requestedQueryCost")
        if isinstance(requested, int | float):
            if len(self._expected_cost) >= _MAX_TRACKED_DOCUMENTS and document not in self._expected_cost:
                self._expected_cost.clear()
            self._expected_cost[document] = float(requested)
        actual = cost.get("actualQueryCost")
        if isinstance(actual, int | float):
            self.metrics.inc("shopify_query_cost_total", float(actual), shop=self.shop_key)
        status = cost.get("throttleStatus")
        if isinstance(status, dict):
            try:
                self.bucket = CostBucket(
                    maximum_available=float(status["maximumAvailable"]),
                    currently_available=float(status["currentlyAvailable"]),
                    restore_rate=float(status["restoreRate"]),
                    read_at=now,
                )
            except (KeyError, TypeError, ValueError):
                pass  # a malformed status just leaves the previous estimate

    def _throttle_delay(self, document: str, cost: Mapping[str, Any] | None, retry_after: str | None) -> float:
        status = cost.get("throttleStatus") if cost else None
        if isinstance(status, dict):
            try:
                requested = float((cost or {}).get("requestedQueryCost") or self._expected_cost.get(document) or 1.0)
                available = float(status["currentlyAvailable"])
                rate = float(status["restoreRate"])
                if rate > 0:
                    return max((requested - available) / rate, 0.0) + 0.01
            except (KeyError, TypeError, ValueError):
                pass
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


def _cost_of(body: Any) -> Mapping[str, Any] | None:
    if not isinstance(body, dict):
        return None
    ext = body.get("extensions")
    cost = ext.get("cost") if isinstance(ext, dict) else None
    return cost if isinstance(cost, dict) else None


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


_HEADERS = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": USER_AGENT}


@functools.lru_cache(maxsize=256)
def _body_prefix(document: str) -> bytes:
    """`{"query":<document>,"variables":` as compact JSON bytes: documents are module constants, so each is encoded
    once instead of on every request."""
    return b'{"query":' + jsoncodec.dumps(document) + b',"variables":'


_MUTATION = re.compile(r"^\s*mutation\b", re.MULTILINE)


@functools.lru_cache(maxsize=256)
def _is_mutation(document: str) -> bool:
    # An operation starts a line in our documents; fragments may come before or after it.
    return _MUTATION.search(document) is not None


# --- wiring --------------------------------------------------------------------------------------------------------

SHOPIFY_CLIENTS = web.AppKey("shopify_clients", dict[str, ShopifyAdminClient])

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


def build_clients(
    settings: Settings, session: aiohttp.ClientSession, *, metrics: Metrics | None = None
) -> dict[str, ShopifyAdminClient]:
    return {
        key: ShopifyAdminClient(shop, session, shop_key=key, metrics=metrics) for key, shop in settings.shops.items()
    }


@asynccontextmanager
async def open_clients(
    settings: Settings, *, metrics: Metrics | None = None
) -> AsyncIterator[dict[str, ShopifyAdminClient]]:
    """Clients for every configured shop over one fresh session, closed on exit (CLI commands, benchmarks)."""
    async with new_session() as session:
        yield build_clients(settings, session, metrics=metrics)


def _describe_metrics(metrics: Metrics) -> None:
    metrics.describe("shopify_requests_total", "Admin GraphQL requests sent, per shop.")
    metrics.describe("shopify_throttled_total", "THROTTLED answers received, per shop.")
    metrics.describe("shopify_throttle_wait_seconds_total", "Seconds spent waiting for query points, per shop.")
    metrics.describe("shopify_errors_total", "Failed executes by kind (unavailable, throttled, auth, query), per shop.")
    metrics.describe("shopify_query_cost_total", "Sum of actualQueryCost, per shop.")
    metrics.describe("shopify_token_refresh_total", "Requests retried with a new token after a 401/403, per shop.")
    metrics.describe("shopify_partial_data_total", "Answers returned with fields denied by missing access.")


def setup_shopify(app: web.Application) -> None:
    """Fill `app[SHOPIFY_CLIENTS]` at startup with one client per shop over one shared session; close it at cleanup.

    The dict exists from the start (so others may hold a reference); it is filled when the app starts."""
    clients: dict[str, ShopifyAdminClient] = {}
    app[SHOPIFY_CLIENTS] = clients
    metrics = get_metrics(app)  # created now: the app is frozen by the time the cleanup_ctx runs
    _describe_metrics(metrics)

    async def shopify_session(app: web.Application) -> AsyncIterator[None]:
        async with new_session() as session:
            clients.update(build_clients(app[SETTINGS], session, metrics=metrics))
            yield
            clients.clear()

    app.cleanup_ctx.append(shopify_session)
