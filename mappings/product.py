"""Shopify product node → the product of PROTOCOL §7 (both the joinchat v1 / meetbot and the joinchat v2 formats)."""

from __future__ import annotations

import re
from decimal import Decimal

from mappings.models import Product
from mappings.money import money_string, to_decimal
from mappings.nodes import Node, dig, iso_utc, nodes, numeric_id

MAX_DESCRIPTION = 500

_WHITESPACE = re.compile(r"\s+")
_TAG = re.compile(r"<[^>]*>")


def plain_text(text: str | None, limit: int = MAX_DESCRIPTION) -> str:
    """Plain text, whitespace collapsed, at most `limit` characters (Shopify's `description` is already plain; a
    stray tag is dropped anyway)."""
    cleaned = _WHITESPACE.sub(" ", _TAG.sub(" ", text or "")).strip()
    return cleaned[:limit].rstrip()


def image_url(node: Node) -> str:
    media = node.get("featuredMedia") or {}
    return dig(media, "preview", "image", "url") or dig(media, "image", "url") or ""


def _cheapest_variant(variants: list[Node]) -> Node | None:
    priced = [v for v in variants if v.get("price") not in (None, "")]
    return min(priced, key=lambda v: to_decimal(v.get("price")), default=None)


def discount_percent(price: Decimal, compare_at: Decimal) -> str:
    """ "20%" off the compare-at price, rounded to a whole percent; "" when there is no saving."""
    if compare_at <= 0 or price >= compare_at:
        return ""
    percent = ((compare_at - price) * 100 / compare_at).quantize(Decimal(1))
    return f"{percent}%" if percent > 0 else ""


def product_to_product(node: Node, *, store_domain: str, currency: str) -> Product:
    """`store_domain` is the storefront host of buy/detail links (the shop's primary domain); `currency` the shop
    currency, used when the price range does not carry one."""
    variants = nodes(node.get("variants"))
    available = next((v for v in variants if v.get("availableForSale")), None)
    variant_id = numeric_id(available.get("legacyResourceId") or available.get("id")) if available else None
    cheapest = _cheapest_variant(variants)
    currency_code = dig(node, "priceRangeV2", "minVariantPrice", "currencyCode") or currency
    price_amount = dig(node, "priceRangeV2", "minVariantPrice", "amount")
    if price_amount is None and cheapest is not None:
        price_amount = cheapest.get("price")
    price = to_decimal(price_amount)
    compare_at = to_decimal(cheapest.get("compareAtPrice")) if cheapest else Decimal(0)
    has_saving = compare_at > price
    handle = node.get("handle") or ""
    return Product(
        product_number=str(numeric_id(node.get("legacyResourceId") or node.get("id")) or ""),
        title=node.get("title") or "",
        image_url=image_url(node),
        product_type=node.get("productType") or "",
        vendor=node.get("vendor") or "",
        tags=", ".join(node.get("tags") or []),
        description=plain_text(node.get("description")),
        created_at=iso_utc(node.get("createdAt")),
        updated_at=iso_utc(node.get("updatedAt")),
        detail_link=node.get("onlineStoreUrl") or (f"https://{store_domain}/products/{handle}" if handle else ""),
        buy_link=f"https://{store_domain}/cart/{variant_id}:1" if variant_id else "",
        stock=int(node.get("totalInventory") or 0),
        price=money_string(price, currency_code) if price_amount is not None else "",
        compare_at_price=money_string(compare_at, currency_code) if has_saving else "",
        currency_code=currency_code,
        discount=discount_percent(price, compare_at) if has_saving else "",
    )
