"""Admin API access tokens: a static token, or the client credentials grant with refresh before expiry.

`ShopifyAdminClient` asks its `TokenProvider` for `await token()` before each request and, after a 401/403, for
`await refresh(rejected=<the token that was refused>)` once. A provider that cannot do better than the refused token
returns it unchanged, and the client gives up with `ShopifyAuthError`.

Client credentials (Dev Dashboard apps, PROTOCOL README "how to connect a real store"):
`POST {admin_base_url}/admin/oauth/access_token` with `grant_type=client_credentials&client_id=..&client_secret=..`
(form-encoded, as Shopify documents it) → `{"access_token": "...", "scope": "...", "expires_in": 86399}`.
Tokens are fetched lazily, single-flight (concurrent callers share one token request), and renewed
`refresh_margin_seconds` before they expire. Tokens and secrets are never logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import aiohttp

from gateway.settings import ClientCredentialsAuth, InstalledAppAuth, ShopSettings
from gateway.shopify.errors import ShopifyAuthError, ShopifyUnavailable

log = logging.getLogger(__name__)

#: Shopify's client-credentials tokens live 24 h; used when the reply forgets `expires_in`.
DEFAULT_TOKEN_LIFETIME = 86_400.0
#: Upper bound of one token request (each caller additionally waits no longer than its own deadline).
TOKEN_REQUEST_TIMEOUT = 10.0


class TokenProvider(Protocol):
    """Callers bound the wait with `asyncio.timeout_at(deadline)`; a shared token request outlives a caller that
    gives up."""

    async def token(self) -> str:
        """A token believed valid now."""
        ...

    async def refresh(self, rejected: str | None = None) -> str:
        """A token other than `rejected` if one can be obtained (the same one if not)."""
        ...


class StaticTokenProvider:
    """A fixed Admin API token (legacy custom app, or the local store's demo token). Cannot be refreshed."""

    def __init__(self, access_token: str) -> None:
        self._token = access_token

    @property
    def value(self) -> str:
        """The token, without awaiting (the client reads it so on every request)."""
        return self._token

    async def token(self) -> str:
        return self._token

    async def refresh(self, rejected: str | None = None) -> str:
        return self._token

    def __repr__(self) -> str:
        return "StaticTokenProvider(<token hidden>)"


class ClientCredentialsTokenProvider:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        admin_base_url: str,
        client_id: str,
        client_secret: str,
        *,
        refresh_margin_seconds: float = 300.0,
        user_agent: str = "shopify-bot-gateway",
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._session = session
        self._url = f"{admin_base_url.rstrip('/')}/admin/oauth/access_token"
        self._client_id = client_id
        self._client_secret = client_secret
        self._margin = refresh_margin_seconds
        self._user_agent = user_agent
        self._clock = clock or time.monotonic  # the same clock as loop.time()
        self._token: str | None = None
        self._renew_at = 0.0
        self._inflight: asyncio.Task[str] | None = None
        #: Token requests made so far (tests and metrics read it).
        self.fetches = 0
        #: When the current token expires (epoch seconds), as the grant announced it; None before the first token.
        self.expires_at: float | None = None

    async def token(self) -> str:
        if self._token is not None and self._clock() < self._renew_at:
            return self._token
        return await self._fetch_shared()

    async def refresh(self, rejected: str | None = None) -> str:
        if self._token is not None and self._token != rejected and self._clock() < self._renew_at:
            return self._token  # another caller already replaced the refused token
        self._token = None
        return await self._fetch_shared()

    async def _fetch_shared(self) -> str:
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._fetch())
            self._inflight.add_done_callback(self._fetch_done)
        # shield: a caller that gives up (its deadline) must not cancel the request the others wait for
        return await asyncio.shield(self._inflight)

    def _fetch_done(self, task: asyncio.Task[str]) -> None:
        self._inflight = None
        if not task.cancelled():
            task.exception()  # retrieved: a failure nobody awaited anymore is not an "unhandled" error

    async def _fetch(self) -> str:
        self.fetches += 1
        form = {"grant_type": "client_credentials", "client_id": self._client_id, "client_secret": self._client_secret}
        started = self._clock()
        try:
            async with self._session.post(
                self._url,
                data=form,
                headers={"Accept": "application/json", "User-Agent": self._user_agent},
                timeout=aiohttp.ClientTimeout(total=TOKEN_REQUEST_TIMEOUT),
            ) as resp:
                status = resp.status
                raw = await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ShopifyUnavailable(f"token request failed: {type(exc).__name__}") from None
        if status >= 500 or status == 429:
            raise ShopifyUnavailable(f"token request answered HTTP {status}")
        body = _json_or_none(raw)
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            # Shopify says why in `error`/`error_description`; neither echoes the secret
            reason = body.get("error_description") or body.get("error") if isinstance(body, dict) else None
            raise ShopifyAuthError(f"client credentials refused (HTTP {status}): {reason or 'no access_token'}")
        lifetime = _as_seconds(body.get("expires_in"))
        # With a margin as long as the token's life (tests use short lives) renew at half-life, not on every call.
        self._renew_at = started + max(lifetime - self._margin, lifetime / 2)
        self._token = body["access_token"]
        self.expires_at = time.time() + lifetime
        log.info("obtained an Admin API token by client credentials (lifetime %.0f s)", lifetime)
        return self._token

    def __repr__(self) -> str:
        return f"ClientCredentialsTokenProvider({self._url!r}, client_id={self._client_id!r})"


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _as_seconds(value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return DEFAULT_TOKEN_LIFETIME
    return seconds if seconds > 0 else DEFAULT_TOKEN_LIFETIME


def token_provider_for(
    shop: ShopSettings, session: aiohttp.ClientSession, *, user_agent: str = "shopify-bot-gateway"
) -> TokenProvider:
    """The provider a shop's `auth:` config asks for."""
    auth = shop.auth
    if isinstance(auth, ClientCredentialsAuth):
        return ClientCredentialsTokenProvider(
            session,
            shop.admin_base_url,
            auth.client_id,
            auth.client_secret.get_secret_value(),
            refresh_margin_seconds=auth.refresh_margin_seconds,
            user_agent=user_agent,
        )
    if isinstance(auth, InstalledAppAuth):
        # the app's own tokens, kept in the store: ShopifyClients.token_providers (gateway.shops) provides them
        raise ValueError(f"shop {shop.domain}: a connected shop's token provider comes from gateway.shops")
    return StaticTokenProvider(auth.access_token.get_secret_value())
