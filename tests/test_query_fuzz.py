"""Property test: random bodies and headers at every query endpoint never produce a 5xx (other than a deliberate 503)
and always get a well-formed reply in the endpoint's dialect.

The gateway and the local store run in a background thread with their own event loop (real sockets); hypothesis drives
plain HTTP requests at them, most of them correctly signed so they reach the codecs and the lookups.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.app import create_app
from localstore import SandboxServer, SandboxShop
from tests.fixtures_query import (
    APP_ID,
    APP_SECRET,
    DEFAULT_DOMAINS,
    SANDBOX_CLIENT_SECRET,
    TOKENS,
    openapi_body,
    query_settings,
    sign_for,
)


class LiveGateway:
    """The local store and the gateway, served from a thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("live gateway did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self._ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        shops = [SandboxShop.seeded(domain=d, seed=42, orders=30, products=20, access_token=TOKENS[k],
                                    client_secret=SANDBOX_CLIENT_SECRET) for k, d in DEFAULT_DOMAINS.items()]
        self.store = SandboxServer(shops, host="127.0.0.1", port=0)
        await self.store.start()
        self.runner = web.AppRunner(create_app(query_settings(self.store.base_url)), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.store.stop()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def live() -> Iterator[LiveGateway]:
    gw = LiveGateway()
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
def test_bot_endpoint_random_requests(live: LiveGateway, data: st.DataObject) -> None:
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
def test_openapi_endpoint_random_requests(live: LiveGateway, data: st.DataObject) -> None:
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
