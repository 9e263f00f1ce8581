"""What the push rules remember on Redis (`OrderStateStore`): order and fulfillment states and unpaid checks, and the
atomic commit of what a processing step produced (states, pushes, tracking entries, checks, the event done)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import WatchError

from gateway.push.lease_book import LeaseBook, Taken
from gateway.push.records import EventOutcome, FulfillmentState, OrderState, UnpaidCheck
from gateway.push.redis.db import RedisDb, shielded
from gateway.push.redis.rows import num, opt, opt_int, taken_from, text
from gateway.push.store_base import OrderStatesBase


class RedisOrderStates(OrderStatesBase):
    """`OrderStateStore` on Redis: the order and fulfillment hashes (`P:s:<shop>:ord:<oid>`, `:ful:<fid>`), the unpaid checks (`P:s:<shop>:chk:<oid>`, queued in `P:checks`), and `commit`."""

    def __init__(self, db: RedisDb, book: LeaseBook, notify: Callable[[], None]) -> None:
        super().__init__(book, notify)
        self.db = db

    @shielded
    async def _load_order_states(self, shop_key: str, ids: Sequence[int]) -> dict[int, OrderState]:
        fields = ["name", "updated", "fin", "cancelled", "cid", "decided", "receipt"]
        async with self.db.redis.pipeline(transaction=False) as pipe:
            for oid in ids:
                pipe.hmget(self.db.shop(shop_key, "ord", oid), fields)
            rows = await pipe.execute()
        out: dict[int, OrderState] = {}
        for oid, (name, updated, fin, cancelled, cid, decided, receipt) in zip(ids, rows, strict=True):
            if updated is None:
                continue
            out[oid] = OrderState(
                shop_key=shop_key,
                order_id=oid,
                order_name=text(name),
                updated_at=float(updated),
                financial_status=text(fin),
                cancelled=cancelled == b"1",
                customer_id=opt_int(cid),
                # `receipt`: how rows written before said it (upsert_order.lua removes it when it rewrites a row)
                receipt_decided=decided == b"1" or bytes(receipt or b"").startswith(b"receipt:"),
            )
        return out

    @shielded
    async def _load_fulfillment_states(self, shop_key: str, ids: Sequence[int]) -> dict[int, FulfillmentState]:
        async with self.db.redis.pipeline(transaction=False) as pipe:
            for fid in ids:
                pipe.hmget(self.db.shop(shop_key, "ful", fid), ["oid", "updated", "status", "name", "tn", "turl"])
            rows = await pipe.execute()
        out: dict[int, FulfillmentState] = {}
        for fid, (oid, updated, status, name, tn, turl) in zip(ids, rows, strict=True):
            if updated is None:
                continue
            out[fid] = FulfillmentState(
                shop_key, fid, int(oid), float(updated), text(status), text(name), text(tn), text(turl)
            )
        return out

    @shielded
    async def _commit_outcomes(
        self, outcomes: Sequence[EventOutcome], now: float, owner: str
    ) -> tuple[bool, list[int]]:
        """One MULTI/EXEC of small scripts: Redis applies all of it or (connection lost before EXEC) none of it.

        Fencing: the stored events and unpaid checks the outcomes finish are WATCHed, their owners read, and the
        outcomes of rows another owner holds left out; a claim that changes an owner before EXEC makes Redis refuse
        the transaction, and it is built again from fresh owners. (Heartbeats do not write those rows' hashes, so
        they never cause a retry.)"""
        fenced_rows = {i: _fenced_keys(self.db, o) for i, o in enumerate(outcomes)}
        watched = [key for keys in fenced_rows.values() for key in keys]
        async with self.db.redis.pipeline(transaction=True) as pipe:
            while True:
                fenced: list[int] = []
                if watched:
                    await pipe.watch(*watched)
                    owners = await self._owners(watched)
                    fenced = [i for i, keys in fenced_rows.items() if any(owners[k] not in (None, owner) for k in keys)]
                calls: list[tuple[str, tuple[Any, ...]]] = []
                for i, o in enumerate(outcomes):
                    if i not in fenced:
                        calls += _commit_calls(o, num(now))
                if not calls:
                    await pipe.reset()
                    return False, fenced
                pipe.multi()
                for name, args in calls:
                    await self.db.script(name)(args=[self.db.prefix, *args], client=pipe)
                try:
                    results = await pipe.execute()
                except WatchError:
                    continue  # an owner changed meanwhile: decide the fencing again
                wake = any(int(r) == 1 for (name, _), r in zip(calls, results, strict=True) if name in _WAKING)
                return wake, fenced

    async def _owners(self, keys: Sequence[str]) -> dict[str, str | None]:
        """The lease owner of each row (None when the row is gone: a purge took it, nobody holds it)."""
        owners = await self.db.run("lease_owners", *keys)
        return {key: None if own is None else text(own) for key, own in zip(keys, owners, strict=True)}

    @shielded
    async def _claim_unpaid_checks(
        self, limit: int, now: float, lease_until: float, owner: str
    ) -> tuple[list[UnpaidCheck], Taken]:
        rows, taken = await self.db.run("claim_checks", num(now), num(lease_until), limit, owner)
        checks = [UnpaidCheck(text(shop), int(oid), float(due), opt_int(cid)) for shop, oid, due, cid in rows]
        return checks, taken_from(taken)


def _commit_calls(o: EventOutcome, now: str) -> list[tuple[str, tuple[Any, ...]]]:
    """The scripts (name, arguments) that write what one outcome produced, in `commit`'s order."""
    calls: list[tuple[str, tuple[Any, ...]]] = []
    for s in o.order_states:
        calls.append(
            (
                "upsert_order",
                (
                    s.shop_key,
                    s.order_id,
                    s.order_name,
                    num(s.updated_at),
                    s.financial_status,
                    int(s.cancelled),
                    opt(s.customer_id),
                    int(s.receipt_decided),
                ),
            )
        )
    for f in o.fulfillment_states:
        calls.append(
            (
                "upsert_fulfillment",
                (
                    f.shop_key,
                    f.fulfillment_id,
                    f.order_id,
                    num(f.updated_at),
                    f.status,
                    f.name,
                    f.tracking_number,
                    f.tracking_url,
                ),
            )
        )
    for p in o.pushes:
        calls.append(
            (
                "enqueue_push",
                (
                    p.shop_key,
                    p.dedupe_key,
                    p.idempotency_key,
                    p.order_id,
                    p.topic,
                    p.body,
                    str(p.status),
                    now,
                    num(p.due_at),
                    p.reason,
                    opt(p.fulfillment_id),
                    opt(p.customer_id),
                ),
            )
        )
    for t in o.tracking:
        calls.append(("add_tracking", (t.shop_key, t.tracking_number, t.order_id, t.order_name, opt(t.customer_id))))
    for u in o.unpaid_checks:
        calls.append(("schedule_check", (u.shop_key, u.order_id, num(u.due_at), opt(u.customer_id))))
    for shop_key, order_id in o.done_checks:
        calls.append(("done_check", (shop_key, order_id)))
    if o.event_seq is not None:
        calls.append(("finish_event", (o.event_seq, o.event_error, opt(o.order_id), opt(o.customer_id))))
    return calls


#: Commit steps whose result 1 means new work for some worker.
_WAKING = frozenset({"enqueue_push", "schedule_check"})


def _fenced_keys(db: RedisDb, o: EventOutcome) -> list[str]:
    """The rows whose lease decides whether the outcome may be written: its event and its unpaid checks."""
    keys = [db.k("ev", o.event_seq)] if o.event_seq is not None else []
    return keys + [db.shop(shop_key, "chk", order_id) for shop_key, order_id in o.done_checks]
