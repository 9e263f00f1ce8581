"""Shopify order node → the packages of PROTOCOL §6: one per tracking number of each non-cancelled fulfillment."""

from __future__ import annotations

from collections.abc import Callable

from mappings.models import Package
from mappings.nodes import Node, dig, nodes, strip_hash, utc_date

MAX_PRODUCT_NAME = 80

#: Fulfillment statuses (FulfillmentStatus) and display statuses that mean "this shipment no longer exists".
_CANCELLED = frozenset({"CANCELLED", "CANCELED", "ERROR", "FAILURE"})


def is_live_fulfillment(fulfillment: Node) -> bool:
    status = (fulfillment.get("status") or "").upper()
    display = (fulfillment.get("displayStatus") or "").upper()
    return status not in _CANCELLED and display != "CANCELED"


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
