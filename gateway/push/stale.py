"""Which of the query side's cached lookups a webhook makes stale, and evicting them.

The tags are the lookup cache's scheme (gateway.cache_tags): a lookup is tagged with what it searched for, a
webhook evicts with what the order or product carries. A cache problem never blocks the push pipeline: it is logged
and the webhook goes on (the entries expire by their TTL).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.cache_tags import order_tags, product_tags
from gateway.flows import LookupInvalidator
from gateway.push.rules import StateBatch
from mappings.nodes import numeric_id
from mappings.push import OrderChange

log = logging.getLogger(__name__)


def order_change_tags(facts: OrderChange) -> list[str]:
    return list(
        order_tags(
            number=facts.order_name,
            email=facts.email or None,
            phone=facts.phone or None,
            customer_id=facts.customer_id,
            order_id=facts.order_id,
        )
    )


def fulfillment_change_tags(order_name: str, order_id: int, batch: StateBatch, shop_key: str) -> list[str]:
    known = batch.orders.get((shop_key, order_id))
    return list(order_tags(number=order_name or (known.order_name if known else None), order_id=order_id))


def product_change_tags(payload: Mapping[str, Any]) -> list[str]:
    return list(product_tags(numeric_id(payload.get("id"))))


def customer_tags(customer: Mapping[str, Any], customer_id: int | None, order_ids: Iterable[int]) -> list[str]:
    """Every lookup that may show the customer's orders (compliance purges)."""
    tags = list(order_tags(email=customer.get("email"), phone=customer.get("phone"), customer_id=customer_id))
    for order_id in order_ids:
        tags += order_tags(order_id=order_id)
    return tags


class StaleLookups:
    """Evicts stale lookups from the query side's cache (no cache: does nothing)."""

    def __init__(self, invalidator: LookupInvalidator | None) -> None:
        self.invalidator = invalidator

    def evict(self, shop_key: str, tags: Iterable[str] | None) -> None:
        """Evict the shop's lookups tagged with any of `tags` (None: every lookup of the shop)."""
        if self.invalidator is None:
            return
        try:
            if tags is None:
                self.invalidator.invalidate_shop(shop_key)
            else:
                self.invalidator.invalidate(shop_key, list(dict.fromkeys(tags)))
        except Exception:  # a cache problem must never block the push pipeline
            log.exception("cache invalidation failed for shop %s", shop_key)
