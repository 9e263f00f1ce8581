"""The hostile-input suite (issue 21): generated requests at every entrance of the gateway, over real sockets.

Over all of it, nothing answers 5xx, no request ends in the error middleware's "unhandled" path, and nothing reaches
the log as a traceback. The gateway runs as `gateway serve` runs it (`gateway.server.start_site`, the log filter of
`gateway.logs`), in front of the local store, with the console on and a signed-in operator session that the
console entrances may use.

Each entrance is one `Entrance(name, strategy)` line in `ENTRANCES`; its strategy draws `Probe`s (method, path,
headers, body). `raw_probes(method, paths)` draws arbitrary headers and bodies at any path, so a new route is one line:

    Entrance("shop install", raw_probes("GET", st.just("/install"), query=True)),
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import urllib.parse
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import signing
from gateway.logs import MalformedRequestFilter, install_malformed_request_filter
from gateway.ops import get_metrics
from gateway.settings import Settings, parse_settings
from gateway.shops.setup import SHOP_LIFECYCLE
from gateway.shops.store import TokenSet
from localstore.oauth import signed_query
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
from tests.fixtures_shops import TOKEN_KEY
from tests.live_gateway import LiveGateway
from tests.test_query_fuzz import json_leaf, json_value, methods, pagination, params

CONSOLE_TOKEN = "hostile-suite-console-token"
APP_CLIENT_ID = "hostile-suite-app"
APP_CLIENT_SECRET = "hostile-suite-app-client-secret"
INSTALLED_DOMAIN = "connected-shop.myshopify.com"
INSTALLED_KEY = "connected-shop"
SESSION_COOKIE = "console_session"


@dataclass
class Probe:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    #: a console form: the harness adds the signed-in session's cookie and (unless `csrf` is given) its CSRF token
    form: dict[str, str] | None = None
    signed_in: bool = False


# --- strategies of each entrance -----------------------------------------------------------------------------------

printable = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
any_text = st.text(max_size=40)  # control characters, NUL, RTL marks, astral planes
path_text = st.one_of(printable, any_text, st.sampled_from(["1001", "#1001", "..", "%00", "a b", "1001%0A"]))


def quoted(text: str) -> str:
    return urllib.parse.quote(text, safe="") or "x"


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["json", "bytes", "deep", "gzip-garbage", "empty"]))
    if kind == "json":
        return json.dumps(draw(json_value)).encode()
    if kind == "deep":
        depth = draw(st.integers(100, 5000))
        return b"[" * depth + b"]" * depth
    if kind == "empty":
        return b""
    return draw(st.binary(max_size=300))


@st.composite
def hostile_headers(draw: st.DrawFn) -> dict[str, str]:
    headers = {"Content-Type": draw(st.sampled_from(["application/json", "text/plain", "x/y",
                                                     "application/x-www-form-urlencoded", "multipart/form-data"]))}
    if draw(st.booleans()):
        headers["Content-Encoding"] = draw(st.sampled_from(["gzip", "deflate", "identity", "zstd", "x"]))
    if draw(st.booleans()):
        headers[draw(st.sampled_from(["X-Request-Id", "Accept", "Cookie", "X-Forwarded-Proto"]))] = draw(printable)
    return headers


@st.composite
def bot_probes(draw: st.DrawFn, shop: str) -> Probe:
    kind = draw(st.sampled_from(["envelope", "envelope", "envelope", "other"]))
    if kind == "envelope":
        body: dict[str, Any] = {"method": draw(methods), "params": draw(params)}
        if shop == "mb":
            body = {"request": {"category": "ecommerce", "method": body.pop("method"), "id": "x"}, **body}
        page = draw(pagination)
        if page is not None:
            body["pagination"] = page
        raw = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
    else:
        raw, headers = draw(bodies()), draw(hostile_headers())
    if headers.get("Content-Encoding") in ("gzip", "deflate") and draw(st.booleans()):
        raw = zlib.compress(raw)  # sometimes a real compressed body
    if draw(st.sampled_from([True, True, False])):
        headers.update(sign_for(shop, raw))
    return Probe("POST", f"/bot/{shop}", headers, raw)


@st.composite
def openapi_probes(draw: st.DrawFn) -> Probe:
    inner = draw(st.one_of(st.just(None), json_value))
    body = draw(st.one_of(
        st.just(openapi_body()),
        st.just(json.dumps({"payload": base64.b64encode(json.dumps(inner).encode()).decode()}).encode()),
        st.builds(lambda v: json.dumps({"payload": v}).encode(), json_leaf),
        bodies(),
    ))  # fmt: skip
    headers = {"Appid": draw(st.sampled_from([APP_ID, "", "x" * 300])), "AppSecret": draw(st.sampled_from(
        [APP_SECRET, APP_SECRET, "", "wrong"])), **draw(hostile_headers())}  # fmt: skip
    return Probe("POST", f"/api/openapi/v1/orders/{quoted(draw(path_text))}", headers, body)


WEBHOOK_TOPICS = ["orders/create", "orders/paid", "orders/updated", "orders/cancelled", "fulfillments/create",
                  "fulfillments/update", "fulfillment_events/create", "products/update", "customers/data_request"]


@st.composite
def webhook_probes(draw: st.DrawFn) -> Probe:
    fields = st.sampled_from(["id", "admin_graphql_api_id", "name", "order_id", "fulfillment_id", "email", "phone",
                              "financial_status", "fulfillments", "line_items", "note_attributes", "updated_at",
                              "cancelled_at", "status", "customer", "shop_domain", "orders_to_redact", "extra"])
    body = json.dumps(draw(st.dictionaries(fields, json_value, max_size=5)))
    raw = draw(st.one_of(st.just(body.encode()), bodies()))
    topic = draw(st.one_of(st.sampled_from(WEBHOOK_TOPICS), printable))
    headers = {"X-Shopify-Topic": topic, "X-Shopify-Shop-Domain": draw(st.sampled_from(
        [DEFAULT_DOMAINS["jc1"], "other.myshopify.com", ""])), "X-Shopify-Event-Id": draw(printable),
        **draw(hostile_headers())}  # fmt: skip
    if draw(st.sampled_from([True, True, False])):
        headers[signing.SHOPIFY_HEADER] = signing.sign_base64(SANDBOX_CLIENT_SECRET, raw)
    return Probe("POST", "/webhooks/shopify", headers, raw)


form_value = st.one_of(printable, any_text, st.sampled_from(["1001", "#1001", "a b", "demo", "jc1", "psid", "email",
                                                             "phone", "+16135550135", "x@y.z", "/console"]))


@st.composite
def console_probes(draw: st.DrawFn) -> Probe:
    where = draw(st.sampled_from(["login", "preview", "test-push", "pushes", "retry", "repair", "logout"]))
    fields = draw(st.dictionaries(st.sampled_from(["shop", "order", "kind", "recipient", "back", "next", "token",
                                                   "status", "topic"]), form_value, max_size=4))
    if where == "login":
        if draw(st.booleans()):
            fields["csrf"] = draw(printable)
        return Probe("POST", "/console/login", {}, form=fields)
    if where in ("preview", "pushes"):
        query = urllib.parse.urlencode(fields)
        return Probe("GET", f"/console/{where}?{query}", signed_in=draw(st.sampled_from([True, True, False])))
    path = {"test-push": "/console/preview/test-push", "retry": f"/console/pushes/{draw(st.integers(0, 10**18))}/retry",
            "repair": f"/console/shops/{quoted(draw(path_text))}/repair", "logout": "/console/logout"}[where]
    if draw(st.booleans()):
        fields["csrf"] = draw(printable)  # a forged token instead of the session's
    return Probe("POST", path, {}, form=fields, signed_in=where != "logout" or draw(st.booleans()))


shop_domains = st.one_of(st.sampled_from(["shop4.myshopify.com", "SHOP4.MyShopify.com", INSTALLED_DOMAIN,
                                          "shop4.myshopify.com.evil.example", "evil.example/x.myshopify.com",
                                          "-x.myshopify.com", ""]), printable, any_text)  # fmt: skip
timestamps = st.one_of(st.integers(-(2**63), 2**63).map(str), st.just("now"), printable)


@st.composite
def install_probes(draw: st.DrawFn, path: str) -> Probe:
    """Shopify's install request (`/shopify/install`) or its redirect back (`/shopify/callback`): any parameters,
    repeated or not, sometimes signed with the app's secret as Shopify signs them, with any install cookie."""
    names = ["shop", "timestamp", "host", "hmac", "signature", "code", "state", "ids[]", "embedded"]
    params: list[tuple[str, str]] = []
    for name in draw(st.lists(st.sampled_from(names), max_size=8)):
        value = {"shop": shop_domains, "timestamp": timestamps}.get(name, st.one_of(printable, any_text))
        params.append((name, draw(value)))
    if draw(st.booleans()):  # signed as Shopify signs: the gateway must still check time, shop, state and code
        unique = dict(params)
        if draw(st.booleans()):
            unique["timestamp"] = "{now}"  # replaced by the harness with the time it sends at
        params = list(signed_query(unique, APP_CLIENT_SECRET).items())
    headers = dict(draw(hostile_headers()))
    if draw(st.booleans()):
        headers["Cookie"] = f"shopify_install={quoted(draw(st.one_of(printable, any_text)))}"
    return Probe("GET", f"{path}?{urllib.parse.urlencode(params)}", headers)


@st.composite
def shop_page_probes(draw: st.DrawFn) -> Probe:
    """The console's shop pages: connect, a shop's page, its settings, secrets, pause, resume, remove."""
    key = draw(st.one_of(st.sampled_from([INSTALLED_KEY, "jc1", "nope"]), printable.map(quoted)))
    action = draw(st.sampled_from(["page", "connect", "settings", "secrets", "retire", "pause", "resume", "remove"]))
    if action == "page":
        return Probe("GET", f"/console/shops/{key}", signed_in=draw(st.sampled_from([True, True, False])))
    fields = draw(st.dictionaries(st.sampled_from(["domain", "dialect", "api_version", "deadline_seconds", "push_url",
                                                   "page_id", "push_secret", "push_enabled", "confirm"]),
                                  st.one_of(form_value, shop_domains, st.sampled_from(
                                      ["joinchat-2", "meetbot", "2026-10", "1e309", "nan", "-1", "on"])),
                                  max_size=6))  # fmt: skip
    path = {"connect": "/console/connect", "retire": f"/console/shops/{key}/"
            f"{draw(st.sampled_from(['secrets', 'push-secrets']))}/{draw(st.text('0123456789abcdef', min_size=8, max_size=8))}/retire"
            }.get(action, f"/console/shops/{key}/{action}")  # fmt: skip
    if draw(st.booleans()):
        fields["csrf"] = draw(printable)
    return Probe("POST", path, {}, form=fields, signed_in=draw(st.sampled_from([True, True, False])))


@st.composite
def raw_probes(draw: st.DrawFn, method: str, paths: st.SearchStrategy[str], query: bool = False) -> Probe:
    """Arbitrary headers and body at one of `paths` (with a random query string when `query`)."""
    path = draw(paths)
    if query:
        path += "?" + urllib.parse.urlencode(draw(st.dictionaries(printable, form_value, max_size=4)))
    return Probe(method, path, draw(hostile_headers()), draw(bodies()))


@dataclass(frozen=True)
class Entrance:
    name: str
    probes: st.SearchStrategy[Probe]


ENTRANCES = [
    Entrance("joinchat v1", bot_probes("jc1")),
    Entrance("joinchat v2", bot_probes("jc2")),
    Entrance("meetbot", bot_probes("mb")),
    Entrance("open API", openapi_probes()),
    Entrance("webhooks", webhook_probes()),
    Entrance("console", console_probes()),
    Entrance("shopify install", install_probes("/shopify/install")),
    Entrance("shopify callback", install_probes("/shopify/callback")),
    Entrance("console shop pages", shop_page_probes()),
    Entrance("any path", raw_probes("POST", st.builds(lambda t: "/" + quoted(t), path_text), query=True)),
]


# --- the gateway, served as `gateway serve` serves it ---------------------------------------------------------------


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def hostile_settings(store_url: str) -> Settings:
    raw = query_settings(store_url, shop_overrides={k: {"deadline_seconds": 30} for k in DEFAULT_DOMAINS}).model_dump(
        mode="json")
    secrets = {"jc1": ["jc1-current-secret", "jc1-previous-secret"], "jc2": ["jc2-bot-secret"], "mb": ["mb-bot-secret"]}
    for key, shop in raw["shops"].items():  # model_dump hides secrets: give them back
        shop["secrets"] = secrets[key]
        shop["webhook_secret"] = SANDBOX_CLIENT_SECRET
        shop["auth"]["access_token"] = TOKENS[key]
    raw["shops"]["jc1"]["openapi"]["app_secret"] = APP_SECRET
    raw["console"] = {"token": CONSOLE_TOKEN}
    raw["app"] = {"client_id": APP_CLIENT_ID, "client_secret": APP_CLIENT_SECRET, "token_key": TOKEN_KEY,
                  "admin_api_base": store_url}  # the install routes and the console's shop pages (app mode)
    return parse_settings(raw, env={})


class HostileGateway(LiveGateway):
    """The local store and the gateway in a thread with their own event loop; probes are plain HTTP from the test."""

    def __init__(self) -> None:
        self.records = Records()
        super().__init__(hostile_settings)
        self.session, self.csrf = self._sign_in()

    async def started(self) -> None:
        # one shop connected from the browser, for the console's shop pages (its token is never used)
        now = time.time()
        await self.app[SHOP_LIFECYCLE].install(INSTALLED_DOMAIN, TokenSet("shpat_hostile", "read_orders", now,
                                                                          now + 3600, "shprt_hostile", now + 86400))

    def send(self, probe: Probe) -> tuple[int, bytes, list[tuple[str, str]]]:
        headers = dict(probe.headers)
        body = probe.body
        if "%7Bnow%7D" in probe.path:  # a signed install request, signed for "now": re-signed for this moment
            query = dict(urllib.parse.parse_qsl(probe.path.split("?", 1)[1], keep_blank_values=True))
            query["timestamp"] = str(int(time.time()))
            path = probe.path.split("?", 1)[0] + "?" + urllib.parse.urlencode(signed_query(query, APP_CLIENT_SECRET))
            probe = Probe(probe.method, path, probe.headers, probe.body, probe.form, probe.signed_in)
        if probe.signed_in:
            headers["Cookie"] = f"{SESSION_COOKIE}={self.session}"
        if probe.form is not None:
            form = dict(probe.form)
            if probe.signed_in:
                form.setdefault("csrf", self.csrf)
            body = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        return self.request(probe.method, probe.path, body, headers)

    def _sign_in(self) -> tuple[str, str]:
        """An operator's session, through the login form."""
        status, html, headers = self.send(Probe("GET", "/console/login"))
        assert status == 200
        login_cookie = _cookie(headers, "console_login")
        csrf = html.decode().split('name="csrf" value="', 1)[1].split('"', 1)[0]
        body = urllib.parse.urlencode({"csrf": csrf, "token": CONSOLE_TOKEN}).encode()
        status, _, headers = self.send(Probe("POST", "/console/login", {
            "Cookie": login_cookie, "Content-Type": "application/x-www-form-urlencoded"}, body))  # fmt: skip
        assert status == 303, status
        self.session = _cookie(headers, SESSION_COOKIE).split("=", 1)[1]
        _, html, _ = self.send(Probe("GET", "/console/preview", signed_in=True))
        return self.session, html.decode().split('name="csrf" value="', 1)[1].split('"', 1)[0]


def _cookie(headers: list[tuple[str, str]], name: str) -> str:
    return next(v.split(";", 1)[0] for k, v in headers if k.lower() == "set-cookie" and v.startswith(name + "="))


@pytest.fixture(scope="module")
def live() -> Iterator[HostileGateway]:
    root = logging.getLogger()
    records = Records()
    root.addHandler(records)
    level = root.level
    root.setLevel(logging.DEBUG)
    install_malformed_request_filter(MalformedRequestFilter())  # as `gateway serve`'s configure_logging does
    gw = HostileGateway()
    gw.records = records
    try:
        yield gw
    finally:
        gw.stop()
        root.removeHandler(records)
        root.setLevel(level)


@pytest.mark.parametrize("entrance", ENTRANCES, ids=lambda e: e.name)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(data=st.data())
def test_no_entrance_answers_5xx_or_logs_a_traceback(live: HostileGateway, entrance: Entrance, data: st.DataObject) -> None:
    probe = data.draw(entrance.probes)
    before = len(live.records.records)
    status, raw, _ = live.send(probe)
    assert status < 500, (entrance.name, probe, status, raw[:300])
    new = live.records.records[before:]
    tracebacks = [r for r in new if r.exc_info or r.stack_info]
    assert not tracebacks, [(r.name, r.getMessage()) for r in tracebacks]
    assert get_metrics(live.app).total("gateway_unhandled_errors_total") == 0


def test_nothing_in_the_background_logged_a_traceback_either(live: HostileGateway) -> None:
    """After the probes: the stored webhooks processed, and not one traceback in the whole log."""
    from gateway.push.store import PUSH_STORE
    from tests.fixtures_push import wait_until_settled

    asyncio.run_coroutine_threadsafe(wait_until_settled(live.app[PUSH_STORE], within=60), live.loop).result(90)
    tracebacks = [r for r in live.records.records if r.exc_info or r.stack_info]
    assert not tracebacks, [(r.name, r.getMessage()) for r in tracebacks]
