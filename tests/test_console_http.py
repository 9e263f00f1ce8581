"""The operator console over HTTP: the shipped demo (three shops on the local store) and the local receiver, real.

Access (sign-in, wrong token, CSRF, expiry, nothing reachable signed out, cookie flags, no secrets on any page),
then every page and action: Shops (health, scopes, subscriptions and repair), Pushes (filters, dead letters with
reasons and attempts, retry, drop), Preview (cards, each dialect's exact JSON, test push).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import aiohttp
import pytest

from gateway import signing
from gateway.app import create_app
from gateway.push.records import PushStatus
from gateway.push.subscriptions import TOPICS
from gateway.settings import parse_settings
from tests.fixtures_console import CONSOLE_TOKEN, ConsoleDemo, Operator
from tests.fixtures_push import BotReceiver, eventually, open_redis_or_skip, purge_redis_prefix, wait_until_settled

PAGES = ["/console", "/console/pushes", "/console/pushes/1", "/console/preview", "/console/preview?order=1001"]
ACTIONS = [
    ("/console/shops/demo/repair", {}),
    ("/console/pushes/1/retry", {}),
    ("/console/pushes/1/drop", {}),
    ("/console/preview/test-push", {"shop": "demo", "order": "1001", "kind": "psid", "recipient": "psid-x"}),
    ("/console/logout", {}),
]


async def signed_in(demo: ConsoleDemo, operator: Any) -> Operator:
    op: Operator = operator(demo.base_url)
    status, _, resp = await op.sign_in()
    assert status == 303 and resp.headers["Location"] == "/console"
    return op


async def paid_push(demo: ConsoleDemo, order: str = "1002") -> None:
    """The local store marks an order paid: webhook → gateway → an Order/Receipt push for that order."""
    await demo.store_post(f"/_sandbox/demo.myshopify.com/orders/{order}/paid")


async def wait_for_status(demo: ConsoleDemo, status: PushStatus, within: float = 15.0) -> int:
    found: list[int] = []

    async def check() -> bool:
        rows = await demo.push_store.outbox.list_pushes("demo", [status], 10)
        found[:] = [p.id for p in rows]
        return bool(rows)

    await eventually(check, within=within, what=f"a {status} push")
    return found[0]


# --- access --------------------------------------------------------------------------------------------------------


async def test_console_is_off_without_a_token(aiohttp_client: Any, tmp_path: Any) -> None:
    raw = {
        "storage": {"sqlite_path": str(tmp_path / "off.sqlite3")},
        "server": {"sync_webhooks_on_start": False, "reconcile_interval_seconds": 0},
        "console": {"token": "${CONSOLE_TOKEN:-}"},
        "shops": {"s": {"domain": "s.myshopify.com", "auth": {"mode": "token", "access_token": "t"}, "secrets": ["test-bot-secret"]}},
    }
    client = await aiohttp_client(create_app(parse_settings(raw, env={})))
    for path in ("/console", "/console/login", "/console/pushes"):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 404, path
    with pytest.raises(Exception, match="at least 12 characters"):
        parse_settings({**raw, "console": {"token": "short"}}, env={})


async def test_nothing_is_reachable_signed_out(console_demo: Any, operator: Any) -> None:
    demo: ConsoleDemo = await console_demo()
    await paid_push(demo)
    push_id = await wait_for_status(demo, PushStatus.DELIVERED)
    op: Operator = operator(demo.base_url)
    for path in PAGES:
        status, html, resp = await op.get(path)
        assert status == 303 and resp.headers["Location"].startswith("/console/login"), path
        assert "demo.myshopify.com" not in html
    for path, fields in ACTIONS:
        status, _, resp = await op.post(path, {"csrf": "guess", **fields})
        assert status == 303 and resp.headers["Location"] == "/console/login", path
    # nothing happened: the delivered push is still delivered, no test push was queued
    assert (await demo.push_store.outbox.get_push(push_id)).status == PushStatus.DELIVERED  # type: ignore[union-attr]
    assert [p.dedupe_key for p in await demo.push_store.outbox.list_pushes("demo") if p.dedupe_key.startswith("test:")] == []
    status, html, _ = await op.get("/console/login")
    assert status == 200 and "<label for=\"token\">" in html


async def test_signing_in_returns_to_the_page_asked_for_and_only_inside_the_console(
    console_demo: Any, operator: Any
) -> None:
    demo: ConsoleDemo = await console_demo()
    op: Operator = operator(demo.base_url)
    status, _, resp = await op.get("/console/pushes?status=dead")
    assert resp.headers["Location"] == "/console/login?next=%2Fconsole%2Fpushes%3Fstatus%3Ddead"
    status, html, _ = await op.get(resp.headers["Location"])
    assert 'name="next" value="/console/pushes?status=dead"' in html
    csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    status, _, resp = await op.post(
        "/console/login", {"csrf": csrf, "token": CONSOLE_TOKEN, "next": "/console/pushes?status=dead"}
    )
    assert status == 303 and resp.headers["Location"] == "/console/pushes?status=dead"
    for elsewhere in ("https://evil.example.com/", "//evil.example.com/console", "/consolex", "/console/../x\\y"):
        other: Operator = operator(demo.base_url)
        csrf = await other.csrf("/console/login")
        status, _, resp = await other.post("/console/login", {"csrf": csrf, "token": CONSOLE_TOKEN, "next": elsewhere})
        assert status == 303 and resp.headers["Location"] == "/console", elsewhere


async def test_wrong_token_is_refused(console_demo: Any, operator: Any, caplog: pytest.LogCaptureFixture) -> None:
    demo: ConsoleDemo = await console_demo()
    op: Operator = operator(demo.base_url)
    caplog.set_level(logging.INFO)
    status, html, _ = await op.sign_in("not-the-console-token")
    assert status == 401 and "That token is not right." in html
    assert op.cookie("console_session") is None
    status, _, _ = await op.get("/console")
    assert status == 303
    assert "not-the-console-token" not in caplog.text


async def test_login_and_actions_need_their_csrf_token(console_demo: Any, operator: Any) -> None:
    demo: ConsoleDemo = await console_demo()
    op: Operator = operator(demo.base_url)
    await op.get("/console/login")  # the pre-login cookie, but no CSRF field
    status, html, _ = await op.post("/console/login", {"token": CONSOLE_TOKEN})
    assert status == 403 and op.cookie("console_session") is None
    op = await signed_in(demo, operator)
    await demo.delete_subscription("demo.myshopify.com", "ORDERS_PAID")
    for fields in ({}, {"csrf": ""}, {"csrf": "0" * 64}):
        status, html, _ = await op.post("/console/shops/demo/repair", fields)
        assert status == 403 and "Form refused" in html
    # refused means not done: the subscription is still missing
    assert "ORDERS_PAID" not in {s["topic"] for s in demo.store_server.shop("demo.myshopify.com").webhook_subscriptions}
    # another session's token does not count either
    other = await signed_in(demo, operator)
    foreign = await other.csrf()
    status, _, _ = await op.post("/console/shops/demo/repair", {"csrf": foreign})
    assert status == 403


async def test_hostile_tokens_and_cookies_are_refused_not_crashed(console_demo: Any, operator: Any) -> None:
    demo: ConsoleDemo = await console_demo()
    op: Operator = operator(demo.base_url)
    csrf = await op.csrf("/console/login")
    status, _, _ = await op.post("/console/login", {"csrf": csrf, "token": "tökén-ünïcode-🙂"})
    assert status == 401
    status, _, _ = await op.post("/console/login", {"csrf": "çsrf-🙂", "token": CONSOLE_TOKEN})
    assert status == 403
    op = await signed_in(demo, operator)
    status, html, _ = await op.post("/console/shops/demo/repair", {"csrf": "ünïcode"})
    assert status == 403 and "Form refused" in html
    for cookie in ("a.b.c", "x.123.ü", "...", "a" * 5000):
        async with aiohttp.ClientSession() as session:
            async with session.get(
                demo.base_url + "/console", headers={"Cookie": f"console_session={cookie}"}, allow_redirects=False
            ) as resp:
                assert resp.status == 303, cookie


async def test_expired_and_signed_out_sessions_are_refused(console_demo: Any, operator: Any) -> None:
    demo: ConsoleDemo = await console_demo(console={"session_minutes": 0.05})  # 3 s
    op = await signed_in(demo, operator)
    status, _, _ = await op.get("/console/pushes")
    assert status == 200
    csrf = await op.csrf("/console/pushes")
    await asyncio.sleep(3.2)
    status, _, resp = await op.get("/console/pushes")
    assert status == 303 and resp.headers["Location"] == "/console/login?expired=1&next=%2Fconsole%2Fpushes"
    status, _, resp = await op.post("/console/shops/demo/repair", {"csrf": csrf})
    assert status == 303 and resp.headers["Location"] == "/console/login?expired=1"
    status, html, _ = await op.get("/console/login?expired=1")
    assert "Your session expired" in html
    # sign-out ends the session for good, even if the cookie were replayed
    demo2: ConsoleDemo = await console_demo()
    op2 = await signed_in(demo2, operator)
    cookie = op2.cookie("console_session").value
    status, _, resp = await op2.post("/console/logout", {"csrf": await op2.csrf()})
    assert status == 303 and resp.headers["Location"] == "/console/login?signed_out=1"
    replay: Operator = operator(demo2.base_url)
    async with replay.session.get(
        demo2.base_url + "/console", headers={"Cookie": f"console_session={cookie}"}, allow_redirects=False
    ) as resp:
        assert resp.status == 303


async def test_session_cookie_flags_and_security_headers(console_demo: Any, operator: Any) -> None:
    demo: ConsoleDemo = await console_demo()
    op: Operator = operator(demo.base_url)
    _, _, resp = await op.sign_in()
    set_cookie = [v for k, v in resp.raw_headers if k.decode().lower() == "set-cookie"]
    session = next(v.decode() for v in set_cookie if v.startswith(b"console_session="))
    assert "HttpOnly" in session and "SameSite=Strict" in session and "Path=/console" in session
    status, _, resp = await op.get("/console")
    assert status == 200
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["Cache-Control"] == "no-store" and resp.headers["X-Frame-Options"] == "DENY"
    # a forged cookie is no session
    forged: Operator = operator(demo.base_url)
    async with forged.session.get(
        demo.base_url + "/console", headers={"Cookie": "console_session=abc.99999999999.deadbeef"}, allow_redirects=False
    ) as resp:
        assert resp.status == 303


async def test_no_page_shows_a_secret_or_token(
    console_demo: Any, operator: Any, bot_receiver: BotReceiver
) -> None:
    # a platform that takes a key in the push URL, and another app's subscription with one in its address
    demo: ConsoleDemo = await console_demo(push={"url": bot_receiver.url + "?key=push-url-key-123"})
    await demo.delete_subscription("demo.myshopify.com", "ORDERS_PAID")
    await demo.graphql(
        "demo.myshopify.com",
        'mutation { webhookSubscriptionCreate(topic: ORDERS_PAID, webhookSubscription: {uri: "https://user:pw-in-url-456@old.example.com/h?token=sub-url-key-789"}) { userErrors { message } } }',
    )
    op = await signed_in(demo, operator)
    await paid_push(demo)
    push_id = await wait_for_status(demo, PushStatus.DELIVERED)
    secrets: list[str] = [CONSOLE_TOKEN]
    for shop in demo.settings.shops.values():
        auth = shop.auth
        secrets += [s.get_secret_value() for s in shop.secrets]
        secrets.append(getattr(auth, "access_token", None) and auth.access_token.get_secret_value())  # type: ignore[union-attr]
        secrets.append(getattr(auth, "client_secret", None) and auth.client_secret.get_secret_value())  # type: ignore[union-attr]
        secrets.append(shop.webhook_hmac_secret)
        if shop.push:
            secrets += [s.get_secret_value() for s in shop.push.secrets]
        if shop.openapi:
            secrets.append(shop.openapi.app_secret.get_secret_value())
    status, html, _ = await op.get("/console")
    assert "https://old.example.com/h?…" in html  # the drifted address, shown without its credentials
    status, html, _ = await op.get("/console/preview?shop=demo&order=1001")
    assert f"goes to {bot_receiver.url}?… through" in html
    secrets += ["push-url-key-123", "pw-in-url-456", "sub-url-key-789"]
    secrets = [s for s in secrets if s]
    assert len(secrets) > 10
    for path in [*PAGES, f"/console/pushes/{push_id}", "/console/preview?shop=demo-meetbot&order=1001"]:
        status, html, _ = await op.get(path)
        assert status == 200, path
        for secret in secrets:
            assert secret not in html, (path, "a secret is on the page")


# --- Shops -----------------------------------------------------------------------------------------------------------


def shop_section(html: str, key: str) -> str:
    start = html.index(f'id="shop-{key}"')
    end = html.find("<section", start + 1)
    return html[start : end if end > 0 else len(html)]


async def test_shops_page_shows_the_three_demo_shops_healthy(console_demo: Any, operator: Any) -> None:
    demo: ConsoleDemo = await console_demo()
    op = await signed_in(demo, operator)
    await paid_push(demo)  # a webhook arrives
    await wait_for_status(demo, PushStatus.DELIVERED)
    await demo.push_store.shops.set_watermark("demo", "2026-11-30T12:00:00Z")
    # a cached lookup, so there is a hit ratio to show
    body = json.dumps({"method": "orders", "params": {"order_number": "1001"}}).encode()
    async with aiohttp.ClientSession() as session:
        for _ in range(2):
            headers = {signing.JOINCHAT_HEADER: signing.sign_base64("demo-bot-secret", body)}
            async with session.post(demo.base_url + "/bot/demo", data=body, headers=headers) as resp:
                assert resp.status == 200
    status, html, _ = await op.get("/console")
    assert status == 200
    assert html.count('data-health="healthy"') == 3, "all three demo shops healthy"
    demo_shop = shop_section(html, "demo")
    assert "reachable" in demo_shop and "2026-10 answered" in demo_shop
    assert "static Admin API token" in demo_shop and "all needed are granted" in demo_shop
    assert demo_shop.count('data-state="present"') == len(TOPICS) and f"All {len(TOPICS)} present." in demo_shop
    assert "s ago" in demo_shop and "2026-11-30T12:00:00Z" in demo_shop
    assert "50 %" in demo_shop and "(1 hits, 1 loads)" in demo_shop
    # the query budget as Shopify's last answer told it (the demo store's standard plan)
    assert re.search(r"\d+ of 2000 available", demo_shop) and "restoring 100 a second; 0 THROTTLED" in demo_shop
    meetbot = shop_section(html, "demo-meetbot")
    assert "client credentials" in meetbot and "expires in 23 h" in meetbot and "Meetbot" in meetbot


async def test_missing_scope_and_unreachable_store_need_attention(console_demo: Any, operator: Any) -> None:
    demo: ConsoleDemo = await console_demo()
    op = await signed_in(demo, operator)
    demo.store_server.shop("demo-v2.myshopify.com").access_scopes.remove("read_all_orders")
    status, html, _ = await op.get("/console")
    v2 = shop_section(html, "demo-v2")
    assert 'data-health="attention"' in v2 and "<code>read_all_orders</code> (orders older than 60 days)" in v2
    demo.store_server.faults.set(error_rate=1.0)
    status, html, _ = await op.get("/console")
    assert status == 200 and html.count('data-health="attention"') == 3
    assert "not reachable" in shop_section(html, "demo")
    demo.store_server.faults.clear()
    status, html, _ = await op.get("/console")
    assert html.count('data-health="healthy"') == 2


async def test_a_deleted_subscription_is_missing_and_repair_restores_it(console_demo: Any, operator: Any) -> None:
    demo: ConsoleDemo = await console_demo()
    op = await signed_in(demo, operator)
    await demo.delete_subscription("demo.myshopify.com", "ORDERS_PAID")
    status, html, _ = await op.get("/console")
    section = shop_section(html, "demo")
    assert 'data-topic="ORDERS_PAID" data-state="missing"' in section and "1 missing or drifted." in section
    assert 'data-health="attention"' in section
    # a drifted one: pointing somewhere else
    await demo.graphql(
        "demo.myshopify.com",
        'mutation { webhookSubscriptionCreate(topic: ORDERS_PAID, webhookSubscription: {uri: "https://old.example.com/hooks"}) { userErrors { message } } }',
    )
    status, html, _ = await op.get("/console")
    assert 'data-topic="ORDERS_PAID" data-state="drifted"' in html and "https://old.example.com/hooks" in html
    await demo.push_store.shops.set_shop_installed("demo", False)  # as after app/uninstalled
    assert await op.action("/console/shops/demo/repair") == 303
    status, html, _ = await op.get("/console")
    section = shop_section(html, "demo")
    assert "demo: webhook subscriptions repaired (ORDERS_PAID)." in html
    assert section.count('data-state="present"') == len(TOPICS) and 'data-health="healthy"' in section
    assert await demo.push_store.shops.shop_installed("demo")  # what `gateway webhooks sync` does too
    uri = demo.settings.server.public_url + "/webhooks/shopify"
    ours = [s for s in demo.store_server.shop("demo.myshopify.com").webhook_subscriptions if s["uri"] == uri]
    assert sorted(s["topic"] for s in ours).count("ORDERS_PAID") == 1
    # repairing again is harmless
    assert await op.action("/console/shops/demo/repair") == 303
    status, html, _ = await op.get("/console")
    assert "nothing was missing" in html


# --- Pushes ----------------------------------------------------------------------------------------------------------


async def test_dead_push_with_reason_and_attempts_then_retry_after_recovery(
    console_demo: Any, operator: Any, bot_receiver: BotReceiver
) -> None:
    demo: ConsoleDemo = await console_demo(push={"max_age_seconds": 0.5})
    op = await signed_in(demo, operator)
    bot_receiver.fail_next(1000, status=503)
    await paid_push(demo)
    push_id = await wait_for_status(demo, PushStatus.DEAD)
    status, html, _ = await op.get("/console/pushes?status=dead")
    assert status == 200 and f'data-push-id="{push_id}" data-status="dead"' in html
    assert "gave up after" in html and "HTTP 503" in html and "order #1002" in html and "to email" in html
    status, html, _ = await op.get(f"/console/pushes/{push_id}")
    assert status == 200 and html.count('<tr class="attempt-') >= 2
    assert "<td>503</td>" in html and "&#34;msg&#34;: &#34;down&#34;" in html  # the platform's answer, escaped
    assert "bob.norman@mail.example.com" in html  # the recipient, to a signed-in operator
    bot_receiver.failures_left = 0  # the platform recovers
    assert await op.action(f"/console/pushes/{push_id}/retry", page=f"/console/pushes/{push_id}") == 303
    await bot_receiver.wait_for(lambda r: len(r.delivered("Order/Receipt")) == 1)
    await wait_until_settled(demo.push_store)
    status, html, _ = await op.get(f"/console/pushes/{push_id}")
    assert "Push " + str(push_id) + " queued again." in html
    assert '<span class="badge badge-delivered">delivered</span>' in html and "<td>200</td>" in html


async def test_pushes_pages_on_the_redis_backend(console_demo: Any, operator: Any, bot_receiver: BotReceiver) -> None:
    """Several replicas share a Redis store: the console reads and repairs the same outbox through it."""
    import os

    from gateway.push.redis.store import RedisPushStore

    prefix = f"console-test-{os.getpid()}-{id(bot_receiver)}"
    probe = RedisPushStore(prefix=prefix)
    await open_redis_or_skip(probe)
    try:
        demo: ConsoleDemo = await console_demo(
            push={"max_age_seconds": 0.5}, storage={"backend": "redis", "redis_prefix": prefix}
        )
        op = await signed_in(demo, operator)
        bot_receiver.fail_next(1000, status=503)
        await paid_push(demo)
        push_id = await wait_for_status(demo, PushStatus.DEAD)
        status, html, _ = await op.get(f"/console/pushes/{push_id}")
        assert status == 200 and "<td>503</td>" in html and "gave up after" in html
        bot_receiver.failures_left = 0
        assert await op.action(f"/console/pushes/{push_id}/retry", page=f"/console/pushes/{push_id}") == 303
        await bot_receiver.wait_for(lambda r: len(r.delivered("Order/Receipt")) == 1)
        await wait_until_settled(demo.push_store)
        status, html, _ = await op.get("/console/pushes?status=delivered&order=1002")
        assert f'data-push-id="{push_id}" data-status="delivered"' in html
    finally:
        await purge_redis_prefix(probe)
        await probe.close()


async def test_pushes_page_shows_which_replica_holds_what_and_since_when(
    console_demo: Any, operator: Any, bot_receiver: BotReceiver
) -> None:
    """Replicas share the Redis store: the page lists each (alive or silent, what it holds, since when) and names the
    holder of each pending push being delivered."""
    import os
    import time

    from gateway.push.records import EventOutcome, NewPush
    from gateway.push.redis.store import RedisPushStore
    from gateway.push.replica import ReplicaIdentity

    prefix = f"console-replicas-{os.getpid()}-{id(bot_receiver)}"
    now = time.time()
    other = RedisPushStore(prefix=prefix, identity=ReplicaIdentity("replica-b", "b1", now - 60))
    silent = RedisPushStore(prefix=prefix, identity=ReplicaIdentity("replica-c", "c1", now - 7200))
    await open_redis_or_skip(other)
    await silent.open()
    try:
        demo: ConsoleDemo = await console_demo(
            storage={"backend": "redis", "redis_prefix": prefix, "replica_id": "replica-a"}
        )
        op = await signed_in(demo, operator)
        # replica-b holds a push (due later, so replica-a's sender leaves it alone) and beats; replica-c beat long ago
        later = now + 600
        body = b'{"recipient": {"id": "psid-1"}, "params": {}}'
        push = NewPush("demo", "receipt:4242", 4242, "Order/Receipt", body, later)
        await other.states.commit([EventOutcome(pushes=[push])])
        [held] = await other.delivery.claim_pushes(10, 3600, now=later)
        await other.leases.renew_leases(3600)
        await silent.leases.renew_leases(6, now=now - 3600)
        status, html, _ = await op.get("/console/pushes")
        assert status == 200
        assert '<tr data-replica="replica-b" data-alive="yes">' in html and "0 events · 1 pushes · 0 checks" in html
        assert '<tr data-replica="replica-c" data-alive="no">' in html
        assert 'replica-a</strong> <span class="badge">this page</span>' in html
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(later))
        assert f'data-holder="replica-b">held by replica-b since {when}' in html
        status, html, _ = await op.get(f"/console/pushes/{held.id}")
        assert f"replica replica-b (start b1) since {when}, lease renewed to" in html
    finally:
        await purge_redis_prefix(other)
        await other.close()
        await silent.close()


async def test_drop_filters_and_unpushable(console_demo: Any, operator: Any, bot_receiver: BotReceiver) -> None:
    demo: ConsoleDemo = await console_demo(push={"max_age_seconds": 3600, "backoff_base_seconds": 30})
    op = await signed_in(demo, operator)
    bot_receiver.fail_next(1000, status=503)
    await paid_push(demo, "1002")
    pending = await wait_for_status(demo, PushStatus.PENDING)

    async def retry_recorded() -> bool:  # the receiver answered 503 and the gateway recorded it
        push = await demo.push_store.outbox.get_push(pending)
        return push is not None and push.last_error.startswith("HTTP 503")

    await eventually(retry_recorded, what="a first (failed) attempt")
    status, html, _ = await op.get("/console/pushes?shop=demo&topic=Order%2FReceipt&status=pending&order=1002")
    assert f'data-push-id="{pending}"' in html and "HTTP 503" in html
    for query in ("order=9999", "topic=package%2Fupdate", "status=dead", "shop=demo-v2"):
        status, html, _ = await op.get("/console/pushes?" + query)
        assert status == 200 and f'data-push-id="{pending}"' not in html, query
    back = "/console/pushes?status=pending"
    assert await op.action(f"/console/pushes/{pending}/drop", {"back": back}, page=back) == 303
    assert (await demo.push_store.outbox.get_push(pending)).status == PushStatus.DROPPED  # type: ignore[union-attr]
    status, html, _ = await op.get("/console/pushes?status=dropped")
    assert f"Push {pending} dropped." in html and f'data-push-id="{pending}" data-status="dropped"' in html
    # an order with no PSID, email or phone: recorded as unpushable, with the reason
    shop = demo.store_server.shop("demo.myshopify.com")
    order = await shop.create_order(email=None, phone=None, financial_status="PAID")
    await eventually(
        lambda: demo.push_store.outbox.list_pushes("demo", [PushStatus.UNPUSHABLE]), what="an unpushable push"
    )
    status, html, _ = await op.get("/console/pushes?status=unpushable")
    assert "not pushable: the order carries no PSID attribute, email or phone" in html
    assert "order #" + order["name"].lstrip("#") in html
    status, html, _ = await op.get("/console/pushes/999999")
    assert status == 404
    status, html, _ = await op.get("/console/pushes/" + "9" * 40)  # beyond any id: not found, not a 500
    assert status == 404


# --- Preview ---------------------------------------------------------------------------------------------------------


async def bot_answer(demo: ConsoleDemo, shop_key: str, body: dict[str, Any]) -> Any:
    raw = json.dumps(body).encode()
    shop = demo.settings.shops[shop_key]
    secret = shop.secrets[0].get_secret_value()
    if shop.dialect == "meetbot":
        headers = {signing.MEETBOT_HEADER: signing.sign_hub(secret, raw)}
    else:
        headers = {signing.JOINCHAT_HEADER: signing.sign_base64(secret, raw)}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{demo.base_url}/bot/{shop_key}", data=raw, headers=headers) as resp:
            return json.loads(await resp.read())


def answers_on_page(html: str) -> dict[tuple[str, str], Any]:
    import html as html_lib

    found = {}
    for m in re.finditer(
        r'data-dialect="([^"]+)" data-method="([^"]+)">.*?<pre class="json answer-json">(.*?)</pre>', html, re.S
    ):
        found[(m.group(1), m.group(2))] = json.loads(html_lib.unescape(m.group(3)))
    return found


async def test_preview_draws_the_receipt_and_packages_and_each_dialects_exact_json(
    console_demo: Any, operator: Any
) -> None:
    demo: ConsoleDemo = await console_demo()
    op = await signed_in(demo, operator)
    status, html, _ = await op.get("/console/preview?shop=demo&order=%231001")
    assert status == 200
    live = await bot_answer(demo, "demo", {"method": "orders", "params": {"order_number": "1001"}})
    receipt = live["orders"][0]
    assert 'aria-label="Receipt card for order #1001"' in html
    assert receipt["recipient_name"] in html and "Bob Norman" in html
    for element in receipt["elements"]:
        assert f'src="{element["image_url"]}"' in html and element["title"] in html
    assert f'data-total="{receipt["summary"]["total_cost"]}"' in html
    assert "Chestnut Street 92" in html and "Visa" in html and "TENOFF" in html
    assert html.count('<article class="package"') == 2 and "1Z1234512345123456" in html
    answers = answers_on_page(html)
    assert answers[("JoinChat v1", "orders")] == live
    assert answers[("JoinChat v1", "packages")] == await bot_answer(
        demo, "demo", {"method": "packages", "params": {"order_number": "1001"}}
    )
    assert answers[("JoinChat v2", "orders")]["data"][0]["template_type"] == "receipt"
    assert answers[("Meetbot", "orders")]["object"] == "orders"
    assert answers[("Open API", "order")]["data"]["trade_id"] == "1001"
    # the meetbot shop's own platform: the same JSON as its /bot answer
    status, html, _ = await op.get("/console/preview?shop=demo-meetbot&order=1001")
    meetbot_body = {
        "request": {"category": "ecommerce", "method": "orders", "id": "orders_1", "page_id": "", "meta": ""},
        "params": {"order_number": "1001"},
    }
    assert answers_on_page(html)[("Meetbot", "orders")] == await bot_answer(demo, "demo-meetbot", meetbot_body)
    assert "this shop&#39;s platform" in html or "this shop's platform" in html


async def test_preview_picker_unknown_order_and_no_push_settings(console_demo: Any, operator: Any) -> None:
    demo: ConsoleDemo = await console_demo()
    op = await signed_in(demo, operator)
    status, html, _ = await op.get("/console/preview")
    assert status == 200 and "Or pick a recent order of demo" in html
    latest = demo.store_server.shop("demo.myshopify.com").orders[-1]["name"].lstrip("#")
    assert f"order={latest}" in html
    status, html, _ = await op.get("/console/preview?shop=demo&order=424242")
    assert status == 200 and "#424242: Order not found" in html and "Receipt card" not in html
    status, html, _ = await op.get("/console/preview?shop=demo-v2&order=1001")
    assert "Send as a test push" not in html  # demo-v2 has no push settings


async def test_send_as_a_test_push(
    console_demo: Any, operator: Any, bot_receiver: BotReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    demo: ConsoleDemo = await console_demo()
    op = await signed_in(demo, operator)
    caplog.set_level(logging.DEBUG)
    page = "/console/preview?shop=demo&order=1001"
    fields = {"shop": "demo", "order": "1001", "kind": "email", "recipient": "not an email"}
    assert await op.action("/console/preview/test-push", fields, page=page) == 303
    status, html, _ = await op.get(page)
    assert "That is not an email address." in html
    fields = {"shop": "demo", "order": "1001", "kind": "psid", "recipient": "psid-operator-test"}
    assert await op.action("/console/preview/test-push", fields, page=page) == 303
    await bot_receiver.wait_for(lambda r: len(r.delivered("Order/Receipt")) == 1)
    [got] = bot_receiver.delivered("Order/Receipt")
    assert got.body["recipient"] == {"id": "psid-operator-test"}
    assert got.body["request"] == {"page_id": "demo-page", "topic": "Order/Receipt"}
    live = await bot_answer(demo, "demo", {"method": "orders", "params": {"order_number": "1001"}})
    expected = {k: v for k, v in live["orders"][0].items() if k != "status"}
    expected["timestamp"] = int(expected["timestamp"])
    assert got.body["params"] == expected  # the same receipt by query and by push
    status, html, _ = await op.get("/console/pushes?shop=demo&order=1001")
    assert "Test push of order #1001 queued" in html and '<span class="badge">test</span>' in html
    assert "psid-operator-test" not in caplog.text and "bob.norman" not in caplog.text
