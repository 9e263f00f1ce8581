"""Shopify order node → the receipt of PROTOCOL §5 (also the params of the Order/Receipt and Order/Unpaid pushes)."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from mappings.models import Number, Receipt
from mappings.money import money_number, to_decimal
from mappings.nodes import Node, dig, epoch_seconds, nodes, strip_hash

MAX_ELEMENTS = 100

#: Financial statuses that make an open order "unpaid" (PROTOCOL §5; GraphQL's displayFinancialStatus words, which
#: REST says in lower case), in the order the `unpaid` filter searches them.
UNPAID_FINANCIAL_STATUSES = ("PENDING", "AUTHORIZED", "PARTIALLY_PAID")

_MASK = "***"
#: Where a recipient name may be, best first (read lazily: the shipping address usually has it).
_NAME_FIELDS = (("shippingAddress", "name"), ("billingAddress", "name"), ("customer", "displayName"))
#: Everything but the ASCII digits 0-9 (a card number arrives as "•••• 4242").
_NOT_DIGITS = re.compile(r"[^0-9]+")
_ZERO = Decimal(0)


def awaiting_payment(financial_status: Any) -> bool:
    """Whether an order's financial status (either API's word) is one of PROTOCOL §5's unpaid ones."""
    return isinstance(financial_status, str) and financial_status.strip().upper() in UNPAID_FINANCIAL_STATUSES


def order_status(node: Node) -> str:
    """cancelled > closed > unpaid > open (joinchat words; the meetbot codec says `past` for closed)."""
    if node.get("cancelledAt"):
        return "cancelled"
    if node.get("closed") or node.get("closedAt"):
        return "closed"
    if awaiting_payment(node.get("displayFinancialStatus")):
        return "unpaid"
    return "open"


def recipient_name(node: Node) -> str:
    """Shipping address name, else billing name, else the customer's display name."""
    for holder, field in _NAME_FIELDS:
        name = dig(node, holder, field)
        if name:
            name = str(name).strip()
            if name:
                return name
    return ""


def mask_name(name: str) -> str:
    """Initials only: "Jane Doe" → "J*** D***" (privacy option for account lookups)."""
    return " ".join(word[0] + _MASK for word in name.split())


def payment_method(node: Node) -> str:
    """ "Visa 4242" when a successful transaction was paid by card, else the gateway name, else ""."""
    gateway = ""
    for transaction in nodes(node.get("transactions")):
        if (transaction.get("status") or "SUCCESS").upper() not in ("SUCCESS", "PENDING"):
            continue
        details = transaction.get("paymentDetails") or {}
        company = (details.get("company") or "").strip()
        digits = _NOT_DIGITS.sub("", details.get("number") or "")
        if company and digits:
            return f"{company} {digits[-4:]}"
        if company:
            return company
        gateway = gateway or (transaction.get("gateway") or "")
    if not gateway:
        gateway = next((g for g in node.get("paymentGatewayNames") or [] if g), "")
    return gateway


def _address(node: Node, *, mask_personal: bool) -> dict[str, str] | None:
    shipping = node.get("shippingAddress")
    if not shipping:
        return None
    street_1 = shipping.get("address1") or ""
    street_2 = shipping.get("address2") or ""
    if mask_personal:
        street_1 = _MASK if street_1 else ""
        street_2 = _MASK if street_2 else ""
    return {
        "street_1": street_1,
        "street_2": street_2,
        "city": shipping.get("city") or "",
        "postal_code": shipping.get("zip") or "",
        "state": shipping.get("provinceCode") or "",
        "country": shipping.get("countryCodeV2") or "",
    }


def _presentment(node: Node, field: str) -> str | None:
    """The amount of a money bag in the shopper's currency (PROTOCOL §5: what the shopper paid in)."""
    return dig(node, field, "presentmentMoney", "amount")  # type: ignore[no-any-return]


def _adjustments(node: Node, line_items: list[Node], currency: str) -> list[dict[str, str | Number]]:
    """One per discount application: its code or title, and the total allocated to line items and shipping lines."""
    applications = nodes(node.get("discountApplications"))
    if not applications:
        return []  # most orders: no allocations worth adding up
    allocated: dict[int, Decimal] = {}
    for holder in line_items + nodes(node.get("shippingLines")):
        for allocation in holder.get("discountAllocations") or ():
            index = dig(allocation, "discountApplication", "index")
            if index is not None:
                index = int(index)
                amount = to_decimal(_presentment(allocation, "allocatedAmountSet"))
                allocated[index] = allocated.get(index, _ZERO) + amount
    return [
        {
            "name": application.get("code") or application.get("title") or "",
            "amount": money_number(abs(allocated.get(int(application.get("index") or 0), _ZERO)), currency),
        }
        for application in applications
    ]


def _elements(line_items: list[Node], currency: str) -> list[dict[str, str | Number]]:
    elements = []
    for item in line_items[:MAX_ELEMENTS]:
        image = item.get("image")
        elements.append(
            {
                "title": item.get("title") or "",
                "subtitle": item.get("variantTitle") or "",
                "quantity": int(item.get("quantity") or 0),
                "price": money_number(_presentment(item, "originalUnitPriceSet"), currency),
                "currency": currency,
                "image_url": (image.get("url") if isinstance(image, dict) else None) or "",
            }
        )
    return elements


def unix_timestamp(value: str | None) -> int:
    return int(epoch_seconds(value) or 0)


def receipt_fields(receipt: Receipt, *, copy_nested: bool = True) -> dict[str, Any]:
    """`receipt.model_dump(exclude_none=True)`, read off the models' field dicts: it runs for every receipt an
    `orders` reply or a push renders, and pydantic's serializer costs several times as much for the same dict. Exact
    because every value a Receipt holds is already its JSON value (str, int, float, or a sub-model of those) and only
    `address` may be None. The top-level dict is always a new one; the nested ones are copies unless `copy_nested` is False,
    for a caller that only serializes the result (they are then the models' own: changing one would change a cached
    receipt)."""
    fields = receipt.__dict__.copy()
    nested: Callable[[Any], dict[str, Any]] = _copied_fields if copy_nested else _own_fields
    address = fields["address"]
    if address is None:
        del fields["address"]
    else:
        fields["address"] = nested(address)
    fields["summary"] = nested(fields["summary"])
    fields["adjustments"] = [nested(adjustment) for adjustment in fields["adjustments"]]
    fields["elements"] = [nested(element) for element in fields["elements"]]
    return fields


def _own_fields(model: Any) -> dict[str, Any]:
    return model.__dict__  # type: ignore[no-any-return]


def _copied_fields(model: Any) -> dict[str, Any]:
    return model.__dict__.copy()  # type: ignore[no-any-return]


def order_to_receipt(node: Node, *, mask_personal: bool = False) -> Receipt:
    """The §5 receipt of one order node (fields of the `GatewayOrder` fragment). `mask_personal` hides the street lines
    and the recipient's name (the shop's privacy option for account lookups)."""
    currency = node.get("presentmentCurrencyCode") or node.get("currencyCode") or ""
    name = recipient_name(node)
    line_items = nodes(node.get("lineItems"))
    # Plain nested dicts validated once: one pass of pydantic-core for the receipt and its sub-models instead of one
    # per model, each behind its Python __init__ (a receipt has six or more models; this runs on every cache miss).
    return Receipt.model_validate(
        {
            "recipient_name": mask_name(name) if mask_personal else name,
            "order_number": strip_hash(node.get("name")),
            "currency": currency,
            "payment_method": payment_method(node),
            "order_url": node.get("statusPageUrl") or "",
            "timestamp": str(unix_timestamp(node.get("createdAt"))),
            "status": order_status(node),
            "address": _address(node, mask_personal=mask_personal),
            "summary": {
                "subtotal": money_number(_presentment(node, "subtotalPriceSet"), currency),
                "shipping_cost": money_number(_presentment(node, "totalShippingPriceSet"), currency),
                "total_tax": money_number(_presentment(node, "totalTaxSet"), currency),
                "total_cost": money_number(_presentment(node, "totalPriceSet"), currency),
            },
            "adjustments": _adjustments(node, line_items, currency),
            "elements": _elements(line_items, currency),
        }
    )
