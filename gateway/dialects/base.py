"""What every dialect codec shares: the error vocabulary, HTTP statuses, the envelope's errors, and rendering.

A codec turns a verified, JSON-decoded request into a dialect-neutral `Query` (gateway.lookups.types; the parameters,
the same in every bot dialect, are gateway.dialects.params) or raises `InvalidRequest` / `UnsupportedMethod`; it
renders a `Result` or a failure as its documented JSON bytes (PROTOCOL §3–§7). Codecs know nothing of Shopify or HTTP
plumbing; gateway/query.py wires them to routes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from gateway import jsoncodec
from gateway.lookups.types import (
    InvalidRequest,
    LookupFailure,
    NotFound,
    Query,
    StoreUnavailable,
    UnsupportedMethod,
)
from mappings.models import Package, Product, Receipt
from mappings.receipt import receipt_fields

# --- errors --------------------------------------------------------------------------------------------------------


class ErrorKind(StrEnum):
    """Every way a query can fail, independent of dialect. Each codec maps these to its own codes and shapes."""

    INVALID = "invalid"  # malformed body, wrong types, bad parameter values
    UNSUPPORTED = "unsupported"  # unknown method
    BAD_SIGNATURE = "bad_signature"  # missing or wrong signature / credentials
    FORBIDDEN = "forbidden"  # authenticated but not allowed (open-API machine allow-list)
    STALE = "stale"  # open-API timestamp outside the replay window
    TOO_LARGE = "too_large"  # body over the shop's max_body_bytes
    UNKNOWN_SHOP = "unknown_shop"  # no shop with that key
    NO_ROUTE = "no_route"  # unknown path
    METHOD_NOT_ALLOWED = "method_not_allowed"  # e.g. GET /bot/{shop}
    USER_NOT_FOUND = "user_not_found"  # business outcome (HTTP 200)
    ORDER_NOT_FOUND = "order_not_found"  # business outcome (HTTP 200)
    EXPIRED = "expired"  # open-API order older than max_order_age_days (HTTP 200)
    UNAVAILABLE = "unavailable"  # Shopify down past the deadline and nothing cached (503)
    INTERNAL = "internal"  # a bug: 500 with the dialect's generic body


#: HTTP status of each kind (PROTOCOL §4: 200 for every business outcome, including "not found").
HTTP_STATUS: dict[ErrorKind, int] = {
    ErrorKind.INVALID: 400,
    ErrorKind.UNSUPPORTED: 400,
    ErrorKind.BAD_SIGNATURE: 401,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.STALE: 401,
    ErrorKind.TOO_LARGE: 413,
    ErrorKind.UNKNOWN_SHOP: 404,
    ErrorKind.NO_ROUTE: 404,
    ErrorKind.METHOD_NOT_ALLOWED: 405,
    ErrorKind.USER_NOT_FOUND: 200,
    ErrorKind.ORDER_NOT_FOUND: 200,
    ErrorKind.EXPIRED: 200,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.INTERNAL: 500,
}

DEFAULT_MESSAGES: dict[ErrorKind, str] = {
    ErrorKind.INVALID: "invalid request",
    ErrorKind.UNSUPPORTED: "unsupported method",
    ErrorKind.BAD_SIGNATURE: "invalid signature",
    ErrorKind.FORBIDDEN: "forbidden",
    ErrorKind.STALE: "timestamp out of range",
    ErrorKind.TOO_LARGE: "request body too large",
    ErrorKind.UNKNOWN_SHOP: "unknown shop",
    ErrorKind.NO_ROUTE: "not found",
    ErrorKind.METHOD_NOT_ALLOWED: "method not allowed",
    ErrorKind.USER_NOT_FOUND: "User not found",
    ErrorKind.ORDER_NOT_FOUND: "Order not found",
    ErrorKind.EXPIRED: "order expired",
    ErrorKind.UNAVAILABLE: "store unavailable, try again later",
    ErrorKind.INTERNAL: "internal error",
}


@dataclass
class GatewayError(Exception):
    """A failure the HTTP layer reports in the caller's dialect (the error middleware renders it)."""

    kind: ErrorKind
    message: str = ""

    def __post_init__(self) -> None:
        if not self.message:
            self.message = DEFAULT_MESSAGES[self.kind]

    def __str__(self) -> str:
        return self.message

    @property
    def status(self) -> int:
        return HTTP_STATUS[self.kind]


def classify(failure: LookupFailure) -> GatewayError:
    """A lookup/codec failure as the HTTP layer's error."""
    if isinstance(failure, InvalidRequest):
        return GatewayError(ErrorKind.INVALID, failure.message)
    if isinstance(failure, UnsupportedMethod):
        return GatewayError(ErrorKind.UNSUPPORTED, str(failure))
    if isinstance(failure, NotFound):
        kind = ErrorKind.USER_NOT_FOUND if failure.kind == "user" else ErrorKind.ORDER_NOT_FOUND
        return GatewayError(kind, str(failure))
    if isinstance(failure, StoreUnavailable):
        return GatewayError(ErrorKind.UNAVAILABLE, str(failure))
    return GatewayError(ErrorKind.INTERNAL)


class ErrorCodec(Protocol):
    """Anything that renders a failure in a dialect's error shape."""

    def error(self, err: GatewayError) -> bytes: ...


class Codec(Protocol):
    """One dialect. `parse` gets the decoded JSON body; `render` the query's result; `error` any failure."""

    name: str

    def parse(self, body: Any) -> Query: ...

    def render(self, query: Query, result: Any) -> bytes: ...

    def error(self, err: GatewayError) -> bytes: ...


# --- rendering -----------------------------------------------------------------------------------------------------


#: Compact UTF-8 JSON: the one serializer the codecs use.
dumps = jsoncodec.dumps


def receipt_dict(receipt: Receipt, *, closed_word: str = "closed", with_status: bool = True) -> dict[str, Any]:
    """One order in the receipt-template shape: `address` omitted when there is none (PROTOCOL §5)."""
    d = receipt_fields(receipt)
    if not with_status:
        del d["status"]
    elif d["status"] == "closed":
        d["status"] = closed_word
    return d


def package_dict(package: Package) -> dict[str, Any]:
    """One package (PROTOCOL §6): every field is already its wire value."""
    return package.model_dump()


V1_PRODUCT_FIELDS = (
    "product_number", "title", "image_url", "product_type", "tags", "description", "created_at", "updated_at",
    "detail_link", "buy_link", "stock", "price", "compare_at_price", "currency_code", "discount",
)  # fmt: skip


def product_v1_dict(product: Product) -> dict[str, Any]:
    """joinchat v1 / meetbot product (PROTOCOL §7): no vendor."""
    return {name: getattr(product, name) for name in V1_PRODUCT_FIELDS}
