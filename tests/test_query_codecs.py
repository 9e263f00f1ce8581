"""Dialect codecs on their own: request → Query, Result/failure → the documented JSON (PROTOCOL §3–§7, §10)."""

from __future__ import annotations

import base64
import json
import time

import pytest

from gateway.dialects import JoinChatCodec, MeetbotCodec, OpenApiCodec
from gateway.dialects.base import ErrorKind, GatewayError
from gateway.dialects.openapi import check_age, check_payload, decode_payload, order_query, prune
from gateway.lookups.types import (
    DEFAULT_ORDER_SORT,
    InvalidRequest,
    OpenApiOrderQuery,
    OpenApiOrderResult,
    OrderFilter,
    OrdersByAccount,
    OrdersByNumber,
    OrdersResult,
    PackagesQuery,
    PackagesResult,
    Page,
    ProductsQuery,
    ProductsResult,
    PropertyQuery,
    PropertyResult,
    Sort,
    SortField,
    UnsupportedMethod,
)
from gateway.lookups.types import (
    TestQuery as EchoQuery,
)
from gateway.settings import Limits, OpenApiSettings
from mappings.models import (
    OpenApiOrder,
    OpenApiRecord,
    Package,
    Product,
    Receipt,
    ReceiptAddress,
    ReceiptElement,
    ReceiptSummary,
)

LIMITS = Limits(max_limit=10, default_limit=3, max_page=50)
V1 = JoinChatCodec(1, LIMITS)
V2 = JoinChatCodec(2, LIMITS)
MB = MeetbotCodec(LIMITS)


def jc(method: str, params: object = None, pagination: object = None) -> dict[str, object]:
    body: dict[str, object] = {"method": method}
    if params is not None:
        body["params"] = params
    if pagination is not None:
        body["pagination"] = pagination
    return body


def mb(method: str, params: object = None, pagination: object = None) -> dict[str, object]:
    body: dict[str, object] = {
        "request": {"category": "ecommerce", "method": method, "id": "x_1", "page_id": "231231232134111", "meta": ""}
    }
    if params is not None:
        body["params"] = params
    if pagination is not None:
        body["pagination"] = pagination
    return body


# --- parsing -------------------------------------------------------------------------------------------------------


def test_test_method_both_dialects() -> None:
    assert V1.parse(jc("test", {"token": "T45RE"})) == EchoQuery("T45RE")
    assert json.loads(V1.render(EchoQuery("T45RE"), None)) == {"success": True, "token": "T45RE"}
    q = MB.parse(mb("test", {"test_token": "12345"}))
    assert json.loads(MB.render(q, None)) == {"success": True, "object": "test", "test_token": "12345"}


def test_orders_by_number_accepts_numbers_strings_and_hash() -> None:
    assert V1.parse(jc("orders", {"order_number": 12344556})) == OrdersByNumber("12344556", Page(1, 3))
    assert V1.parse(jc("orders", {"order_number": "  #1001 "})) == OrdersByNumber("1001", Page(1, 3))
    q = MB.parse(mb("orders", {"order_number": "1001"}, {"page": "2", "limit": "5"}))
    assert q == OrdersByNumber("1001", Page(2, 5))


def test_orders_by_account_email_phone_filter_sort() -> None:
    q = V1.parse(
        jc("orders", {"user_account": " Bob.Norman@Hostmail.com ", "filter": "unpaid", "order_type": "updated_at,asc"})
    )
    assert q == OrdersByAccount(
        email="bob.norman@hostmail.com", filter=OrderFilter.UNPAID, sort=Sort(SortField.UPDATED_AT, False)
    )
    q = MB.parse(mb("orders", {"user_account": "+1 (613) 555-0135", "filter": "past"}))
    assert isinstance(q, OrdersByAccount) and q.phone == "+16135550135" and q.filter is OrderFilter.CLOSED
    assert V1.parse(jc("orders", {"user_account": "a@b.co", "filter": "past"})).filter is OrderFilter.CLOSED  # type: ignore[union-attr]
    assert MB.parse(mb("orders", {"user_account": "a@b.co", "filter": "closed"})).filter is OrderFilter.CLOSED  # type: ignore[union-attr]
    assert V1.parse(jc("orders", {"user_account": "a@b.co"})).sort == Sort(SortField.CREATED_AT, True)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"order_number": "1001", "user_account": "a@b.com"},
        {"user_account": "a@b.com OR status:any"},
        {"user_account": 'a@b.com" OR "x'},
        {"user_account": "a\\@b.com"},
        {"user_account": "(a@b.com)"},
        {"user_account": "*@b.com"},
        {"user_account": "not an account"},
        {"user_account": 5},
        {"order_number": "1001 OR 1002"},
        {"order_number": "10*"},
        {"order_number": '"1001"'},
        {"order_number": True},
        {"order_number": 1.5},
        {"order_number": ["1001"]},
        {"user_account": "a@b.com", "filter": "everything"},
        {"user_account": "a@b.com", "order_type": "title,asc"},
        {"user_account": "a@b.com", "order_type": "created_at"},
        {"user_account": "a@b.com", "order_type": "created_at,sideways"},
        {"order_number": "x" * 65},
    ],
)
def test_orders_invalid_params(params: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        V1.parse(jc("orders", params))
    with pytest.raises(InvalidRequest):
        MB.parse(mb("orders", params))


@pytest.mark.parametrize(
    ("pagination", "expected"),
    [
        (None, Page(1, 3)),
        ({}, Page(1, 3)),
        ({"page": 2}, Page(2, 3)),
        ({"page": "3", "limit": "7"}, Page(3, 7)),
        ({"limit": 11}, Page(1, 10)),  # capped at max_limit
        ({"limit": 10**30}, Page(1, 10)),
        ({"limit": "99999999999999999999999"}, Page(1, 10)),
        ({"page": 2.0}, Page(2, 3)),
    ],
)
def test_pagination(pagination: object, expected: Page) -> None:
    assert V1.parse(jc("orders", {"order_number": "1"}, pagination)).page == expected  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "pagination",
    [
        {"page": 0},
        {"page": -1},
        {"page": "-3"},
        {"page": 51},
        {"limit": 0},
        {"limit": -5},
        {"limit": "ten"},
        {"limit": 2.5},
        {"limit": True},
        {"page": None, "limit": [3]},
        [1, 3],
        "1,3",
    ],
)
def test_pagination_invalid(pagination: object) -> None:
    with pytest.raises(InvalidRequest):
        V1.parse(jc("orders", {"order_number": "1"}, pagination))


@pytest.mark.parametrize("sent", [3010.2, "3010.2", " #3010.2 "])
def test_package_number_as_a_json_number_works_like_the_string(sent: object) -> None:
    expected = PackagesQuery(None, "3010.2", Page(1, 3))
    assert V1.parse(jc("packages", {"package_number": sent})) == expected
    assert MB.parse(mb("packages", {"package_number": sent})) == expected
    # through the wire too: the JSON number as the platform sends it
    raw = b'{"method":"packages","params":{"package_number":3010.2}}'
    assert V1.parse(json.loads(raw)) == expected


def test_integral_floats_read_as_integers_and_odd_floats_are_refused() -> None:
    assert V1.parse(jc("orders", {"order_number": 1001.0})).order_number == "1001"  # type: ignore[attr-defined]
    for bad in (float("nan"), float("inf"), -1.5):
        with pytest.raises(InvalidRequest):
            V1.parse(jc("packages", {"package_number": bad}))


def test_packages_products_property() -> None:
    assert V1.parse(jc("packages", {"package_number": "1001.1"})) == PackagesQuery(None, "1001.1", Page(1, 3))
    assert MB.parse(mb("packages", {"order_number": "12345"})) == PackagesQuery("12345", None, Page(1, 3))
    with pytest.raises(InvalidRequest):
        V1.parse(jc("packages", {"order_number": "1", "package_number": "1.1"}))
    with pytest.raises(InvalidRequest):
        V1.parse(jc("packages", {}))
    q = V2.parse(
        jc(
            "products",
            {"title": "T_shirt", "product_type": "clothes", "vendor": "JACK & JONES", "order_type": "title,desc"},
            {"page": 1, "limit": 3},
        )
    )
    assert q == ProductsQuery("T_shirt", "clothes", "JACK & JONES", Sort(SortField.TITLE, True), Page(1, 3))
    assert V1.parse(jc("products", {"vendor": "Acme"})).sort is None  # type: ignore[union-attr]
    with pytest.raises(InvalidRequest):
        V1.parse(jc("products", {"title": "  "}))
    with pytest.raises(InvalidRequest):
        V1.parse(jc("products", {"title": "x", "order_type": "processed_at,asc"}))
    assert V2.parse(jc("property", {"search_type": "vendor"})) == PropertyQuery("vendor")
    with pytest.raises(InvalidRequest):
        V2.parse(jc("property", {"search_type": "product_type|vendor"}))


@pytest.mark.parametrize(
    "body",
    [
        [],
        "orders",
        3,
        None,
        {"params": {}},
        {"method": 3},
        {"method": "orders", "params": []},
        {"method": "orders", "params": {"order_number": "1"}, "pagination": 3},
    ],
)
def test_bad_envelopes(body: object) -> None:
    with pytest.raises(InvalidRequest):
        V1.parse(body)


def test_bad_meetbot_envelopes() -> None:
    for body in ({"method": "orders"}, {"request": {}}, {"request": "orders"}, {"request": {"method": None}}):
        with pytest.raises(InvalidRequest):
            MB.parse(body)


def test_unknown_method_and_unknown_fields() -> None:
    with pytest.raises(UnsupportedMethod):
        V1.parse(jc("refunds", {}))
    with pytest.raises(UnsupportedMethod):
        MB.parse(mb("refunds", {}))
    body = jc("orders", {"order_number": "1", "extra": {"x": 1}}, {"page": 1, "limit": 2, "cursor": "z"})
    body["future_field"] = True
    assert V1.parse(body) == OrdersByNumber("1", Page(1, 2))


# --- rendering -----------------------------------------------------------------------------------------------------

RECEIPT = Receipt(
    recipient_name="Stephane Crozatier",
    order_number="1001",
    currency="USD",
    payment_method="Visa 2345",
    order_url="https://shop.example/1001",
    timestamp="1428444852",
    status="closed",
    address=ReceiptAddress(street_1="1 Hacker Way", city="Menlo Park", postal_code="94025", state="CA", country="US"),
    summary=ReceiptSummary(subtotal=75, shipping_cost=4.95, total_tax=6.19, total_cost=56.14),
    elements=[ReceiptElement(title="Classic White T-Shirt", quantity=2, price=50, currency="USD")],
)
NO_ADDRESS = RECEIPT.model_copy(update={"address": None, "status": "open"})
PRODUCT = Product(
    product_number="7",
    title="Classic T-Shirt",
    vendor="Acme",
    description="Soft",
    detail_link="d",
    buy_link="b",
    price="19.99",
    stock=4,
)
PACKAGE = Package(order_number="1001", package_number="1001.1", package_status="In transit", carrier="UPS")


def test_v1_renders() -> None:
    q = OrdersByNumber("1001")
    out = json.loads(V1.render(q, OrdersResult([RECEIPT, NO_ADDRESS], True, 2)))
    assert out["success"] is True and out["has_next_page"] is True
    assert out["orders"][0]["status"] == "closed" and out["orders"][0]["address"]["street_2"] == ""
    assert "address" not in out["orders"][1]
    assert out["orders"][0]["summary"] == {
        "subtotal": 75,
        "shipping_cost": 4.95,
        "total_tax": 6.19,
        "total_cost": 56.14,
    }
    assert json.loads(V1.render(q, OrdersResult([], False, 0))) == {
        "success": True,
        "has_next_page": False,
        "orders": [],
    }
    prod = json.loads(V1.render(ProductsQuery(title="x"), ProductsResult([PRODUCT], False, 1)))["products"][0]
    assert "vendor" not in prod and prod["stock"] == 4 and prod["price"] == "19.99" and prod["description"] == "Soft"
    pkg = json.loads(V1.render(PackagesQuery("1001"), PackagesResult([PACKAGE], False, 1)))["packages"][0]
    assert pkg["package_number"] == "1001.1" and pkg["order_number"] == "1001"


def test_v2_renders() -> None:
    out = json.loads(V2.render(OrdersByNumber("1001"), OrdersResult([RECEIPT], False, 5)))
    assert out["total"] == 5 and "has_next_page" not in out
    assert out["data"][0]["template_type"] == "receipt" and "status" not in out["data"][0]
    prod = json.loads(V2.render(ProductsQuery(title="x"), ProductsResult([PRODUCT], False, 1)))
    assert prod == {
        "success": True,
        "total": 1,
        "data": [
            {
                "title": "Classic T-Shirt",
                "image_url": "",
                "product_type": "",
                "vendor": "Acme",
                "desc": "Soft",
                "detail_url": "d",
                "buy_url": "b",
                "price": "19.99",
            }
        ],
    }
    assert json.loads(V2.render(PropertyQuery("vendor"), PropertyResult(["Acme", "b"]))) == {
        "success": True,
        "data": ["Acme", "b"],
    }


def test_meetbot_renders() -> None:
    out = json.loads(MB.render(OrdersByNumber("1001"), OrdersResult([RECEIPT], True, 3)))
    assert out["object"] == "orders" and out["has_next_page"] is True and out["orders"][0]["status"] == "past"
    out = json.loads(MB.render(PackagesQuery("1001"), PackagesResult([PACKAGE], False, 1)))
    assert out["object"] == "packages" and out["packages"][0]["carrier"] == "UPS"


@pytest.mark.parametrize(
    ("kind", "v1", "v2", "meetbot"),
    [
        (ErrorKind.USER_NOT_FOUND, 200, 200, 10001),
        (ErrorKind.ORDER_NOT_FOUND, 200, 200, 11001),
        (ErrorKind.INVALID, 400, 400, 19001),
        (ErrorKind.UNSUPPORTED, 400, 400, 19002),
        (ErrorKind.BAD_SIGNATURE, 401, 401, 19003),
        (ErrorKind.UNAVAILABLE, 503, 503, 19500),
    ],
)
def test_error_shapes(kind: ErrorKind, v1: int, v2: int, meetbot: int) -> None:
    err = GatewayError(kind)
    assert err.status == v1
    assert json.loads(V1.error(err)) == {"success": False, "errors": {"message": err.message}}
    assert json.loads(V2.error(err)) == {"success": False, "errors": err.message}
    assert json.loads(MB.error(err)) == {"success": False, "error": {"code": meetbot, "message": err.message}}


# --- open API ------------------------------------------------------------------------------------------------------

CFG = OpenApiSettings(app_id="app", app_secret="test-app-secret", allowed_machines=["16327129"], max_order_age_days=30)


def payload(machine_no: object = "16327129", ts: object = None) -> dict[str, str]:
    inner = {"machine_no": machine_no, "timestamp": str(int(time.time())) if ts is None else ts}
    return {"payload": base64.b64encode(json.dumps(inner).encode()).decode()}


def test_openapi_payload_checks() -> None:
    now = time.time()
    check_payload(decode_payload(payload()), CFG, now)
    for bad in (
        {"payload": "!!!"},
        {"payload": base64.b64encode(b"[1]").decode()},
        payload(machine_no="1234567"),
        payload(machine_no=16327129),
        payload(ts="yesterday"),
        {},
        [],
    ):
        with pytest.raises(GatewayError) as err:
            check_payload(decode_payload(bad), CFG, now)
        assert err.value.kind is ErrorKind.INVALID
    with pytest.raises(GatewayError) as err:
        check_payload(decode_payload(payload(ts=str(int(now) - 301))), CFG, now)
    assert err.value.kind is ErrorKind.STALE
    with pytest.raises(GatewayError) as err:
        check_payload(decode_payload(payload(machine_no="00000000")), CFG, now)
    assert err.value.kind is ErrorKind.FORBIDDEN
    # URL-safe alphabet and missing padding are accepted.
    raw = base64.urlsafe_b64encode(json.dumps({"machine_no": "16327129", "timestamp": int(now)}).encode())
    check_payload(decode_payload({"payload": raw.decode().rstrip("=")}), CFG, now)


def test_openapi_parse_checks_the_payload_then_the_order_id() -> None:
    now = time.time()
    assert OpenApiCodec().parse(payload(), " #1001 ", CFG, now) == OpenApiOrderQuery("1001")
    for body, order_id, kind in (
        ({"payload": "!!!"}, "1001", ErrorKind.INVALID),
        (payload(machine_no="00000000"), "1001", ErrorKind.FORBIDDEN),
        (payload(ts=str(int(now) - 301)), "1001", ErrorKind.STALE),
        (payload(), "10 01", ErrorKind.INVALID),
    ):
        with pytest.raises(GatewayError) as err:
            OpenApiCodec().parse(body, order_id, CFG, now)
        assert err.value.kind is kind


def test_openapi_render_omits_empty_fields_and_checks_age() -> None:
    order = OpenApiOrder(
        order_id=54,
        trade_id="1001",
        date="2024-04-26",
        amount="3.00",
        status="NOTPAY",
        records=[OpenApiRecord(id=70, product_id=121, quantity=1, price="1.00")],
    )
    out = json.loads(OpenApiCodec().render(order_query("54"), OpenApiOrderResult(order)))
    assert out == {
        "code": 0,
        "message": "ok",
        "data": {
            "order_id": 54,
            "trade_id": "1001",
            "date": "2024-04-26",
            "amount": "3.00",
            "status": "NOTPAY",
            "records": [{"id": 70, "product_id": 121, "quantity": 1, "price": "1.00", "notify_sent": "0"}],
        },
    }
    assert prune({"a": 0, "b": False, "c": "", "d": [], "e": {"f": None}, "g": 0.0, "h": "0"}) == {"h": "0"}
    with pytest.raises(GatewayError) as err:
        check_age(OpenApiOrderResult(order), CFG, time.time())
    assert err.value.kind is ErrorKind.EXPIRED and err.value.status == 200
    check_age(OpenApiOrderResult(order.model_copy(update={"date": time.strftime("%Y-%m-%d")})), CFG, time.time())
    assert json.loads(OpenApiCodec().error(GatewayError(ErrorKind.EXPIRED))) == {
        "code": 40005,
        "message": "order expired",
        "data": {},
    }
    for bad in ("1 OR 2", "", "a" * 70, "'1'"):
        with pytest.raises(GatewayError):
            order_query(bad)


def test_queries_refuse_impossible_states_whoever_builds_them() -> None:
    """Validated once, in the query types: a codec and a hand-built query (console, tests) meet the same checks."""
    for build in (
        lambda: PackagesQuery(),
        lambda: PackagesQuery("1001", "1001.1"),
        lambda: OrdersByAccount(),
        lambda: OrdersByAccount(email="a@b.com", phone="+16135550135"),
        lambda: OrdersByAccount(phone="613 555 0135"),  # not normalised: the codec's job, with the shop's region
    ):
        with pytest.raises(InvalidRequest):
            build()
    assert OrdersByAccount(phone="+16135550135").sort == DEFAULT_ORDER_SORT


def test_orders_by_account_lower_cases_the_email_whoever_builds_it() -> None:
    """The one place an email is normalised: a hand-built query means (and is cached as) the codec's."""
    built = OrdersByAccount(email=" Bob.Norman@Hostmail.com ")
    assert built.email == "bob.norman@hostmail.com"
    assert built == V1.parse(jc("orders", {"user_account": "BOB.norman@hostmail.COM"}))
    with pytest.raises(InvalidRequest):
        OrdersByAccount(email="   ")


def test_a_recorded_corpus_parses_exactly_as_recorded() -> None:
    """3,000 generated bodies (tests/codec_corpus.py) against what each parsed to, or the error message it got, when
    the corpus was recorded: the parameter checks may change form, never an outcome or a message."""
    import pathlib

    from tests.codec_corpus import cases, outcome

    recorded = json.loads((pathlib.Path(__file__).parent / "data" / "codec_parse_outcomes.json").read_text("utf-8"))
    now = [outcome(dialect, body) for dialect, body in cases()]
    assert len(now) == len(recorded)
    assert [(i, o) for i, o in enumerate(now) if o != recorded[i]] == []
