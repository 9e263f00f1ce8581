"""Push mappings (PROTOCOL §8): Shopify webhook payloads (REST shape) → the facts the push rules decide on and the
params the bot platform receives. Pure functions: no I/O, no config objects.

Ids are parsed as integers (never floats: real deliveries carry exact 64-bit ids). Money comes from Shopify's decimal
strings through `Decimal`, so 19.99 stays 19.99 on the wire.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from mappings.models import PackageUpdateParams

#: financial_status words (REST, lower case) for which Order/Receipt goes out.
PAID_STATUSES = frozenset({"paid"})
#: financial_status words that count as "unpaid" for Order/Unpaid (PROTOCOL §5 `unpaid`).
UNPAID_STATUSES = frozenset({"pending", "authorized", "partially_paid"})
#: Fulfillment statuses that never produce a package push.
DEAD_FULFILLMENT_STATUSES = frozenset({"cancelled", "canceled", "error", "failure"})

MAX_ELEMENTS = 100

Number = int | float


@dataclass(frozen=True, slots=True)
class FulfillmentFacts:
    fulfillment_id: int
    order_id: int
    name: str  # "1001.1", without '#'
    updated_at: float
    #: The push word (shipped, in_transit, out_for_delivery, delivered, ...), or None: no push for this state.
    status: str | None
    tracking_numbers: tuple[str, ...] = ()
    tracking_url: str = ""
    image_url: str = ""
    recipient_name: str = ""
    #: Fallback recipient when the order itself was never seen: {"email": ...} or {"phone": ...}.
    recipient: dict[str, str] | None = None

    @property
    def order_name(self) -> str:
        """The order's name derived from the fulfillment's ("1001.1" → "1001")."""
        return self.name.rsplit(".", 1)[0] if "." in self.name else self.name


@dataclass(frozen=True, slots=True)
class OrderFacts:
    order_id: int
    order_name: str  # without '#'
    created_at: float
    updated_at: float
    financial_status: str  # REST words, lower case
    cancelled: bool
    customer_id: int | None
    recipient: dict[str, str] | None
    recipient_name: str
    receipt: dict[str, Any]  # Order/Receipt and Order/Unpaid params
    fulfillments: tuple[FulfillmentFacts, ...] = field(default_factory=tuple)

    @property
    def paid(self) -> bool:
        return self.financial_status in PAID_STATUSES and not self.cancelled

    @property
    def unpaid(self) -> bool:
        return self.financial_status in UNPAID_STATUSES and not self.cancelled


# --- small parsers -------------------------------------------------------------------------------------------------


def parse_time(value: Any) -> float:
    """ISO 8601 (Shopify's `2021-12-31T19:00:00-05:00` or `...Z`) → Unix seconds; 0.0 when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return 0.0
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def parse_id(value: Any) -> int | None:
    """A Shopify id as an int: JSON integers, digit strings, or a gid (`gid://shopify/Order/123`)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        tail = value.rsplit("/", 1)[-1].split("?", 1)[0]
        if tail.isdigit():
            return int(tail)
    return None


def money(value: Any) -> Number:
    """A decimal string → a JSON number without float noise (`"0.00"` → 0, `"19.99"` → 19.99)."""
    try:
        d = Decimal(str(value)) if value not in (None, "") else Decimal(0)
    except InvalidOperation:
        return 0
    return _number(d)


def _number(d: Decimal) -> Number:
    return int(d) if d == d.to_integral_value() else float(d)


def _presentment(money_set: Any, fallback: Any = None) -> Decimal:
    if isinstance(money_set, Mapping):
        amount = (money_set.get("presentment_money") or {}).get("amount")
        if amount is None:
            amount = (money_set.get("shop_money") or {}).get("amount")
        if amount is not None:
            return Decimal(str(amount))
    return Decimal(str(fallback)) if fallback not in (None, "") else Decimal(0)


def sub_mapping(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """`obj[key]` when it is an object, else an empty one: webhook payloads carry null (or, from a broken sender, any
    JSON value) where an object is expected, and a missing customer or address must read as "no data", not crash."""
    value = obj.get(key)
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _strip_hash(name: Any) -> str:
    return _text(name).removeprefix("#")


_PHONE_DIGITS = re.compile(r"\d")


def _phone(value: Any) -> str:
    """A phone worth addressing: at least 7 digits (REST examples carry things like "555-555-SHIP")."""
    text = _text(value)
    return text if len(_PHONE_DIGITS.findall(text)) >= 7 and not re.search(r"[A-Za-z]", text) else ""


# --- recipients ----------------------------------------------------------------------------------------------------


def psid_from_attributes(attributes: Any, psid_keys: Iterable[str]) -> str:
    """The PSID in note attributes (`[{name, value}]`) or custom attributes (`[{key, value}]`), keys compared
    case-insensitively; "" when none."""
    keys = {k.casefold() for k in psid_keys}
    if not isinstance(attributes, Sequence):
        return ""
    for attr in attributes:
        if not isinstance(attr, Mapping):
            continue
        name = attr.get("name", attr.get("key"))
        if isinstance(name, str) and name.strip().casefold() in keys:
            value = attr.get("value")
            if isinstance(value, int | str) and str(value).strip():
                return str(value).strip()
    return ""


def recipient_from_rest(order: Mapping[str, Any], psid_keys: Iterable[str]) -> dict[str, str] | None:
    """PSID attribute, else email, else phone (PROTOCOL §8); None when the order carries none of them."""
    psid = psid_from_attributes(order.get("note_attributes"), psid_keys)
    if psid:
        return {"id": psid}
    customer = sub_mapping(order, "customer")
    for email in (order.get("email"), order.get("contact_email"), customer.get("email")):
        if _text(email) and "@" in _text(email):
            return {"email": _text(email)}
    shipping = sub_mapping(order, "shipping_address")
    billing = sub_mapping(order, "billing_address")
    for phone in (order.get("phone"), customer.get("phone"), shipping.get("phone"), billing.get("phone")):
        if _phone(phone):
            return {"phone": _phone(phone)}
    return None


def recipient_name_from_rest(order: Mapping[str, Any]) -> str:
    for key in ("shipping_address", "billing_address"):
        address = order.get(key)
        if isinstance(address, Mapping):
            name = _text(address.get("name")) or " ".join(
                p for p in (_text(address.get("first_name")), _text(address.get("last_name"))) if p
            )
            if name:
                return name
    customer = order.get("customer")
    if isinstance(customer, Mapping):
        return " ".join(p for p in (_text(customer.get("first_name")), _text(customer.get("last_name"))) if p)
    return ""


# --- receipt params (§5 fields, timestamp as an integer) ---------------------------------------------------------


def _payment_method(order: Mapping[str, Any]) -> str:
    details = order.get("payment_details")
    if isinstance(details, Mapping):
        brand = _text(details.get("credit_card_company"))
        digits = re.sub(r"\D", "", _text(details.get("credit_card_number")))
        if brand and digits:
            return f"{brand} {digits[-4:]}"
    for gateway in order.get("payment_gateway_names") or ():
        if _text(gateway):
            return _text(gateway)
    return _text(order.get("gateway"))


def receipt_params_from_rest(order: Mapping[str, Any]) -> dict[str, Any]:
    """Order/Receipt (and Order/Unpaid) params from a REST order payload (orders/* webhooks)."""
    currency = _text(order.get("presentment_currency")) or _text(order.get("currency"))
    params: dict[str, Any] = {
        "recipient_name": recipient_name_from_rest(order),
        "order_number": _strip_hash(order.get("name")),
        "currency": currency,
        "payment_method": _payment_method(order),
        "order_url": _text(order.get("order_status_url")),
        "timestamp": int(parse_time(order.get("created_at"))),
    }
    shipping = order.get("shipping_address")
    if isinstance(shipping, Mapping):
        params["address"] = {
            "street_1": _text(shipping.get("address1")),
            "street_2": _text(shipping.get("address2")),
            "city": _text(shipping.get("city")),
            "postal_code": _text(shipping.get("zip")),
            "state": _text(shipping.get("province_code")),
            "country": _text(shipping.get("country_code")),
        }
    params["summary"] = {
        "subtotal": _number(_presentment(order.get("subtotal_price_set"), order.get("subtotal_price"))),
        "shipping_cost": _number(_presentment(order.get("total_shipping_price_set"))),
        "total_tax": _number(_presentment(order.get("total_tax_set"), order.get("total_tax"))),
        "total_cost": _number(_presentment(order.get("total_price_set"), order.get("total_price"))),
    }
    params["adjustments"] = _adjustments(order)
    elements = []
    for item in (order.get("line_items") or ())[:MAX_ELEMENTS]:
        if not isinstance(item, Mapping):
            continue
        elements.append(
            {
                "title": _text(item.get("title")) or _text(item.get("name")),
                "subtitle": _text(item.get("variant_title")),
                "quantity": int(item.get("quantity") or 0),
                "price": _number(_presentment(item.get("price_set"), item.get("price"))),
                "currency": currency,
                "image_url": _text(item.get("image_url")),  # REST line items carry no image; kept when present
            }
        )
    params["elements"] = elements
    return params


def _adjustments(order: Mapping[str, Any]) -> list[dict[str, Any]]:
    applications = [a for a in (order.get("discount_applications") or ()) if isinstance(a, Mapping)]
    if not applications:
        return []
    totals = [Decimal(0)] * len(applications)
    allocations: list[Any] = []
    for item in list(order.get("line_items") or ()) + list(order.get("shipping_lines") or ()):
        if isinstance(item, Mapping):
            allocations += item.get("discount_allocations") or ()
    for alloc in allocations:
        if not isinstance(alloc, Mapping):
            continue
        index = alloc.get("discount_application_index")
        if isinstance(index, int) and 0 <= index < len(totals):
            totals[index] += abs(_presentment(alloc.get("amount_set"), alloc.get("amount")))
    return [
        {
            "name": _text(app.get("code")) or _text(app.get("title")) or _text(app.get("description")),
            "amount": _number(t),
        }
        for app, t in zip(applications, totals, strict=True)
    ]


# --- package/update ------------------------------------------------------------------------------------------------


def tracking_status(shipment_status: Any, fulfillment_status: Any = None) -> str | None:
    """The push word for a fulfillment's state: its shipment status (in_transit, delivered, ...) when the carrier
    reported one, else `shipped`; None for a cancelled or failed fulfillment (nothing to announce)."""
    if _text(fulfillment_status).lower() in DEAD_FULFILLMENT_STATUSES:
        return None
    status = _text(shipment_status).lower()
    return status or "shipped"


def fulfillment_facts_from_rest(payload: Mapping[str, Any], *, topic: str = "") -> FulfillmentFacts | None:
    """fulfillments/create|update payloads (and the `fulfillments` of an order payload). None without ids."""
    fulfillment_id = parse_id(payload.get("id"))
    order_id = parse_id(payload.get("order_id"))
    if fulfillment_id is None or order_id is None:
        return None
    numbers = [n for n in (payload.get("tracking_numbers") or ()) if _text(n)]
    if not numbers and _text(payload.get("tracking_number")):
        numbers = [payload["tracking_number"]]
    urls = [u for u in (payload.get("tracking_urls") or ()) if _text(u)]
    url = _text(payload.get("tracking_url")) or (urls[0] if urls else "")
    destination = sub_mapping(payload, "destination")
    recipient: dict[str, str] | None = None
    if _text(payload.get("email")) and "@" in _text(payload.get("email")):
        recipient = {"email": _text(payload.get("email"))}
    elif _phone(destination.get("phone")):
        recipient = {"phone": _phone(destination.get("phone"))}
    status = tracking_status(payload.get("shipment_status"), payload.get("status"))
    if topic == "fulfillments/create" and status is not None and not _text(payload.get("shipment_status")):
        status = "shipped"
    image = ""
    for item in payload.get("line_items") or ():
        if isinstance(item, Mapping) and _text(item.get("image_url")):
            image = _text(item.get("image_url"))
            break
    return FulfillmentFacts(
        fulfillment_id=fulfillment_id,
        order_id=order_id,
        name=_strip_hash(payload.get("name")),
        updated_at=parse_time(payload.get("updated_at")) or parse_time(payload.get("created_at")),
        status=status,
        tracking_numbers=tuple(_text(n) for n in numbers),
        tracking_url=url,
        image_url=image,
        recipient_name=_text(destination.get("name"))
        or " ".join(p for p in (_text(destination.get("first_name")), _text(destination.get("last_name"))) if p),
        recipient=recipient,
    )


@dataclass(frozen=True, slots=True)
class FulfillmentEventFacts:
    fulfillment_id: int
    order_id: int
    status: str
    happened_at: float


def fulfillment_event_from_rest(payload: Mapping[str, Any]) -> FulfillmentEventFacts | None:
    """fulfillment_events/create payloads; None without ids or status."""
    fulfillment_id = parse_id(payload.get("fulfillment_id"))
    order_id = parse_id(payload.get("order_id"))
    status = _text(payload.get("status")).lower()
    if fulfillment_id is None or order_id is None or not status:
        return None
    when = parse_time(payload.get("happened_at")) or parse_time(payload.get("created_at"))
    return FulfillmentEventFacts(fulfillment_id, order_id, status, when)


def package_params(
    *, tracking_number: str, image_url: str, tracking_url: str, recipient_name: str, status: str
) -> dict[str, Any]:
    return PackageUpdateParams(
        tracking_number=tracking_number,
        image_url=image_url,
        tracking_url=tracking_url,
        recipient_name=recipient_name,
        tracking_status=status,
    ).model_dump()


# --- orders --------------------------------------------------------------------------------------------------------


def order_facts_from_rest(order: Mapping[str, Any], psid_keys: Iterable[str]) -> OrderFacts | None:
    """orders/create|paid|updated|cancelled payloads; None without an id."""
    order_id = parse_id(order.get("id"))
    if order_id is None:
        return None
    customer = sub_mapping(order, "customer")
    fulfillments = []
    for f in order.get("fulfillments") or ():
        if isinstance(f, Mapping):
            facts = fulfillment_facts_from_rest({**f, "order_id": f.get("order_id", order_id)})
            if facts is not None:
                fulfillments.append(facts)
    return OrderFacts(
        order_id=order_id,
        order_name=_strip_hash(order.get("name")),
        created_at=parse_time(order.get("created_at")),
        updated_at=parse_time(order.get("updated_at")) or parse_time(order.get("created_at")),
        financial_status=_text(order.get("financial_status")).lower(),
        cancelled=bool(order.get("cancelled_at")),
        customer_id=parse_id(customer.get("id")),
        recipient=recipient_from_rest(order, psid_keys),
        recipient_name=recipient_name_from_rest(order),
        receipt=receipt_params_from_rest(order),
        fulfillments=tuple(fulfillments),
    )


# --- GraphQL order nodes (reconciliation) ------------------------------------------------------------------------

#: FulfillmentDisplayStatus values that announce nothing (the package is not on its way).
_SILENT_DISPLAY = frozenset({"CANCELED", "LABEL_VOIDED"})
#: FulfillmentDisplayStatus values that mean "it left the warehouse" without a carrier status yet.
_SHIPPED_DISPLAY = frozenset({"FULFILLED", "MARKED_AS_FULFILLED", "SUBMITTED"})


def status_from_display(display_status: Any, status: Any = None) -> str | None:
    """GraphQL `displayStatus` → the push word used by the webhook path (IN_TRANSIT → in_transit, FULFILLED →
    shipped); None for a cancelled fulfillment."""
    display = _text(display_status).upper()
    if _text(status).upper() in ("CANCELLED", "ERROR", "FAILURE") or display in _SILENT_DISPLAY:
        return None
    if not display or display in _SHIPPED_DISPLAY:
        return "shipped"
    return display.lower()


def receipt_params_from_graphql(node: Mapping[str, Any]) -> dict[str, Any]:
    """Order/Receipt params from a GraphQL order node: the query side's receipt (mappings.receipt, one place for
    the rules of §5), with `timestamp` as an integer and without the query-only `status`."""
    from mappings.receipt import order_to_receipt

    receipt = order_to_receipt(dict(node)).model_dump(exclude={"status"})
    receipt["timestamp"] = int(receipt["timestamp"] or 0)
    if receipt.get("address") is None:
        receipt.pop("address", None)
    return receipt


def recipient_from_graphql(node: Mapping[str, Any], psid_keys: Iterable[str]) -> dict[str, str] | None:
    psid = psid_from_attributes(node.get("customAttributes"), psid_keys)
    if psid:
        return {"id": psid}
    if _text(node.get("email")) and "@" in _text(node.get("email")):
        return {"email": _text(node.get("email"))}
    shipping = sub_mapping(node, "shippingAddress")
    for phone in (node.get("phone"), shipping.get("phone")):
        if _phone(phone):
            return {"phone": _phone(phone)}
    return None


def _first_fulfilled_image(fulfillment: Mapping[str, Any]) -> str:
    items = fulfillment.get("fulfillmentLineItems")
    for item in (items.get("nodes") if isinstance(items, Mapping) else None) or ():
        image = (item.get("lineItem") or {}).get("image") if isinstance(item, Mapping) else None
        if isinstance(image, Mapping) and _text(image.get("url")):
            return _text(image.get("url"))
    return ""


def order_facts_from_graphql(node: Mapping[str, Any], psid_keys: Iterable[str]) -> OrderFacts | None:
    """An order node of push_orders_updated.graphql → the same facts the webhook path builds."""
    order_id = parse_id(node.get("legacyResourceId")) or parse_id(node.get("id"))
    if order_id is None:
        return None
    receipt = receipt_params_from_graphql(node)
    order_name = _strip_hash(node.get("name"))
    fulfillments = []
    for f in node.get("fulfillments") or ():
        if not isinstance(f, Mapping):
            continue
        fid = parse_id(f.get("legacyResourceId")) or parse_id(f.get("id"))
        if fid is None:
            continue
        tracking = [t for t in f.get("trackingInfo") or () if isinstance(t, Mapping)]
        fulfillments.append(
            FulfillmentFacts(
                fulfillment_id=fid,
                order_id=order_id,
                name=_strip_hash(f.get("name")),
                updated_at=parse_time(f.get("updatedAt")) or parse_time(f.get("createdAt")),
                status=status_from_display(f.get("displayStatus"), f.get("status")),
                tracking_numbers=tuple(_text(t.get("number")) for t in tracking if _text(t.get("number"))),
                tracking_url=next((_text(t.get("url")) for t in tracking if _text(t.get("url"))), ""),
                image_url=_first_fulfilled_image(f),
            )
        )
    customer = sub_mapping(node, "customer")
    return OrderFacts(
        order_id=order_id,
        order_name=order_name,
        created_at=parse_time(node.get("createdAt")),
        updated_at=parse_time(node.get("updatedAt")) or parse_time(node.get("createdAt")),
        financial_status=_text(node.get("displayFinancialStatus")).lower(),
        cancelled=bool(node.get("cancelledAt")),
        customer_id=parse_id(customer.get("legacyResourceId")) or parse_id(customer.get("id")),
        recipient=recipient_from_graphql(node, psid_keys),
        recipient_name=receipt.get("recipient_name", ""),
        receipt=receipt,
        fulfillments=tuple(fulfillments),
    )
