"""One shop's Shopify cost bucket as the gateway sees it: the arithmetic (`BucketModel`) and where it is kept.

Shopify's model (the rate-limit page; `localstore.cost` follows it): a bucket of `maximum` points refilling at
`restore_rate` points a second; a query's *requested* cost leaves the bucket when it starts and stays out while it
runs; requested − actual comes back when it ends; every answer's `extensions.cost.throttleStatus` tells the balance
after that refund.

The gateway keeps a copy: a booking takes the requested cost out of the copy before the request is sent (a *hold*),
its answer gives back what it did not spend and folds Shopify's balance in. Where the copy lives decides who shares it:

- `LocalBucket`: in this process (SQLite storage, one gateway);
- `gateway.shopify.bucket_redis.RedisBucket`: in Redis, for every replica of the shop (Lua scripts on Redis time).

Both answer the same three questions (`SharedBucket`): may this hold be taken now, give this hold back, and what does
the bucket look like. Admission, queueing and deadlines are `gateway.shopify.budget.QueryBudget`'s.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "MAX_PRICED_SHAPES",
    "STANDARD_BUCKET",
    "STALE_AFTER_SECONDS",
    "BucketModel",
    "BucketStatus",
    "BucketView",
    "LocalBucket",
    "SharedBucket",
    "shape_id",
    "status_of",
]

#: Until Shopify has answered once: the standard plan's bucket (2000 points, 100 a second).
STANDARD_BUCKET = (2000.0, 100.0)
#: A balance Shopify told longer ago than this may be another plan's (the merchant changed it), another app may have
#: spent from it: the next booking then goes alone and its answer tells the truth before others follow (a burst after
#: a quiet second pays one round trip for it).
STALE_AFTER_SECONDS = 1.0
#: A request booked this long ago has reached Shopify (its charge is in any balance Shopify tells now).
REACHED_AFTER_SECONDS = 1.0
#: Documents are module constants; the cap only guards against a caller building documents on the fly.
MAX_PRICED_SHAPES = 1024


@dataclass(frozen=True, slots=True)
class BucketStatus:
    """Shopify's `extensions.cost.throttleStatus`: the balance after the answering query's refund."""

    maximum: float
    available: float
    restore_rate: float


def status_of(cost: Any) -> BucketStatus | None:
    """The `throttleStatus` of an `extensions.cost` object, or None when it is missing or malformed."""
    status = cost.get("throttleStatus") if isinstance(cost, dict) else None
    if not isinstance(status, dict):
        return None
    try:
        maximum = float(status["maximumAvailable"])
        available = float(status["currentlyAvailable"])
        restore_rate = float(status["restoreRate"])
    except (KeyError, TypeError, ValueError):
        return None
    if maximum <= 0 or restore_rate < 0:
        return None
    return BucketStatus(maximum, min(max(available, 0.0), maximum), restore_rate)


@dataclass(frozen=True, slots=True)
class BucketView:
    """The bucket as a booking found it."""

    available: float  # points in the copy now, holds taken out
    maximum: float
    restore_rate: float
    held: float  # points held by bookings in flight (of every replica sharing the bucket)
    fresh: bool  # Shopify told the balance within STALE_AFTER_SECONDS

    def seconds_until(self, points: float) -> float:
        """How long the restore rate alone takes to bring the copy to `points` (inf when it never does)."""
        missing = points - self.available
        if missing <= 0:
            return 0.0
        if points > self.maximum or self.restore_rate <= 0:
            return float("inf")
        return missing / self.restore_rate

    def best_case(self, seconds: float) -> float:
        """The most the bucket can hold `seconds` from now: every hold in flight refunded in full, plus the restore
        rate, capped at the bucket's size. Without a fresh balance from Shopify, the size itself."""
        if not self.fresh:
            return self.maximum
        return min(self.maximum, self.available + self.held + max(seconds, 0.0) * self.restore_rate)


@dataclass(slots=True)
class BucketModel:
    """The copy's arithmetic on an explicit clock (seconds): `available` as of `at`, the holds in flight."""

    maximum: float = STANDARD_BUCKET[0]
    restore_rate: float = STANDARD_BUCKET[1]
    available: float = STANDARD_BUCKET[0]
    at: float = 0.0
    #: when Shopify last told the balance (None: never)
    told_at: float | None = None
    holds: dict[str, float] = field(default_factory=dict)
    #: when each hold was booked
    booked_at: dict[str, float] = field(default_factory=dict)

    def refill(self, now: float) -> None:
        if now > self.at:
            self.available = min(self.maximum, self.available + (now - self.at) * self.restore_rate)
            self.at = now

    def view(self, now: float) -> BucketView:
        self.refill(now)
        fresh = self.told_at is not None and now - self.told_at <= STALE_AFTER_SECONDS
        return BucketView(self.available, self.maximum, self.restore_rate, sum(self.holds.values()), fresh)

    def take(self, hold: str, points: float, keep_free: float, now: float) -> BucketView | None:
        """Hold `points` when the copy has them with `keep_free` left over; None otherwise.

        Without a fresh balance a hold is taken only when no other went out in the last second: its answer tells the
        truth before others follow."""
        view = self.view(now)
        if not view.fresh and any(at > now - REACHED_AFTER_SECONDS for at in self.booked_at.values()):
            return None  # one went alone just now: wait for its answer (older holds are stuck, not news)
        if view.available - points < keep_free:
            return None
        self.holds[hold] = points
        self.booked_at[hold] = now
        self.available -= points
        return view

    def give_back(
        self, hold: str, refund: float, status: BucketStatus | None, now: float, *, throttled: bool = False
    ) -> None:
        """End a hold: credit `refund` (requested − actual; all of it when the query never ran) and fold in
        Shopify's balance when the answer told it (`throttled`: a THROTTLED answer)."""
        self.booked_at.pop(hold, None)
        # the other holds booked recently enough that they may not have reached Shopify yet (requests sent in parallel,
        # by other replicas too, reach it in any order)
        recent = [h for h, at in self.booked_at.items() if at > now - REACHED_AFTER_SECONDS]
        held = self.holds.pop(hold, None)
        self.refill(now)
        if held is not None:
            self.available = min(self.maximum, self.available + min(refund, held))
        if status is None:
            return
        # Two lower bounds of the bucket: the copy (every hold taken, every refund credited; too high only when
        # someone else spends), and Shopify's balance less the other holds booked within the last second (they may
        # not have reached Shopify; older ones have, and the balance counts the refunds of those whose answers were
        # lost). The higher one is the better, unless the answer proves the copy too high: THROTTLED, another bucket
        # size (the plan changed), or nothing else in flight (then Shopify's balance is the truth).
        told = status.available - sum(self.holds[h] for h in recent)
        proved = throttled or status.maximum != self.maximum or not self.holds
        self.maximum, self.restore_rate = status.maximum, status.restore_rate
        self.available = min(self.maximum, told if proved else max(self.available, told))
        self.told_at = now


class SharedBucket(Protocol):
    """Where one shop's bucket copy lives; all three calls are atomic."""

    async def take(self, hold: str, points: float, keep_free: float, ttl: float) -> tuple[bool, BucketView]:
        """Hold `points` if the copy has them with `keep_free` left, for at most about `ttl` seconds (a shared copy
        gives back a hold its replica never ended); (taken, the bucket as found)."""
        ...

    async def give_back(
        self, hold: str, refund: float, status: BucketStatus | None, *, throttled: bool = False
    ) -> None:
        """End `hold`: credit `refund`, fold in Shopify's balance (`BucketModel.give_back`); an unknown hold (a
        probe's answer, an expired hold): only the balance."""
        ...

    async def view(self) -> BucketView: ...

    async def price(self, shape: str) -> float | None:
        """The requested cost Shopify last asked for a query shape (by its `shape_id`), as any sharer learnt it."""
        ...

    async def remember_price(self, shape: str, price: float) -> None: ...


def shape_id(key: tuple[Any, ...]) -> str:
    """A short stable name for a query shape (a document and its page sizes), to share its price."""
    return hashlib.blake2b(repr(key).encode(), digest_size=8).hexdigest()


class LocalBucket:
    """The copy in this process, on an injectable clock (seconds; monotonic by default)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.model = BucketModel(at=clock())
        self._prices: dict[str, float] = {}

    async def take(self, hold: str, points: float, keep_free: float, ttl: float = 0.0) -> tuple[bool, BucketView]:
        # (every hold in this process is ended by its request: `ttl` is for the shared copy)
        now = self.clock()
        view = self.model.take(hold, points, keep_free, now)
        return (True, view) if view is not None else (False, self.model.view(now))

    async def give_back(
        self, hold: str, refund: float, status: BucketStatus | None, *, throttled: bool = False
    ) -> None:
        self.model.give_back(hold, refund, status, self.clock(), throttled=throttled)

    async def view(self) -> BucketView:
        return self.model.view(self.clock())

    async def price(self, shape: str) -> float | None:
        return self._prices.get(shape)

    async def remember_price(self, shape: str, price: float) -> None:
        if len(self._prices) >= MAX_PRICED_SHAPES and shape not in self._prices:
            self._prices.clear()
        self._prices[shape] = price
