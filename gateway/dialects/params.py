"""A bot query's parameters, the same in every bot dialect, as pydantic types: body → `Query` or `InvalidRequest`.

Rules (PROTOCOL §3, §5, §7; "decided" where the seeds are silent):
- numbers may arrive as JSON numbers or digit strings (`order_number`, `package_number`, `page`, `limit`); booleans
  are not numbers here, nor floats with a fraction except a package number (`3010.2`, a fulfillment name);
- strings are stripped and bounded in length; unknown fields are ignored;
- pagination: page defaults to 1 and must be 1 … `max_page`; limit defaults to `default_limit`, must be ≥ 1, and a larger
  limit than `max_limit` is **capped** to `max_limit` (decided: capping keeps a platform that asks for "all" working);
- values that could widen a Shopify search (search syntax in an email, an order number with spaces or quotes) are
  rejected here; the lookups still escape what they pass on and re-check results in code.

An error names the field and says what is wrong, never echoing the value: "order_number is not a valid number". The
first failing check answers, in the order the fields are declared; a method's options that only matter for one kind
of lookup (an account's `filter` and `order_type`) are only checked for that kind.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Annotated, Any, NoReturn, TypeVar, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from gateway.lookups.types import (
    DEFAULT_ORDER_SORT,
    InvalidRequest,
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
    UnsupportedMethod,
)
from gateway.settings import Limits
from mappings.phone import looks_like_email, normalize_phone

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


def _refuse(message: str) -> NoReturn:
    """A failed check; the field's name is put in front of `message` (see `invalid_request`)."""
    raise PydanticCustomError("gateway", message)


#: pydantic's own checks, worded as the gateway words them
_WORDING = {
    "string_type": "must be a string",
    "string_too_long": "is longer than {max_length} characters",
    "too_long": "is longer than {max_length} characters",
    "string_pattern_mismatch": "contains control characters",
}


def invalid_request(err: ValidationError, prefix: str = "") -> InvalidRequest:
    """The first error as an InvalidRequest naming the field ("pagination.page must be 1 or more")."""
    first = err.errors()[0]
    where = ".".join([prefix, *map(str, first["loc"])] if prefix else map(str, first["loc"]))
    wording = _WORDING.get(first["type"])
    message = wording.format(**first.get("ctx", {})) if wording else first["msg"]
    return InvalidRequest(f"{where} {message}" if where else message)


def envelope_error(err: ValidationError) -> InvalidRequest:
    """A pydantic envelope error as an InvalidRequest that names the field but never echoes the value."""
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return InvalidRequest(f"{where}: {first['msg'].lower()}")


# --- value types ---------------------------------------------------------------------------------------------------


def _stripped(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value  # Python's whitespace (pydantic's strip is narrower)


def _blank_is_none(value: str) -> str | None:
    return value or None


_NO_CONTROLS = r"^[^\x00-\x1f]*$"
#: An optional string: stripped, bounded, without control characters; blank → None.
Text = Annotated[str, BeforeValidator(_stripped), Strict(),
                 StringConstraints(max_length=MAX_TEXT, pattern=_NO_CONTROLS), AfterValidator(_blank_is_none)]  # fmt: skip
Email = Annotated[str, BeforeValidator(_stripped), Strict(),
                  StringConstraints(max_length=MAX_EMAIL, pattern=_NO_CONTROLS), AfterValidator(_blank_is_none)]  # fmt: skip
Word = Annotated[str, BeforeValidator(_stripped), Strict(),
                 StringConstraints(max_length=16, pattern=_NO_CONTROLS), AfterValidator(_blank_is_none)]  # fmt: skip
Phrase = Annotated[str, BeforeValidator(_stripped), Strict(),
                   StringConstraints(max_length=32, pattern=_NO_CONTROLS), AfterValidator(_blank_is_none)]  # fmt: skip


def _number_text(value: Any, fraction_ok: bool) -> str | None:
    """An order/package number: a JSON number or a string; spaces and one leading '#' stripped (PROTOCOL §5).

    A package number is a fulfillment name such as "3010.2", so a platform may send it as the JSON number 3010.2: a
    float reads as its shortest decimal form, the same text as the string (decided: 3010.10 arrives as 3010.1 and can
    only mean fulfillment 1; a platform meaning the tenth must send the string). An integral float (1001.0) reads as
    the integer."""
    if value is None:
        return None
    if isinstance(value, float) and math.isfinite(value):
        if value.is_integer() and 0 <= value < 2**53:
            value = str(int(value))
        elif value > 0 and fraction_ok:
            value = repr(value)
    if isinstance(value, bool) or not isinstance(value, int | str):
        _refuse("must be a number or a string")
    s = str(value).strip()
    if s.startswith("#"):
        s = s[1:].strip()
    if not s:
        return None
    if len(s) > MAX_NUMBER_TEXT or not _ORDER_NUMBER.fullmatch(s):
        _refuse("is not a valid number")
    return s


#: An order number; a package number, which may also be a float with a fraction.
OrderNumber = Annotated[str | None, BeforeValidator(lambda value: _number_text(value, fraction_ok=False))]
PackageNumber = Annotated[str | None, BeforeValidator(lambda value: _number_text(value, fraction_ok=True))]


def _integer(value: Any) -> int | None:
    """A JSON integer or a digit string (PROTOCOL §3); None when absent."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, str):
        s = value.strip()
        if re.fullmatch(r"[+-]?\d{1,18}", s):
            return int(s)
        if re.fullmatch(r"\+?\d+", s):  # longer than 18 digits: positive but huge
            return 10**18
    _refuse("must be an integer")


Integer = Annotated[int | None, BeforeValidator(_integer)]


def _order_filter(word: str | None) -> OrderFilter:
    if word is None:
        return OrderFilter.ALL
    try:
        return _FILTERS[word.lower()]
    except KeyError:
        _refuse("must be one of open, unpaid, closed, past")


def _sort_parser(allowed: set[SortField]) -> Callable[[str | None], Sort | None]:
    """`order_type` = "<field>,<asc|desc>" with field in `allowed`; None when absent."""
    names = sorted(f.value for f in allowed)

    def parse(raw: str | None) -> Sort | None:
        if raw is None:
            return None
        parts = [p.strip().lower() for p in raw.split(",")]
        if len(parts) != 2 or parts[0] not in names or parts[1] not in ("asc", "desc"):
            _refuse(f"must be '<field>,<asc|desc>' with field one of {', '.join(names)}")
        return Sort(SortField(parts[0]), parts[1] == "desc")

    return parse


OrderSort = Annotated[Phrase | None, AfterValidator(_sort_parser(ORDER_SORT_FIELDS))]
ProductSort = Annotated[Phrase | None, AfterValidator(_sort_parser(PRODUCT_SORT_FIELDS))]


def _token(value: Any) -> str:
    """The `test` method's token, echoed back; a number is echoed as its string."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        _refuse("must be a string")
    s = str(value)
    if len(s) > MAX_TEXT:
        _refuse(f"is longer than {MAX_TEXT} characters")
    return s


Token = Annotated[str, BeforeValidator(_token)]


# --- parameter sets ------------------------------------------------------------------------------------------------


class _Params(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


M = TypeVar("M", bound=_Params)


def validated(model: type[M], values: Any, prefix: str = "", **context: Any) -> M:
    try:
        return model.model_validate(values, context=context)
    except ValidationError as err:
        raise invalid_request(err, prefix) from None


class JoinChatTest(_Params):
    token: Token = ""


class MeetbotTest(_Params):
    test_token: Token = ""


class Pagination(_Params):
    """page 1 … max_page (else invalid); limit ≥ 1, capped at max_limit; defaults page 1, default_limit."""

    page: Integer = None
    limit: Integer = None

    def page_of(self, limits: Limits) -> Page:
        page = 1 if self.page is None else self.page
        if page < 1:
            raise InvalidRequest("pagination.page must be 1 or more")
        if page > limits.max_page:
            raise InvalidRequest(f"pagination.page must be at most {limits.max_page}")
        limit = limits.default_limit if self.limit is None else self.limit
        if limit < 1:
            raise InvalidRequest("pagination.limit must be 1 or more")
        return Page(page, min(limit, limits.max_limit))


def pagination(value: Any, limits: Limits) -> Page:
    if value is None:
        return Page(1, min(limits.default_limit, limits.max_limit))
    if not isinstance(value, dict):
        raise InvalidRequest("pagination must be an object")
    return validated(Pagination, value, "pagination").page_of(limits)


class OrdersParams(_Params):
    order_number: OrderNumber = None
    user_account: Email | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> OrdersParams:
        if (self.order_number is None) == (self.user_account is None):
            _refuse("give exactly one of order_number or user_account")
        return self


class AccountOptions(_Params):
    """What only an account lookup reads."""

    filter: Annotated[Word | None, AfterValidator(_order_filter)] = Field(None, validate_default=True)
    order_type: OrderSort = None


class PackagesParams(_Params):
    order_number: OrderNumber = None
    package_number: PackageNumber = None  # PackagesQuery checks that exactly one is given


class ProductsParams(_Params):
    title: Text | None = None
    product_type: Text | None = None
    vendor: Text | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> ProductsParams:
        if self.title is None and self.product_type is None and self.vendor is None:
            _refuse("give at least one of title, product_type or vendor")
        return self


class ProductsSort(_Params):
    order_type: ProductSort = None


def _search_type(value: str | None) -> str:
    if value not in ("product_type", "vendor"):
        _refuse("must be product_type or vendor")
    return value


class PropertyParams(_Params):
    search_type: Annotated[Phrase | None, AfterValidator(_search_type)] = Field(None, validate_default=True)


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


# --- methods → queries ---------------------------------------------------------------------------------------------

METHODS = ("test", "orders", "packages", "products", "property")


def safe_method_name(method: str) -> str:
    """A method name fit to echo in an error message (bounded, printable)."""
    cleaned = "".join(c for c in method[:40] if c.isprintable())
    return cleaned or "?"


def params_of(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest("params must be an object")
    return value


def lookup_query(
    method: str, params: dict[str, Any], raw_pagination: Any, limits: Limits, phone_region: str | None = None
) -> Query:
    """The Query of a non-`test` bot method (codecs answer `test` themselves)."""
    if method == "orders":
        page = pagination(raw_pagination, limits)
        orders = validated(OrdersParams, params)
        if orders.order_number is not None:
            return OrdersByNumber(orders.order_number, page)
        assert orders.user_account is not None
        email, phone = account(orders.user_account, phone_region)
        options = validated(AccountOptions, params)
        return OrdersByAccount(email=email, phone=phone, filter=cast(OrderFilter, options.filter),
                               sort=cast(Sort | None, options.order_type) or DEFAULT_ORDER_SORT, page=page)  # fmt: skip
    if method == "packages":
        page = pagination(raw_pagination, limits)
        packages = validated(PackagesParams, params)
        return PackagesQuery(order_number=packages.order_number, package_number=packages.package_number, page=page)
    if method == "products":
        page = pagination(raw_pagination, limits)
        products = validated(ProductsParams, params)
        return ProductsQuery(title=products.title, product_type=products.product_type, vendor=products.vendor,
                             sort=cast(Sort | None, validated(ProductsSort, params).order_type), page=page)  # fmt: skip
    if method == "property":
        return PropertyQuery(cast(str, validated(PropertyParams, params).search_type))
    raise UnsupportedMethod(safe_method_name(method))
