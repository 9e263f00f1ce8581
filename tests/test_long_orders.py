"""Complete receipts (PROTOCOL §5 "at most 100" elements, §6 product_name): an order with more line items than the
first request's page gets one follow-up request for the rest, and only such orders do. Real gateway, real store."""

from __future__ import annotations

from typing import Any

from localstore import SandboxShop
from mappings.package import MAX_PRODUCT_NAME
from tests.fixtures_query import Platform

DOMAIN = "demo.myshopify.com"


async def long_order(shop: SandboxShop, lines: int, **options: Any) -> str:
    order = await shop.create_order(
        line_items=[{"title": f"Part {i:03d}", "price": "1.00"} for i in range(lines)], **options
    )
    return str(order["name"]).lstrip("#")


async def test_an_order_with_105_lines_lists_100_elements_with_one_follow_up(gateway: Platform) -> None:
    store = gateway.store
    assert store is not None
    number = await long_order(store.shop(DOMAIN), 105)
    store.reset_counters()
    reply = await gateway.query("jc1", "orders", {"order_number": number}, {"page": 1, "limit": 3})
    assert reply.status == 200
    (receipt,) = reply.json["orders"]
    assert len(receipt["elements"]) == 100
    assert [e["title"] for e in receipt["elements"]] == [f"Part {i:03d}" for i in range(100)]
    assert store.graphql_requests(DOMAIN) == 2  # the page, then the rest of this order's line items


async def test_only_long_orders_get_the_follow_up(gateway: Platform) -> None:
    store = gateway.store
    assert store is not None
    shop = store.shop(DOMAIN)
    email = "many.lines@mail.example.com"
    await long_order(shop, 2, email=email)
    await long_order(shop, 7, email=email)
    await long_order(shop, 3, email=email)
    store.reset_counters()
    reply = await gateway.query("jc1", "orders", {"user_account": email}, {"page": 1, "limit": 3})
    assert reply.status == 200
    assert sorted(len(r["elements"]) for r in reply.json["orders"]) == [2, 3, 7]
    assert store.graphql_requests(DOMAIN) == 2  # one page + one follow-up: the 7-line order only
    store.reset_counters()
    short = await gateway.query("jc1", "orders", {"order_number": "1001"})
    assert short.status == 200 and store.graphql_requests(DOMAIN) == 1


async def test_open_api_order_lists_every_line_of_a_long_order(gateway: Platform) -> None:
    store = gateway.store
    assert store is not None
    shop = store.shop(DOMAIN)
    number = await long_order(shop, 40)
    order = shop.order_by_name(f"#{number}")
    assert order is not None
    reply = await gateway.openapi(str(order["legacyResourceId"]))
    assert reply.status == 200 and reply.json["code"] == 0
    assert len(reply.json["data"]["records"]) == 40


async def test_package_product_name_lists_the_fulfilled_items_cut_at_80(gateway: Platform) -> None:
    store = gateway.store
    assert store is not None
    shop = store.shop(DOMAIN)
    number = await long_order(shop, 12)
    await shop.create_fulfillment(number, tracking_numbers=["1Z999AA10123456784"], company="UPS")
    reply = await gateway.query("jc1", "packages", {"order_number": number})
    assert reply.status == 200
    (package,) = reply.json["packages"]
    listed = ", ".join(f"Part {i:03d}" for i in range(12))
    assert package["product_name"] == listed[:MAX_PRODUCT_NAME]
    assert len(package["product_name"]) == MAX_PRODUCT_NAME
    # a small fulfillment lists just its own items
    two = await long_order(shop, 2)
    ordered = shop.order_by_name(f"#{two}")
    assert ordered is not None
    await shop.create_fulfillment(two, line_items=[ordered["lineItems"][1]["id"]])
    reply = await gateway.query("jc1", "packages", {"order_number": two})
    assert [p["product_name"] for p in reply.json["packages"]] == ["Part 001"]


async def shipped_in_parts(shop: SandboxShop, parts: int) -> tuple[str, list[dict[str, Any]]]:
    """An order of `parts` line items shipped one item per fulfillment, each tracked → (its number, fulfillments)."""
    number = await long_order(shop, parts)
    order = shop.order_by_name(f"#{number}")
    assert order is not None
    fulfillments = [
        await shop.create_fulfillment(number, tracking_numbers=[f"1ZPARTS{n:02d}{number}"], line_items=[item["id"]])
        for n, item in enumerate(order["lineItems"], 1)
    ]
    return number, fulfillments


async def test_an_order_shipped_in_7_parts_lists_its_7_packages_with_one_follow_up(gateway: Platform) -> None:
    """`Order.fulfillments(first: 5)` has no cursor: an order listing 5 is read again with a larger page, and the
    packages reply pages through the complete list."""
    store = gateway.store
    assert store is not None
    number, fulfillments = await shipped_in_parts(store.shop(DOMAIN), 7)
    store.reset_counters()
    reply = await gateway.query("jc1", "packages", {"order_number": number}, {"page": 1, "limit": 10})
    assert reply.status == 200
    expected = [(f["name"].lstrip("#"), f["trackingInfo"][0]["number"]) for f in fulfillments]
    assert len(expected) == 7
    assert [(p["package_number"], p["tracking_number"]) for p in reply.json["packages"]] == expected
    assert [p["product_name"] for p in reply.json["packages"]] == [f"Part {i:03d}" for i in range(7)]
    assert store.graphql_requests(DOMAIN) == 2  # the order's first 5 fulfillments, then its whole list
    last = await gateway.query("jc1", "packages", {"order_number": number}, {"page": 3, "limit": 3})
    assert last.status == 200
    assert [(p["package_number"], p["tracking_number"]) for p in last.json["packages"]] == expected[6:]
    second = await gateway.query("jc1", "packages", {"order_number": number}, {"page": 2, "limit": 3})
    assert [(p["package_number"], p["tracking_number"]) for p in second.json["packages"]] == expected[3:6]
    assert store.graphql_requests(DOMAIN) == 2  # every page from the one cached list


async def test_only_orders_with_more_fulfillments_than_listed_get_the_follow_up(gateway: Platform) -> None:
    store = gateway.store
    assert store is not None
    shop = store.shop(DOMAIN)
    four, _ = await shipped_in_parts(shop, 4)
    five, _ = await shipped_in_parts(shop, 5)
    store.reset_counters()
    reply = await gateway.query("jc1", "packages", {"order_number": four}, {"page": 1, "limit": 10})
    assert reply.status == 200 and len(reply.json["packages"]) == 4
    assert store.graphql_requests(DOMAIN) == 1
    store.reset_counters()
    reply = await gateway.query("jc1", "packages", {"order_number": five}, {"page": 1, "limit": 10})
    assert reply.status == 200 and len(reply.json["packages"]) == 5
    assert store.graphql_requests(DOMAIN) == 1  # fulfillmentsCount says 5: all listed, no follow-up
    # the open API's record statuses read the first page only: no follow-up there
    assert (await gateway.openapi("1001")).status == 200  # the shop's facts (time zone), read once an hour
    order = shop.order_by_name(f"#{five}")
    assert order is not None
    store.reset_counters()
    answer = await gateway.openapi(str(order["legacyResourceId"]))
    assert answer.status == 200 and store.graphql_requests(DOMAIN) == 1
