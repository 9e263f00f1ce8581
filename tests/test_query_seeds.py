"""Every example request of seeds 000, 001, 002 and 004, sent signed to the gateway in front of the local store.

Where a seed's example contradicts PROTOCOL.md (it sends both `order_number` and `user_account`, or the literal
`"product_type|vendor"`), the verbatim example must get the dialect's invalid-request error, and each of its lookups
sent alone must succeed. Values are checked against the store's well-known fixtures (localstore/data.py).
"""

from __future__ import annotations

import asyncio
import json
import time

from tests.fixtures_query import MACHINE, Platform, openapi_body

BOB = "bob.norman@mail.example.com"
RECEIPT_KEYS = {"recipient_name", "order_number", "currency", "payment_method", "order_url", "timestamp", "summary",
                "adjustments", "elements"}
PACKAGE_KEYS = {"order_number", "package_number", "product_name", "carrier", "tracking_number", "tracking_url",
                "package_status", "exp_delivery", "image_url"}
V1_PRODUCT_KEYS = {"product_number", "title", "image_url", "product_type", "tags", "description", "updated_at",
                   "created_at", "detail_link", "buy_link", "stock", "price", "compare_at_price", "currency_code",
                   "discount"}
V2_PRODUCT_KEYS = {"title", "image_url", "product_type", "vendor", "desc", "detail_url", "buy_url", "price"}


def check_receipt_1001(order: dict[str, object]) -> None:
    assert order["order_number"] == "1001" and order["recipient_name"] == "Bob Norman"
    assert order["payment_method"] == "Visa 4242" and order["currency"] == "USD"
    assert isinstance(order["timestamp"], str) and order["timestamp"].isdigit()
    assert order["adjustments"] == [{"name": "TENOFF", "amount": 10}]
    assert order["address"] == {"street_1": "Chestnut Street 92", "street_2": "", "city": "Louisville",  # type: ignore[comparison-overlap]
                                "postal_code": "40202", "state": "KY", "country": "US"}
    assert len(order["elements"]) == 3  # type: ignore[arg-type]


# --- seed 000: JoinChat v1 ------------------------------------------------------------------------------------------

SEED_000_ORDERS = {
    "method": "orders",
    "params": {"order_number": "12345678902", "filter": "unpaid", "user_account": "bob.norman@hostmail.com",
               "order_type": "created_at,desc"},
    "pagination": {"page": 1, "limit": 3},
}


async def test_seed_000_orders(gateway: Platform) -> None:
    r = await gateway.ask("jc1", SEED_000_ORDERS)  # both keys: invalid by PROTOCOL §5
    assert r.status == 400 and r.json["success"] is False and r.json["errors"]["message"]

    by_number = json.loads(json.dumps(SEED_000_ORDERS))
    del by_number["params"]["user_account"]
    by_number["params"]["order_number"] = "#1001"
    r = await gateway.ask("jc1", by_number)
    assert r.status == 200 and r.json["success"] is True and r.json["has_next_page"] is False
    (order,) = r.json["orders"]
    assert set(order) == RECEIPT_KEYS | {"status", "address"}
    check_receipt_1001(order)

    by_account = json.loads(json.dumps(SEED_000_ORDERS))
    del by_account["params"]["order_number"]
    by_account["params"]["user_account"] = BOB
    r = await gateway.ask("jc1", by_account)
    assert r.status == 200 and [o["order_number"] for o in r.json["orders"]] == ["1002"]
    assert r.json["orders"][0]["status"] == "unpaid"
    # The seed's own (unknown) account: a business outcome, HTTP 200.
    by_account["params"]["user_account"] = "bob.norman@hostmail.com"
    r = await gateway.ask("jc1", by_account)
    assert r.status == 200 and r.json == {"success": False, "errors": {"message": "User not found"}}


async def test_seed_000_packages(gateway: Platform) -> None:
    r = await gateway.ask("jc1", {"method": "packages", "params": {"order_number": "12345",
                                                                    "package_number": "3354543"}})
    assert r.status == 400
    r = await gateway.ask("jc1", {"method": "packages", "params": {"order_number": "1001"}})
    assert r.status == 200 and r.json["has_next_page"] is False
    assert [set(p) for p in r.json["packages"]] == [PACKAGE_KEYS, PACKAGE_KEYS]
    first, second = r.json["packages"]
    assert (first["package_number"], first["carrier"], first["tracking_number"], first["package_status"]) == (
        "1001.1", "UPS", "1Z1234512345123456", "Delivered")
    assert (second["package_number"], second["package_status"]) == ("1001.2", "In transit")
    r = await gateway.ask("jc1", {"method": "packages", "params": {"package_number": "1001.2"}})
    assert [p["tracking_number"] for p in r.json["packages"]] == ["9400111899223197428490"]
    r = await gateway.ask("jc1", {"method": "packages", "params": {"package_number": "3354543"}})
    assert r.status == 200 and r.json == {"success": False, "errors": {"message": "Order not found"}}


async def test_seed_000_products(gateway: Platform) -> None:
    body = {"method": "products", "params": {"title": "T_shirt", "product_type": "clothes", "vendor": "JACK & JONES",
                                             "order_type": "title,desc"}, "pagination": {"page": 1, "limit": 3}}
    r = await gateway.ask("jc1", body)
    assert r.status == 200 and r.json["success"] is True and r.json["has_next_page"] is True
    products = r.json["products"]
    assert len(products) == 3 and all(set(p) == V1_PRODUCT_KEYS for p in products)
    titles = [p["title"] for p in products]
    assert titles == sorted(titles, reverse=True)
    assert all(isinstance(p["stock"], int) and isinstance(p["price"], str) for p in products)
    # OR: every T-shirt title and every JACK & JONES product, never a draft/archived/unpublished one.
    body["pagination"] = {"page": 1, "limit": 10}
    r = await gateway.ask("jc1", body)
    titles = {p["title"] for p in r.json["products"]}
    assert "Classic T-Shirt" in titles and not titles & {"Draft Hoodie", "Archived Jeans", "Unlisted Cap"}


async def test_seed_000_test(gateway: Platform) -> None:
    r = await gateway.ask("jc1", {"method": "test", "params": {"token": "T45RE"}})
    assert r.json == {"success": True, "token": "T45RE"}
    assert gateway.store is not None and gateway.store.graphql_requests("demo.myshopify.com") == 0


# --- seed 001: Meetbot ----------------------------------------------------------------------------------------------


def meetbot(method: str, rid: str, params: dict[str, object], pagination: dict[str, int] | None = None) -> dict:  # type: ignore[type-arg]
    body = {"request": {"category": "ecommerce", "method": method, "id": rid, "page_id": "231231232134111",
                        "meta": ""}, "params": params}
    if pagination:
        body["pagination"] = pagination
    return body


async def test_seed_001_orders(gateway: Platform) -> None:
    params: dict[str, object] = {"user_account": "yilia@meetbot.biz", "filter": "open", "order_number": 12344556}
    r = await gateway.ask("mb", meetbot("orders", "order_list_12582312", params, {"page": 1, "limit": 3}))
    assert r.status == 400 and r.json["error"]["code"] == 19001
    r = await gateway.ask("mb", meetbot("orders", "o", {"user_account": "yilia@meetbot.biz", "filter": "open"}))
    assert r.status == 200 and r.json == {"success": False, "error": {"code": 10001, "message": "User not found"}}
    r = await gateway.ask("mb", meetbot("orders", "o", {"order_number": 12344556}))
    assert r.status == 200 and r.json["error"]["code"] == 11001
    r = await gateway.ask("mb", meetbot("orders", "o", {"order_number": 1001}))
    assert r.json["success"] is True and r.json["object"] == "orders" and r.json["has_next_page"] is False
    check_receipt_1001(r.json["orders"][0])
    r = await gateway.ask("mb", meetbot("orders", "o", {"user_account": BOB.upper(), "filter": "past"},
                                        {"page": 1, "limit": 3}))
    assert r.json["object"] == "orders"
    assert {o["order_number"]: o["status"] for o in r.json["orders"]} == {"1003": "cancelled", "1004": "past"}
    # By phone, resolved through the customer (PROTOCOL §5).
    r = await gateway.ask("mb", meetbot("orders", "o", {"user_account": "+1 613-612-0707"}, {"page": 1, "limit": 10}))
    assert sorted(o["order_number"] for o in r.json["orders"]) == ["1001", "1002", "1003", "1004"]


async def test_seed_001_packages_and_test(gateway: Platform) -> None:
    r = await gateway.ask("mb", meetbot("packages", "packages_213124", {"order_number": "12345"},
                                        {"page": 1, "limit": 3}))
    assert r.status == 200 and r.json == {"success": False, "error": {"code": 11001, "message": "Order not found"}}
    r = await gateway.ask("mb", meetbot("packages", "p", {"order_number": "1001"}, {"page": 1, "limit": 1}))
    assert r.json["object"] == "packages" and r.json["has_next_page"] is True
    assert [p["package_number"] for p in r.json["packages"]] == ["1001.1"]
    r = await gateway.ask("mb", meetbot("test", "test_12582312", {"test_token": "12345"}))
    assert r.json == {"success": True, "object": "test", "test_token": "12345"}


# --- seed 002: JoinChat v2 ------------------------------------------------------------------------------------------


async def test_seed_002_products_property_orders(gateway: Platform) -> None:
    body = {"method": "products", "params": {"title": "T_shirt", "product_type": "clothes", "vendor": "JACK & JONES",
                                             "order_type": "title,desc"}, "pagination": {"page": 1, "limit": 3}}
    r = await gateway.ask("jc2", body)
    assert r.status == 200 and r.json["success"] is True and r.json["total"] >= 3
    assert len(r.json["data"]) == 3 and all(set(p) == V2_PRODUCT_KEYS for p in r.json["data"])

    r = await gateway.ask("jc2", {"method": "property", "params": {"search_type": "product_type|vendor"}})
    assert r.status == 400 and isinstance(r.json["errors"], str)
    r = await gateway.ask("jc2", {"method": "property", "params": {"search_type": "vendor"}})
    assert r.json["success"] is True and "JACK & JONES" in r.json["data"] and "Apple" in r.json["data"]
    assert r.json["data"] == sorted(r.json["data"], key=str.lower)
    r = await gateway.ask("jc2", {"method": "property", "params": {"search_type": "product_type"}})
    assert "T-Shirt" in r.json["data"] and "Cult Products" in r.json["data"]

    both = {"method": "orders", "params": {"order_number": "12345678902", "user_account": "bob.norman@hostmail.com",
                                           "filter": "open"}, "pagination": {"page": 1, "limit": 3}}
    r = await gateway.ask("jc2", both)
    assert r.status == 400 and isinstance(r.json["errors"], str)
    r = await gateway.ask("jc2", {"method": "orders", "params": {"user_account": BOB, "filter": "open"},
                                  "pagination": {"page": 1, "limit": 3}})
    assert r.json["success"] is True and r.json["total"] == 2  # #1001 and #1002 are neither closed nor cancelled
    assert all(o["template_type"] == "receipt" and "status" not in o for o in r.json["data"])
    assert {o["order_number"] for o in r.json["data"]} == {"1001", "1002"}
    r = await gateway.ask("jc2", {"method": "orders", "params": {"order_number": "1005"}})
    (order,) = r.json["data"]
    assert "address" not in order and order["recipient_name"]  # no shipping address: key omitted


# --- seed 004: open API ---------------------------------------------------------------------------------------------


async def test_seed_004_order(gateway: Platform) -> None:
    r = await gateway.openapi("1001")  # order name fallback
    assert r.status == 200 and r.json["code"] == 0 and r.json["message"] == "ok"
    data = r.json["data"]
    assert data["trade_id"] == "1001" and data["status"] == "SUCCESS" and data["amount"] == "462.22"
    assert "notify_send_count" not in data  # zero: omitted
    assert {rec["status"] for rec in data["records"]} == {"IS_SUCCESS", "IS_DELIVERING"}
    r2 = await gateway.openapi(str(data["order_id"]))  # the numeric id
    assert r2.json == r.json
    r = await gateway.openapi("1002")
    assert r.json["data"]["status"] == "NOTPAY" and all("status" not in rec for rec in r.json["data"]["records"])
    r = await gateway.openapi("99999999")
    assert (r.status, r.json) == (200, {"code": 40400, "message": "Order not found", "data": {}})
    body = openapi_body(MACHINE, int(time.time()))
    r = await gateway.openapi("1003", body)
    assert r.json["data"]["status"] == "CLOSED"


async def test_openapi_order_expired(gateway: Platform) -> None:
    # The seeded orders are days old; a shop allowing 0 days... is "no limit", so use the age of #1001 itself.
    app = gateway.client.app
    from gateway.query import OPENAPI_ROUTES

    route = next(iter(app[OPENAPI_ROUTES].values()))
    assert route.shop.openapi is not None
    # A fresh settings object with max_order_age_days=1 for the same shop (settings are frozen).
    route.shop = route.shop.model_copy(
        update={"openapi": route.shop.openapi.model_copy(update={"max_order_age_days": 1})})
    r = await gateway.openapi("1001")
    assert (r.status, r.json) == (200, {"code": 40005, "message": "order expired", "data": {}})


async def test_concurrent_seed_queries_each_get_their_own_answer(gateway: Platform) -> None:
    replies = await asyncio.gather(*(gateway.query("jc1", "orders", {"order_number": str(n)})
                                     for n in range(1001, 1011)))
    assert [r.json["orders"][0]["order_number"] for r in replies] == [str(n) for n in range(1001, 1011)]
