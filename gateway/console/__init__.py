"""The operator console: `GET /console`, server-rendered HTML for a store owner (aiohttp-jinja2, no build step).

Three pages answer the questions left once a store is connected:
- **Shops** (`/console`): is it working? Reachability, token, API version, scopes, webhook subscriptions (with a
  "repair" button: `gateway webhooks sync`'s `repair_shop`), last webhook, reconciliation watermark, cache and
  Shopify figures from the metrics. With app mode, "Connect a shop"; each shop's page (`/console/shops/{key}`:
  gateway.console.shops) has its bot URL and secrets, its settings, pause and remove.
- **Pushes** (`/console/pushes`): why didn't this shopper get a message? The outbox with filters, retry/drop (the
  `PushStore` calls of `gateway outbox`) and each push's attempts.
- **Preview** (`/console/preview`): what will the shopper see? The receipt and package cards, the exact JSON each
  dialect answers (gateway.console.preview), and a test push.

Off unless `console.token` is set. Sign-in, sessions and CSRF: gateway.console.auth. The pages never show a token
or secret; shopper data only to a signed-in operator, and nothing of it is logged.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from gateway.console import auth, handlers, shops
from gateway.console.signin_limit import SignInLimiter
from gateway.keys import SETTINGS
from gateway.ops import get_metrics

STATIC_DIR = Path(__file__).with_name("static")

#: Headers of every console response: no framing, no third-party scripts, nothing cached (pages hold shopper data).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' https: data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path == "/console" or request.path.startswith("/console/"):
        for name, value in SECURITY_HEADERS.items():
            if name == "Cache-Control" and request.path.startswith("/console/static/"):
                continue
            response.headers.setdefault(name, value)


def setup_console(app: web.Application) -> None:
    """Register the console's routes when `console.token` is set; otherwise nothing (GET /console is a 404)."""
    settings = app[SETTINGS]
    if not settings.console.enabled:
        return
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("gateway.console", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
    )
    handlers.add_filters(env)
    app[auth.SESSIONS] = auth.Sessions(
        settings.console.token.get_secret_value(), settings.console.session_minutes * 60
    )
    app[auth.SIGNIN_LIMITER] = SignInLimiter(settings.console.signin)
    metrics = get_metrics(app)
    metrics.describe("gateway_console_signin_failures_total", "Console sign-ins with a wrong token.")
    metrics.describe("gateway_console_signin_refused_total", "Console sign-ins refused unread: too many failures.")
    app.on_response_prepare.append(_security_headers)
    r = app.router
    r.add_get("/console/login", auth.login_get)
    r.add_post("/console/login", auth.login_post)
    r.add_post("/console/logout", auth.logout)
    r.add_get("/console", handlers.shops_page)
    r.add_post("/console/shops/{shop}/repair", handlers.repair)
    shops.add_routes(r)
    r.add_get("/console/pushes", handlers.pushes_page)
    r.add_get("/console/pushes/{id:\\d{1,18}}", handlers.push_page)
    r.add_post("/console/pushes/{id:\\d{1,18}}/retry", handlers.retry)
    r.add_post("/console/pushes/{id:\\d{1,18}}/drop", handlers.drop)
    r.add_get("/console/preview", handlers.preview_page)
    r.add_post("/console/preview/test-push", handlers.test_push)
    r.add_static("/console/static", STATIC_DIR)

