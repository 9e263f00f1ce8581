"""Fixtures of the push flow: push stores (SQLite, Redis), the bot-platform receiver, webhook senders and payloads."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web

from gateway import signing
from gateway.push.store import PushStore
from gateway.settings import Settings, parse_settings
from localstore.receiver import PushReceiver, ReceivedPush

if TYPE_CHECKING:
    from gateway.push.redis.store import RedisPushStore
    from gateway.shops.redis.store import RedisShopStore

SHOP_KEY = "demo"
SHOP_DOMAIN = "demo-shop.myshopify.com"
WEBHOOK_SECRET = "shpss_test_webhook_secret"
PUSH_SECRET = "push-secret-1"
PAGE_ID = "407898491811542"


# --- stores --------------------------------------------------------------------------------------------------------


def _redis_store(prefix: str) -> PushStore:
    """A Redis-backed store. A backend that cannot be imported (redis-py missing) skips the test, except in CI (CI
    set), where it fails: CI must run every backend."""
    try:
        from gateway.push.redis.store import RedisPushStore
    except ImportError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"the Redis backend cannot be imported ({exc}); with CI set this fails instead")
    return RedisPushStore("redis://127.0.0.1:6379/0", prefix=prefix)


async def open_redis_or_skip(store: Any) -> None:
    """Open a Redis-backed store; without a reachable Redis the test skips, except in CI (CI set), where it fails."""
    try:
        await store.open()
    except OSError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Redis reachable ({exc}); with CI set this fails instead")


async def purge_redis_prefix(store: RedisPushStore | RedisShopStore) -> int:
    """Delete every key under an opened Redis store's prefix (test and bench runs use a unique prefix each).
    Returns how many went."""
    pattern = "".join("\\" + c if c in "*?[]\\" else c for c in store.db.prefix) + ":*"
    deleted = 0
    batch: list[bytes] = []
    async for key in store.db.redis.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            deleted += await store.db.redis.unlink(*batch)
            batch.clear()
    if batch:
        deleted += await store.db.redis.unlink(*batch)
    return deleted


@pytest.fixture(params=["sqlite", "redis"])
async def push_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[PushStore]:
    """A fresh, opened store of each backend. Redis is skipped with a reason only when unreachable and CI is unset."""
    if request.param == "sqlite":
        from gateway.push.sqlite.store import SqlitePushStore

        store: PushStore = SqlitePushStore(tmp_path / "push.sqlite3")
    else:
        store = _redis_store(f"test-{os.getpid()}-{id(request)}")
        await open_redis_or_skip(store)
        try:
            yield store
        finally:
            await purge_redis_prefix(store)  # type: ignore[arg-type]
            await store.close()
        return
    await store.open()
    try:
        yield store
    finally:
        await store.close()


# --- the bot-platform receiver -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BotReceiver(PushReceiver):
    """The local bot platform of the tests: `gateway receiver`'s PushReceiver (verifies the push signature, records
    every request, fails on demand) plus a way to wait for what it got. `stop()` / `start()` close and reopen the
    listening socket (connections refused meanwhile)."""

    def __init__(self) -> None:
        super().__init__(secrets=[PUSH_SECRET], port=free_port())
        self._changed = asyncio.Event()

    def on_push(self, push: ReceivedPush) -> None:
        self._changed.set()

    async def wait_for(self, predicate: Callable[[BotReceiver], bool], within: float = 15.0) -> None:
        deadline = time.monotonic() + within
        while not predicate(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"receiver: condition not met in {within}s; got {len(self.received)} requests")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))
            except TimeoutError:
                pass


@pytest.fixture
async def bot_receiver() -> AsyncIterator[BotReceiver]:
    receiver = BotReceiver()
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


# --- a gateway configured for pushes ---------------------------------------------------------------------------------


def push_config(
    receiver_url: str,
    sqlite_path: str | Path,
    *,
    push: dict[str, Any] | None = None,
    shop: dict[str, Any] | None = None,
    server: dict[str, Any] | None = None,
    admin_api_base: str | None = None,
) -> dict[str, Any]:
    """A config dict with one shop (`demo`) pushing to the receiver. Short delays suit tests."""
    push_section = {
        "url": receiver_url,
        "secrets": [PUSH_SECRET],
        "page_id": PAGE_ID,
        "unpaid_delay_seconds": 0.3,
        "backoff_base_seconds": 0.05,
        "backoff_max_seconds": 0.2,
        "timeout_seconds": 2,
        **(push or {}),
    }
    shop_section: dict[str, Any] = {
        "domain": SHOP_DOMAIN,
        "auth": {"mode": "token", "access_token": "shpat_test"},
        "webhook_secret": WEBHOOK_SECRET,
        "secrets": ["query-secret"],
        "push": push_section,
        **(shop or {}),
    }
    if admin_api_base:
        shop_section["admin_api_base"] = admin_api_base
    return {
        "server": {"sync_webhooks_on_start": False, "reconcile_interval_seconds": 0, **(server or {})},
        "storage": {"backend": "sqlite", "sqlite_path": str(sqlite_path)},
        "shops": {SHOP_KEY: shop_section},
    }


def push_settings(receiver_url: str, sqlite_path: str | Path, **kw: Any) -> Settings:
    return parse_settings(push_config(receiver_url, sqlite_path, **kw), env={})


_event_ids = itertools.count(1)


def signed_webhook_headers(
    topic: str, body: bytes, *, event_id: str | None = None, secret: str = WEBHOOK_SECRET, domain: str = SHOP_DOMAIN
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": domain,
        "X-Shopify-Hmac-Sha256": signing.sign_base64(secret, body),
        "X-Shopify-Event-Id": event_id or f"evt-{os.getpid()}-{next(_event_ids)}",
        "X-Shopify-Webhook-Id": f"wh-{next(_event_ids)}",
        "X-Shopify-API-Version": "2026-10",
    }


async def post_webhook(
    session: aiohttp.ClientSession | Any,
    url: str,
    topic: str,
    payload: dict[str, Any] | bytes,
    **kw: Any,
) -> int:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    async with session.post(url, data=body, headers=signed_webhook_headers(topic, body, **kw)) as resp:
        await resp.read()
        return int(resp.status)


async def wait_until_settled(store: PushStore, within: float = 15.0) -> None:
    """Until no event is waiting for the rules and no push is pending."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        backlog = await store.outbox.backlog()
        if backlog["events"] == 0 and backlog["pushes"] == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("push pipeline did not settle")


# --- REST-shaped webhook payloads (shapes from Shopify's examples, ids as exact integers) ---------------------------


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(ts))


def rest_order(
    order_id: int,
    *,
    name: str | None = None,
    financial_status: str = "paid",
    email: str | None = "jon@example.com",
    phone: str | None = None,
    psid: str | None = None,
    updated_at: float | None = None,
    created_at: float | None = None,
    cancelled: bool = False,
    customer_id: int | None = 115310627314723954,
    fulfillments: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    created = created_at if created_at is not None else time.time() - 60
    updated = updated_at if updated_at is not None else created
    line = {
        "id": 487817672276298554,
        "title": "Aviator sunglasses",
        "name": "Aviator sunglasses - Gold",
        "variant_title": "Gold",
        "quantity": 2,
        "price": "89.99",
        "price_set": {
            "shop_money": {"amount": "89.99", "currency_code": "USD"},
            "presentment_money": {"amount": "89.99", "currency_code": "USD"},
        },
        "discount_allocations": [
            {
                "amount": "10.00",
                "amount_set": {
                    "shop_money": {"amount": "10.00", "currency_code": "USD"},
                    "presentment_money": {"amount": "10.00", "currency_code": "USD"},
                },
                "discount_application_index": 0,
            }
        ],
    }

    def money_set(amount: str) -> dict[str, Any]:
        return {
            "shop_money": {"amount": amount, "currency_code": "USD"},
            "presentment_money": {"amount": amount, "currency_code": "USD"},
        }

    return {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "name": name or f"#{order_id % 100000}",
        "email": email,
        "contact_email": email,
        "phone": phone,
        "created_at": iso(created),
        "updated_at": iso(updated),
        "cancelled_at": iso(updated) if cancelled else None,
        "financial_status": financial_status,
        "currency": "USD",
        "presentment_currency": "USD",
        "order_status_url": f"https://{SHOP_DOMAIN}/orders/{order_id}/authenticate?key=abc",
        "payment_gateway_names": ["bogus"],
        "note_attributes": [{"name": "joinchat_psid", "value": psid}] if psid else [],
        "subtotal_price": "169.98",
        "subtotal_price_set": money_set("169.98"),
        "total_shipping_price_set": money_set("10.00"),
        "total_tax_set": money_set("0.00"),
        "total_price_set": money_set("179.98"),
        "discount_applications": [{"type": "discount_code", "code": "SAVE10", "value": "10.0"}],
        "line_items": [line],
        "shipping_lines": [],
        "shipping_address": {
            "name": "Steve Shipper",
            "address1": "123 Shipping Street",
            "address2": None,
            "city": "Shippington",
            "zip": "40003",
            "province_code": "KY",
            "country_code": "US",
            "phone": "555-555-SHIP",
        },
        "billing_address": {"name": "Steve Shipper"},
        "customer": {"id": customer_id, "email": email, "first_name": "Steve", "last_name": "Shipper"}
        if customer_id
        else None,
        # an order's fulfillments carry neither the shopper's email nor the destination (fulfillments/* bodies do)
        "fulfillments": [{k: v for k, v in f.items() if k not in ("email", "destination")} for f in fulfillments or []],
    }


def rest_fulfillment(
    fulfillment_id: int,
    order_id: int,
    *,
    name: str = "#1001.1",
    shipment_status: str | None = None,
    status: str = "success",
    updated_at: float | None = None,
    tracking_number: str = "1Z827WK74630",
) -> dict[str, Any]:
    return {
        "id": fulfillment_id,
        "order_id": order_id,
        "status": status,
        "shipment_status": shipment_status,
        "created_at": iso(updated_at or time.time()),
        "updated_at": iso(updated_at or time.time()),
        "tracking_company": "UPS",
        "tracking_number": tracking_number,
        "tracking_numbers": [tracking_number] if tracking_number else [],
        "tracking_url": f"https://www.ups.com/track?num={tracking_number}",
        "tracking_urls": [f"https://www.ups.com/track?num={tracking_number}"],
        "name": name,
        "email": "jon@example.com",
        "destination": {"name": "Steve Shipper", "phone": "555-555-SHIP"},
        "line_items": [],
    }


def rest_fulfillment_event(
    fulfillment_id: int, order_id: int, status: str, *, happened_at: float | None = None, event_id: int = 1
) -> dict[str, Any]:
    return {
        "id": event_id,
        "fulfillment_id": fulfillment_id,
        "order_id": order_id,
        "status": status,
        "happened_at": iso(happened_at or time.time()),
        "created_at": iso(happened_at or time.time()),
    }


SHOPIFY_TOKEN = "shpat_test"  # the access token push_config gives the shop


def push_shop() -> Any:
    """The local store behind `demo` (demo-shop.myshopify.com): products to order, a few seeded orders."""
    from localstore import SandboxShop

    return SandboxShop.seeded(domain=SHOP_DOMAIN, seed=7, orders=0, products=12, access_token=SHOPIFY_TOKEN)


@pytest.fixture
async def push_sandbox() -> AsyncIterator[Any]:
    """A started local store serving `push_shop()`; it sends no webhooks (nothing subscribes): tests post their own."""
    from localstore import SandboxServer

    server = SandboxServer([push_shop()], host="127.0.0.1", port=0, webhook_retry_schedule=None)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@dataclass
class PushGateway:
    """A running gateway app (real socket) wired to the receiver, its shop `demo` served by the local store."""

    client: Any  # aiohttp.test_utils.TestClient
    app: web.Application
    shopify: Any  # the SandboxShop behind `demo`

    @property
    def store(self) -> PushStore:
        from gateway.push.store import PUSH_STORE

        return self.app[PUSH_STORE]

    async def webhook(self, topic: str, payload: dict[str, Any] | bytes, *, mirror: bool = True, **kw: Any) -> int:
        """Post a signed webhook. `mirror`: first make the local store hold what the payload describes (as Shopify
        holds the order it sends a webhook about; see tests.store_mirror)."""
        if mirror and isinstance(payload, dict):
            from tests.store_mirror import mirror_webhook

            mirror_webhook(self.shopify, topic, payload)
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        resp = await self.client.post("/webhooks/shopify", data=body, headers=signed_webhook_headers(topic, body, **kw))
        await resp.read()
        return int(resp.status)


@pytest.fixture
async def make_push_gateway(
    aiohttp_client: Any, bot_receiver: BotReceiver, push_sandbox: Any, tmp_path: Path
) -> Callable[..., Any]:
    """`await make_push_gateway(push={...}, shop={...}, sqlite_path=...)` → a PushGateway pushing to `bot_receiver`,
    reading from `push_sandbox` (its SQLite store a new file unless `sqlite_path` names one)."""
    from gateway.app import create_app

    async def make(sqlite_path: Path | None = None, **kw: Any) -> PushGateway:
        kw.setdefault("admin_api_base", push_sandbox.base_url)
        settings = push_settings(bot_receiver.url, sqlite_path or tmp_path / f"push-{next(_event_ids)}.sqlite3", **kw)
        app = create_app(settings)
        client = await aiohttp_client(app)
        return PushGateway(client, app, push_sandbox.shop(SHOP_DOMAIN))

    return make


async def eventually(check: Callable[[], Any], within: float = 10.0, what: str = "condition") -> None:
    """Poll `check()` (sync or async) until it is true; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {within}s")
        await asyncio.sleep(0.02)


# --- the gateway wired to the local Shopify store (sandbox) ----------------------------------------------------------

QUERY_SECRET = "query-secret"  # the `secrets` push_config gives the shop: what a bot platform signs queries with


@dataclass
class SandboxGateway:
    """A running gateway app (real socket on `port`) whose shop `demo` is the sandbox's demo.myshopify.com; the
    sandbox's webhook subscriptions point at it. `config` is the raw config (write it out for CLI commands)."""

    client: Any  # aiohttp.test_utils.TestClient
    app: web.Application
    config: dict[str, Any]
    port: int

    @property
    def store(self) -> PushStore:
        from gateway.push.store import PUSH_STORE

        return self.app[PUSH_STORE]


@pytest.fixture
async def sandbox_gateway(aiohttp_client: Any, sandbox: Any, bot_receiver: BotReceiver, tmp_path: Path) -> Any:
    """`await sandbox_gateway(push=..., server=..., shop=...)` → SandboxGateway: the gateway (SQLite store) in front of
    the `sandbox` fixture's store, pushing to `bot_receiver`, subscribed by its own start-up sync."""
    from gateway.app import create_app
    from gateway.push.subscriptions import TOPICS
    from tests.fixtures_sandbox import SANDBOX_CLIENT_SECRET, SANDBOX_DOMAIN, SANDBOX_TOKEN

    async def make(
        push: dict[str, Any] | None = None,
        server: dict[str, Any] | None = None,
        shop: dict[str, Any] | None = None,
        sqlite_path: Path | None = None,
    ) -> SandboxGateway:
        port = free_port()
        raw = push_config(
            bot_receiver.url,
            sqlite_path or tmp_path / f"gw-{port}.sqlite3",
            push=push,
            admin_api_base=sandbox.base_url,
            shop={
                "domain": SANDBOX_DOMAIN,
                "auth": {"mode": "token", "access_token": SANDBOX_TOKEN},
                "webhook_secret": SANDBOX_CLIENT_SECRET,
                **(shop or {}),
            },
            server={"public_url": f"http://127.0.0.1:{port}", "sync_webhooks_on_start": True, **(server or {})},
        )
        app = create_app(parse_settings(raw, env={}))
        client = await aiohttp_client(app, server_kwargs={"port": port})
        # the start-up sync runs in the background; wait until the store knows about us
        store_shop = sandbox.shop(SANDBOX_DOMAIN)
        await eventually(
            lambda: len(store_shop.webhook_subscriptions) == len(TOPICS), what="start-up subscription sync"
        )
        return SandboxGateway(client, app, raw, port)

    return make


async def orders_reply(client: Any, order_number: str, order_url: str) -> dict[str, Any]:
    """The `orders` reply's receipt of one order, asked of the gateway as the bot platform asks (shop `demo`; names
    are not unique: the order is picked by its status page URL)."""
    from tests.fixtures_query import Platform, envelope

    reply = await Platform(client).ask(
        SHOP_KEY, envelope(SHOP_KEY, "orders", {"order_number": order_number}), secret=QUERY_SECRET
    )
    assert reply.status == 200 and reply.json["success"] is True, reply.json
    [receipt] = [r for r in reply.json["orders"] if r["order_url"] == order_url]
    return dict(receipt)


async def packages_reply(client: Any, order_number: str) -> list[dict[str, Any]]:
    """The `packages` reply's packages of an order number, asked of the gateway as the bot platform asks."""
    from tests.fixtures_query import Platform, envelope

    reply = await Platform(client).ask(
        SHOP_KEY, envelope(SHOP_KEY, "packages", {"order_number": order_number}), secret=QUERY_SECRET
    )
    assert reply.status == 200 and reply.json["success"] is True, reply.json
    return list(reply.json["packages"])


def as_push(receipt: dict[str, Any]) -> dict[str, Any]:
    """A receipt of the `orders` reply as Order/Receipt and Order/Unpaid carry it (PROTOCOL §8): the same fields,
    `timestamp` an integer, without the query-only `status`."""
    pushed = {k: v for k, v in receipt.items() if k != "status"}
    pushed["timestamp"] = int(receipt["timestamp"])
    return pushed


# --- the operator CLI ------------------------------------------------------------------------------------------------


@dataclass
class CliResult:
    code: int
    out: str


def write_config(path: Path, raw: dict[str, Any]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(raw))
    return path


async def run_cli(*argv: str) -> CliResult:
    """`gateway ARGV...` in-process, in a worker thread: the CLI calls asyncio.run, and the test's loop must stay free
    to serve the gateway and the local store the command talks to. Returns the exit code and what it printed."""
    import contextlib
    import io

    from gateway.cli import main

    def run() -> CliResult:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                code = main(list(argv))
            except SystemExit as exc:  # a config error exits from settings_from_args
                code = int(exc.code or 0)
        return CliResult(code, out.getvalue())

    return await asyncio.to_thread(run)


async def reconcile_now(app: web.Application, shop_key: str) -> Any:
    """One reconciliation pass of the running app's shop, with the app's settings, Shopify client and metrics (what
    its reconciler task runs every `server.reconcile_interval_seconds`) → the PassReport."""
    from gateway.keys import SETTINGS
    from gateway.ops import get_metrics
    from gateway.push.reader import PushReader
    from gateway.push.reconcile import reconcile_shop
    from gateway.push.render import PushRenderer
    from gateway.push.rules import Rules
    from gateway.push.store import PUSH_STORE
    from gateway.shopify.client import SHOPIFY_CLIENTS

    settings, clients, metrics = app[SETTINGS], app[SHOPIFY_CLIENTS], get_metrics(app)
    renderer = PushRenderer(settings, PushReader(clients, metrics), metrics)
    return await reconcile_shop(
        shop_key, settings, app[PUSH_STORE], Rules(settings, metrics), renderer, clients[shop_key]
    )
