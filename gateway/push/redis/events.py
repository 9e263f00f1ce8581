"""The stored webhooks on Redis (`EventLog`): intake records them, the processor claims them, `gateway replay`
requeues one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from gateway.push.lease_book import LeaseBook, Taken
from gateway.push.records import RecordResult, StoredEvent, WebhookMeta
from gateway.push.redis.db import RedisDb, shielded
from gateway.push.redis.rows import EVENT_FIELDS, event_from_row, ints, num, taken_from
from gateway.push.store_base import EventLogBase


class RedisEventLog(EventLogBase):
    """`EventLog` on Redis: the event hashes `P:ev:<seq>`, the dedupe index `P:evid:<event id>`, the queues `P:ev:ready` and `P:ev:leased`."""

    def __init__(self, db: RedisDb, book: LeaseBook, notify: Callable[[], None]) -> None:
        super().__init__(book, notify)
        self.db = db

    async def _record_event(
        self, shop_key: str, event_id: str, meta: WebhookMeta, body: bytes, received_at: float
    ) -> RecordResult:
        seq = await self.db.run_batched(
            "record_event",
            shop_key,
            event_id,
            meta.topic,
            meta.webhook_id,
            meta.triggered_at,
            meta.api_version,
            body,
            num(received_at),
        )
        return "duplicate" if int(seq) == 0 else "new"

    @shielded
    async def _claim_events(
        self, limit: int, now: float, lease_until: float, owner: str
    ) -> tuple[list[StoredEvent], Taken]:
        rows, taken = await self.db.run("claim_events", num(now), num(lease_until), limit, owner)
        return [event_from_row(r) for r in rows], taken_from(taken)

    @shielded
    async def _defer_events(self, seqs: Sequence[int], until: float, owner: str) -> None:
        # still in P:ev:leased (so no replica claims them), until `until`; claim_events moves them back to ready then
        await self.db.run("defer_events", num(until), owner, *seqs)

    @shielded
    async def get_event(self, shop_key: str | None, event_id: str) -> StoredEvent | None:
        index: dict[Any, Any] = await self.db.redis.hgetall(self.db.k("evid", event_id))
        if shop_key is not None:
            seqs = [index[shop_key.encode()]] if shop_key.encode() in index else []
        else:
            seqs = sorted(index.values(), key=int)[:1]
        if not seqs:
            return None
        seq = int(seqs[0])
        row = await self.db.redis.hmget(self.db.k("ev", seq), list(EVENT_FIELDS))
        return event_from_row([seq, *row]) if row[0] is not None else None

    @shielded
    async def _requeue_event(self, seq: int) -> bool:
        return bool(await self.db.run("requeue_event", seq))

    @shielded
    async def last_event_at(self, shop_key: str) -> float | None:
        # seqs grow in arrival order, so the shop's highest seq is its latest webhook
        newest = ints(await self.db.redis.zrevrange(self.db.shop(shop_key, "ev"), 0, 0))
        if not newest:
            return None
        received = await self.db.redis.hget(self.db.k("ev", newest[0]), "recv")
        return float(received) if received is not None else None
