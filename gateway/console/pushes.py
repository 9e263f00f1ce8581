"""The Pushes page: the outbox (pending, delivered, dead with the reason, unpushable, dropped), filtered by shop,
topic, status and order number, read through the same `PushStore` calls as `gateway outbox list/show`; and the
replicas sharing the store: which one holds which pending push, since when, and whether each is still beating."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from gateway.push.records import LeaseHolder, LeaseKind, Push, PushStatus, ReplicaStatus
from gateway.push.store import LeaseLedger, OrderStateStore, PushStore
from gateway.settings import PUSH_TOPICS
from mappings.nodes import strip_hash

#: How many of the newest matching pushes one page lists.
LIST_LIMIT = 200
#: How far back a topic or order-number filter looks (those filters run on the listed rows).
SCAN_LIMIT = 2000

STATUSES = [s.value for s in PushStatus]
TOPICS = list(PUSH_TOPICS)


@dataclass(frozen=True)
class PushFilter:
    shop: str = ""
    topic: str = ""
    status: str = ""
    order: str = ""

    @classmethod
    def from_query(cls, query: Any, shops: list[str]) -> PushFilter:
        shop = query.get("shop", "")
        topic = query.get("topic", "")
        status = query.get("status", "")
        order = strip_hash(query.get("order", ""))[:64]
        return cls(
            shop=shop if shop in shops else "",
            topic=topic if topic in TOPICS else "",
            status=status if status in STATUSES else "",
            order=order,
        )


@dataclass(frozen=True)
class PushRow:
    push: Push
    order_number: str
    recipient_kind: str  # psid | email | phone | none
    test: bool
    holder: LeaseHolder | None = None  # the replica delivering it right now (pending pushes only)

    @property
    def lease_expired(self) -> bool:
        """Its holder stopped renewing (died or stalled): the next claim by any replica takes it over."""
        return self.holder is not None and self.holder.until < time.time()

    @property
    def can_retry(self) -> bool:
        return self.push.status in (PushStatus.DEAD, PushStatus.DROPPED, PushStatus.PENDING)

    @property
    def can_drop(self) -> bool:
        return self.push.status in (PushStatus.PENDING, PushStatus.DEAD)


def body_of(push: Push) -> dict[str, Any]:
    try:
        body = json.loads(push.body)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def recipient_kind(body: dict[str, Any]) -> str:
    recipient = body.get("recipient") or {}
    if isinstance(recipient, dict) and recipient:
        key = next(iter(recipient))
        return "psid" if key == "id" else str(key)
    return "none"


async def order_numbers(store: OrderStateStore, pushes: list[Push]) -> dict[tuple[str, int], str]:
    """(shop, order id) → order number, from the order states the rules keep (one read per shop)."""
    by_shop: dict[str, set[int]] = {}
    for p in pushes:
        by_shop.setdefault(p.shop_key, set()).add(p.order_id)
    names: dict[tuple[str, int], str] = {}
    for shop_key, ids in by_shop.items():
        for order_id, state in (await store.load_order_states(shop_key, sorted(ids))).items():
            names[(shop_key, order_id)] = state.order_name
    return names


def _order_number(push: Push, names: dict[tuple[str, int], str]) -> str:
    params = body_of(push).get("params")
    pushed = params.get("order_number") if isinstance(params, dict) else None
    return names.get((push.shop_key, push.order_id)) or str(pushed or "")


def _row(push: Push, names: dict[tuple[str, int], str], holders: dict[int, LeaseHolder]) -> PushRow:
    kind = recipient_kind(body_of(push))
    return PushRow(push, _order_number(push, names), kind, push.dedupe_key.startswith("test:"), holders.get(push.id))


async def _holders(ledger: LeaseLedger, pushes: list[Push]) -> dict[int, LeaseHolder]:
    pending = [p.id for p in pushes if p.status == PushStatus.PENDING]
    return await ledger.push_holders(pending) if pending else {}


@dataclass(frozen=True)
class ReplicaRow:
    status: ReplicaStatus
    alive: bool  # it beat within the last lease: what it holds is still its own
    serving: bool  # the replica that serves this page

    @property
    def holds(self) -> str:
        held = self.status.held
        return f"{held[LeaseKind.EVENT]} events · {held[LeaseKind.PUSH]} pushes · {held[LeaseKind.CHECK]} checks"


async def replica_rows(ledger: LeaseLedger, lease_seconds: float) -> list[ReplicaRow]:
    """Every replica that has used the store, those holding work or beating first."""
    now = time.time()
    rows = [
        ReplicaRow(r, alive=now - r.beat_at <= lease_seconds, serving=r.replica_id == ledger.identity.replica_id)
        for r in await ledger.replicas()
    ]
    return sorted(rows, key=lambda r: (not r.alive and not any(r.status.held.values()), r.status.replica_id))


async def list_rows(store: PushStore, flt: PushFilter) -> list[PushRow]:
    statuses = [PushStatus(flt.status)] if flt.status else []
    narrowed = bool(flt.topic or flt.order)
    pushes = await store.outbox.list_pushes(flt.shop or None, statuses, SCAN_LIMIT if narrowed else LIST_LIMIT)
    if flt.topic:
        pushes = [p for p in pushes if p.topic == flt.topic]
    names = await order_numbers(store.states, pushes)
    if flt.order:
        pushes = [p for p in pushes if _order_number(p, names).lower() == flt.order.lower()]
    pushes = pushes[:LIST_LIMIT]
    holders = await _holders(store.leases, pushes)
    return [_row(p, names, holders) for p in pushes]


async def push_row(store: PushStore, push_id: int) -> PushRow | None:
    push = await store.outbox.get_push(push_id)
    if push is None:
        return None
    return _row(push, await order_numbers(store.states, [push]), await _holders(store.leases, [push]))
