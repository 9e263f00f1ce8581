"""Where the query flow and the push flow meet: the one interface each knows of the other.

- The query side reads what the push side keeps: the tracking index (a `packages` lookup by tracking number) and the
  delivery log (the open API's `notify_send_count`): `PushStateReader`, in `app[PUSH_STATE]` (the push store).
- The push side evicts the query side's cached lookups a webhook made stale: `LookupInvalidator`, in
  `app[LOOKUP_INVALIDATOR]` (the lookup cache), with tags of gateway.cache_tags.

Neither flow imports the other's modules; only the app's wiring puts the two objects in place.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from aiohttp import web


class PushStateReader(Protocol):
    """Implemented by the push pipeline's store; the query side only reads it (PROTOCOL §6 and §10)."""

    async def order_name_for_tracking(self, shop_key: str, tracking_number: str) -> str | None:
        """The order name (without '#') a tracking number belongs to, from fulfillment webhooks and reconciliation."""
        ...

    async def delivered_package_pushes(self, shop_key: str, order_id: int) -> dict[str, int]:
        """Delivered `package/update` pushes of one order (numeric id), per fulfillment numeric id (as str) → count."""
        ...


class LookupInvalidator(Protocol):
    """Implemented by the query side's lookup cache; the push side only evicts through it. Each returns how many
    entries went."""

    def invalidate(self, shop_key: str, tags: Iterable[str]) -> int:
        """Evict the shop's lookups tagged with any of `tags` (gateway.cache_tags)."""
        ...

    def invalidate_shop(self, shop_key: str) -> int:
        """Evict every lookup of the shop."""
        ...


#: Set by the push pipeline (gateway.push.setup).
PUSH_STATE = web.AppKey("push_state", PushStateReader)
#: Set by the query side (gateway.cache.setup_cache); absent when the app has no lookup cache.
LOOKUP_INVALIDATOR = web.AppKey("lookup_invalidator", LookupInvalidator)
