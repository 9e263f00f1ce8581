"""The operator console in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright), on the shipped
demo with the local store and the local receiver. Screenshots go to test-output/console/ (one is docs/console.png).

In CI (CI set) these tests must run: a missing Chromium is a failure, not a skip (`make test` installs it). Elsewhere
they skip, saying why, when there is no Chromium. Playwright's own browser download is never used.

Product images live on Shopify's CDN, which this machine cannot reach: the browser gets a small drawn stand-in for
each cdn.shopify.com image (the page's <img> keeps the real URL), so the screenshots look like a real store's.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.push.records import PushStatus
from tests.fixtures_console import CONSOLE_TOKEN, ConsoleDemo
from tests.fixtures_push import BotReceiver, eventually

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
OUTPUT = Path(__file__).resolve().parent.parent / "test-output" / "console"


def _need_chromium() -> None:
    missing = not Path(CHROMIUM).exists()
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        missing = True
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI: the browser tests need {CHROMIUM} and playwright (make test installs them)")
        pytest.skip(f"no Chromium at {CHROMIUM} or no playwright (apt-get install chromium; pip install playwright)")


def _stand_in_image(url: str) -> bytes:
    """A drawn square with the product's initials, coloured by its URL."""
    name = url.rsplit("/", 1)[-1].split(".")[0]
    initials = "".join(w[0] for w in name.split("-")[:2]).upper() or "?"
    hue = int(hashlib.sha256(url.encode()).hexdigest()[:2], 16) * 360 // 256
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="128" height="128" viewBox="0 0 128 128">'
        f'<rect width="128" height="128" rx="16" fill="hsl({hue},55%,62%)"/>'
        f'<text x="64" y="78" font-family="sans-serif" font-size="44" font-weight="700" fill="#fff" '
        f'text-anchor="middle">{initials}</text></svg>'
    ).encode()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    _need_chromium()
    from playwright.async_api import async_playwright

    OUTPUT.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        instance = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield instance
        finally:
            await instance.close()


async def new_page(browser: Any, width: int = 1280, height: int = 900) -> Any:
    context = await browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1)

    async def cdn(route: Any) -> None:
        await route.fulfill(status=200, content_type="image/svg+xml", body=_stand_in_image(route.request.url))

    await context.route("https://cdn.shopify.com/**", cdn)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    return page


async def sign_in(page: Any, demo: ConsoleDemo) -> None:
    await page.goto(demo.base_url + "/console")
    assert page.url.endswith("/console/login")  # signed out: the login page, nothing else
    await page.get_by_label("Console token").fill(CONSOLE_TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(demo.base_url + "/console")


async def shot(page: Any, name: str, full_page: bool = True) -> Path:
    path = OUTPUT / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    return path


async def test_sign_in_and_see_the_three_demo_shops_healthy(console_demo: Any, browser: Any) -> None:
    demo: ConsoleDemo = await console_demo()
    page = await new_page(browser)
    await page.goto(demo.base_url + "/console/login")
    await page.get_by_label("Console token").fill("wrong-token-wrong")
    await page.get_by_role("button", name="Sign in").click()
    assert await page.get_by_role("alert").inner_text() == "That token is not right."
    await shot(page, "login-wrong-token", full_page=False)
    await sign_in(page, demo)
    for key in ("demo", "demo-v2", "demo-meetbot"):
        section = page.locator(f"#shop-{key}")
        assert await section.locator(".badge-ok", has_text="Healthy").is_visible(), key
        assert await section.get_by_text("reachable", exact=True).is_visible()
    await shot(page, "shops")
    small = await new_page(browser, 360, 740)
    await sign_in(small, demo)
    # usable at 360 px: nothing wider than the screen
    assert await small.evaluate("document.documentElement.scrollWidth") <= 360
    await shot(small, "shops-360", full_page=False)


async def test_delete_a_subscription_see_it_missing_and_repair_it(console_demo: Any, browser: Any) -> None:
    demo: ConsoleDemo = await console_demo()
    page = await new_page(browser)
    await sign_in(page, demo)
    await demo.delete_subscription("demo.myshopify.com", "FULFILLMENTS_CREATE")
    await page.reload()
    section = page.locator("#shop-demo")
    topic = section.locator('[data-topic="FULFILLMENTS_CREATE"]')
    assert await topic.get_attribute("data-state") == "missing"
    assert await topic.locator(".badge").inner_text() == "missing"
    assert await section.get_by_text("Needs attention").is_visible()
    await section.scroll_into_view_if_needed()
    repair = section.get_by_role("button", name="Repair webhook subscriptions")
    await repair.focus()
    await shot(page, "shops-missing-subscription")
    await repair.click()
    await page.wait_for_load_state()
    assert "webhook subscriptions repaired (FULFILLMENTS_CREATE)" in await page.get_by_role("status").inner_text()
    section = page.locator("#shop-demo")
    assert await section.locator('[data-topic="FULFILLMENTS_CREATE"]').get_attribute("data-state") == "present"
    assert await section.get_by_text("Healthy").is_visible()


async def test_receiver_fails_dead_push_retried_after_recovery(
    console_demo: Any, browser: Any, bot_receiver: BotReceiver
) -> None:
    demo: ConsoleDemo = await console_demo(push={"max_age_seconds": 0.5})
    page = await new_page(browser)
    await sign_in(page, demo)
    bot_receiver.fail_next(1000, status=503)
    await demo.store_post("/_sandbox/demo.myshopify.com/orders/1002/paid")
    await eventually(lambda: demo.push_store.outbox.list_pushes("demo", [PushStatus.DEAD]), what="a dead push")
    await page.get_by_role("link", name="Pushes").click()
    await page.get_by_label("Status").select_option("dead")
    await page.get_by_role("button", name="Filter").click()
    dead = page.locator('li.push[data-status="dead"]').first
    assert "HTTP 503" in await dead.locator(".reason").inner_text()
    push_id = await dead.get_attribute("data-push-id")
    await shot(page, "pushes-dead")
    await dead.locator(".push-title").click()
    assert await page.locator("table.attempts tbody tr").count() >= 2
    assert "503" in await page.locator("table.attempts tbody tr").first.inner_text()
    await shot(page, "push-attempts")
    bot_receiver.failures_left = 0  # the platform is back
    await page.get_by_role("button", name="Retry now").click()
    await page.wait_for_load_state()
    assert f"Push {push_id} queued again." in await page.get_by_role("status").inner_text()
    await bot_receiver.wait_for(lambda r: len(r.delivered("Order/Receipt")) == 1)

    async def delivered() -> bool:
        await page.reload()
        return await page.locator("h1 .badge").inner_text() == "delivered"

    await eventually(delivered, what="the retried push delivered on the page")
    assert "200" in await page.locator("table.attempts tbody tr").last.inner_text()


async def test_preview_order_1001_image_and_total_in_the_card(console_demo: Any, browser: Any) -> None:
    demo: ConsoleDemo = await console_demo()
    page = await new_page(browser)
    await sign_in(page, demo)
    await page.get_by_role("link", name="Preview").click()
    await page.get_by_label("Order number").fill("1001")
    await page.get_by_role("button", name="Preview").click()
    card = page.get_by_role("article", name="Receipt card for order #1001")
    await card.wait_for()
    image = card.locator("img.element-img").first
    assert (await image.get_attribute("src")).startswith("https://cdn.shopify.com/")
    assert await image.evaluate("img => img.complete && img.naturalWidth > 0")  # it rendered
    total = card.locator("dd.total")
    order = demo.store_server.shop("demo.myshopify.com").order_by_name("#1001")
    amount = order["totalPriceSet"]["presentmentMoney"]["amount"]  # type: ignore[index]
    assert f"{float(amount):,.2f}" in await total.inner_text()
    assert await total.is_visible()
    assert await page.locator("article.package").count() == 2
    await shot(page, "preview-1001")
    small = await new_page(browser, 360, 740)
    await sign_in(small, demo)
    await small.goto(demo.base_url + "/console/preview?shop=demo&order=1001")
    assert await small.evaluate("document.documentElement.scrollWidth") <= 360
    await small.get_by_role("article", name="Receipt card for order #1001").scroll_into_view_if_needed()
    await shot(small, "preview-1001-360", full_page=False)


async def test_preview_of_an_order_bought_in_french_shows_french_package_statuses(
    console_demo: Any, browser: Any
) -> None:
    demo: ConsoleDemo = await console_demo()
    page = await new_page(browser)
    await sign_in(page, demo)
    await page.goto(demo.base_url + "/console/preview?shop=demo&order=1031")  # customerLocale "fr-Fr"
    packages = page.locator("article.package")
    await packages.first.wait_for()
    badges = packages.locator(".badge")
    assert await badges.all_inner_texts() == ["Livré", "En cours d'acheminement"]
    assert await badges.first.get_attribute("lang") == "fr"
    await packages.last.scroll_into_view_if_needed()
    await shot(page, "preview-1031-fr")


async def test_every_button_shows_focus_pressed_and_disabled(console_demo: Any, browser: Any) -> None:
    demo: ConsoleDemo = await console_demo()
    page = await new_page(browser)
    await sign_in(page, demo)
    repair = page.locator("#shop-demo form.inline button")  # by place: "…" joins its name while it works
    assert await repair.inner_text() == "Repair webhook subscriptions"
    await repair.focus()
    await page.keyboard.press("Shift+Tab")
    await page.keyboard.press("Tab")  # keyboard focus: :focus-visible
    outline = await repair.evaluate("b => getComputedStyle(b).outlineStyle + ' ' + getComputedStyle(b).outlineWidth")
    assert outline.startswith("solid") and not outline.endswith(" 0px"), outline
    # pressed: once its form is sent, the button says so and cannot be pressed twice (the navigation is held back
    # here, after the console's own submit handler ran, so the state can be looked at)
    await page.evaluate("window.addEventListener('submit', (e) => e.preventDefault())")
    await repair.click()
    await eventually(repair.is_disabled, what="the button disabled once pressed")
    assert await repair.get_attribute("aria-pressed") == "true"
    assert await repair.evaluate("b => getComputedStyle(b, '::after').content") == '"…"'
    await shot(page, "button-pressed", full_page=False)
    # disabled: no repair while Shopify cannot be reached
    demo.store_server.faults.set(error_rate=1.0)
    await page.goto(demo.base_url + "/console")
    assert await page.locator("#shop-demo").get_by_role("button", name="Repair webhook subscriptions").is_disabled()
    assert await page.locator("#shop-demo").locator(".flash-bad", has_text="Shopify not reachable").is_visible()
    demo.store_server.faults.clear()
    # the pushes page at 360 px
    small = await new_page(browser, 360, 740)
    await sign_in(small, demo)
    await small.goto(demo.base_url + "/console/pushes")
    assert await small.evaluate("document.documentElement.scrollWidth") <= 360
    await shot(small, "pushes-360", full_page=False)
