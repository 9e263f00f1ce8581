"""The console's shop pages over HTTP: settings saved and validated as config.yaml is, secret rotation without a gap,
pause and remove, config shops read-only; and the registry's own rules (a clash with a config shop, settings that no
longer validate)."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from gateway.console.shops import secret_name
from gateway.keys import SETTINGS
from gateway.settings import parse_settings
from gateway.shops.registry import ShopRegistry
from gateway.shops.store import StoredSecret, StoredShop
from tests.fixtures_console import CONSOLE_TOKEN as DEMO_CONSOLE_TOKEN
from tests.fixtures_shops import TOKEN_KEY, AppGateway, Merchant

DOMAIN = "shop4.myshopify.com"


async def connected(app_gateway: Any, merchant: Merchant) -> AppGateway:
    gw: AppGateway = await app_gateway()
    assert (await merchant.install(gw, DOMAIN))[0] == 200
    await merchant.sign_in(gw)
    return gw


def flash(merchant: Merchant) -> str:
    """The console's one-time message after a form (its cookie)."""
    cookie = {c.key: c.value for c in merchant.session.cookie_jar}.get("console_flash", "")
    return unquote(cookie)


async def test_rotating_the_bot_secret_never_leaves_the_platform_without_one(
    app_gateway: Any, merchant: Merchant
) -> None:
    gw = await connected(app_gateway, merchant)
    page = "/console/shops/shop4"
    first = gw.registry.stored["shop4"].bot_secrets[0].value
    await merchant.get(gw.base_url + page)  # the first view shows (and spends) the install's secret
    status, location, _ = await merchant.console_post(gw, page + "/secrets", page=page)
    assert (status, location) == (303, page)
    _, _, html = await merchant.get(gw.base_url + page)
    second = gw.registry.stored["shop4"].bot_secrets[1].value
    assert second in html and first not in html  # the new one, shown once
    assert (await gw.ask("shop4", secret=first))[0] == 200 and (await gw.ask("shop4", "1002", secret=second))[0] == 200

    name = next(s for s in html.split('data-secret-name="')[1:] if not s.startswith(_name(second)))[:8]
    status, _, _ = await merchant.console_post(gw, f"{page}/secrets/{name}/retire", page=page)
    assert status == 303 and "retired" in flash(merchant)
    assert [s.value for s in gw.registry.stored["shop4"].bot_secrets] == [second]
    assert (await gw.ask("shop4", "1003", secret=first))[0] == 401
    assert (await gw.ask("shop4", "1004", secret=second))[0] == 200
    # the last one cannot go
    await merchant.console_post(gw, f"{page}/secrets/{_name(second)}/retire", page=page)
    assert "cannot be retired" in flash(merchant) and len(gw.registry.stored["shop4"].bot_secrets) == 1


def _name(secret: str) -> str:
    return secret_name(secret)


async def test_settings_are_validated_as_config_yaml_is_and_take_effect_at_once(
    app_gateway: Any, merchant: Merchant
) -> None:
    gw = await connected(app_gateway, merchant)
    page = "/console/shops/shop4"
    form = {"dialect": "joinchat-2", "api_version": "2026-10", "deadline_seconds": "90", "push_url": ""}
    await merchant.console_post(gw, page + "/settings", form, page=page)
    assert "Not saved" in flash(merchant) and "deadline_seconds" in flash(merchant)
    assert gw.settings.shops["shop4"].joinchat_version == 1  # nothing changed

    form.update(deadline_seconds="3", push_url="https://bot.example.com/push", page_id="p-4")
    await merchant.console_post(gw, page + "/settings", form, page=page)
    assert "push.secrets" in flash(merchant)  # a push target needs its secret
    form["push_secret"] = "platform-push-secret-0123456789"
    await merchant.console_post(gw, page + "/settings", form, page=page)
    assert flash(merchant) == "Settings saved."
    shop = gw.settings.shops["shop4"]
    assert (shop.joinchat_version, shop.deadline_seconds) == (2, 3.0)
    assert shop.push is not None and shop.push.url == "https://bot.example.com/push" and shop.push.page_id == "p-4"
    _, _, html = await merchant.get(gw.base_url + page)
    assert "platform-push-secret" not in html and "data-push-secret-name" in html


async def test_pause_and_remove_from_the_console(app_gateway: Any, merchant: Merchant) -> None:
    gw = await connected(app_gateway, merchant)
    page = "/console/shops/shop4"
    secret = gw.registry.stored["shop4"].bot_secrets[0].value
    await merchant.console_post(gw, page + "/pause", page=page)
    assert (await gw.ask("shop4", secret=secret))[0] == 503
    await merchant.console_post(gw, page + "/resume", page=page)
    assert (await gw.ask("shop4", secret=secret))[0] == 200
    await merchant.console_post(gw, page + "/remove", {"confirm": "shop5.myshopify.com"}, page=page)
    assert "Not removed" in flash(merchant) and "shop4" in gw.settings.shops
    await merchant.console_post(gw, page + "/remove", {"confirm": DOMAIN}, page=page)
    assert "shop4" not in gw.settings.shops and (await gw.ask("shop4", secret=secret))[0] == 404
    status, _, html = await merchant.get(gw.base_url + "/console")
    assert status == 200 and "shop4" not in html.split('id="connect"')[1]


async def test_a_config_shop_is_read_only_in_the_console(console_demo: Any, merchant: Merchant) -> None:
    demo = await console_demo()  # the shipped config.yaml: three config shops, app mode on
    gw = AppGateway(demo.base_url, demo.app, demo.app[SETTINGS], demo.store_server, lambda: 0.0)
    await merchant.sign_in(gw, DEMO_CONSOLE_TOKEN)
    _, _, html = await merchant.get(demo.base_url + "/console/shops/demo")
    assert "configured in config.yaml" in html and "Save settings" not in html and "Add a secret" not in html
    await merchant.console_post(gw, "/console/shops/demo/pause", page="/console/shops/demo")
    assert "changed there" in flash(merchant) and not gw.settings.shops["demo"].paused
    await merchant.console_post(gw, "/console/connect", {"domain": "demo.myshopify.com"})
    assert "configured in config.yaml" in flash(merchant)


def test_the_registry_leaves_out_what_it_cannot_serve_and_says_why() -> None:
    settings = parse_settings({
        "app": {"client_id": "c", "client_secret": "s" * 32, "token_key": TOKEN_KEY},
        "shops": {"demo": {"domain": "demo.myshopify.com", "auth": {"mode": "token", "access_token": "t"},
                           "secrets": ["x" * 32]}},
    }, env={})  # fmt: skip
    registry = ShopRegistry(settings.shops, settings.app)
    changed: list[str] = []
    registry.on_change(changed.append)
    secret = (StoredSecret("y" * 40, 1.0),)
    registry.replace_all([
        StoredShop("demo", "other.myshopify.com", bot_secrets=secret),  # a config shop's key
        StoredShop("dup", "demo.myshopify.com", bot_secrets=secret),  # a config shop's domain
        StoredShop("slow", "slow.myshopify.com", settings={"deadline_seconds": 600}, bot_secrets=secret),
        StoredShop("fine", "fine.myshopify.com", bot_secrets=secret),
    ])  # fmt: skip
    assert sorted(registry) == ["demo", "fine"] and registry["demo"].domain == "demo.myshopify.com"
    assert set(registry.problems) == {"demo", "dup", "slow"}
    assert "deadline_seconds" in registry.problems["slow"]
    assert registry.key_for_domain("fine.myshopify.com") == "fine"
    assert settings.model_copy(update={"shops": registry}).shop_by_domain("FINE.myshopify.com ") is not None
    registry.replace_all([])
    assert sorted(registry) == ["demo"] and registry.problems == {} and "fine" in changed
