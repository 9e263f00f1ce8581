"""The push rules of PROTOCOL §8: which stored webhook produces which push, once, and what it says.

The processing worker (`gateway.push.setup.run_processor`) claims stored events in arrival order and hands a batch to
`Rules.process`. Each event's payload is parsed once into typed facts (mappings.push); the rules decide on them
**whether, when and to whom** (which order's recipient) a push goes out, against the stored order/fulfillment states;
then **one read per shop** (gateway.push.reader) fetches every order the batch pushes about, and the push bodies are
rendered from what Shopify answered: the receipt with the `orders` reply's own mapping, the package with the
`packages` reply's. Everything the batch produced (pushes, states, tracking index, unpaid checks, events marked
done) is committed in one store transaction. Deciding twice is harmless: each push has a dedupe key, so a replay,
a duplicate delivery or a reconciliation pass never sends it again.

- `Order/Receipt`: the first time an order is seen paid (orders/paid, orders/create already paid, orders/updated
  showing paid, or reconciliation) — dedupe key `receipt:<order id>`.
- `Order/Unpaid`: an unpaid, not cancelled order seen at creation (or for the first time) schedules a check at
  `created_at + push.unpaid_delay_seconds`; when due, the same read decides (`Rules.run_unpaid_checks`) —
  dedupe key `unpaid:<order id>`.
- `package/update`: once per (fulfillment, status): `shipped` for a new fulfillment, then each carrier status
  (in_transit, out_for_delivery, delivered, ...) — dedupe key `package:<fulfillment id>:<status>`; a repeated status
  or an older state (by the payload's updated_at / happened_at) produces nothing.
- Out-of-order deliveries: a payload older than the stored state is ignored (its pushes too).
- Shopify cannot answer the read: the shop's events stay pending and come back, in order, after a backoff that
  doubles with each failed read; nothing is committed for them, so no push with missing fields goes out. An event
  whose read still fails after `push.max_age_seconds` is dead-lettered with the reason (`gateway replay` runs it
  again).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from aiohttp import web

from gateway import jsoncodec
from gateway.cache import order_tags, product_tags
from gateway.ops import Metrics
from gateway.push.reader import PushReader, ReadFailed
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
from mappings.nodes import Node
from mappings.push import (
    UNPAID_STATUSES,
    FulfillmentChange,
    OrderChange,
    OtherWebhook,
    Unusable,
    package_update_params,
    parse_id,
    parse_webhook,
    receipt_params,
    recipient,
    sub_mapping,
    tracking_numbers,
)

log = logging.getLogger(__name__)

PRODUCT_TOPICS = frozenset({"products/create", "products/update", "products/delete"})
#: Compliance topics that delete stored data (see `Rules.process` for why they run alone).
PURGE_TOPICS = frozenset({"customers/redact", "shop/redact"})
#: Events decided between two yields to the event loop (intake acks must not wait for a whole batch of rules).
YIELD_EVERY = 16
NO_RECIPIENT = "not pushable: the order carries no PSID attribute, email or phone"
#: `OrderState.receipt` starts so once the order's receipt was decided (rows written before kept the receipt's JSON
#: there, for every order: that says nothing about whether a receipt went out).
RECEIPT_DECIDED = b"receipt:"


class CacheInvalidator(Protocol):
    """What the rules need of the query side's lookup cache (gateway.cache.LookupCache): evict the lookups a webhook
    made stale, by tag (gateway.cache's tag scheme) or the whole shop. Returns how many entries went."""

    def invalidate(self, shop_key: str, tags: Iterable[str]) -> int: ...

    def invalidate_shop(self, shop_key: str) -> int: ...


class AppLifecycle(Protocol):
    """What the rules need of the shops connected from the browser (gateway.shops.lifecycle.ShopLifecycle). Each
    answers False when the event is older than the shop's latest install, so a late event cannot undo a reinstall."""

    async def uninstalled(self, shop_key: str, at: float) -> bool:
        """app/uninstalled at `at` (epoch seconds): drop the shop's token."""
        ...

    async def redacted(self, shop_key: str, at: float) -> bool:
        """shop/redact at `at`: forget the connected shop (its settings, secrets, tokens)."""
        ...


#: Set by gateway.shops.setup; the push pipeline hands it to its Rules.
APP_LIFECYCLE = web.AppKey("app_lifecycle", AppLifecycle)


def push_body(shop: ShopSettings, topic: str, to: Mapping[str, str] | None, params: Mapping[str, Any]) -> bytes:
    """The exact JSON body of a push (PROTOCOL §8)."""
    page_id = shop.push.page_id if shop.push else ""
    return jsoncodec.dumps(
        {"request": {"page_id": page_id, "topic": topic}, "recipient": dict(to or {}), "params": params}
    )


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


class StateBatch:
    """The states one batch reads and writes, so two events of the same order in one batch see each other."""

    def __init__(self) -> None:
        self.orders: dict[tuple[str, int], OrderState] = {}
        self.fulfillments: dict[tuple[str, int], FulfillmentState] = {}
        #: Cache tags the batch's order and fulfillment events make stale, per shop: evicted in one call per shop
        #: before the batch commits (instead of one call per event).
        self.stale_tags: dict[str, list[str]] = {}


@dataclass(slots=True)
class Decided:
    """One event's (or one reconciled order's) outcome, and the pushes it still needs rendered."""

    outcome: EventOutcome
    intents: list[PushIntent]
    shop_key: str = ""
    received_at: float = 0.0


class Rules:
    def __init__(
        self,
        settings: Settings,
        store: PushStore,
        metrics: Metrics | None = None,
        invalidator: CacheInvalidator | None = None,
        reader: PushReader | None = None,
        lifecycle: AppLifecycle | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics or Metrics()
        #: The query side's cached lookups, evicted by order/fulfillment/product/compliance webhooks (None: no cache).
        self.invalidator = invalidator
        #: Where pushes get what they say from (None: no Shopify access, so every push waits).
        self.reader = reader
        #: Install ordering and clean-up of connected shops (None: config shops only).
        self.lifecycle = lifecycle
        #: shop key → (held until, consecutive failed reads): see `_hold_blocked`.
        self._holds: dict[str, tuple[float, int]] = {}

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
        events = await self._hold_blocked(events)
        parsed: list[tuple[StoredEvent, Any]] = []
        for event in events:
            try:
                payload = jsoncodec.loads(event.body)
            except ValueError:
                payload = None
            parsed.append((event, parse_webhook(event.meta.topic, payload)))
        batch = await self._load_states(parsed)
        decided: list[Decided] = []
        for n, (event, facts) in enumerate(parsed, 1):
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let the intake acknowledge between slices of a large batch
            item = Decided(EventOutcome(event_seq=event.seq), [], event.shop_key, event.received_at)
            try:
                await self._decide(event, facts, batch, item)
            except Exception as exc:  # a rule bug must not wedge the queue: dead-letter the event, keep going
                log.exception("push rules failed on event %s (%s)", event.seq, event.meta.topic)
                item = Decided(EventOutcome(event_seq=event.seq, event_error=f"rules failed: {type(exc).__name__}"), [])
            decided.append(item)
        failed = await self.render(decided)
        committed = await self._defer_unread(decided, failed)
        for shop_key, tags in batch.stale_tags.items():
            if shop_key not in failed:
                self._invalidate(shop_key, list(dict.fromkeys(tags)))
        await self.store.commit([d.outcome for d in committed])
        self._count_enqueued(committed)

    def _count_enqueued(self, decided: Sequence[Decided]) -> None:
        for d in decided:
            for p in d.outcome.pushes:
                self.metrics.inc("gateway_push_enqueued_total", topic=p.topic, status=str(p.status))

    # --- when Shopify cannot answer the read ------------------------------------------------------------------------
    # A shop whose read failed is *held*: its events (those of the failed batch and any claimed meanwhile, purges
    # included) are deferred to one common time, so when it passes they are claimed again together, in arrival
    # order — a later event never overtakes an earlier one of the same order, and a customers/redact never runs
    # before the events it must purge are committed. The hold doubles with each failed read (push.backoff_*).

    def _held_until(self, shop_key: str, now: float) -> float | None:
        held = self._holds.get(shop_key)
        return held[0] if held is not None and held[0] > now else None

    async def _hold_blocked(self, events: Sequence[StoredEvent]) -> Sequence[StoredEvent]:
        now = time.time()
        held: dict[float, list[int]] = {}
        kept = []
        for event in events:
            until = self._held_until(event.shop_key, now)
            if until is None:
                kept.append(event)
            else:
                held.setdefault(until, []).append(event.seq)
        for until, seqs in held.items():
            await self.store.defer_events(seqs, until)
        return kept

    def _hold(self, shop_key: str, now: float) -> float:
        shop = self.settings.shops.get(shop_key)
        base, ceiling = (
            (shop.push.backoff_base_seconds, shop.push.backoff_max_seconds) if shop and shop.push else (1, 600)
        )
        failures = self._holds.get(shop_key, (0.0, 0))[1] + 1
        delay = min(ceiling, base * 2 ** min(failures - 1, 30))
        until = now + random.uniform(delay / 2, delay)
        self._holds[shop_key] = (until, failures)
        return until

    async def _defer_unread(self, decided: list[Decided], failed: Mapping[str, str]) -> list[Decided]:
        """The events of shops whose read failed are not committed (all of the shop's events of the batch, not only
        those with pushes: a later event of an order decided in this batch saw the earlier one's state). They stay
        pending until the shop's hold ends; past `push.max_age_seconds` they are dead-lettered with the reason,
        still linked to their order and customer (so a purge finds them)."""
        for shop_key in {i.shop_key for d in decided for i in d.intents} - failed.keys():
            self._holds.pop(shop_key, None)  # the shop answered again
        if not failed:
            return decided
        now = time.time()
        holds = {shop_key: self._hold(shop_key, now) for shop_key in failed}
        keep: list[Decided] = []
        deferred: dict[float, list[int]] = {}
        for d in decided:
            reason = failed.get(d.shop_key)
            seq = d.outcome.event_seq
            if reason is None or seq is None:
                keep.append(d)
                continue
            shop = self.settings.shops.get(d.shop_key)
            age = now - d.received_at
            if shop is None or shop.push is None or age > shop.push.max_age_seconds:
                error = f"Shopify read failed for {age:.0f} s: {reason}"
                outcome = EventOutcome(
                    event_seq=seq, event_error=error, order_id=d.outcome.order_id, customer_id=d.outcome.customer_id
                )
                keep.append(Decided(outcome, []))
                self.metrics.inc("gateway_push_read_dead_total", shop=d.shop_key)
                continue
            deferred.setdefault(holds[d.shop_key], []).append(seq)
        for until, seqs in deferred.items():
            await self.store.defer_events(seqs, until)
        for shop_key, reason in failed.items():
            log.warning(
                "shop %s: push read failed (%s); its events wait %.1f s", shop_key, reason, holds[shop_key] - now
            )
        return keep

    async def _load_states(self, parsed: Sequence[tuple[StoredEvent, Any]]) -> StateBatch:
        order_ids: dict[str, set[int]] = {}
        fulfillment_ids: dict[str, set[int]] = {}
        for event, facts in parsed:
            if isinstance(facts, OrderChange):
                order_ids.setdefault(event.shop_key, set()).add(facts.order_id)
                for f in facts.fulfillments:
                    fulfillment_ids.setdefault(event.shop_key, set()).add(f.fulfillment_id)
            elif isinstance(facts, FulfillmentChange):
                order_ids.setdefault(event.shop_key, set()).add(facts.order_id)
                fulfillment_ids.setdefault(event.shop_key, set()).add(facts.fulfillment_id)
        batch = StateBatch()
        for shop_key, ids in order_ids.items():
            for oid, state in (await self.store.load_order_states(shop_key, sorted(ids))).items():
                batch.orders[(shop_key, oid)] = state
        for shop_key, ids in fulfillment_ids.items():
            for fid, fstate in (await self.store.load_fulfillment_states(shop_key, sorted(ids))).items():
                batch.fulfillments[(shop_key, fid)] = fstate
        return batch

    async def _decide(self, event: StoredEvent, facts: Any, batch: StateBatch, item: Decided) -> None:
        outcome = item.outcome
        shop = self.settings.shops.get(event.shop_key)
        topic = event.meta.topic
        if shop is None:  # the shop was removed from the config since the event was stored
            outcome.event_error = "shop no longer configured"
            return
        if isinstance(facts, Unusable):
            outcome.event_error = facts.reason
        elif isinstance(facts, OrderChange):
            outcome.order_id, outcome.customer_id = facts.order_id, facts.customer_id
            batch.stale_tags.setdefault(event.shop_key, []).extend(_order_tags(facts))
            self.apply_order(event.shop_key, shop, facts, batch, item, created=topic == "orders/create")
        elif isinstance(facts, FulfillmentChange):
            outcome.order_id = facts.order_id
            batch.stale_tags.setdefault(event.shop_key, []).extend(
                _fulfillment_tags(facts.order_name, facts.order_id, batch, event.shop_key)
            )
            self.apply_fulfillment(event.shop_key, shop, facts, batch, item)
        elif isinstance(facts, OtherWebhook):
            await self._other(event, facts.payload, outcome)

    async def _other(self, event: StoredEvent, payload: Mapping[str, Any], outcome: EventOutcome) -> None:
        topic = event.meta.topic
        if topic in PRODUCT_TOPICS:
            self._invalidate(event.shop_key, _product_tags(payload))
        elif topic == "app/uninstalled":
            if self.lifecycle is not None and not await self.lifecycle.uninstalled(event.shop_key, _event_time(event)):
                log.info("shop %s: app/uninstalled older than the latest install, ignored", event.shop_key)
                return
            await self.store.set_shop_installed(event.shop_key, False)
            log.warning("shop %s: app uninstalled, pushes stopped", event.shop_key)
        elif topic == "customers/redact":
            customer_id, order_ids = _compliance_target(payload, "orders_to_redact")
            counts = await self.store.purge_customer(event.shop_key, customer_id, order_ids)
            # link the request to the customer, so the purge that follows the commit removes it (process())
            outcome.customer_id, outcome.order_id = customer_id, (order_ids[0] if order_ids else None)
            customer = sub_mapping(payload, "customer")
            tags = list(order_tags(email=customer.get("email"), phone=customer.get("phone"), customer_id=customer_id))
            for i in order_ids:
                tags += order_tags(order_id=i)
            self._invalidate(event.shop_key, tags)
            log.info("shop %s: customers/redact purged %s", event.shop_key, counts.as_dict())
        elif topic == "shop/redact":
            if self.lifecycle is not None and not await self.lifecycle.redacted(event.shop_key, _event_time(event)):
                log.info("shop %s: shop/redact older than the latest install, ignored", event.shop_key)
                return
            counts = await self.store.purge_shop(event.shop_key)
            self._invalidate(event.shop_key, None)
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

    def _invalidate(self, shop_key: str, tags: list[str] | None) -> None:
        """Evict the query side's cached lookups (tags per gateway.cache's scheme; None = the whole shop)."""
        if self.invalidator is None:
            return
        try:
            if tags is None:
                self.invalidator.invalidate_shop(shop_key)
            else:
                self.invalidator.invalidate(shop_key, tags)
        except Exception:  # a cache problem must never block the push pipeline
            log.exception("cache invalidation failed for shop %s", shop_key)

    # --- the rules themselves (also used by reconciliation) --------------------------------------------------------

    def _push_allowed(self, shop: ShopSettings, topic: str) -> bool:
        return shop.push is not None and shop.push.enabled and topic in shop.push.topics

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
        decided = known is not None and known.receipt.startswith(RECEIPT_DECIDED)
        announce = facts.paid and not decided and self._push_allowed(shop, "Order/Receipt")
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
            receipt=receipt_key.encode() if announce else (known.receipt if known and decided else b""),
        )
        batch.orders[(shop_key, facts.order_id)] = state
        item.outcome.order_states.append(state)
        if announce:
            item.intents.append(PushIntent(shop_key, "Order/Receipt", receipt_key, facts.order_id, facts.customer_id))
        if facts.unpaid and (created or known is None) and self._push_allowed(shop, "Order/Unpaid"):
            assert shop.push is not None
            due = (facts.created_at or now) + shop.push.unpaid_delay_seconds
            # A reminder about an order that is older than the retry horizon would only confuse the shopper.
            if now - (facts.created_at or now) <= shop.push.max_age_seconds:
                item.outcome.unpaid_checks.append(UnpaidCheck(shop_key, facts.order_id, due, facts.customer_id))
        for ff in facts.fulfillments:
            self.apply_fulfillment(shop_key, shop, ff, batch, item, order_name=facts.order_name, now=now)

    def apply_fulfillment(
        self,
        shop_key: str,
        shop: ShopSettings,
        ff: FulfillmentChange,
        batch: StateBatch,
        item: Decided,
        *,
        order_name: str = "",
        now: float | None = None,
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
        if self._push_allowed(shop, "package/update"):
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

    # --- what the pushes say: one read per shop, then the mappings -------------------------------------------------

    async def render(self, decided: Sequence[Decided], now: float | None = None) -> dict[str, str]:
        """Read every order the decided pushes need (one read per shop) and append the rendered pushes (and the
        tracking numbers the read shows) to their outcomes. Returns shop key → reason for the shops whose read
        failed (their outcomes got nothing)."""
        now = time.time() if now is None else now
        # per shop: the receipts' order ids, and each package order's fulfillment ids
        wanted: dict[str, tuple[set[int], dict[int, set[int]]]] = {}
        for d in decided:
            for intent in d.intents:
                receipts, packages = wanted.setdefault(intent.shop_key, (set(), {}))
                if intent.topic == "package/update":
                    assert intent.fulfillment_id is not None
                    packages.setdefault(intent.order_id, set()).add(intent.fulfillment_id)
                else:
                    receipts.add(intent.order_id)
        if not wanted:
            return {}
        results = await asyncio.gather(*(self._read(shop_key, r, p) for shop_key, (r, p) in wanted.items()))
        read: dict[str, dict[int, Node | None]] = {}
        failed: dict[str, str] = {}
        for shop_key, result in zip(wanted, results, strict=True):
            if isinstance(result, str):
                failed[shop_key] = result
            else:
                read[shop_key] = result
        for d in decided:
            for intent in d.intents:
                if intent.shop_key in read:
                    self._render_one(intent, read[intent.shop_key].get(intent.order_id), d.outcome, now)
        return failed

    async def _read(
        self, shop_key: str, receipts: set[int], packages: Mapping[int, set[int]]
    ) -> dict[int, Node | None] | str:
        if self.reader is None:
            return "no Shopify access configured for the push read"
        try:
            return await self.reader.read(shop_key, receipts, packages)
        except ReadFailed as exc:
            self.metrics.inc("gateway_push_read_errors_total", shop=shop_key)
            return exc.reason

    def _render_one(self, intent: PushIntent, node: Node | None, outcome: EventOutcome, now: float) -> None:
        shop = self.settings.shops[intent.shop_key]
        status, reason = PushStatus.PENDING, ""
        params: dict[str, Any] | None = None
        to: dict[str, str] | None = None
        if node is None:
            status, reason = PushStatus.UNPUSHABLE, f"not pushable: Shopify has no order {intent.order_id}"
        else:
            to = recipient(node, shop.push.psid_attribute_keys if shop.push else ())
            if intent.topic == "package/update":
                assert intent.fulfillment_id is not None
                params = package_update_params(node, intent.fulfillment_id, intent.status)
                for fid, fname, number in tracking_numbers(node):
                    if fid == intent.fulfillment_id:
                        outcome.tracking.append(
                            TrackingEntry(
                                intent.shop_key,
                                number,
                                intent.order_id,
                                fname.rsplit(".", 1)[0],
                                intent.customer_id,
                            )
                        )
                if params is None:
                    status = PushStatus.UNPUSHABLE
                    # the reader looked past the order's first page of fulfillments: Shopify has no such one
                    reason = f"not pushable: Shopify's order has no fulfillment {intent.fulfillment_id}"
            else:
                params = receipt_params(node)
            if params is not None and not to:
                status, reason = PushStatus.UNPUSHABLE, NO_RECIPIENT
        push = NewPush(
            shop_key=intent.shop_key,
            dedupe_key=intent.dedupe_key,
            order_id=intent.order_id,
            topic=intent.topic,
            body=push_body(shop, intent.topic, to, params or {}),
            due_at=now,
            fulfillment_id=intent.fulfillment_id,
            customer_id=intent.customer_id,
        )
        if status is not PushStatus.PENDING:
            push = replace(push, status=status, reason=reason)
        outcome.pushes.append(push)

    # --- unpaid checks ---------------------------------------------------------------------------------------------

    async def run_unpaid_checks(self, checks: Sequence[UnpaidCheck]) -> int:
        """Re-read the orders (the push read, one request per shop); enqueue Order/Unpaid, with the receipt that
        read gives, only for those still unpaid and not cancelled. A check whose read fails stays leased and comes
        back when its lease expires. Returns how many checks were settled."""
        decided: list[Decided] = []
        by_shop: dict[str, list[UnpaidCheck]] = {}
        for check in checks:
            by_shop.setdefault(check.shop_key, []).append(check)
        for shop_key, shop_checks in by_shop.items():
            shop = self.settings.shops.get(shop_key)
            done = [(c.shop_key, c.order_id) for c in shop_checks]
            if shop is None or not self._push_allowed(shop, "Order/Unpaid"):
                decided.append(Decided(EventOutcome(done_checks=done), []))
                continue
            result = await self._read(shop_key, {c.order_id for c in shop_checks}, {})
            if isinstance(result, str):
                log.warning("shop %s: unpaid re-check read failed (%s); will retry", shop_key, result)
                self.metrics.inc("gateway_push_unpaid_check_errors_total")
                continue
            installed = await self.store.shop_installed(shop_key)
            for check in shop_checks:
                outcome = EventOutcome(done_checks=[(check.shop_key, check.order_id)])
                node = result.get(check.order_id)
                if node is not None and installed and _still_unpaid(node):
                    intent = PushIntent(
                        shop_key, "Order/Unpaid", f"unpaid:{check.order_id}", check.order_id, check.customer_id
                    )
                    self._render_one(intent, node, outcome, time.time())
                decided.append(Decided(outcome, []))
        await self.store.commit([d.outcome for d in decided])
        self._count_enqueued(decided)
        return sum(len(d.outcome.done_checks) for d in decided)


def _event_time(event: StoredEvent) -> float:
    """When Shopify says the event happened (X-Shopify-Triggered-At), else when it arrived."""
    try:
        return datetime.fromisoformat(event.meta.triggered_at.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return event.received_at


def _still_unpaid(node: Node) -> bool:
    return str(node.get("displayFinancialStatus") or "").lower() in UNPAID_STATUSES and not node.get("cancelledAt")


def _compliance_target(payload: Mapping[str, Any], orders_field: str) -> tuple[int | None, list[int]]:
    """(customer id, order ids) of a customers/redact or customers/data_request payload."""
    customer_id = parse_id(sub_mapping(payload, "customer").get("id"))
    order_ids = [i for i in (parse_id(o) for o in payload.get(orders_field) or ()) if i is not None]
    return customer_id, order_ids


def _order_tags(facts: OrderChange) -> list[str]:
    return list(
        order_tags(
            name=facts.order_name,
            email=facts.email or None,
            phone=facts.phone or None,
            customer_id=facts.customer_id,
            order_id=facts.order_id,
        )
    )


def _fulfillment_tags(order_name: str, order_id: int, batch: StateBatch, shop_key: str) -> list[str]:
    known = batch.orders.get((shop_key, order_id))
    return list(order_tags(name=order_name or (known.order_name if known else None), order_id=order_id))


def _product_tags(payload: Mapping[str, Any]) -> list[str]:
    return list(product_tags(parse_id(payload.get("id"))))
