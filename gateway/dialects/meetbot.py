"""The `meetbot` dialect (seed 001), as reconciled in PROTOCOL §3–§7.

Request: `{"request":{"category":"ecommerce","method":M,"id":..,"page_id":..,"meta":..},"params":{...},"pagination":{...}}`,
signed with `X-Hub-Signature` (`sha256=<hex>`, bare hex or base64).
Replies: `{"success":true,"object":"orders"|"packages"|"products","has_next_page":B,"<object>":[...]}` — closed orders say
`past`; errors `{"success":false,"error":{"code":C,"message":"..."}}` with codes 10001 user not found, 11001 order not
found, and (decided) 19001 invalid request, 19002 unsupported method, 19003 invalid signature, 19500 store unavailable.
Decided where the seed is silent: `property` answers `{"success":true,"object":"property","data":[...]}`; errors with no
code of their own (unknown shop, body too large, internal) use 19001 for the caller's mistakes and 19500 for ours.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError

from gateway.dialects.base import (
    ErrorKind,
    GatewayError,
    dumps,
    package_dict,
    product_v1_dict,
    receipt_dict,
)
from gateway.dialects.params import MeetbotTest, envelope_error, lookup_query, params_of, validated
from gateway.lookups.types import (
    InvalidRequest,
    OrdersResult,
    PackagesResult,
    ProductsResult,
    PropertyResult,
    Query,
    TestQuery,
)
from gateway.settings import Limits

SIGNATURE_HEADER = "X-Hub-Signature"

USER_NOT_FOUND = 10001
ORDER_NOT_FOUND = 11001
INVALID_REQUEST = 19001
UNSUPPORTED_METHOD = 19002
INVALID_SIGNATURE = 19003
STORE_UNAVAILABLE = 19500

ERROR_CODES: dict[ErrorKind, int] = {
    ErrorKind.USER_NOT_FOUND: USER_NOT_FOUND,
    ErrorKind.ORDER_NOT_FOUND: ORDER_NOT_FOUND,
    ErrorKind.EXPIRED: ORDER_NOT_FOUND,
    ErrorKind.INVALID: INVALID_REQUEST,
    ErrorKind.TOO_LARGE: INVALID_REQUEST,
    ErrorKind.UNKNOWN_SHOP: INVALID_REQUEST,
    ErrorKind.NO_ROUTE: INVALID_REQUEST,
    ErrorKind.METHOD_NOT_ALLOWED: INVALID_REQUEST,
    ErrorKind.STALE: INVALID_SIGNATURE,
    ErrorKind.UNSUPPORTED: UNSUPPORTED_METHOD,
    ErrorKind.BAD_SIGNATURE: INVALID_SIGNATURE,
    ErrorKind.FORBIDDEN: INVALID_SIGNATURE,
    ErrorKind.UNAVAILABLE: STORE_UNAVAILABLE,
    ErrorKind.INTERNAL: STORE_UNAVAILABLE,
}


class MeetbotRequestInfo(BaseModel):
    model_config = ConfigDict(extra="ignore")

    method: StrictStr
    category: Any = None
    id: Any = None
    page_id: Any = None
    meta: Any = None


class MeetbotRequest(BaseModel):
    """The envelope; unknown fields are ignored (PROTOCOL §3). Parameter values are checked by the method's parser."""

    model_config = ConfigDict(extra="ignore")

    request: MeetbotRequestInfo
    params: dict[str, Any] | None = None
    pagination: dict[str, Any] | None = None


class MeetbotCodec:
    name = "meetbot"
    signature_header = SIGNATURE_HEADER

    def __init__(self, limits: Limits | None = None, phone_region: str | None = None) -> None:
        self.limits = limits or Limits()
        self.phone_region = phone_region

    def parse(self, body: Any) -> Query:
        if not isinstance(body, dict):
            raise InvalidRequest("the body must be a JSON object")
        try:
            envelope = MeetbotRequest.model_validate(body)
        except ValidationError as err:
            raise envelope_error(err) from None
        method = envelope.request.method.strip().lower()
        params = params_of(envelope.params)
        if method == "test":
            return TestQuery(validated(MeetbotTest, params).test_token)
        return lookup_query(method, params, envelope.pagination, self.limits, self.phone_region)

    def render(self, query: Query, result: Any) -> bytes:
        if isinstance(query, TestQuery):
            return dumps({"success": True, "object": "test", "test_token": query.token})
        if isinstance(result, OrdersResult):
            items: list[Any] = [receipt_dict(r, closed_word="past") for r in result.orders]
            return self._list("orders", result.has_next_page, items)
        if isinstance(result, PackagesResult):
            return self._list("packages", result.has_next_page, [package_dict(p) for p in result.packages])
        if isinstance(result, ProductsResult):
            return self._list("products", result.has_next_page, [product_v1_dict(p) for p in result.products])
        if isinstance(result, PropertyResult):
            return dumps({"success": True, "object": "property", "data": list(result.values)})
        raise TypeError(f"meetbot cannot render {type(result).__name__}")

    @staticmethod
    def _list(obj: str, has_next_page: bool, items: list[Any]) -> bytes:
        return dumps({"success": True, "object": obj, "has_next_page": has_next_page, obj: items})

    def error(self, err: GatewayError) -> bytes:
        return dumps({"success": False, "error": {"code": ERROR_CODES[err.kind], "message": err.message}})
