"""A newcomer connects a fourth shop in a real headless Chromium, on the shipped demo (config.yaml's app mode on the
local store): "Connect a shop" in the console → the local store's install page → "Install" → back in the console
with the shop's bot URL and secret (shown once) → the shop listed → `gateway ask` it. Screenshots in
test-output/console/ (connect-*.png)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.push.subscriptions import TOPICS
from tests.fixtures_console import ConsoleDemo
from tests.fixtures_push import eventually, run_cli, write_config
from tests.test_console_browser import browser, new_page, shot, sign_in  # noqa: F401 (browser: its fixture)

pytestmark = pytest.mark.browser

DOMAIN = "fourth-shop.myshopify.com"


async def test_connect_a_fourth_shop_in_the_browser_then_ask_it(
    console_demo: Any, browser: Any, tmp_path: Path  # noqa: F811 (the fixture imported above)
) -> None:
    demo: ConsoleDemo = await console_demo()
    page = await new_page(browser)
    await sign_in(page, demo)
    connect = page.locator("#connect")
    await connect.get_by_label("Shop domain").fill(DOMAIN)
    await shot(page, "connect-form", full_page=False)
    await connect.get_by_role("button", name="Connect").click()

    await page.wait_for_url(demo.store_server.base_url + "/admin/oauth/authorize?**")
    assert DOMAIN in await page.locator("body").inner_text()
    await shot(page, "connect-install-page", full_page=False)
    await page.get_by_role("button", name="Install").click()

    await page.wait_for_url(demo.base_url + "/console/shops/fourth-shop")
    secret = (await page.locator("[data-secret]").inner_text()).strip()
    bot_url = (await page.locator("[data-bot-url]").inner_text()).strip()
    assert len(secret) >= 32 and bot_url == demo.base_url + "/bot/fourth-shop"
    await shot(page, "connect-shop-page")
    await page.reload()
    assert await page.locator("[data-secret]").count() == 0  # shown once

    store_shop = demo.store_server.shop(DOMAIN)
    await eventually(lambda: len(store_shop.webhook_subscriptions) == len(TOPICS), what="the new shop's subscriptions")
    await page.goto(demo.base_url + "/console")
    section = page.locator("#shop-fourth-shop")
    assert await section.get_by_text("connected from the browser").is_visible()
    assert await section.locator(".badge-ok", has_text="Healthy").is_visible()
    await shot(page, "connect-listed")

    raw = json.loads(json.dumps(demo.raw_config))
    config = write_config(tmp_path / "config.yaml", raw)
    result = await run_cli("ask", "--config", str(config), "--url", demo.base_url, "fourth-shop", "orders",
                           "-p", "order_number=1001")  # fmt: skip
    assert result.code == 0, result.out
    assert [o["order_number"] for o in json.loads(result.out)["orders"]] == ["1001"]
