"""The outbox on Redis as the operator sees it (`OutboxAdmin`): the backlog, the pushes and their attempts; a push
retried or dropped."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gateway import jsoncodec
from gateway.push.lease_book import LeaseBook
from gateway.push.records import Push, PushAttempt, PushStatus
from gateway.push.redis.db import RedisDb, shielded
from gateway.push.redis.rows import PUSH_FIELDS, ints, num, push_from_row
from gateway.push.store_base import OutboxAdminBase


class RedisOutboxAdmin(OutboxAdminBase):
    """`OutboxAdmin` on Redis: the push hashes, their status sets `P:pst:<status>` and the shop's `P:s:<shop>:push`."""

    def __init__(self, db: RedisDb, book: LeaseBook, notify: Callable[[], None]) -> None:
        super().__init__(book, notify)
        self.db = db

    @shielded
    async def backlog(self) -> dict[str, int]:
        async with self.db.redis.pipeline(transaction=True) as pipe:
            pipe.zcard(self.db.k("ev", "ready"))
            pipe.zcard(self.db.k("ev", "leased"))
            pipe.zcard(self.db.k("pst", PushStatus.PENDING))
            pipe.zcard(self.db.k("pst", PushStatus.DEAD))
            pipe.zcard(self.db.k("checks"))
            ready, leased, pending, dead, checks = await pipe.execute()
        return {"events": ready + leased, "pushes": pending, "dead": dead, "checks": checks}

    @shielded
    async def push_attempts(self, push_id: int) -> list[PushAttempt]:
        out = []
        for raw in await self.db.redis.lrange(self.db.k("push", push_id, "att"), 0, -1):
            d = jsoncodec.loads(raw)
            out.append(PushAttempt(float(d["at"]), d.get("status"), str(d.get("answer", "")), str(d["outcome"])))
        return out

    @shielded
    async def list_pushes(
        self, shop_key: str | None = None, statuses: Sequence[PushStatus] = (), limit: int = 50
    ) -> list[Push]:
        wanted = {PushStatus(s) for s in statuses} or set(PushStatus)
        if shop_key is None:
            # Newest first across the status sets: the newest `limit` of each, merged.
            ids: set[int] = set()
            for status in wanted:
                ids.update(ints(await self.db.redis.zrevrange(self.db.k("pst", status), 0, limit - 1)))
            return await fetch_pushes(self.db, sorted(ids, reverse=True)[:limit])
        out: list[Push] = []
        page, start = max(limit, 100), 0
        while len(out) < limit:
            chunk = ints(await self.db.redis.zrevrange(self.db.shop(shop_key, "push"), start, start + page - 1))
            if not chunk:
                break
            out += [p for p in await fetch_pushes(self.db, chunk) if p.status in wanted]
            start += page
        return out[:limit]

    @shielded
    async def get_push(self, push_id: int) -> Push | None:
        found = await fetch_pushes(self.db, [push_id])
        return found[0] if found else None

    @shielded
    async def _retry_push(self, push_id: int, now: float, from_statuses: Sequence[PushStatus]) -> bool:
        return bool(await self.db.run("retry_push", push_id, num(now), *map(str, from_statuses)))

    @shielded
    async def _drop_push(self, push_id: int, from_statuses: Sequence[PushStatus]) -> bool:
        return bool(await self.db.run("drop_push", push_id, *map(str, from_statuses)))


async def fetch_pushes(db: RedisDb, ids: Sequence[int]) -> list[Push]:
    """The pushes of these ids (those that are gone left out), in one round trip."""
    if not ids:
        return []
    async with db.redis.pipeline(transaction=False) as pipe:
        for pid in ids:
            pipe.hmget(db.k("push", pid), list(PUSH_FIELDS))
        rows = await pipe.execute()
    return [push_from_row([pid, *row]) for pid, row in zip(ids, rows, strict=True) if row[0] is not None]
