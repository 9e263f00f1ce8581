"""The push rules of PROTOCOL §8: on a webhook's facts (mappings.push) and the states stored so far, decide
**whether, when and about which order or fulfillment** a push goes out. What a push says is not decided here: the
render step (gateway.push.render) reads the order from Shopify and maps it.

- `Order/Receipt`: the first time an order is seen paid (orders/paid, orders/create already paid, orders/updated
  showing paid, or reconciliation) — dedupe key `receipt:<order id>`.
- `Order/Unpaid`: an unpaid, not cancelled order seen at creation (or for the first time) schedules a check at
  `created_at + push.unpaid_delay_seconds`; when due, a fresh read decides (gateway.push.unpaid) — dedupe key
  `unpaid:<order id>`.
- `package/update`: once per (fulfillment, status): `shipped` for a new fulfillment, then each carrier status
  (in_transit, out_for_delivery, delivered, ...) — dedupe key `package:<fulfillment id>:<status>`; a repeated status
  or an older state (by the payload's updated_at / happened_at) produces nothing.
- Out-of-order deliveries: a payload older than the stored state is ignored (its pushes too).

Deciding twice is harmless: each push has a dedupe key, so a replay, a duplicate delivery or a reconciliation pass
never sends it again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.ops import Metrics
from gateway.push.records import EventOutcome, FulfillmentState, OrderState, TrackingEntry, UnpaidCheck
from gateway.push.store import OrderStateStore
from gateway.settings import Settings, ShopSettings
from mappings.push import FulfillmentChange, OrderChange


@dataclass(frozen=True, slots=True)
class PushIntent:
    """A push the rules decided on; what it says is rendered from the push read."""

    shop_key: str
    topic: str  # Order/Receipt | Order/Unpaid | package/update
    dedupe_key: str
    order_id: int
    customer_id: int | None
    fulfillment_id: int | None = None
    status: str = ""  # package/update: the transition's push word


@dataclass(slots=True)
class StateBatch:
    """The states one batch reads and writes, so two events of the same order in one batch see each other."""

    orders: dict[tuple[str, int], OrderState] = field(default_factory=dict)
    fulfillments: dict[tuple[str, int], FulfillmentState] = field(default_factory=dict)

    async def load(
        self, store: OrderStateStore, order_ids: Mapping[str, set[int]], fulfillment_ids: Mapping[str, set[int]]
    ) -> None:
        """Read the stored states of these ids (per shop key): one read per shop and kind."""
        for shop_key, ids in order_ids.items():
            for order_id, state in (await store.load_order_states(shop_key, sorted(ids))).items():
                self.orders[(shop_key, order_id)] = state
        for shop_key, ids in fulfillment_ids.items():
            for fulfillment_id, fstate in (await store.load_fulfillment_states(shop_key, sorted(ids))).items():
                self.fulfillments[(shop_key, fulfillment_id)] = fstate


@dataclass(slots=True)
class Decided:
    """One event's (or one reconciled order's) outcome, and the pushes it still needs rendered."""

    outcome: EventOutcome
    intents: list[PushIntent]
    shop_key: str = ""
    received_at: float = 0.0


def push_allowed(shop: ShopSettings, topic: str) -> bool:
    return shop.push is not None and shop.push.enabled and topic in shop.push.topics


class Rules:
    """Applies the rules to one order's or one fulfillment's facts, against (and into) a StateBatch."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()

    def apply_order(
        self,
        shop_key: str,
        shop: ShopSettings,
        facts: OrderChange,
        batch: StateBatch,
        item: Decided,
        *,
        created: bool,
        now: float | None = None,
    ) -> None:
        now = time.time() if now is None else now
        known = batch.orders.get((shop_key, facts.order_id))
        if known is not None and facts.updated_at < known.updated_at:
            self.metrics.inc("gateway_push_stale_total", kind="order")
            return  # an older state never overrides a newer one
        receipt_key = f"receipt:{facts.order_id}"
        decided = known is not None and known.receipt_decided
        announce = facts.paid and not decided and push_allowed(shop, "Order/Receipt")
        # No recipient or receipt is kept (they are read from Shopify when a push needs them), only whether the
        # order's receipt was decided: a paid order is announced once, and later paid states need no read.
        state = OrderState(
            shop_key=shop_key,
            order_id=facts.order_id,
            order_name=facts.order_name,
            updated_at=facts.updated_at,
            financial_status=facts.financial_status,
            cancelled=facts.cancelled,
            customer_id=facts.customer_id,
            receipt_decided=announce or decided,
        )
        batch.orders[(shop_key, facts.order_id)] = state
        item.outcome.order_states.append(state)
        if announce:
            item.intents.append(PushIntent(shop_key, "Order/Receipt", receipt_key, facts.order_id, facts.customer_id))
        if facts.unpaid and (created or known is None) and push_allowed(shop, "Order/Unpaid"):
            assert shop.push is not None
            due = (facts.created_at or now) + shop.push.unpaid_delay_seconds
            # A reminder about an order that is older than the retry horizon would only confuse the shopper.
            if now - (facts.created_at or now) <= shop.push.max_age_seconds:
                item.outcome.unpaid_checks.append(UnpaidCheck(shop_key, facts.order_id, due, facts.customer_id))
        for ff in facts.fulfillments:
            self.apply_fulfillment(shop_key, shop, ff, batch, item, order_name=facts.order_name)

    def apply_fulfillment(
        self,
        shop_key: str,
        shop: ShopSettings,
        ff: FulfillmentChange,
        batch: StateBatch,
        item: Decided,
        *,
        order_name: str = "",
    ) -> None:
        outcome = item.outcome
        order = batch.orders.get((shop_key, ff.order_id))
        name = order_name or (order.order_name if order else "") or ff.order_name
        customer_id = order.customer_id if order else None
        known = batch.fulfillments.get((shop_key, ff.fulfillment_id))
        for number in ff.tracking_numbers:
            if name:
                outcome.tracking.append(TrackingEntry(shop_key, number, ff.order_id, name, customer_id))
        if known is not None and ff.updated_at < known.updated_at:
            self.metrics.inc("gateway_push_stale_total", kind="fulfillment")
            return
        status = ff.status
        state = FulfillmentState(
            shop_key=shop_key,
            fulfillment_id=ff.fulfillment_id,
            order_id=ff.order_id,
            updated_at=ff.updated_at,
            status=status or (known.status if known else "cancelled"),
            name=ff.name or (known.name if known else ""),
            tracking_number=(
                ff.tracking_numbers[0] if ff.tracking_numbers else (known.tracking_number if known else "")
            ),
            tracking_url=known.tracking_url if known else "",
        )
        batch.fulfillments[(shop_key, ff.fulfillment_id)] = state
        outcome.fulfillment_states.append(state)
        if status is None or (known is not None and known.status == status):
            return  # cancelled, or a repeated status: nothing new to tell
        if push_allowed(shop, "package/update"):
            item.intents.append(
                PushIntent(
                    shop_key,
                    "package/update",
                    f"package:{ff.fulfillment_id}:{status}",
                    ff.order_id,
                    customer_id,
                    fulfillment_id=ff.fulfillment_id,
                    status=status,
                )
            )
