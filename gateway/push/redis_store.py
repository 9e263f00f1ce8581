"""The push store on Redis, for several gateway replicas behind a load balancer (redis.asyncio, redis-py ≥ 5).

Every replica opens a `RedisPushStore` on the same Redis and the same `storage.redis_prefix`; they then share the
webhook dedupe, the stored events, the outbox and its leases, the order/fulfillment states, the tracking index, the
reconciliation watermarks and the install flags. Every state change that must be atomic runs in a Lua script (one
per operation, in `redis_lua/`; or in one MULTI/EXEC of scripts, for `commit`), so two replicas can never both claim
one event or one push.

Key layout (P = the prefix; shop keys are `[A-Za-z0-9_-]+`, checked by the settings):

    P:seq:ev, P:seq:push              counters: event seq, push id
    P:ev:<seq>                        hash: one stored webhook (shop, eid, topic, ..., body, status, error, oid, cid)
    P:evid:<event id>                 hash: shop → seq (the dedupe of X-Shopify-Event-Id, shared by every replica)
    P:ev:ready                        zset: pending events not leased, score = seq (claimed oldest first)
    P:ev:leased                       zset: pending events being processed, score = lease expiry
    P:push:<id>                       hash: one outbox row
    P:push:<id>:att                   list: its delivery attempts (JSON, newest MAX_ATTEMPTS_KEPT), deleted with it
    P:due                             zset: the head (oldest pending push) of each order, score = max(due, lease expiry)
    P:pst:<status>                    zset: push ids by status (dead letters, backlog, listings), score = id
    P:checks                          zset: open unpaid checks "<shop>\\n<order id>", score = max(due, lease expiry)
    P:installed                       hash: shop → 0/1
    P:s:<shop>:ev / :push             zsets: every event seq / push id of the shop (purges, listings)
    P:s:<shop>:pk                     hash: dedupe key → push id (enqueueing is idempotent)
    P:s:<shop>:ord:<oid>              hash: order state;  P:s:<shop>:ful:<fid>: fulfillment state
    P:s:<shop>:trk:<tracking number>  hash: the tracking index (oid, name, cid)
    P:s:<shop>:chk:<oid>              hash: the unpaid check of an order (kept when done: once per order)
    P:s:<shop>:wm                     the reconciliation watermark
    P:s:<shop>:hold                   hash: the shop's push-read hold (until, failures), while its reads fail
    P:s:<shop>:o:<oid>:q              zset: the order's pending pushes by id (only the lowest is in P:due: ordering)
    P:s:<shop>:o:<oid>:ev/:push/:ful/:trk   what is stored about the order (compliance purges)
    P:s:<shop>:c:<cid>:o / :ev        sets: the customer's order ids / customer-only events (compliance purges)
    P:held:<replica id>               set: what the replica's starts hold ("e:<seq>", "p:<id>", "c:<shop>\\n<oid>")
    P:replicas                        hash: replica id → "<nonce>\\t<started>\\t<last heartbeat>"

Leases (docs/replicas.md): a claim writes the claiming replica's owner token in the row ('own', with 'lsince') and
re-scores the row in its queue (P:ev:leased, P:due, P:checks) to its lease expiry; the replica's heartbeat pushes the
expiry on while the work runs. A replica that dies loses nothing: its rows become claimable again, by any replica,
when their leases expire (one lease after its last heartbeat), and a replica that restarts under the same replica id
releases at once what its earlier start held (P:held). Settling is fenced: mark_delivered, schedule_retry and
dead_letter check the owner in their script, and `commit` WATCHes the events and checks it finishes, so a replica
that lost a lease writes nothing for that work. Per-order ordering: only an order's head is in P:due; delivering,
dead-lettering or dropping it puts the next one there.

Wake-ups travel over Redis pub/sub: `P:work` (new work, so idle workers on other replicas wake at once). The
lookup-cache invalidations have a channel of their own, `P:inval`, kept by gateway.cache_fanout.

Times are the replicas' `time.time()` (passed to the scripts), so replica clocks should be NTP-synchronised; a skew
only shifts when a lease or a retry falls due.

Durability: a webhook is acknowledged once Redis has applied the write. Whether it survives a Redis restart depends
on the server's persistence: run Redis with `appendonly yes` and `appendfsync always` (or `everysec`, accepting up to
a second of acknowledged webhooks lost on a power cut), and a replica (Sentinel) for failover. The Redis on the
development machines keeps nothing on disk (no AOF/RDB), so durability across a Redis restart is not tested here.
The scripts build key names themselves, so this backend needs a single Redis (or Sentinel), not Redis Cluster.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import redis.asyncio as aioredis

from gateway.push.records import (
    StoredCounts,
)
from gateway.push.redis.db import RedisDb, RedisUnavailable, shielded
from gateway.push.redis.delivery import RedisPushDelivery
from gateway.push.redis.events import RedisEventLog
from gateway.push.redis.leases import RedisLeaseLedger
from gateway.push.redis.notices import WorkNotices
from gateway.push.redis.outbox import RedisOutboxAdmin
from gateway.push.redis.rows import (
    glob_escape,
    ints,
    opt,
    text,
)
from gateway.push.redis.shops import RedisShopHolds, RedisShopLedger
from gateway.push.redis.states import RedisOrderStates
from gateway.push.redis.tracking import RedisTrackingIndex
from gateway.push.replica import ReplicaIdentity
from gateway.push.store_base import PushStoreBase

log = logging.getLogger(__name__)


class RedisPushStore(PushStoreBase):
    """`PushStore` on Redis, shared by every replica that uses the same URL and prefix: `PushStoreBase`'s primitives
    as Lua scripts and pipelines."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "gw",
        max_connections: int = 64,
        identity: ReplicaIdentity | None = None,
        reclaim: bool = False,
    ) -> None:
        super().__init__(identity)
        self.db = RedisDb(url, prefix=prefix, max_connections=max_connections)
        self.notices = WorkNotices(self.db, self._work, self.identity.token)
        self.shops = RedisShopLedger(self.db)
        self.holds = RedisShopHolds(self.db)
        self.tracking = RedisTrackingIndex(self.db)
        self.leases = RedisLeaseLedger(self.db, self.book)
        self.events = RedisEventLog(self.db, self.book, self._notify)
        self.states = RedisOrderStates(self.db, self.book, self._notify)
        self.delivery = RedisPushDelivery(self.db, self.book, self._notify)
        self.outbox = RedisOutboxAdmin(self.db, self.book, self._notify)
        self.prefix = prefix
        #: The serving gateway: at open, take back at once what earlier starts of this replica id held.
        self.reclaim = reclaim

    # lifecycle ----------------------------------------------------------------------------------------------------

    async def open(self) -> None:
        if self.db.is_open:
            return
        await self.db.open()
        if self.reclaim:
            await self.leases.reclaim()
        await self.notices.start()

    async def close(self) -> None:
        await self.notices.stop()
        await self.db.close()

    async def ping(self) -> str | None:
        return await self.db.ping()

    @property
    def redis(self) -> aioredis.Redis:
        return self.db.redis

    def _notify(self) -> None:
        self.notices.notify()

    # intake -------------------------------------------------------------------------------------------------------

    # rules --------------------------------------------------------------------------------------------------------

    # delivery -----------------------------------------------------------------------------------------------------

    # leases -------------------------------------------------------------------------------------------------------

    # operator CLI -------------------------------------------------------------------------------------------------

    # PushStateReader ----------------------------------------------------------------------------------------------

    # reconciliation and shop lifecycle ----------------------------------------------------------------------------

    # shop holds ---------------------------------------------------------------------------------------------------

    # compliance ---------------------------------------------------------------------------------------------------

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


__all__ = ["RedisPushStore", "RedisUnavailable"]
