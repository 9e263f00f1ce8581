"""Money from Shopify's decimal strings, without float arithmetic.

Shopify sends amounts as decimal strings ("19.99"). Replies need JSON numbers with the currency's minor units
(PROTOCOL §5) or strings like "3.00" (§10). Everything goes through `Decimal`, quantized by the ISO 4217 exponent of
the currency, so sums never show float noise (0.1 + 0.2 gives 0.3, "19.99" stays 19.99).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

#: ISO 4217 minor-unit exponents that differ from the usual 2.
_EXPONENTS: dict[str, int] = {
    **dict.fromkeys("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    **dict.fromkeys("CLF UYW".split(), 4),
}

_QUANTA = {exp: Decimal(1).scaleb(-exp) for exp in (0, 2, 3, 4)}


def minor_units(currency: str) -> int:
    """Decimal places of a currency (JPY 0, USD 2, KWD 3); unknown codes get 2."""
    return _EXPONENTS.get((currency or "").upper(), 2)


def to_decimal(amount: str | int | Decimal | None) -> Decimal:
    """A Shopify amount as a Decimal; None, "" and garbage count as zero (a missing money bag means nothing charged)."""
    if amount is None or amount == "":
        return Decimal(0)
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        return Decimal(0)
    return value if value.is_finite() else Decimal(0)


def quantize(amount: str | int | Decimal | None, currency: str) -> Decimal:
    return to_decimal(amount).quantize(_QUANTA[minor_units(currency)], rounding=ROUND_HALF_UP)


def money_number(amount: str | int | Decimal | None, currency: str) -> int | float:
    """A JSON number with the currency's decimals: an int for 0-decimal currencies, else the float whose shortest
    repr is the quantized decimal (json.dumps prints 19.99, never 19.990000000000002)."""
    value = quantize(amount, currency)
    if minor_units(currency) == 0:
        return int(value)
    return float(value)


def money_string(amount: str | int | Decimal | None, currency: str) -> str:
    """The amount as a fixed-point string with the currency's decimals: "3.00", "1500" (JPY), "1.250" (KWD)."""
    return str(quantize(amount, currency))


def total(amounts: Iterable[str | int | Decimal | None]) -> Decimal:
    """Exact sum of Shopify amounts."""
    return sum((to_decimal(a) for a in amounts), Decimal(0))
