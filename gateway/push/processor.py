"""The processing worker: stored webhook events → pushes in the outbox, one batch at a time.

A batch's way, in one direction:
1. **facts**: each event's payload is parsed once into typed facts (mappings.push.parse_webhook);
2. **decision**: the rules (gateway.push.rules) decide on them, against the stored order/fulfillment states, whether
   and about what a push goes out; other topics act here (product webhooks evict cached lookups, app/uninstalled
   stops the shop's pushes, compliance webhooks purge: gateway.push.compliance);
3. **read and render**: one push read per shop fetches every order the batch pushes about, and the pushes are
   rendered from what Shopify answered (gateway.push.render); a shop whose read fails is held (gateway.push.holds);
4. **outbox**: everything the batch produced (pushes, states, tracking index, unpaid checks, events marked done) is
   committed in one store transaction, after the lookups the batch made stale were evicted.

Nothing a signed payload holds stops the queue: a payload that cannot be parsed, a rule that fails on it, or an
outcome the store cannot keep dead-letters its own event, with the reason, and the rest of the batch goes on
(`gateway replay` runs a dead event again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from aiohttp import web

from gateway import jsoncodec
from gateway.flows import LookupInvalidator
from gateway.ops import Metrics
from gateway.push.compliance import COMPLIANCE_TOPICS, PURGE_TOPICS, Compliance
from gateway.push.holds import ShopHolds
from gateway.push.reader import PushReader
from gateway.push.records import EventOutcome, LeaseKind, StoredEvent
from gateway.push.render import PushRenderer, count_enqueued
from gateway.push.rules import Decided, Rules, StateBatch
from gateway.push.stale import (
    StaleLookups,
    fulfillment_change_tags,
    order_change_tags,
    product_change_tags,
)
from gateway.push.store import OrderStateStore, PushStore, ShopLedger
from gateway.settings import Settings
from mappings.nodes import epoch_seconds
from mappings.push import (
    FulfillmentChange,
    OrderChange,
    OtherWebhook,
    Unusable,
    WebhookFacts,
    parse_webhook,
)

log = logging.getLogger(__name__)

PRODUCT_TOPICS = frozenset({"products/create", "products/update", "products/delete"})
#: Events decided between two yields to the event loop (intake acks must not wait for a whole batch of rules).
YIELD_EVERY = 16
#: How many stored events one pass takes (one store transaction for all of them).
EVENT_BATCH = 256
IDLE_SECONDS = 1.0


class AppLifecycle(Protocol):
    """What the processor needs of the shops connected from the browser (gateway.shops.lifecycle.ShopLifecycle).
    Each answers False when the event is older than the shop's latest install, so a late event cannot undo a
    reinstall."""

    async def uninstalled(self, shop_key: str, at: float) -> bool:
        """app/uninstalled at `at` (epoch seconds): drop the shop's token."""
        ...

    async def redacted(self, shop_key: str, at: float) -> bool:
        """shop/redact at `at`: forget the connected shop (its settings, secrets, tokens)."""
        ...


#: Set by gateway.shops.setup; the push flow hands it to its processor.
APP_LIFECYCLE = web.AppKey("app_lifecycle", AppLifecycle)


class EventProcessor:
    def __init__(
        self,
        settings: Settings,
        states: OrderStateStore,
        shops: ShopLedger,
        rules: Rules,
        renderer: PushRenderer,
        holds: ShopHolds,
        stale: StaleLookups,
        compliance: Compliance,
        metrics: Metrics | None = None,
        lifecycle: AppLifecycle | None = None,
    ) -> None:
        self.settings = settings
        self.states = states
        self.shops = shops
        self.rules = rules
        self.renderer = renderer
        self.holds = holds
        self.stale = stale
        self.compliance = compliance
        self.metrics = metrics or Metrics()
        #: Install ordering and clean-up of connected shops (None: config shops only).
        self.lifecycle = lifecycle

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
            try:
                await self.compliance.forget_request(event)
            except Exception:  # the request is linked to the customer: the next purge of them removes it
                log.exception("shop %s: forgetting customers/redact request %s failed", event.shop_key, event.seq)
        if segment:
            await self._process_batch(segment)

    async def _process_batch(self, events: Sequence[StoredEvent]) -> None:
        held = await self.holds.defer_held(events)
        parsed = [(event, _facts(event)) for event in held.events]
        batch = await self._load_states(parsed)
        stale_tags: dict[str, list[str]] = {}
        decided: list[Decided] = []
        for n, (event, facts) in enumerate(parsed, 1):
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let the intake acknowledge between slices of a large batch
            item = Decided(EventOutcome(event_seq=event.seq), [], event.shop_key, event.received_at)
            try:
                await self._decide(event, facts, batch, item, stale_tags)
            except Exception as exc:  # a rule bug must not wedge the queue: dead-letter the event, keep going
                log.exception("push rules failed on event %s (%s)", event.seq, event.meta.topic)
                item = Decided(EventOutcome(event_seq=event.seq, event_error=f"rules failed: {type(exc).__name__}"), [])
            decided.append(item)
        failed = await self.renderer.render(decided)
        committed = await self.holds.settle(decided, failed, held)
        for shop_key, tags in stale_tags.items():
            if shop_key not in failed:
                self.stale.evict(shop_key, tags)
        outcomes = await self._commit([d.outcome for d in committed])
        count_enqueued(self.metrics, outcomes)

    async def _commit(self, outcomes: list[EventOutcome]) -> list[EventOutcome]:
        """Commit the outcomes in one transaction; when that fails, each on its own, and one that cannot be stored even
        so becomes its event's dead letter. Returns what was committed. A store that cannot be written at all raises
        (the batch comes back when its lease expires)."""
        try:
            await self.states.commit(outcomes)
            return outcomes
        except Exception:
            if len(outcomes) == 1 and outcomes[0].event_seq is None:
                raise
            log.warning("push: committing a batch of %d failed; committing its events one by one", len(outcomes))
        committed = []
        for outcome in outcomes:
            try:
                await self.states.commit([outcome])
            except Exception as exc:
                if outcome.event_seq is None:
                    raise
                outcome = EventOutcome(event_seq=outcome.event_seq, event_error=f"cannot be stored: {type(exc).__name__}")
                await self.states.commit([outcome])
                log.error("push: event %s cannot be stored (%s); dead-lettered", outcome.event_seq, type(exc).__name__)
            committed.append(outcome)
        return committed

    async def _load_states(self, parsed: Sequence[tuple[StoredEvent, WebhookFacts]]) -> StateBatch:
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
        await batch.load(self.states, order_ids, fulfillment_ids)
        return batch

    async def _decide(
        self,
        event: StoredEvent,
        facts: WebhookFacts,
        batch: StateBatch,
        item: Decided,
        stale_tags: dict[str, list[str]],
    ) -> None:
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
            stale_tags.setdefault(event.shop_key, []).extend(order_change_tags(facts))
            self.rules.apply_order(event.shop_key, shop, facts, batch, item, created=topic == "orders/create")
        elif isinstance(facts, FulfillmentChange):
            outcome.order_id = facts.order_id
            stale_tags.setdefault(event.shop_key, []).extend(
                fulfillment_change_tags(facts.order_name, facts.order_id, batch, event.shop_key)
            )
            self.rules.apply_fulfillment(event.shop_key, shop, facts, batch, item)
        elif isinstance(facts, OtherWebhook):
            await self._other(event, facts.payload, outcome)

    async def _other(self, event: StoredEvent, payload: Any, outcome: EventOutcome) -> None:
        topic = event.meta.topic
        if topic in PRODUCT_TOPICS:
            self.stale.evict(event.shop_key, product_change_tags(payload))
        elif topic == "app/uninstalled":
            if self.lifecycle is not None and not await self.lifecycle.uninstalled(event.shop_key, _event_time(event)):
                log.info("shop %s: app/uninstalled older than the latest install, ignored", event.shop_key)
                return
            await self.shops.set_shop_installed(event.shop_key, False)
            log.warning("shop %s: app uninstalled, pushes stopped", event.shop_key)
        elif topic in COMPLIANCE_TOPICS:
            if (topic == "shop/redact" and self.lifecycle is not None
                    and not await self.lifecycle.redacted(event.shop_key, _event_time(event))):  # fmt: skip
                log.info("shop %s: shop/redact older than the latest install, ignored", event.shop_key)
                return
            await self.compliance.handle(event, payload, outcome)


def _event_time(event: StoredEvent) -> float:
    """When Shopify says the event happened (X-Shopify-Triggered-At), else when it arrived."""
    triggered = epoch_seconds(event.meta.triggered_at)
    return triggered if triggered is not None else event.received_at


def _facts(event: StoredEvent) -> WebhookFacts:
    """The event's facts; Unusable (its event is dead-lettered with the reason) when its body cannot be read."""
    try:
        payload = jsoncodec.loads(event.body)
    except ValueError:
        return Unusable("body is not JSON")
    try:
        return parse_webhook(event.meta.topic, payload)
    except Exception as exc:  # a parser bug must not wedge the queue either (the message may quote the payload)
        log.error("push: parsing event %s (%s) failed: %s", event.seq, event.meta.topic, type(exc).__name__)
        return Unusable(f"payload cannot be parsed: {type(exc).__name__}")


def build_processor(
    settings: Settings,
    store: PushStore,
    *,
    metrics: Metrics | None = None,
    invalidator: LookupInvalidator | None = None,
    reader: PushReader | None = None,
    lifecycle: AppLifecycle | None = None,
) -> EventProcessor:
    """An EventProcessor with its parts: `invalidator` is the query side's lookup cache (None: no cache), `reader`
    the push read (None: no Shopify access, so every push waits), `lifecycle` the connected shops' (app mode)."""
    metrics = metrics or Metrics()
    stale = StaleLookups(invalidator)
    return EventProcessor(
        settings,
        store.states,
        store.shops,
        Rules(settings, metrics),
        PushRenderer(settings, reader, metrics),
        ShopHolds(settings, store.events, store.holds, metrics),
        stale,
        Compliance(store.compliance, stale),
        metrics,
        lifecycle,
    )


async def run_processor(processor: EventProcessor, store: PushStore, lease_seconds: float) -> None:
    """Process stored events as they arrive; idle waits are woken by the intake's notifications. Claimed events are
    leased for `lease_seconds`, renewed by the replica's heartbeat while the pass runs (docs/replicas.md)."""
    while True:
        try:
            events = await store.events.claim_events(EVENT_BATCH, lease_seconds)
            if events:
                try:
                    await processor.process(events)
                finally:
                    # Those the pass settled are held no more; any a failed pass left come back when their leases,
                    # no longer renewed, expire.
                    store.leases.forget_leases(LeaseKind.EVENT, [str(e.seq) for e in events])
                continue
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("push processor failed; retrying")
            await asyncio.sleep(IDLE_SECONDS)
            continue
        await store.wait_for_work(IDLE_SECONDS)
