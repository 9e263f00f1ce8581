"""What the decided pushes say: one push read per shop (gateway.push.reader), then the query side's own mappings.

The receipt is the `orders` reply's receipt of the order Shopify has now (mappings.push.receipt_params), the package
the `packages` reply's package of that fulfillment (mappings.push.package_update_params), the recipient the order's
PSID attribute, email or phone. A push whose order (or fulfillment) Shopify does not have, or that has no recipient,
is recorded as unpushable with the reason, never sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from gateway import jsoncodec
from gateway.ops import Metrics
from gateway.push.reader import PushReader, ReadFailed
from gateway.push.records import EventOutcome, NewPush, PushStatus, TrackingEntry
from gateway.push.rules import Decided, PushIntent
from gateway.settings import Settings, ShopSettings
from mappings.nodes import Node
from mappings.package import is_live_fulfillment
from mappings.push import find_fulfillment, package_update_params, receipt_params, recipient, tracking_numbers

NO_RECIPIENT = "not pushable: the order carries no PSID attribute, email or phone"


def push_body(shop: ShopSettings, topic: str, to: Mapping[str, str] | None, params: Mapping[str, Any]) -> bytes:
    """The exact JSON body of a push (PROTOCOL §8)."""
    page_id = shop.push.page_id if shop.push else ""
    return jsoncodec.dumps(
        {"request": {"page_id": page_id, "topic": topic}, "recipient": dict(to or {}), "params": params}
    )


def count_enqueued(metrics: Metrics, outcomes: Iterable[EventOutcome]) -> None:
    for outcome in outcomes:
        for p in outcome.pushes:
            metrics.inc("gateway_push_enqueued_total", topic=p.topic, status=str(p.status))


class PushRenderer:
    """Reads the orders the decided pushes are about and appends the rendered pushes to their outcomes."""

    def __init__(self, settings: Settings, reader: PushReader | None, metrics: Metrics | None = None) -> None:
        self.settings = settings
        #: Where pushes get what they say from (None: no Shopify access, so every push waits).
        self.reader = reader
        self.metrics = metrics or Metrics()

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
        results = await asyncio.gather(*(self.read(shop_key, r, p) for shop_key, (r, p) in wanted.items()))
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
                    self.render_one(intent, read[intent.shop_key].get(intent.order_id), d.outcome, now)
        return failed

    async def read(
        self, shop_key: str, receipts: set[int], packages: Mapping[int, set[int]]
    ) -> dict[int, Node | None] | str:
        """order id → node (None: Shopify has no such order), or the reason the read failed."""
        if self.reader is None:
            return "no Shopify access configured for the push read"
        try:
            return await self.reader.read(shop_key, receipts, packages)
        except ReadFailed as exc:
            self.metrics.inc("gateway_push_read_errors_total", shop=shop_key)
            return exc.reason

    def render_one(self, intent: PushIntent, node: Node | None, outcome: EventOutcome, now: float) -> None:
        """Append the intent's push, rendered from the read's order node, to `outcome`; recorded unpushable with the
        reason when Shopify has no such order (or fulfillment) or the order carries no recipient."""
        shop = self.settings.shops[intent.shop_key]
        params: dict[str, Any] | None = None
        to: dict[str, str] | None = None
        if node is None:
            reason = f"not pushable: Shopify has no order {intent.order_id}"
        elif intent.topic == "package/update":
            params, reason = self._package(intent, node, outcome)
        else:
            params, reason = receipt_params(node), ""
        if params is not None:
            assert node is not None
            to = recipient(node, shop.push.psid_attribute_keys if shop.push else ())
            reason = "" if to else NO_RECIPIENT
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
        if reason:
            push = replace(push, status=PushStatus.UNPUSHABLE, reason=reason)
        outcome.pushes.append(push)

    def _package(self, intent: PushIntent, node: Node, outcome: EventOutcome) -> tuple[dict[str, Any] | None, str]:
        """The package/update params of the intent's fulfillment (and, into `outcome`, the tracking numbers the read
        shows for it), or why there is no package to push."""
        assert intent.fulfillment_id is not None
        for fid, fname, number in tracking_numbers(node):
            if fid == intent.fulfillment_id:
                order_name = fname.rsplit(".", 1)[0]
                outcome.tracking.append(
                    TrackingEntry(intent.shop_key, number, intent.order_id, order_name, intent.customer_id)
                )
        fulfillment = find_fulfillment(node, intent.fulfillment_id)
        if fulfillment is None:  # the reader looked past the order's first page of fulfillments: Shopify has none
            return None, f"not pushable: Shopify's order has no fulfillment {intent.fulfillment_id}"
        if not is_live_fulfillment(fulfillment):  # cancelled (or its label voided) since the webhook: no package
            return None, f"not pushable: Shopify's fulfillment {intent.fulfillment_id} is cancelled"
        return package_update_params(node, fulfillment, intent.status), ""
