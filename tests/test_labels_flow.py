"""Package labels in the shopper's language, end to end over HTTP: a bot platform asking the gateway in each dialect,
the gateway reading the local store (orders #1030 zh-CN, #1031 fr-Fr, #1032 is-IS: the same order in three
languages), the shop's primary locale read once, merchant overrides, and pushes that say the same as the replies."""

from __future__ import annotations

import html
import re
from typing import Any

import aiohttp
import pytest

from gateway.app import create_app
from localstore import SandboxServer
from localstore.seed import LOCALE_FIXTURES
from tests.fixtures_push import QUERY_SECRET, SHOP_KEY, BotReceiver, SandboxGateway, wait_until_settled
from tests.fixtures_query import DEFAULT_DOMAINS, AiohttpClient, Platform, envelope, query_settings
from tests.fixtures_sandbox import SANDBOX_DOMAIN, gql

#: What each of the locale fixtures' two packages (#N.1 DELIVERED, #N.2 IN_TRANSIT) reads, when the shop's primary
#: locale is German: the order's language, its base language, else the shop's.
EXPECTED = {
    "#1030": ("已签收", "运输中"),  # zh-CN: its own file
    "#1031": ("Livré", "En cours d'acheminement"),  # fr-Fr: normalised to fr-FR, then its base language fr
    "#1032": ("Zugestellt", "Unterwegs"),  # is-IS: no Icelandic labels, so the shop's primary locale (de)
}
ENGLISH = ("Delivered", "In transit")


def packages_of(shop_key: str, reply: Any) -> list[dict[str, Any]]:
    """The packages list of a `packages` reply in the shop's dialect (joinchat v2: `data`)."""
    assert reply.status == 200 and reply.json["success"] is True, reply.json
    return list(reply.json["data" if shop_key == "jc2" else "packages"])


async def statuses(platform: Platform, shop_key: str, order_name: str) -> tuple[str, ...]:
    reply = await platform.query(shop_key, "packages", {"order_number": order_name.lstrip("#")})
    return tuple(p["package_status"] for p in packages_of(shop_key, reply))


async def test_the_store_seeds_orders_in_several_languages(query_store: SandboxServer) -> None:
    shop = query_store.shop(DEFAULT_DOMAINS["jc1"])
    assert {name: shop.order_by_name(name)["customerLocale"] for name in LOCALE_FIXTURES} == {  # type: ignore[index]
        "#1030": "zh-CN",
        "#1031": "fr-Fr",
        "#1032": "is-IS",
    }
    assert shop.order_by_name("#1001")["customerLocale"] == "en"  # type: ignore[index]
    assert len({order["customerLocale"] for order in shop.orders}) >= 8  # generated orders speak several too


async def test_the_store_serves_shop_locales_as_shopify_does(sandbox: SandboxServer) -> None:
    document = "{ shopLocales(published: true) { locale name primary published } }"
    body = await gql(sandbox, document)
    assert body["data"]["shopLocales"][0] == {"locale": "en", "name": "English", "primary": True, "published": True}
    assert [loc["primary"] for loc in body["data"]["shopLocales"]].count(True) == 1
    async with aiohttp.ClientSession() as http:  # the merchant changes the default language
        url = f"{sandbox.base_url}/_sandbox/{SANDBOX_DOMAIN}/settings"
        async with http.post(url, json={"primary_locale": "fr"}) as resp:
            assert resp.status == 200 and (await resp.json())["primary_locale"] == "fr"
    body = await gql(sandbox, document)
    assert [(loc["locale"], loc["primary"]) for loc in body["data"]["shopLocales"]][:2] == [("fr", True), ("en", False)]
    sandbox.shop(SANDBOX_DOMAIN).access_scopes.remove("read_locales")
    body = await gql(sandbox, document)
    assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"
    assert body["errors"][0]["path"] == ["shopLocales"]


@pytest.mark.parametrize("shop_key", ["jc1", "jc2", "mb"])
async def test_each_dialect_answers_in_the_orders_language(
    aiohttp_client: AiohttpClient, query_store: SandboxServer, shop_key: str
) -> None:
    query_store.shop(DEFAULT_DOMAINS[shop_key]).primary_locale = "de"
    platform = Platform(await aiohttp_client(create_app(query_settings(query_store.base_url))), query_store)
    for name, expected in EXPECTED.items():
        assert await statuses(platform, shop_key, name) == expected, name
    assert await statuses(platform, shop_key, "#1001") == ENGLISH  # bought in English
    # a lookup by package number reads the same order, in the same language
    by_number = await platform.query(shop_key, "packages", {"package_number": "1031.2"})
    assert [p["package_status"] for p in packages_of(shop_key, by_number)] == ["En cours d'acheminement"]


@pytest.mark.parametrize("shop_key", ["jc1", "jc2", "mb"])
async def test_an_untranslated_order_ends_in_english_when_the_shop_has_no_language_we_know(
    aiohttp_client: AiohttpClient, query_store: SandboxServer, shop_key: str
) -> None:
    store_shop = query_store.shop(DEFAULT_DOMAINS[shop_key])
    store_shop.primary_locale = "sw"
    platform = Platform(await aiohttp_client(create_app(query_settings(query_store.base_url))), query_store)
    assert await statuses(platform, shop_key, "#1032") == ENGLISH
    assert await statuses(platform, shop_key, "#1030") == EXPECTED["#1030"]


async def test_without_read_locales_an_untranslated_order_is_in_english_and_asked_once(
    aiohttp_client: AiohttpClient, query_store: SandboxServer
) -> None:
    domain = DEFAULT_DOMAINS["jc1"]
    store_shop = query_store.shop(domain)
    store_shop.primary_locale = "de"
    store_shop.access_scopes.remove("read_locales")  # Shopify refuses shopLocales (ACCESS_DENIED)
    platform = Platform(await aiohttp_client(create_app(query_settings(query_store.base_url))), query_store)
    query_store.reset_counters()
    assert await statuses(platform, "jc1", "#1032") == ENGLISH
    assert query_store.graphql_requests(domain) == 2  # the order, the refused shopLocales
    other = await store_shop.create_order(email="sw@example.com", customer_locale="sw")
    await store_shop.create_fulfillment(other["id"], tracking_numbers=["SWAHILI001"], display_status="IN_TRANSIT")
    assert await statuses(platform, "jc1", other["name"]) == ("In transit",)
    assert query_store.graphql_requests(domain) == 3  # the refusal is remembered: not asked again per lookup


async def test_the_language_costs_no_extra_request_and_the_shop_language_is_read_once(
    aiohttp_client: AiohttpClient, query_store: SandboxServer
) -> None:
    """The order's `customerLocale` comes with the packages request itself; `shopLocales` is read once per shop, and
    only when an order's own language has no labels."""
    domain = DEFAULT_DOMAINS["jc1"]
    store_shop = query_store.shop(domain)
    store_shop.primary_locale = "de"
    platform = Platform(await aiohttp_client(create_app(query_settings(query_store.base_url))), query_store)
    query_store.reset_counters()
    assert await statuses(platform, "jc1", "#1001") == ENGLISH
    assert query_store.graphql_requests(domain) == 1
    assert await statuses(platform, "jc1", "#1030") == EXPECTED["#1030"]
    assert await statuses(platform, "jc1", "#1031") == EXPECTED["#1031"]
    assert query_store.graphql_requests(domain) == 3  # one request per lookup, as before labels had languages
    assert await statuses(platform, "jc1", "#1032") == EXPECTED["#1032"]
    assert query_store.graphql_requests(domain) == 5  # the first untranslated order: its request + shopLocales
    for locale in ("sw", None):  # another untranslated order, and one with no language at all
        other = await store_shop.create_order(email="other@example.com", customer_locale=locale)
        await store_shop.create_fulfillment(
            other["id"], tracking_numbers=[f"OTHER{locale}"], display_status="DELIVERED"
        )
        before = query_store.graphql_requests(domain)
        assert await statuses(platform, "jc1", other["name"]) == ("Zugestellt",)
        assert query_store.graphql_requests(domain) == before + 1  # the shop's language is cached


async def test_overrides_win_over_built_in_labels_per_locale_and_flat(
    aiohttp_client: AiohttpClient, query_store: SandboxServer
) -> None:
    overrides = {
        "IN_TRANSIT": "On its way",  # flat: English
        "fr": {"IN_TRANSIT": "En route"},
        "zh-cn": {"DELIVERED": "已送到"},
        "is": {"DELIVERED": "Afhent"},  # a language only the merchant writes
    }
    settings = query_settings(
        query_store.base_url, shop_overrides={k: {"status_labels": overrides} for k in ("jc1", "mb")}
    )
    platform = Platform(await aiohttp_client(create_app(settings)), query_store)
    for shop_key in ("jc1", "mb"):
        assert await statuses(platform, shop_key, "#1001") == ("Delivered", "On its way")
        assert await statuses(platform, shop_key, "#1030") == ("已送到", "运输中")
        assert await statuses(platform, shop_key, "#1031") == ("Livré", "En route")
        assert await statuses(platform, shop_key, "#1032") == ("Afhent", "On its way")  # then the shop's (en)
    assert await statuses(platform, "jc2", "#1031") == EXPECTED["#1031"]  # a shop without overrides


async def test_a_push_and_the_packages_reply_say_the_same_for_an_order_in_french(
    sandbox_gateway: Any, sandbox: SandboxServer, bot_receiver: BotReceiver
) -> None:
    """package/update carries codes (`tracking_status`), no readable label: the reply's French label and the push's
    code describe the same package, and nothing English leaks into either."""
    gw: SandboxGateway = await sandbox_gateway(push={"unpaid_delay_seconds": 3600})
    shop = sandbox.shop(SANDBOX_DOMAIN)
    order = await shop.create_order(email="chloe@example.fr", customer_locale="fr-Fr",
                                    note_attributes={"joinchat_psid": "PSID-FR"})  # fmt: skip
    fulfillment = await shop.create_fulfillment(order["id"], tracking_numbers=["COLIS0001"], company="La Poste")
    await shop.add_fulfillment_event(fulfillment["id"], "out_for_delivery")
    await sandbox.webhooks.drain()
    await wait_until_settled(gw.store)
    await bot_receiver.wait_for(lambda r: len(r.delivered("package/update")) == 2)
    pushed = [p.body["params"] for p in bot_receiver.delivered("package/update")]
    assert [p["tracking_status"] for p in pushed] == ["shipped", "out_for_delivery"]
    reply = await Platform(gw.client).ask(
        SHOP_KEY, envelope(SHOP_KEY, "packages", {"order_number": order["name"].lstrip("#")}), secret=QUERY_SECRET
    )
    [package] = packages_of(SHOP_KEY, reply)
    assert package["package_status"] == "En cours de livraison"
    for params in pushed:
        assert (params["tracking_number"], params["carrier"], params["tracking_url"]) == (
            package["tracking_number"],
            package["carrier"],
            package["tracking_url"],
        )
        assert set(params) == {"tracking_number", "image_url", "tracking_url", "carrier", "recipient_name",
                               "tracking_status"}  # fmt: skip


async def test_the_console_preview_draws_the_package_card_in_the_orders_language(
    console_demo: Any, operator: Any
) -> None:
    from tests.test_console_http import answers_on_page, bot_answer, signed_in

    demo = await console_demo()
    op = await signed_in(demo, operator)
    status, page, _ = await op.get("/console/preview?shop=demo&order=1031")
    assert status == 200
    text = html.unescape(page)
    cards = re.findall(r'<span class="badge badge-ok" lang="([^"]*)">([^<]*)</span>', text)
    assert cards == [("fr", "Livré"), ("fr", "En cours d'acheminement")]
    assert "Statuses in Français (fr)" in text
    live = await bot_answer(demo, "demo", {"method": "packages", "params": {"order_number": "1031"}})
    assert answers_on_page(page)[("JoinChat v1", "packages")] == live  # the card and the wire agree
    assert [p["package_status"] for p in live["packages"]] == ["Livré", "En cours d'acheminement"]
    status, page, _ = await op.get("/console/preview?shop=demo&order=1030")
    assert "运输中" in page and "Statuses in 简体中文 (zh-CN)" in html.unescape(page)
