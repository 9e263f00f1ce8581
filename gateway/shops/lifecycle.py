"""Every change of a connected shop's connection: installed, uninstalled, redacted, refused, and operator edits.

- **install** (the callback's end): a new domain becomes a new shop (key from the domain, joinchat v1 or the app's
  default dialect, one bot secret generated, no push target yet); a known one is reconnected with its settings and
  secrets kept. Either way its install time is now, its tokens the new ones, and pushes may flow again.
- **app/uninstalled** (from the push rules): the tokens are dropped at once and the shop is marked uninstalled; its
  settings and data stay until shop/redact. An event older than the shop's latest install is ignored.
- **shop/redact**: the connected shop is forgotten (settings, secrets, tokens); the push flow purges its data.
- **refused**: Shopify refused the refresh for good; the shop is marked "reinstall needed" (console, /readyz).

Writes go through the store with the version they read (a concurrent edit makes one of them retry), and each is
applied to this replica's registry before returning, so the shop is served (or not) by the time the page answers;
the other replicas follow the store's change notice.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.settings import AppSettings
from gateway.shops.registry import ShopRegistry
from gateway.shops.store import ShopStatus, ShopStore, StoredSecret, StoredShop, TokenSet

log = logging.getLogger(__name__)

#: Bytes of randomness in a generated bot secret (43 URL-safe characters).
SECRET_BYTES = 32
_SAVE_TRIES = 5


class InstallLedger(Protocol):
    """The push flow's per-shop install flag (gateway.push.store.ShopLedger): pushes stop while it is False."""

    async def set_shop_installed(self, shop_key: str, installed: bool) -> None: ...


class InstallRefused(Exception):
    """The gateway will not connect this shop (the message says why, for the merchant's page)."""


class StaleShop(Exception):
    """The shop changed (or went away) while it was being saved, `_SAVE_TRIES` times in a row."""


@dataclass(frozen=True, slots=True)
class Installed:
    key: str
    #: True for a shop the gateway had not seen; False for a reinstall (settings and secrets kept).
    new: bool


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def key_base(domain: str) -> str:
    """`my-store.myshopify.com` → `my-store` (a shop key: letters, digits, '-' and '_')."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", domain.split(".", 1)[0])[:56] or "shop"


class ShopLifecycle:
    def __init__(
        self, registry: ShopRegistry, store: ShopStore, app: AppSettings | None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.registry = registry
        self.store = store
        self.app = app
        self.clock = clock
        #: The push store's install flags; set once the push flow has opened it.
        self.ledger: InstallLedger | None = None

    # --- install ---------------------------------------------------------------------------------------------------

    async def install(self, domain: str, tokens: TokenSet) -> Installed:
        now = self.clock()
        key = self.registry.key_for_domain(domain) or await self.store.records.key_for_domain(domain)
        if key is not None and self.registry.is_config_shop(key):
            raise InstallRefused(f"{domain} is configured in the gateway's config.yaml; it is managed there")
        if key is None:
            installed = await self._create(domain, tokens, now)
        else:
            await self._update(key, lambda shop: shop.with_changes(
                status=ShopStatus.CONNECTED, problem="", scope=tokens.scope, installed_at=now, uninstalled_at=None,
            ), tokens=tokens)  # fmt: skip
            installed = Installed(key, new=False)
        if self.ledger is not None:
            await self.ledger.set_shop_installed(installed.key, True)
        log.info("shop %s (%s) %s", installed.key, domain, "connected" if installed.new else "reconnected")
        return installed

    async def _create(self, domain: str, tokens: TokenSet, now: float) -> Installed:
        if self.app is None:
            raise InstallRefused("app mode is off: shops are configured in config.yaml")
        settings: dict[str, Any] = {"dialect": self.app.dialect}
        if self.app.dialect == "joinchat":
            settings["joinchat_version"] = self.app.joinchat_version
        base = key_base(domain)
        for n in range(1, 100):
            key = base if n == 1 else f"{base}-{n}"
            if key in self.registry or key in self.registry.stored:
                continue
            shop = StoredShop(
                key=key, domain=domain, settings=settings, bot_secrets=(StoredSecret(new_secret(), now),),
                status=ShopStatus.CONNECTED, scope=tokens.scope, installed_at=now, created_at=now,
            )  # fmt: skip
            if await self.store.records.create(shop, tokens):
                await self._refresh_registry(key)
                return Installed(key, new=True)
            found = await self.store.records.key_for_domain(domain)
            if found is not None:  # installed at this very moment by another replica's callback
                return await self.install(domain, tokens)
        raise InstallRefused(f"no free shop key for {domain}")

    # --- what the push rules report (gateway.push.rules.AppLifecycle) ----------------------------------------------

    async def uninstalled(self, shop_key: str, at: float) -> bool:
        stored = await self.store.records.load(shop_key) if self.app is not None else None
        if stored is None:
            await self.store.sync.set_sync_state(shop_key, None)  # Shopify deleted the subscriptions (below)
            return True  # a config shop: no token of ours to drop
        if stored.installed_at is not None and at < stored.installed_at:
            return False
        await self._update(shop_key, lambda shop: shop.with_changes(
            status=ShopStatus.UNINSTALLED, uninstalled_at=at, problem="",
        ), tokens=None)  # fmt: skip
        # Shopify deletes an app's webhook subscriptions at uninstall: a reinstall creates them again.
        await self.store.sync.set_sync_state(shop_key, None)
        log.warning("shop %s: app uninstalled: token dropped, pushes stopped (data kept until shop/redact)", shop_key)
        return True

    async def redacted(self, shop_key: str, at: float) -> bool:
        stored = await self.store.records.load(shop_key) if self.app is not None else None
        if stored is None:
            await self.store.sync.set_sync_state(shop_key, None)  # a config shop: only its subscription state is ours
            return True
        if stored.installed_at is not None and at < stored.installed_at:
            return False
        await self.store.records.delete(shop_key)
        await self._refresh_registry(shop_key)
        log.info("shop %s: shop/redact: the connected shop is forgotten", shop_key)
        return True

    # --- what the token provider reports ---------------------------------------------------------------------------

    async def refused(self, shop_key: str, reason: str) -> None:
        await self._update(shop_key, lambda shop: shop.with_changes(
            status=ShopStatus.REINSTALL_NEEDED, problem=f"Shopify refused the token refresh: {reason}"[:300],
        ), tokens=None)  # fmt: skip

    # --- operator edits (the console) ------------------------------------------------------------------------------

    async def edit(self, shop_key: str, change: Callable[[StoredShop], StoredShop]) -> StoredShop:
        """Apply `change` to the stored shop (again if another write came first); the result, as stored."""
        return await self._update(shop_key, change)

    async def remove(self, shop_key: str) -> bool:
        removed = await self.store.records.delete(shop_key)
        await self._refresh_registry(shop_key)
        return removed

    # --- plumbing --------------------------------------------------------------------------------------------------

    async def _update(self, shop_key: str, change: Callable[[StoredShop], StoredShop], **tokens: Any) -> StoredShop:
        for _ in range(_SAVE_TRIES):
            stored = await self.store.records.load(shop_key)
            if stored is None:
                raise StaleShop(f"shop {shop_key} is no longer connected")
            changed = change(stored)
            if await self.store.records.save(changed, expected_version=stored.version, **tokens):
                await self._refresh_registry(shop_key)
                return changed.with_changes(version=stored.version + 1)
        raise StaleShop(f"shop {shop_key} kept changing while it was saved")

    async def _refresh_registry(self, shop_key: str) -> None:
        self.registry.apply(shop_key, await self.store.records.load(shop_key))
