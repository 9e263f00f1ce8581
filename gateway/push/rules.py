"""The push rules of PROTOCOL §8: which stored webhook produces which push, once.

The processing worker (`gateway.push.processor`) claims stored events in arrival order and hands a batch to
`Rules.process`, which reads the current order/fulfillment states, decides, and commits everything a batch produced in
one store transaction (pushes, states, tracking index, unpaid checks, events marked done). Deciding twice is harmless:
each push has a dedupe key, so a replay, a duplicate delivery or a reconciliation pass never sends it again.

- `Order/Receipt`: the first time an order is seen paid (orders/paid, orders/create already paid, orders/updated
  showing paid, or reconciliation) — dedupe key `receipt:<order id>`.
- `Order/Unpaid`: an unpaid, not cancelled order seen at creation (or for the first time) schedules a check at
  `created_at + push.unpaid_delay_seconds`; when due, a fresh Shopify read decides (`Rules.run_unpaid_checks`) —
  dedupe key `unpaid:<order id>`.
- `package/update`: once per (fulfillment, status): `shipped` for a new fulfillment, then each carrier status
  (in_transit, out_for_delivery, delivered, ...) — dedupe key `package:<fulfillment id>:<status>`; a repeated status
  or an older state (by the payload's updated_at / happened_at) produces nothing.
- Out-of-order deliveries: a payload older than the stored state is ignored (its pushes too).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from gateway import jsoncodec
from gateway.ops import Metrics
from gateway.push.store import (
    EventOutcome,
    FulfillmentState,
    NewPush,
    OrderState,
    PushStatus,
    PushStore,
    StoredEvent,
    TrackingEntry,
    UnpaidCheck,
)
from gateway.settings import Settings, ShopSettings
from mappings.push import (
    UNPAID_STATUSES,
    FulfillmentFacts,
    OrderFacts,
    fulfillment_event_from_rest,
    fulfillment_facts_from_rest,
    order_facts_from_rest,
    package_params,
    parse_id,
    sub_mapping,
)

log = logging.getLogger(__name__)

ORDER_TOPICS = frozenset(
    {
        "orders/create",
        "orders/paid",
        "orders/updated",
        "orders/cancelled",
        "orders/fulfilled",
        "orders/partially_fulfilled",
        "orders/edited",
    }
)
FULFILLMENT_TOPICS = frozenset({"fulfillments/create", "fulfillments/update"})
PRODUCT_TOPICS = frozenset({"products/create", "products/update", "products/delete"})
#: Compliance topics that delete stored data (see `Rules.process` for why they run alone).
PURGE_TOPICS = frozenset({"customers/redact", "shop/redact"})
#: Events decided between two yields to the event loop (intake acks must not wait for a whole batch of rules).
YIELD_EVERY = 16
NO_RECIPIENT = "not pushable: the order carries no PSID attribute, email or phone"


@dataclass(frozen=True, slots=True)
class FreshOrder:
    """What the unpaid re-check learns from Shopify."""

    financial_status: str  # REST words, lower case (PENDING → pending)
    cancelled: bool


#: Reads one order fresh from Shopify: (shop_key, order_id) → FreshOrder, or None when the order no longer exists.
FetchOrder = Callable[[str, int], Awaitable[FreshOrder | None]]


def push_body(
    shop: ShopSettings,
    topic: str,
    recipient: Mapping[str, str] | None,
    params: Mapping[str, Any],
    *,
    params_json: bytes | None = None,
) -> bytes:
    """The exact JSON body of a push (PROTOCOL §8). `params_json`: `params` already serialised (the receipt, which
    is also stored with the order state), spliced in byte for byte instead of being encoded a second time."""
    page_id = shop.push.page_id if shop.push else ""
    head = jsoncodec.dumps({"request": {"page_id": page_id, "topic": topic}, "recipient": dict(recipient or {})})
    return head[:-1] + b',"params":' + (jsoncodec.dumps(params) if params_json is None else params_json) + b"}"


class StateBatch:
    """The states one batch reads and writes, so two events of the same order in one batch see each other."""

    def __init__(self) -> None:
        self.orders: dict[tuple[str, int], OrderState] = {}
        self.fulfillments: dict[tuple[str, int], FulfillmentState] = {}
        #: Cache tags the batch's order and fulfillment events make stale, per shop: evicted in one call per shop
        #: before the batch commits (instead of one call per event).
        self.stale_tags: dict[str, list[str]] = {}


class Rules:
    def __init__(
        self,
        settings: Settings,
        store: PushStore,
        metrics: Metrics | None = None,
        cache: Any | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics or Metrics()
        #: The query side's LookupCache (gateway.cache), evicted by order/fulfillment/product webhooks.
        self.cache = cache

    # --- events --------------------------------------------------------------------------------------------------

    async def process(self, events: Sequence[StoredEvent]) -> None:
        """Decide on a batch of claimed events and commit what they produced (and the events as done) at once.

        A purge (customers/redact, shop/redact) deletes right away while the batch commits at its end, so in one
        batch an earlier event's order state or push would be written *after* the purge and survive it. Each purge
        event therefore runs as a batch of its own, after what came before it is committed."""
        segment: list[StoredEvent] = []
        for event in events:
            if event.meta.topic not in PURGE_TOPICS:
                segment.append(event)
                continue
            if segment:
                await self._process_batch(segment)
                segment = []
            await self._process_batch([event])
            await self._forget_redact_request(event)
        if segment:
            await self._process_batch(segment)

    async def _forget_redact_request(self, event: StoredEvent) -> None:
        """The customers/redact request itself names the customer (email, phone). Committed, it is linked to the
        customer's orders (see `_decide`), so purging once more removes it too. (shop/redact's purge already takes
        its own event: it deletes every event of the shop.)"""
        if event.meta.topic != "customers/redact":
            return
        try:
            payload = jsoncodec.loads(event.body)
        except ValueError:
            return
        if isinstance(payload, dict):
            customer_id, order_ids = _compliance_target(payload, "orders_to_redact")
            await self.store.purge_customer(event.shop_key, customer_id, order_ids)

    async def _process_batch(self, events: Sequence[StoredEvent]) -> None:
        parsed: list[tuple[StoredEvent, Any]] = []
        outcomes: list[EventOutcome] = []
        for event in events:
            try:
                payload = jsoncodec.loads(event.body)
                if not isinstance(payload, dict):
                    raise ValueError("not a JSON object")
            except ValueError:
                # Intake rejects bodies that are not JSON objects; this only guards old rows / other writers.
                outcomes.append(EventOutcome(event_seq=event.seq, event_error="body is not a JSON object"))
                continue
            parsed.append((event, payload))
        batch = await self._load_states(parsed)
        for n, (event, payload) in enumerate(parsed, 1):
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let the intake acknowledge between slices of a large batch
            try:
                outcome = await self._decide(event, payload, batch)
            except Exception as exc:  # a rule bug must not wedge the queue: dead-letter the event, keep going
                log.exception("push rules failed on event %s (%s)", event.seq, event.meta.topic)
                outcome = EventOutcome(event_seq=event.seq, event_error=f"rules failed: {type(exc).__name__}")
            outcomes.append(outcome)
        for shop_key, tags in batch.stale_tags.items():
            await self._invalidate(shop_key, list(dict.fromkeys(tags)))
        await self.store.commit(outcomes)
        for outcome in outcomes:
            for p in outcome.pushes:
                self.metrics.inc("gateway_push_enqueued_total", topic=p.topic, status=str(p.status))

    async def _load_states(self, parsed: Sequence[tuple[StoredEvent, Any]]) -> StateBatch:
        order_ids: dict[str, set[int]] = {}
        fulfillment_ids: dict[str, set[int]] = {}
        for event, payload in parsed:
            topic = event.meta.topic
            if topic in ORDER_TOPICS:
                oid = parse_id(payload.get("id"))
                for f in payload.get("fulfillments") or ():
                    fid = parse_id(f.get("id")) if isinstance(f, dict) else None
                    if fid is not None:
                        fulfillment_ids.setdefault(event.shop_key, set()).add(fid)
            elif topic in FULFILLMENT_TOPICS:
                oid = parse_id(payload.get("order_id"))
                fid = parse_id(payload.get("id"))
                if fid is not None:
                    fulfillment_ids.setdefault(event.shop_key, set()).add(fid)
            elif topic == "fulfillment_events/create":
                oid = parse_id(payload.get("order_id"))
                fid = parse_id(payload.get("fulfillment_id"))
                if fid is not None:
                    fulfillment_ids.setdefault(event.shop_key, set()).add(fid)
            else:
                continue
            if oid is not None:
                order_ids.setdefault(event.shop_key, set()).add(oid)
        batch = StateBatch()
        for shop_key, ids in order_ids.items():
            for oid, state in (await self.store.load_order_states(shop_key, sorted(ids))).items():
                batch.orders[(shop_key, oid)] = state
        for shop_key, ids in fulfillment_ids.items():
            for fid, fstate in (await self.store.load_fulfillment_states(shop_key, sorted(ids))).items():
                batch.fulfillments[(shop_key, fid)] = fstate
        return batch

    async def _decide(self, event: StoredEvent, payload: dict[str, Any], batch: StateBatch) -> EventOutcome:
        outcome = EventOutcome(event_seq=event.seq)
        shop = self.settings.shops.get(event.shop_key)
        topic = event.meta.topic
        if shop is None:  # the shop was removed from the config since the event was stored
            outcome.event_error = "shop no longer configured"
            return outcome
        if topic in ORDER_TOPICS:
            facts = order_facts_from_rest(payload, shop.push.psid_attribute_keys if shop.push else ())
            if facts is None:
                outcome.event_error = "order payload without an id"
                return outcome
            outcome.order_id, outcome.customer_id = facts.order_id, facts.customer_id
            batch.stale_tags.setdefault(event.shop_key, []).extend(_order_tags(facts, payload))
            self.apply_order(event.shop_key, shop, facts, batch, outcome, created=topic == "orders/create")
        elif topic in FULFILLMENT_TOPICS:
            ff = fulfillment_facts_from_rest(payload, topic=topic)
            if ff is None:
                outcome.event_error = "fulfillment payload without ids"
                return outcome
            outcome.order_id = ff.order_id
            batch.stale_tags.setdefault(event.shop_key, []).extend(
                _fulfillment_tags(ff.order_name, ff.order_id, batch, event.shop_key)
            )
            self.apply_fulfillment(event.shop_key, shop, ff, batch, outcome)
        elif topic == "fulfillment_events/create":
            fe = fulfillment_event_from_rest(payload)
            if fe is None:
                outcome.event_error = "fulfillment event without ids or status"
                return outcome
            outcome.order_id = fe.order_id
            known = batch.fulfillments.get((event.shop_key, fe.fulfillment_id))
            ff = FulfillmentFacts(
                fulfillment_id=fe.fulfillment_id,
                order_id=fe.order_id,
                name=known.name if known else "",
                updated_at=fe.happened_at,
                status=fe.status,
                tracking_numbers=(known.tracking_number,) if known and known.tracking_number else (),
                tracking_url=known.tracking_url if known else "",
            )
            batch.stale_tags.setdefault(event.shop_key, []).extend(
                _fulfillment_tags(ff.order_name, fe.order_id, batch, event.shop_key)
            )
            self.apply_fulfillment(event.shop_key, shop, ff, batch, outcome)
        elif topic in PRODUCT_TOPICS:
            await self._invalidate(event.shop_key, _product_tags(payload))
        elif topic == "app/uninstalled":
            await self.store.set_shop_installed(event.shop_key, False)
            log.warning("shop %s: app uninstalled, pushes stopped", event.shop_key)
        elif topic == "customers/redact":
            customer_id, order_ids = _compliance_target(payload, "orders_to_redact")
            counts = await self.store.purge_customer(event.shop_key, customer_id, order_ids)
            # link the request to the customer, so the purge that follows the commit removes it (process())
            outcome.customer_id, outcome.order_id = customer_id, (order_ids[0] if order_ids else None)
            customer = sub_mapping(payload, "customer")
            tags = list(_tags(email=customer.get("email"), phone=customer.get("phone"), customer_id=customer_id))
            for i in order_ids:
                tags += _tags(order_id=i)
            await self._invalidate(event.shop_key, tags)
            log.info("shop %s: customers/redact purged %s", event.shop_key, counts.as_dict())
        elif topic == "shop/redact":
            counts = await self.store.purge_shop(event.shop_key)
            await self._invalidate(event.shop_key, None)
            log.info("shop %s: shop/redact purged %s", event.shop_key, counts.as_dict())
        elif topic == "customers/data_request":
            customer_id, order_ids = _compliance_target(payload, "orders_requested")
            counts = await self.store.count_customer_data(event.shop_key, customer_id, order_ids)
            # The request names the customer: linked to them, a later customers/redact removes it with the rest.
            outcome.customer_id, outcome.order_id = customer_id, (order_ids[0] if order_ids else None)
            # Counts only (no ids, emails or phones): the merchant answers the shopper from Shopify; this line is
            # what the operator reports about this gateway, matched to the merchant's request by its id.
            request_id = parse_id(sub_mapping(payload, "data_request").get("id"))
            log.info(
                "shop %s: customers/data_request %s (%d order(s) named): gateway stores %s",
                event.shop_key,
                request_id if request_id is not None else "-",
                len(order_ids),
                counts.as_dict(),
            )
        return outcome

    async def _invalidate(self, shop_key: str, tags: list[str] | None) -> None:
        """Evict the query side's cached lookups (tags per gateway.cache's scheme; None = the whole shop)."""
        if self.cache is None:
            return
        try:
            result = self.cache.invalidate_shop(shop_key) if tags is None else self.cache.invalidate(shop_key, tags)
            if inspect.isawaitable(result):
                await result
        except Exception:  # a cache problem must never block the push pipeline
            log.exception("cache invalidation failed for shop %s", shop_key)

    # --- the rules themselves (also used by reconciliation) --------------------------------------------------------

    def _push_allowed(self, shop: ShopSettings, topic: str) -> bool:
        return shop.push is not None and shop.push.enabled and topic in shop.push.topics

    def apply_order(
        self,
        shop_key: str,
        shop: ShopSettings,
        facts: OrderFacts,
        batch: StateBatch,
        outcome: EventOutcome,
        *,
        created: bool,
        now: float | None = None,
    ) -> None:
        now = time.time() if now is None else now
        known = batch.orders.get((shop_key, facts.order_id))
        if known is not None and facts.updated_at < known.updated_at:
            self.metrics.inc("gateway_push_stale_total", kind="order")
            return  # an older state never overrides a newer one
        state = OrderState(
            shop_key=shop_key,
            order_id=facts.order_id,
            order_name=facts.order_name,
            updated_at=facts.updated_at,
            financial_status=facts.financial_status,
            cancelled=facts.cancelled,
            customer_id=facts.customer_id,
            recipient=facts.recipient,
            recipient_name=facts.recipient_name,
            receipt=jsoncodec.dumps(facts.receipt),
        )
        batch.orders[(shop_key, facts.order_id)] = state
        outcome.order_states.append(state)
        if facts.paid and self._push_allowed(shop, "Order/Receipt"):
            outcome.pushes.append(
                self._new_push(
                    shop_key,
                    shop,
                    "Order/Receipt",
                    f"receipt:{facts.order_id}",
                    facts.order_id,
                    facts.recipient,
                    facts.receipt,
                    facts.customer_id,
                    now=now,
                    params_json=state.receipt,
                )
            )
        if facts.unpaid and (created or known is None) and self._push_allowed(shop, "Order/Unpaid"):
            assert shop.push is not None
            due = (facts.created_at or now) + shop.push.unpaid_delay_seconds
            # A reminder about an order that is older than the retry horizon would only confuse the shopper.
            if now - (facts.created_at or now) <= shop.push.max_age_seconds:
                outcome.unpaid_checks.append(UnpaidCheck(shop_key, facts.order_id, due, facts.customer_id))
        for ff in facts.fulfillments:
            self.apply_fulfillment(shop_key, shop, ff, batch, outcome, order_name=facts.order_name, now=now)

    def apply_fulfillment(
        self,
        shop_key: str,
        shop: ShopSettings,
        ff: FulfillmentFacts,
        batch: StateBatch,
        outcome: EventOutcome,
        *,
        order_name: str = "",
        now: float | None = None,
    ) -> None:
        now = time.time() if now is None else now
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
            tracking_url=ff.tracking_url or (known.tracking_url if known else ""),
        )
        batch.fulfillments[(shop_key, ff.fulfillment_id)] = state
        outcome.fulfillment_states.append(state)
        if status is None or (known is not None and known.status == status):
            return  # cancelled, or a repeated status: nothing new to tell
        if not self._push_allowed(shop, "package/update"):
            return
        recipient = order.recipient if order and order.recipient else ff.recipient
        params = package_params(
            tracking_number=state.tracking_number,
            image_url=ff.image_url,
            tracking_url=state.tracking_url,
            recipient_name=(order.recipient_name if order else "") or ff.recipient_name,
            status=status,
        )
        outcome.pushes.append(
            self._new_push(
                shop_key,
                shop,
                "package/update",
                f"package:{ff.fulfillment_id}:{status}",
                ff.order_id,
                recipient,
                params,
                customer_id,
                fulfillment_id=ff.fulfillment_id,
                now=now,
            )
        )

    def _new_push(
        self,
        shop_key: str,
        shop: ShopSettings,
        topic: str,
        dedupe_key: str,
        order_id: int,
        recipient: Mapping[str, str] | None,
        params: Mapping[str, Any],
        customer_id: int | None,
        *,
        fulfillment_id: int | None = None,
        now: float,
        params_json: bytes | None = None,
    ) -> NewPush:
        push = NewPush(
            shop_key=shop_key,
            dedupe_key=dedupe_key,
            order_id=order_id,
            topic=topic,
            body=push_body(shop, topic, recipient, params, params_json=params_json),
            due_at=now,
            fulfillment_id=fulfillment_id,
            customer_id=customer_id,
        )
        if not recipient:
            push = replace(push, status=PushStatus.UNPUSHABLE, reason=NO_RECIPIENT)
        return push

    # --- unpaid checks ---------------------------------------------------------------------------------------------

    async def run_unpaid_checks(self, checks: Sequence[UnpaidCheck], fetch: FetchOrder) -> int:
        """Re-read each order; enqueue Order/Unpaid only if still unpaid and not cancelled. A check whose read fails
        stays leased and comes back when its lease expires. Returns how many checks were settled."""
        outcomes: list[EventOutcome] = []
        for check in checks:
            shop = self.settings.shops.get(check.shop_key)
            if shop is None:
                outcomes.append(EventOutcome(done_checks=[(check.shop_key, check.order_id)]))
                continue
            try:
                fresh = await fetch(check.shop_key, check.order_id)
            except Exception as exc:
                log.warning(
                    "shop %s: unpaid re-check of order %s failed (%s); will retry",
                    check.shop_key,
                    check.order_id,
                    type(exc).__name__,
                )
                self.metrics.inc("gateway_push_unpaid_check_errors_total")
                continue
            outcome = EventOutcome(done_checks=[(check.shop_key, check.order_id)])
            if fresh is not None and fresh.financial_status in UNPAID_STATUSES and not fresh.cancelled:
                states = await self.store.load_order_states(check.shop_key, [check.order_id])
                state = states.get(check.order_id)
                if (
                    state is not None
                    and self._push_allowed(shop, "Order/Unpaid")
                    and await self.store.shop_installed(check.shop_key)
                ):
                    params = jsoncodec.loads(state.receipt) if state.receipt else {}
                    outcome.pushes.append(
                        self._new_push(
                            check.shop_key,
                            shop,
                            "Order/Unpaid",
                            f"unpaid:{check.order_id}",
                            check.order_id,
                            state.recipient,
                            params,
                            state.customer_id,
                            now=time.time(),
                        )
                    )
            outcomes.append(outcome)
        await self.store.commit(outcomes)
        return len(outcomes)


def _compliance_target(payload: Mapping[str, Any], orders_field: str) -> tuple[int | None, list[int]]:
    """(customer id, order ids) of a customers/redact or customers/data_request payload."""
    customer_id = parse_id(sub_mapping(payload, "customer").get("id"))
    order_ids = [i for i in (parse_id(o) for o in payload.get(orders_field) or ()) if i is not None]
    return customer_id, order_ids


def _tags(**parts: Any) -> tuple[str, ...]:
    """gateway.cache.order_tags (emails/phones hashed there); imported lazily so the rules run without a query side."""
    from gateway.cache import order_tags

    return order_tags(**parts)


def _order_tags(facts: OrderFacts, payload: Mapping[str, Any]) -> list[str]:
    customer = sub_mapping(payload, "customer")
    return list(
        _tags(
            name=facts.order_name,
            email=payload.get("email") or None,
            phone=payload.get("phone") or customer.get("phone") or None,
            customer_id=facts.customer_id,
            order_id=facts.order_id,
        )
    )


def _fulfillment_tags(order_name: str, order_id: int, batch: StateBatch, shop_key: str) -> list[str]:
    known = batch.orders.get((shop_key, order_id))
    return list(_tags(name=order_name or (known.order_name if known else None), order_id=order_id))


def _product_tags(payload: Mapping[str, Any]) -> list[str]:
    from gateway.cache import product_tags

    return list(product_tags(parse_id(payload.get("id"))))
