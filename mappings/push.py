"""Push mappings (PROTOCOL §8). Pure functions: no I/O, no config objects.

Two inputs, two jobs:
- A webhook payload (REST shape) is parsed **once** into typed facts (`parse_webhook`): which order or fulfillment
  changed, into what state, when. The push rules decide on those facts *whether, when and to whom* to push.
  Nothing a push *says* comes from a payload: a 2026 webhook carries no card details, no line-item images, and
  fulfillment payloads carry no order attributes (no PSID).
- An order node of the push read (GraphQL, `gateway/shopify/queries/push_orders.graphql`: the query side's
  `GatewayOrder`, and the fields of its `GatewayFulfillments` a push needs) gives what a push *says*: `receipt_params` is the `orders` reply's
  receipt (mappings.receipt) with an integer timestamp; `package_update_params` is the `packages` reply's package
  (mappings.package) with the transition's status word; `recipient` is the order's PSID / email / phone.

Ids are parsed as integers (never floats: real deliveries carry exact 64-bit ids).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mappings.models import PackageUpdateParams, Receipt
from mappings.nodes import Node, epoch_seconds, nodes, numeric_id, strip_hash
from mappings.package import fulfillment_packages, is_cancelled_fulfillment
from mappings.receipt import awaiting_payment, order_to_receipt, receipt_fields, recipient_name

#: financial_status words (REST, lower case) for which Order/Receipt goes out.
PAID_STATUSES = frozenset({"paid"})

ORDER_TOPICS = frozenset(
    {
        "orders/create",
        "orders/paid",
        "orders/updated",
        "orders/cancelled",
        "orders/fulfilled",
        "orders/partially_fulfilled",
        "orders/edited",
    }
)
FULFILLMENT_TOPICS = frozenset({"fulfillments/create", "fulfillments/update"})
FULFILLMENT_EVENT_TOPIC = "fulfillment_events/create"


# --- the facts of a webhook ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FulfillmentChange:
    """A fulfillment's new state, from fulfillments/*, fulfillment_events/create or an order's fulfillment list."""

    fulfillment_id: int
    order_id: int
    updated_at: float
    #: The push word (shipped, in_transit, out_for_delivery, delivered, ...), or None: nothing to announce.
    status: str | None
    name: str = ""  # "1001.1", without '#'; "" when the payload does not say (fulfillment events)
    tracking_numbers: tuple[str, ...] = ()

    @property
    def order_name(self) -> str:
        """The order's name derived from the fulfillment's ("1001.1" → "1001")."""
        return self.name.rsplit(".", 1)[0] if "." in self.name else self.name


@dataclass(frozen=True, slots=True)
class OrderChange:
    """An order's new state, from an orders/* payload (or reconciliation's listing)."""

    order_id: int
    order_name: str  # without '#'
    created_at: float
    updated_at: float
    financial_status: str  # REST words, lower case
    cancelled: bool
    customer_id: int | None
    #: What the order's cached lookups are tagged with (gateway.cache); never used to address a push.
    email: str = ""
    phone: str = ""
    fulfillments: tuple[FulfillmentChange, ...] = field(default_factory=tuple)

    @property
    def paid(self) -> bool:
        return self.financial_status in PAID_STATUSES and not self.cancelled

    @property
    def unpaid(self) -> bool:
        return awaiting_payment(self.financial_status) and not self.cancelled


@dataclass(frozen=True, slots=True)
class OtherWebhook:
    """Any other topic (products, compliance, app/uninstalled): the rules read the payload itself."""

    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Unusable:
    """A payload the rules cannot act on; the event is dead-lettered with `reason`."""

    reason: str


WebhookFacts = OrderChange | FulfillmentChange | OtherWebhook | Unusable


def parse_webhook(topic: str, payload: Any) -> WebhookFacts:
    """The facts of one stored webhook (its body decoded once, by the rules)."""
    if not isinstance(payload, dict):
        # Intake rejects bodies that are not JSON objects; this only guards old rows / other writers.
        return Unusable("body is not a JSON object")
    if topic in ORDER_TOPICS:
        order = order_change(payload)
        return order if order is not None else Unusable("order payload without a valid id")
    if topic in FULFILLMENT_TOPICS:
        change = fulfillment_change(payload, created=topic == "fulfillments/create")
        return change if change is not None else Unusable("fulfillment payload without valid ids")
    if topic == FULFILLMENT_EVENT_TOPIC:
        event = fulfillment_event_change(payload)
        return event if event is not None else Unusable("fulfillment event without valid ids or a status")
    return OtherWebhook(payload)


# --- small parsers -------------------------------------------------------------------------------------------------


def _time(value: Any) -> float:
    """A payload's time as Unix seconds; 0.0 when absent or unreadable (older than any stored state)."""
    return epoch_seconds(value) or 0.0


def sub_list(obj: Mapping[str, Any], key: str) -> list[Any]:
    """`obj[key]` when it is a list, else an empty one (as `sub_mapping`, for list fields)."""
    value = obj.get(key)
    return value if isinstance(value, list) else []


def sub_mapping(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """`obj[key]` when it is an object, else an empty one: webhook payloads carry null (or, from a broken sender, any
    JSON value) where an object is expected, and a missing customer or address must read as "no data", not crash."""
    value = obj.get(key)
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


_PHONE_DIGITS = re.compile(r"\d")


def _phone(value: Any) -> str:
    """A phone worth addressing: at least 7 digits (REST examples carry things like "555-555-SHIP")."""
    text = _text(value)
    return text if len(_PHONE_DIGITS.findall(text)) >= 7 and not re.search(r"[A-Za-z]", text) else ""


def tracking_status(shipment_status: Any, fulfillment_status: Any = None) -> str | None:
    """The push word for a fulfillment's state (REST words): its shipment status (in_transit, delivered, ...) when
    the carrier reported one, else `shipped`; None for a cancelled fulfillment (nothing to announce)."""
    if is_cancelled_fulfillment(fulfillment_status):
        return None
    status = _text(shipment_status).lower()
    return status or "shipped"


#: FulfillmentDisplayStatus values that mean "it left the warehouse" without a carrier status yet.
_SHIPPED_DISPLAY = frozenset({"FULFILLED", "MARKED_AS_FULFILLED", "SUBMITTED"})


def status_from_display(display_status: Any, status: Any = None) -> str | None:
    """GraphQL `displayStatus` → the push word of the webhook path (IN_TRANSIT → in_transit, FULFILLED → shipped);
    None for a cancelled fulfillment."""
    if is_cancelled_fulfillment(status, display_status):
        return None
    display = _text(display_status).upper()
    if not display or display in _SHIPPED_DISPLAY:
        return "shipped"
    return display.lower()


# --- REST payloads → facts -----------------------------------------------------------------------------------------


def fulfillment_change(payload: Mapping[str, Any], *, created: bool = False) -> FulfillmentChange | None:
    """fulfillments/create|update payloads (and the `fulfillments` of an order payload). None without ids."""
    fulfillment_id = numeric_id(payload.get("id"))
    order_id = numeric_id(payload.get("order_id"))
    if fulfillment_id is None or order_id is None:
        return None
    numbers = [_text(n) for n in sub_list(payload, "tracking_numbers") if _text(n)]
    if not numbers and _text(payload.get("tracking_number")):
        numbers = [_text(payload.get("tracking_number"))]
    status = tracking_status(payload.get("shipment_status"), payload.get("status"))
    if created and status is not None and not _text(payload.get("shipment_status")):
        status = "shipped"
    return FulfillmentChange(
        fulfillment_id=fulfillment_id,
        order_id=order_id,
        updated_at=_time(payload.get("updated_at")) or _time(payload.get("created_at")),
        status=status,
        name=strip_hash(payload.get("name")),
        tracking_numbers=tuple(numbers),
    )


def fulfillment_event_change(payload: Mapping[str, Any]) -> FulfillmentChange | None:
    """fulfillment_events/create (only ids, status, times and location in a real delivery); None without ids or
    status. The fulfillment's name and tracking come from the gateway's state or from the push read."""
    fulfillment_id = numeric_id(payload.get("fulfillment_id"))
    order_id = numeric_id(payload.get("order_id"))
    status = _text(payload.get("status")).lower()
    if fulfillment_id is None or order_id is None or not status:
        return None
    when = _time(payload.get("happened_at")) or _time(payload.get("created_at"))
    return FulfillmentChange(fulfillment_id=fulfillment_id, order_id=order_id, updated_at=when, status=status)


def order_change(order: Mapping[str, Any]) -> OrderChange | None:
    """orders/create|paid|updated|cancelled payloads; None without an id."""
    order_id = numeric_id(order.get("id"))
    if order_id is None:
        return None
    customer = sub_mapping(order, "customer")
    fulfillments = []
    for f in sub_list(order, "fulfillments"):
        if isinstance(f, Mapping):
            change = fulfillment_change({**f, "order_id": f.get("order_id", order_id)})
            if change is not None:
                fulfillments.append(change)
    return OrderChange(
        order_id=order_id,
        order_name=strip_hash(order.get("name")),
        created_at=_time(order.get("created_at")),
        updated_at=_time(order.get("updated_at")) or _time(order.get("created_at")),
        financial_status=_text(order.get("financial_status")).lower(),
        cancelled=bool(order.get("cancelled_at")),
        customer_id=numeric_id(customer.get("id")),
        email=_text(order.get("email")),
        phone=_text(order.get("phone")) or _text(customer.get("phone")),
        fulfillments=tuple(fulfillments),
    )


def order_change_from_node(node: Mapping[str, Any]) -> OrderChange | None:
    """An order node of reconciliation's listing (push_orders_updated.graphql) → the facts a webhook would give."""
    order_id = numeric_id(node.get("legacyResourceId")) or numeric_id(node.get("id"))
    if order_id is None:
        return None
    fulfillments = []
    for f in sub_list(node, "fulfillments"):
        fid = numeric_id(f.get("legacyResourceId")) if isinstance(f, Mapping) else None
        if fid is None:
            continue
        fulfillments.append(
            FulfillmentChange(
                fulfillment_id=fid,
                order_id=order_id,
                updated_at=_time(f.get("updatedAt")) or _time(f.get("createdAt")),
                status=status_from_display(f.get("displayStatus"), f.get("status")),
                name=strip_hash(f.get("name")),
                tracking_numbers=tuple(
                    _text(t.get("number")) for t in nodes(f.get("trackingInfo")) if _text(t.get("number"))
                ),
            )
        )
    return OrderChange(
        order_id=order_id,
        order_name=strip_hash(node.get("name")),
        created_at=_time(node.get("createdAt")),
        updated_at=_time(node.get("updatedAt")) or _time(node.get("createdAt")),
        financial_status=_text(node.get("displayFinancialStatus")).lower(),
        cancelled=bool(node.get("cancelledAt")),
        customer_id=numeric_id(sub_mapping(node, "customer").get("legacyResourceId")),
        email=_text(node.get("email")),
        phone=_text(node.get("phone")),
        fulfillments=tuple(fulfillments),
    )


# --- the push read (GraphQL order nodes) → what a push says ----------------------------------------------------------


def psid_from_attributes(attributes: Any, psid_keys: Iterable[str]) -> str:
    """The PSID in custom attributes (`[{key, value}]`, GraphQL) or note attributes (`[{name, value}]`, REST), keys
    compared case-insensitively; "" when none."""
    keys = {k.casefold() for k in psid_keys}
    if not isinstance(attributes, Sequence):
        return ""
    for attr in attributes:
        if not isinstance(attr, Mapping):
            continue
        name = attr.get("key", attr.get("name"))
        if isinstance(name, str) and name.strip().casefold() in keys:
            value = attr.get("value")
            if isinstance(value, int | str) and str(value).strip():
                return str(value).strip()
    return ""


def recipient(node: Node, psid_keys: Iterable[str]) -> dict[str, str] | None:
    """PROTOCOL §8: the PSID attribute (the order's custom attributes, which REST and the webhooks call note
    attributes), else the email, else a phone; None when the order carries none of them."""
    psid = psid_from_attributes(node.get("customAttributes"), psid_keys)
    if psid:
        return {"id": psid}
    email = _text(node.get("email"))
    if "@" in email:
        return {"email": email}
    shipping = sub_mapping(node, "shippingAddress")
    for phone in (node.get("phone"), shipping.get("phone")):
        if _phone(phone):
            return {"phone": _phone(phone)}
    return None


def receipt_push_params(receipt: Receipt) -> dict[str, Any]:
    """Order/Receipt and Order/Unpaid params (PROTOCOL §8): the receipt of §5 with `timestamp` as an integer,
    without the query-only `status`, `address` omitted when there is none."""
    params = receipt_fields(receipt)
    del params["status"]
    params["timestamp"] = int(params["timestamp"] or 0)
    return params


def receipt_params(node: Node) -> dict[str, Any]:
    """The push params of an order node: the `orders` reply's receipt of the same node (mappings.receipt, the one
    place for the rules of §5)."""
    return receipt_push_params(order_to_receipt(node))


def _no_label(_: str | None) -> str:
    return ""


def find_fulfillment(node: Node, fulfillment_id: int) -> Node | None:
    for fulfillment in nodes(node.get("fulfillments")):
        if numeric_id(fulfillment.get("legacyResourceId")) == fulfillment_id:
            return fulfillment
    return None


def package_update_params(node: Node, fulfillment: Node, status: str) -> dict[str, Any]:
    """package/update params: the `packages` reply's (first) package of that fulfillment of the order node — its
    tracking number, URL and carrier, the first fulfilled line item's image — with the order's recipient name and the
    transition's status word."""
    package = fulfillment_packages(str(node.get("name") or ""), fulfillment, _no_label)[0]
    return PackageUpdateParams(
        tracking_number=package.tracking_number,
        image_url=package.image_url,
        tracking_url=package.tracking_url,
        carrier=package.carrier,
        recipient_name=recipient_name(node),
        tracking_status=status,
    ).model_dump()


def tracking_numbers(node: Node) -> list[tuple[int, str, str]]:
    """(fulfillment id, fulfillment name without '#', tracking number) of every tracked fulfillment in the node."""
    found = []
    for fulfillment in nodes(node.get("fulfillments")):
        fid = numeric_id(fulfillment.get("legacyResourceId"))
        for info in fulfillment.get("trackingInfo") or ():
            number = _text(info.get("number")) if isinstance(info, Mapping) else ""
            if fid is not None and number:
                found.append((fid, strip_hash(fulfillment.get("name")), number))
    return found
