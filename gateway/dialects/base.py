"""What every dialect codec shares: the error vocabulary, HTTP statuses, and the parsing of query parameters.

A codec turns a verified, JSON-decoded request into a dialect-neutral `Query` (gateway.lookups.types) or raises
`InvalidRequest` / `UnsupportedMethod`; it renders a `Result` or a failure as its documented JSON bytes (PROTOCOL §3–§7).
Codecs know nothing of Shopify or HTTP plumbing; gateway/query.py wires them to routes.

Parsing rules (PROTOCOL §3, §5, §7; "decided" where the seeds are silent):
- numbers may arrive as JSON numbers or digit strings (`order_number`, `package_number`, `page`, `limit`); booleans
  are not numbers here, nor floats with a fraction except a package number (`3010.2`, a fulfillment name);
- strings are stripped and bounded in length; unknown fields are ignored;
- pagination: page defaults to 1 and must be 1 … `max_page`; limit defaults to `default_limit`, must be ≥ 1, and a larger
  limit than `max_limit` is **capped** to `max_limit` (decided: capping keeps a platform that asks for "all" working);
- values that could widen a Shopify search (search syntax in an email, an order number with spaces or quotes) are
  rejected here; the lookups still escape what they pass on and re-check results in code.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from pydantic import ValidationError

from gateway import jsoncodec
from gateway.lookups.types import (
    DEFAULT_ORDER_SORT,
    InvalidRequest,
    LookupFailure,
    NotFound,
    OrderFilter,
    OrdersByAccount,
    OrdersByNumber,
    PackagesQuery,
    Page,
    ProductsQuery,
    PropertyQuery,
    Query,
    Sort,
    SortField,
    StoreUnavailable,
    UnsupportedMethod,
)
from gateway.settings import Limits
from mappings.models import Package, Product, Receipt
from mappings.phone import looks_like_email, normalize_phone
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


# --- parameter parsing ---------------------------------------------------------------------------------------------

MAX_TEXT = 255  # titles, vendors, product types, tokens
MAX_NUMBER_TEXT = 64  # order / package / tracking numbers
MAX_EMAIL = 254  # RFC 5321 path limit

_ORDER_NUMBER = re.compile(r"[\w.\-/]+")  # order names, fulfillment names ("1001.1") and tracking numbers
_FILTERS = {
    "all": OrderFilter.ALL,
    "open": OrderFilter.OPEN,
    "unpaid": OrderFilter.UNPAID,
    "closed": OrderFilter.CLOSED,
    "past": OrderFilter.CLOSED,  # meetbot's word; accepted in both dialects (PROTOCOL §5)
}
ORDER_SORT_FIELDS = {SortField.CREATED_AT, SortField.UPDATED_AT, SortField.PROCESSED_AT}
PRODUCT_SORT_FIELDS = {SortField.TITLE, SortField.CREATED_AT, SortField.UPDATED_AT}


def envelope_error(err: ValidationError) -> InvalidRequest:
    """A pydantic envelope error as an InvalidRequest that names the field but never echoes the value."""
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return InvalidRequest(f"{where}: {first['msg'].lower()}")


def params_of(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest("params must be an object")
    return value


def text(params: dict[str, Any], name: str, max_len: int = MAX_TEXT) -> str | None:
    """An optional string parameter: stripped; None when absent, null or blank."""
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string")
    value = value.strip()
    if len(value) > max_len:
        raise InvalidRequest(f"{name} is longer than {max_len} characters")
    if any(ord(c) < 32 for c in value):
        raise InvalidRequest(f"{name} contains control characters")
    return value or None


def number_text(params: dict[str, Any], name: str) -> str | None:
    """An order/package number: a JSON number or a string; spaces and one leading '#' stripped (PROTOCOL §5).

    A package number is a fulfillment name such as "3010.2", so a platform may send it as the JSON number 3010.2: a
    float reads as its shortest decimal form, the same text as the string (decided: 3010.10 arrives as 3010.1 and can
    only mean fulfillment 1; a platform meaning the tenth must send the string). An integral float (1001.0) reads as
    the integer."""
    value = params.get(name)
    if type(value) is str:
        s = value.strip()  # the usual shape: nothing to convert
    else:
        if value is None:
            return None
        if isinstance(value, float):
            if math.isfinite(value) and value.is_integer() and 0 <= value < 2**53:
                value = str(int(value))
            elif math.isfinite(value) and value > 0 and name == "package_number":
                value = repr(value)
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise InvalidRequest(f"{name} must be a number or a string")
        s = str(value).strip()
    if s.startswith("#"):
        s = s[1:].strip()
    if not s:
        return None
    if len(s) > MAX_NUMBER_TEXT or not _ORDER_NUMBER.fullmatch(s):
        raise InvalidRequest(f"{name} is not a valid number")
    return s


def integer(value: Any, name: str) -> int | None:
    """A JSON integer or a digit string (PROTOCOL §3); None when absent."""
    if type(value) is int:
        return value  # the usual JSON integer, asked first (a bool is not one: its type is bool)
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidRequest(f"{name} must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, str):
        s = value.strip()
        if re.fullmatch(r"[+-]?\d{1,18}", s):
            return int(s)
        if re.fullmatch(r"\+?\d+", s):  # longer than 18 digits: positive but huge
            return 10**18
    raise InvalidRequest(f"{name} must be an integer")


def pagination(value: Any, limits: Limits) -> Page:
    """page 1 … max_page (else invalid); limit ≥ 1, capped at max_limit; defaults page 1, default_limit."""
    if value is None:
        return Page(1, min(limits.default_limit, limits.max_limit))
    if not isinstance(value, dict):
        raise InvalidRequest("pagination must be an object")
    page = integer(value.get("page"), "pagination.page")
    limit = integer(value.get("limit"), "pagination.limit")
    if page is None:
        page = 1
    if page < 1:
        raise InvalidRequest("pagination.page must be 1 or more")
    if page > limits.max_page:
        raise InvalidRequest(f"pagination.page must be at most {limits.max_page}")
    if limit is None:
        limit = limits.default_limit
    if limit < 1:
        raise InvalidRequest("pagination.limit must be 1 or more")
    return Page(page, min(limit, limits.max_limit))


def account(value: str, phone_region: str | None = None) -> tuple[str | None, str | None]:
    """`user_account` as (email, phone): an email when it contains '@' (lower-cased by OrdersByAccount, the one place
    that does), else a phone in E.164 (a local number is read in the shop's `phone_region`)."""
    if "@" in value:
        if not looks_like_email(value):
            raise InvalidRequest("user_account is not a valid email address")
        return value, None
    phone = normalize_phone(value, phone_region)
    if phone is None:
        raise InvalidRequest("user_account must be an email address or a phone number")
    return None, phone


def order_filter(params: dict[str, Any]) -> OrderFilter:
    word = text(params, "filter", 16)
    if word is None:
        return OrderFilter.ALL
    try:
        return _FILTERS[word.lower()]
    except KeyError:
        raise InvalidRequest("filter must be one of open, unpaid, closed, past") from None


def sort(params: dict[str, Any], allowed: set[SortField]) -> Sort | None:
    """`order_type` = "<field>,<asc|desc>" with field in `allowed`; None when absent."""
    raw = text(params, "order_type", 32)
    if raw is None:
        return None
    parts = [p.strip().lower() for p in raw.split(",")]
    names = sorted(f.value for f in allowed)
    if len(parts) != 2 or parts[0] not in names or parts[1] not in ("asc", "desc"):
        raise InvalidRequest(f"order_type must be '<field>,<asc|desc>' with field one of {', '.join(names)}")
    return Sort(SortField(parts[0]), parts[1] == "desc")


def exactly_one(a: tuple[str, Any], b: tuple[str, Any]) -> None:
    if (a[1] is None) == (b[1] is None):
        raise InvalidRequest(f"give exactly one of {a[0]} or {b[0]}")


def token(params: dict[str, Any], name: str) -> str:
    """The `test` method's token, echoed back; a number is echoed as its string."""
    value = params.get(name)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidRequest(f"{name} must be a string")
    s = str(value)
    if len(s) > MAX_TEXT:
        raise InvalidRequest(f"{name} is longer than {MAX_TEXT} characters")
    return s


def safe_method_name(method: str) -> str:
    """A method name fit to echo in an error message (bounded, printable)."""
    cleaned = "".join(c for c in method[:40] if c.isprintable())
    return cleaned or "?"


# --- methods → queries (the same parameters in every bot dialect) -------------------------------------------------

METHODS = ("test", "orders", "packages", "products", "property")


def orders_query(
    params: dict[str, Any], page: Page, phone_region: str | None = None
) -> OrdersByNumber | OrdersByAccount:
    number = number_text(params, "order_number")
    user = text(params, "user_account", MAX_EMAIL)
    exactly_one(("order_number", number), ("user_account", user))
    if number is not None:
        return OrdersByNumber(number, page)
    assert user is not None
    email, phone = account(user, phone_region)
    return OrdersByAccount(
        email=email,
        phone=phone,
        filter=order_filter(params),
        sort=sort(params, ORDER_SORT_FIELDS) or DEFAULT_ORDER_SORT,
        page=page,
    )


def packages_query(params: dict[str, Any], page: Page) -> PackagesQuery:
    number = number_text(params, "order_number")
    package = number_text(params, "package_number")
    # PackagesQuery checks that exactly one of them is given
    return PackagesQuery(order_number=number, package_number=package, page=page)


def products_query(params: dict[str, Any], page: Page) -> ProductsQuery:
    title = text(params, "title")
    product_type = text(params, "product_type")
    vendor = text(params, "vendor")
    if title is None and product_type is None and vendor is None:
        raise InvalidRequest("give at least one of title, product_type or vendor")
    return ProductsQuery(
        title=title,
        product_type=product_type,
        vendor=vendor,
        sort=sort(params, PRODUCT_SORT_FIELDS),
        page=page,
    )


def property_query(params: dict[str, Any]) -> PropertyQuery:
    search_type = text(params, "search_type", 32)
    if search_type not in ("product_type", "vendor"):
        raise InvalidRequest("search_type must be product_type or vendor")
    return PropertyQuery(search_type)


def lookup_query(
    method: str, params: dict[str, Any], raw_pagination: Any, limits: Limits, phone_region: str | None = None
) -> Query:
    """The Query of a non-`test` bot method (codecs answer `test` themselves)."""
    if method == "orders":
        return orders_query(params, pagination(raw_pagination, limits), phone_region)
    if method == "packages":
        return packages_query(params, pagination(raw_pagination, limits))
    if method == "products":
        return products_query(params, pagination(raw_pagination, limits))
    if method == "property":
        return property_query(params)
    raise UnsupportedMethod(safe_method_name(method))


# --- rendering -----------------------------------------------------------------------------------------------------


#: Compact UTF-8 JSON, the only serializer the codecs use (jsoncodec's function itself: no second frame per reply).
dumps = jsoncodec.dumps


def receipt_dict(receipt: Receipt, *, closed_word: str = "closed", with_status: bool = True) -> dict[str, Any]:
    """One order in the receipt-template shape: `address` omitted when there is none (PROTOCOL §5). For serializing
    only: the nested dicts are the receipt's own (mappings.receipt.receipt_fields)."""
    d = receipt_fields(receipt, copy_nested=False)  # the codecs only serialize it
    if not with_status:
        del d["status"]
    elif d["status"] == "closed":
        d["status"] = closed_word
    return d


def package_dict(package: Package) -> dict[str, Any]:
    """`package.model_dump()` (PROTOCOL §6), copied off the model's field dict: every field is a str, so the dict is
    already the wire shape, and pydantic's serializer took over ten times as long (a `packages` reply lists many)."""
    return dict(package.__dict__)


V1_PRODUCT_FIELDS = (
    "product_number", "title", "image_url", "product_type", "tags", "description", "created_at", "updated_at",
    "detail_link", "buy_link", "stock", "price", "compare_at_price", "currency_code", "discount",
)  # fmt: skip


def product_v1_dict(product: Product) -> dict[str, Any]:
    """joinchat v1 / meetbot product (PROTOCOL §7): no vendor."""
    return {name: getattr(product, name) for name in V1_PRODUCT_FIELDS}
