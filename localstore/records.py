"""The primitives every part of the local store shares: the record type, ids, money and timestamps as Shopify writes them.

Records are plain dicts shaped like the Admin GraphQL objects (camelCase keys = field names); keys starting with `_` are
internal and never reach the wire. This module imports nothing else of the sandbox, so the shop (`data.py`), its
builders (`seed.py`), its webhook bodies (`payloads.py`), the search and the admin surface depend on it, not on each
other.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

Record = dict[str, Any]

CENT = Decimal("0.01")
SHOP_CURRENCY = "USD"

#: Shopify's `FulfillmentEventStatus` values.
EVENT_STATUSES = ("ATTEMPTED_DELIVERY", "CARRIER_PICKED_UP", "CONFIRMED", "DELAYED", "DELIVERED", "FAILURE", "IN_TRANSIT",
                  "LABEL_PRINTED", "LABEL_PURCHASED", "OUT_FOR_DELIVERY", "READY_FOR_PICKUP")


def money(value: Decimal | str | int | float) -> str:
    """Decimal string with two places, as Shopify serialises MoneyV2.amount."""
    if not isinstance(value, Decimal):
        value = Decimal(str(value))
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def money_bag(shop_amount: Decimal, presentment_currency: str, rate: Decimal) -> Record:
    """A MoneyBag: the amount in the shop's currency and in the currency the shopper saw (`rate` apart)."""
    shop_text = money(shop_amount)
    presented = shop_text if rate == 1 else money(shop_amount * rate)
    return {
        "shopMoney": {"amount": shop_text, "currencyCode": SHOP_CURRENCY},
        "presentmentMoney": {"amount": presented, "currencyCode": presentment_currency},
    }


def iso(ts: datetime) -> str:
    """GraphQL DateTime: UTC with Z; milliseconds only when the timestamp has them (changes made at run time)."""
    if ts.utcoffset():
        ts = ts.astimezone(UTC)
    text = f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d}T{ts.hour:02d}:{ts.minute:02d}:{ts.second:02d}"
    if ts.microsecond:
        return f"{text}.{ts.microsecond // 1000:03d}Z"
    return text + "Z"


def gid(kind: str, legacy_id: int) -> str:
    return f"gid://shopify/{kind}/{legacy_id}"


def gid_number(value: str) -> int:
    """The numeric id at the end of a gid the store made itself (`gid://shopify/LineItem/466157049` → 466157049)."""
    return int(value.rsplit("/", 1)[-1])


def legacy_id_of(value: int | str) -> int | None:
    """Numeric id from an int, a numeric string or a gid; None when it is none of these."""
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.startswith("gid://"):
        text = text.rsplit("/", 1)[-1].split("?", 1)[0]
    return int(text) if text.isdigit() else None


@functools.lru_cache(maxsize=65536)
def digits(text: str) -> str:
    """The digits of a phone number, which is how Shopify compares them (`+1 613-612-0707` = `+16136120707`)."""
    return "".join(ch for ch in str(text) if ch.isdigit())



def public(value: Any) -> Any:
    """A record as JSON-able data: internal `_` keys dropped, decimals and datetimes as strings."""
    if isinstance(value, dict):
        return {k: public(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [public(v) for v in value]
    if isinstance(value, (Decimal, datetime)):
        return str(value)
    return value
