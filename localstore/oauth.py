"""The local store's side of Shopify's install flow and expiring offline tokens, no kinder than Shopify's.

An app is registered with `server.oauth.add_app(SandboxApp(client_id, client_secret, redirect_urls, app_url))`
(`SandboxServer.for_settings` registers the gateway's `app:`). Then:

- `GET /admin/oauth/install?client_id=&shop=` — what Shopify's admin does when a merchant opens the app: the app's
  App URL with `shop`, `host`, `timestamp` and `hmac`.
- `GET /admin/oauth/authorize?client_id=&scope=&redirect_uri=&state=[&shop=]` — the page that asks the merchant
  to install the app (the shop is named by `Host`, or by `shop`: this store serves many shops at one address). An
  unknown `client_id`, a `redirect_uri` not among the app's allowed URLs, or a bad shop domain are refused with
  Shopify's words. A shop the store does not have yet is created (seeded) when the merchant clicks "Install".
- `POST /admin/oauth/authorize` — the "Install" button: a one-time code (10 minutes), and a redirect to
  `redirect_uri` with `code`, `hmac`, `host`, `shop`, `state`, `timestamp` (hex HMAC-SHA256 of the sorted query,
  keyed with the app's client secret, as Shopify signs it).
- `POST /admin/oauth/access_token` (JSON or form; `SandboxServer.handle_access_token` hands everything but the
  client credentials grant here):
  - `code` (+ `expiring=1`) → `{access_token, scope, expires_in: 3600, refresh_token,
    refresh_token_expires_in: 7776000}`; without `expiring`, a non-expiring offline token `{access_token, scope}`.
    A code serves once (a replayed one is refused), for its app only, for ten minutes.
  - `grant_type=refresh_token` → a new pair. The refresh token used stays valid until its replacement is first
    used, at most 30 days after its own first use and never past its 90 days (Shopify's grace rule, 2026-08); the
    access token issued with it stops working at once.
  - `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` with a non-expiring offline token as
    `subject_token` and `expiring=1` → an expiring pair; the old token stops working and the shop's install only
    gets expiring tokens from then on (irreversible, as Shopify's migration is).
  Refusals: 400 `invalid_request` (unknown or used code), 400 `invalid_grant` (unknown, expired or superseded
  refresh token), 400 `invalid_subject_token`, 401 `invalid_client` (wrong client id or secret).
- `uninstall(domain, client_id)` (admin surface: `POST /_sandbox/{shop}/apps/{client_id}/uninstall`): sends
  `app/uninstalled`, then revokes every token of the install and deletes the app's webhook subscriptions.

Times come from the server's clock (`SandboxServer(clock=...)`), so tests move a 90-day refresh token past its
end without waiting. `grants` counts the token requests answered per grant (tests: "one refresh").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode

from aiohttp import web

from localstore.data import SandboxShop

ACCESS_TOKEN_SECONDS = 3600
REFRESH_TOKEN_SECONDS = 90 * 86400
GRACE_SECONDS = 30 * 86400
CODE_SECONDS = 600
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
OFFLINE_TOKEN_TYPE = "urn:shopify:params:oauth:token-type:offline-access-token"
SHOP_DOMAIN = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9-]*\.myshopify\.com")


@dataclass(frozen=True)
class SandboxApp:
    client_id: str
    client_secret: str
    #: The app's allowed redirection URLs (an authorize request's redirect_uri must be one of them).
    redirect_urls: tuple[str, ...] = ()
    #: The App URL Shopify opens when the merchant opens the app (`GET /admin/oauth/install`).
    app_url: str = ""
    name: str = "Chatbot gateway"


@dataclass
class _Install:
    scopes: list[str]
    #: Migrated by token exchange: only expiring tokens from now on.
    expiring_only: bool = False


@dataclass
class _Code:
    shop: str
    client_id: str
    expires_at: float
    used: bool = False


@dataclass
class _Access:
    shop: str
    client_id: str
    expires_at: float | None  # None: a non-expiring offline token


@dataclass
class _Refresh:
    shop: str
    client_id: str
    expires_at: float
    access_token: str  # the access token issued with it
    predecessor: str | None = None
    first_used_at: float | None = None
    #: Its replacement was used: no longer valid.
    superseded: bool = False
    issued: list[str] = field(default_factory=list)  # access tokens issued by using it


def signed_query(params: dict[str, str], secret: str) -> dict[str, str]:
    """`params` plus `hmac`: hex HMAC-SHA256 of the `k=v` pairs sorted and joined with `&` (`%`, `&` and, in keys,
    `=` escaped), as Shopify signs the requests it sends to an app."""

    def pair(k: str, v: str) -> str:
        k = k.replace("%", "%25").replace("=", "%3D")
        return f"{k}={v.replace('%', '%25')}".replace("&", "%26")

    message = "&".join(sorted(pair(k, v) for k, v in params.items() if k not in ("hmac", "signature")))
    return {**params, "hmac": hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()}


def _error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


class InstallTarget(Protocol):
    """What the install flow needs of the store's server (localstore.server.SandboxServer): its shops, and a new one
    when a merchant installs the app on a store the server does not have yet."""

    shops: dict[str, SandboxShop]

    def shop(self, domain: str | None = None) -> SandboxShop: ...

    def create_shop(self, domain: str, app: SandboxApp) -> SandboxShop: ...


class OAuthProvider:
    def __init__(self, server: InstallTarget, clock: Callable[[], float]) -> None:
        self.server = server
        self.clock = clock
        self.apps: dict[str, SandboxApp] = {}
        self.installs: dict[tuple[str, str], _Install] = {}
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, _Access] = {}
        self._refresh: dict[str, _Refresh] = {}
        #: Token requests answered with tokens, per grant: "authorization_code", "refresh_token", "token_exchange".
        self.grants: Counter[str] = Counter()
        #: Called with the grant's name once its tokens are issued, before the answer leaves (tests: a crash of
        #: the app at exactly that moment).
        self.on_grant: Callable[[str], None] | None = None

    def add_app(self, app: SandboxApp) -> None:
        self.apps[app.client_id] = app

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/admin/oauth/install", self.open_app),
            web.get("/admin/oauth/authorize", self.authorize_page),
            web.post("/admin/oauth/authorize", self.authorize),
        ]

    # --- tokens the GraphQL endpoint accepts -----------------------------------------------------------------------

    def shop_of(self, token: str) -> str | None:
        access = self._access.get(token)
        return access.shop if access is not None else None

    def access_valid(self, shop: str, token: str) -> bool:
        access = self._access.get(token)
        if access is None or access.shop != shop:
            return False
        return access.expires_at is None or self.clock() < access.expires_at

    # --- the merchant's browser ------------------------------------------------------------------------------------

    def _shop_domain(self, request: web.Request, given: str | None) -> str | None:
        host = (request.headers.get("Host") or "").split(":")[0].lower()
        if host in self.server.shops:
            return host
        domain = (given or "").strip()
        return domain.lower() if SHOP_DOMAIN.fullmatch(domain) else None

    def _host_param(self, domain: str) -> str:
        store = domain.split(".", 1)[0]
        return base64.b64encode(f"admin.shopify.com/store/{store}".encode()).decode().rstrip("=")

    async def open_app(self, request: web.Request) -> web.Response:
        app = self.apps.get(request.query.get("client_id", ""))
        domain = self._shop_domain(request, request.query.get("shop"))
        if app is None or not app.app_url or domain is None:
            return _page(404, "App not found", "No such app, or no App URL, or no such shop.")
        query = signed_query({"shop": domain, "host": self._host_param(domain), "timestamp": str(int(self.clock()))},
                             app.client_secret)  # fmt: skip
        raise web.HTTPFound(f"{app.app_url}?{urlencode(query)}")

    def _check_authorize(self, request: web.Request, fields: Any) -> tuple[SandboxApp, str] | web.Response:
        app = self.apps.get(str(fields.get("client_id", "")))
        if app is None:
            return _page(400, "Oauth error invalid_request", "The client_id is not a known app.")
        if str(fields.get("redirect_uri", "")) not in app.redirect_urls:
            return _page(400, "Oauth error invalid_request", "The redirect_uri is not whitelisted.")
        domain = self._shop_domain(request, fields.get("shop"))
        if domain is None:
            return _page(400, "Oauth error invalid_request", "No shop named by the request.")
        return app, domain

    async def authorize_page(self, request: web.Request) -> web.Response:
        checked = self._check_authorize(request, request.query)
        if isinstance(checked, web.Response):
            return checked
        app, domain = checked
        scopes = [s for s in request.query.get("scope", "").split(",") if s]
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(request.query.get(k, ""))}">'
            for k in ("client_id", "scope", "redirect_uri", "state")
        ) + f'<input type="hidden" name="shop" value="{html.escape(domain)}">'
        new = "" if domain in self.server.shops else "<p>A new development store will be created for it.</p>"
        listed = "".join(f"<li><code>{html.escape(s)}</code></li>" for s in scopes)
        body = (f"<h1>Install {html.escape(app.name)}</h1><p>on <strong>{html.escape(domain)}</strong></p>{new}"
                f"<p>The app will be able to:</p><ul>{listed}</ul>"
                f'<form method="post" action="/admin/oauth/authorize">{hidden}'
                '<button type="submit">Install</button></form>')  # fmt: skip
        return web.Response(text=_HTML.format(title=f"Install {html.escape(app.name)}", body=body),
                            content_type="text/html")  # fmt: skip

    async def authorize(self, request: web.Request) -> web.Response:
        form = await request.post()
        checked = self._check_authorize(request, form)
        if isinstance(checked, web.Response):
            return checked
        app, domain = checked
        shop = self.server.shops.get(domain) or self.server.create_shop(domain, app)
        scopes = [s for s in str(form.get("scope", "")).split(",") if s]
        install = self.installs.setdefault((shop.domain, app.client_id), _Install(scopes))
        install.scopes = scopes
        shop.access_scopes = list(scopes)
        code = secrets.token_hex(16)
        self._codes[code] = _Code(shop.domain, app.client_id, self.clock() + CODE_SECONDS)
        query = signed_query({"code": code, "host": self._host_param(shop.domain), "shop": shop.domain,
                              "state": str(form.get("state", "")), "timestamp": str(int(self.clock()))},
                             app.client_secret)  # fmt: skip
        raise web.HTTPFound(f"{form.get('redirect_uri')!s}?{urlencode(query)}")

    # --- the app's token requests ----------------------------------------------------------------------------------

    def token_request(self, form: dict[str, Any]) -> web.Response:
        app = self.apps.get(str(form.get("client_id", "")))
        given_secret = form.get("client_secret")
        if app is None or not isinstance(given_secret, str) or not secrets.compare_digest(given_secret, app.client_secret):
            return _error(401, "invalid_client", "Client authentication failed due to unknown client or wrong secret")
        grant = form.get("grant_type")
        expiring = str(form.get("expiring", "")) == "1"
        if grant in (None, "", "authorization_code"):
            return self._code_grant(app, str(form.get("code", "")), expiring)
        if grant == "refresh_token":
            return self._refresh_grant(app, str(form.get("refresh_token", "")))
        if grant == TOKEN_EXCHANGE:
            return self._exchange(app, form, expiring)
        return _error(400, "unsupported_grant_type", f"grant_type {str(grant)[:60]!r} is not supported")

    def _code_grant(self, app: SandboxApp, code: str, expiring: bool) -> web.Response:
        found = self._codes.get(code)
        if found is None or found.used or found.client_id != app.client_id or self.clock() >= found.expires_at:
            return _error(400, "invalid_request", "The authorization code was not found or was already used")
        found.used = True
        install = self.installs[(found.shop, app.client_id)]
        return self._granted("authorization_code", self._issue(found.shop, app, install, expiring or install.expiring_only))

    def _refresh_grant(self, app: SandboxApp, token: str) -> web.Response:
        refresh = self._refresh.get(token)
        now = self.clock()
        if refresh is None or refresh.client_id != app.client_id or not self._refresh_valid(refresh, now):
            return _error(400, "invalid_grant", "The refresh token is invalid, expired or was superseded")
        if refresh.predecessor is not None:
            self._refresh[refresh.predecessor].superseded = True  # its replacement (this one) is now in use
        if refresh.first_used_at is None:
            refresh.first_used_at = now
        for access in (refresh.access_token, *refresh.issued):
            self._access.pop(access, None)
        answer = self._issue(refresh.shop, app, self.installs[(refresh.shop, app.client_id)], True, predecessor=token)
        refresh.issued.append(answer["access_token"])
        return self._granted("refresh_token", answer)

    def _refresh_valid(self, refresh: _Refresh, now: float) -> bool:
        if refresh.superseded or now >= refresh.expires_at:
            return False
        return refresh.first_used_at is None or now < refresh.first_used_at + GRACE_SECONDS

    def _exchange(self, app: SandboxApp, form: dict[str, Any], expiring: bool) -> web.Response:
        subject = str(form.get("subject_token", ""))
        access = self._access.get(subject)
        if (form.get("subject_token_type") != OFFLINE_TOKEN_TYPE or access is None or access.client_id != app.client_id
                or access.expires_at is not None or not expiring):
            return _error(400, "invalid_subject_token", "The subject token is not a valid non-expiring offline token")
        del self._access[subject]
        install = self.installs[(access.shop, app.client_id)]
        install.expiring_only = True
        return self._granted("token_exchange", self._issue(access.shop, app, install, True))

    def _granted(self, grant: str, answer: dict[str, Any]) -> web.Response:
        """The answer of a grant whose tokens were issued (counted; `on_grant` told before it leaves)."""
        self.grants[grant] += 1
        if self.on_grant is not None:
            self.on_grant(grant)
        return web.json_response(answer)

    def _issue(
        self, shop: str, app: SandboxApp, install: _Install, expiring: bool, predecessor: str | None = None
    ) -> dict[str, Any]:
        now = self.clock()
        access_token = "shpat_" + secrets.token_hex(16)
        scope = ",".join(install.scopes)
        if not expiring:
            self._access[access_token] = _Access(shop, app.client_id, None)
            return {"access_token": access_token, "scope": scope}
        self._access[access_token] = _Access(shop, app.client_id, now + ACCESS_TOKEN_SECONDS)
        refresh_token = "shprt_" + secrets.token_hex(16)
        self._refresh[refresh_token] = _Refresh(shop, app.client_id, now + REFRESH_TOKEN_SECONDS, access_token,
                                                predecessor)  # fmt: skip
        return {"access_token": access_token, "scope": scope, "expires_in": ACCESS_TOKEN_SECONDS,
                "refresh_token": refresh_token, "refresh_token_expires_in": REFRESH_TOKEN_SECONDS}  # fmt: skip

    def revoke_access(self, domain: str | None) -> None:
        """Every access token of the shop (or all) stops working; refresh tokens stay valid."""
        for token, access in list(self._access.items()):
            if domain is None or access.shop == domain:
                del self._access[token]

    # --- uninstall -------------------------------------------------------------------------------------------------

    def uninstall(self, domain: str, client_id: str) -> None:
        """The merchant removes the app: app/uninstalled goes out, then every token and subscription goes."""
        shop = self.server.shop(domain)
        if self.installs.pop((shop.domain, client_id), None) is None:
            raise KeyError(f"the app {client_id} is not installed on {domain}")
        shop.emit_app_uninstalled()
        for token, access in list(self._access.items()):
            if access.shop == shop.domain and access.client_id == client_id:
                del self._access[token]
        for token, refresh in list(self._refresh.items()):
            if refresh.shop == shop.domain and refresh.client_id == client_id:
                del self._refresh[token]
        shop.webhook_subscriptions.clear()
        shop.touch()


_HTML = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto">{body}</body></html>"""


def _page(status: int, title: str, message: str) -> web.Response:
    body = f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>"
    return web.Response(status=status, text=_HTML.format(title=html.escape(title), body=body), content_type="text/html")
