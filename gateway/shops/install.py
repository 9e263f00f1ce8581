"""Shopify's install flow (authorization-code grant), as Shopify's own app library performs it.

`GET /shopify/install` is the app's App URL. Shopify opens it with `shop`, `timestamp`, `hmac` (and `host`):
1. the `hmac` is checked (hex HMAC-SHA256 of the sorted query without `hmac`/`signature`, keyed with the app's
   client secret, constant time: ShopifyAPI's `Session.validate_hmac`), the `timestamp` must be within
   `app.max_clock_skew_seconds` of now, and `shop` must be `<name>.myshopify.com`;
2. the merchant is sent to `https://{shop}/admin/oauth/authorize` with `client_id`, `scope`, `redirect_uri` =
   `{server.public_url}/shopify/callback` and a `state` nonce, which also goes into a signed cookie that lives ten
   minutes (HttpOnly, SameSite=Lax so it comes back on Shopify's redirect, Path=/shopify).
   With the local store (`app.admin_api_base`) the authorize page is the store's and `shop` names the shop on it.

`GET /shopify/callback` (Shopify's redirect, with `code`, `shop`, `state`, `timestamp`, `hmac`): the same checks,
the `state` against the cookie's nonce (constant time; the cookie is then cleared, so a state serves once), then
`POST /admin/oauth/access_token` with the code and `expiring=1` (gateway.shops.tokens), the shop is connected
(gateway.shops.lifecycle), its webhook subscriptions are created in the background (the same `sync_shop` as
`gateway webhooks sync`), and the browser goes on: to the console's page of the shop when the operator started
the install there ("Connect a shop"), else to a short page telling the merchant the shop is connected.

Every refusal is a small HTML page with a 4xx that says what is wrong (never a traceback, never a secret).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import shopify
from aiohttp import web
from itsdangerous import BadData, URLSafeSerializer

from gateway.settings import AppSettings
from gateway.shopify.errors import ShopifyUnavailable
from gateway.shops.lifecycle import Installed, InstallRefused, ShopLifecycle
from gateway.shops.store import ShopStatus, TokenSet
from gateway.shops.tokens import AppTokenEndpoint, TokenRefused

log = logging.getLogger(__name__)

INSTALL_PATH = "/shopify/install"
CALLBACK_PATH = "/shopify/callback"
STATE_COOKIE = "shopify_install"
STATE_SECONDS = 600
#: Shopify's shop domains (the issue's and Shopify's library's rule; compared in lower case).
SHOP_DOMAIN = re.compile(r"[a-z0-9][a-z0-9-]*\.myshopify\.com")
#: Where the install may have been started: Shopify's admin ("shopify") or the operator console ("console").
ORIGINS = ("shopify", "console")


class BadRequest(Exception):
    """An install or callback request to refuse; the message is shown to the merchant."""


def shop_domain(value: str) -> str:
    """A shop's myshopify domain from what was given (trimmed, lower case), or BadRequest."""
    domain = value.strip().lower()
    if not SHOP_DOMAIN.fullmatch(domain):
        raise BadRequest("the shop must be a domain like my-store.myshopify.com")
    return domain


@dataclass(frozen=True, slots=True)
class InstallState:
    nonce: str
    shop: str
    origin: str
    expires_at: float


class InstallFlow:
    """The two routes' logic over one app's settings; the HTTP session and the clock are injected."""

    def __init__(
        self,
        app: AppSettings,
        public_url: str,
        lifecycle: ShopLifecycle,
        endpoint: Callable[[], AppTokenEndpoint],
        *,
        after_install: Callable[[Installed], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.public_url = public_url.rstrip("/")
        self.lifecycle = lifecycle
        self._endpoint = endpoint
        self._after_install = after_install
        self.clock = clock
        secret = app.client_secret.get_secret_value()
        # ShopifyAPI keeps the app's credentials on its Session class: a subclass of our own holds this app's, so
        # two apps in one process (tests, replicas) never share them.
        self._session_class: Any = type("AppSession", (shopify.Session,), {"api_key": app.client_id, "secret": secret})
        # signed as the console signs its cookies (itsdangerous), with a salt of its own
        self._states = URLSafeSerializer(secret, salt="shopify-install-state",
                                         signer_kwargs={"digest_method": hashlib.sha256})  # fmt: skip

    @property
    def redirect_uri(self) -> str:
        return self.public_url + CALLBACK_PATH

    # --- checks ----------------------------------------------------------------------------------------------------

    def verified_query(self, request: web.Request) -> dict[str, str]:
        """The query, once its hmac, timestamp and shop are right; else BadRequest."""
        params: dict[str, object] = {}
        for name in request.query:
            values = request.query.getall(name)
            if name.endswith("[]"):
                params[name] = list(values)
            elif len(values) > 1:
                raise BadRequest(f"the parameter {name!r} is given twice")
            else:
                params[name] = values[0]
        params.pop("signature", None)  # Shopify's library leaves `signature` out of the hmac, as `hmac` itself
        given = params.get("hmac")
        if not isinstance(given, str) or not given:
            raise BadRequest("the request is not signed by Shopify (no hmac)")
        if not self._session_class.validate_hmac(params):
            raise BadRequest("the request's signature (hmac) is not Shopify's")
        try:
            timestamp = int(str(params.get("timestamp", "")))
        except ValueError:
            raise BadRequest("the request has no valid timestamp") from None
        if abs(self.clock() - timestamp) > self.app.max_clock_skew_seconds:
            raise BadRequest("the request is too old (or its clock is off): start the installation again")
        return {k: v for k, v in params.items() if isinstance(v, str)}

    # --- state cookie ----------------------------------------------------------------------------------------------

    def state_cookie(self, state: InstallState) -> str:
        return self._states.dumps([state.nonce, state.shop, state.origin, state.expires_at])

    def read_state(self, cookie: str | None) -> InstallState:
        try:
            nonce, shop, origin, expires_at = self._states.loads(cookie or "")
        except (BadData, ValueError, TypeError):
            raise BadRequest("this browser did not start this installation (no install cookie): start it again") from None
        if float(expires_at) <= self.clock():
            raise BadRequest("the installation took too long: start it again")
        return InstallState(str(nonce), str(shop), str(origin), float(expires_at))

    # --- the redirect to Shopify -----------------------------------------------------------------------------------

    def authorize_url(self, shop: str, state: str) -> str:
        query = {"client_id": self.app.client_id, "scope": ",".join(self.app.scopes), "redirect_uri": self.redirect_uri,
                 "state": state}  # fmt: skip
        if self.app.admin_api_base:
            # the local store serves many shops at one address: it is told which one (Shopify knows by its host)
            query["shop"] = shop
        base = self.app.admin_api_base or f"https://{shop}"
        return f"{base}/admin/oauth/authorize?{urlencode(query)}"

    def begin(self, shop: str, origin: str) -> web.Response:
        """Send the browser to Shopify's authorize page, the state nonce in a signed cookie."""
        state = InstallState(secrets.token_urlsafe(24), shop, origin, self.clock() + STATE_SECONDS)
        response = web.Response(status=302, headers={"Location": self.authorize_url(shop, state.nonce)})
        response.set_cookie(
            STATE_COOKIE, self.state_cookie(state), max_age=STATE_SECONDS, path="/shopify", httponly=True,
            samesite="Lax", secure=self.public_url.startswith("https://"),
        )  # fmt: skip
        return response

    # --- routes ----------------------------------------------------------------------------------------------------

    async def install(self, request: web.Request) -> web.Response:
        try:
            query = self.verified_query(request)
            shop = shop_domain(query.get("shop", ""))
        except BadRequest as refused:
            return page(400, "Cannot install", str(refused))
        if await self._still_connected(shop):
            # the merchant opened the app from Shopify's admin: connected, and Shopify takes our token
            return page(200, "Connected", f"{shop} is connected to the chatbot gateway.")
        return self.begin(shop, "shopify")

    async def _still_connected(self, shop: str) -> bool:
        """Connected here, and Shopify still takes the token: a reinstall whose app/uninstalled has not arrived
        yet (the token is already dead) goes through the flow again."""
        key = self.lifecycle.registry.key_for_domain(shop)
        stored = self.lifecycle.registry.stored.get(key) if key else None
        if key is None or stored is None or stored.status is not ShopStatus.CONNECTED:
            return False
        tokens = await self.lifecycle.store.tokens.load_tokens(key)
        if tokens is None:
            return False
        return await self._endpoint().works(shop, tokens.access_token) is True

    async def callback(self, request: web.Request) -> web.Response:
        try:
            query = self.verified_query(request)
            shop = shop_domain(query.get("shop", ""))
            state = self.read_state(request.cookies.get(STATE_COOKIE))
            given = query.get("state", "")
            if not hmac.compare_digest(given.encode("utf-8", "replace"), state.nonce.encode()) or state.shop != shop:
                raise BadRequest("the installation's state does not match this browser's: start it again")
            code = query.get("code", "")
            if not code:
                raise BadRequest("Shopify sent no authorization code")
        except BadRequest as refused:
            return self._cleared(page(400, "Cannot install", str(refused)))
        try:
            tokens: TokenSet = await self._endpoint().exchange_code(shop, code)
            installed = await self.lifecycle.install(shop, tokens)
        except TokenRefused as refused:
            log.warning("install of %s: the code exchange was refused", shop)
            return self._cleared(page(400, "Cannot install", f"{refused} Start the installation again."))
        except InstallRefused as refused:
            return self._cleared(page(409, "Cannot install", str(refused)))
        except ShopifyUnavailable as exc:
            log.warning("install of %s: Shopify did not answer the code exchange (%s)", shop, exc)
            return self._cleared(page(502, "Try again", "Shopify did not answer. Start the installation again."))
        if self._after_install is not None:
            await self._after_install(installed)
        if state.origin == "console":
            return self._cleared(web.Response(status=303, headers={"Location": f"/console/shops/{installed.key}"}))
        return self._cleared(page(200, "Connected", f"{shop} is connected to the chatbot gateway."))

    @staticmethod
    def _cleared(response: web.Response) -> web.Response:
        response.del_cookie(STATE_COOKIE, path="/shopify")
        return response


_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; padding: 0 1rem">
<h1>{title}</h1><p role="{role}">{message}</p></body></html>"""


def page(status: int, title: str, message: str) -> web.Response:
    body = _PAGE.format(title=html.escape(title), message=html.escape(message), role="alert" if status >= 400 else "status")
    return web.Response(status=status, text=body, content_type="text/html", headers={
        "Cache-Control": "no-store", "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
        "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
    })  # fmt: skip


def add_install_routes(app: web.Application, flow: InstallFlow) -> None:
    app.router.add_get(INSTALL_PATH, flow.install)
    app.router.add_get(CALLBACK_PATH, flow.callback)
