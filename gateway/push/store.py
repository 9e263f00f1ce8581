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

**Leases** (docs/replicas.md): claimed events, pushes and unpaid checks are leased under the claiming replica's owner
token (`gateway.push.replica`) for a short time that the replica's heartbeat renews while the work runs. A dead
replica's leases expire and another replica takes the work over; a replica that restarts under the same replica id
takes its earlier start's leases back at once. Settling leased work is fenced: it applies only while the lease is
still the settling replica's own.

Times are Unix epoch seconds (`time.time()`), because they must survive restarts. Everything that is written in one
`commit()` is applied atomically: an event is marked processed in the same transaction that stores what it produced.

The contract comes in narrow roles (`EventLog`, `OrderStateStore`, `PushDelivery`, `OutboxAdmin`, `LeaseLedger`,
`TrackingIndex`, `ShopLedger`, `ShopHoldStore`, `ComplianceStore`); `PushStore` holds one object of each (`store.events`,
`store.states`, ...) plus the lifecycle. `TrackingIndex` is what the query side reads as
`gateway.flows.PushStateReader`. The records they take and return are in `gateway.push.records`. The rules every
backend shares live once in `gateway.push.store_base`; which backend runs is chosen in `gateway.push.backends`. This
module imports neither.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from aiohttp import web

from gateway.push.records import (
    EventOutcome,
    FulfillmentState,
    LeaseHolder,
    LeaseKind,
    OrderState,
    Push,
    PushAttempt,
    PushStatus,
    RecordResult,
    ReplicaStatus,
    ShopHold,
    StoredCounts,
    StoredEvent,
    UnpaidCheck,
    WebhookMeta,
)
from gateway.push.replica import ReplicaIdentity


class LeaseListener(Protocol):
    """Told when leases change hands (the app counts these in /metrics; the store logs them)."""

    def took_over(self, kind: LeaseKind, from_owner: str, count: int, reason: str) -> None:
        """This replica took `count` leases of `kind` from `from_owner`; reason "expired" (its lease ran out) or
        "restart" (an earlier start of this replica held them)."""
        ...

    def lost(self, kind: LeaseKind, count: int) -> None:
        """This replica found `count` leases of `kind` it held taken by another (renewal or fenced settle)."""
        ...


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
        """Up to `limit` PENDING events not leased by someone else, oldest first (by seq), leased to this replica for
        `lease_seconds` (renewed by `renew_leases` while held). A crashed processor's lease expires and the events come
        back; taking an expired lease of another replica is reported as a takeover."""
        ...

    async def defer_events(self, seqs: Sequence[int], until: float) -> None:
        """Leave claimed events PENDING but unclaimable until `until` (epoch seconds): the rules could not finish them
        (Shopify could not answer the read their pushes need) and retry them later, with backoff. Only events this
        replica still holds are deferred; they are no longer held (no heartbeat renews a deferral)."""
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
class PushDelivery(Protocol):
    """The outbox as the delivery workers see it: they lease due pushes and settle each (delivered, retried later,
    dead-lettered), recording every attempt."""

    async def claim_pushes(self, limit: int, lease_seconds: float, now: float | None = None) -> list[Push]:
        """Up to `limit` PENDING pushes that are due and not leased, leased for `lease_seconds`, oldest first,
        skipping any push whose order has an earlier push still PENDING (per-order ordering)."""
        ...

    async def next_due(self) -> float | None:
        """The earliest due time / lease expiry among pending pushes and open unpaid checks; None when there are none.
        Pushes held back by an earlier push of their order count too, so a worker should sleep at least a short
        floor (the sender uses 50 ms) and rely on `wait_for_work` for prompt wake-ups."""
        ...

    async def mark_delivered(self, push_id: int, now: float | None = None) -> bool:
        """DELIVERED, if this replica still holds the push's lease (False, nothing written, when it was taken)."""
        ...

    async def schedule_retry(self, push_id: int, due_at: float, error: str) -> bool:
        """Release the lease, count the attempt, keep the row PENDING until `due_at` (fenced like mark_delivered)."""
        ...

    async def dead_letter(self, push_id: int, reason: str) -> bool:
        """DEAD with the reason (fenced like mark_delivered)."""
        ...

    async def record_attempt(self, push_id: int, attempt: PushAttempt) -> None:
        """Append to the push's attempt log (the newest MAX_ATTEMPTS_KEPT are kept; deleted with the push)."""
        ...


@runtime_checkable
class OutboxAdmin(Protocol):
    """The outbox as the operator sees it (`gateway outbox`, the console): the backlog, the pushes and their attempts;
    a push retried or dropped."""

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

    async def push_attempts(self, push_id: int) -> list[PushAttempt]:
        """The push's recorded attempts, oldest first (empty for an unknown push)."""
        ...

    async def retry_push(self, push_id: int, now: float | None = None) -> bool:
        """A push in RETRYABLE_STATUSES becomes PENDING and due now, its age and attempts reset. False if absent
        or in another status (delivered, unpushable)."""
        ...

    async def drop_push(self, push_id: int) -> bool:
        """A push in DROPPABLE_STATUSES becomes DROPPED (never sent). False if absent or in another status."""
        ...


@runtime_checkable
class LeaseLedger(Protocol):
    """This replica's leases: what it holds (claimed and not yet settled), their renewal, and who holds what.

    A claim makes the claimed rows *held*; settling them (commit, defer, mark_delivered, ...) ends the hold. A worker
    that gives up on claimed work without settling it calls `forget_leases`: the leases then expire instead of being
    renewed, and the work comes back."""

    @property
    def identity(self) -> ReplicaIdentity:
        """Whose leases these are: this process (a new nonce on every start)."""
        ...

    def watch_leases(self, listener: LeaseListener) -> None:
        """Report takeovers and losses to `listener` from now on (also those found when the store opens)."""
        ...

    def held_leases(self) -> dict[LeaseKind, int]:
        """How many leases of each kind this replica holds now (no store round trip: for /metrics)."""
        ...

    def forget_leases(self, kind: LeaseKind, ids: Iterable[str]) -> None:
        """Stop renewing these leases (the work was abandoned); they expire within one lease."""
        ...

    async def renew_leases(self, lease_seconds: float, now: float | None = None) -> dict[LeaseKind, int]:
        """The heartbeat: extend every held lease to `now + lease_seconds` and record the beat. Leases found taken by
        another replica (this one was paused or cut off past its lease) stop being held; returns their count by kind."""
        ...

    async def hold_push(self, push_id: int, lease_seconds: float, now: float | None = None) -> bool:
        """Right before a push is sent: extend its lease to `now + lease_seconds` if this replica still holds it,
        atomically; False (the push must not be sent) when another replica took it."""
        ...

    async def push_holders(self, push_ids: Sequence[int]) -> dict[int, LeaseHolder]:
        """Who holds each of these pending pushes (those not leased are left out), for the console."""
        ...

    async def replicas(self) -> list[ReplicaStatus]:
        """Every replica that has used the store, with what it holds, by replica id."""
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
class PushStore(Protocol):
    """Durable state of the push pipeline: one object per role, plus the lifecycle and the wake-up. Give each part of
    the gateway the role it uses, not the store. All methods are coroutines and never block the event loop. The shared
    rules (wake-ups, `now` defaults, truncation, status transitions) live once in `gateway.push.store_base`, whose
    role bases both backends' role classes extend.

    Implementations must be safe to share between the intake handler, the processing worker, several delivery
    workers and (for Redis) several gateway replicas. `now` arguments default to `time.time()`.
    """

    @property
    def events(self) -> EventLog: ...

    @property
    def states(self) -> OrderStateStore: ...

    @property
    def delivery(self) -> PushDelivery: ...

    @property
    def outbox(self) -> OutboxAdmin: ...

    @property
    def leases(self) -> LeaseLedger: ...

    @property
    def tracking(self) -> TrackingIndex: ...

    @property
    def shops(self) -> ShopLedger: ...

    @property
    def holds(self) -> ShopHoldStore: ...

    @property
    def compliance(self) -> ComplianceStore: ...

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


#: The store of the running app (also registered as `gateway.flows.PUSH_STATE` for the query side).
PUSH_STORE = web.AppKey("push_store", PushStore)
