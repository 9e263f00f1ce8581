"""Dialect-neutral queries and results: the contract between dialect codecs and lookups.

A codec turns a raw, verified request into one of the `*Query` objects (or raises `InvalidRequest`); a lookup turns the
query into a `*Result` (or raises `NotFound` / `StoreUnavailable`); the codec renders either in its documented JSON.
Queries are frozen and hashable so they double as cache keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from mappings.models import OpenApiOrder, Package, Product, Receipt
from mappings.phone import is_e164


class OrderFilter(StrEnum):
    ALL = "all"
    OPEN = "open"  # not closed and not cancelled
    UNPAID = "unpaid"  # open and pending / authorized / partially paid
    CLOSED = "closed"  # closed or cancelled (meetbot says "past")


class SortField(StrEnum):
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    PROCESSED_AT = "processed_at"
    TITLE = "title"
    RELEVANCE = "relevance"


@dataclass(frozen=True, slots=True)
class Sort:
    field: SortField
    descending: bool


#: Orders newest first: an account's orders when the caller names no `order_type` (PROTOCOL §5), and an order
#: number's matches.
DEFAULT_ORDER_SORT = Sort(SortField.CREATED_AT, True)


@dataclass(frozen=True, slots=True)
class Page:
    page: int = 1  # ≥ 1
    limit: int = 3  # 1 … the shop's max_limit


# --- queries -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TestQuery:
    token: str


@dataclass(frozen=True, slots=True)
class OrdersByNumber:
    order_number: str  # spaces and one leading '#' already stripped
    page: Page = Page()


@dataclass(frozen=True, slots=True)
class OrdersByAccount:
    """Exactly one of email / phone. Email lower-cased; phone in E.164 (+16135550135).

    Input is validated once. The codec's parse turns what the platform wrote into this type: it is the one place that
    normalises a phone (it knows the shop's region and names the wire field in its errors) and applies the default
    sort. The type itself refuses an impossible state here, so the lookups trust every query they are given, from a
    codec or built by hand (the console, tests)."""

    email: str | None = None
    phone: str | None = None
    filter: OrderFilter = OrderFilter.ALL
    sort: Sort = DEFAULT_ORDER_SORT
    page: Page = Page()

    def __post_init__(self) -> None:
        if bool(self.email) == bool(self.phone):
            raise InvalidRequest("exactly one of email or phone")
        if self.email:
            # the one place an email is normalised: codecs and hand-built queries alike; the lookup trusts it
            email = self.email.strip().lower()
            if email != self.email:
                object.__setattr__(self, "email", email)
            if not email:
                raise InvalidRequest("exactly one of email or phone")
        if self.phone and not is_e164(self.phone):
            raise InvalidRequest("user_account is not a phone number")


@dataclass(frozen=True, slots=True)
class PackagesQuery:
    """Exactly one of order_number / package_number (a fulfillment name without '#', or a tracking number), checked
    here once, for the codecs and the lookup alike (see OrdersByAccount)."""

    order_number: str | None = None
    package_number: str | None = None
    page: Page = Page()

    def __post_init__(self) -> None:
        if bool(self.order_number) == bool(self.package_number):
            raise InvalidRequest("give exactly one of order_number or package_number")


@dataclass(frozen=True, slots=True)
class ProductsQuery:
    """At least one of title / product_type / vendor, combined with OR. sort None = relevance when title else title asc."""

    title: str | None = None
    product_type: str | None = None
    vendor: str | None = None
    sort: Sort | None = None
    page: Page = Page()


@dataclass(frozen=True, slots=True)
class PropertyQuery:
    search_type: str  # "product_type" | "vendor"


@dataclass(frozen=True, slots=True)
class OpenApiOrderQuery:
    order_id: str  # numeric Shopify order id, or (fallback) an order name


Query = (
    TestQuery | OrdersByNumber | OrdersByAccount | PackagesQuery | ProductsQuery | PropertyQuery | OpenApiOrderQuery
)

# --- results -------------------------------------------------------------------------------------------------------
# Weakly referenceable: gateway.query's reply memo refers to the Result it rendered without keeping it alive.


@dataclass(frozen=True, slots=True, weakref_slot=True)
class OrdersResult:
    orders: list[Receipt]
    has_next_page: bool
    total: int  # all matching orders, not just this page


@dataclass(frozen=True, slots=True, weakref_slot=True)
class PackagesResult:
    packages: list[Package]
    has_next_page: bool
    total: int
    #: The locale the `package_status` labels are in (mappings.status_labels): for the console, not on the wire.
    label_language: str = "en"


@dataclass(frozen=True, slots=True, weakref_slot=True)
class ProductsResult:
    products: list[Product]
    has_next_page: bool
    total: int


@dataclass(frozen=True, slots=True, weakref_slot=True)
class PropertyResult:
    values: list[str]


@dataclass(frozen=True, slots=True, weakref_slot=True)
class OpenApiOrderResult:
    order: OpenApiOrder
    #: The order's createdAt as Unix seconds, for the codec's max_order_age_days check (40005); None when unknown.
    created_at: float | None = None


# --- failures (each codec renders these in its dialect) ------------------------------------------------------------


class LookupFailure(Exception):
    """Base of the business failures a lookup or codec reports."""


@dataclass
class InvalidRequest(LookupFailure):
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass
class UnsupportedMethod(LookupFailure):
    method: str

    def __str__(self) -> str:
        return f"unsupported method: {self.method}"


@dataclass
class NotFound(LookupFailure):
    """kind "user": no customer with that email/phone (meetbot 10001); "order": order or package not found (11001)."""

    kind: str
    message: str = field(default="")

    def __str__(self) -> str:
        return self.message or ("User not found" if self.kind == "user" else "Order not found")


@dataclass
class StoreUnavailable(LookupFailure):
    """Shopify could not answer within the deadline and nothing cached could serve (HTTP 503)."""

    message: str = "store unavailable, try again later"

    def __str__(self) -> str:
        return self.message

