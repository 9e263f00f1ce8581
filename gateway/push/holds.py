"""When Shopify cannot answer the push read: the shop is *held*, and its events wait.

Its events (those of the failed batch and any claimed meanwhile, purges included) are deferred to one common time,
so when it passes they are claimed again together, in arrival order — a later event never overtakes an earlier one
of the same order, and a customers/redact never runs before the events it must purge are committed. The hold doubles
with each failed read (push.backoff_*); a read that answers releases it. An event whose read still fails after
`push.max_age_seconds` is dead-lettered with the reason (`gateway replay` runs it again).

Holds are kept in the push store (`ShopHoldStore`): every replica sharing a Redis store, or every process sharing a
SQLite file, holds the shop alike and backs off from the same count of failed reads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from gateway.ops import Metrics
from gateway.push.backoff import backoff_delay
from gateway.push.records import EventOutcome, ShopHold, StoredEvent
from gateway.push.rules import Decided
from gateway.push.store import EventLog, ShopHoldStore
from gateway.settings import Settings

log = logging.getLogger(__name__)

#: (base, ceiling) seconds for a shop whose push settings are gone since its events were read.
DEFAULT_BACKOFF = (1.0, 600.0)


@dataclass(frozen=True, slots=True)
class Held:
    """The batch's events to process now, and the holds recorded for their shops when they were read."""

    events: list[StoredEvent]
    holds: Mapping[str, ShopHold]


class ShopHolds:
    def __init__(
        self,
        settings: Settings,
        events: EventLog,
        holds: ShopHoldStore,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.events = events
        self.holds = holds
        self.metrics = metrics or Metrics()
        #: Epoch seconds (holds are shared between processes through the store).
        self.clock = clock

    async def defer_held(self, events: Sequence[StoredEvent]) -> Held:
        """Defer the events of held shops to the end of their hold; the others are to be processed now."""
        holds = await self.holds.shop_holds([event.shop_key for event in events])
        now = self.clock()
        deferred: dict[float, list[int]] = {}
        kept = []
        for event in events:
            hold = holds.get(event.shop_key)
            if hold is not None and hold.until > now:
                deferred.setdefault(hold.until, []).append(event.seq)
            else:
                kept.append(event)
        for until, seqs in deferred.items():
            await self.events.defer_events(seqs, until)
        return Held(kept, holds)

    async def settle(self, decided: list[Decided], failed: Mapping[str, str], held: Held) -> list[Decided]:
        """After the read: release the shops that answered, hold those whose read failed (`failed`: shop key →
        reason). Returns what to commit now. The events of a held shop are not committed (all of the shop's events
        of the batch, not only those with pushes: a later event of an order decided in this batch saw the earlier
        one's state); they stay pending until the hold ends. Past `push.max_age_seconds` they are dead-lettered with
        the reason instead, still linked to their order and customer (so a purge finds them)."""
        answered = {i.shop_key for d in decided for i in d.intents} - failed.keys()
        for shop_key in answered & held.holds.keys():
            await self.holds.release_shop(shop_key)
        if not failed:
            return decided
        now = self.clock()
        holds = {shop_key: await self._hold(shop_key, held.holds.get(shop_key), now) for shop_key in failed}
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
            await self.events.defer_events(seqs, until)
        for shop_key, reason in failed.items():
            log.warning(
                "shop %s: push read failed (%s); its events wait %.1f s", shop_key, reason, holds[shop_key] - now
            )
        return keep

    async def _hold(self, shop_key: str, earlier: ShopHold | None, now: float) -> float:
        """Hold the shop after one more failed read; returns until when."""
        shop = self.settings.shops.get(shop_key)
        base, ceiling = DEFAULT_BACKOFF if shop is None or shop.push is None else (
            shop.push.backoff_base_seconds, shop.push.backoff_max_seconds
        )
        failures = earlier.failures if earlier is not None else 0
        until = now + backoff_delay(base, ceiling, failures)
        await self.holds.hold_shop(shop_key, ShopHold(until, failures + 1))
        return until
