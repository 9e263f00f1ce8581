"""The `openapi` dialect (seed 004), as reconciled in PROTOCOL §10.

`POST /api/openapi/v1/orders/{order_id}`, headers `Appid` and `AppSecret`, body
`{"payload": base64(JSON {"machine_no": "8 digits", "timestamp": "Unix seconds"})}`.
Reply `{"code":0,"message":"ok","data":{...}}` where fields that are empty, zero or false are omitted (the seed's
protobuf convention); errors `{"code":C,"message":"...","data":{}}`:
40001 bad Appid/AppSecret (HTTP 401), 40002 payload not base64/JSON or machine_no not 8 digits (400), 40003 timestamp
outside the replay window (decided: HTTP 401), 40004 machine not in the allow-list (decided: HTTP 403), 40400 order not
found (200), 40005 order expired (200), 50300 store unavailable (503); (decided) 50000 internal error (500).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, ValidationError

from gateway import jsoncodec
from gateway.dialects.base import ErrorKind, GatewayError, dumps
from gateway.lookups.types import OpenApiOrderQuery, OpenApiOrderResult
from gateway.settings import OpenApiSettings
from mappings.nodes import strip_hash

APPID_HEADER = "Appid"
APPSECRET_HEADER = "AppSecret"

OK = 0
BAD_CREDENTIALS = 40001
BAD_PAYLOAD = 40002
BAD_TIMESTAMP = 40003
MACHINE_NOT_ALLOWED = 40004
ORDER_EXPIRED = 40005
ORDER_NOT_FOUND = 40400
INTERNAL_ERROR = 50000
STORE_UNAVAILABLE = 50300

ERROR_CODES: dict[ErrorKind, int] = {
    ErrorKind.BAD_SIGNATURE: BAD_CREDENTIALS,
    ErrorKind.UNKNOWN_SHOP: BAD_CREDENTIALS,  # the shop is found by its Appid: an unknown one is a bad credential
    ErrorKind.INVALID: BAD_PAYLOAD,
    ErrorKind.UNSUPPORTED: BAD_PAYLOAD,
    ErrorKind.TOO_LARGE: BAD_PAYLOAD,
    ErrorKind.METHOD_NOT_ALLOWED: BAD_PAYLOAD,
    ErrorKind.STALE: BAD_TIMESTAMP,
    ErrorKind.FORBIDDEN: MACHINE_NOT_ALLOWED,
    ErrorKind.EXPIRED: ORDER_EXPIRED,
    ErrorKind.ORDER_NOT_FOUND: ORDER_NOT_FOUND,
    ErrorKind.USER_NOT_FOUND: ORDER_NOT_FOUND,
    ErrorKind.NO_ROUTE: ORDER_NOT_FOUND,
    ErrorKind.UNAVAILABLE: STORE_UNAVAILABLE,
    ErrorKind.INTERNAL: INTERNAL_ERROR,
}

_ORDER_ID = re.compile(r"#?[\w.\-]{1,64}")
_MACHINE_NO = re.compile(r"\d{8}")
_TIMESTAMP = re.compile(r"\d{1,12}")


class OpenApiBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    payload: StrictStr


class OpenApiPayload(BaseModel):
    """The decoded payload. `timestamp` is a string in the seed; a JSON integer is accepted too."""

    model_config = ConfigDict(extra="ignore")

    machine_no: StrictStr
    timestamp: StrictStr | StrictInt


def credentials_match(app_secret_given: str | None, expected: str) -> bool:
    """Constant-time comparison of the AppSecret header."""
    return hmac.compare_digest((app_secret_given or "").encode(), expected.encode())


def _b64decode(s: str) -> bytes:
    s = s.strip()
    padded = s + "=" * (-len(s) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        # Some clients send the URL-safe alphabet.
        return base64.urlsafe_b64decode(padded.encode("ascii"))


def decode_payload(body: Any) -> OpenApiPayload:
    """The request body's payload; GatewayError(INVALID) when it is not base64 JSON with an 8-digit machine_no."""
    try:
        outer = OpenApiBody.model_validate(body)
        raw = _b64decode(outer.payload)
        payload = OpenApiPayload.model_validate(jsoncodec.loads(raw))
    except (ValidationError, ValueError, binascii.Error, UnicodeDecodeError):
        raise GatewayError(ErrorKind.INVALID, "payload must be base64 of a JSON object") from None
    if not _MACHINE_NO.fullmatch(payload.machine_no):
        raise GatewayError(ErrorKind.INVALID, "machine_no must be 8 digits")
    if isinstance(payload.timestamp, str) and not _TIMESTAMP.fullmatch(payload.timestamp.strip()):
        raise GatewayError(ErrorKind.INVALID, "timestamp must be Unix seconds")
    return payload


def check_payload(payload: OpenApiPayload, cfg: OpenApiSettings, now: float) -> None:
    """Replay guard (40003) and machine allow-list (40004)."""
    ts = int(str(payload.timestamp).strip())
    if abs(now - ts) > cfg.max_clock_skew_seconds:
        raise GatewayError(ErrorKind.STALE, "timestamp too far from now")
    if cfg.allowed_machines and payload.machine_no not in cfg.allowed_machines:
        raise GatewayError(ErrorKind.FORBIDDEN, "machine not allowed")


def order_query(order_id: str) -> OpenApiOrderQuery:
    order_id = order_id.strip()
    if not _ORDER_ID.fullmatch(order_id):
        raise GatewayError(ErrorKind.INVALID, "order_id is not valid")
    return OpenApiOrderQuery(strip_hash(order_id))


def order_age_days(result: OpenApiOrderResult, now: float) -> float | None:
    """Days since the order was created: from the result's `created_at` when the lookup gives it, else its date."""
    created_at = getattr(result, "created_at", None)
    if created_at is not None:
        return (now - float(created_at)) / 86400
    try:
        day = dt.date.fromisoformat(result.order.date)
    except ValueError:
        return None
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    return float((today - day).days)


def check_age(result: OpenApiOrderResult, cfg: OpenApiSettings, now: float) -> None:
    if cfg.max_order_age_days <= 0:
        return
    age = order_age_days(result, now)
    if age is not None and age > cfg.max_order_age_days:
        raise GatewayError(ErrorKind.EXPIRED)


def prune(value: Any) -> Any:
    """Drop empty, zero, false and null fields, recursively (protobuf's default-value omission)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = prune(v)
            if v is None or v is False or v == "" or v == [] or v == {}:
                continue
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v == 0:
                continue
            out[k] = v
        return out
    if isinstance(value, list):
        return [prune(v) for v in value]
    return value


class OpenApiCodec:
    name = "openapi"

    def parse(self, body: Any, order_id: str, cfg: OpenApiSettings, now: float) -> OpenApiOrderQuery:
        """The query of `POST /api/openapi/v1/orders/{order_id}` once the Appid/AppSecret matched: the body's payload
        is decoded (40002), checked against the replay window and machine allow-list (40003, 40004), and the path's
        order id validated (40002). Unlike the bot codecs it needs the path and the clock, so they are arguments."""
        check_payload(decode_payload(body), cfg, now)
        return order_query(order_id)

    def render(self, query: OpenApiOrderQuery, result: OpenApiOrderResult) -> bytes:
        return dumps({"code": OK, "message": "ok", "data": prune(result.order.model_dump())})

    def error(self, err: GatewayError) -> bytes:
        return dumps({"code": ERROR_CODES[err.kind], "message": err.message, "data": {}})
