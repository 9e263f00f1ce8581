"""The `joinchat` dialect, v1 (seed 000) and v2 (seed 002), as reconciled in PROTOCOL §3–§7.

Request: `{"method": M, "params": {...}, "pagination": {"page": P, "limit": L}}`, signed with `X-Joinchat-Signature`.
Replies:
- v1: `{"success":true,"has_next_page":B,"orders"|"packages"|"products":[...]}`; error `{"success":false,"errors":{"message":"..."}}`
- v2: `{"success":true,"total":N,"data":[...]}` (orders carry `"template_type":"receipt"` and no `status`; v2 product
  fields); error `{"success":false,"errors":"..."}`.
Decided where the seeds are silent: `property` in v1 answers `{"success":true,"data":[...]}` like v2, and `packages` in v2
answers `{"success":true,"total":N,"data":[...]}` with the v1 package fields.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError

from gateway.dialects.base import (
    GatewayError,
    dumps,
    package_dict,
    product_v1_dict,
    receipt_dict,
)
from gateway.dialects.params import JoinChatTest, envelope_error, lookup_query, params_of, validated
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
from mappings.models import Product

SIGNATURE_HEADER = "X-Joinchat-Signature"


class JoinChatRequest(BaseModel):
    """The envelope; unknown fields are ignored (PROTOCOL §3). Parameter values are checked by the method's parser."""

    model_config = ConfigDict(extra="ignore")

    method: StrictStr
    params: dict[str, Any] | None = None
    pagination: dict[str, Any] | None = None


def product_v2_dict(product: Product) -> dict[str, Any]:
    return {
        "title": product.title,
        "image_url": product.image_url,
        "product_type": product.product_type,
        "vendor": product.vendor,
        "desc": product.description,
        "detail_url": product.detail_link,
        "buy_url": product.buy_link,
        "price": product.price,
    }


class JoinChatCodec:
    signature_header = SIGNATURE_HEADER

    def __init__(
        self, version: Literal[1, 2] = 1, limits: Limits | None = None, phone_region: str | None = None
    ) -> None:
        self.version = version
        self.name = f"joinchat_v{version}"
        self.limits = limits or Limits()
        self.phone_region = phone_region

    def parse(self, body: Any) -> Query:
        if not isinstance(body, dict):
            raise InvalidRequest("the body must be a JSON object")
        try:
            envelope = JoinChatRequest.model_validate(body)
        except ValidationError as err:
            raise envelope_error(err) from None
        method = envelope.method.strip().lower()
        params = params_of(envelope.params)
        if method == "test":
            return TestQuery(validated(JoinChatTest, params).token)
        return lookup_query(method, params, envelope.pagination, self.limits, self.phone_region)

    def render(self, query: Query, result: Any) -> bytes:
        if isinstance(query, TestQuery):
            return dumps({"success": True, "token": query.token})
        if self.version == 1:
            return dumps(self._v1(result))
        return dumps(self._v2(result))

    def _v1(self, result: Any) -> dict[str, Any]:
        if isinstance(result, OrdersResult):
            return {
                "success": True,
                "has_next_page": result.has_next_page,
                "orders": [receipt_dict(r) for r in result.orders],
            }
        if isinstance(result, PackagesResult):
            return {
                "success": True,
                "has_next_page": result.has_next_page,
                "packages": [package_dict(p) for p in result.packages],
            }
        if isinstance(result, ProductsResult):
            return {
                "success": True,
                "has_next_page": result.has_next_page,
                "products": [product_v1_dict(p) for p in result.products],
            }
        if isinstance(result, PropertyResult):
            return {"success": True, "data": list(result.values)}
        raise TypeError(f"joinchat cannot render {type(result).__name__}")

    def _v2(self, result: Any) -> dict[str, Any]:
        if isinstance(result, OrdersResult):
            data = [{"template_type": "receipt", **receipt_dict(r, with_status=False)} for r in result.orders]
            return {"success": True, "total": result.total, "data": data}
        if isinstance(result, ProductsResult):
            return {"success": True, "total": result.total, "data": [product_v2_dict(p) for p in result.products]}
        if isinstance(result, PackagesResult):
            return {"success": True, "total": result.total, "data": [package_dict(p) for p in result.packages]}
        if isinstance(result, PropertyResult):
            return {"success": True, "data": list(result.values)}
        raise TypeError(f"joinchat cannot render {type(result).__name__}")

    def error(self, err: GatewayError) -> bytes:
        if self.version == 1:
            return dumps({"success": False, "errors": {"message": err.message}})
        return dumps({"success": False, "errors": err.message})
