"""The console's shop pages: "Connect a shop", one shop's settings, its secrets (shown once, rotated), pause, remove.

- **Connect a shop** (`POST /console/connect`): the operator types the shop's myshopify domain and is sent into
  Shopify's install flow (gateway.shops.install, origin "console"); Shopify's callback brings them back to the
  shop's page, where its new bot secret is shown.
- **A shop's page** (`GET /console/shops/{key}`): what the bot platform needs (the bot URL, the signature header,
  the secret), its settings, its secrets by name and date. A secret is shown once, on the first view after it was
  made; from then on only its name. Shops of config.yaml are shown read-only.
- **Edits** (connected shops only): dialect, API version, deadline, push target (URL, page id, enabled), bot and
  push secrets (add a second, then retire the first: both are accepted meanwhile), pause/resume, remove. Each is
  validated with the rules of a config shop (gateway.shops.registry.shop_settings) before it is saved, and takes
  effect on every replica without a restart.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from gateway.console.auth import operator_only
from gateway.console.handlers import back, render
from gateway.keys import SETTINGS
from gateway.shops.install import BadRequest, shop_domain
from gateway.shops.lifecycle import StaleShop, new_secret
from gateway.shops.registry import SHOP_REGISTRY, shop_settings, validation_message
from gateway.shops.setup import INSTALL_FLOW, SHOP_LIFECYCLE
from gateway.shops.store import StoredSecret, StoredShop

log = logging.getLogger(__name__)

#: The dialect choices of the settings form: value → (dialect, joinchat_version).
DIALECTS: dict[str, tuple[str, int | None]] = {
    "joinchat-1": ("joinchat", 1), "joinchat-2": ("joinchat", 2), "meetbot": ("meetbot", None),
}  # fmt: skip


def secret_name(value: str) -> str:
    """How a secret is named once it has been shown: a digest, so two can be told apart."""
    return hashlib.sha256(value.encode()).hexdigest()[:8]


def dialect_choice(settings: Any) -> str:
    if settings.dialect == "meetbot":
        return "meetbot"
    return f"joinchat-{settings.joinchat_version}"


# --- connect -------------------------------------------------------------------------------------------------------


@operator_only
async def connect(request: web.Request) -> web.StreamResponse:
    flow = request.app.get(INSTALL_FLOW)
    if flow is None:
        return back(request, "/console", "App mode is off: set app: in config.yaml to connect shops from here.")
    form = await request.post()
    try:
        domain = shop_domain(str(form.get("domain") or ""))
    except BadRequest as err:
        return back(request, "/console#connect", f"Cannot connect: {err}.")
    registry = request.app[SHOP_REGISTRY]
    key = registry.key_for_domain(domain)
    if key is not None and registry.is_config_shop(key):
        return back(request, f"/console/shops/{key}", f"{domain} is configured in config.yaml as {key}.")
    log.info("console: connecting %s (install flow started)", domain)
    # Not a redirect: the console's Content-Security-Policy (form-action 'self') forbids a form to land elsewhere,
    # so a page that goes on to Shopify by itself (and a link, if it does not), with the install's state cookie.
    redirect = flow.begin(domain, "console")
    response = render(request, "connect.html", {"title": f"Connecting {domain}", "domain": domain,
                                                "authorize_url": redirect.headers["Location"]})  # fmt: skip
    for cookie in redirect.cookies.values():
        response.cookies[cookie.key] = cookie
    return response


# --- a shop's page -------------------------------------------------------------------------------------------------


@operator_only
async def shop_page(request: web.Request) -> web.StreamResponse:
    key = request.match_info["shop"]
    registry = request.app[SHOP_REGISTRY]
    settings = request.app[SETTINGS]
    stored = registry.stored.get(key)
    shop = registry.get(key)
    if shop is None and stored is None:
        return render(request, "error.html", {"title": "Not found", "message": "No such shop."}, 404)
    revealed: list[str] = []
    if stored is not None and any(not s.shown for s in (*stored.bot_secrets, *stored.push_secrets)):
        revealed = [s.value for s in stored.bot_secrets if not s.shown]
        stored = await _mark_shown(request, key) or stored
    bot_secrets = stored.bot_secrets if stored is not None else ()
    return render(request, "shop.html", {
        "title": key, "key": key, "shop": shop, "stored": stored, "config_shop": registry.is_config_shop(key),
        "problem": registry.problems.get(key, ""), "bot_url": f"{settings.server.public_url.rstrip('/')}/bot/{key}",
        "signature_header": _signature_header(shop), "revealed": revealed,
        "secrets": [(secret_name(s.value), s.created_at) for s in bot_secrets],
        "push_secrets": [(secret_name(s.value), s.created_at) for s in stored.push_secrets] if stored else [],
        "dialects": DIALECTS, "dialect": dialect_choice(shop) if shop is not None else "joinchat-1",
        "push": (stored.settings.get("push") or {}) if stored is not None else {},
    })  # fmt: skip


def _signature_header(shop: Any) -> str:
    if shop is None:
        return ""
    return "X-Hub-Signature (sha256=hex)" if shop.dialect == "meetbot" else "X-Joinchat-Signature (base64)"


async def _mark_shown(request: web.Request, key: str) -> StoredShop | None:
    def shown(shop: StoredShop) -> StoredShop:
        return shop.with_changes(
            bot_secrets=tuple(StoredSecret(s.value, s.created_at, True) for s in shop.bot_secrets),
            push_secrets=tuple(StoredSecret(s.value, s.created_at, True) for s in shop.push_secrets),
        )

    try:
        return await request.app[SHOP_LIFECYCLE].edit(key, shown)
    except StaleShop:
        return None


# --- edits ---------------------------------------------------------------------------------------------------------


async def _edit(request: web.Request, change: Callable[[StoredShop], StoredShop], done: str) -> web.Response:
    """Validate the changed shop as a config shop would be, save it, back to its page with `done` or the reason."""
    key = request.match_info["shop"]
    registry = request.app[SHOP_REGISTRY]
    app_settings = request.app[SETTINGS].app
    page = f"/console/shops/{key}"
    if key not in registry.stored or app_settings is None:
        message = "Shops of config.yaml are changed there." if registry.is_config_shop(key) else "No such shop."
        return back(request, page if registry.is_config_shop(key) else "/console", message)
    problems: list[str] = []

    def checked(shop: StoredShop) -> StoredShop:
        changed = change(shop)
        try:
            shop_settings(changed, app_settings)
        except ValidationError as err:
            problems.append(validation_message(err))
            return shop  # saved unchanged: nothing happens
        return changed

    try:
        await request.app[SHOP_LIFECYCLE].edit(key, checked)
    except (StaleShop, ValueError) as err:
        return back(request, page, f"Not saved: {err}")
    if problems:
        return back(request, page, f"Not saved: {problems[0]}")
    log.info("console: shop %s: %s", key, done)
    return back(request, page, done)


@operator_only
async def save_settings(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    dialect, version = DIALECTS.get(str(form.get("dialect")), ("joinchat", 1))
    push_url = str(form.get("push_url") or "").strip()
    typed_secret = str(form.get("push_secret") or "").strip()

    def change(shop: StoredShop) -> StoredShop:
        settings: dict[str, Any] = {**shop.settings, "dialect": dialect}
        settings.pop("joinchat_version", None)
        if version is not None:
            settings["joinchat_version"] = version
        for name, cast in (("api_version", str), ("deadline_seconds", float)):
            value = str(form.get(name) or "").strip()
            if value:
                settings[name] = cast(value)
        push_secrets = shop.push_secrets
        if push_url:
            settings["push"] = {**(settings.get("push") or {}), "url": push_url,
                                "page_id": str(form.get("page_id") or "").strip(),
                                "enabled": form.get("push_enabled") == "on"}  # fmt: skip
        else:
            settings.pop("push", None)
        if typed_secret:
            push_secrets = (*push_secrets, StoredSecret(typed_secret, _now(request), True))
        return shop.with_changes(settings=settings, push_secrets=push_secrets)

    try:
        return await _edit(request, change, "Settings saved.")
    except ValueError:
        return back(request, f"/console/shops/{request.match_info['shop']}", "Not saved: the deadline is a number.")


@operator_only
async def add_secret(request: web.Request) -> web.StreamResponse:
    def change(shop: StoredShop) -> StoredShop:
        return shop.with_changes(bot_secrets=(*shop.bot_secrets, StoredSecret(new_secret(), _now(request))))

    return await _edit(request, change, "A second secret was added: both are accepted. Give the platform the new "
                       "one, then retire the old one.")  # fmt: skip


@operator_only
async def retire_secret(request: web.Request) -> web.StreamResponse:
    name, kind = request.match_info["name"], request.match_info["kind"]

    def change(shop: StoredShop) -> StoredShop:
        current = shop.bot_secrets if kind == "secrets" else shop.push_secrets
        kept = tuple(s for s in current if secret_name(s.value) != name)
        if len(kept) == len(current):
            raise ValueError("no such secret")
        if not kept and (kind == "secrets" or shop.settings.get("push")):
            raise ValueError("the last secret cannot be retired: add another first")
        return shop.with_changes(**{"bot_secrets" if kind == "secrets" else "push_secrets": kept})

    return await _edit(request, change, f"Secret {name} retired: it is no longer accepted.")


@operator_only
async def pause(request: web.Request) -> web.StreamResponse:
    return await _edit(request, lambda shop: shop.with_changes(paused=True),
                       "Paused: bot queries answer 503 and pushes wait; webhooks are still taken.")  # fmt: skip


@operator_only
async def resume(request: web.Request) -> web.StreamResponse:
    return await _edit(request, lambda shop: shop.with_changes(paused=False), "Resumed.")


@operator_only
async def remove(request: web.Request) -> web.StreamResponse:
    key = request.match_info["shop"]
    registry = request.app[SHOP_REGISTRY]
    stored = registry.stored.get(key)
    form = await request.post()
    if stored is None:
        return back(request, "/console", "No such connected shop.")
    if str(form.get("confirm") or "").strip().lower() != stored.domain:
        return back(request, f"/console/shops/{key}", f"Not removed: type {stored.domain} to confirm.")
    await request.app[SHOP_LIFECYCLE].remove(key)
    log.info("console: shop %s removed", key)
    return back(request, "/console", f"{key} removed. Uninstall the app in Shopify's admin to stop its webhooks.")


def _now(request: web.Request) -> float:
    return request.app[SHOP_LIFECYCLE].clock()


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_post("/console/connect", connect)
    r.add_get("/console/shops/{shop}", shop_page)
    r.add_post("/console/shops/{shop}/settings", save_settings)
    r.add_post("/console/shops/{shop}/secrets", add_secret)
    r.add_post("/console/shops/{shop}/{kind:secrets|push-secrets}/{name:[0-9a-f]{8}}/retire", retire_secret)
    r.add_post("/console/shops/{shop}/pause", pause)
    r.add_post("/console/shops/{shop}/resume", resume)
    r.add_post("/console/shops/{shop}/remove", remove)
