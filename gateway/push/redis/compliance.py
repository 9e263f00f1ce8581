"""The GDPR webhooks' side of the push store on Redis (`ComplianceStore`): what is stored about a customer's orders,
counted or deleted, and a shop's data deleted."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.push.records import StoredCounts
from gateway.push.redis.db import RedisDb, shielded
from gateway.push.redis.rows import glob_escape, ints, opt, text
from gateway.push.store_base import ComplianceBase


class RedisCompliance(ComplianceBase):
    """`ComplianceStore` on Redis: a customer's data in one script (`customer_data.lua`), a shop's key by key."""

    def __init__(self, db: RedisDb) -> None:
        self.db = db

    @shielded
    async def _customer_data(
        self, shop_key: str, customer_id: int | None, order_ids: Sequence[int], *, delete: bool
    ) -> StoredCounts:
        """One script: a purge is atomic (no replica sees half of it)."""
        n = await self.db.run("customer_data", shop_key, opt(customer_id), "1" if delete else "0", *order_ids)
        events, orders, fulfillments, pushes, tracking, checks = (int(x) for x in n)
        return StoredCounts(events, orders, fulfillments, pushes, tracking, checks)

    @shielded
    async def purge_shop(self, shop_key: str) -> StoredCounts:
        """Not one script (a big shop would block Redis). Pushes leave the shared queues first, then every key under
        `P:s:<shop>:` is unlinked (SCAN), and the shop's events go last: the shop/redact event being processed
        right now stays in the backlog until the purge is complete. The install flag stays."""
        r = self.db.redis
        events = pushes = 0
        event_batches = await self._batches(self.db.shop(shop_key, "ev"))
        for ids in await self._batches(self.db.shop(shop_key, "push")):
            async with r.pipeline(transaction=False) as pipe:
                for pid in ids:
                    pipe.hget(self.db.k("push", pid), "status")
                found = await pipe.execute()
            async with r.pipeline(transaction=True) as pipe:
                for pid, status in zip(ids, found, strict=True):
                    pipe.zrem(self.db.shop(shop_key, "push"), pid)
                    if status is None:
                        continue
                    pushes += 1
                    pipe.zrem(self.db.k("pst", text(status)), pid)
                    pipe.zrem(self.db.k("due"), pid)
                    pipe.unlink(self.db.k("push", pid), self.db.k("push", pid, "att"))
                await pipe.execute()
        counted = {"ord": 0, "ful": 0, "trk": 0, "chk": 0}
        base = glob_escape(self.db.shop(shop_key)) + ":"
        check_members: list[str] = []
        for kind in counted:
            async for key in r.scan_iter(match=base + kind + ":*", count=500):
                counted[kind] += 1
                if kind == "chk":
                    check_members.append(f"{shop_key}\n{text(key).rsplit(':', 1)[1]}")
        if check_members:
            await r.zrem(self.db.k("checks"), *check_members)
        batch: list[bytes] = []
        async for key in r.scan_iter(match=base + "*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                await r.unlink(*batch)
                batch.clear()
        if batch:
            await r.unlink(*batch)
        for seqs in event_batches:
            async with r.pipeline(transaction=False) as pipe:
                for seq in seqs:
                    pipe.hget(self.db.k("ev", seq), "eid")
                eids = await pipe.execute()
            async with r.pipeline(transaction=True) as pipe:
                for seq, eid in zip(seqs, eids, strict=True):
                    if eid is None:
                        continue
                    events += 1
                    pipe.hdel(self.db.k("evid", text(eid)), shop_key)
                    pipe.unlink(self.db.k("ev", seq))
                    pipe.zrem(self.db.k("ev", "ready"), seq)
                    pipe.zrem(self.db.k("ev", "leased"), seq)
                await pipe.execute()
        return StoredCounts(
            events=events,
            orders=counted["ord"],
            fulfillments=counted["ful"],
            pushes=pushes,
            tracking_numbers=counted["trk"],
            unpaid_checks=counted["chk"],
        )

    async def _batches(self, zset_key: str, size: int = 500) -> list[list[int]]:
        members = ints(await self.db.redis.zrange(zset_key, 0, -1))
        return [members[i : i + size] for i in range(0, len(members), size)]
