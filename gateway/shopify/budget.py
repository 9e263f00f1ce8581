"""One shop's query budget: which request may spend the shop's Shopify query points, when, and who waits.

`ShopifyAdminClient` asks for a `Booking` before it sends a request and settles it with the answer; nothing else in
the client knows about points. The budget

- prices a request by what Shopify last asked for the same document with the same page sizes (`requestedQueryCost`
  is fixed by the query's shape); a shape Shopify has not priced yet is booked at the single-query maximum;
- books it from the shop's bucket (`gateway.shopify.bucket`: this process's copy, or the replicas' shared one in
  Redis) when the bucket holds its requested cost, lookups first: a background read (push re-read, reconciliation)
  goes only when no lookup waits and a quarter of the bucket stays free, so it delays a lookup by at most its own
  round trip;
- otherwise queues it, in arrival order per kind, and wakes the head when a refund comes back or the restore rate
  has brought its points;
- refuses a lookup before its deadline only when it certainly cannot start in time: even if every hold in flight
  came back in full and the bucket refilled at its restore rate, the bucket would not hold its requested cost before
  the deadline (the copy is a lower bound of Shopify's balance, see `BucketModel.give_back`). A guess (a price not
  yet known, a balance not recently told) never refuses: it waits and sees;
- learns the bucket's size, restore rate and balance from every answer's `throttleStatus`, so a wrong copy heals at
  the next answer and nothing the gateway accumulates makes it refuse more than a fresh one would.

Time is the event loop's (`deadline` is a `loop.time()`); the bucket keeps its own clock (Redis's, for the shared one).
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from gateway.ops import Metrics
from gateway.shopify.bucket import MAX_PRICED_SHAPES, STANDARD_BUCKET, BucketView, SharedBucket, shape_id, status_of
from gateway.shopify.errors import ShopifyThrottled

__all__ = ["MIN_START_SECONDS", "UNKNOWN_REQUESTED_COST", "Booking", "CostKey", "Outcome", "QueryBudget"]

#: What a query shape Shopify has not priced yet is booked at: the single-query maximum, so a cold burst never
#: overdraws the bucket (the first answer, one round trip later, tells the real figure).
UNKNOWN_REQUESTED_COST = 1000.0
#: Background reads go only while this share of the bucket stays free for lookups.
BACKGROUND_RESERVE = 0.25
#: A request started later than this before its deadline cannot be answered in time.
MIN_START_SECONDS = 0.05
#: While other replicas hold points, their refunds are not announced here: look again this often.
SHARED_POLL_SECONDS = 0.05
#: Shopify reports the balance rounded down to a whole point: the copy may be short by this much.
REPORTED_TO = 1.0
#: After a THROTTLED answer whose balance showed enough points: pause before asking again.
THROTTLED_PAUSE_SECONDS = 0.05

#: A document and the integer variables that size its lists (`first`, `lineItems`): what Shopify prices.
CostKey = tuple[Any, ...]

_NUMBER = (int, float)


@dataclass(slots=True, eq=False)
class Booking:
    """Points held for one request in flight."""

    hold: str
    key: CostKey
    requested: float  # what the hold took out of the bucket


@dataclass(slots=True, eq=False)
class _Waiter:
    key: CostKey
    wake: asyncio.Event


Outcome = Literal["answered", "throttled", "not_run", "unknown"]
#: Reads the shop's `extensions.cost` with a trivial query before the deadline (None: no answer).
Probe = Callable[[float], Awaitable[Mapping[str, Any] | None]]


class QueryBudget:
    def __init__(self, bucket: SharedBucket, *, shop_key: str = "", metrics: Metrics | None = None) -> None:
        self.bucket = bucket
        metrics = metrics if metrics is not None else Metrics()
        self._throttled = metrics.counter("shopify_throttled_total", shop=shop_key)
        self._cost_spent = metrics.counter("shopify_query_cost_total", shop=shop_key)
        self._cost_requested = metrics.counter("shopify_query_requested_cost_total", shop=shop_key)
        self._waited = metrics.counter("shopify_throttle_wait_seconds_total", shop=shop_key)
        #: requestedQueryCost per query shape, as Shopify last priced it
        self._prices: dict[CostKey, float] = {}
        #: the last actualQueryCost per shape: what a request whose answer never came is assumed to have spent
        self._spent: dict[CostKey, float] = {}
        #: the bucket's size as last found (prices an unpriced shape in a small bucket, sizes the background reserve)
        self._maximum = STANDARD_BUCKET[0]
        self._lookups: deque[_Waiter] = deque()
        self._background: deque[_Waiter] = deque()
        self._booking = False  # a request that found nobody waiting is looking at the bucket
        #: asks Shopify for the bucket's balance outside the budget (the client's one-point query); None: never asks
        self.probe: Probe | None = None
        self._looking: asyncio.Future[None] | None = None
        # hold names unique among every replica sharing the bucket
        prefix = secrets.token_hex(6)
        self._holds = (f"{prefix}.{n:x}" for n in itertools.count())

    def price(self, key: CostKey) -> float | None:
        """The requested cost Shopify last asked for this shape; None until it has priced it."""
        return self._prices.get(key)

    # --- booking ---------------------------------------------------------------------------------------------------

    async def acquire(self, key: CostKey, deadline: float, *, background: bool = False) -> Booking:
        """Hold the points of one request of this shape; wait (in arrival order, lookups first) while the bucket lacks
        them. Raises ShopifyThrottled when it certainly cannot start before `deadline` (loop time)."""
        loop = asyncio.get_running_loop()
        queue = self._background if background else self._lookups
        found: Booking | BucketView | None = None
        # nobody ahead and nobody booking: the usual case books at once (one booking at a time looks at a shared
        # copy: a burst queues here instead of racing to Redis)
        if not self._lookups and not (background and self._background) and not self._booking:
            self._booking = True
            try:
                found = await self._try(key, deadline, background)
            finally:
                self._booking = False
            if isinstance(found, Booking):
                self._wake_head()
                return found
        waiter = _Waiter(key, asyncio.Event())
        if found is not None:
            queue.appendleft(waiter)  # it came before those who queued while it looked
        else:
            queue.append(waiter)
        started = loop.time()
        try:
            while True:
                left = deadline - MIN_START_SECONDS - loop.time()
                if left <= 0:
                    raise ShopifyThrottled("the shop's query points did not come back before the deadline")
                waiter.wake.clear()  # before looking: a refund while it looks wakes it again
                pause: float | None = left
                if self._head() is waiter:
                    outcome = found if found is not None else await self._try(key, deadline, background)
                    if isinstance(outcome, Booking):
                        return outcome
                    pause = self._pause(key, outcome, left, background)
                    if pause is None:
                        raise ShopifyThrottled("the shop's query points cannot come back before the deadline")
                found = None
                try:
                    await asyncio.wait_for(waiter.wake.wait(), pause)
                except TimeoutError:
                    pass
        finally:
            queue.remove(waiter)
            self._waited.add(loop.time() - started)
            self._wake_head()

    async def settle(
        self, booking: Booking, cost: Mapping[str, Any] | None, outcome: Outcome = "answered"
    ) -> float | None:
        """End a booking with its answer's `extensions.cost` (None when the answer had none).

        `outcome`: the query ran ("answered"), Shopify refused it for points ("throttled"), it surely never ran
        ("not_run": refused before it ran, never sent) or nobody knows ("unknown": a timeout). Returns the seconds to
        pause before asking again: a short pause after a THROTTLED answer whose balance showed enough points, None
        after one that told no balance (the caller goes by Retry-After), else 0."""
        actual = None
        if cost is not None:
            known = self._prices.get(booking.key)
            actual = self._learn(booking.key, cost)
            price = self._prices.get(booking.key)
            if price is not None and price != known:  # a new price: tell the bucket's other sharers
                await self.bucket.remember_price(shape_id(booking.key), price)
        if outcome in ("throttled", "not_run"):
            refund = booking.requested
        elif actual is not None:
            refund = booking.requested - actual
        else:  # the usual spend of the shape (all of its hold if it never answered before)
            refund = booking.requested - self._spent.get(booking.key, booking.requested)
        status = status_of(cost)
        await self.bucket.give_back(booking.hold, refund, status, throttled=outcome == "throttled")
        if status is not None:
            self._maximum = status.maximum
        self._wake_head()
        if outcome == "throttled":
            self._throttled.add()
            if status is None:
                return None
            if status.available >= self._cost(booking.key):
                return THROTTLED_PAUSE_SECONDS
        return 0.0

    async def view(self) -> BucketView:
        return await self.bucket.view()

    # --- inside ----------------------------------------------------------------------------------------------------

    def _cost(self, key: CostKey) -> float:
        """What a request of this shape holds: its price, or the single-query maximum (at most the bucket)."""
        price = self._prices.get(key)
        return price if price is not None else min(UNKNOWN_REQUESTED_COST, self._maximum)

    async def _try(self, key: CostKey, deadline: float, background: bool) -> Booking | BucketView:
        """A booking when the bucket holds the points now, else the bucket as found.

        A stale copy that lacks the points with nothing in flight (a quiet shop whose plan may have grown) is not
        trusted to refuse: the probe asks Shopify (one point) and the copy is looked at again."""
        if key not in self._prices:  # another sharer of the bucket may have learnt it
            shared = await self.bucket.price(shape_id(key))
            if shared is not None:
                self._prices[key] = shared
        requested = self._cost(key)
        keep_free = self._maximum * BACKGROUND_RESERVE if background else 0.0
        hold = next(self._holds)
        ttl = max(deadline - asyncio.get_running_loop().time(), 0.0)
        taken, view = await self.bucket.take(hold, requested, keep_free, ttl)
        if not taken and not view.fresh and not view.held and self.probe is not None:
            await self._look(deadline)
            taken, view = await self.bucket.take(hold, requested, keep_free, ttl)
        self._maximum = view.maximum
        return Booking(hold, key, requested) if taken else view

    async def _look(self, deadline: float) -> None:
        """Fold in the balance the probe reads; one probe at a time, the others wait for it."""
        if self._looking is None or self._looking.done():
            assert self.probe is not None
            self._looking = asyncio.ensure_future(self._probe_once(self.probe, deadline))
        await asyncio.shield(self._looking)

    async def _probe_once(self, probe: Probe, deadline: float) -> None:
        status = status_of(await probe(deadline))
        if status is not None:
            self._maximum = status.maximum
            await self.bucket.give_back("", 0.0, status)

    def _pause(self, key: CostKey, view: BucketView, left: float, background: bool) -> float | None:
        """How long the head waits before it looks again (at most `left`, the time it has to start); None when it
        certainly cannot start in time."""
        requested = self._cost(key)
        if not background and key in self._prices and view.best_case(left) + REPORTED_TO < requested:
            return None  # every hold back in full and the restore rate cannot bring its points in time
        floor = view.maximum * BACKGROUND_RESERVE if background else 0.0
        pause = view.seconds_until(requested + floor)
        if view.held > 0 or not view.fresh:
            # a refund may come first: ours wake the head as they settle, another replica's are seen by looking
            pause = min(pause, SHARED_POLL_SECONDS)
        return min(max(pause, 0.001), left)

    def _head(self) -> _Waiter | None:
        if self._lookups:
            return self._lookups[0]
        if self._background:
            return self._background[0]
        return None

    def _wake_head(self) -> None:
        head = self._head()
        if head is not None:
            head.wake.set()

    def _learn(self, key: CostKey, cost: Mapping[str, Any]) -> float | None:
        """Remember the shape's requested cost and what it spent; returns the actual cost (None if not reported)."""
        requested = cost.get("requestedQueryCost")
        reported = cost.get("actualQueryCost")
        actual = float(reported) if isinstance(reported, _NUMBER) and reported >= 0 else None
        if actual is not None:
            self._cost_spent.add(actual)
            self._spent[key] = actual
        if isinstance(requested, _NUMBER) and requested > 0:
            self._cost_requested.add(float(requested))
            if key not in self._prices and len(self._prices) >= MAX_PRICED_SHAPES:
                self._prices.clear()
                self._spent.clear()
            self._prices[key] = float(requested)
        return actual
