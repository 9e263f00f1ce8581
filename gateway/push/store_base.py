"""The store layer above the backends: the rules every `PushStore` follows, written once, role by role.

Each role that carries a rule has a base class here (`EventLogBase`, `OrderStatesBase`, `PushDeliveryBase`,
`OutboxAdminBase`, `LeaseLedgerBase`, `TrackingIndexBase`, `ComplianceBase`): it implements the public methods and
leaves each backend's role class a primitive (`_claim_events`, `_mark_delivered`, ...) that only reads and writes.
The rules:

- **wake-ups**: the `WorkSignal` (gateway.push.work_signal) behind `wait_for_work`, notified after a write that made work (an event recorded or
  requeued, a push enqueued, released, retried or dropped, a check scheduled). The store hands each role its
  `notify`; Redis's also tells the other replicas (gateway.push.redis.notices).
- **`now` defaults**: a `now=None` argument becomes `time.time()` here, once; primitives get a concrete time and a
  concrete lease expiry.
- **truncation and normalisation**: reasons (`stored_reason`) and attempt answers (MAX_ANSWER_CHARS) are cut before a
  backend sees them, and how many attempts a push keeps (MAX_ATTEMPTS_KEPT) is passed down; looked-up ids are
  deduplicated (an empty lookup never reaches a backend), tracking numbers stripped.
- **status transitions**: which statuses `retry_push` and `drop_push` take a push from (RETRYABLE_STATUSES,
  DROPPABLE_STATUSES) are passed to the primitive, which checks them in its SQL or Lua.
- **leases**: which leases this replica holds (claimed, not yet settled) is kept in one `LeaseBook` (gateway.push.lease_book) that every role
  claiming or settling leased work shares, so the heartbeat (`renew_leases`) renews exactly those; every claim and
  settle passes the replica's owner token down, and what a backend reports (takeovers, fenced settles, leases found
  lost) is logged there, once, and told to the listener.

Roles with no shared rule (`ShopLedger`, `ShopHoldStore`) each backend implements directly.
"""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence

from gateway.push import records, store
from gateway.push.lease_book import LeaseBook, LeaseIds, Renewal, Taken
from gateway.push.records import LeaseKind
from gateway.push.replica import ReplicaIdentity


class EventLogBase(ABC):
    """`EventLog`'s rules (wake-ups, the leases of claimed events) over a backend's primitives."""

    def __init__(self, book: LeaseBook, notify: Callable[[], None]) -> None:
        self.book = book
        #: Wakes the waiting workers after a write that made work (and, on Redis, the other replicas').
        self._notify = notify

    async def record_event(
        self, shop_key: str, event_id: str, meta: records.WebhookMeta, body: bytes
    ) -> records.RecordResult:
        result = await self._record_event(shop_key, event_id, meta, body, time.time())
        if result == "new":
            self._notify()
        return result

    async def claim_events(
        self, limit: int, lease_seconds: float, now: float | None = None
    ) -> list[records.StoredEvent]:
        t = time.time() if now is None else now
        events, taken = await self._claim_events(limit, t, t + lease_seconds, self.book.identity.token)
        return self.book.claimed(LeaseKind.EVENT, events, [str(e.seq) for e in events], taken)

    async def defer_events(self, seqs: Sequence[int], until: float) -> None:
        if seqs:
            await self._defer_events(seqs, until, self.book.identity.token)
            self.book.release(LeaseKind.EVENT, map(str, seqs))

    async def requeue_event(self, seq: int) -> bool:
        done = await self._requeue_event(seq)
        if done:
            self._notify()
        return done

    @abstractmethod
    async def _record_event(
        self, shop_key: str, event_id: str, meta: records.WebhookMeta, body: bytes, received_at: float
    ) -> records.RecordResult:
        """Store the event (deduplicated on shop_key, event_id), durably before returning."""

    @abstractmethod
    async def _claim_events(
        self, limit: int, now: float, lease_until: float, owner: str
    ) -> tuple[list[records.StoredEvent], Taken]:
        """Lease up to `limit` claimable pending events to `owner` until `lease_until`, oldest first; with the
        events, the other owners whose expired leases were taken, and how many from each."""

    @abstractmethod
    async def _defer_events(self, seqs: Sequence[int], until: float, owner: str) -> None:
        """Leave those of the (non-empty) events that `owner` holds pending but unclaimable until `until`, no longer
        owned."""

    @abstractmethod
    async def _requeue_event(self, seq: int) -> bool:
        """The event back to PENDING, not leased, its error cleared; False when there is no such event."""

    @abstractmethod
    async def get_event(self, shop_key: str | None, event_id: str) -> records.StoredEvent | None:
        """See `EventLog.get_event`."""

    @abstractmethod
    async def last_event_at(self, shop_key: str) -> float | None:
        """See `EventLog.last_event_at`."""


class OrderStatesBase(ABC):
    """`OrderStateStore`'s rules (watermarked states, reasons cut before they are stored, the fencing of a commit reported, the leases of claimed unpaid checks) over a backend's primitives."""

    def __init__(self, book: LeaseBook, notify: Callable[[], None]) -> None:
        self.book = book
        #: Wakes the waiting workers after a write that made work (and, on Redis, the other replicas').
        self._notify = notify

    async def load_order_states(self, shop_key: str, order_ids: Sequence[int]) -> dict[int, records.OrderState]:
        ids = list(dict.fromkeys(order_ids))
        return await self._load_order_states(shop_key, ids) if ids else {}

    async def load_fulfillment_states(
        self, shop_key: str, fulfillment_ids: Sequence[int]
    ) -> dict[int, records.FulfillmentState]:
        ids = list(dict.fromkeys(fulfillment_ids))
        return await self._load_fulfillment_states(shop_key, ids) if ids else {}

    async def commit(self, outcomes: Sequence[records.EventOutcome]) -> None:
        if not outcomes:
            return
        wake, fenced = await self._commit_outcomes(
            [_with_stored_reasons(o) for o in outcomes], time.time(), self.book.identity.token
        )
        for o in outcomes:
            if o.event_seq is not None:
                self.book.release(LeaseKind.EVENT, [str(o.event_seq)])
            self.book.release(LeaseKind.CHECK, (records.check_lease_id(*c) for c in o.done_checks))
        for kind in (LeaseKind.EVENT, LeaseKind.CHECK):
            count = sum(1 for i in fenced if (outcomes[i].event_seq is not None) == (kind is LeaseKind.EVENT))
            if count:
                self.book.report_lost(kind, count, "the work done on them was not committed")
        if wake:
            self._notify()

    async def claim_unpaid_checks(
        self, limit: int, lease_seconds: float, now: float | None = None
    ) -> list[records.UnpaidCheck]:
        t = time.time() if now is None else now
        checks, taken = await self._claim_unpaid_checks(limit, t, t + lease_seconds, self.book.identity.token)
        ids = [records.check_lease_id(c.shop_key, c.order_id) for c in checks]
        return self.book.claimed(LeaseKind.CHECK, checks, ids, taken)

    @abstractmethod
    async def _load_order_states(self, shop_key: str, ids: Sequence[int]) -> dict[int, records.OrderState]:
        """The stored states of these orders (distinct ids, at least one); absent ones are left out."""

    @abstractmethod
    async def _load_fulfillment_states(self, shop_key: str, ids: Sequence[int]) -> dict[int, records.FulfillmentState]:
        """The stored states of these fulfillments (distinct ids, at least one); absent ones are left out."""

    @abstractmethod
    async def _commit_outcomes(
        self, outcomes: Sequence[records.EventOutcome], now: float, owner: str
    ) -> tuple[bool, list[int]]:
        """Write the outcomes atomically (`now`: when enqueued pushes were created), except those whose stored event
        or unpaid checks exist and are owned by someone other than `owner` (fencing). Returns whether one made new
        work (a pending push enqueued, an unpaid check scheduled) and the indexes of the fenced outcomes. Reasons are
        already cut to MAX_REASON_CHARS."""

    @abstractmethod
    async def _claim_unpaid_checks(
        self, limit: int, now: float, lease_until: float, owner: str
    ) -> tuple[list[records.UnpaidCheck], Taken]:
        """Lease up to `limit` due, open, unleased unpaid checks to `owner` until `lease_until` (and who they were
        taken from, as `_claim_events`)."""


class PushDeliveryBase(ABC):
    """`PushDelivery`'s rules (`now` defaults, the leases of claimed pushes, fenced settles reported, reasons and answers cut, wake-ups) over a backend's primitives."""

    def __init__(self, book: LeaseBook, notify: Callable[[], None]) -> None:
        self.book = book
        #: Wakes the waiting workers after a write that made work (and, on Redis, the other replicas').
        self._notify = notify

    async def claim_pushes(self, limit: int, lease_seconds: float, now: float | None = None) -> list[records.Push]:
        t = time.time() if now is None else now
        pushes, taken = await self._claim_pushes(limit, t, t + lease_seconds, self.book.identity.token)
        return self.book.claimed(LeaseKind.PUSH, pushes, [str(p.id) for p in pushes], taken)

    async def mark_delivered(self, push_id: int, now: float | None = None) -> bool:
        done = await self._mark_delivered(push_id, time.time() if now is None else now, self.book.identity.token)
        self.book.settled(push_id, done, "delivered")
        self._notify()  # the order's next push (if any) is now claimable
        return done

    async def schedule_retry(self, push_id: int, due_at: float, error: str) -> bool:
        done = await self._schedule_retry(push_id, due_at, records.stored_reason(error), self.book.identity.token)
        self.book.settled(push_id, done, "scheduled for a retry")
        self._notify()
        return done

    async def dead_letter(self, push_id: int, reason: str) -> bool:
        done = await self._dead_letter(push_id, records.stored_reason(reason), self.book.identity.token)
        self.book.settled(push_id, done, "dead-lettered")
        self._notify()
        return done

    async def record_attempt(self, push_id: int, attempt: records.PushAttempt) -> None:
        if len(attempt.answer) > records.MAX_ANSWER_CHARS:
            attempt = dataclasses.replace(attempt, answer=attempt.answer[: records.MAX_ANSWER_CHARS])
        await self._record_attempt(push_id, attempt, records.MAX_ATTEMPTS_KEPT)

    @abstractmethod
    async def _claim_pushes(
        self, limit: int, now: float, lease_until: float, owner: str
    ) -> tuple[list[records.Push], Taken]:
        """Lease up to `limit` due, unleased order heads to `owner` until `lease_until` (see
        `PushStore.claim_pushes`), and who they were taken from, as `_claim_events`."""

    @abstractmethod
    async def _mark_delivered(self, push_id: int, now: float, owner: str) -> bool:
        """If `owner` holds the push: DELIVERED at `now`, the attempt counted, the lease and the error cleared; the
        order's next push released. False (nothing written) when it does not."""

    @abstractmethod
    async def _schedule_retry(self, push_id: int, due_at: float, error: str, owner: str) -> bool:
        """If `owner` holds the PENDING push: due at `due_at`, the attempt counted, the lease released, `error`
        kept. False otherwise."""

    @abstractmethod
    async def _dead_letter(self, push_id: int, reason: str, owner: str) -> bool:
        """If `owner` holds the push: DEAD with `reason`, the attempt counted; the order's next push released."""

    @abstractmethod
    async def _record_attempt(self, push_id: int, attempt: records.PushAttempt, keep: int) -> None:
        """Append the attempt (its answer already cut), keeping the push's newest `keep` attempts."""

    @abstractmethod
    async def next_due(self) -> float | None:
        """See `PushDelivery.next_due`."""


class OutboxAdminBase(ABC):
    """`OutboxAdmin`'s rules (the operator's status transitions, `now` defaults, wake-ups) over a backend's primitives."""

    def __init__(self, book: LeaseBook, notify: Callable[[], None]) -> None:
        self.book = book
        #: Wakes the waiting workers after a write that made work (and, on Redis, the other replicas').
        self._notify = notify

    async def retry_push(self, push_id: int, now: float | None = None) -> bool:
        done = await self._retry_push(push_id, time.time() if now is None else now, records.RETRYABLE_STATUSES)
        if done:
            self._notify()
        return done

    async def drop_push(self, push_id: int) -> bool:
        done = await self._drop_push(push_id, records.DROPPABLE_STATUSES)
        if done:
            self._notify()  # a dropped head frees the order's next push
        return done

    @abstractmethod
    async def _retry_push(self, push_id: int, now: float, from_statuses: Sequence[records.PushStatus]) -> bool:
        """A push in `from_statuses` becomes PENDING, due and created at `now`, attempts 0, not leased."""

    @abstractmethod
    async def _drop_push(self, push_id: int, from_statuses: Sequence[records.PushStatus]) -> bool:
        """A push in `from_statuses` becomes DROPPED, not leased; a pending one leaves its order's queue."""

    @abstractmethod
    async def backlog(self) -> dict[str, int]:
        """See `OutboxAdmin.backlog`."""

    @abstractmethod
    async def list_pushes(
        self, shop_key: str | None = None, statuses: Sequence[records.PushStatus] = (), limit: int = 50
    ) -> list[records.Push]:
        """See `OutboxAdmin.list_pushes`."""

    @abstractmethod
    async def get_push(self, push_id: int) -> records.Push | None:
        """See `OutboxAdmin.get_push`."""

    @abstractmethod
    async def push_attempts(self, push_id: int) -> list[records.PushAttempt]:
        """See `OutboxAdmin.push_attempts`."""


class LeaseLedgerBase(ABC):
    """`LeaseLedger`'s rules (renew exactly what this replica holds, report what was lost) over a backend's primitives."""

    def __init__(self, book: LeaseBook) -> None:
        self.book = book

    @property
    def identity(self) -> ReplicaIdentity:
        return self.book.identity

    def watch_leases(self, listener: store.LeaseListener) -> None:
        self.book.watch(listener)

    def held_leases(self) -> dict[LeaseKind, int]:
        return self.book.counts()

    def forget_leases(self, kind: LeaseKind, ids: Iterable[str]) -> None:
        self.book.release(kind, ids)

    async def renew_leases(self, lease_seconds: float, now: float | None = None) -> dict[LeaseKind, int]:
        t = time.time() if now is None else now
        held = self.book.held()
        renewal = await self._renew_leases(held, t, t + lease_seconds, self.book.identity.token, beat=True)
        for kind, ids in renewal.gone.items():
            self.book.release(kind, ids)  # not renewable; whoever settled it reported anything amiss
        counts = {}
        for kind, ids in renewal.taken.items():
            self.book.release(kind, ids)
            self.book.report_lost(kind, len(ids), "taken by another replica")
            counts[kind] = len(ids)
        return counts

    async def hold_push(self, push_id: int, lease_seconds: float, now: float | None = None) -> bool:
        t = time.time() if now is None else now
        renewal = await self._renew_leases(
            {LeaseKind.PUSH: [str(push_id)]}, t, t + lease_seconds, self.book.identity.token
        )
        if renewal.taken or renewal.gone:
            self.book.release(LeaseKind.PUSH, [str(push_id)])
            self.book.report_lost(
                LeaseKind.PUSH, 1, f"push {push_id} not sent: another replica has taken or settled it"
            )
            return False
        return True

    @abstractmethod
    async def _renew_leases(
        self, held: LeaseIds, now: float, lease_until: float, owner: str, *, beat: bool = False
    ) -> Renewal:
        """Extend to `lease_until` each of these leases that `owner` still holds on pending work; return the others.
        With `beat`, also record this replica's heartbeat at `now` (see `replicas`)."""

    @abstractmethod
    async def push_holders(self, push_ids: Sequence[int]) -> dict[int, records.LeaseHolder]:
        """See `LeaseLedger.push_holders`."""

    @abstractmethod
    async def replicas(self) -> list[records.ReplicaStatus]:
        """See `LeaseLedger.replicas`."""


class TrackingIndexBase(ABC):
    """`TrackingIndex`'s rule (a tracking number is looked up stripped) over a backend's primitives."""

    async def order_name_for_tracking(self, shop_key: str, tracking_number: str) -> str | None:
        return await self._order_name_for_tracking(shop_key, tracking_number.strip())

    @abstractmethod
    async def _order_name_for_tracking(self, shop_key: str, tracking_number: str) -> str | None:
        """The indexed order name of this (stripped) tracking number."""

    @abstractmethod
    async def delivered_package_pushes(self, shop_key: str, order_id: int) -> dict[str, int]:
        """See `TrackingIndex.delivered_package_pushes`."""


class ComplianceBase(ABC):
    """`ComplianceStore` over a backend's primitive: a data request counts what a purge deletes, by the same rule."""

    async def purge_customer(
        self, shop_key: str, customer_id: int | None, order_ids: Sequence[int]
    ) -> records.StoredCounts:
        return await self._customer_data(shop_key, customer_id, order_ids, delete=True)

    async def count_customer_data(
        self, shop_key: str, customer_id: int | None, order_ids: Sequence[int]
    ) -> records.StoredCounts:
        return await self._customer_data(shop_key, customer_id, order_ids, delete=False)

    @abstractmethod
    async def _customer_data(
        self, shop_key: str, customer_id: int | None, order_ids: Sequence[int], *, delete: bool
    ) -> records.StoredCounts:
        """Count, or delete (`delete`), what is stored about the customer's orders (see `purge_customer`)."""

    @abstractmethod
    async def purge_shop(self, shop_key: str) -> records.StoredCounts:
        """See `ComplianceStore.purge_shop`."""


def _with_stored_reasons(o: records.EventOutcome) -> records.EventOutcome:
    """The outcome with its event error and push reasons cut to MAX_REASON_CHARS (the same object when none is
    longer: the common case costs no copy). The caller's outcome is never changed."""
    long_push = any(len(p.reason) > records.MAX_REASON_CHARS for p in o.pushes)
    if not long_push and len(o.event_error) <= records.MAX_REASON_CHARS:
        return o
    return dataclasses.replace(
        o,
        event_error=records.stored_reason(o.event_error),
        pushes=[dataclasses.replace(p, reason=records.stored_reason(p.reason)) for p in o.pushes],
    )
