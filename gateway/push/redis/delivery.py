"""The outbox on Redis as the delivery workers see it (`PushDelivery`): due pushes leased, one order's pushes in
order, each settled and its attempts recorded."""

from __future__ import annotations

from collections.abc import Callable

from gateway import jsoncodec
from gateway.push.lease_book import LeaseBook, Taken
from gateway.push.records import Push, PushAttempt
from gateway.push.redis.db import RedisDb, shielded
from gateway.push.redis.rows import num, push_from_row, taken_from
from gateway.push.store_base import PushDeliveryBase


class RedisPushDelivery(PushDeliveryBase):
    """`PushDelivery` on Redis: the push hashes `P:push:<id>`, the order heads in `P:due` (each order's queue `P:s:<shop>:o:<oid>:q`), the attempt lists `P:push:<id>:att`."""

    def __init__(self, db: RedisDb, book: LeaseBook, notify: Callable[[], None]) -> None:
        super().__init__(book, notify)
        self.db = db

    @shielded
    async def _claim_pushes(self, limit: int, now: float, lease_until: float, owner: str) -> tuple[list[Push], Taken]:
        rows, taken = await self.db.run("claim_pushes", num(now), num(lease_until), limit, owner)
        return [push_from_row(r) for r in rows], taken_from(taken)

    @shielded
    async def next_due(self) -> float | None:
        async with self.db.redis.pipeline(transaction=False) as pipe:
            pipe.zrange(self.db.k("due"), 0, 0, withscores=True)
            pipe.zrange(self.db.k("checks"), 0, 0, withscores=True)
            pushes, checks = await pipe.execute()
        values = [score for _, score in (*pushes, *checks)]
        return min(values) if values else None

    async def _mark_delivered(self, push_id: int, now: float, owner: str) -> bool:
        return int(await self.db.run_batched("mark_delivered", push_id, num(now), owner)) == 1

    async def _schedule_retry(self, push_id: int, due_at: float, error: str, owner: str) -> bool:
        return int(await self.db.run_batched("schedule_retry", push_id, num(due_at), error, owner)) == 1

    async def _dead_letter(self, push_id: int, reason: str, owner: str) -> bool:
        return int(await self.db.run_batched("dead_letter", push_id, reason, owner)) == 1

    async def _record_attempt(self, push_id: int, attempt: PushAttempt, keep: int) -> None:
        entry = jsoncodec.dumps(
            {"at": attempt.at, "status": attempt.http_status, "answer": attempt.answer, "outcome": attempt.outcome}
        )
        await self.db.run_batched("record_attempt", push_id, entry, keep)
