"""The push store on Redis, for several gateway replicas behind a load balancer (redis.asyncio, redis-py ≥ 5): one role
object per part of the contract over one `RedisDb` (gateway.push.redis.db).

Every replica opens a `RedisPushStore` on the same Redis and the same `storage.redis_prefix`; they then share the
webhook dedupe, the stored events, the outbox and its leases, the order/fulfillment states, the tracking index, the
reconciliation watermarks and the install flags. Every state change that must be atomic runs in a Lua script (one
per operation, in `lua/`; or in one MULTI/EXEC of scripts, for `commit`), so two replicas can never both claim
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

from gateway.push.lease_book import LeaseBook
from gateway.push.redis.compliance import RedisCompliance
from gateway.push.redis.db import RedisDb
from gateway.push.redis.delivery import RedisPushDelivery
from gateway.push.redis.events import RedisEventLog
from gateway.push.redis.leases import RedisLeaseLedger
from gateway.push.redis.notices import WorkNotices
from gateway.push.redis.outbox import RedisOutboxAdmin
from gateway.push.redis.shops import RedisShopHolds, RedisShopLedger
from gateway.push.redis.states import RedisOrderStates
from gateway.push.redis.tracking import RedisTrackingIndex
from gateway.push.replica import ReplicaIdentity
from gateway.push.work_signal import WorkSignal


class RedisPushStore:
    """`PushStore` on Redis, shared by every replica that uses the same URL and prefix."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "gw",
        max_connections: int = 64,
        identity: ReplicaIdentity | None = None,
        reclaim: bool = False,
    ) -> None:
        self.db = RedisDb(url, prefix=prefix, max_connections=max_connections)
        self._work = WorkSignal()
        book = LeaseBook(identity or ReplicaIdentity.start())
        self.notices = WorkNotices(self.db, self._work, book.identity.token)
        notify = self.notices.notify
        self.events = RedisEventLog(self.db, book, notify)
        self.states = RedisOrderStates(self.db, book, notify)
        self.delivery = RedisPushDelivery(self.db, book, notify)
        self.outbox = RedisOutboxAdmin(self.db, book, notify)
        self.leases = RedisLeaseLedger(self.db, book)
        self.tracking = RedisTrackingIndex(self.db)
        self.shops = RedisShopLedger(self.db)
        self.holds = RedisShopHolds(self.db)
        self.compliance = RedisCompliance(self.db)
        #: The serving gateway: at open, take back at once what earlier starts of this replica id held.
        self.reclaim = reclaim

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

    async def wait_for_work(self, max_wait_seconds: float) -> None:
        await self._work.wait(max_wait_seconds)


__all__ = ["RedisPushStore"]
