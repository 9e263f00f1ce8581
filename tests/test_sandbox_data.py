"""The seeded shop: the documented well-known fixtures exist for every seed, seeding is deterministic, and the
demo wiring (`SandboxServer.for_settings`, `gateway sandbox`) builds the right shops."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.settings import load_settings
from localstore import SandboxServer, SandboxShop
from localstore.seed import DISPLAY_STATUS_FIXTURES, FINANCIAL_STATUSES


@pytest.fixture(scope="module", params=[1, 42, 2026])
def shop(request: pytest.FixtureRequest) -> SandboxShop:
    return SandboxShop.seeded(seed=request.param, orders=120, products=40)


def test_counts(shop: SandboxShop) -> None:
    assert len(shop.orders) == 120 and len(shop.products) == 40
    assert len({o["name"] for o in shop.orders}) == 120
    assert len({o["id"] for o in shop.orders}) == 120


def test_order_1001_from_the_rest_example(shop: SandboxShop) -> None:
    order = shop.order_by_name("#1001")
    assert order is not None and order["legacyResourceId"] == "450789469"
    assert order["email"] == "bob.norman@mail.example.com" and order["displayFinancialStatus"] == "PAID"
    assert order["discountApplications"][0]["code"] == "TENOFF" and order["totalDiscountsSet"]["shopMoney"]["amount"] == "10.00"
    assert order["transactions"][0]["paymentDetails"]["company"] == "Visa"
    assert [f["name"] for f in order["fulfillments"]] == ["#1001.1", "#1001.2"]
    assert all(len(f["trackingInfo"]) == 1 for f in order["fulfillments"])
    assert {"key": "joinchat_psid", "value": "psid-bob-1001"} in order["customAttributes"]
    assert shop.order("#1001") is order and shop.order(order["id"]) is order and shop.order(450789469) is order


def test_money_adds_up(shop: SandboxShop) -> None:
    def amount(order: dict[str, Any], key: str) -> float:
        return float(order[key]["shopMoney"]["amount"])

    for order in shop.orders:
        parts = amount(order, "subtotalPriceSet") + amount(order, "totalShippingPriceSet") + amount(order, "totalTaxSet")
        assert round(parts, 2) == amount(order, "totalPriceSet")
        lines = sum(float(li["discountedTotalSet"]["shopMoney"]["amount"]) for li in order["lineItems"])
        assert round(lines, 2) == amount(order, "subtotalPriceSet")


def test_bob_has_orders_in_several_states(shop: SandboxShop) -> None:
    bob = shop.customer_by_email("bob.norman@mail.example.com")
    assert bob is not None and bob["phone"] == "+16136120707"
    mine = {o["name"]: o for o in shop.orders_of_customer(int(bob["legacyResourceId"]))}
    assert set(mine) == {"#1001", "#1002", "#1003", "#1004"}
    assert mine["#1002"]["displayFinancialStatus"] == "PENDING" and not mine["#1002"]["closed"]
    assert mine["#1003"]["cancelledAt"] and mine["#1004"]["closed"] and not mine["#1004"]["cancelledAt"]


def test_phone_only_customer_and_no_shipping(shop: SandboxShop) -> None:
    jane = next(c for c in shop.customers if c["lastName"] == "Phoneonly")
    assert jane["email"] is None and jane["defaultEmailAddress"] is None and jane["phone"] == "+447700900123"
    order = shop.order_by_name("#1005")
    assert order is not None and order["email"] is None and order["shippingAddress"] is None
    assert order["_customerId"] == int(jane["legacyResourceId"])


def test_presentment_currency_and_states(shop: SandboxShop) -> None:
    euro = shop.order_by_name("#1006")
    assert euro is not None and euro["presentmentCurrencyCode"] == "EUR" and euro["currencyCode"] == "USD"
    assert euro["totalPriceSet"]["presentmentMoney"]["amount"] != euro["totalPriceSet"]["shopMoney"]["amount"]
    assert euro["discountApplications"][0]["__typename"] == "AutomaticDiscountApplication"
    states = {o["displayFinancialStatus"] for o in shop.orders[:12]}
    assert {"PAID", "PENDING", "VOIDED", "PARTIALLY_PAID", "REFUNDED", "AUTHORIZED", "PARTIALLY_REFUNDED"} <= states
    assert set(FINANCIAL_STATUSES) >= {o["displayFinancialStatus"] for o in shop.orders}
    refunded = shop.order_by_name("#1008")
    assert refunded is not None and refunded["refunds"] and refunded["totalRefundedSet"]["shopMoney"]["amount"] == refunded["totalPriceSet"]["shopMoney"]["amount"]


def test_fulfillment_fixtures(shop: SandboxShop) -> None:
    zero = shop.order_by_name("#1011")
    several = shop.order_by_name("#1012")
    assert zero is not None and zero["fulfillments"][0]["trackingInfo"] == []
    assert several is not None and len(several["fulfillments"][0]["trackingInfo"]) == 3
    for name, status in DISPLAY_STATUS_FIXTURES.items():
        order = shop.order_by_name(name)
        assert order is not None and order["fulfillments"][0]["displayStatus"] == status
    seen = {f["displayStatus"] for o in shop.orders for f in o["fulfillments"]}
    from localstore.executor import admin_schema

    assert seen == set(admin_schema().type_map["FulfillmentDisplayStatus"].values)  # type: ignore[attr-defined]


def test_seeded_fulfillments_are_found_by_id(shop: SandboxShop) -> None:
    # what `fulfillment(id:)`, `node(id:)` and the admin surface's fulfillments/{id} look up
    seeded = [(f, o) for o in shop.orders for f in o["fulfillments"]]
    assert seeded and all(shop.fulfillment(f["id"]) == (f, o) for f, o in seeded)
    assert all(shop.node(f["id"]) is f and shop.fulfillment(int(f["legacyResourceId"])) == (f, o) for f, o in seeded)


def test_product_fixtures(shop: SandboxShop) -> None:
    classic = shop.product_by_title("Classic T-Shirt")
    assert classic is not None and classic["vendor"] == "JACK & JONES" and classic["productType"] == "T-Shirt"
    assert classic["compareAtPriceRange"] is not None and classic["featuredMedia"] is not None
    graphic = shop.product_by_title("Graphic T-Shirt")
    assert graphic is not None and graphic["featuredMedia"] is None
    assert shop.product_by_title("Draft Hoodie")["status"] == "DRAFT"  # type: ignore[index]
    assert shop.product_by_title("Archived Jeans")["status"] == "ARCHIVED"  # type: ignore[index]
    unlisted = shop.product_by_title("Unlisted Cap")
    assert unlisted is not None and unlisted["status"] == "ACTIVE" and unlisted["publishedAt"] is None
    assert unlisted["onlineStoreUrl"] is None


def test_nothing_is_dated_in_the_future(shop: SandboxShop) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for order in shop.orders:
        assert order["createdAt"] <= order["updatedAt"] <= now
        for fulfillment in order["fulfillments"]:
            assert all(e["happenedAt"] <= now for e in fulfillment["events"])


def test_seeding_is_deterministic() -> None:
    def fingerprint(shop: SandboxShop) -> list[tuple[str, str | None, str, str, int]]:
        return [(o["name"], o["email"], o["displayFinancialStatus"], o["totalPriceSet"]["shopMoney"]["amount"],
                 len(o["fulfillments"])) for o in shop.orders]

    assert fingerprint(SandboxShop.seeded(seed=5, orders=90)) == fingerprint(SandboxShop.seeded(seed=5, orders=90))
    assert fingerprint(SandboxShop.seeded(seed=5, orders=90)) != fingerprint(SandboxShop.seeded(seed=6, orders=90))


def test_a_large_shop_builds_and_stays_indexed() -> None:
    shop = SandboxShop.seeded(seed=1, orders=2000, products=100)
    assert len(shop.orders) == 2000
    customer = shop.customers[10]
    by_index = shop.orders_of_customer(int(customer["legacyResourceId"]))
    assert by_index == [o for o in shop.orders if o["_customerId"] == int(customer["legacyResourceId"])]
    shop.delete_order("#1500")
    assert shop.order_by_name("#1500") is None and len(shop.orders) == 1999


def test_for_settings_builds_the_demo_shop() -> None:
    settings = load_settings(Path(__file__).resolve().parent.parent / "config.yaml", env={})
    server = SandboxServer.for_settings(settings)
    assert server.base_url == f"http://{settings.sandbox.host}:{settings.sandbox.port}"
    configured = [s for s in settings.shops.values() if s.admin_api_base == server.base_url]
    assert sorted(server.shops) == sorted(s.domain for s in configured)
    for shop_settings in configured:
        shop = server.shop(shop_settings.domain)
        assert len(shop.orders) == settings.sandbox.orders
        assert shop.client_secret == shop_settings.webhook_hmac_secret
        if shop_settings.auth.mode == "token":
            assert shop.access_token == shop_settings.auth.access_token.get_secret_value()


def test_cli_registers_the_sandbox_command() -> None:
    from gateway.cli import build_parser

    args = build_parser().parse_args(["sandbox", "--port", "0", "--orders", "200", "--seed", "7"])
    assert args.command == "sandbox" and args.port == 0 and args.orders == 200 and args.seed == 7
