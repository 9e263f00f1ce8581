"""What the push rules remember on SQLite (`OrderStateStore`): order and fulfillment states and unpaid checks, and the
atomic commit of what a processing step produced (states, pushes, tracking entries, checks, the event done)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from gateway.push.lease_book import LeaseBook, Taken
from gateway.push.records import (
    EventOutcome,
    EventStatus,
    FulfillmentState,
    NewPush,
    OrderState,
    PushStatus,
    TrackingEntry,
    UnpaidCheck,
)
from gateway.push.sqlite import leases as sqlite_leases
from gateway.push.sqlite.db import SqliteDb
from gateway.push.sqlite.rows import chunks, placeholders
from gateway.push.store_base import OrderStatesBase


class SqliteOrderStates(OrderStatesBase):
    """`OrderStateStore` on the SQLite file: the `orders`, `fulfillments` and `unpaid_checks` tables, and `commit`, which writes everything an outcome produced in one transaction."""

    def __init__(self, db: SqliteDb, book: LeaseBook, notify: Callable[[], None]) -> None:
        super().__init__(book, notify)
        self.db = db

    async def _load_order_states(self, shop_key: str, ids: Sequence[int]) -> dict[int, OrderState]:
        def op(c: sqlite3.Connection) -> dict[int, OrderState]:
            out: dict[int, OrderState] = {}
            for chunk in chunks(ids):
                marks = placeholders(chunk)
                for r in c.execute(
                    "SELECT order_id, order_name, updated_at, financial_status, cancelled, customer_id,"
                    f" receipt_decided FROM orders WHERE shop_key = ? AND order_id IN ({marks})",
                    (shop_key, *chunk),
                ):
                    out[r[0]] = OrderState(
                        shop_key=shop_key,
                        order_id=r[0],
                        order_name=r[1],
                        updated_at=r[2],
                        financial_status=r[3],
                        cancelled=bool(r[4]),
                        customer_id=r[5],
                        receipt_decided=bool(r[6]),
                    )
            return out

        return await self.db.call(op)

    async def _load_fulfillment_states(self, shop_key: str, ids: Sequence[int]) -> dict[int, FulfillmentState]:
        def op(c: sqlite3.Connection) -> dict[int, FulfillmentState]:
            out: dict[int, FulfillmentState] = {}
            for chunk in chunks(ids):
                marks = placeholders(chunk)
                for r in c.execute(
                    "SELECT fulfillment_id, order_id, updated_at, status, name, tracking_number, tracking_url"
                    f" FROM fulfillments WHERE shop_key = ? AND fulfillment_id IN ({marks})",
                    (shop_key, *chunk),
                ):
                    out[r[0]] = FulfillmentState(shop_key, r[0], r[1], r[2], r[3], r[4], r[5], r[6])
            return out

        return await self.db.call(op)

    async def _commit_outcomes(
        self, outcomes: Sequence[EventOutcome], now: float, owner: str
    ) -> tuple[bool, list[int]]:
        def op(c: sqlite3.Connection) -> tuple[bool, list[int]]:
            fenced = sqlite_leases.fenced(c, outcomes, owner)
            wake = False
            for i, o in enumerate(outcomes):
                if i not in fenced:
                    wake |= _write_outcome(c, o, now)
            return wake, fenced

        return await self.db.call(op)

    async def _claim_unpaid_checks(
        self, limit: int, now: float, lease_until: float, owner: str
    ) -> tuple[list[UnpaidCheck], Taken]:
        def op(c: sqlite3.Connection) -> tuple[list[UnpaidCheck], Taken]:
            rows = c.execute(
                "SELECT shop_key, order_id, due_at, customer_id, lease_owner FROM unpaid_checks"
                " WHERE done = 0 AND due_at <= ? AND lease_until <= ? ORDER BY due_at LIMIT ?",
                (now, now, limit),
            ).fetchall()
            c.executemany(
                "UPDATE unpaid_checks SET lease_until = ?, lease_owner = ?, leased_at = ?"
                " WHERE shop_key = ? AND order_id = ?",
                [(lease_until, owner, now, r[0], r[1]) for r in rows],
            )
            checks = [UnpaidCheck(r[0], r[1], r[2], r[3]) for r in rows]
            return checks, sqlite_leases.taken_from([r[4] for r in rows], owner)

        return await self.db.call(op)


def _write_outcome(c: sqlite3.Connection, o: EventOutcome, now: float) -> bool:
    """Write everything one outcome produced; True when it made new work (a pending push, an unpaid check)."""
    wake = False
    for s in o.order_states:
        _upsert_order(c, s)
    for f in o.fulfillment_states:
        _upsert_fulfillment(c, f)
    for p in o.pushes:
        wake |= _enqueue_push(c, p, now)
    for t in o.tracking:
        _index_tracking(c, t)
    for u in o.unpaid_checks:
        wake |= _schedule_check(c, u)
    for shop_key, order_id in o.done_checks:
        c.execute(
            "UPDATE unpaid_checks SET done = 1, lease_until = 0, lease_owner = '' WHERE shop_key = ? AND order_id = ?",
            (shop_key, order_id),
        )
    if o.event_seq is not None:
        _finish_event(c, o)
    return wake


def _upsert_order(c: sqlite3.Connection, s: OrderState) -> None:
    """An order state replaces the stored one unless it is older."""
    c.execute(
        "INSERT INTO orders (shop_key, order_id, order_name, updated_at, financial_status, cancelled,"
        " customer_id, receipt_decided) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (shop_key, order_id) DO UPDATE SET order_name = excluded.order_name,"
        " updated_at = excluded.updated_at, financial_status = excluded.financial_status,"
        " cancelled = excluded.cancelled, customer_id = excluded.customer_id,"
        " receipt_decided = excluded.receipt_decided"
        " WHERE excluded.updated_at >= orders.updated_at",
        (
            s.shop_key,
            s.order_id,
            s.order_name,
            s.updated_at,
            s.financial_status,
            int(s.cancelled),
            s.customer_id,
            int(s.receipt_decided),
        ),
    )


def _upsert_fulfillment(c: sqlite3.Connection, f: FulfillmentState) -> None:
    """A fulfillment state replaces the stored one unless it is older."""
    c.execute(
        "INSERT INTO fulfillments (shop_key, fulfillment_id, order_id, updated_at, status, name,"
        " tracking_number, tracking_url) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (shop_key, fulfillment_id) DO UPDATE SET order_id = excluded.order_id,"
        " updated_at = excluded.updated_at, status = excluded.status, name = excluded.name,"
        " tracking_number = excluded.tracking_number, tracking_url = excluded.tracking_url"
        " WHERE excluded.updated_at >= fulfillments.updated_at",
        (f.shop_key, f.fulfillment_id, f.order_id, f.updated_at, f.status, f.name, f.tracking_number, f.tracking_url),
    )


def _enqueue_push(c: sqlite3.Connection, p: NewPush, now: float) -> bool:
    """Add the push unless its dedupe key is taken; True when a new pending push went in."""
    cur = c.execute(
        "INSERT OR IGNORE INTO outbox (shop_key, dedupe_key, idempotency_key, order_id, topic, body,"
        " status, created_at, due_at, last_error, fulfillment_id, customer_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            p.shop_key,
            p.dedupe_key,
            p.idempotency_key,
            p.order_id,
            p.topic,
            p.body,
            str(p.status),
            now,
            p.due_at,
            p.reason,
            p.fulfillment_id,
            p.customer_id,
        ),  # fmt: skip
    )
    return cur.rowcount == 1 and p.status == PushStatus.PENDING


def _index_tracking(c: sqlite3.Connection, t: TrackingEntry) -> None:
    c.execute(
        "INSERT INTO tracking (shop_key, tracking_number, order_id, order_name, customer_id)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (shop_key, tracking_number) DO UPDATE SET"
        " order_id = excluded.order_id, order_name = excluded.order_name,"
        " customer_id = excluded.customer_id",
        (t.shop_key, t.tracking_number, t.order_id, t.order_name, t.customer_id),
    )


def _schedule_check(c: sqlite3.Connection, u: UnpaidCheck) -> bool:
    """Schedule the order's unpaid check (once per order, even after it was done); True when scheduled now."""
    cur = c.execute(
        "INSERT OR IGNORE INTO unpaid_checks (shop_key, order_id, due_at, customer_id) VALUES (?, ?, ?, ?)",
        (u.shop_key, u.order_id, u.due_at, u.customer_id),
    )
    return cur.rowcount == 1


def _finish_event(c: sqlite3.Connection, o: EventOutcome) -> None:
    """Mark the outcome's event done (dead with its error), linked to its order and customer for purges."""
    c.execute(
        "UPDATE events SET status = ?, error = ?, lease_until = 0, lease_owner = '',"
        " order_id = COALESCE(?, order_id), customer_id = COALESCE(?, customer_id) WHERE seq = ?",
        (
            str(EventStatus.DEAD if o.event_error else EventStatus.DONE),
            o.event_error,
            o.order_id,
            o.customer_id,
            o.event_seq,
        ),
    )
