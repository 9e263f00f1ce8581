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

Cost-aware pacing, on Shopify's model of the bucket (a query's requested cost is taken when it starts and held while
it runs; requested − actual is refunded when it ends): the client keeps a copy of the shop's bucket, charged the
expected requested cost of each document (per page-size variables, learned from `extensions.cost`) when a request is
sent and credited the refund when it answers, reset to Shopify's `currentlyAvailable` whenever that is unambiguous.
A query is sent when the copy holds its requested cost; otherwise it waits for the refunds of the requests in flight
and the restore rate, lookups first (`background=True` reads wait behind every lookup and leave a quarter of the
bucket to them). It fails with `ShopifyThrottled`, without spending a request, only when even every refund in flight
plus the restore rate cannot bring its points before the deadline (or the deadline comes while it waits). A
`THROTTLED` answer puts Shopify's balance into the copy and the query waits again the same way.

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
from collections import deque
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
from gateway.shopify.auth import StaticTokenProvider, TokenProvider, token_provider_for
from gateway.shopify.errors import (
    ShopifyAuthError,
    ShopifyError,
    ShopifyQueryError,
    ShopifyThrottled,
    ShopifyUnavailable,
)
from gateway.shops.registry import watch_shops

__all__ = [
    "SHOPIFY_CLIENTS",
    "CostBucket",
    "ShopifyAdminClient",
    "ShopifyAuthError",
    "ShopifyClients",
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
#: What a document is assumed to request before Shopify has priced it once: the single-query maximum, so a cold
#: burst never overdraws the bucket (the first answer, one round trip later, tells the real figure).
UNKNOWN_DOCUMENT_COST = 1000.0
#: Until the first answer tells the shop's bucket: Shopify's standard plan (2000 points, 100/s).
ASSUMED_BUCKET = (2000.0, 100.0)
#: Background reads (reconciliation, push re-reads) are sent only while this share of the bucket stays free for
#: lookups, and only when no lookup is waiting.
BACKGROUND_RESERVE = 0.25


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


#: What `extensions.cost` figures are (JSON numbers).
_NUMBER = (int, float)

#: A document and the integer variables that size its lists (`first`, `lineItems`): what Shopify prices.
_CostKey = tuple[Any, ...]


@dataclass(slots=True, eq=False)
class _Booking:
    """Points booked for one request in flight: the requested cost charged at send, the actual cost expected at the
    answer. Re-priced while in flight when Shopify prices the same document for another request."""

    key: _CostKey
    requested: float
    actual: float
    sent_at: float


@dataclass(slots=True, eq=False)
class _Waiter:
    key: _CostKey
    background: bool
    future: asyncio.Future[_Booking]


@dataclass(slots=True, eq=False)
class _Request:
    """One `execute` call: what it sends, and the one quick retry and one token refresh it may spend."""

    key: _CostKey
    payload: bytes
    is_mutation: bool
    deadline: float
    background: bool
    retried: bool = False
    refreshed: bool = False


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
        self._cost_spent = self.metrics.counter("shopify_query_cost_total", shop=self.shop_key)
        self._cost_requested = self.metrics.counter("shopify_query_requested_cost_total", shop=self.shop_key)
        self.tokens = token_provider or token_provider_for(shop, session, user_agent=USER_AGENT)
        self.bucket: CostBucket | None = None
        #: The last `extensions.cost` seen (benchmarks print it).
        self.last_cost: Mapping[str, Any] | None = None
        #: Per document and page sizes, as Shopify last priced it: (requested, expected actual = the last actual
        #: cost reported, at most the requested one); and that last actual cost as reported.
        self._expected_costs: dict[_CostKey, tuple[float, float]] = {}
        self._last_actual: dict[_CostKey, float] = {}
        # our copy of the shop's bucket: points available as of `_available_at` (loop time)
        self._maximum, self._restore_rate = ASSUMED_BUCKET
        self._available = self._maximum
        self._available_at = 0.0
        self._assumed = True
        self._flying: set[_Booking] = set()
        self._refunds_in_flight = 0.0  # requested − expected actual of the requests in flight
        self._round_trip = 0.0  # moving average of request durations
        self._lookup_waiters: deque[_Waiter] = deque()
        self._background_waiters: deque[_Waiter] = deque()
        self._timer: asyncio.TimerHandle | None = None
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
        """One request within a booking of the shop's query points; None when a transport failure was retried.

        The usual round runs in this one coroutine (book, post, read, settle) with two clock reads: at the booking
        and at the answer."""
        loop = asyncio.get_running_loop()
        key = request.key
        now = loop.time()
        # the usual case books at once, without a coroutine for the wait
        booking = self._book_if_free(key, request.background, now) or await self._reserve(
            key, request.deadline, request.background
        )
        settled = False
        try:
            tokens = self.tokens
            if type(tokens) is StaticTokenProvider:
                token = tokens.value  # a fixed token is just read (no coroutine)
                if booking.sent_at != now:
                    now = loop.time()  # booked after a wait
            else:  # others may have to fetch one within the deadline
                token = await self._token(request.deadline)
                now = loop.time()
            remaining = request.deadline - now
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
                status = resp.status
                resp_headers = resp.headers
            except aiohttp.ClientConnectorError as exc:
                raise _TransportError(
                    f"cannot connect to Shopify: {type(exc).__name__}", may_have_arrived=False
                ) from None
            except TimeoutError:
                raise _TransportError("Shopify did not answer before the deadline", may_have_arrived=True) from None
            except aiohttp.ClientError as exc:
                raise _TransportError(
                    f"Shopify connection failed: {type(exc).__name__}", may_have_arrived=True
                ) from None
            self.served_api_version = resp_headers.get("X-Shopify-API-Version") or self.served_api_version
            body = _json_or_none(raw)
            # orjson builds plain dicts: `type(...) is dict` is isinstance here
            if type(body) is dict:
                extensions = body.get("extensions")
                cost = extensions.get("cost") if type(extensions) is dict else None
                if type(cost) is not dict:
                    cost = None
                errors = body.get("errors")
            else:
                cost = errors = None
            throttled = status == 429 or (errors is not None and _is_throttled(errors))
            # only a throttled answer's wait reads it
            retry_after = resp_headers.get("Retry-After") if throttled else None
            # an HTTP answer without a cost (401, 5xx) ran no query
            self._settle(booking, key, cost, loop.time(), throttled=throttled, refund_all=cost is None)
            settled = True
        except ShopifyUnavailable as exc:
            await self._retry_once_or_raise(request, exc)
            return None
        finally:
            if not settled:
                self._settle(booking, key, None, loop.time())
        return _Answer(status, body, cost, errors, throttled, retry_after, token)

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
        """Wait until a THROTTLED query may be asked again, or raise ShopifyThrottled when that is past the deadline."""
        self.metrics.inc("shopify_throttled_total", shop=self.shop_key)
        loop = asyncio.get_running_loop()
        status_after = answer.cost.get("throttleStatus") if answer.cost is not None else None
        if isinstance(status_after, dict):
            # the bucket copy now holds Shopify's balance: wait in _reserve like any query; should Shopify
            # say THROTTLED while showing enough points, pause before asking again
            if self._available >= self._expected(request.key)[0]:
                if loop.time() + RETRY_PAUSE_SECONDS + MIN_ATTEMPT_SECONDS >= request.deadline:
                    self._count_error("throttled")
                    raise ShopifyThrottled("throttled by Shopify at the deadline")
                self.metrics.inc("shopify_throttle_wait_seconds_total", RETRY_PAUSE_SECONDS, shop=self.shop_key)
                await asyncio.sleep(RETRY_PAUSE_SECONDS)
            return
        delay = self._throttle_delay(answer.retry_after)
        if loop.time() + delay + MIN_ATTEMPT_SECONDS < request.deadline:
            self.metrics.inc("shopify_throttle_wait_seconds_total", delay, shop=self.shop_key)
            await asyncio.sleep(delay)
            return
        self._count_error("throttled")
        raise ShopifyThrottled(f"throttled by Shopify; {delay:.2f} s to wait exceeds the deadline")

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
        return left > RETRY_PAUSE_SECONDS + MIN_ATTEMPT_SECONDS

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

    # --- cost-aware pacing -----------------------------------------------------------------------------------------
    # The model is Shopify's: a query's requested cost leaves the bucket when it starts and stays out while it runs;
    # requested − actual comes back when it ends. So `_available` (our copy of the bucket) is charged the expected
    # requested cost at send and credited the refund at the answer; points held by requests in flight are mostly
    # refunds on their way back, which is why a query that does not fit now waits for them (and for the restore rate)
    # instead of giving up.

    def _expected(self, key: _CostKey) -> tuple[float, float]:
        """(requested, actual) expected of a document with these page sizes: the last ones Shopify reported, or the
        single-query maximum until it has (so an unknown document never overdraws the bucket)."""
        known = self._expected_costs.get(key)
        if known is None:
            requested = min(UNKNOWN_DOCUMENT_COST, self._maximum)
            return requested, requested
        if known[0] > self._maximum:
            return self._maximum, known[1]
        return known

    def _refill(self, now: float) -> float:
        if now > self._available_at:
            refilled = self._available + (now - self._available_at) * self._restore_rate
            self._available = refilled if refilled < self._maximum else self._maximum
            self._available_at = now
        return self._available

    def _fits(self, requested: float, background: bool, now: float) -> bool:
        # Background reads leave a share of the bucket to lookups, so a burst of them never makes a shopper wait.
        floor = self._maximum * BACKGROUND_RESERVE if background else 0.0
        return self._refill(now) - requested >= floor

    def _book(self, key: _CostKey, requested: float, actual: float, now: float) -> _Booking:
        """Charge `requested` (what `_expected` says of `key`) to the bucket, just refilled to `now` by `_fits`."""
        self._available -= requested
        self._refunds_in_flight += requested - actual
        booking = _Booking(key, requested, actual, now)
        self._flying.add(booking)
        return booking

    def _book_if_free(self, key: _CostKey, background: bool, now: float) -> _Booking | None:
        """The booking of this document's expected cost when the bucket holds it now and nobody waits ahead; else
        None (then `_reserve` waits)."""
        if self._lookup_waiters or (background and self._background_waiters):
            return None
        requested, actual = self._expected(key)
        return self._book(key, requested, actual, now) if self._fits(requested, background, now) else None

    async def _reserve(self, key: _CostKey, deadline: float, background: bool) -> _Booking:
        """Book this document's expected cost, waiting (behind lookups when `background`) until the bucket holds it;
        ShopifyThrottled when even the refunds in flight and the restore rate cannot bring the points before the
        deadline. Called right after `_book_if_free` could not book (nothing ran in between: no need to ask again)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._check_feasible(key, deadline, background, now)
        waiter = _Waiter(key, background, loop.create_future())
        (self._background_waiters if background else self._lookup_waiters).append(waiter)
        self._pump(now)
        give_up = deadline - max(MIN_ATTEMPT_SECONDS, self._round_trip)
        try:
            async with asyncio.timeout_at(give_up):
                booking = await waiter.future
        except TimeoutError:
            if not waiter.future.done() or waiter.future.cancelled():
                self._count_error("throttled")
                raise ShopifyThrottled("waited for Shopify query points until the deadline") from None
            booking = waiter.future.result()  # booked just as time ran out: still worth sending
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                # booked for a caller who left
                self._settle(waiter.future.result(), key, None, loop.time(), refund_all=True)
            raise
        self.metrics.inc("shopify_throttle_wait_seconds_total", booking.sent_at - now, shop=self.shop_key)
        return booking

    def _check_feasible(self, key: _CostKey, deadline: float, background: bool, now: float) -> None:
        """Raise ShopifyThrottled if the points cannot be there in time even counting every refund in flight: the
        bucket then only refills at the restore rate."""
        if key not in self._expected_costs or any(b.key not in self._expected_costs for b in self._flying):
            return  # what unpriced documents hold is a guess: wait, bounded by the deadline, and see
        requested, _ = self._expected(key)
        ahead = self._lookup_waiters if not background else [*self._lookup_waiters, *self._background_waiters]
        needed = requested + sum(self._expected(w.key)[1] for w in ahead if not w.future.done())
        short = needed - (self._refill(now) + self._refunds_in_flight)
        if short <= 0:
            return
        wait = short / self._restore_rate if self._restore_rate > 0 else math.inf
        if now + wait + max(MIN_ATTEMPT_SECONDS, self._round_trip) >= deadline:
            self._count_error("throttled")
            raise ShopifyThrottled(
                f"Shopify query points short by {short:.0f}; refilling takes {wait:.2f} s, past the deadline"
            )

    def _pump(self, now: float | None = None) -> None:
        """Book the waiting queries that now fit, lookups first and each queue in arrival order; arm a timer for the
        restore rate when the first one left does not fit (refunds arriving call this again). `now`: the loop time
        when the caller just read it (the timer calls this without)."""
        loop = asyncio.get_running_loop()
        if now is None:
            now = loop.time()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for queue, background in ((self._lookup_waiters, False), (self._background_waiters, True)):
            while queue:
                waiter = queue[0]
                if waiter.future.done():
                    queue.popleft()
                    continue
                requested, actual = self._expected(waiter.key)
                if not self._fits(requested, background, now):
                    floor = self._maximum * BACKGROUND_RESERVE if background else 0.0
                    if self._restore_rate > 0:
                        wait = (requested + floor - self._available) / self._restore_rate
                        self._timer = loop.call_at(now + max(wait, 0.001), self._pump)
                    return
                queue.popleft()
                waiter.future.set_result(self._book(waiter.key, requested, actual, now))

    def _settle(
        self, booking: _Booking, key: _CostKey, cost: Mapping[str, Any] | None, now: float, *,
        throttled: bool = False, refund_all: bool = False,
    ) -> None:
        """Credit back what the request did not spend and learn from its `extensions.cost` (read at `now`, loop
        time); then let waiters in."""
        self._flying.discard(booking)
        self._refunds_in_flight -= booking.requested - booking.actual
        self._refill(now)
        # first: a newly priced document re-prices the bookings still in flight
        actual = self._learn(key, cost) if cost is not None else None
        if throttled or refund_all:
            available = self._available + booking.requested  # a throttled (or never answered) query spent nothing
        elif actual is not None:
            available = self._available + (booking.requested - actual)
        else:
            available = self._available + (booking.requested - booking.actual)  # unknown outcome: the usual spend
        self._available = available if available < self._maximum else self._maximum
        if cost is not None:
            self._observe_status(cost, now)
        if not throttled and not refund_all:
            took = now - booking.sent_at
            self._round_trip = took if not self._round_trip else 0.8 * self._round_trip + 0.2 * took
        if self._lookup_waiters or self._background_waiters or self._timer is not None:
            self._pump(now)  # (with nobody waiting and no timer armed it has nothing to do)

    def _learn(self, key: _CostKey, cost: Mapping[str, Any]) -> float | None:
        """Remember what the document requested and spent; re-price the bookings in flight of the same document
        (the first ones of a burst were booked at the single-query maximum). Returns the actual cost reported (None
        when it is not a number), which `_settle` credits."""
        self.last_cost = cost  # the decoded answer's own object: nothing changes it afterwards
        requested = cost.get("requestedQueryCost")
        reported = cost.get("actualQueryCost")
        actual = float(reported) if isinstance(reported, _NUMBER) else None
        if actual is not None:
            self._cost_spent.add(actual)
        if not isinstance(requested, _NUMBER) or requested <= 0:
            return actual
        self._cost_requested.add(float(requested))
        known = self._expected_costs.get(key)
        if known is not None and known[0] == requested and (actual is None or self._last_actual.get(key) == actual):
            return actual  # the usual case: Shopify priced it as last time, so there is nothing new to write
        if len(self._expected_costs) >= _MAX_TRACKED_DOCUMENTS and known is None:
            self._expected_costs.clear()
            self._last_actual.clear()
        requested = float(requested)
        if actual is not None:
            self._last_actual[key] = actual
        expected_actual = self._last_actual.get(key, requested)
        self._expected_costs[key] = (requested, expected_actual if expected_actual < requested else requested)
        if known is not None and known[0] == requested:
            return actual  # only the actual cost changed: bookings in flight already hold this price
        new_requested, new_actual = self._expected(key)
        for booking in self._flying:
            if booking.key == key and booking.requested != new_requested:
                self._available += booking.requested - new_requested
                self._refunds_in_flight += (new_requested - new_actual) - (booking.requested - booking.actual)
                booking.requested, booking.actual = new_requested, new_actual
        return actual

    def _observe_status(self, cost: Mapping[str, Any], now: float) -> None:
        """Take Shopify's `throttleStatus` into our copy of the bucket."""
        status = cost.get("throttleStatus")
        if not isinstance(status, dict):
            return
        try:
            bucket = CostBucket(
                maximum_available=float(status["maximumAvailable"]),
                currently_available=float(status["currentlyAvailable"]),
                restore_rate=float(status["restoreRate"]),
                read_at=now,
            )
        except (KeyError, TypeError, ValueError):
            return  # a malformed status just leaves the previous estimate
        self.bucket = bucket
        if self._assumed:  # the bucket was this shop's size all along, not the standard one we assumed
            self._available += bucket.maximum_available - self._maximum
            self._assumed = False
        self._maximum, self._restore_rate = bucket.maximum_available, bucket.restore_rate
        # With nothing else of ours in flight Shopify's balance is the truth. Otherwise it does not count our
        # requests still on their way to Shopify, which our copy charged at send: the lower of the two is safe
        # (Shopify's is lower when someone else spends from the same bucket).
        shopify_says = bucket.currently_available
        if not self._flying or shopify_says < self._available:
            self._available = shopify_says
        self._available_at = now

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


def _cost_key(document: str, variables: dict[str, Any] | None) -> _CostKey:
    """The document, then each integer variable's name and value (a plain loop: no generator to resume per item;
    two appends time faster than extending by a pair)."""
    if not variables:
        return (document,)
    key: list[Any] = [document]
    for name, value in variables.items():
        if type(value) is int:
            key.append(name)
            key.append(value)
    return tuple(key)


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
    metrics.describe("shopify_query_requested_cost_total", "Sum of requestedQueryCost (throttled answers too), per shop.")
    metrics.describe("shopify_token_refresh_total", "Requests retried with a new token after a 401/403, per shop.")
    metrics.describe("shopify_partial_data_total", "Answers returned with fields denied by missing access.")


class ShopifyClients(dict[str, ShopifyAdminClient]):
    """Shop key → its client, built on first use over the app's one session: a shop connected while serving has a
    client as soon as something asks for it, a thousand idle shops cost nothing, and a shop whose settings change
    (the live registry tells, gateway.shops.registry) gets a new client on its next use."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        super().__init__()
        self.metrics = metrics
        self.shops: Mapping[str, ShopSettings] = {}
        self.session: aiohttp.ClientSession | None = None
        #: The token provider of a shop whose tokens the gateway keeps itself (gateway.shops); None: from `auth:`.
        self.token_providers: Callable[[str, ShopSettings, aiohttp.ClientSession], TokenProvider | None] | None = None

    def open(self, shops: Mapping[str, ShopSettings], session: aiohttp.ClientSession) -> None:
        self.shops, self.session = shops, session
        watch_shops(shops, self._forget)

    def close(self) -> None:
        self.clear()
        self.session = None

    def _forget(self, key: str) -> None:
        self.pop(key, None)

    def __missing__(self, key: str) -> ShopifyAdminClient:
        shop = self.shops.get(key)
        if shop is None or self.session is None:
            raise KeyError(key)
        provider = self.token_providers(key, shop, self.session) if self.token_providers is not None else None
        client = self[key] = ShopifyAdminClient(
            shop, self.session, shop_key=key, metrics=self.metrics, token_provider=provider
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
        async with new_session() as session:
            clients.open(app[SETTINGS].shops, session)
            yield
            clients.close()

    app.cleanup_ctx.append(shopify_session)
