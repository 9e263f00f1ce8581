"""The Pushes page: the outbox (pending, delivered, dead with the reason, unpushable, dropped), filtered by shop,
topic, status and order number, read through the same `PushStore` calls as `gateway outbox list/show`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gateway.push.store import OrderStateStore, Push, PushStatus, PushStore
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


def _row(push: Push, names: dict[tuple[str, int], str]) -> PushRow:
    body = body_of(push)
    params = body.get("params") if isinstance(body.get("params"), dict) else {}
    number = names.get((push.shop_key, push.order_id)) or str((params or {}).get("order_number") or "")
    return PushRow(push, number, recipient_kind(body), push.dedupe_key.startswith("test:"))


async def list_rows(store: PushStore, flt: PushFilter) -> list[PushRow]:
    statuses = [PushStatus(flt.status)] if flt.status else []
    narrowed = bool(flt.topic or flt.order)
    pushes = await store.list_pushes(flt.shop or None, statuses, SCAN_LIMIT if narrowed else LIST_LIMIT)
    if flt.topic:
        pushes = [p for p in pushes if p.topic == flt.topic]
    names = await order_numbers(store, pushes)
    rows = [_row(p, names) for p in pushes]
    if flt.order:
        rows = [r for r in rows if r.order_number.lower() == flt.order.lower()]
    return rows[:LIST_LIMIT]


async def push_row(store: PushStore, push_id: int) -> PushRow | None:
    push = await store.get_push(push_id)
    if push is None:
        return None
    return _row(push, await order_numbers(store, [push]))
