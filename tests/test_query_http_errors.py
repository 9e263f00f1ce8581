"""The HTTP side of the query flow without Shopify: `test`, signatures, sizes, malformed input, routing errors.

Every reply is checked for the caller's dialect shape and the documented status (PROTOCOL §2–§4, §10).
"""

from __future__ import annotations

import json
import time

import pytest

from gateway import signing
from tests.fixtures_query import (
    APP_ID,
    APP_SECRET,
    JC1_SECRETS,
    Platform,
    envelope,
    openapi_body,
)


def is_v1_error(body: object) -> bool:
    return isinstance(body, dict) and body.get("success") is False and isinstance(body["errors"]["message"], str)


def is_v2_error(body: object) -> bool:
    return isinstance(body, dict) and body.get("success") is False and isinstance(body["errors"], str)


def meetbot_code(body: object) -> int:
    assert isinstance(body, dict) and body.get("success") is False
    return int(body["error"]["code"])


async def test_seed_test_requests(offline_gateway: Platform) -> None:
    # seed 000
    r = await offline_gateway.ask("jc1", {"method": "test", "params": {"token": "T45RE"}})
    assert (r.status, r.json) == (200, {"success": True, "token": "T45RE"})
    assert r.headers["Content-Type"].startswith("application/json")
    # seed 001
    body = {
        "request": {
            "category": "ecommerce",
            "method": "test",
            "id": "test_12582312",
            "page_id": "231231232134111",
            "meta": "",
        },
        "params": {"test_token": "12345"},
    }
    r = await offline_gateway.ask("mb", body)
    assert (r.status, r.json) == (200, {"success": True, "object": "test", "test_token": "12345"})
    r = await offline_gateway.ask("jc2", {"method": "test", "params": {"token": "abc"}})
    assert r.json == {"success": True, "token": "abc"}


@pytest.mark.parametrize("form", ["default", "hex", "HEX", "base64"])
async def test_meetbot_signature_forms(offline_gateway: Platform, form: str) -> None:
    r = await offline_gateway.ask("mb", envelope("mb", "test", {"test_token": "t"}), form=form)
    assert r.status == 200 and r.json["test_token"] == "t"


async def test_rotation_accepts_every_listed_secret(offline_gateway: Platform) -> None:
    for secret in JC1_SECRETS:
        r = await offline_gateway.ask("jc1", envelope("jc1", "test", {"token": "x"}), secret=secret)
        assert r.status == 200
    r = await offline_gateway.ask("jc1", envelope("jc1", "test", {"token": "x"}), secret="retired-secret")
    assert r.status == 401 and is_v1_error(r.json)


async def test_bad_signatures_in_each_dialect(offline_gateway: Platform) -> None:
    body = json.dumps(envelope("jc1", "test", {"token": "x"})).encode()
    cases = [
        {},  # missing
        {signing.JOINCHAT_HEADER: ""},
        {signing.JOINCHAT_HEADER: "not base64 !!"},
        {signing.JOINCHAT_HEADER: signing.sign_base64(JC1_SECRETS[0], body + b" ")},
        {signing.MEETBOT_HEADER: signing.sign_hub(JC1_SECRETS[0], body)},  # right secret, wrong header
    ]
    for headers in cases:
        r = await offline_gateway.post("/bot/jc1", body, headers)
        assert r.status == 401 and is_v1_error(r.json), headers
    r = await offline_gateway.post("/bot/jc2", body, {signing.JOINCHAT_HEADER: "AAAA"})
    assert r.status == 401 and is_v2_error(r.json)
    mb_body = json.dumps(envelope("mb", "test")).encode()
    r = await offline_gateway.post("/bot/mb", mb_body, {signing.MEETBOT_HEADER: "sha256=" + "0" * 64})
    assert r.status == 401 and meetbot_code(r.json) == 19003
    # The signature covers the raw bytes: re-serialising the same JSON differently breaks it.
    sig = signing.sign_base64(JC1_SECRETS[0], body)
    r = await offline_gateway.post(
        "/bot/jc1", json.dumps(json.loads(body), indent=1).encode(), {signing.JOINCHAT_HEADER: sig}
    )
    assert r.status == 401


async def test_unknown_shop_is_404_joinchat_shaped(offline_gateway: Platform) -> None:
    r = await offline_gateway.post("/bot/nope", b"{}", {})
    assert r.status == 404 and is_v1_error(r.json)


async def test_too_large_is_413_before_signature(offline_gateway: Platform) -> None:
    big = b'{"method":"test","params":{"token":"' + b"x" * (70 * 1024) + b'"}}'
    r = await offline_gateway.ask("jc1", big)
    assert r.status == 413 and is_v1_error(r.json)
    r = await offline_gateway.ask("mb", big)
    assert r.status == 413 and meetbot_code(r.json) == 19001
    # 10 MB: refused on Content-Length, never buffered.
    r = await offline_gateway.post("/bot/jc2", b"{" + b" " * (10 * 1024 * 1024) + b"}", {})
    assert r.status == 413 and is_v2_error(r.json)


async def test_too_large_chunked(offline_gateway: Platform) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(80):
            yield b" " * 1024

    async with offline_gateway.client.post("/bot/jc1", data=chunks()) as resp:
        assert resp.status == 413
        assert is_v1_error(await resp.json())


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"not json", b"[1,2", b"\xff\xfe", b"null", b"[]", b'"orders"', b"1e999999", b"[" * 50_000],
)
async def test_malformed_bodies_are_400(offline_gateway: Platform, raw: bytes) -> None:
    r = await offline_gateway.ask("jc1", raw)
    assert r.status == 400 and is_v1_error(r.json)
    r = await offline_gateway.ask("mb", raw)
    assert r.status == 400 and meetbot_code(r.json) == 19001


async def test_invalid_queries_in_each_dialect(offline_gateway: Platform) -> None:
    invalid = [
        {"order_number": "1001", "user_account": "a@b.com"},
        {},
        {"user_account": "a@b.com OR status:any"},
        {"user_account": "x@y.com", "filter": "weird"},
    ]
    for params in invalid:
        r = await offline_gateway.query("jc1", "orders", params)
        assert r.status == 400 and is_v1_error(r.json)
        r = await offline_gateway.query("jc2", "orders", params)
        assert r.status == 400 and is_v2_error(r.json)
        r = await offline_gateway.query("mb", "orders", params)
        assert r.status == 400 and meetbot_code(r.json) == 19001
    for pagination in ({"page": -1}, {"page": 0}, {"limit": 0}, {"page": "two"}):
        r = await offline_gateway.query("jc1", "orders", {"order_number": "1001"}, pagination)
        assert r.status == 400 and is_v1_error(r.json)


async def test_unsupported_method(offline_gateway: Platform) -> None:
    r = await offline_gateway.query("jc1", "refunds")
    assert r.status == 400 and r.json["errors"]["message"] == "unsupported method: refunds"
    r = await offline_gateway.query("mb", "refunds")
    assert r.status == 400 and meetbot_code(r.json) == 19002


async def test_store_down_and_nothing_cached_is_503(offline_gateway: Platform) -> None:
    r = await offline_gateway.query("jc1", "orders", {"order_number": "1001"})
    assert r.status == 503 and is_v1_error(r.json)
    r = await offline_gateway.query("mb", "orders", {"order_number": "1001"})
    assert r.status == 503 and meetbot_code(r.json) == 19500
    r = await offline_gateway.openapi("1001")
    assert r.status == 503 and r.json == {"code": 50300, "message": r.json["message"], "data": {}}


async def test_wrong_http_method_and_unknown_paths(offline_gateway: Platform) -> None:
    async with offline_gateway.client.get("/bot/jc1") as resp:
        assert resp.status == 405 and is_v1_error(await resp.json())
    async with offline_gateway.client.get("/bot/mb") as resp:
        assert resp.status == 405 and meetbot_code(await resp.json()) == 19001
    async with offline_gateway.client.post("/bot/jc1/extra") as resp:
        assert resp.status == 404 and is_v1_error(await resp.json())
    async with offline_gateway.client.get("/api/openapi/v1/orders/1") as resp:
        assert resp.status == 405 and (await resp.json())["code"] == 40002
    async with offline_gateway.client.post("/api/openapi/v1/nothing") as resp:
        assert resp.status == 404 and (await resp.json())["code"] == 40400
    async with offline_gateway.client.get("/no/such/path") as resp:
        assert resp.status == 404 and await resp.json() == {"error": "not found"}


async def test_openapi_auth_and_payload_errors(offline_gateway: Platform) -> None:
    r = await offline_gateway.openapi("1001", app_secret="wrong")
    assert (r.status, r.json["code"], r.json["data"]) == (401, 40001, {})
    r = await offline_gateway.openapi("1001", app_id="unknown")
    assert (r.status, r.json["code"]) == (401, 40001)
    r = await offline_gateway.post("/api/openapi/v1/orders/1001", openapi_body(), {"Appid": APP_ID})
    assert (r.status, r.json["code"]) == (401, 40001)
    for body in (b"{", b'{"payload": 3}', b'{"payload": "***"}', openapi_body(machine_no="123"), b"[]"):
        r = await offline_gateway.openapi("1001", body)
        assert (r.status, r.json["code"]) == (400, 40002), body
    r = await offline_gateway.openapi("1001", openapi_body(timestamp=int(time.time()) - 3600))
    assert (r.status, r.json["code"]) == (401, 40003)
    r = await offline_gateway.openapi("1001", openapi_body(machine_no="99999999"))
    assert (r.status, r.json["code"]) == (403, 40004)
    r = await offline_gateway.openapi("1001", b"{" + b" " * (70 * 1024) + b"}")
    assert (r.status, r.json["code"]) == (413, 40002)
    headers = {"Appid": APP_ID, "AppSecret": APP_SECRET}
    r = await offline_gateway.post("/api/openapi/v1/orders/1%20OR%202", openapi_body(), headers)
    assert (r.status, r.json["code"]) == (400, 40002)


async def test_unexpected_exception_is_500_in_dialect_without_pii(aiohttp_client, caplog) -> None:  # type: ignore[no-untyped-def]
    from aiohttp import web

    from gateway.app import create_app
    from tests.fixtures_query import query_settings

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("secret shopper bob@example.com")

    app = create_app(query_settings())
    app.router.add_post("/bot/mb/boom", boom)
    app.router.add_post("/webhooks/boom", boom)
    client = await aiohttp_client(app)
    async with client.post("/bot/mb/boom", headers={"X-Request-Id": "req-42"}) as resp:
        assert resp.status == 500 and resp.headers["X-Request-Id"] == "req-42"
        assert await resp.json() == {"success": False, "error": {"code": 19500, "message": "internal error"}}
    async with client.post("/webhooks/boom") as resp:
        assert resp.status == 500 and await resp.json() == {"error": "internal error"}
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "req-42" in logged and "RuntimeError" in logged and "bob@example.com" not in logged
