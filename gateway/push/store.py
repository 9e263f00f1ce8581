"""The push pipeline's durable store: the contract every backend (SQLite, Redis) implements.

What it keeps, per shop:
- **webhook events**: each accepted Shopify delivery, stored (and deduplicated by event id) *before* Shopify gets its 2xx;
  a processing worker claims them afterwards, so a crash after the ack loses nothing.
- **order and fulfillment state**: the newest `updated_at` seen (an older delivery never overrides a newer state),
  whether the order's receipt was decided, and the last fulfillment status seen. No shopper data: what a push says,
  and to whom, is read from Shopify when it is decided (gateway.push.reader).
- **the outbox**: one row per push, identified by a *dedupe key* (`receipt:<order id>`, `unpaid:<order id>`,
  `package:<fulfillment id>:<status>`), so enqueueing the same push twice — from a duplicate webhook, a replay or a
  reconciliation pass — is harmless. Rows are leased by delivery workers (a crashed worker's lease expires and the row
  comes back), delivered, retried later, dead-lettered with a reason, or recorded as *unpushable* (no recipient).
  Pushes of one order go out in order: a row is claimable only when no earlier row of the same order is still pending.
  Delivered `package/update` rows double as the delivery log the open-API `notify_send_count` reads.
- **unpaid checks**: an `Order/Unpaid` push is not enqueued at orders/create; a check is scheduled instead, and when it
  falls due the rules re-read the order from Shopify and enqueue the push only if it is still unpaid and not cancelled.
  (Keeping the check out of the outbox means a pending Unpaid never holds back the order's Receipt.)
- **the tracking index** (tracking number → order), the **reconciliation watermark**, and whether the shop is installed.
- **shop holds**: a shop whose push read failed waits, backing off (gateway.push.holds); kept here so that every
  replica sharing the store holds the shop alike.

Times are Unix epoch seconds (`time.time()`), because they must survive restarts. Everything that is written in one
`commit()` is applied atomically: an event is marked processed in the same transaction that stores what it produced.

The contract comes in narrow roles (`EventLog`, `OrderStateStore`, `PushOutbox`, `TrackingIndex`, `ShopLedger`,
`ComplianceStore`); `PushStore` is all of them plus the lifecycle. `TrackingIndex` is what the query side reads as
`gateway.flows.PushStateReader`. The rules every backend shares live once in `gateway.push.store_base`; which
backend runs is chosen in `gateway.push.backends`. This module imports neither.
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol, runtime_checkable

from aiohttp import web

# --- records -------------------------------------------------------------------------------------------------------


class EventStatus(StrEnum):
    PENDING = "pending"  # stored and acknowledged, not yet processed
    DONE = "done"  # processed: whatever it produced is in the outbox/state
    DEAD = "dead"  # could not be processed (e.g. a body that is not JSON); kept with the reason


class PushStatus(StrEnum):
    PENDING = "pending"  # waiting for its due time (retries too), or leased by a worker right now
    DELIVERED = "delivered"
    DEAD = "dead"  # permanent failure, or retried past push.max_age_seconds; kept with the reason
    UNPUSHABLE = "unpushable"  # recorded, never sent: the order carries no PSID, email or phone (reason says so)
    DROPPED = "dropped"  # an operator dropped it (`gateway outbox drop`)


#: The statuses `retry_push` takes a push from (to PENDING, due now) and those `drop_push` takes it from (to DROPPED):
#: the operator's transitions, stated once for every backend (SQL `IN (...)`, Lua arguments).
RETRYABLE_STATUSES: tuple[PushStatus, ...] = (PushStatus.DEAD, PushStatus.DROPPED, PushStatus.PENDING)
DROPPABLE_STATUSES: tuple[PushStatus, ...] = (PushStatus.PENDING, PushStatus.DEAD)

RecordResult = Literal["new", "duplicate"]


@dataclass(frozen=True, slots=True)
class WebhookMeta:
    """The Shopify headers kept with an event (never the HMAC)."""

    topic: str
    webhook_id: str = ""
    triggered_at: str = ""
    api_version: str = ""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int  # store-wide, increasing in arrival order
    shop_key: str
    event_id: str  # X-Shopify-Event-Id (fallback X-Shopify-Webhook-Id)
    meta: WebhookMeta
    body: bytes  # the raw body whose HMAC was verified
    received_at: float
    status: EventStatus
    error: str = ""


@dataclass(frozen=True, slots=True)
class OrderState:
    """What the rules remember about one order. `updated_at` is the watermark: the payload's updated_at, epoch seconds."""

    shop_key: str
    order_id: int
    order_name: str  # without the leading '#'
    updated_at: float
    financial_status: str = ""  # Shopify REST words, lower case: pending, authorized, partially_paid, paid, ...
    cancelled: bool = False
    customer_id: int | None = None
    #: Whether the rules decided the order's Order/Receipt: an order is announced paid once. The receipt itself is
    #: never kept (the push read fetches it when the push is rendered).
    receipt_decided: bool = False


@dataclass(frozen=True, slots=True)
class FulfillmentState:
    """The newest state seen of one fulfillment; `status` is the push word (shipped, in_transit, delivered, ...)."""

    shop_key: str
    fulfillment_id: int
    order_id: int
    updated_at: float
    status: str
    name: str = ""
    tracking_number: str = ""
    tracking_url: str = ""


@dataclass(frozen=True, slots=True)
class TrackingEntry:
    shop_key: str
    tracking_number: str
    order_id: int
    order_name: str  # without '#'
    customer_id: int | None = None


@dataclass(frozen=True, slots=True)
class UnpaidCheck:
    """Re-read the order at `due_at`; push Order/Unpaid only if it is still unpaid and not cancelled. Once per order."""

    shop_key: str
    order_id: int
    due_at: float
    customer_id: int | None = None


def idempotency_key(shop_key: str, dedupe_key: str) -> str:
    """The `Idempotency-Key` header of a push: derived from its dedupe key, so it is the same on every retry, replay
    and reconciliation of the same push, in every backend and replica."""
    return hashlib.sha256(f"{shop_key}\n{dedupe_key}".encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class NewPush:
    """A push the rules want sent. Enqueueing is idempotent on (shop_key, dedupe_key): the first one wins."""

    shop_key: str
    dedupe_key: str
    order_id: int
    topic: str  # Order/Receipt | Order/Unpaid | package/update
    body: bytes  # the exact JSON body to POST (signed at send time, so a rotated secret applies to retries)
    due_at: float
    fulfillment_id: int | None = None
    customer_id: int | None = None
    #: PushStatus.PENDING normally; UNPUSHABLE to record a push that cannot be addressed (with `reason`).
    status: PushStatus = PushStatus.PENDING
    reason: str = ""

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(self.shop_key, self.dedupe_key)


@dataclass(frozen=True, slots=True)
class Push:
    """One outbox row."""

    id: int
    shop_key: str
    dedupe_key: str
    idempotency_key: str
    order_id: int
    topic: str
    body: bytes
    status: PushStatus
    created_at: float  # first enqueued: the retry age (push.max_age_seconds) counts from here
    due_at: float
    attempts: int = 0
    last_error: str = ""
    delivered_at: float | None = None
    fulfillment_id: int | None = None


#: Attempts kept per push (the newest); older ones are forgotten.
MAX_ATTEMPTS_KEPT = 20
#: How much of the platform's answer an attempt keeps.
MAX_ANSWER_CHARS = 300
#: How much of a reason is kept: a push's `last_error` (retry, dead letter, unpushable) and a dead event's error.
MAX_REASON_CHARS = 500


def stored_reason(reason: str) -> str:
    """The reason as it is stored: cut to MAX_REASON_CHARS (an upstream error text can be long). Applied once, in
    `PushStoreBase`, before a backend sees the reason."""
    return reason[:MAX_REASON_CHARS]


@dataclass(frozen=True, slots=True)
class PushAttempt:
    """One delivery attempt, as the operator console shows it. Deleted with its push (purges included)."""

    at: float
    http_status: int | None  # None: no HTTP answer (timeout, connection refused)
    answer: str  # the platform's answer body (truncated to MAX_ANSWER_CHARS), or the transport error
    outcome: str  # delivered | retry | dead


@dataclass(slots=True)
class EventOutcome:
    """Everything one processing step produced, applied atomically by `PushStore.commit`.

    `event_seq` (when set) marks that stored event done (or dead with `event_error`) in the same transaction.
    `done_checks` removes unpaid checks that were handled. Order/fulfillment states are upserted only when their
    `updated_at` is not older than the stored one (the store enforces the watermark too, not only the rules).
    """

    event_seq: int | None = None
    event_error: str = ""  # non-empty: the event goes to EventStatus.DEAD with this reason
    order_id: int | None = None  # the order the event was about (kept for purges)
    customer_id: int | None = None  # the customer the event was about (kept for purges)
    order_states: list[OrderState] = field(default_factory=list)
    fulfillment_states: list[FulfillmentState] = field(default_factory=list)
    pushes: list[NewPush] = field(default_factory=list)
    tracking: list[TrackingEntry] = field(default_factory=list)
    unpaid_checks: list[UnpaidCheck] = field(default_factory=list)
    done_checks: list[tuple[str, int]] = field(default_factory=list)  # (shop_key, order_id)


@dataclass(frozen=True, slots=True)
class ShopHold:
    """A shop whose push read failed: its events wait until `until` (epoch seconds); `failures`: reads failed in a
    row (what the next hold backs off from)."""

    until: float
    failures: int


@dataclass(frozen=True, slots=True)
class StoredCounts:
    """What a purge removed or a data request found (numbers only: safe to log)."""

    events: int = 0
    orders: int = 0
    fulfillments: int = 0
    pushes: int = 0
    tracking_numbers: int = 0
    unpaid_checks: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "events": self.events,
            "orders": self.orders,
            "fulfillments": self.fulfillments,
            "pushes": self.pushes,
            "tracking_numbers": self.tracking_numbers,
            "unpaid_checks": self.unpaid_checks,
        }


# --- the contract: one narrow protocol per role, and PushStore, all of them -----------------------------------------


@runtime_checkable
class EventLog(Protocol):
    """The stored webhooks: intake records them, the processing worker claims them, `gateway replay` requeues one."""

    async def record_event(self, shop_key: str, event_id: str, meta: WebhookMeta, body: bytes) -> RecordResult:
        """Store an accepted webhook durably and deduplicate it in one step. Returns "new" when stored now,
        "duplicate" when (shop_key, event_id) was already stored. Returns only once the event is durable (the caller
        acknowledges Shopify right after). Backends batch concurrent calls into one commit."""
        ...

    async def claim_events(self, limit: int, lease_seconds: float, now: float | None = None) -> list[StoredEvent]:
        """Up to `limit` PENDING events not leased by someone else, oldest first (by seq), leased for `lease_seconds`.
        A crashed processor's lease expires and the events come back."""
        ...

    async def defer_events(self, seqs: Sequence[int], until: float) -> None:
        """Leave claimed events PENDING but unclaimable until `until` (epoch seconds): the rules could not finish them
        (Shopify could not answer the read their pushes need) and retry them later, with backoff."""
        ...

    async def get_event(self, shop_key: str | None, event_id: str) -> StoredEvent | None:
        """An event by its Shopify event id (any shop when shop_key is None), whatever its status."""
        ...

    async def requeue_event(self, seq: int) -> bool:
        """`gateway replay`: put a stored event back to PENDING so the rules run on it again (dedupe keys keep
        the pushes it already produced from going out twice). False when there is no such event."""
        ...

    async def last_event_at(self, shop_key: str) -> float | None:
        """When the shop's most recent stored webhook arrived (epoch seconds), None when none is stored."""
        ...


@runtime_checkable
class OrderStateStore(Protocol):
    """What the rules remember (order and fulfillment states, unpaid checks) and the atomic `commit` of an outcome."""

    async def load_order_states(self, shop_key: str, order_ids: Sequence[int]) -> dict[int, OrderState]: ...

    async def load_fulfillment_states(
        self, shop_key: str, fulfillment_ids: Sequence[int]
    ) -> dict[int, FulfillmentState]: ...

    async def commit(self, outcomes: Sequence[EventOutcome]) -> None:
        """Apply the outcomes in one transaction: state upserts (watermarked), idempotent outbox enqueues, tracking
        entries, unpaid checks scheduled (once per order: a second schedule for the same order is ignored) or done,
        and the events marked done/dead. Wakes delivery workers if a push became due."""
        ...

    async def claim_unpaid_checks(
        self, limit: int, lease_seconds: float, now: float | None = None
    ) -> list[UnpaidCheck]:
        """Due unpaid checks, leased; finish each with `commit(EventOutcome(done_checks=[...], ...))`."""
        ...


@runtime_checkable
class PushOutbox(Protocol):
    """The outbox: delivery workers lease and settle pushes; the operator (CLI, console) lists, retries, drops."""

    async def claim_pushes(self, limit: int, lease_seconds: float, now: float | None = None) -> list[Push]:
        """Up to `limit` PENDING pushes that are due and not leased, leased for `lease_seconds`, oldest first,
        skipping any push whose order has an earlier push still PENDING (per-order ordering)."""
        ...

    async def next_due(self) -> float | None:
        """The earliest due time / lease expiry among pending pushes and open unpaid checks; None when there are none.
        Pushes held back by an earlier push of their order count too, so a worker should sleep at least a short
        floor (the sender uses 50 ms) and rely on `wait_for_work` for prompt wake-ups."""
        ...

    async def mark_delivered(self, push_id: int, now: float | None = None) -> None: ...

    async def schedule_retry(self, push_id: int, due_at: float, error: str) -> None:
        """Release the lease, count the attempt, keep the row PENDING until `due_at`."""
        ...

    async def dead_letter(self, push_id: int, reason: str) -> None: ...

    async def record_attempt(self, push_id: int, attempt: PushAttempt) -> None:
        """Append to the push's attempt log (the newest MAX_ATTEMPTS_KEPT are kept; deleted with the push)."""
        ...

    async def push_attempts(self, push_id: int) -> list[PushAttempt]:
        """The push's recorded attempts, oldest first (empty for an unknown push)."""
        ...

    async def backlog(self) -> dict[str, int]:
        """Counts for /metrics, the CLI and tests: {"events": pending events (leased or not), "pushes": pending
        pushes, "dead": dead letters, "checks": open unpaid checks}."""
        ...

    async def list_pushes(
        self, shop_key: str | None = None, statuses: Sequence[PushStatus] = (), limit: int = 50
    ) -> list[Push]:
        """Newest first."""
        ...

    async def get_push(self, push_id: int) -> Push | None: ...

    async def retry_push(self, push_id: int, now: float | None = None) -> bool:
        """A push in RETRYABLE_STATUSES becomes PENDING and due now, its age and attempts reset. False if absent
        or in another status (delivered, unpushable)."""
        ...

    async def drop_push(self, push_id: int) -> bool:
        """A push in DROPPABLE_STATUSES becomes DROPPED (never sent). False if absent or in another status."""
        ...


@runtime_checkable
class TrackingIndex(Protocol):
    """The two reads the query side makes (it sees them as `gateway.flows.PushStateReader`)."""

    async def order_name_for_tracking(self, shop_key: str, tracking_number: str) -> str | None: ...

    async def delivered_package_pushes(self, shop_key: str, order_id: int) -> dict[str, int]: ...


@runtime_checkable
class ShopLedger(Protocol):
    """Per shop: the reconciliation watermark and whether the app is installed."""

    async def get_watermark(self, shop_key: str) -> str | None:
        """The reconciliation watermark (ISO 8601 UTC, Shopify's updated_at format) or None before the first pass."""
        ...

    async def set_watermark(self, shop_key: str, watermark: str) -> None: ...

    async def set_shop_installed(self, shop_key: str, installed: bool) -> None:
        """app/uninstalled sets False (pushes stop); a successful `webhooks sync` sets True again."""
        ...

    async def shop_installed(self, shop_key: str) -> bool:
        """True unless app/uninstalled was received (and not undone)."""
        ...


@runtime_checkable
class ShopHoldStore(Protocol):
    """The holds of shops whose push read failed (gateway.push.holds), shared by every replica of the store."""

    async def shop_holds(self, shop_keys: Sequence[str]) -> dict[str, ShopHold]:
        """The holds recorded for these shops (also those whose `until` has passed: their failures still count)."""
        ...

    async def hold_shop(self, shop_key: str, hold: ShopHold) -> None:
        """Record the shop's hold, replacing the one there was."""
        ...

    async def release_shop(self, shop_key: str) -> None:
        """The shop's read answered again: forget its hold."""
        ...


@runtime_checkable
class ComplianceStore(Protocol):
    """The GDPR webhooks' side of the store."""

    async def purge_customer(self, shop_key: str, customer_id: int | None, order_ids: Sequence[int]) -> StoredCounts:
        """customers/redact: delete everything stored about that customer's orders (events, states, outbox rows
        including the delivery log, tracking entries, unpaid checks)."""
        ...

    async def purge_shop(self, shop_key: str) -> StoredCounts:
        """shop/redact: delete everything stored for the shop."""
        ...

    async def count_customer_data(
        self, shop_key: str, customer_id: int | None, order_ids: Sequence[int]
    ) -> StoredCounts:
        """customers/data_request: what is stored about that customer (counts only)."""
        ...


@runtime_checkable
class PushStore(
    EventLog, OrderStateStore, PushOutbox, TrackingIndex, ShopLedger, ShopHoldStore, ComplianceStore, Protocol
):
    """Durable state of the push pipeline: every role, plus the lifecycle and the wake-up. All methods are coroutines
    and never block the event loop. The shared rules (wake-ups, `now` defaults, truncation, status transitions) live
    once in `gateway.push.store_base.PushStoreBase`, which both backends extend.

    Implementations must be safe to share between the intake handler, the processing worker, several delivery
    workers and (for Redis) several gateway replicas. `now` arguments default to `time.time()`.
    """

    async def open(self) -> None:
        """Connect / create the schema / run pending migrations. Called once before use."""
        ...

    async def close(self) -> None:
        """Flush whatever is queued and release connections/threads."""
        ...

    async def ping(self) -> str | None:
        """Readiness: None when the store can be written, else a short reason."""
        ...

    async def wait_for_work(self, max_wait_seconds: float) -> None:
        """Return when new work was committed (events recorded, pushes enqueued or released, checks scheduled) or
        after `max_wait_seconds`, whichever comes first. Every waiting worker wakes. A notification that happened
        since the calling task's previous call returned makes the call return at once (so a notification between a
        worker's claim and its wait is never lost). Redis backends also wake on other replicas' notifications."""
        ...


class WorkSignal:
    """The wake-up behind `PushStore.wait_for_work` (held by `PushStoreBase`): `notify()` after committing new work.

    Every waiting task wakes. Each task's last-seen generation is remembered, so a notification that came between a
    task's previous wait and this one (say, while it was claiming) makes the wait return at once instead of being lost.
    """

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None
        self._generation = 0
        self._seen: weakref.WeakKeyDictionary[asyncio.Task[Any], int] = weakref.WeakKeyDictionary()

    def notify(self) -> None:
        self._generation += 1
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait(self, max_wait_seconds: float) -> None:
        task = asyncio.current_task()
        seen = self._seen.get(task) if task is not None else None
        if task is not None:
            self._seen[task] = self._generation
        if seen is not None and seen != self._generation:
            return  # notified since this task last waited: its claim may have raced the notification
        if self._event is None:
            self._event = asyncio.Event()
        event = self._event
        # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that arrives just as the event is
        # set, and the cancelled worker then runs on, so the app never finishes shutting down (seen as a teardown
        # hang in the tests and a `gateway serve` that ignores SIGTERM).
        try:
            async with asyncio.timeout(max_wait_seconds):
                await event.wait()
        except TimeoutError:
            pass
        if task is not None:
            self._seen[task] = self._generation


#: The store of the running app (also registered as `gateway.flows.PUSH_STATE` for the query side).
PUSH_STORE = web.AppKey("push_store", PushStore)
