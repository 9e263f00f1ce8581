"""The shops connected from the browser, as the store keeps them: the contract, its records, and their encoding.

A `StoredShop` is what the operator may change (the shop's settings, its bot and push secrets, paused) and what the
install flow learned (domain, scopes, when it was installed or uninstalled, whether it must be reinstalled). Its
`TokenSet` (the expiring offline access token and its refresh token) is kept apart: it changes every hour, under
the shop's refresh lock, and is never read by the registry.

Both backends (`gateway.shops.sqlite`, `gateway.shops.redis`) keep the settings and secrets as one sealed JSON value and the tokens
as another (gateway.shops.crypto); the key, domain, status and times stay in the clear so they can be indexed.
Every write of a shop bumps its `version`: the console saves with the version it read, so two operators editing at
once cannot overwrite each other unseen, and a replica that hears of a change reloads that one shop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from gateway.push.subscriptions import SyncStates
from gateway.shops.crypto import Sealer

log = logging.getLogger(__name__)

#: How long a replica may hold a shop's refresh lock: a refresh is one HTTP request with a 10 s timeout, then a
#: write; a replica killed while holding it holds up the shop's other replicas this long at most.
REFRESH_LOCK_SECONDS = 20.0
#: Between two tries to take a lock another replica holds.
LOCK_POLL_SECONDS = 0.05


class ShopStatus(StrEnum):
    CONNECTED = "connected"
    #: app/uninstalled received: the token is gone, pushes stopped; the shop's data waits for shop/redact.
    UNINSTALLED = "uninstalled"
    #: Shopify refused the refresh token for good (expired, revoked): only installing the app again helps.
    REINSTALL_NEEDED = "reinstall_needed"


@dataclass(frozen=True, slots=True)
class StoredSecret:
    """A bot or push secret. `shown` once the operator has seen it: secrets are shown once, then only named."""

    value: str = field(repr=False)
    created_at: float = 0.0
    shown: bool = False


@dataclass(frozen=True, slots=True)
class TokenSet:
    """An offline access token and, for an expiring one, its refresh token (times are epoch seconds)."""

    access_token: str
    scope: str
    obtained_at: float
    #: None for a non-expiring offline token (a legacy install, migrated by token exchange on first use).
    access_expires_at: float | None = None
    refresh_token: str | None = None
    refresh_expires_at: float | None = None
    #: The refresh token this pair replaced, kept until the new access token has worked once: if the new pair is
    #: lost or refused, Shopify's grace rule still accepts the previous refresh token.
    previous_refresh_token: str | None = None

    @property
    def expiring(self) -> bool:
        return self.access_expires_at is not None

    def __repr__(self) -> str:
        return f"TokenSet(<hidden>, expires_at={self.access_expires_at}, scope={self.scope!r})"

    def encode(self) -> bytes:
        return json.dumps({
            "a": self.access_token, "s": self.scope, "t": self.obtained_at, "ae": self.access_expires_at,
            "r": self.refresh_token, "re": self.refresh_expires_at, "p": self.previous_refresh_token,
        }).encode()  # fmt: skip

    @classmethod
    def decode(cls, raw: bytes) -> TokenSet:
        d = json.loads(raw)
        return cls(d["a"], d["s"], d["t"], d["ae"], d["r"], d["re"], d["p"])


@dataclass(frozen=True, slots=True)
class StoredShop:
    key: str
    domain: str
    #: The shop's ShopSettings fields the operator edits (dialect, joinchat_version, api_version, deadline_seconds,
    #: status_labels, push without its secrets): validated by `gateway.shops.registry.shop_settings`.
    settings: Mapping[str, Any] = field(default_factory=dict)
    bot_secrets: tuple[StoredSecret, ...] = ()
    push_secrets: tuple[StoredSecret, ...] = ()
    paused: bool = False
    status: ShopStatus = ShopStatus.CONNECTED
    #: Why the shop needs attention (a refused refresh), in words fit for the console: never a token.
    problem: str = ""
    scope: str = ""
    installed_at: float | None = None
    uninstalled_at: float | None = None
    created_at: float = 0.0
    version: int = 0

    def sealed(self, sealer: Sealer) -> str:
        """Settings and secrets as one sealed value."""
        doc = {
            "settings": dict(self.settings),
            "bot_secrets": [[s.value, s.created_at, s.shown] for s in self.bot_secrets],
            "push_secrets": [[s.value, s.created_at, s.shown] for s in self.push_secrets],
        }
        return sealer.seal(json.dumps(doc).encode(), shop_key=self.key, purpose="shop")

    @classmethod
    def from_row(cls, row: Mapping[str, Any], sealer: Sealer) -> StoredShop:
        """A shop from its stored fields (`key`, `domain`, `config` sealed, `status`, `problem`, `scope`, `paused`,
        `installed_at`, `uninstalled_at`, `created_at`, `version`)."""
        key = str(row["key"])
        doc = json.loads(sealer.open(str(row["config"]), shop_key=key, purpose="shop"))
        return cls(
            key=key,
            domain=str(row["domain"]),
            settings=doc["settings"],
            bot_secrets=tuple(StoredSecret(v, t, s) for v, t, s in doc["bot_secrets"]),
            push_secrets=tuple(StoredSecret(v, t, s) for v, t, s in doc["push_secrets"]),
            paused=bool(int(row["paused"])),
            status=ShopStatus(str(row["status"])),
            problem=str(row["problem"] or ""),
            scope=str(row["scope"] or ""),
            installed_at=_float_or_none(row["installed_at"]),
            uninstalled_at=_float_or_none(row["uninstalled_at"]),
            created_at=float(row["created_at"] or 0),
            version=int(row["version"]),
        )

    def row(self, sealer: Sealer) -> dict[str, Any]:
        """The fields `from_row` reads, the config sealed."""
        return {
            "key": self.key, "domain": self.domain, "config": self.sealed(sealer), "status": self.status.value,
            "problem": self.problem, "scope": self.scope, "paused": int(self.paused),
            "installed_at": self.installed_at, "uninstalled_at": self.uninstalled_at, "created_at": self.created_at,
            "version": self.version,
        }  # fmt: skip

    def with_changes(self, **changes: Any) -> StoredShop:
        return replace(self, **changes)


def _float_or_none(value: Any) -> float | None:
    if value is None or value == b"" or value == "":
        return None
    return float(value)


def token_id(tokens: TokenSet | None) -> str:
    """What `save_tokens` compares: a digest of the access token (stored in the clear beside the sealed pair; a
    digest of a random token tells nothing about it). Empty for no tokens."""
    if tokens is None:
        return ""
    return hashlib.sha256(tokens.access_token.encode()).hexdigest()[:32]


def seal_tokens(sealer: Sealer, key: str, tokens: TokenSet) -> str:
    return sealer.seal(tokens.encode(), shop_key=key, purpose="tokens")


def open_tokens(sealer: Sealer, key: str, sealed: str) -> TokenSet:
    return TokenSet.decode(sealer.open(sealed, shop_key=key, purpose="tokens"))


ChangeListener = Callable[[str], None]


class ShopRecords(Protocol):
    """The connected shops' records. Every write tells the listeners (`on_change`) of this process at once and the
    other replicas soon after (Redis pub/sub, or a change counter they poll)."""

    def on_change(self, listener: ChangeListener) -> None:
        """Call `listener(shop key)` after any shop was created, saved or deleted, by any replica ("*": reload all)."""
        ...

    async def load_all(self) -> list[StoredShop]: ...

    async def load(self, key: str) -> StoredShop | None: ...

    async def key_for_domain(self, domain: str) -> str | None: ...

    async def create(self, shop: StoredShop, tokens: TokenSet | None) -> bool:
        """Add a new shop (version 1); False when its key or domain is taken."""
        ...

    async def save(self, shop: StoredShop, *, tokens: TokenSet | None | Keep = ..., expected_version: int) -> bool:
        """Write the shop as version `expected_version + 1` if it is still at `expected_version` (False otherwise);
        with `tokens`, write them (None: drop them) in the same atomic write."""
        ...

    async def delete(self, key: str) -> bool: ...


class ShopTokens(Protocol):
    """Each connected shop's tokens and the refresh lock that makes one replica refresh them at a time. Token writes
    tell no listener: each replica re-reads the tokens when its own expire."""

    async def load_tokens(self, key: str) -> TokenSet | None: ...

    async def save_tokens(self, key: str, tokens: TokenSet, *, replacing: TokenSet) -> bool:
        """Replace the shop's tokens, atomically, if they are still `replacing` (compared by `token_id`): a refresh
        that ends after an uninstall, a reinstall or another replica's refresh does not overwrite what they wrote."""
        ...

    async def try_lock(self, key: str, owner: str, seconds: float) -> bool:
        """Take the shop's refresh lock for `seconds` unless another owner holds it."""
        ...

    async def unlock(self, key: str, owner: str) -> None: ...


class ShopStore(Protocol):
    """Where the connected shops live: one object per role (`sync`: which shops' webhook subscriptions were last found
    complete, config shops too, as the start-up sync of gateway.push.subscriptions reads them), and the lifecycle."""

    @property
    def records(self) -> ShopRecords: ...

    @property
    def tokens(self) -> ShopTokens: ...

    @property
    def sync(self) -> SyncStates: ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...


class ChangeListeners:
    """The listeners of a store's shop changes (`ShopRecords.on_change`), told in turn."""

    def __init__(self) -> None:
        self._listeners: list[ChangeListener] = []

    def add(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def tell(self, key: str) -> None:
        for listener in self._listeners:
            try:
                listener(key)
            except Exception:  # one broken listener must not hide the change from the others
                log.exception("shop store: a change listener failed")


def need_sealer(sealer: Sealer | None) -> Sealer:
    """The cipher of connected shops' records (app.token_key); without app mode the store keeps only the webhook
    subscription states."""
    if sealer is None:
        raise RuntimeError("connected shops are sealed with app.token_key: configure app: to read them")
    return sealer


class Keep:
    """`ShopStore.save(tokens=...)`'s default: leave the stored tokens as they are."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = Keep()


@asynccontextmanager
async def refresh_lock(
    store: ShopTokens, key: str, owner: str, *, wait_until: float, clock: Callable[[], float] = time.monotonic
) -> AsyncIterator[bool]:
    """Hold the shop's refresh lock, waiting for another replica's until `wait_until` (on `clock`). Yields whether
    it was taken: a caller that did not get it re-reads the tokens (the holder has probably refreshed them)."""
    taken = await store.try_lock(key, owner, REFRESH_LOCK_SECONDS)
    while not taken and clock() + LOCK_POLL_SECONDS < wait_until:
        await asyncio.sleep(LOCK_POLL_SECONDS)
        taken = await store.try_lock(key, owner, REFRESH_LOCK_SECONDS)
    try:
        yield taken
    finally:
        if taken:
            await store.unlock(key, owner)
