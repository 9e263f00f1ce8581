"""Expiring offline tokens of the shops connected from the browser: obtained, refreshed, migrated.

`AppTokenEndpoint` makes the app's calls to Shopify's `POST /admin/oauth/access_token` (JSON, as Shopify's own app
library sends them): the authorization code (with `expiring=1`), the refresh grant, and the token exchange that
migrates a non-expiring offline token. Shopify's answer `{access_token, scope, expires_in, refresh_token,
refresh_token_expires_in}` becomes a `TokenSet` (times on the injected clock).

`InstalledTokenProvider` is the `TokenProvider` of such a shop's `ShopifyAdminClient`:
- it answers from the pair it holds while it has more than `refresh_margin_seconds` left;
- otherwise (or after a 401) it re-reads the store (another replica or a reinstall may have replaced the pair), and
  only if the stored pair is stale too, takes the shop's refresh lock (shared by the replicas: Redis, or a lease
  row in SQLite), reads once more, and refreshes: exactly one replica refreshes, the others read its pair;
- the new pair is written atomically, the refresh token it replaced kept beside it until the new access token has
  answered once (one `currentAppInstallation` read right away): if the answer was lost, the write failed or the
  new pair is refused, Shopify's grace rule still takes the previous refresh token;
- a refresh Shopify refuses for good (400/401: expired, revoked) marks the shop "reinstall needed" (`on_refused`);
  a refresh that fails on the way (timeout, 5xx, 429) is tried again by the next caller;
- a non-expiring offline token (installed before expiring tokens) is migrated by token exchange on first use;
  while Shopify cannot be reached for that, the old token keeps serving.
Tokens are never logged, and no error message carries one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from gateway.settings import AppSettings
from gateway.shopify.errors import ShopifyAuthError, ShopifyUnavailable
from gateway.shopify.queries import load_query
from gateway.shops.store import ShopTokens, TokenSet, refresh_lock

log = logging.getLogger(__name__)

TOKEN_REQUEST_TIMEOUT = 10.0
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
OFFLINE_TOKEN_TYPE = "urn:shopify:params:oauth:token-type:offline-access-token"
#: After a failed migration of a non-expiring token (Shopify unreachable), wait this long before trying again.
MIGRATION_RETRY_SECONDS = 300.0
#: How long a caller waits for another replica's refresh before giving up (its own deadline may be shorter).
LOCK_WAIT_SECONDS = 15.0


class TokenRefused(ShopifyAuthError):
    """Shopify refused the grant for good (a 4xx: bad code, expired or revoked refresh token, wrong secret)."""


class AppTokenEndpoint:
    """The app's token requests to one Shopify (or the local store), over the gateway's aiohttp session."""

    def __init__(
        self, session: aiohttp.ClientSession, app: AppSettings, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._session = session
        self._app = app
        self._clock = clock

    def admin_base(self, domain: str) -> str:
        return self._app.admin_api_base or f"https://{domain}"

    async def exchange_code(self, domain: str, code: str) -> TokenSet:
        return await self._grant(domain, {"code": code, "expiring": "1"})

    async def refresh(self, domain: str, refresh_token: str) -> TokenSet:
        return await self._grant(domain, {"grant_type": "refresh_token", "refresh_token": refresh_token})

    async def migrate(self, domain: str, offline_token: str) -> TokenSet:
        return await self._grant(domain, {
            "grant_type": TOKEN_EXCHANGE, "subject_token": offline_token, "subject_token_type": OFFLINE_TOKEN_TYPE,
            "expiring": "1",
        })  # fmt: skip

    async def works(self, domain: str, access_token: str) -> bool | None:
        """Whether Shopify takes this access token (one `currentAppInstallation` read): True, False (401/403), or
        None when it could not tell (down, throttled)."""
        url = f"{self.admin_base(domain)}/admin/api/{self._app.api_version}/graphql.json"
        try:
            async with self._session.post(
                url,
                json={"query": load_query("app_installation"), "variables": {}},
                headers={"X-Shopify-Access-Token": access_token, "Accept": "application/json"},
                timeout=aiohttp.ClientTimeout(total=TOKEN_REQUEST_TIMEOUT),
            ) as resp:
                await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError):
            return None
        if status in (401, 403):
            return False
        return True if status == 200 else None

    async def _grant(self, domain: str, fields: dict[str, str]) -> TokenSet:
        body = {"client_id": self._app.client_id, "client_secret": self._app.client_secret.get_secret_value(), **fields}
        started = self._clock()
        try:
            async with self._session.post(
                f"{self.admin_base(domain)}/admin/oauth/access_token",
                json=body,
                headers={"Accept": "application/json"},
                timeout=aiohttp.ClientTimeout(total=TOKEN_REQUEST_TIMEOUT),
            ) as resp:
                status, raw = resp.status, await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ShopifyUnavailable(f"token request failed: {type(exc).__name__}") from None
        if status >= 500 or status == 429:
            raise ShopifyUnavailable(f"token request answered HTTP {status}")
        answer = _json_object(raw)
        if status != 200 or not isinstance(answer.get("access_token"), str):
            # Shopify says why in error / error_description; neither echoes a secret or a token
            reason = answer.get("error_description") or answer.get("error") or "no access_token"
            raise TokenRefused(f"Shopify refused the token request (HTTP {status}): {str(reason)[:200]}")
        return token_set(answer, started)


def token_set(answer: dict[str, Any], obtained_at: float) -> TokenSet:
    """Shopify's token answer as a TokenSet; lifetimes count from when the request was sent."""
    expires_in = _seconds(answer.get("expires_in"))
    refresh_token = answer.get("refresh_token")
    refresh_in = _seconds(answer.get("refresh_token_expires_in"))
    return TokenSet(
        access_token=str(answer["access_token"]),
        scope=str(answer.get("scope") or ""),
        obtained_at=obtained_at,
        access_expires_at=obtained_at + expires_in if expires_in is not None else None,
        refresh_token=str(refresh_token) if isinstance(refresh_token, str) else None,
        refresh_expires_at=obtained_at + refresh_in if refresh_in is not None else None,
    )


def _seconds(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


#: What a provider calls when Shopify refused the shop's refresh for good: (shop key, reason) → marks the shop.
RefusedHook = Callable[[str, str], Awaitable[None]]


class InstalledTokenProvider:
    """The token of one connected shop, in one replica (see the module docstring)."""

    def __init__(
        self,
        shop_key: str,
        domain: str,
        store: ShopTokens,
        endpoint: AppTokenEndpoint,
        *,
        refresh_margin_seconds: float,
        on_refused: RefusedHook,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.shop_key = shop_key
        self.domain = domain
        self._store = store
        self._endpoint = endpoint
        self._margin = refresh_margin_seconds
        self._on_refused = on_refused
        self._clock = clock
        self._owner = uuid.uuid4().hex  # this provider, as the holder of the shop's refresh lock
        self._tokens: TokenSet | None = None
        self._migrate_after = 0.0
        self._inflight: asyncio.Task[str] | None = None
        #: Refresh (and migration) requests this provider made (tests read it).
        self.refreshes = 0

    @property
    def expires_at(self) -> float | None:
        """When the access token held now expires (epoch seconds); None before the first use or when it never does."""
        return self._tokens.access_expires_at if self._tokens is not None else None

    async def token(self) -> str:
        held = self._tokens
        if held is not None and self._usable(held, None):
            return held.access_token
        return await self._renew_shared(None)

    async def refresh(self, rejected: str | None = None) -> str:
        return await self._renew_shared(rejected)

    def _usable(self, tokens: TokenSet, rejected: str | None) -> bool:
        if tokens.access_token == rejected:
            return False
        if tokens.access_expires_at is None:  # non-expiring: usable, but migrated when Shopify can be asked
            return self._clock() < self._migrate_after
        return self._clock() < tokens.access_expires_at - self._margin

    async def _renew_shared(self, rejected: str | None) -> str:
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._renew(rejected))
            self._inflight.add_done_callback(self._renew_done)
        # shield: a caller that gives up (its deadline) must not cancel the renewal the others wait for
        return await asyncio.shield(self._inflight)

    def _renew_done(self, task: asyncio.Task[str]) -> None:
        self._inflight = None
        if not task.cancelled():
            task.exception()  # retrieved: a failure nobody awaited anymore is not an "unhandled" error

    async def _renew(self, rejected: str | None) -> str:
        stored = await self._stored()
        if self._usable(stored, rejected):  # another replica refreshed it, or the app was installed again
            self._tokens = stored
            return stored.access_token
        loop = asyncio.get_running_loop()
        async with refresh_lock(
            self._store, self.shop_key, self._owner, wait_until=loop.time() + LOCK_WAIT_SECONDS, clock=loop.time
        ) as taken:
            stored = await self._stored()
            if self._usable(stored, rejected):
                self._tokens = stored
                return stored.access_token
            if not taken:
                if rejected is None and stored.access_expires_at is not None and self._clock() < stored.access_expires_at:
                    return stored.access_token  # inside the margin, not expired: serve while the other one refreshes
                raise ShopifyUnavailable("another replica is refreshing this shop's token")
            fresh = await self._obtain(stored)
            if fresh is None:  # a non-expiring token whose migration must wait: it still works
                self._tokens = stored
                return stored.access_token
            if not await self._store.save_tokens(self.shop_key, fresh, replacing=stored):
                raise ShopifyAuthError("the shop was uninstalled or installed again during the token refresh")
            self._tokens = fresh
        await self._confirm(fresh)
        return fresh.access_token

    async def _stored(self) -> TokenSet:
        tokens = await self._store.load_tokens(self.shop_key)
        if tokens is None:
            raise ShopifyAuthError("no access token: the app is uninstalled, or must be installed again")
        return tokens

    async def _obtain(self, stored: TokenSet) -> TokenSet | None:
        """A new pair for `stored` (None: keep the non-expiring token for now)."""
        self.refreshes += 1
        if not stored.expiring:
            try:
                migrated = await self._endpoint.migrate(self.domain, stored.access_token)
            except ShopifyUnavailable:
                self._migrate_after = self._clock() + MIGRATION_RETRY_SECONDS
                log.warning("shop %s: migrating to an expiring token failed; retrying later", self.shop_key)
                return None
            except TokenRefused as exc:
                await self._refused(str(exc))
                raise
            log.info("shop %s: non-expiring offline token migrated to an expiring one", self.shop_key)
            return migrated
        candidates = [t for t in (stored.refresh_token, stored.previous_refresh_token) if t]
        last_refusal: TokenRefused | None = None
        for refresh_token in candidates:
            try:
                fresh = await self._endpoint.refresh(self.domain, refresh_token)
            except TokenRefused as exc:
                last_refusal = exc  # the previous refresh token may still be in its grace period
                continue
            log.info("shop %s: access token refreshed", self.shop_key)
            return TokenSet(
                access_token=fresh.access_token,
                scope=fresh.scope or stored.scope,
                obtained_at=fresh.obtained_at,
                access_expires_at=fresh.access_expires_at,
                refresh_token=fresh.refresh_token,
                refresh_expires_at=fresh.refresh_expires_at,
                previous_refresh_token=refresh_token,
            )
        reason = str(last_refusal) if last_refusal else "no refresh token stored"
        await self._refused(reason)
        raise last_refusal or TokenRefused(reason)

    async def _refused(self, reason: str) -> None:
        log.warning("shop %s: Shopify refused the token refresh for good: reinstall needed", self.shop_key)
        try:
            await self._on_refused(self.shop_key, reason)
        except Exception:  # the shop stays unusable either way; the mark is for the operator
            log.exception("shop %s: could not mark it 'reinstall needed'", self.shop_key)

    async def _confirm(self, fresh: TokenSet) -> None:
        """Drop the previous refresh token once the new access token has answered."""
        if fresh.previous_refresh_token is None:
            return
        if await self._endpoint.works(self.domain, fresh.access_token) is not True:
            return  # kept: the next refresh may need it
        confirmed = TokenSet(
            fresh.access_token, fresh.scope, fresh.obtained_at, fresh.access_expires_at, fresh.refresh_token,
            fresh.refresh_expires_at, None,
        )  # fmt: skip
        if await self._store.save_tokens(self.shop_key, confirmed, replacing=fresh):
            if self._tokens is fresh:
                self._tokens = confirmed

    def __repr__(self) -> str:
        return f"InstalledTokenProvider({self.shop_key!r})"
