"""The live `settings.shops`: the shops of config.yaml plus those connected from the browser, kept in the store.

`ShopRegistry` is a `dict[str, ShopSettings]`, so everything that reads `settings.shops` (the push rules, the
sender, reconciliation, the console) reads it unchanged, at a dict's speed. While the app runs, the registry follows
the store: a shop created, edited, paused or removed on any replica is put in or taken out here (the store tells
`on_change`, this process at once, the others over Redis pub/sub or a polled change counter), and the registry's
own listeners drop what they built for that shop (its Shopify client, lookup context, bot route), to be built again
from the new settings on first use. Config shops never change while serving.

A stored shop becomes `ShopSettings` through `shop_settings`, with the same pydantic rules as a config shop, so a
value the config would refuse is refused in the console too, and a stored shop that no longer validates (a rule
was tightened) is left out with the reason in `problems` instead of stopping the gateway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from gateway.settings import AppSettings, ShopSettings
from gateway.shops.store import ShopRecords, StoredShop

log = logging.getLogger(__name__)

#: The ShopSettings fields kept in a stored shop's `settings` (the rest take the defaults a config shop has).
EDITABLE_FIELDS = ("dialect", "joinchat_version", "api_version", "deadline_seconds", "status_labels", "phone_region",
                   "push")  # fmt: skip
#: The push settings kept there (the push secrets are kept as `StoredShop.push_secrets`).
EDITABLE_PUSH_FIELDS = ("enabled", "url", "page_id", "topics")

ShopListener = Callable[[str], None]


def shop_settings(stored: StoredShop, app: AppSettings) -> ShopSettings:
    """The ShopSettings of a connected shop; raises pydantic's ValidationError as a config shop would."""
    raw: dict[str, Any] = {k: v for k, v in stored.settings.items() if k in EDITABLE_FIELDS and k != "push"}
    raw.setdefault("api_version", app.api_version)
    raw.update(
        domain=stored.domain,
        admin_api_base=app.admin_api_base,
        auth={"mode": "app"},
        # the app's client secret signs every webhook of the app's shops
        webhook_secret=app.client_secret.get_secret_value(),
        secrets=[s.value for s in stored.bot_secrets],
        paused=stored.paused,
    )
    push = stored.settings.get("push")
    if isinstance(push, Mapping) and push.get("url"):
        raw["push"] = {**{k: v for k, v in push.items() if k in EDITABLE_PUSH_FIELDS},
                       "secrets": [s.value for s in stored.push_secrets]}  # fmt: skip
    return ShopSettings.model_validate(raw)


def validation_message(err: ValidationError) -> str:
    """pydantic's errors as one line naming the fields (never the values: they may be secrets)."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'shop'}: {e['msg']}" for e in err.errors())


class ShopRegistry(dict[str, ShopSettings]):
    """Shop key → ShopSettings of every shop the gateway serves now (see the module docstring)."""

    def __init__(self, config_shops: Mapping[str, ShopSettings], app: AppSettings | None) -> None:
        super().__init__(config_shops)
        self.config_keys = frozenset(config_shops)
        self.app = app
        #: The connected shops as stored (status, secrets' dates, install times), for the console and lifecycle.
        self.stored: dict[str, StoredShop] = {}
        #: Connected shops left out, and why (a clash with a config shop, settings that no longer validate).
        self.problems: dict[str, str] = {}
        self._domains = {shop.domain: key for key, shop in config_shops.items()}
        self._listeners: list[ShopListener] = []
        self._pending: set[str] = set()
        self._reloading: asyncio.Task[None] | None = None
        self._store: ShopRecords | None = None

    def key_for_domain(self, domain: str) -> str | None:
        return self._domains.get(domain)

    def is_config_shop(self, key: str) -> bool:
        return key in self.config_keys

    def on_change(self, listener: ShopListener) -> None:
        """Call `listener(key)` whenever a shop's settings changed or it went away (drop what was built for it)."""
        self._listeners.append(listener)

    # --- following the store ---------------------------------------------------------------------------------------

    async def follow(self, store: ShopRecords) -> None:
        """Load every stored shop, then apply the store's changes as they come."""
        self._store = store
        self.replace_all(await store.load_all())
        store.on_change(self._changed)

    def _changed(self, key: str) -> None:
        self._pending.add(key)
        if self._reloading is None or self._reloading.done():
            self._reloading = asyncio.ensure_future(self._reload_pending())

    async def _reload_pending(self) -> None:
        store = self._store
        while self._pending and store is not None:
            keys, self._pending = self._pending, set()
            try:
                if "*" in keys:
                    self.replace_all(await store.load_all())
                    continue
                for key in keys:
                    self.apply(key, await store.load(key))
            except Exception:  # the store is away: the next change or poll brings the shop up to date
                log.exception("shops: could not reload %s from the store", ", ".join(sorted(keys)))

    def replace_all(self, shops: list[StoredShop]) -> None:
        seen = {shop.key for shop in shops}
        for key in [k for k in self.stored if k not in seen]:
            self.apply(key, None)
        for key in [k for k in self.problems if k not in seen]:
            del self.problems[key]
        for shop in shops:
            if self.stored.get(shop.key) != shop:
                self.apply(shop.key, shop)

    def apply(self, key: str, stored: StoredShop | None) -> None:
        """Put a stored shop in (None: take it out), then tell the listeners."""
        if stored is not None and key in self and self.stored.get(key) == stored:
            return  # heard of twice (our own write, then the store's notice)
        if key in self.config_keys:
            if stored is not None:
                self.problems[key] = "a shop of config.yaml has this key: the connected shop is not served"
            return
        settings: ShopSettings | None = None
        self.problems.pop(key, None)
        if stored is not None:
            if self.app is None:
                self.problems[key] = "app: is not configured, so connected shops are not served"
            elif stored.domain in self._domains and self._domains[stored.domain] != key:
                self.problems[key] = f"{stored.domain} is already served as {self._domains[stored.domain]!r}"
            else:
                try:
                    settings = shop_settings(stored, self.app)
                except ValidationError as err:
                    self.problems[key] = "its settings no longer validate: " + validation_message(err)
                    log.error("shops: connected shop %s left out: %s", key, self.problems[key])
        old = self.stored.pop(key, None)
        if old is not None and self._domains.get(old.domain) == key:
            del self._domains[old.domain]
        self.pop(key, None)
        if stored is not None and settings is not None:
            self.stored[key] = stored
            self[key] = settings
            self._domains[stored.domain] = key
        elif stored is not None:
            self.stored[key] = stored  # shown in the console with its problem, not served
        for listener in self._listeners:
            try:
                listener(key)
            except Exception:
                log.exception("shops: a change listener failed for %s", key)


def watch_shops(shops: Mapping[str, ShopSettings], listener: ShopListener) -> None:
    """`listener(key)` on every change of a shop, when `shops` is the live registry (a plain dict never changes)."""
    if isinstance(shops, ShopRegistry):
        shops.on_change(listener)


SHOP_REGISTRY = web.AppKey("shop_registry", ShopRegistry)
