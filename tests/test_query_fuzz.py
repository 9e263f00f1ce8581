"""Property test: random bodies and headers at every query endpoint never produce a 5xx (other than a deliberate 503)
and always get a well-formed reply in the endpoint's dialect.

The gateway and the local store run in a background thread with their own event loop (real sockets); hypothesis drives
plain HTTP requests at them, most of them correctly signed so they reach the codecs and the lookups.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures_query import (
    APP_ID,
    APP_SECRET,
    openapi_body,
    query_settings,
    sign_for,
)
from tests.live_gateway import LiveGateway


class FuzzGateway(LiveGateway):
    """The local store and the gateway with the query tests' settings, served from a thread."""

    def __init__(self) -> None:
        super().__init__(query_settings, ready_within=30)

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        status, raw, _ = self.request("POST", path, body, headers)
        return status, raw


@pytest.fixture(scope="module")
def live() -> Iterator[FuzzGateway]:
    gw = FuzzGateway()
    try:
        yield gw
    finally:
        gw.stop()


ALLOWED = {200, 400, 401, 403, 404, 405, 413, 503}

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**20), max_value=10**20), st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(["1001", "#1001", "1001.1", "bob.norman@mail.example.com", "+16136120707", "a@b.com OR status:any",
                     "*", '"', "\\", "()", "open", "past", "created_at,desc", "title,asc", "vendor", "product_type"]),
)
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=8), inner, max_size=3), max_leaves=8)
param_keys = st.sampled_from(["order_number", "user_account", "filter", "order_type", "package_number", "title",
                              "product_type", "vendor", "search_type", "token", "test_token", "extra"])
params = st.dictionaries(param_keys, json_leaf, max_size=4)
methods = st.one_of(st.sampled_from(["test", "orders", "packages", "products", "property"]), st.text(max_size=10),
                    json_leaf)
pagination = st.one_of(st.none(), json_value, st.fixed_dictionaries(
    {}, optional={"page": json_leaf, "limit": json_leaf}))


@st.composite
def bot_bodies(draw: st.DrawFn, shop: str) -> bytes:
    kind = draw(st.sampled_from(["envelope", "envelope", "envelope", "json", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(json_value)).encode()
    body: dict[str, Any]
    if shop == "mb":
        body = {"request": {"category": "ecommerce", "method": draw(methods), "id": "x"}}
    else:
        body = {"method": draw(methods)}
    body["params"] = draw(params)
    page = draw(pagination)
    if page is not None:
        body["pagination"] = page
    return json.dumps(body).encode()


def well_formed(shop: str, status: int, raw: bytes) -> None:
    assert status in ALLOWED, (status, raw[:200])
    reply = json.loads(raw)
    assert isinstance(reply, dict) and isinstance(reply.get("success"), bool), reply
    if reply["success"]:
        assert status == 200
        return
    if shop == "mb":
        assert isinstance(reply["error"]["code"], int) and isinstance(reply["error"]["message"], str)
    elif shop == "jc2":
        assert isinstance(reply["errors"], str)
    else:  # jc1 and unknown shops (joinchat v1 shape)
        assert isinstance(reply["errors"]["message"], str)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
def test_bot_endpoint_random_requests(live: FuzzGateway, data: st.DataObject) -> None:
    shop = data.draw(st.sampled_from(["jc1", "jc2", "mb", "nope"]))
    body = data.draw(bot_bodies("mb" if shop == "mb" else "jc1"))
    sign = data.draw(st.sampled_from(["good", "good", "good", "none", "junk"]))
    headers = {"Content-Type": data.draw(st.sampled_from(["application/json", "text/plain", "x/y"]))}
    if sign == "good" and shop != "nope":
        headers.update(sign_for(shop, body))
    elif sign == "junk":
        headers[data.draw(st.sampled_from(["X-Joinchat-Signature", "X-Hub-Signature"]))] = data.draw(
            st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=70))
    status, raw = live.post(f"/bot/{shop}", body, headers)
    well_formed(shop, status, raw)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(data=st.data())
def test_openapi_endpoint_random_requests(live: FuzzGateway, data: st.DataObject) -> None:
    order_id = data.draw(st.one_of(st.sampled_from(["1001", "1002", "450789469", "99999"]),
                                   st.text(alphabet="abc123#-._", min_size=1, max_size=12)))
    body = data.draw(st.one_of(st.just(openapi_body()), st.binary(max_size=100),
                               st.builds(lambda v: json.dumps({"payload": v}).encode(), json_leaf)))
    headers = {"Appid": data.draw(st.sampled_from([APP_ID, "other", ""])),
               "AppSecret": data.draw(st.sampled_from([APP_SECRET, "wrong", ""]))}
    status, raw = live.post(f"/api/openapi/v1/orders/{order_id}", body, headers)
    assert status in ALLOWED, (status, raw[:200])
    reply = json.loads(raw)
    assert isinstance(reply["code"], int) and isinstance(reply["message"], str) and isinstance(reply["data"], dict)
    assert (reply["code"] == 0) == (status == 200 and reply["message"] == "ok")
