"""Shopify order node → the packages of PROTOCOL §6: one per tracking number of each non-cancelled fulfillment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mappings.models import Package
from mappings.nodes import Node, dig, nodes, strip_hash, utc_date

MAX_PRODUCT_NAME = 80

#: A fulfillment in one of these FulfillmentStatus values (REST says them in lower case) or FulfillmentDisplayStatus
#: values is no package: the shipment no longer exists. A voided label counts: Shopify puts the fulfillment's items
#: back to unfulfilled. Neither the `packages` reply lists it nor a package/update announces it.
CANCELLED_FULFILLMENT_STATUSES = frozenset({"CANCELLED", "CANCELED", "ERROR", "FAILURE"})
CANCELLED_DISPLAY_STATUSES = frozenset({"CANCELED", "LABEL_VOIDED"})


def is_cancelled_fulfillment(status: Any, display_status: Any = None) -> bool:
    """Whether a fulfillment of that status (and display status, when known) is cancelled: see above."""
    return _upper(status) in CANCELLED_FULFILLMENT_STATUSES or _upper(display_status) in CANCELLED_DISPLAY_STATUSES


def is_live_fulfillment(fulfillment: Node) -> bool:
    """A GraphQL fulfillment node that is a package (not cancelled)."""
    return not is_cancelled_fulfillment(fulfillment.get("status"), fulfillment.get("displayStatus"))


def _upper(value: Any) -> str:
    return value.strip().upper() if isinstance(value, str) else ""


def expected_delivery(fulfillment: Node) -> str:
    """YYYY-MM-DD of deliveredAt when delivered, else of estimatedDeliveryAt, else ""."""
    return utc_date(fulfillment.get("deliveredAt")) or utc_date(fulfillment.get("estimatedDeliveryAt"))


def _product_name(fulfillment: Node) -> str:
    titles = [dig(item, "lineItem", "title") or "" for item in nodes(fulfillment.get("fulfillmentLineItems"))]
    return ", ".join(t for t in titles if t)[:MAX_PRODUCT_NAME]


def _first_image(fulfillment: Node) -> str:
    """The first fulfilled item's image: `firstLineItem` (GatewayFulfillments asks for it apart from the titles)."""
    for item in nodes(fulfillment.get("firstLineItem") or fulfillment.get("fulfillmentLineItems")):
        return dig(item, "lineItem", "image", "url") or ""
    return ""


def fulfillment_packages(order_name: str, fulfillment: Node, label_for: Callable[[str | None], str]) -> list[Package]:
    """The packages of one fulfillment (one per tracking number; one with empty tracking fields when it has none)."""
    common = {
        "order_number": strip_hash(order_name),
        "package_number": strip_hash(fulfillment.get("name")),
        "product_name": _product_name(fulfillment),
        "package_status": label_for(fulfillment.get("displayStatus")),
        "exp_delivery": expected_delivery(fulfillment),
        "image_url": _first_image(fulfillment),
    }
    tracking = [t for t in fulfillment.get("trackingInfo") or [] if t and (t.get("number") or t.get("url"))]
    if not tracking:
        return [Package(**common)]
    return [
        Package(
            **common,
            carrier=info.get("company") or "",
            tracking_number=info.get("number") or "",
            tracking_url=info.get("url") or "",
        )
        for info in tracking
    ]


def order_to_packages(node: Node, label_for: Callable[[str | None], str]) -> list[Package]:
    """Every package of an order, fulfillments in Shopify's order. `label_for` turns a FulfillmentDisplayStatus into
    a readable label in the order's language (the lookup passes the `mappings.status_labels.PackageLabels` it chose
    for this order; unknown values must get a generic label)."""
    packages: list[Package] = []
    for fulfillment in nodes(node.get("fulfillments")):
        if is_live_fulfillment(fulfillment):
            packages.extend(fulfillment_packages(node.get("name") or "", fulfillment, label_for))
    return packages
