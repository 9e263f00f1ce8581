"""A connected shop's life, with the local store playing Shopify: its webhook subscriptions created at install,
pushes configured from the console's settings, app/uninstalled (token dropped at once, pushes stopped, data kept),
a late uninstall that must not undo a reinstall, shop/redact, pause, and edits that reach every replica."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from gateway.push.records import PushStatus
from gateway.push.store import PUSH_STORE
from gateway.push.subscriptions import TOPICS, fingerprint, webhook_uri
from gateway.shops.setup import SHOP_LIFECYCLE
from gateway.shops.store import ShopStatus, StoredSecret, StoredShop
from tests.fixtures_push import PUSH_SECRET, BotReceiver, eventually, run_cli, signed_webhook_headers, write_config
from tests.fixtures_shops import APP_SECRET, AppGateway, FakeClock, Merchant

DOMAIN = "shop4.myshopify.com"


async def connected(app_gateway: Any, merchant: Merchant, **kw: Any) -> AppGateway:
    gw: AppGateway = await app_gateway(**kw)
    status, _, _ = await merchant.install(gw, DOMAIN)
    assert status == 200
    store_shop = gw.store_server.shop(DOMAIN)
    await eventually(lambda: len(store_shop.webhook_subscriptions) == len(TOPICS), what="subscriptions at install")
    return gw


async def test_install_subscribes_the_shop_to_every_topic_uninstall_and_scope_changes_included(
    app_gateway: Any, merchant: Merchant, tmp_path: Any
) -> None:
    gw = await connected(app_gateway, merchant)
    subscriptions = gw.store_server.shop(DOMAIN).webhook_subscriptions
    assert {s["topic"] for s in subscriptions} >= {"APP_UNINSTALLED", "APP_SCOPES_UPDATE", "ORDERS_PAID"}
    assert {s["uri"] for s in subscriptions} == {gw.base_url + "/webhooks/shopify"}
    await eventually(lambda: _sync_state(gw), what="the subscriptions remembered as complete")
    assert (await gw.shop_store.sync.sync_states())["shop4"] == fingerprint(webhook_uri(gw.settings))
    # the command line sees the connected shop too (its token read from the store)
    config = write_config(tmp_path / "config.yaml", gw.raw_config)
    listed = await run_cli("webhooks", "list", "--config", str(config), "--shop", "shop4")
    assert listed.code == 0 and f"shop4 ({len(TOPICS)} subscriptions" in listed.out
    asked = await run_cli("ask", "--config", str(config), "--url", gw.base_url, "shop4", "orders", "-p",
                          "order_number=1001")  # fmt: skip
    assert asked.code == 0 and '"order_number": "1001"' in asked.out


async def _sync_state(gw: AppGateway) -> bool:
    return "shop4" in await gw.shop_store.sync.sync_states()


async def test_a_connected_shop_pushes_with_the_settings_saved_in_the_console(
    app_gateway: Any, merchant: Merchant, bot_receiver: BotReceiver
) -> None:
    gw = await connected(app_gateway, merchant)

    def pushing(shop: StoredShop) -> StoredShop:
        push = {"url": bot_receiver.url, "page_id": "page-4", "enabled": True}
        return shop.with_changes(settings={**shop.settings, "push": push},
                                 push_secrets=(StoredSecret(PUSH_SECRET, 1.0, True),))  # fmt: skip

    await gw.app[SHOP_LIFECYCLE].edit("shop4", pushing)
    assert gw.settings.shops["shop4"].push is not None
    store_shop = gw.store_server.shop(DOMAIN)
    order = await store_shop.create_order(email="ann@example.com", note_attributes={"joinchat_psid": "PSID-4"})
    if order["displayFinancialStatus"] != "PAID":
        await store_shop.mark_paid(order["id"])
    await bot_receiver.wait_for(lambda r: len(r.delivered("Order/Receipt")) >= 1)
    push = bot_receiver.delivered("Order/Receipt")[0]
    assert push.body["request"]["page_id"] == "page-4"

    # paused: the next push waits (webhooks still taken); resumed, it goes
    await gw.app[SHOP_LIFECYCLE].edit("shop4", lambda shop: shop.with_changes(paused=True))
    await store_shop.mark_paid((await store_shop.create_order(
        email="bo@example.com", note_attributes={"joinchat_psid": "PSID-5"}))["id"])  # fmt: skip
    outbox = gw.app[PUSH_STORE].outbox
    await eventually(lambda: _held(outbox), what="the push held while paused")
    assert len(bot_receiver.delivered("Order/Receipt")) == 1
    await gw.app[SHOP_LIFECYCLE].edit("shop4", lambda shop: shop.with_changes(paused=False))
    for held in await _held(outbox):
        await outbox.retry_push(held.id)  # the console's "Retry now" instead of waiting for the recheck
    await bot_receiver.wait_for(lambda r: len(r.delivered("Order/Receipt")) == 2)


async def _held(outbox: Any) -> list[Any]:
    return [p for p in await outbox.list_pushes("shop4", [PushStatus.PENDING]) if p.last_error == "shop paused"]


async def test_uninstall_drops_the_token_at_once_keeps_the_data_and_a_reinstall_reconnects(
    app_gateway: Any, merchant: Merchant
) -> None:
    gw = await connected(app_gateway, merchant)
    secret = gw.registry.stored["shop4"].bot_secrets[0].value
    assert (await gw.ask("shop4"))[0] == 200
    gw.store_server.oauth.uninstall(DOMAIN, gw.settings.app.client_id)  # type: ignore[union-attr]
    await eventually(lambda: gw.registry.stored["shop4"].status is ShopStatus.UNINSTALLED, what="app/uninstalled")
    assert await gw.shop_store.tokens.load_tokens("shop4") is None
    assert not await gw.app[PUSH_STORE].shops.shop_installed("shop4")  # pushes stopped
    status, reply = await gw.ask("shop4", "1002", secret=secret)
    assert status == 503 and reply["success"] is False
    assert "shop4" in gw.settings.shops  # its data and settings stay until shop/redact

    status, _, _ = await merchant.install(gw, DOMAIN)
    assert status == 200
    assert gw.registry.stored["shop4"].status is ShopStatus.CONNECTED
    assert await gw.app[PUSH_STORE].shops.shop_installed("shop4")
    assert gw.registry.stored["shop4"].bot_secrets[0].value == secret  # the platform keeps its secret
    await eventually(lambda: len(gw.store_server.shop(DOMAIN).webhook_subscriptions) == len(TOPICS),
                     what="subscriptions again")  # fmt: skip
    assert (await gw.ask("shop4", "1003"))[0] == 200


async def test_an_uninstall_event_older_than_the_latest_install_is_ignored(
    app_gateway: Any, merchant: Merchant, fake_clock: FakeClock
) -> None:
    gw = await connected(app_gateway, merchant, clock=fake_clock)
    webhooks = gw.store_server.webhooks
    webhooks.pause()
    gw.store_server.oauth.uninstall(DOMAIN, gw.settings.app.client_id)  # type: ignore[union-attr]
    fake_clock.advance(10)
    status, _, _ = await merchant.install(gw, DOMAIN)  # reinstalled before the uninstall event arrives
    assert status == 200
    installed_at = gw.registry.stored["shop4"].installed_at
    webhooks.resume()
    await webhooks.drain()
    await eventually(lambda: _processed(gw), what="the late app/uninstalled processed")
    stored = gw.registry.stored["shop4"]
    assert stored.status is ShopStatus.CONNECTED and stored.installed_at == installed_at
    assert await gw.shop_store.tokens.load_tokens("shop4") is not None
    assert await gw.app[PUSH_STORE].shops.shop_installed("shop4")
    assert (await gw.ask("shop4"))[0] == 200


async def _processed(gw: AppGateway) -> bool:
    """The app/uninstalled delivery was taken, and the rules have run on it."""
    delivered = gw.store_server.webhooks.delivered("app/uninstalled")
    return bool(delivered) and (await gw.app[PUSH_STORE].outbox.backlog())["events"] == 0


async def test_shop_redact_forgets_the_connected_shop(app_gateway: Any, merchant: Merchant) -> None:
    gw = await connected(app_gateway, merchant)
    gw.store_server.oauth.uninstall(DOMAIN, gw.settings.app.client_id)  # type: ignore[union-attr]
    await eventually(lambda: gw.registry.stored["shop4"].status is ShopStatus.UNINSTALLED, what="app/uninstalled")
    body = json.dumps({"shop_id": 548380009, "shop_domain": DOMAIN}).encode()
    headers = signed_webhook_headers("shop/redact", body, secret=APP_SECRET, domain=DOMAIN)
    async with aiohttp.ClientSession() as session:
        async with session.post(gw.base_url + "/webhooks/shopify", data=body, headers=headers) as resp:
            assert resp.status == 200
    await eventually(lambda: "shop4" not in gw.registry.stored, what="shop/redact")
    assert await gw.shop_store.records.load("shop4") is None and "shop4" not in gw.settings.shops
    status, _ = await gw.ask("shop4", secret="whatever-it-was-before-0123456789")
    assert status == 404


async def test_pause_dialect_and_removal_take_effect_on_every_replica_without_a_restart(
    app_gateway: Any, merchant: Merchant, tmp_path: Any
) -> None:
    shared = {"redis_prefix": f"test-shop-edits-{id(tmp_path)}"}
    one = await connected(app_gateway, merchant, backend="redis", **shared)
    two: AppGateway = await app_gateway(backend="redis", store=one.store_server, **shared)
    await eventually(lambda: "shop4" in two.registry, what="the second replica loads the shop")
    assert (await two.ask("shop4"))[0] == 200
    lifecycle = one.app[SHOP_LIFECYCLE]

    await lifecycle.edit("shop4", lambda shop: shop.with_changes(paused=True))
    await eventually(lambda: two.settings.shops["shop4"].paused, what="pause reaches the other replica")
    status, reply = await two.ask("shop4", "1002")
    assert status == 503 and "paused" in json.dumps(reply)
    await lifecycle.edit("shop4", lambda shop: shop.with_changes(paused=False))
    await eventually(lambda: not two.settings.shops["shop4"].paused, what="resume")
    assert (await two.ask("shop4", "1002"))[0] == 200

    await lifecycle.edit("shop4", lambda shop: shop.with_changes(settings={**shop.settings, "dialect": "meetbot"}))
    await eventually(lambda: two.settings.shops["shop4"].dialect == "meetbot", what="the new dialect")
    assert (await two.ask("shop4", "1003"))[0] == 401  # a JoinChat signature no longer counts

    await lifecycle.remove("shop4")
    await eventually(lambda: "shop4" not in two.settings.shops, what="removal")
    assert (await two.ask("shop4", "1004", secret="x" * 32))[0] == 404
