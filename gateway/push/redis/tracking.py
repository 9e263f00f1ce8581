"""The two reads the query side makes of the push store, on Redis (`TrackingIndex`, seen there as
`gateway.flows.PushStateReader`): a tracking number's order, and how many package pushes an order's fulfillments got."""

from __future__ import annotations

from gateway.push.records import PushStatus
from gateway.push.redis.db import RedisDb, shielded
from gateway.push.redis.outbox import fetch_pushes
from gateway.push.redis.rows import ints, text
from gateway.push.store_base import TrackingIndexBase


class RedisTrackingIndex(TrackingIndexBase):
    """`TrackingIndex` on Redis: the tracking hashes `P:s:<shop>:trk:<number>`, and the order's pushes `P:s:<shop>:o:<oid>:push`."""

    def __init__(self, db: RedisDb) -> None:
        self.db = db

    @shielded
    async def _order_name_for_tracking(self, shop_key: str, tracking_number: str) -> str | None:
        name = await self.db.redis.hget(self.db.shop(shop_key, "trk", tracking_number), "name")
        return text(name) if name is not None else None

    @shielded
    async def delivered_package_pushes(self, shop_key: str, order_id: int) -> dict[str, int]:
        ids = ints(await self.db.redis.zrange(self.db.shop(shop_key, "o", order_id, "push"), 0, -1))
        counts: dict[str, int] = {}
        for p in await fetch_pushes(self.db, ids):
            if p.topic == "package/update" and p.status == PushStatus.DELIVERED and p.fulfillment_id is not None:
                counts[str(p.fulfillment_id)] = counts.get(str(p.fulfillment_id), 0) + 1
        return counts
