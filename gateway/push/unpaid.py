"""Order/Unpaid (PROTOCOL §8): when an order's unpaid check falls due, re-read the order and push only if it is still
unpaid and not cancelled. The checks are scheduled by the rules (gateway.push.rules) at orders/create."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from gateway.ops import Metrics
from gateway.push.records import EventOutcome, LeaseKind, UnpaidCheck, check_lease_id
from gateway.push.render import PushRenderer, count_enqueued
from gateway.push.rules import PushIntent, push_allowed
from gateway.push.store import OrderStateStore, PushStore, ShopLedger
from gateway.settings import Settings
from mappings.nodes import Node
from mappings.receipt import awaiting_payment

log = logging.getLogger(__name__)

#: How many due checks one pass takes.
CHECK_BATCH = 64


def still_unpaid(node: Node) -> bool:
    return awaiting_payment(node.get("displayFinancialStatus")) and not node.get("cancelledAt")


class UnpaidChecks:
    def __init__(
        self,
        settings: Settings,
        states: OrderStateStore,
        shops: ShopLedger,
        renderer: PushRenderer,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.states = states
        self.shops = shops
        self.renderer = renderer
        self.metrics = metrics or Metrics()

    async def run(self, checks: Sequence[UnpaidCheck]) -> int:
        """Re-read the orders (the push read, one request per shop); enqueue Order/Unpaid, with the receipt that
        read gives, only for those still unpaid and not cancelled. A check whose read fails stays leased and comes
        back when its lease expires. Returns how many checks were settled."""
        outcomes: list[EventOutcome] = []
        by_shop: dict[str, list[UnpaidCheck]] = {}
        for check in checks:
            by_shop.setdefault(check.shop_key, []).append(check)
        for shop_key, shop_checks in by_shop.items():
            shop = self.settings.shops.get(shop_key)
            done = [(c.shop_key, c.order_id) for c in shop_checks]
            if shop is None or not push_allowed(shop, "Order/Unpaid"):
                outcomes.append(EventOutcome(done_checks=done))
                continue
            result = await self.renderer.read(shop_key, {c.order_id for c in shop_checks}, {})
            if isinstance(result, str):
                log.warning("shop %s: unpaid re-check read failed (%s); will retry", shop_key, result)
                self.metrics.inc("gateway_push_unpaid_check_errors_total")
                continue
            installed = await self.shops.shop_installed(shop_key)
            for check in shop_checks:
                outcome = EventOutcome(done_checks=[(check.shop_key, check.order_id)])
                node = result.get(check.order_id)
                if node is not None and installed and still_unpaid(node):
                    intent = PushIntent(
                        shop_key, "Order/Unpaid", f"unpaid:{check.order_id}", check.order_id, check.customer_id
                    )
                    self.renderer.render_one(intent, node, outcome, time.time())
                outcomes.append(outcome)
        await self.states.commit(outcomes)
        count_enqueued(self.metrics, outcomes)
        return sum(len(o.done_checks) for o in outcomes)


async def run_unpaid_checker(
    checks: UnpaidChecks, store: PushStore, poll_seconds: float, lease_seconds: float
) -> None:
    """Settle due unpaid checks as they fall due (polled: a check's due time is not a notification). Claimed checks
    are leased for `lease_seconds`, renewed by the replica's heartbeat while the pass runs (docs/replicas.md)."""
    while True:
        try:
            due = await store.states.claim_unpaid_checks(CHECK_BATCH, lease_seconds)
            if due:
                try:
                    await checks.run(due)
                finally:  # a check whose read failed is retried when its lease, no longer renewed, expires
                    store.leases.forget_leases(LeaseKind.CHECK, [check_lease_id(c.shop_key, c.order_id) for c in due])
                continue
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("unpaid checker failed; retrying")
        await asyncio.sleep(poll_seconds)
