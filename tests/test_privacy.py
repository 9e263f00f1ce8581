"""Privacy: whatever happens — lookups by email and phone, unknown accounts, pushes retried and dead-lettered — the
logs never carry a shopper's email, phone or street, nor a token or secret (DEVELOPERS.md, Standards)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from gateway import signing
from gateway.app import create_app
from gateway.push.store import PUSH_STORE
from gateway.settings import parse_settings
from localstore import SandboxServer, SandboxShop
from tests.fixtures_push import PUSH_SECRET, WEBHOOK_SECRET, BotReceiver, eventually, free_port, push_config
from tests.fixtures_sandbox import SANDBOX_CLIENT_SECRET, SANDBOX_DOMAIN, SANDBOX_TOKEN

BOT_SECRET = "query-secret"


def forbidden_strings(shop: SandboxShop, email: str) -> list[str]:
    customer = shop.customer_by_email(email)
    assert customer is not None
    phone = str(customer["phone"])
    digits = phone.lstrip("+")
    orders = shop.orders_by_email(email)
    streets = {str((o.get("shippingAddress") or {}).get("address1")) for o in orders} - {"None", ""}
    return [email, phone, digits, digits[-7:], *streets, SANDBOX_TOKEN, SANDBOX_CLIENT_SECRET, WEBHOOK_SECRET,
            PUSH_SECRET, BOT_SECRET]


async def test_logs_carry_no_personal_data_or_secrets(
    aiohttp_client: Any, sandbox: SandboxServer, sandbox_shop: SandboxShop, bot_receiver: BotReceiver,
    tmp_path: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()
    raw = push_config(
        bot_receiver.url, tmp_path / "privacy.sqlite3", admin_api_base=sandbox.base_url,
        push={"max_age_seconds": 0.5},
        shop={"domain": SANDBOX_DOMAIN, "auth": {"mode": "token", "access_token": SANDBOX_TOKEN},
              "webhook_secret": SANDBOX_CLIENT_SECRET, "secrets": [BOT_SECRET]},
        server={"public_url": f"http://127.0.0.1:{port}", "sync_webhooks_on_start": True},
    )
    app = create_app(parse_settings(raw, env={}))
    client = await aiohttp_client(app, server_kwargs={"port": port})
    await eventually(lambda: len(sandbox_shop.webhook_subscriptions) > 0, what="subscriptions")

    email = "bob.norman@mail.example.com"
    forbidden = forbidden_strings(sandbox_shop, email)

    async def ask(params: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps({"method": "orders", "params": params}).encode()
        r = await client.post("/bot/demo", data=body, headers={signing.JOINCHAT_HEADER: signing.sign_base64(BOT_SECRET, body)})
        return dict(await r.json())

    assert (await ask({"user_account": email}))["orders"]
    assert (await ask({"user_account": forbidden[1]}))["orders"]
    assert (await ask({"user_account": "nobody.here@example.com"}))["success"] is False
    assert (await ask({"user_account": "a@b.com OR status:any"}))["success"] is False

    # A push that fails, is retried, then dead-lettered: every step logs, none with the recipient.
    order = sandbox_shop.orders_by_email(email)[0]
    bot_receiver.fail_next(1000, 503)
    if order.get("displayFinancialStatus") != "PAID":
        await sandbox_shop.mark_paid(order["id"])
    await sandbox_shop.create_fulfillment(order["id"], tracking_numbers=["1Z999AA10123456784"])
    store = app[PUSH_STORE]

    async def dead() -> bool:
        return (await store.outbox.backlog()).get("dead", 0) > 0

    await eventually(dead, within=15, what="a dead letter")
    assert bot_receiver.received, "the receiver saw the push attempts"

    text = "\n".join(
        (rec.getMessage() + " " + (rec.exc_text or "") + " " + repr(getattr(rec, "args", ""))) for rec in caplog.records
    )
    assert caplog.records, "the flow logged something"
    leaked = [s for s in forbidden if s and s in text]
    assert not leaked, f"logs carry {len(leaked)} forbidden value(s)"
