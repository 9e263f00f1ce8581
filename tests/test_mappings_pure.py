"""Mappings on hand-built GraphQL-shaped nodes (the `GatewayOrder` / `GatewayProduct` fragments' shape)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from mappings.money import minor_units, money_number, money_string, total
from mappings.open_api import local_date, order_to_open_api
from mappings.package import order_to_packages
from mappings.phone import looks_like_email, normalize_phone
from mappings.product import product_to_product
from mappings.receipt import order_to_receipt
from mappings.status_labels import StatusLabels

#: The built-in English labels, no overrides: what an order bought in English shows.
label_for = StatusLabels().for_order("en")


def bag(amount: str) -> dict[str, Any]:
    return {"presentmentMoney": {"amount": amount}, "shopMoney": {"amount": amount, "currencyCode": "USD"}}


def allocation(index: int, amount: str) -> dict[str, Any]:
    return {"allocatedAmountSet": bag(amount), "discountApplication": {"index": index}}


def line(n: int, title: str, price: str, qty: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"gid://shopify/LineItem/{n}",
        "title": title,
        "variantTitle": extra.pop("variantTitle", None),
        "quantity": qty,
        "currentQuantity": extra.pop("currentQuantity", qty),
        "image": extra.pop("image", {"url": f"https://cdn.example/{n}.png"}),
        "product": {"legacyResourceId": str(500 + n)},
        "originalUnitPriceSet": bag(price),
        "originalTotalSet": bag(str(Decimal(price) * qty)),
        "discountAllocations": extra.pop("discountAllocations", []),
    }


def fulfillment(
    n: int, name: str, lines: list[dict[str, Any]], tracking: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    return {
        "legacyResourceId": str(n),
        "name": name,
        "status": extra.get("status", "SUCCESS"),
        "displayStatus": extra.get("displayStatus", "IN_TRANSIT"),
        "deliveredAt": extra.get("deliveredAt"),
        "estimatedDeliveryAt": extra.get("estimatedDeliveryAt"),
        "trackingInfo": tracking,
        "fulfillmentLineItems": {"nodes": [{"quantity": 1, "lineItem": li} for li in lines]},
    }


def order(**over: Any) -> dict[str, Any]:
    lines = over.pop(
        "lines",
        [
            line(1, "Classic T-Shirt", "19.99", 2, variantTitle="M", discountAllocations=[allocation(0, "4.00")]),
            line(2, "Socks", "0.10", 3, image=None, discountAllocations=[allocation(1, "0.20")]),
        ],
    )
    node: dict[str, Any] = {
        "id": "gid://shopify/Order/820982911946154508",
        "legacyResourceId": "820982911946154508",
        "name": "#1001",
        "email": "jane@example.com",
        "createdAt": "2024-04-26T23:30:00Z",
        "closed": False,
        "closedAt": None,
        "cancelledAt": None,
        "test": False,
        "displayFinancialStatus": "PAID",
        "presentmentCurrencyCode": "USD",
        "currencyCode": "USD",
        "statusPageUrl": "https://shop.example/orders/abc",
        "paymentGatewayNames": ["shopify_payments"],
        "customer": {"legacyResourceId": "207119551", "displayName": "Jane Customer"},
        "shippingAddress": {
            "name": "Jane Doe",
            "address1": "1 Main St",
            "address2": None,
            "city": "Ottawa",
            "zip": "K2P 1L4",
            "provinceCode": "ON",
            "countryCodeV2": "CA",
        },
        "billingAddress": {"name": "Bill Payer"},
        "subtotalPriceSet": bag("40.08"),
        "totalShippingPriceSet": bag("5.00"),
        "totalTaxSet": bag("0.30"),
        "totalPriceSet": bag("45.38"),
        "discountApplications": {
            "nodes": [
                {"index": 0, "code": "SAVE4"},
                {"index": 1, "title": "Bulk socks"},
                {"index": 2, "title": "Free ship"},
            ]
        },
        "shippingLines": {"nodes": [{"discountAllocations": [allocation(2, "5.00")]}]},
        "transactions": [
            {
                "kind": "SALE",
                "status": "SUCCESS",
                "gateway": "shopify_payments",
                "paymentDetails": {"company": "Visa", "number": "•••• •••• •••• 4242"},
            }
        ],
        "lineItems": {"nodes": lines},
        "fulfillments": [],
    }
    node.update(over)
    return node


# --- money -------------------------------------------------------------------------------------------------------


def test_money_has_no_float_noise() -> None:
    assert money_number("19.99", "USD") == 19.99 and json.dumps(money_number("19.99", "USD")) == "19.99"
    assert json.dumps(money_number(total(["0.1", "0.2"]), "USD")) == "0.3"
    assert money_number("1500.0", "JPY") == 1500 and isinstance(money_number("1500.0", "JPY"), int)
    assert money_string("3", "USD") == "3.00"
    assert money_string("1.2345", "KWD") == "1.235"
    assert money_string(None, "USD") == "0.00" and money_string("garbage", "EUR") == "0.00"
    assert minor_units("jpy") == 0 and minor_units("XXX") == 2


# --- phone / email -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+1 (613) 555-0135", "+16135550135"),
        ("0016135550135", "+16135550135"),
        ("8613800138000", "+8613800138000"),
        ("6135550135", None),  # national number, no default country
        ("+0123456789", None),
        ("+1", None),
        ("a@b.com OR status:any", None),
        ("+1613555013*", None),
        ("+16135550135 OR 1", None),
        ("+١٦١٣٥٥٥٠١٣٥", None),
        ("", None),
    ],
)
def test_normalize_phone(raw: str, expected: str | None) -> None:
    assert normalize_phone(raw) == expected


def test_normalize_phone_in_the_shops_country() -> None:
    assert normalize_phone("(613) 555-0135", "US") == "+16135550135"
    assert normalize_phone("06 12 34 56 78", "FR") == "+33612345678"  # trunk 0 dropped
    assert normalize_phone("612345678", "fr") == "+33612345678"
    assert normalize_phone("07911 123456", "GB") == "+447911123456"
    # international forms are not re-read in the shop's country
    assert normalize_phone("+44 7700 900123", "FR") == "+447700900123"
    assert normalize_phone("0044 7700 900123", "FR") == "+447700900123"
    # not a valid local number: the country-code reading of 11-15 digits still applies, anything else is rejected
    assert normalize_phone("8613800138000", "FR") == "+8613800138000"
    assert normalize_phone("123", "FR") is None
    assert normalize_phone("0612345678 OR 1", "FR") is None
    assert normalize_phone("06*", "FR") is None
    # without a country the same local number is ambiguous: rejected rather than guessed
    assert normalize_phone("06 12 34 56 78") is None


def test_looks_like_email() -> None:
    assert looks_like_email("jane@example.com")
    for bad in ("a@b.com OR status:any", 'a"@b.com', "a@b", "(a)@b.com", "a*@b.com", "a\\@b.com"):
        assert not looks_like_email(bad)


# --- receipt ------------------------------------------------------------------------------------------------------


def test_receipt_fields() -> None:
    receipt = order_to_receipt(order())
    assert receipt.recipient_name == "Jane Doe"
    assert receipt.order_number == "1001"
    assert receipt.currency == "USD"
    assert receipt.payment_method == "Visa 4242"
    assert receipt.order_url == "https://shop.example/orders/abc"
    assert receipt.timestamp == "1714174200"
    assert receipt.status == "open"
    assert receipt.address is not None and receipt.address.model_dump() == {
        "street_1": "1 Main St",
        "street_2": "",
        "city": "Ottawa",
        "postal_code": "K2P 1L4",
        "state": "ON",
        "country": "CA",
    }
    assert receipt.summary.model_dump() == {
        "subtotal": 40.08,
        "shipping_cost": 5.0,
        "total_tax": 0.3,
        "total_cost": 45.38,
    }
    assert [(a.name, a.amount) for a in receipt.adjustments] == [
        ("SAVE4", 4.0),
        ("Bulk socks", 0.2),
        ("Free ship", 5.0),
    ]
    assert [(e.title, e.subtitle, e.quantity, e.price, e.image_url) for e in receipt.elements] == [
        ("Classic T-Shirt", "M", 2, 19.99, "https://cdn.example/1.png"),
        ("Socks", "", 3, 0.1, ""),
    ]


def test_receipt_adjustments_sum_allocations_of_one_application() -> None:
    lines = [
        line(1, "A", "0.10", discountAllocations=[allocation(0, "0.1")]),
        line(2, "B", "0.20", discountAllocations=[allocation(0, "0.2")]),
    ]
    receipt = order_to_receipt(
        order(lines=lines, discountApplications={"nodes": [{"index": 0, "code": "X"}]}, shippingLines={"nodes": []})
    )
    assert [(a.name, json.dumps(a.amount)) for a in receipt.adjustments] == [("X", "0.3")]


@pytest.mark.parametrize(
    ("over", "status"),
    [
        ({"cancelledAt": "2024-05-01T00:00:00Z", "closed": True}, "cancelled"),
        ({"closed": True}, "closed"),
        ({"displayFinancialStatus": "PENDING"}, "unpaid"),
        ({"displayFinancialStatus": "AUTHORIZED"}, "unpaid"),
        ({"displayFinancialStatus": "PARTIALLY_PAID"}, "unpaid"),
        ({"displayFinancialStatus": "PARTIALLY_REFUNDED"}, "open"),
    ],
)
def test_receipt_status(over: dict[str, Any], status: str) -> None:
    assert order_to_receipt(order(**over)).status == status


def test_receipt_fallbacks() -> None:
    no_ship = order(
        shippingAddress=None, transactions=[], discountApplications={"nodes": []}, shippingLines={"nodes": []}
    )
    receipt = order_to_receipt(no_ship)
    assert receipt.address is None and receipt.recipient_name == "Bill Payer"
    assert receipt.payment_method == "shopify_payments" and receipt.adjustments == []
    bare = order_to_receipt(order(shippingAddress=None, billingAddress=None, paymentGatewayNames=[], transactions=[]))
    assert bare.recipient_name == "Jane Customer" and bare.payment_method == ""
    nobody = order_to_receipt(order(shippingAddress=None, billingAddress=None, customer=None))
    assert nobody.recipient_name == ""
    manual = order_to_receipt(
        order(
            transactions=[
                {"kind": "SALE", "status": "SUCCESS", "gateway": "Cash on Delivery (COD)", "paymentDetails": None}
            ]
        )
    )
    assert manual.payment_method == "Cash on Delivery (COD)"
    failed_card = order_to_receipt(
        order(
            transactions=[
                {"status": "FAILURE", "gateway": "x", "paymentDetails": {"company": "Visa", "number": "4111"}},
                {
                    "status": "SUCCESS",
                    "gateway": "bogus",
                    "paymentDetails": {"company": "Mastercard", "number": "•••• 5454"},
                },
            ]
        )
    )
    assert failed_card.payment_method == "Mastercard 5454"


def test_receipt_multi_currency_and_masking() -> None:
    receipt = order_to_receipt(
        order(presentmentCurrencyCode="JPY", totalPriceSet={"presentmentMoney": {"amount": "4538.0"}}),
        mask_personal=True,
    )
    assert receipt.currency == "JPY" and receipt.summary.total_cost == 4538
    assert receipt.elements[0].currency == "JPY" and receipt.elements[0].price == 20
    assert receipt.recipient_name == "J*** D***"
    assert receipt.address is not None and receipt.address.street_1 == "***" and receipt.address.street_2 == ""
    assert receipt.address.city == "Ottawa"


def test_receipt_elements_capped_at_100() -> None:
    lines = [line(i, f"Item {i}", "1.00") for i in range(130)]
    assert len(order_to_receipt(order(lines=lines)).elements) == 100


# --- packages -----------------------------------------------------------------------------------------------------


def test_packages_one_per_tracking_number() -> None:
    lines = order()["lineItems"]["nodes"]
    node = order(
        fulfillments=[
            fulfillment(
                1,
                "#1001.1",
                lines,
                [
                    {"company": "UPS", "number": "1Z001", "url": "https://ups.example/1Z001"},
                    {"company": "UPS", "number": "1Z002", "url": None},
                ],
                displayStatus="DELIVERED",
                deliveredAt="2024-05-02T10:00:00Z",
                estimatedDeliveryAt="2024-05-03T10:00:00Z",
            ),
            fulfillment(
                2, "#1001.2", lines[1:], [], displayStatus="SOMETHING_NEW", estimatedDeliveryAt="2024-05-09T00:00:00Z"
            ),
            fulfillment(3, "#1001.3", lines, [{"company": "DHL", "number": "X"}], status="CANCELLED"),
        ]
    )
    packages = order_to_packages(node, label_for)
    assert [(p.package_number, p.tracking_number, p.tracking_url, p.carrier) for p in packages] == [
        ("1001.1", "1Z001", "https://ups.example/1Z001", "UPS"),
        ("1001.1", "1Z002", "", "UPS"),
        ("1001.2", "", "", ""),
    ]
    first, _, untracked = packages
    assert first.order_number == "1001" and first.product_name == "Classic T-Shirt, Socks"
    assert first.package_status == "Delivered" and first.exp_delivery == "2024-05-02"
    assert first.image_url == "https://cdn.example/1.png"
    assert untracked.package_status == "Something new" and untracked.exp_delivery == "2024-05-09"
    assert untracked.image_url == ""


def test_package_product_name_cut_at_80() -> None:
    lines = [line(i, f"A rather long product title number {i}", "1.00") for i in range(5)]
    node = order(lines=lines, fulfillments=[fulfillment(1, "#1001.1", lines, [])])
    (package,) = order_to_packages(node, label_for)
    assert len(package.product_name) == 80


def test_no_fulfillment_no_packages() -> None:
    assert order_to_packages(order(), label_for) == []


# --- products -----------------------------------------------------------------------------------------------------


def product_node(**over: Any) -> dict[str, Any]:
    node: dict[str, Any] = {
        "legacyResourceId": "632910392",
        "title": "Classic T-Shirt",
        "handle": "classic-t-shirt",
        "status": "ACTIVE",
        "vendor": "JACK & JONES",
        "productType": "T-Shirt",
        "tags": ["cotton", "summer"],
        "description": "Soft   cotton.\n\nMachine <b>washable</b>." + " more" * 200,
        "createdAt": "2024-01-02T03:04:05-05:00",
        "updatedAt": "2024-02-02T00:00:00Z",
        "onlineStoreUrl": "https://shop.example/products/classic-t-shirt",
        "totalInventory": 42,
        "featuredMedia": {"preview": {"image": {"url": "https://cdn.example/tee.png"}}},
        "priceRangeV2": {"minVariantPrice": {"amount": "19.99", "currencyCode": "USD"}},
        "variants": {
            "nodes": [
                {"legacyResourceId": "1", "price": "24.99", "compareAtPrice": None, "availableForSale": False},
                {"legacyResourceId": "2", "price": "19.99", "compareAtPrice": "24.99", "availableForSale": True},
            ]
        },
    }
    node.update(over)
    return node


def test_product_fields() -> None:
    product = product_to_product(product_node(), store_domain="shop.example", currency="EUR")
    assert product.product_number == "632910392"
    assert product.image_url == "https://cdn.example/tee.png"
    assert product.tags == "cotton, summer"
    assert product.description.startswith("Soft cotton. Machine washable .") and len(product.description) <= 500
    assert product.created_at == "2024-01-02T08:04:05Z"
    assert product.buy_link == "https://shop.example/cart/2:1"
    assert product.detail_link == "https://shop.example/products/classic-t-shirt"
    assert (product.stock, product.price, product.compare_at_price, product.discount) == (42, "19.99", "24.99", "20%")
    assert product.currency_code == "USD" and product.vendor == "JACK & JONES"


def test_product_without_image_saving_or_availability() -> None:
    node = product_node(
        featuredMedia=None,
        onlineStoreUrl=None,
        variants={
            "nodes": [{"legacyResourceId": "7", "price": "10.00", "compareAtPrice": "9.00", "availableForSale": False}]
        },
        priceRangeV2={"minVariantPrice": {"amount": "10.0", "currencyCode": "USD"}},
    )
    product = product_to_product(node, store_domain="shop.example", currency="USD")
    assert (
        product.image_url == "" and product.buy_link == "" and product.compare_at_price == "" and product.discount == ""
    )
    assert product.price == "10.00" and product.detail_link == "https://shop.example/products/classic-t-shirt"


# --- open API -----------------------------------------------------------------------------------------------------


def test_open_api_order() -> None:
    lines = [
        line(1, "Shipped", "1.00"),
        line(2, "Waiting", "1.00"),
        line(3, "Refunded", "1.00", currentQuantity=0),
        line(4, "Delivered", "2.50", 2),
    ]
    node = order(
        lines=lines,
        totalPriceSet=bag("5.5"),
        fulfillments=[
            fulfillment(11, "#1001.1", [lines[0]], [], displayStatus="IN_TRANSIT"),
            fulfillment(12, "#1001.2", [lines[3]], [], displayStatus="DELIVERED"),
        ],
    )
    result = order_to_open_api(node, shop_timezone="Asia/Tokyo", delivered_pushes={"11": 2})
    assert result.order_id == 820982911946154508 and result.trade_id == "1001"
    assert result.date == "2024-04-27"  # 23:30 UTC is the next day in Tokyo
    assert (result.amount, result.status, result.notify_send_count) == ("5.50", "SUCCESS", 2)
    assert [(r.id, r.product_id, r.quantity, r.price, r.status, r.notify_sent) for r in result.records] == [
        (1, 501, 1, "1.00", "IS_DELIVERING", "1"),
        (2, 502, 1, "1.00", "WAITING_PICKED_UP", "0"),
        (3, 503, 1, "1.00", "IS_REFUND", "0"),
        (4, 504, 2, "5.00", "IS_SUCCESS", "0"),
    ]


@pytest.mark.parametrize(
    ("over", "status"),
    [
        ({"test": True}, "TESTPAY"),
        ({"cancelledAt": "2024-05-01T00:00:00Z"}, "CLOSED"),
        ({"displayFinancialStatus": "REFUNDED"}, "REFUND"),
        ({"displayFinancialStatus": "VOIDED"}, "REVOKED"),
        ({"displayFinancialStatus": "EXPIRED"}, "PAYERROR"),
        ({"displayFinancialStatus": "PENDING"}, "NOTPAY"),
        ({"displayFinancialStatus": "AUTHORIZED"}, "NOTPAY"),
        ({"displayFinancialStatus": "PARTIALLY_PAID"}, "NOTPAY"),
        ({"displayFinancialStatus": "PARTIALLY_REFUNDED"}, "SUCCESS"),
    ],
)
def test_open_api_status(over: dict[str, Any], status: str) -> None:
    result = order_to_open_api(order(**over), shop_timezone="UTC", delivered_pushes={})
    assert result.status == status
    if status == "NOTPAY":
        assert all(r.status is None for r in result.records)


def test_local_date_unknown_zone_is_utc() -> None:
    assert local_date("2024-04-26T23:30:00Z", "Not/AZone") == "2024-04-26"


# --- rules both flows read the same way (mappings.nodes, mappings.package, mappings.receipt) ------------------------


def test_a_shopify_id_is_a_positive_integer_that_fits_the_store() -> None:
    from mappings.nodes import MAX_ID, numeric_id

    assert [numeric_id(v) for v in (5, "5", "gid://shopify/Order/5", "gid://shopify/Order/5?x=1")] == [5] * 4
    assert numeric_id(MAX_ID) == MAX_ID
    for not_an_id in (None, True, 5.0, 0, -5, MAX_ID + 1, "gid://shopify/Order/²", "١٢", "", "x", [5], {"id": 5}):
        assert numeric_id(not_an_id) is None, not_an_id


def test_a_name_loses_one_leading_hash() -> None:
    from mappings.nodes import strip_hash

    assert [strip_hash(n) for n in ("#1001", " #1001.1 ", "1001", "##1001", None, 1001)] == [
        "1001", "1001.1", "1001", "#1001", "", ""
    ]  # fmt: skip


def test_webhook_times_read_as_the_query_side_reads_them() -> None:
    """The push facts' Unix seconds and the receipt's timestamp come from one reading of a Shopify DateTime (an offset,
    'Z', or none: UTC)."""
    from mappings.push import order_change
    from mappings.receipt import unix_timestamp

    for value in ("2024-04-26T10:00:00-04:00", "2024-04-26T14:00:00Z", "2024-04-26T14:00:00"):
        facts = order_change({"id": 1, "created_at": value, "updated_at": value})
        assert facts is not None and facts.created_at == facts.updated_at == unix_timestamp(value) == 1714140000
    for unreadable in ("", "yesterday", "2024-13-01T00:00:00Z", 1714140000, None):
        facts = order_change({"id": 1, "created_at": unreadable})
        assert facts is not None and facts.created_at == 0.0 and unix_timestamp(unreadable) == 0  # type: ignore[arg-type]


def test_unpaid_is_one_rule_for_the_query_status_the_push_facts_and_the_recheck() -> None:
    from gateway.push.unpaid import still_unpaid
    from mappings.push import order_change
    from mappings.receipt import UNPAID_FINANCIAL_STATUSES, order_status

    for status in (*UNPAID_FINANCIAL_STATUSES, "PAID", "REFUNDED", "VOIDED"):
        unpaid = status in UNPAID_FINANCIAL_STATUSES
        assert (order_status({"displayFinancialStatus": status}) == "unpaid") is unpaid
        assert still_unpaid({"displayFinancialStatus": status}) is unpaid
        facts = order_change({"id": 1, "financial_status": status.lower()})
        assert facts is not None and facts.unpaid is unpaid
    assert not still_unpaid({"displayFinancialStatus": "PENDING", "cancelledAt": "2024-04-26T14:00:00Z"})


def test_cancelled_fulfillments_are_one_rule_for_packages_and_pushes() -> None:
    """Decided (README): a voided label is a cancelled fulfillment, for the `packages` reply and for package/update."""
    from mappings.package import is_live_fulfillment
    from mappings.push import status_from_display, tracking_status

    for status, display in (("CANCELLED", "FULFILLED"), ("SUCCESS", "CANCELED"), ("SUCCESS", "LABEL_VOIDED"),
                            ("ERROR", None), ("FAILURE", None)):  # fmt: skip
        assert not is_live_fulfillment({"status": status, "displayStatus": display})
        assert status_from_display(display, status) is None
    for word in ("cancelled", "error", "failure"):
        assert tracking_status(None, word) is None
    for status, display in (("SUCCESS", "FULFILLED"), ("SUCCESS", "FAILURE"), ("OPEN", "IN_TRANSIT")):
        assert is_live_fulfillment({"status": status, "displayStatus": display})
        assert status_from_display(display, status) is not None
