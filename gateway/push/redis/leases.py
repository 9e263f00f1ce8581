"""This replica's leases on Redis (`LeaseLedger`, docs/replicas.md): renewal by the heartbeat, who holds what, and
the leases an earlier start of this replica id held, taken back when a serving gateway opens the store."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from gateway.push.lease_book import LeaseBook, LeaseIds, Renewal, Taken
from gateway.push.records import LeaseHolder, LeaseKind, ReplicaStatus
from gateway.push.redis.db import RedisDb, shielded
from gateway.push.redis.rows import LEASE_KINDS, LEASE_LETTER, by_kind, num, text
from gateway.push.store_base import LeaseLedgerBase

log = logging.getLogger(__name__)


class RedisLeaseLedger(LeaseLedgerBase):
    """`LeaseLedger` on Redis: the rows' owners ('own', 'lsince'), each replica's held set `P:held:<replica id>` and the heartbeats in `P:replicas`."""

    def __init__(self, db: RedisDb, book: LeaseBook) -> None:
        super().__init__(book)
        self.db = db
        self._other_starts: set[str] = set()

    async def _renew_leases(
        self, held: LeaseIds, now: float, lease_until: float, owner: str, *, beat: bool = False
    ) -> Renewal:
        members = [f"{LEASE_LETTER[kind]}:{lease_id}" for kind, ids in held.items() for lease_id in ids]
        entry = self._replica_entry(now) if beat else ""
        if not members and not entry:
            return Renewal({}, {})
        taken, gone, other = await self.db.run_batched("renew_leases", num(lease_until), owner, entry, *members)
        if other:
            self._warn_shared_id(text(other))
        return Renewal(by_kind(taken), by_kind(gone))

    def _warn_shared_id(self, other: str) -> None:
        """Another start of this replica id wrote the heartbeat since this one did: unless that start is dead (then
        this process is the stale one: paused past its leases), two live processes share the id and take each other's
        work at every restart. Said once per other start."""
        nonce = other.split("\t", 1)[0]
        if nonce in self._other_starts:
            return
        self._other_starts.add(nonce)
        log.error(
            "replica id %s: another process (start %s) beats under the same id as this one (start %s); give every"
            " gateway replica its own GATEWAY_REPLICA_ID",
            self.book.identity.replica_id, nonce, self.book.identity.nonce,
        )  # fmt: skip

    def _replica_entry(self, beat_at: float) -> str:
        return f"{self.book.identity.nonce}\t{num(self.book.identity.started_at)}\t{num(beat_at)}"

    async def reclaim(self) -> None:
        found = await self.db.run(
            "reclaim_leases", self.book.identity.token, self._replica_entry(self.book.identity.started_at)
        )
        by_kind: dict[LeaseKind, Taken] = {}
        for i in range(0, len(found), 3):
            kind, owner, count = LEASE_KINDS[text(found[i])], text(found[i + 1]), int(found[i + 2])
            by_kind.setdefault(kind, {})[owner] = count
        for kind, taken in by_kind.items():
            self.book.report_taken(kind, taken, "restart")

    @shielded
    async def push_holders(self, push_ids: Sequence[int]) -> dict[int, LeaseHolder]:
        async with self.db.redis.pipeline(transaction=False) as pipe:
            for pid in push_ids:
                pipe.hmget(self.db.k("push", pid), ["own", "lsince", "lease", "status"])
            rows = await pipe.execute()
        return {
            pid: LeaseHolder(text(own), float(since or 0), float(lease or 0))
            for pid, (own, since, lease, status) in zip(push_ids, rows, strict=True)
            if own and status == b"pending"
        }

    @shielded
    async def replicas(self) -> list[ReplicaStatus]:
        out = []
        for rid, entry, events, pushes, checks, oldest in await self.db.run("leases_held"):
            nonce, started, beat = text(entry).split("\t")
            held = {LeaseKind.EVENT: int(events), LeaseKind.PUSH: int(pushes), LeaseKind.CHECK: int(checks)}
            since = float(oldest) if oldest else None
            out.append(ReplicaStatus(text(rid), nonce, float(started), float(beat), held, since))
        return sorted(out, key=lambda r: r.replica_id)
