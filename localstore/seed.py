"""Builders of sandbox records (orders, fulfillments, products, customers) and the deterministic seeding.

The well-known fixtures are documented in `localstore.data`; this module makes them, then fills the shop up to
the requested totals with generated records drawn from `shop.rng` (seeded), so the same seed gives the same shop.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

from localstore.records import (
    CENT,
    SHOP_CURRENCY,
    Record,
    gid,
    gid_number,
    iso,
    money,
    money_bag,
)


class SeededShop(Protocol):
    """What building and seeding records needs of the shop they go into (localstore.data.SandboxShop)."""

    domain: str
    shop_id: int
    rng: random.Random
    orders: list[Record]
    customers: list[Record]
    products: list[Record]

    def next_id(self, kind: str) -> int: ...

    def next_order_number(self) -> int: ...

    def add_customer(self, customer: Record) -> Record: ...

    def add_product(self, product: Record) -> Record: ...

    def add_order(self, order: Record) -> Record: ...

    def add_fulfillment(self, order: Record, fulfillment: Record) -> Record: ...

    def customer(self, ref: int | str) -> Record | None: ...

    def customer_by_email(self, email: str) -> Record | None: ...

    def product(self, ref: int | str) -> Record | None: ...

    def product_by_title(self, title: str) -> Record | None: ...

    def variant(self, ref: int | str) -> Record | None: ...

_DEFAULT: Any = object()
TAX_RATE = Decimal("0.08")

# What generated records are made of (drawn from the shop's seeded rng).
VENDORS = ["JACK & JONES", "Urban Threads", "Nordic Wool Co", "Acme Apparel", "Sunny Days"]
PRODUCT_TYPES = ["T-Shirt", "Hoodie", "Jeans", "Sneakers", "Cap", "Socks", "Jacket"]
_ADJECTIVES = ["Classic", "Slim Fit", "Vintage", "Organic", "Relaxed", "Essential", "Premium", "Striped", "Heavy"]
_COLOURS = ["Black", "White", "Navy", "Green", "Red", "Grey"]
_SIZES = ["S", "M", "L", "XL"]
_FIRST = ["Alice", "Ben", "Carla", "David", "Emma", "Felix", "Grace", "Hugo", "Ines", "Jonas", "Kim", "Luca", "Maya",
          "Noah", "Olga", "Pablo", "Quinn", "Rosa", "Sam", "Tara"]
_LAST = ["Smith", "Meyer", "Rossi", "Novak", "Garcia", "Dubois", "Jensen", "Kowalski", "Silva", "Tanaka", "Okafor"]
_CITIES = [("Ottawa", "Ontario", "ON", "Canada", "CA", "K2P 1L4"), ("Austin", "Texas", "TX", "United States", "US", "78701"),
           ("Portland", "Oregon", "OR", "United States", "US", "97201"), ("Berlin", "Berlin", "BE", "Germany", "DE", "10115"),
           ("Lyon", "Auvergne-Rhône-Alpes", "ARA", "France", "FR", "69001")]
_CARRIERS = [("UPS", "https://www.ups.com/track?tracknum={n}"), ("USPS", "https://tools.usps.com/go/TrackConfirmAction?tLabels={n}"),
             ("DHL Express", "https://www.dhl.com/track?AWB={n}"), ("FedEx", "https://www.fedex.com/fedextrack/?trknbr={n}")]
_CARD_BRANDS = [("Visa", "4242"), ("Mastercard", "4444"), ("American Express", "0005")]
PRESENTMENT_RATES = {"USD": Decimal("1"), "EUR": Decimal("0.92"), "CAD": Decimal("1.36"), "GBP": Decimal("0.79")}

#: The `displayFinancialStatus` values seeded orders take.
FINANCIAL_STATUSES = ["PAID", "PENDING", "AUTHORIZED", "PARTIALLY_PAID", "PARTIALLY_REFUNDED", "REFUNDED", "VOIDED", "EXPIRED"]
#: The event statuses a fulfillment passes through on its way to a display status (oldest first).
_EVENT_TRAIL = {
    "LABEL_PURCHASED": ["LABEL_PURCHASED"],
    "LABEL_PRINTED": ["LABEL_PURCHASED", "LABEL_PRINTED"],
    "CONFIRMED": ["CONFIRMED"],
    "CARRIER_PICKED_UP": ["CONFIRMED", "CARRIER_PICKED_UP"],
    "IN_TRANSIT": ["CONFIRMED", "IN_TRANSIT"],
    "OUT_FOR_DELIVERY": ["CONFIRMED", "IN_TRANSIT", "OUT_FOR_DELIVERY"],
    "ATTEMPTED_DELIVERY": ["CONFIRMED", "IN_TRANSIT", "OUT_FOR_DELIVERY", "ATTEMPTED_DELIVERY"],
    "DELAYED": ["CONFIRMED", "IN_TRANSIT", "DELAYED"],
    "DELIVERED": ["CONFIRMED", "IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED"],
    "FAILURE": ["CONFIRMED", "IN_TRANSIT", "FAILURE"],
    "READY_FOR_PICKUP": ["CONFIRMED", "READY_FOR_PICKUP"],
}
#: Orders #1013… carry one fulfillment in each of these display statuses (the ones #1001/#1004/#1006/#1011/#1012 miss).
DISPLAY_STATUS_FIXTURES: dict[str, str] = {
    f"#{1013 + i}": status
    for i, status in enumerate([
        "ATTEMPTED_DELIVERY", "CANCELED", "CARRIER_PICKED_UP", "DELAYED", "FAILURE", "FULFILLED", "LABEL_PRINTED",
        "LABEL_PURCHASED", "LABEL_VOIDED", "MARKED_AS_FULFILLED", "NOT_DELIVERED", "PICKED_UP", "READY_FOR_PICKUP",
        "SUBMITTED", "CONFIRMED", "IN_TRANSIT", "OUT_FOR_DELIVERY",
    ])
}


#: Orders #1030 …: the same order (a delivered T-shirt and a graphic T-shirt in transit) bought in other languages:
#: one we have labels for, one in Shopify's odd casing, one we have no labels for (its labels fall back to the shop's
#: primary locale, then English).
LOCALE_FIXTURES: dict[str, str] = {"#1030": "zh-CN", "#1031": "fr-Fr", "#1032": "is-IS"}

#: Generated orders' languages, by order number (not drawn from the rng, so the rest of a seed's shop is unchanged).
GENERATED_LOCALES = ("en", "en", "en", "en", "en", "fr", "de", "es", "ja", "zh-CN", "pt-BR", "en-GB", "nl", "zh-TW", "ko")


def _handle(title: str) -> str:
    out = "".join(ch.lower() if ch.isalnum() else "-" for ch in title)
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-")


def _address(first: str, last: str, street: str, city: tuple[str, str, str, str, str, str], phone: str | None) -> Record:
    name, province, code, country, country_code, zip_code = city
    return {
        "name": f"{first} {last}", "firstName": first, "lastName": last, "address1": street, "address2": None,
        "city": name, "zip": zip_code, "province": province, "provinceCode": code, "country": country,
        "countryCodeV2": country_code, "countryCode": country_code, "phone": phone, "company": None,
        "formattedArea": f"{name} {code}, {country}",
    }


# --------------------------------------------------------------------------------------------------- customers


def build_customer(shop: SeededShop, first: str, last: str, email: str | None, phone: str | None,
                   created_at: datetime) -> Record:
    legacy = shop.next_id("Customer")
    stamp = iso(created_at)
    return {
        "__typename": "Customer", "id": gid("Customer", legacy), "legacyResourceId": str(legacy),
        "firstName": first, "lastName": last, "displayName": f"{first} {last}".strip() or (email or phone or ""),
        "email": email, "phone": phone,
        "defaultEmailAddress": {"emailAddress": email, "marketingState": "NOT_SUBSCRIBED", "validFormat": True} if email else None,
        "defaultPhoneNumber": {"phoneNumber": phone, "marketingState": "NOT_SUBSCRIBED"} if phone else None,
        "createdAt": stamp, "updatedAt": stamp, "tags": [], "state": "ENABLED", "verifiedEmail": bool(email),
        "taxExempt": False, "note": None, "locale": "en", "canDelete": False, "validEmailAddress": bool(email),
    }


def _resolve_customer(shop: SeededShop, customer: Any, email: str | None, phone: str | None, stamp: datetime) -> Record | None:
    if isinstance(customer, dict) and "legacyResourceId" in customer:
        return customer
    if isinstance(customer, (int, str)):
        found = shop.customer(customer)
        if found is None:
            raise KeyError(f"no customer {customer!r} in {shop.domain}")
        return found
    if isinstance(customer, dict):
        return shop.add_customer(build_customer(
            shop, customer.get("first_name", ""), customer.get("last_name", ""),
            customer.get("email", email), customer.get("phone", phone), stamp))
    if email:
        found = shop.customer_by_email(email)
        if found is not None:
            return found
    if email or phone:
        local = (email or "shopper").split("@")[0].replace(".", " ").title().split()
        first, last = (local + ["Shopper"])[:2] if local else ("Guest", "Shopper")
        return shop.add_customer(build_customer(shop, first, last, email, phone, stamp))
    return None


# --------------------------------------------------------------------------------------------------- products


def build_product(
    shop: SeededShop,
    title: str,
    vendor: str,
    product_type: str,
    *,
    created_at: datetime,
    price: Decimal,
    status: str = "ACTIVE",
    published: bool = True,
    compare_at: Decimal | None = None,
    image: bool = True,
    variants: list[str] | None = None,
    inventory: list[int] | None = None,
    tags: list[str] | None = None,
    description: str | None = None,
    legacy_id: int | None = None,
) -> Record:
    legacy = legacy_id or shop.next_id("Product")
    handle = _handle(title)
    stamp = iso(created_at)
    variant_titles = variants or ["Default Title"]
    stock = inventory or [10 + (legacy % 7) * 3 for _ in variant_titles]
    variant_records = []
    for position, (variant_title, quantity) in enumerate(zip(variant_titles, stock, strict=False), start=1):
        vid = shop.next_id("ProductVariant")
        variant_records.append({
            "__typename": "ProductVariant", "id": gid("ProductVariant", vid), "legacyResourceId": str(vid),
            "title": variant_title, "displayName": f"{title} - {variant_title}", "price": money(price),
            "compareAtPrice": money(compare_at) if compare_at is not None else None,
            "availableForSale": status == "ACTIVE" and quantity > 0, "inventoryQuantity": quantity,
            "sku": f"{handle[:12].upper()}-{position}", "position": position, "taxable": True,
            "createdAt": stamp, "updatedAt": stamp, "barcode": None, "inventoryPolicy": "DENY",
            "selectedOptions": [{"name": "Title", "value": variant_title}], "_productId": legacy,
        })
    text = description or f"{title} by {vendor}. A {product_type.lower()} made to last, in soft, breathable fabric."
    product: Record = {
        "__typename": "Product", "id": gid("Product", legacy), "legacyResourceId": str(legacy), "title": title,
        "handle": handle, "status": status, "vendor": vendor, "productType": product_type, "tags": tags or [],
        "description": text, "descriptionHtml": f"<p>{text}</p>", "createdAt": stamp, "updatedAt": stamp,
        "variants": variant_records, "isGiftCard": False, "tracksInventory": True, "templateSuffix": None,
        "hasOnlyDefaultVariant": variant_titles == ["Default Title"], "totalVariants": len(variant_records),
        "options": [], "requiresSellingPlan": False,
    }
    if image:
        image_record = {"id": gid("ProductImage", legacy), "url": f"https://cdn.shopify.com/s/files/1/0548/3800/products/{handle}.jpg",
                        "altText": title, "width": 1024, "height": 1024}
        product["featuredMedia"] = {"__typename": "MediaImage", "id": gid("MediaImage", legacy), "alt": title,
                                    "mediaContentType": "IMAGE", "status": "READY", "image": image_record,
                                    "preview": {"image": image_record, "status": "READY"}}
        product["featuredImage"] = image_record
        product["media"] = [product["featuredMedia"]]
        product["images"] = [image_record]
    else:
        product["featuredMedia"] = None
        product["featuredImage"] = None
        product["media"] = []
        product["images"] = []
    _set_published(shop, product, published, stamp)
    _refresh_product_prices(product)
    return product


def _set_published(shop: SeededShop, product: Record, published: bool, stamp: str) -> None:
    product["_published"] = published
    product["publishedAt"] = (product.get("publishedAt") or stamp) if published else None
    visible = published and product["status"] == "ACTIVE"
    product["onlineStoreUrl"] = f"https://{shop.domain}/products/{product['handle']}" if visible else None
    product["onlineStorePreviewUrl"] = f"https://{shop.domain}/products/{product['handle']}?preview=1"
    for variant in product["variants"]:
        variant["availableForSale"] = product["status"] == "ACTIVE" and variant["inventoryQuantity"] > 0


def _refresh_product_prices(product: Record) -> None:
    prices = [Decimal(v["price"]) for v in product["variants"]]
    compare = [Decimal(v["compareAtPrice"]) for v in product["variants"] if v["compareAtPrice"] is not None]

    def m(value: Decimal) -> Record:
        return {"amount": money(value), "currencyCode": SHOP_CURRENCY}

    product["priceRangeV2"] = {"minVariantPrice": m(min(prices)), "maxVariantPrice": m(max(prices))}
    product["priceRange"] = product["priceRangeV2"]
    product["compareAtPriceRange"] = (
        {"minVariantCompareAtPrice": m(min(compare)), "maxVariantCompareAtPrice": m(max(compare))} if compare else None
    )
    product["totalInventory"] = sum(v["inventoryQuantity"] for v in product["variants"])
    product["hasOutOfStockVariants"] = any(v["inventoryQuantity"] <= 0 for v in product["variants"])


_PRODUCT_FIELD_NAMES = {"product_type": "productType", "body_html": "descriptionHtml", "published_at": "publishedAt",
                        "description_html": "descriptionHtml"}


def apply_product_changes(shop: SeededShop, product: Record, changes: dict[str, Any], stamp: str) -> None:
    for key, value in changes.items():
        name = _PRODUCT_FIELD_NAMES.get(key, key)
        if name == "published":
            _set_published(shop, product, bool(value), stamp)
        elif name == "price":
            for variant in product["variants"]:
                variant["price"] = money(value)
        elif name == "compareAtPrice":
            for variant in product["variants"]:
                variant["compareAtPrice"] = money(value) if value is not None else None
        elif name == "inventory":
            for variant in product["variants"]:
                variant["inventoryQuantity"] = int(value)
        elif name == "status":
            product["status"] = str(value).upper()
        elif name == "description":
            product["description"] = value
            product["descriptionHtml"] = f"<p>{value}</p>"
        elif name == "tags" and isinstance(value, str):
            product["tags"] = [t.strip() for t in value.split(",") if t.strip()]
        else:
            product[name] = value
    _set_published(shop, product, product["_published"], stamp)
    _refresh_product_prices(product)
    product["updatedAt"] = stamp


# --------------------------------------------------------------------------------------------------- fulfillments


def tracking_info(company: str | None, numbers: list[str]) -> list[Record]:
    template = next((url for name, url in _CARRIERS if name == company), "https://track.example.com/{n}")
    return [{"company": company, "number": n, "url": template.format(n=n)} for n in numbers]


def set_display_status(fulfillment: Record, status: str, stamp: datetime) -> None:
    fulfillment["displayStatus"] = status
    if status == "DELIVERED":
        fulfillment["deliveredAt"] = iso(stamp)
    if status == "IN_TRANSIT" and not fulfillment.get("inTransitAt"):
        fulfillment["inTransitAt"] = iso(stamp)
    if status == "CANCELED":
        fulfillment["status"] = "CANCELLED"
    fulfillment["updatedAt"] = iso(stamp)


def add_event(shop: SeededShop, fulfillment: Record, status: str, stamp: datetime, message: str | None = None) -> Record:
    legacy = shop.next_id("FulfillmentEvent")
    event = {"__typename": "FulfillmentEvent", "id": gid("FulfillmentEvent", legacy), "status": status,
             "happenedAt": iso(stamp), "createdAt": iso(stamp), "message": message or status.replace("_", " ").capitalize(),
             "estimatedDeliveryAt": fulfillment.get("estimatedDeliveryAt"), "city": None, "province": None,
             "country": None, "zip": None, "address1": None, "latitude": None, "longitude": None, "_legacyId": legacy}
    fulfillment["events"].append(event)
    set_display_status(fulfillment, status, stamp)
    return event


def build_fulfillment(
    shop: SeededShop,
    order: Record,
    line_items: list[Record],
    tracking_numbers: list[str],
    company: str | None,
    display_status: str,
    stamp: datetime,
    *,
    status: str = "SUCCESS",
    estimated_delivery_at: datetime | None = None,
    with_trail: bool = False,
) -> Record:
    legacy = shop.next_id("Fulfillment")
    number = len(order["fulfillments"]) + 1
    fulfillment: Record = {
        "__typename": "Fulfillment", "id": gid("Fulfillment", legacy), "legacyResourceId": str(legacy),
        "name": f"{order['name']}.{number}", "status": status, "displayStatus": "FULFILLED",
        "createdAt": iso(stamp), "updatedAt": iso(stamp), "deliveredAt": None, "inTransitAt": None,
        "estimatedDeliveryAt": iso(estimated_delivery_at or stamp + timedelta(days=4)),
        "trackingInfo": tracking_info(company, tracking_numbers), "requiresShipping": True,
        "totalQuantity": sum(li["quantity"] for li in line_items), "events": [], "service": None,
        "fulfillmentLineItems": [
            {"id": gid("FulfillmentLineItem", gid_number(li["id"]) * 10 + number), "quantity": li["quantity"],
             "lineItem": li, "originalTotalSet": li["originalTotalSet"], "discountedTotalSet": li["discountedTotalSet"]}
            for li in line_items
        ],
        "_orderId": int(order["legacyResourceId"]),
    }
    trail = _EVENT_TRAIL.get(display_status, []) if with_trail else []
    # seeded carrier events come every 6 h, squeezed so that the last one is not in the future
    room = (datetime.now(UTC) - stamp) / (len(trail) + 1)
    step = max(timedelta(seconds=1), min(timedelta(hours=6), room))
    for index, event_status in enumerate(trail):
        add_event(shop, fulfillment, event_status, stamp + step * (index + 1))
    set_display_status(fulfillment, display_status, stamp + step * len(trail))
    if status == "CANCELLED":
        fulfillment["status"] = "CANCELLED"
    return fulfillment


def refresh_fulfillment_status(order: Record) -> None:
    ordered = sum(li["quantity"] for li in order["lineItems"])
    shipped = sum(fli["quantity"] for f in order["fulfillments"] if f["status"] != "CANCELLED"
                  for fli in f["fulfillmentLineItems"])
    if ordered and shipped >= ordered:
        order["displayFulfillmentStatus"] = "FULFILLED"
    elif shipped:
        order["displayFulfillmentStatus"] = "PARTIALLY_FULFILLED"
    else:
        order["displayFulfillmentStatus"] = "UNFULFILLED"
    for li in order["lineItems"]:
        done = sum(fli["quantity"] for f in order["fulfillments"] if f["status"] != "CANCELLED"
                   for fli in f["fulfillmentLineItems"] if fli["lineItem"] is li)
        li["unfulfilledQuantity"] = max(0, li["quantity"] - done)
        li["fulfillableQuantity"] = li["unfulfilledQuantity"]
        li["fulfillmentStatus"] = "fulfilled" if done >= li["quantity"] else ("partial" if done else None)


def tracking_number(shop: SeededShop, company: str) -> str:
    bits = shop.rng.getrandbits(64)
    if company == "UPS":
        alphabet = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"
        chars = []
        for _ in range(16):
            bits, digit = divmod(bits, len(alphabet))
            chars.append(alphabet[digit])
        return "1Z" + "".join(chars)
    if company == "USPS":
        return f"9400{bits % 10**18:018d}"
    if company == "DHL Express":
        return f"{bits % 10**10:010d}"
    return f"{bits % 10**12:012d}"


# --------------------------------------------------------------------------------------------------- orders


def _transaction(shop: SeededShop, order: Record, kind: str, status: str, amount: Decimal, stamp: str) -> Record:
    legacy = shop.next_id("OrderTransaction")
    card = order["_card"]
    gateway = order["_gateway"]
    details = None
    if card is not None:
        details = {"__typename": "CardPaymentDetails", "company": card[0], "number": f"•••• •••• •••• {card[1]}",
                   "name": order["_payer"], "bin": "424242", "expirationMonth": 12, "expirationYear": 2030,
                   "avsResultCode": None, "cvvResultCode": None, "paymentMethodName": "credit_card", "wallet": None}
    return {
        "__typename": "OrderTransaction", "id": gid("OrderTransaction", legacy), "kind": kind, "status": status,
        "gateway": gateway, "formattedGateway": {"bogus": "Bogus", "shopify_payments": "Shopify Payments",
                                                 "manual": "Manual", "paypal": "PayPal"}.get(gateway, gateway.title()),
        "paymentDetails": details, "amountSet": money_bag(amount, order["presentmentCurrencyCode"], order["_rate"]),
        "processedAt": stamp, "createdAt": stamp, "test": order["test"], "manuallyCapturable": False,
        "multiCapturable": False, "errorCode": None, "authorizationCode": "53433" if card else None,
        "paymentId": f"c{legacy}.1",
    }


def _set_financial(shop: SeededShop, order: Record, status: str, stamp: str) -> None:
    total = Decimal(order["totalPriceSet"]["shopMoney"]["amount"])
    txs: list[Record] = []
    refunded = Decimal(0)
    received = Decimal(0)
    if status == "PAID":
        txs.append(_transaction(shop, order, "SALE", "SUCCESS", total, stamp))
        received = total
    elif status == "PENDING":
        if order["_gateway"] != "manual":
            txs.append(_transaction(shop, order, "SALE", "PENDING", total, stamp))
    elif status in ("AUTHORIZED", "EXPIRED"):
        txs.append(_transaction(shop, order, "AUTHORIZATION", "SUCCESS", total, stamp))
    elif status == "VOIDED":
        txs.append(_transaction(shop, order, "AUTHORIZATION", "SUCCESS", total, stamp))
        txs.append(_transaction(shop, order, "VOID", "SUCCESS", total, stamp))
    elif status == "PARTIALLY_PAID":
        received = (total / 2).quantize(CENT)
        txs.append(_transaction(shop, order, "SALE", "SUCCESS", received, stamp))
    elif status in ("REFUNDED", "PARTIALLY_REFUNDED"):
        txs.append(_transaction(shop, order, "SALE", "SUCCESS", total, stamp))
        received = total
        refunded = total if status == "REFUNDED" else (total / 3).quantize(CENT)
        txs.append(_transaction(shop, order, "REFUND", "SUCCESS", refunded, stamp))
        legacy = shop.next_id("Refund")
        order["refunds"] = [{"__typename": "Refund", "id": gid("Refund", legacy), "legacyResourceId": str(legacy),
                             "createdAt": stamp, "updatedAt": stamp, "processedAt": stamp, "note": "Customer return",
                             "totalRefundedSet": money_bag(refunded, order["presentmentCurrencyCode"], order["_rate"])}]
    order["transactions"] = txs
    order["displayFinancialStatus"] = status
    rate, cur = order["_rate"], order["presentmentCurrencyCode"]
    order["totalRefundedSet"] = money_bag(refunded, cur, rate)
    order["currentTotalPriceSet"] = money_bag(total - refunded, cur, rate)
    order["totalReceivedSet"] = money_bag(received, cur, rate)
    outstanding = total - received if status in ("PENDING", "AUTHORIZED", "PARTIALLY_PAID", "EXPIRED") else Decimal(0)
    order["totalOutstandingSet"] = money_bag(outstanding, cur, rate)
    order["fullyPaid"] = status in ("PAID", "PARTIALLY_REFUNDED", "REFUNDED")
    order["unpaid"] = status in ("PENDING", "AUTHORIZED", "EXPIRED")
    order["paymentGatewayNames"] = [order["_gateway"]]


def record_payment(shop: SeededShop, order: Record, stamp: str) -> None:
    """Capture whatever is outstanding and mark the order PAID."""
    total = Decimal(order["totalPriceSet"]["shopMoney"]["amount"])
    captured = Decimal(order.get("totalReceivedSet", {}).get("shopMoney", {}).get("amount", "0"))
    kind = "CAPTURE" if order["displayFinancialStatus"] == "AUTHORIZED" else "SALE"
    order["transactions"] = [t for t in order["transactions"] if t["status"] != "PENDING"]
    order["transactions"].append(_transaction(shop, order, kind, "SUCCESS", total - captured, stamp))
    rate, cur = order["_rate"], order["presentmentCurrencyCode"]
    order["displayFinancialStatus"] = "PAID"
    order["totalReceivedSet"] = money_bag(total, cur, rate)
    order["totalOutstandingSet"] = money_bag(Decimal(0), cur, rate)
    order["fullyPaid"] = True
    order["unpaid"] = False


class _Line(NamedTuple):
    """One requested line of a new order, resolved against the catalogue."""

    product: Record | None
    variant: Record | None
    title: str
    quantity: int
    price: Decimal  # unit price, shop currency


def _line_items_from_spec(shop: SeededShop, specs: list[dict[str, Any]] | None) -> list[_Line]:
    """A line per requested `{"variant_id"|"product_id"|"title", "quantity", "price"}` (the first active product's
    first variant when none is requested)."""
    if not specs:
        default = next(p for p in shop.products if p["status"] == "ACTIVE")
        specs = [{"variant_id": default["variants"][0]["legacyResourceId"]}]
    lines: list[_Line] = []
    for spec in specs:
        variant: Record | None = None
        product: Record | None = None
        if spec.get("variant_id") is not None:
            variant = shop.variant(spec["variant_id"])
            if variant is None:
                raise KeyError(f"no variant {spec['variant_id']!r}")
            product = shop.product(variant["_productId"])
        elif spec.get("product_id") is not None:
            product = shop.product(spec["product_id"])
            if product is None:
                raise KeyError(f"no product {spec['product_id']!r}")
            variant = product["variants"][0]
        title = spec.get("title") or (product["title"] if product else "Custom item")
        price = Decimal(str(spec.get("price") or (variant["price"] if variant else "10.00")))
        lines.append(_Line(product, variant, title, int(spec.get("quantity", 1)), price))
    return lines


def _order_addresses(number: int, first: str, last: str, phone: str | None, shipping_address: Any,
                     billing_address: Any) -> tuple[Record | None, Record | None]:
    """(shipping, billing): a made-up street unless given (None = no shipping); REST-style dicts are accepted."""
    if shipping_address is _DEFAULT:
        shipping_address = _address(first, last, f"{100 + number % 900} Main Street", _CITIES[number % len(_CITIES)], phone)
    elif isinstance(shipping_address, dict) and "address1" in shipping_address and "countryCodeV2" not in shipping_address:
        shipping_address = _rest_address_to_graphql(shipping_address)
    if billing_address is _DEFAULT:
        billing_address = dict(shipping_address) if shipping_address else _address(first, last, "1 Billing Road", _CITIES[0], phone)
    return shipping_address, billing_address


def _discount(code: str | None, automatic: str | None, originals: list[Decimal]) -> tuple[list[Record], list[Decimal]]:
    """(discount applications, amount allocated to each line): TENOFF takes 10.00, any other code or automatic
    discount 10 %, spread across the lines in proportion to their totals."""
    allocations = [Decimal(0)] * len(originals)
    if not (code or automatic):
        return [], allocations
    gross = sum(originals, Decimal(0))
    if code == "TENOFF":
        value: Record = {"__typename": "MoneyV2", "amount": "10.00", "currencyCode": SHOP_CURRENCY}
        off = min(Decimal("10.00"), gross)
    else:
        value = {"__typename": "PricingPercentageValue", "percentage": 10.0}
        off = (gross * Decimal("0.10")).quantize(CENT)
    application: Record = {"index": 0, "allocationMethod": "ACROSS", "targetType": "LINE_ITEM",
                           "targetSelection": "ALL", "value": value}
    if code:
        application.update({"__typename": "DiscountCodeApplication", "code": code})
    else:
        application.update({"__typename": "AutomaticDiscountApplication", "title": automatic})
    # allocate proportionally; the last line takes the rounding remainder
    running = Decimal(0)
    for i, original in enumerate(originals):
        share = off - running if i == len(originals) - 1 else (off * original / gross).quantize(CENT) if gross else Decimal(0)
        allocations[i] = share
        running += share
    return [application], allocations


def _line_item(shop: SeededShop, line: _Line, allocated: Decimal, applications: list[Record], requires_shipping: bool,
               presentment: str, rate: Decimal) -> Record:
    product, variant, title, quantity, price = line
    lid = shop.next_id("LineItem")
    original = price * quantity
    discounted_total = original - allocated
    image = product["featuredMedia"]["image"] if product and product.get("featuredMedia") else None
    variant_title = variant["title"] if variant and variant["title"] != "Default Title" else None
    return {
        "__typename": "LineItem", "id": gid("LineItem", lid), "title": title,
        "name": f"{title} - {variant_title}" if variant_title else title, "variantTitle": variant_title,
        "quantity": quantity, "currentQuantity": quantity, "refundableQuantity": quantity,
        "unfulfilledQuantity": quantity, "fulfillableQuantity": quantity, "nonFulfillableQuantity": 0,
        "sku": variant["sku"] if variant else None, "vendor": product["vendor"] if product else None,
        "requiresShipping": requires_shipping, "taxable": True, "isGiftCard": False,
        "originalUnitPriceSet": money_bag(price, presentment, rate),
        "discountedUnitPriceSet": money_bag((discounted_total / quantity).quantize(CENT), presentment, rate),
        "discountedUnitPriceAfterAllDiscountsSet": money_bag((discounted_total / quantity).quantize(CENT), presentment, rate),
        "originalTotalSet": money_bag(original, presentment, rate),
        "discountedTotalSet": money_bag(discounted_total, presentment, rate),
        "totalDiscountSet": money_bag(allocated, presentment, rate),
        "image": ({"url": image["url"], "altText": image["altText"], "id": image["id"], "width": 1024, "height": 1024}
                  if image else None),
        "discountAllocations": (
            [{"allocatedAmountSet": money_bag(allocated, presentment, rate), "discountApplication": applications[0]}]
            if applications and allocated else []
        ),
        "customAttributes": [], "taxLines": [],
        "_productId": int(product["legacyResourceId"]) if product else None,
        "_variantId": int(variant["legacyResourceId"]) if variant else None,
    }


def _shipping_lines(legacy: int, shipping: Decimal, shipping_address: Record | None, presentment: str,
                    rate: Decimal) -> list[Record]:
    """The one standard shipping line of a shipped order (none without a shipping address)."""
    if shipping_address is None:
        return []
    return [{
        "id": gid("ShippingLine", legacy), "title": "Standard Shipping", "code": "Standard", "source": "shopify",
        "custom": False, "isRemoved": False, "carrierIdentifier": None,
        "originalPriceSet": money_bag(shipping, presentment, rate),
        "discountedPriceSet": money_bag(shipping, presentment, rate),
        "currentDiscountedPriceSet": money_bag(shipping, presentment, rate), "discountAllocations": [], "taxLines": [],
    }]


def _shipping_price(requested: Decimal | str | None, shipping_address: Record | None, subtotal: Decimal) -> Decimal:
    """What was asked for; else free without a shipping address or from 100.00, 5.00 below."""
    if requested is not None:
        return Decimal(str(requested))
    if shipping_address is None:
        return Decimal("0.00")
    return Decimal("5.00") if subtotal < 100 else Decimal("0.00")


def _price_sets(subtotal: Decimal, shipping: Decimal, discounts: Decimal, presentment: str, rate: Decimal) -> Record:
    """The order's totals as MoneyBags: `subtotal` is after line discounts; tax is `TAX_RATE` of it."""
    tax = (subtotal * TAX_RATE).quantize(CENT)
    total = subtotal + shipping + tax
    return {
        "subtotalPriceSet": money_bag(subtotal, presentment, rate),
        "currentSubtotalPriceSet": money_bag(subtotal, presentment, rate),
        "totalShippingPriceSet": money_bag(shipping, presentment, rate),
        "totalTaxSet": money_bag(tax, presentment, rate), "currentTotalTaxSet": money_bag(tax, presentment, rate),
        "totalPriceSet": money_bag(total, presentment, rate),
        "totalDiscountsSet": money_bag(discounts, presentment, rate),
        "currentTotalDiscountsSet": money_bag(discounts, presentment, rate),
    }


def build_order(
    shop: SeededShop,
    *,
    created_at: datetime,
    email: Any = _DEFAULT,
    phone: str | None = None,
    line_items: list[dict[str, Any]] | None = None,
    financial_status: str = "PAID",
    note_attributes: dict[str, str] | None = None,
    shipping_address: Any = _DEFAULT,
    billing_address: Any = _DEFAULT,
    currency: str | None = None,
    customer: Any = None,
    discount_code: str | None = None,
    automatic_discount: str | None = None,
    tags: list[str] | None = None,
    test: bool = False,
    note: str | None = None,
    gateway: str | None = None,
    card: tuple[str, str] | None = None,
    shipping_price: Decimal | str | None = None,
    number: int | None = None,
    customer_locale: str | None = "en",
) -> Record:
    """A complete order record (not yet added to the shop). Totals are computed from the lines like Shopify does.
    `customer_locale` is the language the shopper bought in, as Shopify records it (odd casing such as `fr-Fr`
    included; None for an order made without a storefront)."""
    number = number or shop.next_order_number()
    legacy = shop.next_id("Order")
    stamp = iso(created_at)
    if email is _DEFAULT:
        email = None if customer is not None else f"shopper{number}@example.com"
    customer_record = _resolve_customer(shop, customer, email, phone, created_at)
    if customer_record is not None:
        email = email if email is not None or customer is None else customer_record.get("email")
        phone = phone or customer_record.get("phone")
    first = customer_record["firstName"] if customer_record else "Guest"
    last = customer_record["lastName"] if customer_record else "Shopper"
    shipping_address, billing_address = _order_addresses(number, first, last, phone, shipping_address, billing_address)
    presentment = (currency or SHOP_CURRENCY).upper()
    rate = PRESENTMENT_RATES.get(presentment, Decimal("1"))

    lines = _line_items_from_spec(shop, line_items)
    applications, allocations = _discount(discount_code, automatic_discount, [ln.price * ln.quantity for ln in lines])
    line_records = [_line_item(shop, line, allocated, applications, shipping_address is not None, presentment, rate)
                    for line, allocated in zip(lines, allocations, strict=True)]

    subtotal = sum((Decimal(li["discountedTotalSet"]["shopMoney"]["amount"]) for li in line_records), Decimal(0))
    shipping = _shipping_price(shipping_price, shipping_address, subtotal)
    brand = card if card is not None else _CARD_BRANDS[number % len(_CARD_BRANDS)]
    gateway = gateway or ("shopify_payments" if number % 9 else "manual")
    token = f"{legacy:x}{number:x}".rjust(32, "0")
    order: Record = {
        "__typename": "Order", "id": gid("Order", legacy), "legacyResourceId": str(legacy), "name": f"#{number}",
        "number": number - 1000 if number > 1000 else number, "email": email, "phone": phone,
        "createdAt": stamp, "updatedAt": stamp, "processedAt": stamp, "closed": False, "closedAt": None,
        "cancelledAt": None, "cancelReason": None, "test": test, "confirmed": True,
        "displayFinancialStatus": "PENDING", "displayFulfillmentStatus": "UNFULFILLED",
        "currencyCode": SHOP_CURRENCY, "presentmentCurrencyCode": presentment,
        "statusPageUrl": f"https://{shop.domain}/{shop.shop_id}/orders/{token}/authenticate?key=sandbox{legacy}",
        "note": note, "tags": tags or [], "sourceName": "web", "customerLocale": customer_locale,
        "taxesIncluded": False, "taxExempt": False,
        "requiresShipping": shipping_address is not None, "confirmationNumber": f"SBX{legacy % 1000000:06d}",
        "customAttributes": [{"key": k, "value": str(v)} for k, v in (note_attributes or {}).items()],
        "shippingAddress": shipping_address, "billingAddress": billing_address,
        **_price_sets(subtotal, shipping, sum(allocations, Decimal(0)), presentment, rate),
        "discountApplications": applications,
        "discountCodes": [discount_code] if discount_code else [], "discountCode": discount_code,
        "lineItems": line_records,
        "shippingLines": _shipping_lines(legacy, shipping, shipping_address, presentment, rate),
        "fulfillments": [], "refunds": [], "transactions": [], "paymentGatewayNames": [],
        "subtotalLineItemsQuantity": sum(li["quantity"] for li in line_records),
        "_customerId": int(customer_record["legacyResourceId"]) if customer_record else None,
        "_rate": rate, "_gateway": gateway, "_card": brand if gateway in ("shopify_payments", "bogus") else None,
        "_payer": f"{first} {last}", "_token": token,
    }
    _set_financial(shop, order, financial_status.upper(), stamp)
    return order


def _rest_address_to_graphql(address: dict[str, Any]) -> Record:
    """Accept REST-style (snake_case) addresses in create_order."""
    first, last = address.get("first_name", ""), address.get("last_name", "")
    return {
        "name": address.get("name") or f"{first} {last}".strip(), "firstName": first, "lastName": last,
        "address1": address.get("address1"), "address2": address.get("address2"), "city": address.get("city"),
        "zip": address.get("zip"), "province": address.get("province"), "provinceCode": address.get("province_code"),
        "country": address.get("country"), "countryCodeV2": address.get("country_code"),
        "countryCode": address.get("country_code"), "phone": address.get("phone"), "company": address.get("company"),
        "formattedArea": None,
    }


def _cancel(order: Record, stamp: str, reason: str = "CUSTOMER") -> None:
    order.update({"cancelledAt": stamp, "cancelReason": reason, "closed": True, "closedAt": stamp, "updatedAt": stamp})


def _close(order: Record, stamp: str) -> None:
    order.update({"closed": True, "closedAt": stamp, "updatedAt": stamp})


def _fulfil(shop: SeededShop, order: Record, display_status: str, stamp: datetime, numbers: list[str] | None = None,
            company: str | None = None, line_items: list[Record] | None = None) -> Record:
    stamp = max(datetime.fromisoformat(order["createdAt"].replace("Z", "+00:00")),
                min(stamp, datetime.now(UTC) - timedelta(minutes=5)))
    if company is None:
        company = _CARRIERS[int(order["legacyResourceId"]) % len(_CARRIERS)][0]
    if numbers is None:
        numbers = [tracking_number(shop, company)]
    fulfillment = build_fulfillment(shop, order, line_items or order["lineItems"], numbers, company, display_status,
                                    stamp, with_trail=True)
    shop.add_fulfillment(order, fulfillment)
    refresh_fulfillment_status(order)
    order["updatedAt"] = max(order["updatedAt"], fulfillment["updatedAt"])
    return fulfillment


# --------------------------------------------------------------------------------------------------- seeding


def populate(shop: SeededShop, *, seed: int, orders: int, products: int) -> None:
    """Fixtures first (documented in localstore.data), then generated records up to the requested totals."""
    rng = shop.rng
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(days=60)
    _seed_products(shop, rng, products, start)
    fixture_customers = _seed_customers(shop, rng, max(12, orders // 3), start)
    total = max(orders, 29 + len(LOCALE_FIXTURES))
    step = (now - timedelta(hours=2) - start) / max(total, 1)

    def when(index: int) -> datetime:
        return (start + step * index + timedelta(seconds=rng.randint(0, 59))).replace(microsecond=0)

    _seed_fixture_orders(shop, fixture_customers, when)
    _seed_locale_fixtures(shop, lambda index: (start + step * index).replace(microsecond=0))
    generated_customers = shop.customers[3:]
    active = [p for p in shop.products if p["status"] == "ACTIVE"]
    for index in range(len(shop.orders), total):
        _seed_generated_order(shop, rng, when(index), rng.choice(generated_customers), active, now)


def _seed_products(shop: SeededShop, rng: Any, count: int, start: datetime) -> None:
    fixtures: list[dict[str, Any]] = [
        dict(title="Classic T-Shirt", vendor="JACK & JONES", product_type="T-Shirt", price=Decimal("19.99"),
             compare_at=Decimal("25.00"), variants=["S", "M", "L"], inventory=[12, 30, 7], tags=["cotton", "summer"]),
        dict(title="Graphic T-Shirt", vendor="Urban Threads", product_type="T-Shirt", price=Decimal("24.00"),
             image=False, tags=["print"]),
        dict(title="IPod Nano - 8gb", vendor="Apple", product_type="Cult Products", price=Decimal("199.00"),
             variants=["Pink", "Red", "Green", "Black"], inventory=[10, 20, 30, 40], tags=["Emotive", "Flash Memory", "MP3", "Music"],
             description="It's the small iPod with one very big idea: Video. Now the world's most popular music player lets you enjoy TV shows, movies, video podcasts, and more."),
        dict(title="Draft Hoodie", vendor="Nordic Wool Co", product_type="Hoodie", price=Decimal("49.00"), status="DRAFT",
             published=False),
        dict(title="Archived Jeans", vendor="Acme Apparel", product_type="Jeans", price=Decimal("59.00"), status="ARCHIVED",
             published=False),
        dict(title="Unlisted Cap", vendor="Sunny Days", product_type="Cap", price=Decimal("15.00"), published=False),
    ]
    for i, spec in enumerate(fixtures):
        shop.add_product(build_product(shop, created_at=start + timedelta(hours=i), **spec))
    for i in range(len(fixtures), max(count, len(fixtures))):
        product_type = PRODUCT_TYPES[i % len(PRODUCT_TYPES)]
        title = f"{rng.choice(_ADJECTIVES)} {rng.choice(_COLOURS)} {product_type}"
        while shop.product_by_title(title) is not None:
            title += f" {rng.choice(_SIZES)}"
        roll = rng.random()
        shop.add_product(build_product(
            shop, title, rng.choice(VENDORS), product_type, created_at=start + timedelta(hours=i),
            price=Decimal(rng.choice(["9.99", "14.50", "19.99", "29.00", "39.95", "59.00", "89.90"])),
            compare_at=Decimal("99.00") if rng.random() < 0.2 else None,
            status="DRAFT" if roll < 0.07 else "ARCHIVED" if roll < 0.12 else "ACTIVE",
            published=rng.random() > 0.08, image=rng.random() > 0.1,
            variants=rng.sample(_SIZES, rng.randint(1, 3)) if product_type != "Cap" else None,
            tags=rng.sample(["cotton", "wool", "summer", "winter", "sale", "new"], rng.randint(0, 2)),
        ))


def _seed_customers(shop: SeededShop, rng: Any, count: int, start: datetime) -> list[Record]:
    bob = shop.add_customer(build_customer(shop, "Bob", "Norman", "bob.norman@mail.example.com", "+16136120707", start))
    jane = shop.add_customer(build_customer(shop, "Jane", "Phoneonly", None, "+447700900123", start))
    chloe = shop.add_customer(build_customer(shop, "Chloé", "Durand", "chloe.durand@example.fr", "+33612345678", start))
    for i in range(count):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        kind = i % 3
        phone = (f"+1555{rng.randint(1000000, 9999999)}" if kind == 0 else
                 f"+447700{rng.randint(900000, 900999)}" if kind == 1 else f"+49151{rng.randint(10000000, 99999999)}")
        shop.add_customer(build_customer(shop, first, last, f"{first}.{last}{i}@example.com".lower(),
                                         phone if rng.random() > 0.15 else None, start + timedelta(minutes=i)))
    return [bob, jane, chloe]


def _seed_fixture_orders(shop: SeededShop, customers: list[Record], when: Any) -> None:
    bob, jane, chloe = customers
    tee, graphic, ipod = shop.products[0], shop.products[1], shop.products[2]
    add = shop.add_order

    def order(index: int, **kw: Any) -> Record:
        return add(build_order(shop, created_at=when(index), **kw))

    # #1001: Shopify's REST example order, reshaped (Bob Norman, TENOFF, card, two tracked fulfillments)
    o1 = order(0, customer=bob, email=bob["email"], phone=bob["phone"], discount_code="TENOFF", gateway="bogus",
               card=("Visa", "4242"), note_attributes={"joinchat_psid": "psid-bob-1001", "colour": "green"},
               line_items=[{"variant_id": ipod["variants"][2]["legacyResourceId"], "quantity": 1},
                           {"variant_id": ipod["variants"][3]["legacyResourceId"], "quantity": 1},
                           {"variant_id": tee["variants"][1]["legacyResourceId"], "quantity": 2}],
               shipping_address=_address("Bob", "Norman", "Chestnut Street 92", ("Louisville", "Kentucky", "KY", "United States", "US", "40202"), "+1 555-625-1199"),
               tags=["vip"])
    created = datetime.fromisoformat(o1["createdAt"])
    _fulfil(shop, o1, "DELIVERED", created + timedelta(hours=3), ["1Z1234512345123456"], "UPS", o1["lineItems"][:1])
    _fulfil(shop, o1, "IN_TRANSIT", created + timedelta(days=2), ["9400111899223197428490"], "USPS", o1["lineItems"][1:])
    order(1, customer=bob, email=bob["email"], financial_status="PENDING", gateway="manual",
          line_items=[{"variant_id": tee["variants"][0]["legacyResourceId"], "quantity": 1}])
    o3 = order(2, customer=bob, email=bob["email"], financial_status="VOIDED",
               line_items=[{"variant_id": graphic["variants"][0]["legacyResourceId"], "quantity": 2}])
    _cancel(o3, iso(when(2) + timedelta(hours=5)))
    o4 = order(3, customer=bob, email=bob["email"], line_items=[{"variant_id": tee["variants"][2]["legacyResourceId"]}])
    _fulfil(shop, o4, "DELIVERED", when(3) + timedelta(hours=2))
    _close(o4, iso(when(3) + timedelta(days=4)))
    order(4, customer=jane, email=None, phone=jane["phone"], shipping_address=None,
          line_items=[{"title": "Gift card e-voucher", "price": "25.00"}])
    o6 = order(5, customer=chloe, email=chloe["email"], currency="EUR", automatic_discount="Autumn sale",
               customer_locale="fr-FR",
               line_items=[{"variant_id": tee["variants"][1]["legacyResourceId"], "quantity": 3}],
               shipping_address=_address("Chloé", "Durand", "12 Rue de la République", _CITIES[4], chloe["phone"]))
    _fulfil(shop, o6, "OUT_FOR_DELIVERY", when(5) + timedelta(hours=4))
    for index, status in ((6, "PARTIALLY_PAID"), (7, "REFUNDED"), (8, "AUTHORIZED"), (9, "PARTIALLY_REFUNDED")):
        order(index, customer=shop.customers[3 + index], financial_status=status,
              line_items=[{"product_id": ipod["legacyResourceId"]}])
    o11 = order(10, customer=shop.customers[4])
    _fulfil(shop, o11, "CONFIRMED", when(10) + timedelta(hours=1), numbers=[], company=None)
    o12 = order(11, customer=shop.customers[5],
                line_items=[{"product_id": tee["legacyResourceId"], "quantity": 2}, {"product_id": graphic["legacyResourceId"]}])
    _fulfil(shop, o12, "IN_TRANSIT", when(11) + timedelta(hours=1),
            numbers=["1234567890", "1234567891", "1234567892"], company="DHL Express")
    for offset, (name, status) in enumerate(DISPLAY_STATUS_FIXTURES.items()):
        fixture = order(12 + offset, customer=shop.customers[3 + (offset % 5)],
                        line_items=[{"product_id": shop.products[offset % 3]["legacyResourceId"]}])
        assert fixture["name"] == name
        _fulfil(shop, fixture, status, when(12 + offset) + timedelta(hours=2))


def _seed_locale_fixtures(shop: SeededShop, at: Callable[[int], datetime]) -> None:
    """LOCALE_FIXTURES, drawing nothing from the rng (the generated orders after them stay what they were)."""
    tee, graphic = shop.products[0], shop.products[1]
    for offset, (name, locale) in enumerate(LOCALE_FIXTURES.items()):
        index = len(shop.orders)
        customer = shop.customers[6 + offset]
        order = shop.add_order(build_order(
            shop, created_at=at(index), customer=customer, email=customer["email"], customer_locale=locale,
            line_items=[{"variant_id": tee["variants"][0]["legacyResourceId"]},
                        {"variant_id": graphic["variants"][0]["legacyResourceId"]}]))
        assert order["name"] == name
        _fulfil(shop, order, "DELIVERED", at(index) + timedelta(hours=2), [f"JD0146000{offset}10"], "DHL Express",
                order["lineItems"][:1])
        _fulfil(shop, order, "IN_TRANSIT", at(index) + timedelta(hours=3), [f"JD0146000{offset}20"], "DHL Express",
                order["lineItems"][1:])


def _seed_generated_order(shop: SeededShop, rng: Any, created: datetime, customer: Record, active: list[Record],
                          now: datetime) -> None:
    roll = rng.random()
    status = ("PAID" if roll < 0.6 else "PENDING" if roll < 0.72 else "AUTHORIZED" if roll < 0.77 else
              "PARTIALLY_PAID" if roll < 0.81 else "PARTIALLY_REFUNDED" if roll < 0.87 else "REFUNDED" if roll < 0.92 else
              "VOIDED" if roll < 0.97 else "EXPIRED")
    lines = [{"variant_id": rng.choice(p["variants"])["legacyResourceId"], "quantity": rng.randint(1, 3)}
             for p in rng.sample(active, rng.randint(1, min(3, len(active))))]
    attributes = {"joinchat_psid": f"psid-{rng.randint(10**9, 10**10)}"} if rng.random() < 0.3 else None
    order = shop.add_order(build_order(
        shop, created_at=created, customer=customer, email=customer["email"], phone=customer["phone"],
        financial_status=status, line_items=lines, note_attributes=attributes,
        currency=rng.choice(["EUR", "CAD", "GBP"]) if rng.random() < 0.15 else None,
        shipping_address=None if rng.random() < 0.05 else _DEFAULT,
        discount_code=rng.choice(["WELCOME10", "TENOFF"]) if rng.random() < 0.2 else None,
        automatic_discount="Spring sale" if rng.random() < 0.05 else None,
        customer_locale=GENERATED_LOCALES[len(shop.orders) % len(GENERATED_LOCALES)],
    ))
    if status == "VOIDED":
        _cancel(order, iso(min(now, created + timedelta(hours=rng.randint(1, 48)))), rng.choice(["CUSTOMER", "INVENTORY", "FRAUD"]))
        return
    if status in ("PAID", "PARTIALLY_REFUNDED") and order["shippingAddress"] is not None and rng.random() < 0.75:
        age = now - created
        display = ("DELIVERED" if age > timedelta(days=10) else
                   rng.choice(["CONFIRMED", "IN_TRANSIT", "IN_TRANSIT", "OUT_FOR_DELIVERY", "LABEL_PRINTED", "DELIVERED"]))
        _fulfil(shop, order, display, created + timedelta(hours=rng.randint(2, 30)))
        if display == "DELIVERED" and rng.random() < 0.5:
            _close(order, iso(min(now, max(created + timedelta(days=5), datetime.fromisoformat(order["updatedAt"].replace("Z", "+00:00"))))))

