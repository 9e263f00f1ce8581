"""The store layer above the backends: the rules every `PushStore` follows, written once.

`PushStoreBase` implements the public methods that carry a rule and leaves each backend a primitive (`_claim_events`,
`_mark_delivered`, ...) that only reads and writes:

- **wake-ups**: the `WorkSignal` behind `wait_for_work`, notified after a write that made work (an event recorded or
  requeued, a push enqueued, released, retried or dropped, a check scheduled). A backend that has other replicas to
  tell (Redis) extends `_notify`.
- **`now` defaults**: a `now=None` argument becomes `time.time()` here, once; primitives get a concrete time and a
  concrete lease expiry.
- **truncation and normalisation**: reasons (`stored_reason`) and attempt answers (MAX_ANSWER_CHARS) are cut before a
  backend sees them, and how many attempts a push keeps (MAX_ATTEMPTS_KEPT) is passed down; looked-up ids are
  deduplicated (an empty lookup never reaches a backend), tracking numbers stripped.
- **status transitions**: which statuses `retry_push` and `drop_push` take a push from (RETRYABLE_STATUSES,
  DROPPABLE_STATUSES) are passed to the primitive, which checks them in its SQL or Lua.

Methods with no shared rule (most reads, `purge_shop`, the watermarks, ...) each backend implements directly.
"""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence

from gateway.push import store


class PushStoreBase(ABC):
    """The shared half of every `PushStore`; a backend subclasses it and implements the primitives below."""

    def __init__(self) -> None:
        self._work = store.WorkSignal()

    # wake-ups -----------------------------------------------------------------------------------------------------

    def _notify(self) -> None:
        """New work was committed: wake the waiting workers."""
        self._work.notify()

    async def wait_for_work(self, max_wait_seconds: float) -> None:
        await self._work.wait(max_wait_seconds)

    # events -------------------------------------------------------------------------------------------------------

    async def record_event(
        self, shop_key: str, event_id: str, meta: store.WebhookMeta, body: bytes
    ) -> store.RecordResult:
        result = await self._record_event(shop_key, event_id, meta, body, time.time())
        if result == "new":
            self._notify()
        return result

    async def claim_events(self, limit: int, lease_seconds: float, now: float | None = None) -> list[store.StoredEvent]:
        t = time.time() if now is None else now
        return await self._claim_events(limit, t, t + lease_seconds)

    async def defer_events(self, seqs: Sequence[int], until: float) -> None:
        if seqs:
            await self._defer_events(seqs, until)

    async def requeue_event(self, seq: int) -> bool:
        done = await self._requeue_event(seq)
        if done:
            self._notify()
        return done

    # rules --------------------------------------------------------------------------------------------------------

    async def load_order_states(self, shop_key: str, order_ids: Sequence[int]) -> dict[int, store.OrderState]:
        ids = list(dict.fromkeys(order_ids))
        return await self._load_order_states(shop_key, ids) if ids else {}

    async def load_fulfillment_states(
        self, shop_key: str, fulfillment_ids: Sequence[int]
    ) -> dict[int, store.FulfillmentState]:
        ids = list(dict.fromkeys(fulfillment_ids))
        return await self._load_fulfillment_states(shop_key, ids) if ids else {}

    async def commit(self, outcomes: Sequence[store.EventOutcome]) -> None:
        if not outcomes:
            return
        if await self._commit_outcomes([_with_stored_reasons(o) for o in outcomes], time.time()):
            self._notify()

    async def claim_unpaid_checks(
        self, limit: int, lease_seconds: float, now: float | None = None
    ) -> list[store.UnpaidCheck]:
        t = time.time() if now is None else now
        return await self._claim_unpaid_checks(limit, t, t + lease_seconds)

    # delivery -----------------------------------------------------------------------------------------------------

    async def claim_pushes(self, limit: int, lease_seconds: float, now: float | None = None) -> list[store.Push]:
        t = time.time() if now is None else now
        return await self._claim_pushes(limit, t, t + lease_seconds)

    async def mark_delivered(self, push_id: int, now: float | None = None) -> None:
        await self._mark_delivered(push_id, time.time() if now is None else now)
        self._notify()  # the order's next push (if any) is now claimable

    async def schedule_retry(self, push_id: int, due_at: float, error: str) -> None:
        await self._schedule_retry(push_id, due_at, store.stored_reason(error))
        self._notify()

    async def dead_letter(self, push_id: int, reason: str) -> None:
        await self._dead_letter(push_id, store.stored_reason(reason))
        self._notify()

    async def record_attempt(self, push_id: int, attempt: store.PushAttempt) -> None:
        if len(attempt.answer) > store.MAX_ANSWER_CHARS:
            attempt = dataclasses.replace(attempt, answer=attempt.answer[: store.MAX_ANSWER_CHARS])
        await self._record_attempt(push_id, attempt, store.MAX_ATTEMPTS_KEPT)

    # operator -----------------------------------------------------------------------------------------------------

    async def retry_push(self, push_id: int, now: float | None = None) -> bool:
        done = await self._retry_push(push_id, time.time() if now is None else now, store.RETRYABLE_STATUSES)
        if done:
            self._notify()
        return done

    async def drop_push(self, push_id: int) -> bool:
        done = await self._drop_push(push_id, store.DROPPABLE_STATUSES)
        if done:
            self._notify()  # a dropped head frees the order's next push
        return done

    # tracking index and compliance --------------------------------------------------------------------------------

    async def order_name_for_tracking(self, shop_key: str, tracking_number: str) -> str | None:
        return await self._order_name_for_tracking(shop_key, tracking_number.strip())

    async def purge_customer(
        self, shop_key: str, customer_id: int | None, order_ids: Sequence[int]
    ) -> store.StoredCounts:
        return await self._customer_data(shop_key, customer_id, order_ids, delete=True)

    async def count_customer_data(
        self, shop_key: str, customer_id: int | None, order_ids: Sequence[int]
    ) -> store.StoredCounts:
        return await self._customer_data(shop_key, customer_id, order_ids, delete=False)

    # the backend's primitives -------------------------------------------------------------------------------------

    @abstractmethod
    async def _record_event(
        self, shop_key: str, event_id: str, meta: store.WebhookMeta, body: bytes, received_at: float
    ) -> store.RecordResult:
        """Store the event (deduplicated on shop_key, event_id), durably before returning."""

    @abstractmethod
    async def _claim_events(self, limit: int, now: float, lease_until: float) -> list[store.StoredEvent]:
        """Lease up to `limit` claimable pending events until `lease_until`, oldest first."""

    @abstractmethod
    async def _defer_events(self, seqs: Sequence[int], until: float) -> None:
        """Leave the (non-empty) claimed events pending but unclaimable until `until`."""

    @abstractmethod
    async def _requeue_event(self, seq: int) -> bool:
        """The event back to PENDING, not leased, its error cleared; False when there is no such event."""

    @abstractmethod
    async def _load_order_states(self, shop_key: str, ids: Sequence[int]) -> dict[int, store.OrderState]:
        """The stored states of these orders (distinct ids, at least one); absent ones are left out."""

    @abstractmethod
    async def _load_fulfillment_states(self, shop_key: str, ids: Sequence[int]) -> dict[int, store.FulfillmentState]:
        """The stored states of these fulfillments (distinct ids, at least one); absent ones are left out."""

    @abstractmethod
    async def _commit_outcomes(self, outcomes: Sequence[store.EventOutcome], now: float) -> bool:
        """Write the outcomes atomically (`now`: when enqueued pushes were created); True when one made new work
        (a pending push enqueued, an unpaid check scheduled). Reasons are already cut to MAX_REASON_CHARS."""

    @abstractmethod
    async def _claim_unpaid_checks(self, limit: int, now: float, lease_until: float) -> list[store.UnpaidCheck]:
        """Lease up to `limit` due, open, unleased unpaid checks until `lease_until`."""

    @abstractmethod
    async def _claim_pushes(self, limit: int, now: float, lease_until: float) -> list[store.Push]:
        """Lease up to `limit` due, unleased order heads until `lease_until` (see `PushStore.claim_pushes`)."""

    @abstractmethod
    async def _mark_delivered(self, push_id: int, now: float) -> None:
        """DELIVERED at `now`, the attempt counted, the lease and the error cleared; the order's next push released."""

    @abstractmethod
    async def _schedule_retry(self, push_id: int, due_at: float, error: str) -> None:
        """A PENDING push: due at `due_at`, the attempt counted, the lease released, `error` kept."""

    @abstractmethod
    async def _dead_letter(self, push_id: int, reason: str) -> None:
        """DEAD with `reason`, the attempt counted; the order's next push released."""

    @abstractmethod
    async def _record_attempt(self, push_id: int, attempt: store.PushAttempt, keep: int) -> None:
        """Append the attempt (its answer already cut), keeping the push's newest `keep` attempts."""

    @abstractmethod
    async def _retry_push(self, push_id: int, now: float, from_statuses: Sequence[store.PushStatus]) -> bool:
        """A push in `from_statuses` becomes PENDING, due and created at `now`, attempts 0, not leased."""

    @abstractmethod
    async def _drop_push(self, push_id: int, from_statuses: Sequence[store.PushStatus]) -> bool:
        """A push in `from_statuses` becomes DROPPED, not leased; a pending one leaves its order's queue."""

    @abstractmethod
    async def _order_name_for_tracking(self, shop_key: str, tracking_number: str) -> str | None:
        """The indexed order name of this (stripped) tracking number."""

    @abstractmethod
    async def _customer_data(
        self, shop_key: str, customer_id: int | None, order_ids: Sequence[int], *, delete: bool
    ) -> store.StoredCounts:
        """Count, or delete (`delete`), what is stored about the customer's orders (see `purge_customer`)."""


def _with_stored_reasons(o: store.EventOutcome) -> store.EventOutcome:
    """The outcome with its event error and push reasons cut to MAX_REASON_CHARS (the same object when none is
    longer: the common case costs no copy). The caller's outcome is never changed."""
    long_push = any(len(p.reason) > store.MAX_REASON_CHARS for p in o.pushes)
    if not long_push and len(o.event_error) <= store.MAX_REASON_CHARS:
        return o
    return dataclasses.replace(
        o,
        event_error=store.stored_reason(o.event_error),
        pushes=[dataclasses.replace(p, reason=store.stored_reason(p.reason)) for p in o.pushes],
    )


__all__ = ["PushStoreBase"]
