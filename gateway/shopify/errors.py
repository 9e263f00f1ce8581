"""The Shopify client's exceptions, in their own module so auth.py and client.py can share them without an import
cycle. Import them from `gateway.shopify.client` (which re-exports them) like the rest of the client's API."""

from __future__ import annotations

from typing import Any


class ShopifyError(Exception):
    """Base class: Shopify could not answer this request usefully."""


class ShopifyUnavailable(ShopifyError):
    """Timeout, connection error, 5xx, or THROTTLED past the deadline: the caller may serve stale data or answer 503."""


class ShopifyThrottled(ShopifyUnavailable):
    """The cost bucket stayed empty until the deadline."""


class ShopifyAuthError(ShopifyError):
    """401/403 even after a token refresh: the shop's credentials or scopes are wrong."""


class ShopifyQueryError(ShopifyError):
    """GraphQL `errors` other than throttling (a bad document, MAX_COST_EXCEEDED, access denied to a field).

    `data` holds whatever partial data came with the errors (None when there was none)."""

    def __init__(
        self, message: str, errors: list[dict[str, Any]] | None = None, data: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.errors = errors or []
        self.data = data
