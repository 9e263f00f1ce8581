"""Tests that post hand-made webhooks need a Shopify that has the orders those webhooks are about: the push read
asks the store for them, as the gateway asks a real shop. `mirror_webhook(shop, topic, payload)` makes the local
store hold what a REST-shaped payload (tests.fixtures_push.rest_order / rest_fulfillment / rest_fulfillment_event)
describes — same ids, name, email, phone, note attributes, financial status, tracking numbers — without emitting any
webhook of its own. Shopify's current state is the newest: a payload older than the store's record changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from localstore.data import SandboxShop, iso
from localstore.seed import build_fulfillment, build_order, record_payment, refresh_fulfillment_status
from mappings.push import FULFILLMENT_EVENT_TOPIC, FULFILLMENT_TOPICS, ORDER_TOPICS


def _when(value: Any) -> datetime:
    if isinstance(value, str) and value:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.now(UTC)


def mirror_webhook(shop: SandboxShop, topic: str, payload: dict[str, Any]) -> None:
    if topic in ORDER_TOPICS:
        mirror_order(shop, payload)
    elif topic in FULFILLMENT_TOPICS:
        mirror_fulfillment(shop, payload)
    elif topic == FULFILLMENT_EVENT_TOPIC:
        mirror_fulfillment(shop, {"id": payload["fulfillment_id"], "order_id": payload["order_id"]})
    shop.touch()


def mirror_order(shop: SandboxShop, payload: dict[str, Any]) -> dict[str, Any]:
    order_id = int(payload["id"])
    status = str(payload.get("financial_status") or "paid").upper()
    order = shop.order(order_id)
    if order is None:
        gateways = payload.get("payment_gateway_names") or ["bogus"]
        order = build_order(
            shop,
            created_at=_when(payload.get("created_at")),
            email=payload.get("email"),
            phone=payload.get("phone"),
            financial_status=status,
            note_attributes={a["name"]: a["value"] for a in payload.get("note_attributes") or ()},
            gateway=gateways[0],
            shipping_address=payload.get("shipping_address"),
            billing_address=payload.get("billing_address") or payload.get("shipping_address"),
        )
        order.update(
            id=f"gid://shopify/Order/{order_id}",
            legacyResourceId=str(order_id),
            name=payload.get("name") or f"#{order_id}",
            updatedAt=iso(_when(payload.get("updated_at") or payload.get("created_at"))),
        )
        shop.add_order(order)
    elif _when(payload.get("updated_at")) > _when(order["updatedAt"]):
        order["updatedAt"] = iso(_when(payload.get("updated_at")))
        if status == "PAID" and order["displayFinancialStatus"] != "PAID":
            record_payment(shop, order, order["updatedAt"])
    if payload.get("cancelled_at") and not order.get("cancelledAt"):
        order.update(cancelledAt=iso(_when(payload["cancelled_at"])), cancelReason="CUSTOMER", closed=True)
    return order


def mirror_fulfillment(shop: SandboxShop, payload: dict[str, Any]) -> dict[str, Any]:
    fulfillment_id = int(payload["id"])
    found = shop.fulfillment(fulfillment_id)
    if found is not None:
        return found[0]
    order = shop.order(int(payload["order_id"])) or mirror_order(shop, {"id": payload["order_id"]})
    numbers = [n for n in payload.get("tracking_numbers") or () if n]
    fulfillment = build_fulfillment(
        shop,
        order,
        order["lineItems"],
        numbers,
        payload.get("tracking_company") or "UPS",
        "FULFILLED",
        _when(payload.get("created_at")),
    )
    fulfillment.update(id=f"gid://shopify/Fulfillment/{fulfillment_id}", legacyResourceId=str(fulfillment_id))
    if payload.get("name"):
        fulfillment["name"] = payload["name"]
    order["fulfillments"].append(fulfillment)
    shop._fulfillments_by_id[fulfillment_id] = (fulfillment, order)
    refresh_fulfillment_status(order)
    return fulfillment
