"""The GDPR compliance webhooks (PROTOCOL §9): customers/redact and shop/redact purge what the gateway stores,
customers/data_request reports it (counts only, in the log). Each purge also evicts the query side's cached lookups
that could show the purged data.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from gateway import jsoncodec
from gateway.push.records import EventOutcome, StoredEvent
from gateway.push.stale import StaleLookups, customer_tags
from gateway.push.store import ComplianceStore
from mappings.nodes import numeric_id
from mappings.push import sub_list, sub_mapping

log = logging.getLogger(__name__)

#: Compliance topics that delete stored data (they run as batches of their own: see EventProcessor.process).
PURGE_TOPICS = frozenset({"customers/redact", "shop/redact"})
COMPLIANCE_TOPICS = PURGE_TOPICS | {"customers/data_request"}


def compliance_target(payload: Mapping[str, Any], orders_field: str) -> tuple[int | None, list[int]]:
    """(customer id, order ids) of a customers/redact or customers/data_request payload."""
    customer_id = numeric_id(sub_mapping(payload, "customer").get("id"))
    order_ids = [i for i in (numeric_id(o) for o in sub_list(payload, orders_field)) if i is not None]
    return customer_id, order_ids


class Compliance:
    def __init__(self, store: ComplianceStore, stale: StaleLookups) -> None:
        self.store = store
        self.stale = stale

    async def handle(self, event: StoredEvent, payload: Mapping[str, Any], outcome: EventOutcome) -> None:
        """Run one compliance event (its topic is in COMPLIANCE_TOPICS)."""
        topic = event.meta.topic
        if topic == "customers/redact":
            customer_id, order_ids = compliance_target(payload, "orders_to_redact")
            counts = await self.store.purge_customer(event.shop_key, customer_id, order_ids)
            # link the request to the customer, so the purge that follows the commit removes it (`forget_request`)
            outcome.customer_id, outcome.order_id = customer_id, (order_ids[0] if order_ids else None)
            self.stale.evict(event.shop_key, customer_tags(sub_mapping(payload, "customer"), customer_id, order_ids))
            log.info("shop %s: customers/redact purged %s", event.shop_key, counts.as_dict())
        elif topic == "shop/redact":
            counts = await self.store.purge_shop(event.shop_key)
            self.stale.evict(event.shop_key, None)
            log.info("shop %s: shop/redact purged %s", event.shop_key, counts.as_dict())
        elif topic == "customers/data_request":
            customer_id, order_ids = compliance_target(payload, "orders_requested")
            counts = await self.store.count_customer_data(event.shop_key, customer_id, order_ids)
            # The request names the customer: linked to them, a later customers/redact removes it with the rest.
            outcome.customer_id, outcome.order_id = customer_id, (order_ids[0] if order_ids else None)
            # Counts only (no ids, emails or phones): the merchant answers the shopper from Shopify; this line is
            # what the operator reports about this gateway, matched to the merchant's request by its id.
            request_id = numeric_id(sub_mapping(payload, "data_request").get("id"))
            log.info(
                "shop %s: customers/data_request %s (%d order(s) named): gateway stores %s",
                event.shop_key,
                request_id if request_id is not None else "-",
                len(order_ids),
                counts.as_dict(),
            )

    async def forget_request(self, event: StoredEvent) -> None:
        """The customers/redact request itself names the customer (email, phone). Committed, it is linked to the
        customer's orders (see `handle`), so purging once more removes it too. (shop/redact's purge already takes
        its own event: it deletes every event of the shop.)"""
        if event.meta.topic != "customers/redact":
            return
        try:
            payload = jsoncodec.loads(event.body)
        except ValueError:
            return
        if isinstance(payload, dict):
            customer_id, order_ids = compliance_target(payload, "orders_to_redact")
            await self.store.purge_customer(event.shop_key, customer_id, order_ids)
