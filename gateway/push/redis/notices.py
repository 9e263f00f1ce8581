"""Wake-ups across replicas: new work committed by one replica wakes the idle workers of the others at once, over
Redis pub/sub (`P:work`; the lookup-cache invalidations have a channel of their own, `P:inval`, kept by
gateway.cache_fanout). A lost message only delays the other replicas until their next poll."""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from gateway.push.redis.db import RedisDb
from gateway.push.redis.rows import text
from gateway.push.work_signal import WorkSignal
from gateway.redis_pubsub import Subscription

log = logging.getLogger(__name__)

#: How long a replica gathers its work notifications into one message to the other replicas (their wake-up latency
#: for work another replica made; a replica's own workers are woken at once).
WAKE_COALESCE_SECONDS = 0.05


class WorkNotices:
    """This replica's wake-ups: `notify` wakes the local workers now and the other replicas' with one PUBLISH per
    burst; another replica's message wakes the local workers."""

    def __init__(self, db: RedisDb, work: WorkSignal, token: str) -> None:
        self.db = db
        self.work = work
        #: This start's owner token: the message says who made the work, so a replica ignores its own.
        self.token = token
        self._channel = f"{db.prefix}:work"
        self._subscription: Subscription | None = None
        self._publish_pending = False

    async def start(self) -> None:
        self._subscription = await Subscription.open(self.db.redis, self._channel, self._heard, "push store")

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None

    def notify(self) -> None:
        self.work.notify()
        if self._publish_pending or not self.db.is_open:
            return
        self._publish_pending = True
        self.db.spawn(self._publish())

    async def _publish(self) -> None:
        # One message per burst: the commits of the next WAKE_COALESCE_SECONDS share it. Each message makes every
        # other replica's workers claim (mostly finding nothing: each replica works off what it accepted itself),
        # so one per commit would cost the other replicas as much CPU as the work.
        await asyncio.sleep(WAKE_COALESCE_SECONDS)
        self._publish_pending = False
        try:
            await self.db.redis.publish(self._channel, self.token)
        except (RedisError, RuntimeError) as exc:  # other replicas still poll: a lost wake-up only delays them
            log.warning("push store: work notification not published (%s)", type(exc).__name__)

    def _heard(self, data: bytes) -> None:
        if text(data) != self.token:  # another replica's work: its own wake-up was local already
            self.work.notify()
