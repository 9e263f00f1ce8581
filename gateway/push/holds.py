"""When Shopify cannot answer the push read: the shop is *held*, and its events wait.

Its events (those of the failed batch and any claimed meanwhile, purges included) are deferred to one common time,
so when it passes they are claimed again together, in arrival order — a later event never overtakes an earlier one
of the same order, and a customers/redact never runs before the events it must purge are committed. The hold doubles
with each failed read (push.backoff_*); a read that answers releases it. An event whose read still fails after
`push.max_age_seconds` is dead-lettered with the reason (`gateway replay` runs it again).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

from gateway.ops import Metrics
from gateway.push.backoff import backoff_delay
from gateway.push.rules import Decided
from gateway.push.store import EventLog, EventOutcome, StoredEvent
from gateway.settings import Settings

log = logging.getLogger(__name__)

#: (base, ceiling) seconds for a shop whose push settings are gone since its events were read.
DEFAULT_BACKOFF = (1.0, 600.0)


class ShopHolds:
    def __init__(
        self,
        settings: Settings,
        store: EventLog,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics or Metrics()
        self.clock = clock
        #: shop key → (held until, consecutive failed reads)
        self._holds: dict[str, tuple[float, int]] = {}

    async def defer_held(self, events: Sequence[StoredEvent]) -> list[StoredEvent]:
        """Defer the events of held shops to the end of their hold; the others, to process now."""
        now = self.clock()
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

    async def settle(self, decided: list[Decided], failed: Mapping[str, str]) -> list[Decided]:
        """After the read: release the shops that answered, hold those whose read failed (`failed`: shop key →
        reason). Returns what to commit now. The events of a held shop are not committed (all of the shop's events
        of the batch, not only those with pushes: a later event of an order decided in this batch saw the earlier
        one's state); they stay pending until the hold ends. Past `push.max_age_seconds` they are dead-lettered with
        the reason instead, still linked to their order and customer (so a purge finds them)."""
        for shop_key in {i.shop_key for d in decided for i in d.intents} - failed.keys():
            self._holds.pop(shop_key, None)  # the shop answered again
        if not failed:
            return decided
        now = self.clock()
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

    def _held_until(self, shop_key: str, now: float) -> float | None:
        held = self._holds.get(shop_key)
        return held[0] if held is not None and held[0] > now else None

    def _hold(self, shop_key: str, now: float) -> float:
        shop = self.settings.shops.get(shop_key)
        base, ceiling = DEFAULT_BACKOFF if shop is None or shop.push is None else (
            shop.push.backoff_base_seconds, shop.push.backoff_max_seconds
        )
        earlier = self._holds.get(shop_key, (0.0, 0))[1]
        until = now + backoff_delay(base, ceiling, earlier)
        self._holds[shop_key] = (until, earlier + 1)
        return until
