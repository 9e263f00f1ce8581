"""Shopify order node → the open-API order of PROTOCOL §10 (seed 004)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from mappings.models import OpenApiOrder, OpenApiRecord
from mappings.money import money_string, to_decimal
from mappings.nodes import Node, dig, nodes, numeric_id, parse_time, strip_hash
from mappings.package import is_live_fulfillment

_FINANCIAL_STATUS = {
    "REFUNDED": "REFUND",
    "VOIDED": "REVOKED",
    "EXPIRED": "PAYERROR",
    "PENDING": "NOTPAY",
    "AUTHORIZED": "NOTPAY",
    "PARTIALLY_PAID": "NOTPAY",
    "PAID": "SUCCESS",
    "PARTIALLY_REFUNDED": "SUCCESS",
}

#: Financial statuses under which line items carry a delivery status ("only when paid"; a refunded order was paid).
_PAID = frozenset({"PAID", "PARTIALLY_REFUNDED", "REFUNDED"})

_DELIVERY_STATUS = {
    "DELIVERED": "IS_SUCCESS",
    "PICKED_UP": "IS_PICKED_UP",
    "FAILURE": "IS_FAILED",
    "NOT_DELIVERED": "IS_FAILED",
}


def order_status(node: Node) -> str:
    """test → TESTPAY; cancelled → CLOSED; otherwise by displayFinancialStatus (unknown → NOTPAY)."""
    if node.get("test"):
        return "TESTPAY"
    if node.get("cancelledAt"):
        return "CLOSED"
    return _FINANCIAL_STATUS.get((node.get("displayFinancialStatus") or "").upper(), "NOTPAY")


def local_date(value: str | None, timezone: str) -> str:
    """YYYY-MM-DD of a Shopify DateTime in the shop's IANA time zone (UTC when the zone is unknown)."""
    parsed = parse_time(value)
    if parsed is None:
        return ""
    try:
        zone = ZoneInfo(timezone) if timezone else None
    except (KeyError, ValueError):  # ZoneInfoNotFoundError is a KeyError
        zone = None
    return (parsed.astimezone(zone) if zone else parsed).strftime("%Y-%m-%d")


def _fulfillment_of_lines(node: Node) -> dict[str, Node]:
    """Line item id → the latest live fulfillment that contains it."""
    holder: dict[str, Node] = {}
    for fulfillment in nodes(node.get("fulfillments")):
        if not is_live_fulfillment(fulfillment):
            continue
        for item in nodes(fulfillment.get("fulfillmentLineItems")):
            line_id = dig(item, "lineItem", "id")
            if line_id:
                holder[str(line_id)] = fulfillment
    return holder


def record_status(line: Node, fulfillment: Node | None) -> str:
    if int(line.get("currentQuantity", line.get("quantity")) or 0) == 0:
        return "IS_REFUND"
    if fulfillment is None:
        return "WAITING_PICKED_UP"
    return _DELIVERY_STATUS.get((fulfillment.get("displayStatus") or "").upper(), "IS_DELIVERING")


def order_to_open_api(node: Node, *, shop_timezone: str, delivered_pushes: dict[str, int]) -> OpenApiOrder:
    """`delivered_pushes`: delivered package/update pushes of this order per fulfillment numeric id (as str), from
    the push pipeline's log (`PushStateReader.delivered_package_pushes`)."""
    shop_currency = dig(node, "totalPriceSet", "shopMoney", "currencyCode") or node.get("currencyCode") or ""
    paid = (node.get("displayFinancialStatus") or "").upper() in _PAID and not node.get("cancelledAt")
    fulfillment_of = _fulfillment_of_lines(node)
    records = []
    for line in nodes(node.get("lineItems")):
        fulfillment = fulfillment_of.get(str(line.get("id")))
        fulfillment_id = numeric_id(dig(fulfillment, "legacyResourceId")) if fulfillment else None
        pushed = fulfillment_id is not None and delivered_pushes.get(str(fulfillment_id), 0) > 0
        quantity = int(line.get("quantity") or 0)
        # line total in shop money: the unit price before discounts times the ordered quantity
        unit_price = to_decimal(dig(line, "originalUnitPriceSet", "shopMoney", "amount"))
        records.append(
            OpenApiRecord(
                id=numeric_id(line.get("id")) or 0,
                product_id=numeric_id(dig(line, "product", "legacyResourceId")),
                quantity=quantity,
                price=money_string(unit_price * quantity, shop_currency),
                status=record_status(line, fulfillment) if paid else None,
                notify_sent="1" if pushed else "0",
            )
        )
    return OpenApiOrder(
        order_id=numeric_id(node.get("legacyResourceId") or node.get("id")) or 0,
        trade_id=strip_hash(node.get("name")),
        date=local_date(node.get("createdAt"), shop_timezone),
        amount=money_string(dig(node, "totalPriceSet", "shopMoney", "amount"), shop_currency),
        status=order_status(node),
        notify_send_count=sum(delivered_pushes.values()),
        records=records,
    )


def created_at(node: Node) -> str:
    """The order's createdAt, for the open API's max-order-age check."""
    return node.get("createdAt") or ""
