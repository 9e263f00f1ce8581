"""Pydantic models of the documented reply and push formats (PROTOCOL §5–§8, §10).

Field names are the wire names. Mapping functions build these from Shopify GraphQL nodes (or, for pushes, from webhook
payloads); dialect codecs choose which of them, and which fields, go on the wire. Money fields hold JSON numbers built
from the decimal strings Shopify sends (see `mappings.money`), never float arithmetic.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

Number = int | float


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- §5 orders (Messenger receipt template) ---------------------------------------------------------------------


class ReceiptAddress(_Wire):
    street_1: str
    street_2: str = ""
    city: str = ""
    postal_code: str = ""
    state: str = ""
    country: str = ""


class ReceiptSummary(_Wire):
    subtotal: Number
    shipping_cost: Number
    total_tax: Number
    total_cost: Number


class Adjustment(_Wire):
    name: str
    amount: Number


class ReceiptElement(_Wire):
    title: str
    subtitle: str = ""
    quantity: int
    price: Number
    currency: str
    image_url: str = ""


class Receipt(_Wire):
    """One order. `status` uses joinchat words (open/unpaid/closed/cancelled); the meetbot codec says `past` for closed.
    `address` is None when the order has no shipping address (the codec omits the key)."""

    recipient_name: str
    order_number: str
    currency: str
    payment_method: str = ""
    order_url: str = ""
    timestamp: str
    status: str
    address: ReceiptAddress | None = None
    summary: ReceiptSummary
    adjustments: list[Adjustment] = []
    elements: list[ReceiptElement] = []


# --- §6 packages ---------------------------------------------------------------------------------------------------


class Package(_Wire):
    order_number: str
    package_number: str
    product_name: str = ""
    carrier: str = ""
    tracking_number: str = ""
    tracking_url: str = ""
    package_status: str
    exp_delivery: str = ""
    image_url: str = ""


# --- §7 products ---------------------------------------------------------------------------------------------------


class Product(_Wire):
    """Every field either product format needs; the joinchat v1/meetbot codec and the v2 codec each pick theirs."""

    product_number: str
    title: str
    image_url: str = ""
    product_type: str = ""
    vendor: str = ""
    tags: str = ""
    description: str = ""
    created_at: str = ""
    updated_at: str = ""
    detail_link: str = ""
    buy_link: str = ""
    stock: int = 0
    price: str = ""
    compare_at_price: str = ""
    currency_code: str = ""
    discount: str = ""


# --- §10 open API --------------------------------------------------------------------------------------------------


class OpenApiRecord(_Wire):
    id: int
    product_id: int | None = None
    quantity: int
    price: str
    status: str | None = None
    notify_sent: str = "0"


class OpenApiOrder(_Wire):
    """Serialized with `exclude_none` and without empty/zero/false fields (the seed's protobuf convention)."""

    order_id: int
    trade_id: str
    date: str
    amount: str
    status: str
    notify_send_count: int = 0
    records: list[OpenApiRecord] = []


# --- §8 pushes -----------------------------------------------------------------------------------------------------


class PackageUpdateParams(_Wire):
    tracking_number: str = ""
    image_url: str = ""
    tracking_url: str = ""
    #: Not in §8's list: decided so (README), the same carrier as the `packages` reply's package.
    carrier: str = ""
    recipient_name: str = ""
    tracking_status: str
