"""The push store's records: what the `gateway.push.store` contract's methods take and return, and the limits and
transitions every backend applies to them. Plain values: no I/O, no backend."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from gateway.push.replica import replica_of


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
    `gateway.push.store_base`, before a backend sees the reason."""
    return reason[:MAX_REASON_CHARS]


@dataclass(frozen=True, slots=True)
class PushAttempt:
    """One delivery attempt, as the operator console shows it. Deleted with its push (purges included)."""

    at: float
    http_status: int | None  # None: no HTTP answer (timeout, connection refused)
    answer: str  # the platform's answer body (truncated to MAX_ANSWER_CHARS), or the transport error
    outcome: str  # delivered | retry | dead


class LeaseKind(StrEnum):
    """What a lease is on: a stored event (id: its seq), an outbox push (its id), an unpaid check (`check_lease_id`)."""

    EVENT = "event"
    PUSH = "push"
    CHECK = "check"


def check_lease_id(shop_key: str, order_id: int) -> str:
    """The lease id of an unpaid check (one check per order)."""
    return f"{shop_key}\n{order_id}"


@dataclass(frozen=True, slots=True)
class LeaseHolder:
    """Who holds a lease, since when, and until when it lasts unless renewed (epoch seconds)."""

    owner: str  # the owner token: "<replica id>/<nonce>"
    since: float
    until: float

    @property
    def replica_id(self) -> str:
        return replica_of(self.owner)

    @property
    def nonce(self) -> str:
        """Which start of the replica holds it."""
        return self.owner.rpartition("/")[2]


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """One replica as the store knows it (the console's Pushes page): its current start and what it holds."""

    replica_id: str
    nonce: str  # of its latest start
    started_at: float
    beat_at: float  # its latest heartbeat
    held: dict[LeaseKind, int]  # leases held under the replica id, by kind (any of its starts)
    oldest_since: float | None = None  # when its oldest held lease was taken


@dataclass(slots=True)
class EventOutcome:
    """Everything one processing step produced, applied atomically by `PushStore.commit`.

    `event_seq` (when set) marks that stored event done (or dead with `event_error`) in the same transaction. An outcome
    whose event or unpaid checks are leased by another replica now is not written at all (fencing): that replica
    redoes the work.
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
