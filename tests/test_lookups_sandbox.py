"""Lookups end to end against the local Shopify store: a real ShopifyAdminClient over HTTP, a real LookupCache.

Well-known fixtures: localstore/data.py (Bob Norman's orders #1001–#1004, Jane's phone-only #1005, Chloé's EUR
#1006, fulfillment fixtures #1011/#1012/#1013…, products "Classic T-Shirt", "Draft Hoodie", "Unlisted Cap"...).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from gateway.lookups.context import ShopContext
from gateway.lookups.dispatch import run_lookup
from gateway.lookups.orders import FULFILLMENT_COST, QUERY_COST_BUDGET
from gateway.lookups.types import (
    InvalidRequest,
    NotFound,
    OpenApiOrderQuery,
    OrderFilter,
    OrdersByAccount,
    OrdersByNumber,
    PackagesQuery,
    Page,
    ProductsQuery,
    PropertyQuery,
    Sort,
    SortField,
    StoreUnavailable,
)
from localstore import SandboxServer, SandboxShop
from localstore.seed import build_customer, build_product
from mappings.nodes import strip_hash
from tests.fixtures_query import lookup_context

DOMAIN = "lookups.myshopify.com"
TOKEN = "shpat_lookups_test"
BOB_EMAIL = "bob.norman@mail.example.com"
BOB_PHONE = "+16136120707"
JANE_PHONE = "+447700900123"
BOB_ORDERS = {"1001", "1002", "1003", "1004"}


class PushState:
    """A stand-in for the push pipeline's store (the PushStateReader protocol): a tracking index and a delivery log."""

    def __init__(self, tracking: dict[str, str], delivered: dict[int, dict[str, int]]) -> None:
        self.tracking = tracking
        self.delivered = delivered

    async def order_name_for_tracking(self, shop_key: str, tracking_number: str) -> str | None:
        return self.tracking.get(tracking_number)

    async def delivered_package_pushes(self, shop_key: str, order_id: int) -> dict[str, int]:
        return self.delivered.get(order_id, {})


@pytest.fixture
async def store() -> AsyncIterator[tuple[SandboxServer, SandboxShop]]:
    shop = SandboxShop.seeded(domain=DOMAIN, seed=7, orders=60, products=30, access_token=TOKEN)
    server = SandboxServer([shop], host="127.0.0.1", port=0)
    await server.start()
    try:
        yield server, shop
    finally:
        await server.stop()


def make_context(base_url: str, session: aiohttp.ClientSession, *, push_state: Any = None, **shop: Any) -> ShopContext:
    return lookup_context(base_url, session, domain=DOMAIN, token=TOKEN, push_state=push_state, **shop)


@pytest.fixture
async def ctx(store: tuple[SandboxServer, SandboxShop]) -> AsyncIterator[ShopContext]:
    server, _ = store
    async with aiohttp.ClientSession() as session:
        context = make_context(server.base_url, session)
        await context.shop_info()  # warm: request counts below are per lookup
        server.reset_counters()
        yield context


@pytest.fixture
def server(store: tuple[SandboxServer, SandboxShop]) -> SandboxServer:
    return store[0]


def requests(server: SandboxServer) -> int:
    return server.graphql_requests(DOMAIN)


def requested_cost(server: SandboxServer) -> float:
    """What the store asked for the last query it ran."""
    return float(server.last_cost(DOMAIN).get("requestedQueryCost") or 0)


# --- orders by number ----------------------------------------------------------------------------------------------


async def test_order_by_number_is_one_request_and_maps_every_field(ctx: ShopContext, server: SandboxServer) -> None:
    result = await run_lookup(ctx, OrdersByNumber("1001"))
    assert requests(server) == 1 and requested_cost(server) <= 1000
    (receipt,) = result.orders
    assert (result.total, result.has_next_page) == (1, False)
    assert receipt.order_number == "1001" and receipt.currency == "USD"
    assert receipt.payment_method == "Visa 4242"
    assert receipt.status == "open"
    assert [a.name for a in receipt.adjustments] == ["TENOFF"] and receipt.adjustments[0].amount == 10.0
    assert receipt.address is not None and receipt.address.country
    assert receipt.elements and all(e.currency == "USD" for e in receipt.elements)
    assert receipt.timestamp.isdigit()
    again = await run_lookup(ctx, OrdersByNumber("1001"))
    assert again is result and requests(server) == 1  # cache hit


@pytest.mark.parametrize("number", ["#1001", "1001 ", "#1001"])
async def test_order_number_variants(ctx: ShopContext, number: str) -> None:
    result = await run_lookup(ctx, OrdersByNumber(strip_hash(number.strip())))
    assert [r.order_number for r in result.orders] == ["1001"]


async def test_unknown_order_number_is_order_not_found(ctx: ShopContext) -> None:
    for number in ("999999", "100", "1001 OR status:any", '1001" OR name:"1002', "*"):
        with pytest.raises(NotFound) as err:
            await run_lookup(ctx, OrdersByNumber(number))
        assert err.value.kind == "order"


async def test_receipts_from_the_store(ctx: ShopContext) -> None:
    no_address = (await run_lookup(ctx, OrdersByNumber("1005"))).orders[0]
    assert no_address.address is None
    eur = (await run_lookup(ctx, OrdersByNumber("1006"))).orders[0]
    assert eur.currency == "EUR"
    assert [a.name for a in eur.adjustments] == ["Autumn sale"] and eur.adjustments[0].amount > 0
    cancelled = (await run_lookup(ctx, OrdersByNumber("1003"))).orders[0]
    closed = (await run_lookup(ctx, OrdersByNumber("1004"))).orders[0]
    pending = (await run_lookup(ctx, OrdersByNumber("1002"))).orders[0]
    partially_paid = (await run_lookup(ctx, OrdersByNumber("1007"))).orders[0]
    assert (cancelled.status, closed.status, pending.status, partially_paid.status) == (
        "cancelled",
        "closed",
        "unpaid",
        "unpaid",
    )
    for receipt in (no_address, eur, cancelled, closed, pending):
        summary = receipt.summary.model_dump()
        assert all(round(v, 2) == v for v in summary.values())  # no float noise


# --- orders by account ---------------------------------------------------------------------------------------------


async def test_orders_by_email(ctx: ShopContext, server: SandboxServer) -> None:
    result = await run_lookup(ctx, OrdersByAccount(email=BOB_EMAIL, page=Page(1, 10)))
    assert requests(server) == 1 and requested_cost(server) <= 1000
    numbers = {r.order_number for r in result.orders}
    assert BOB_ORDERS <= numbers and result.total == len(numbers) and not result.has_next_page
    upper = await run_lookup(ctx, OrdersByAccount(email=BOB_EMAIL.upper().lower(), page=Page(1, 10)))
    assert {r.order_number for r in upper.orders} == numbers


@pytest.mark.parametrize(
    ("order_filter", "expected", "absent"),
    [
        (OrderFilter.OPEN, {"1001", "1002"}, {"1003", "1004"}),
        (OrderFilter.UNPAID, {"1002"}, {"1001", "1003", "1004"}),
        (OrderFilter.CLOSED, {"1003", "1004"}, {"1001", "1002"}),
    ],
)
async def test_email_filters(ctx: ShopContext, order_filter: OrderFilter, expected: set[str], absent: set[str]) -> None:
    result = await run_lookup(ctx, OrdersByAccount(email=BOB_EMAIL, filter=order_filter, page=Page(1, 10)))
    numbers = {r.order_number for r in result.orders}
    assert expected <= numbers and not (absent & numbers)


async def test_email_sorting(ctx: ShopContext) -> None:
    newest = await run_lookup(ctx, OrdersByAccount(email=BOB_EMAIL, page=Page(1, 10)))
    oldest = await run_lookup(
        ctx, OrdersByAccount(email=BOB_EMAIL, sort=Sort(SortField.CREATED_AT, False), page=Page(1, 10))
    )
    stamps = [int(r.timestamp) for r in newest.orders]
    assert stamps == sorted(stamps, reverse=True)
    assert [r.order_number for r in oldest.orders] == [r.order_number for r in reversed(newest.orders)] or [
        int(r.timestamp) for r in oldest.orders
    ] == sorted(stamps)
    await run_lookup(ctx, OrdersByAccount(email=BOB_EMAIL, sort=Sort(SortField.UPDATED_AT, True)))
    await run_lookup(ctx, OrdersByAccount(email=BOB_EMAIL, sort=Sort(SortField.PROCESSED_AT, True)))


async def test_pagination_uses_cached_cursors(ctx: ShopContext, server: SandboxServer) -> None:
    everything = await run_lookup(ctx, OrdersByAccount(email=BOB_EMAIL, page=Page(1, 10)))
    total = everything.total
    assert total >= 4
    server.reset_counters()
    seen: list[str] = []
    for number in range(1, total + 1):
        page = await run_lookup(ctx, OrdersByAccount(email=BOB_EMAIL, page=Page(number, 1)))
        assert page.total == total and len(page.orders) == 1
        assert page.has_next_page == (number < total)
        seen.append(page.orders[0].order_number)
        assert requests(server) == number  # one request per page: page N starts after page N-1's cached cursor
    assert seen == [r.order_number for r in everything.orders]
    beyond = await run_lookup(ctx, OrdersByAccount(email=BOB_EMAIL, page=Page(total + 1, 1)))
    assert beyond.orders == [] and not beyond.has_next_page


async def test_cold_deep_page(store: tuple[SandboxServer, SandboxShop]) -> None:
    server, _ = store
    async with aiohttp.ClientSession() as session:
        ctx = make_context(server.base_url, session)
        everything = await run_lookup(ctx, OrdersByAccount(email=BOB_EMAIL, page=Page(1, 10)))
        cold = make_context(server.base_url, session)
        server.reset_counters()
        third = await run_lookup(cold, OrdersByAccount(email=BOB_EMAIL, page=Page(3, 1)))
        assert requests(server) == 2  # the cursor walk, then the page
        assert third.orders[0].order_number == everything.orders[2].order_number
        far = await run_lookup(cold, OrdersByAccount(email=BOB_EMAIL, page=Page(50, 2)))
        assert far.orders == [] and not far.has_next_page and far.total == everything.total


async def test_unknown_email_is_user_not_found(ctx: ShopContext) -> None:
    with pytest.raises(NotFound) as err:
        await run_lookup(ctx, OrdersByAccount(email="nobody@example.com"))
    assert err.value.kind == "user"


INJECTIONS = [
    f"{BOB_EMAIL} OR status:any",
    "a@b.com OR status:any",
    f'{BOB_EMAIL}" OR email:"{BOB_EMAIL}',
    f"{BOB_EMAIL}\\",
    f'\\" OR status:any OR \\"{BOB_EMAIL}',
    f"a@b.com) OR (email:{BOB_EMAIL}",
    "*",
    "*@*",
    "bob.norman@*",
    "-email:nobody@example.com",
    "NOT email:x@y.z",
    "status:any",
]


@pytest.mark.parametrize("account", INJECTIONS)
async def test_injected_account_never_returns_another_customers_order(ctx: ShopContext, account: str) -> None:
    try:
        result = await run_lookup(ctx, OrdersByAccount(email=account.lower(), page=Page(1, 10)))
    except (NotFound, InvalidRequest):
        return
    assert result.orders == [] or all(r.order_number == account for r in result.orders)


async def test_orders_by_phone_two_requests_then_cached(ctx: ShopContext, server: SandboxServer) -> None:
    result = await run_lookup(ctx, OrdersByAccount(phone=BOB_PHONE, page=Page(1, 10)))
    assert requests(server) == 2
    assert BOB_ORDERS <= {r.order_number for r in result.orders}
    await run_lookup(ctx, OrdersByAccount(phone=BOB_PHONE, page=Page(1, 10)))
    assert requests(server) == 2
    closed = await run_lookup(ctx, OrdersByAccount(phone=BOB_PHONE, filter=OrderFilter.CLOSED, page=Page(1, 10)))
    assert requests(server) == 3  # the customer is cached: one request
    assert {r.order_number for r in closed.orders} >= {"1003", "1004"}
    jane = await run_lookup(ctx, OrdersByAccount(phone=JANE_PHONE))
    assert "1005" in {r.order_number for r in jane.orders}


async def test_phone_not_found_and_invalid(ctx: ShopContext) -> None:
    with pytest.raises(NotFound) as err:
        await run_lookup(ctx, OrdersByAccount(phone="+15550000000"))
    assert err.value.kind == "user"
    for garbage in ("+1613612070* OR status:any", "phone:+16136120707", "12"):
        with pytest.raises(InvalidRequest):
            await run_lookup(ctx, OrdersByAccount(phone=garbage))


async def test_masked_account_lookups(store: tuple[SandboxServer, SandboxShop]) -> None:
    server, _ = store
    async with aiohttp.ClientSession() as session:
        ctx = make_context(server.base_url, session, privacy={"mask_account_lookups": True})
        masked = await run_lookup(ctx, OrdersByAccount(email=BOB_EMAIL, page=Page(1, 10)))
        one = next(r for r in masked.orders if r.order_number == "1001")
        assert one.recipient_name.endswith("***")
        assert one.address is not None and one.address.street_1 == "***"
        by_number = await run_lookup(ctx, OrdersByNumber("1001"))
        assert not by_number.orders[0].recipient_name.endswith("***")


# --- packages ------------------------------------------------------------------------------------------------------


async def test_packages_by_order_number(ctx: ShopContext, server: SandboxServer) -> None:
    result = await run_lookup(ctx, PackagesQuery(order_number="1001"))
    assert requests(server) == 1 and requested_cost(server) <= 1000
    assert [(p.package_number, p.carrier, p.tracking_number, p.package_status) for p in result.packages] == [
        ("1001.1", "UPS", "1Z1234512345123456", "Delivered"),
        ("1001.2", "USPS", "9400111899223197428490", "In transit"),
    ]
    delivered = result.packages[0]
    assert delivered.order_number == "1001" and delivered.exp_delivery and delivered.product_name
    three = await run_lookup(ctx, PackagesQuery(order_number="1012", page=Page(1, 2)))
    assert (len(three.packages), three.total, three.has_next_page) == (2, 3, True)
    rest = await run_lookup(ctx, PackagesQuery(order_number="1012", page=Page(2, 2)))
    assert len(rest.packages) == 1 and requests(server) == 2  # both pages from one fetch
    (untracked,) = (await run_lookup(ctx, PackagesQuery(order_number="1011"))).packages
    assert (untracked.tracking_number, untracked.carrier, untracked.tracking_url) == ("", "", "")
    assert (await run_lookup(ctx, PackagesQuery(order_number="1002"))).packages == []  # not fulfilled yet
    assert (await run_lookup(ctx, PackagesQuery(order_number="1014"))).packages == []  # its fulfillment was cancelled
    with pytest.raises(NotFound):
        await run_lookup(ctx, PackagesQuery(order_number="999999"))


async def test_packages_of_an_order_shipped_in_7_parts(
    store: tuple[SandboxServer, SandboxShop], ctx: ShopContext, server: SandboxServer
) -> None:
    """The first request lists 5 fulfillments; the follow-up reads the whole list within Shopify's 1000 points."""
    _, shop = store
    order = await shop.create_order(line_items=[{"title": f"Part {i}", "price": "1.00"} for i in range(7)])
    fulfillments = [
        await shop.create_fulfillment(order["id"], tracking_numbers=[f"1ZSEVEN{n}"], line_items=[item["id"]])
        for n, item in enumerate(order["lineItems"])
    ]
    number = strip_hash(order["name"])
    server.reset_counters()
    result = await run_lookup(ctx, PackagesQuery(order_number=number, page=Page(1, 10)))
    assert [p.package_number for p in result.packages] == [strip_hash(f["name"]) for f in fulfillments]
    assert [p.tracking_number for p in result.packages] == [f"1ZSEVEN{n}" for n in range(7)]
    assert (result.total, result.has_next_page) == (7, False)
    assert requests(server) == 2
    assert requested_cost(server) == 1 + 7 * FULFILLMENT_COST  # the follow-up asks for the 7 fulfillments there are
    (seventh,) = (await run_lookup(ctx, PackagesQuery(order_number=number, page=Page(3, 3)))).packages
    assert seventh == result.packages[6] and requests(server) == 2


async def test_every_display_status_gets_a_label(ctx: ShopContext) -> None:
    from localstore.seed import DISPLAY_STATUS_FIXTURES

    for name, status in DISPLAY_STATUS_FIXTURES.items():
        packages = (await run_lookup(ctx, PackagesQuery(order_number=name.lstrip("#")))).packages
        if status in ("CANCELED", "LABEL_VOIDED"):
            assert packages == []  # cancelled: no package (see the next test)
        else:
            assert packages and packages[0].package_status == ctx.settings.labels.for_order("en")(status)


async def test_a_fulfillment_whose_label_was_voided_is_no_package(ctx: ShopContext) -> None:
    """Decided (README): a voided label counts as a cancelled fulfillment (Shopify puts its items back to
    unfulfilled), so `packages` does not list it — as no package/update announces it (tests/test_push_read.py)."""
    from localstore.seed import DISPLAY_STATUS_FIXTURES

    [name] = [n for n, status in DISPLAY_STATUS_FIXTURES.items() if status == "LABEL_VOIDED"]
    result = await run_lookup(ctx, PackagesQuery(order_number=name.lstrip("#")))
    assert (result.packages, result.total) == ([], 0)


async def test_packages_by_package_number_and_tracking(store: tuple[SandboxServer, SandboxShop]) -> None:
    server, _ = store
    async with aiohttp.ClientSession() as session:
        ctx = make_context(server.base_url, session, push_state=PushState({"9400111899223197428490": "1001"}, {}))
        (by_name,) = (await run_lookup(ctx, PackagesQuery(package_number="1001.2"))).packages
        assert by_name.tracking_number == "9400111899223197428490"
        (by_tracking,) = (await run_lookup(ctx, PackagesQuery(package_number="9400111899223197428490"))).packages
        assert by_tracking == by_name
        for unknown in ("1001.9", "1Z-unknown", "999999.1"):
            with pytest.raises(NotFound):
                await run_lookup(ctx, PackagesQuery(package_number=unknown))


# --- products ------------------------------------------------------------------------------------------------------


HIDDEN = {"Draft Hoodie", "Archived Jeans", "Unlisted Cap"}


async def test_products_by_vendor_and_fields(ctx: ShopContext, server: SandboxServer) -> None:
    result = await run_lookup(ctx, ProductsQuery(vendor="jack & jones", page=Page(1, 10)))
    assert requests(server) == 1 and requested_cost(server) <= 1000
    assert result.products and all(p.vendor == "JACK & JONES" for p in result.products)
    titles = [p.title for p in result.products]
    assert titles == sorted(titles, key=str.lower)  # default without a title: title ascending
    tee = next(p for p in result.products if p.title == "Classic T-Shirt")
    assert (tee.price, tee.compare_at_price, tee.discount) == ("19.99", "25.00", "20%")
    assert tee.buy_link.startswith("https://") and tee.buy_link.endswith(":1") and "/cart/" in tee.buy_link
    assert tee.image_url and tee.detail_link and tee.product_type == "T-Shirt" and tee.currency_code == "USD"
    graphic = (await run_lookup(ctx, ProductsQuery(title="graphic t-shirt"))).products
    assert [p.title for p in graphic][:1] == ["Graphic T-Shirt"] and graphic[0].image_url == ""


async def test_products_fuzzy_title_and_or(ctx: ShopContext) -> None:
    fuzzy = await run_lookup(ctx, ProductsQuery(title="T_shirt", page=Page(1, 10)))
    titles = {p.title for p in fuzzy.products}
    assert {"Classic T-Shirt", "Graphic T-Shirt"} <= titles
    union = await run_lookup(ctx, ProductsQuery(title="ipod", vendor="Urban Threads", page=Page(1, 10)))
    union_titles = {p.title for p in union.products}
    assert "IPod Nano - 8gb" in union_titles and "Graphic T-Shirt" in union_titles


async def test_hidden_products_are_never_returned(ctx: ShopContext) -> None:
    for query in (
        ProductsQuery(title="hoodie", page=Page(1, 10)),
        ProductsQuery(title="jeans", page=Page(1, 10)),
        ProductsQuery(title="cap", page=Page(1, 10)),
        ProductsQuery(title="draft"),
        ProductsQuery(title="unlisted"),
        ProductsQuery(product_type="Hoodie", page=Page(1, 10)),
        ProductsQuery(vendor='x" OR status:draft OR vendor:"y', page=Page(1, 10)),
    ):
        result = await run_lookup(ctx, query)
        assert not ({p.title for p in result.products} & HIDDEN)


async def test_products_pagination(ctx: ShopContext, server: SandboxServer) -> None:
    everything = await run_lookup(ctx, ProductsQuery(product_type="T-Shirt", page=Page(1, 10)))
    pages: list[str] = []
    for number in range(1, everything.total + 1):
        page = await run_lookup(ctx, ProductsQuery(product_type="T-Shirt", page=Page(number, 1)))
        assert page.has_next_page == (number < everything.total)
        pages.extend(p.title for p in page.products)
    assert pages == [p.title for p in everything.products]


async def test_property(ctx: ShopContext, server: SandboxServer) -> None:
    types = await run_lookup(ctx, PropertyQuery("product_type"))
    assert requests(server) == 1
    assert "T-Shirt" in types.values and "Cult Products" in types.values and "" not in types.values
    assert types.values == sorted(types.values, key=lambda v: (v.casefold(), v))
    vendors = await run_lookup(ctx, PropertyQuery("vendor"))
    assert requests(server) == 1  # one scan answers both search types
    assert "JACK & JONES" in vendors.values and len(set(vendors.values)) == len(vendors.values)
    with pytest.raises(InvalidRequest):
        await run_lookup(ctx, PropertyQuery("colour"))


async def test_property_lists_only_what_products_would_show(store: tuple[SandboxServer, SandboxShop]) -> None:
    """Issue 21.7: an unreleased collaboration's vendor and type (an unpublished product) never leak, nor a draft's or
    an archived product's; every value listed finds a product through `products`."""
    server, shop = store
    shop.add_product(build_product(shop, title="Secret Collab Jacket", vendor="Unreleased Collab Studio",
                                   product_type="Collab Capsule", price=Decimal("99.00"), published=False,
                                   created_at=datetime(2026, 11, 1, tzinfo=UTC)))  # fmt: skip
    async with aiohttp.ClientSession() as session:
        ctx = make_context(server.base_url, session)
        vendors = (await run_lookup(ctx, PropertyQuery("vendor"))).values
        types = (await run_lookup(ctx, PropertyQuery("product_type"))).values
        assert "Unreleased Collab Studio" not in vendors and "Collab Capsule" not in types
        visible = [p for p in shop.products if p["status"] == "ACTIVE" and p.get("onlineStoreUrl")]
        assert set(vendors) == {p["vendor"].strip() for p in visible if p["vendor"].strip()}
        assert set(types) == {p["productType"].strip() for p in visible if p["productType"].strip()}
        for vendor in vendors:
            assert (await run_lookup(ctx, ProductsQuery(vendor=vendor))).products, vendor
        for product_type in types:
            assert (await run_lookup(ctx, ProductsQuery(product_type=product_type))).products, product_type


# --- open API ------------------------------------------------------------------------------------------------------


async def test_open_api_by_id_and_by_name(store: tuple[SandboxServer, SandboxShop]) -> None:
    server, shop = store
    first = shop.order_by_name("#1001")
    assert first is not None
    order_id = int(first["legacyResourceId"])
    fulfillment_id = str(first["fulfillments"][0]["legacyResourceId"])
    async with aiohttp.ClientSession() as session:
        ctx = make_context(server.base_url, session, push_state=PushState({}, {order_id: {fulfillment_id: 1}}))
        await ctx.shop_info()
        server.reset_counters()
        result = await run_lookup(ctx, OpenApiOrderQuery(str(order_id)))
        assert requests(server) == 1 and requested_cost(server) <= 1000
        order = result.order
        assert (order.order_id, order.trade_id, order.status, order.notify_send_count) == (
            order_id,
            "1001",
            "SUCCESS",
            1,
        )
        assert order.amount.count(".") == 1 and len(order.amount.split(".")[1]) == 2
        assert result.created_at is not None and len(order.date) == 10
        assert order.records and {r.notify_sent for r in order.records} <= {"0", "1"}
        assert "1" in {r.notify_sent for r in order.records}
        assert all(r.status in ("IS_SUCCESS", "IS_DELIVERING", "WAITING_PICKED_UP", "IS_REFUND") for r in order.records)
        pending = (await run_lookup(ctx, OpenApiOrderQuery("1002"))).order
        assert (
            pending.trade_id == "1002" and pending.status == "NOTPAY" and all(r.status is None for r in pending.records)
        )
        assert (await run_lookup(ctx, OpenApiOrderQuery("1003"))).order.status == "CLOSED"
        assert (await run_lookup(ctx, OpenApiOrderQuery("1008"))).order.status == "REFUND"
        for unknown in ("1", "999999", "#nothing"):
            with pytest.raises(NotFound):
                await run_lookup(ctx, OpenApiOrderQuery(unknown))


# --- failures ------------------------------------------------------------------------------------------------------


async def test_store_unavailable_and_stale_if_error(store: tuple[SandboxServer, SandboxShop]) -> None:
    server, _ = store
    async with aiohttp.ClientSession() as session:
        ctx = make_context(server.base_url, session, deadline_seconds=1, cache={"orders": 0.05, "stale_if_error": 60})
        ctx.cache.configure_shop("demo", max_entries=100, stale_if_error=60)
        fresh = await run_lookup(ctx, OrdersByNumber("1001"))
        await server.stop()
        await asyncio.sleep(0.06)
        stale = await run_lookup(ctx, OrdersByNumber("1001"))  # expired, Shopify down: the stale answer serves
        assert stale is fresh
        with pytest.raises(StoreUnavailable):
            await run_lookup(ctx, OrdersByNumber("1002"))


async def test_store_errors_become_store_unavailable(store: tuple[SandboxServer, SandboxShop]) -> None:
    server, _ = store
    async with aiohttp.ClientSession() as session:
        ctx = make_context(server.base_url, session, deadline_seconds=1)
        server.faults.set(fail_next=5)  # 5xx, also on the client's quick retry
        with pytest.raises(StoreUnavailable):
            await run_lookup(ctx, OrdersByNumber("1001"))
        server.faults.clear()
        assert (await run_lookup(ctx, OrdersByNumber("1001"))).orders  # errors are not cached
        wrong = make_context(server.base_url, session, auth={"mode": "token", "access_token": "shpat_wrong"})
        with pytest.raises(StoreUnavailable):
            await run_lookup(wrong, ProductsQuery(vendor="Apple"))


async def test_query_cost_within_budget(ctx: ShopContext, server: SandboxServer) -> None:
    """At the default limit every lookup stays within the gateway's cost budget (so several lookups can run at once on
    a 2000-point bucket); at max_limit (10) orders per page the line-item page shrinks to stay within Shopify's 1000."""
    for query in (
        OrdersByNumber("1001"),
        OrdersByAccount(email=BOB_EMAIL),
        OrdersByAccount(phone=BOB_PHONE),
        PackagesQuery(order_number="1001"),
        ProductsQuery(title="shirt"),
        OpenApiOrderQuery("1001"),
    ):
        await run_lookup(ctx, query)
        assert 0 < requested_cost(server) <= QUERY_COST_BUDGET, query
    await run_lookup(ctx, OrdersByAccount(email=BOB_EMAIL, page=Page(1, 10)))
    assert 0 < requested_cost(server) <= 1000
    await run_lookup(ctx, OrdersByAccount(phone=BOB_PHONE, page=Page(1, 10)))
    assert 0 < requested_cost(server) <= 1000
    await run_lookup(ctx, ProductsQuery(title="shirt", page=Page(1, 10)))
    assert 0 < requested_cost(server) <= 1000
    await run_lookup(ctx, PackagesQuery(order_number="1012"))
    assert 0 < requested_cost(server) <= 1000


async def test_concurrent_identical_lookups_share_one_request(ctx: ShopContext, server: SandboxServer) -> None:
    results = await asyncio.gather(*(run_lookup(ctx, OrdersByNumber("1004")) for _ in range(100)))
    assert requests(server) == 1 and all(r is results[0] for r in results)


async def test_webhook_style_invalidation_refetches(ctx: ShopContext, server: SandboxServer) -> None:
    from gateway.cache_tags import order_tags

    await run_lookup(ctx, OrdersByNumber("1002"))
    await run_lookup(ctx, OrdersByAccount(email=BOB_EMAIL))
    await run_lookup(ctx, PackagesQuery(order_number="1002"))
    assert requests(server) == 3
    ctx.cache.invalidate("demo", order_tags(number="1002", email=BOB_EMAIL))
    await run_lookup(ctx, OrdersByNumber("1002"))
    await run_lookup(ctx, OrdersByAccount(email=BOB_EMAIL))
    await run_lookup(ctx, PackagesQuery(order_number="1002"))
    assert requests(server) == 6


async def test_one_deadline_for_the_whole_lookup(store: tuple[SandboxServer, SandboxShop]) -> None:
    """A phone lookup makes two requests; together they must fit the shop's deadline, not each on its own."""
    server, _ = store
    async with aiohttp.ClientSession() as session:
        # margins wide enough for a loaded CI machine: one request ends 0.4 s before the deadline, two 0.2 s after
        ctx = make_context(server.base_url, session, deadline_seconds=1.0)
        server.faults.set(latency=0.6)
        await run_lookup(ctx, OrdersByNumber("1001"))  # one request fits
        with pytest.raises(StoreUnavailable):
            await run_lookup(ctx, OrdersByAccount(phone=BOB_PHONE))  # the second request would end after the deadline
        server.faults.clear()
        assert (await run_lookup(ctx, OrdersByAccount(phone=BOB_PHONE))).orders


async def test_customer_without_orders_is_an_empty_list(store: tuple[SandboxServer, SandboxShop]) -> None:
    server, shop = store
    email = "no.orders.yet@example.com"
    shop.add_customer(build_customer(shop, "Nora", "Orders", email, "+16135550111", shop.now()))
    async with aiohttp.ClientSession() as session:
        ctx = make_context(server.base_url, session)
        by_email = await run_lookup(ctx, OrdersByAccount(email=email))
        assert (by_email.orders, by_email.total, by_email.has_next_page) == ([], 0, False)
        by_phone = await run_lookup(ctx, OrdersByAccount(phone="+16135550111"))
        assert by_phone.orders == [] and by_phone.total == 0


@pytest.mark.parametrize(
    ("name", "record_status"),
    [
        ("1017", "IS_FAILED"),
        ("1023", "IS_FAILED"),
        ("1024", "IS_PICKED_UP"),
        ("1028", "IS_DELIVERING"),
        ("1027", "IS_DELIVERING"),
        ("1019", "IS_DELIVERING"),
        ("1029", "IS_DELIVERING"),
        ("1004", "IS_SUCCESS"),
        ("1014", "WAITING_PICKED_UP"),  # its only fulfillment was cancelled
    ],
)
async def test_open_api_record_statuses(ctx: ShopContext, name: str, record_status: str) -> None:
    order = (await run_lookup(ctx, OpenApiOrderQuery(name))).order
    assert order.status == "SUCCESS" and record_status in {r.status for r in order.records}


async def test_float_noise_never_reaches_the_receipt(store: tuple[SandboxServer, SandboxShop]) -> None:
    server, shop = store
    order = await shop.create_order(
        email="float.noise@example.com",
        line_items=[
            {"title": "Dime", "quantity": 1, "price": "0.10"},
            {"title": "Two dimes", "quantity": 1, "price": "0.20"},
        ],
        shipping_address=None,
    )
    async with aiohttp.ClientSession() as session:
        ctx = make_context(server.base_url, session)
        (receipt,) = (await run_lookup(ctx, OrdersByNumber(strip_hash(order["name"])))).orders
    assert json.dumps(receipt.summary.subtotal) == "0.3"
    assert [json.dumps(e.price) for e in receipt.elements] == ["0.1", "0.2"]
    assert receipt.address is None
