"""The application factory: one aiohttp app serving the query flow, the push flow and the operator endpoints."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web

from gateway import ops
from gateway.cache_fanout import setup_cache_fan_out
from gateway.console import setup_console
from gateway.errors import error_middleware
from gateway.keys import SETTINGS
from gateway.push.setup import setup_push
from gateway.query import setup_query
from gateway.settings import Settings
from gateway.shopify.client import setup_shopify
from gateway.shops.setup import setup_shops


def create_app(settings: Settings, *, clock: Callable[[], float] = time.time) -> web.Application:
    """`clock` (epoch seconds) times what the shops flow does: token expiry and refresh, install timestamps."""
    # The largest body we ever accept is a Shopify webhook; bot queries are capped lower in their handlers
    # (PROTOCOL §2: 64 KiB → 413 in the caller's dialect).
    # Bodies arrive as sent (auto_decompress off): aiohttp's decoder can leave a handler waiting forever on a deflate
    # body that turns out broken after the request head was handled. The query routes decode gzip/deflate themselves,
    # within their size cap (gateway.bodies); a webhook or a console form is never compressed.
    app = web.Application(
        client_max_size=2 * 1024 * 1024, middlewares=[error_middleware], handler_args={"auto_decompress": False}
    )
    app[SETTINGS] = settings
    setup_shops(app, clock=clock)  # app[SETTINGS].shops becomes the live registry (config + connected shops)
    setup_shopify(app)  # one ClientSession (keep-alive) shared by every shop's ShopifyAdminClient
    setup_query(app)  # /bot/{shop}, /api/openapi/v1/orders/{order_id}, the lookup cache
    setup_cache_fan_out(app)  # the cache's invalidations to and from the other replicas (Redis storage only)
    setup_push(app)  # /webhooks/shopify, the outbox, its sender, reconciliation
    ops.setup_ops(app)  # /healthz, /readyz, /metrics
    setup_console(app)  # /console, when console.token is set
    return app
