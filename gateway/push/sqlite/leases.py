"""The SQLite store's lease bookkeeping (docs/replicas.md): owners, renewals, fencing, and one process per replica id.

Several gateway processes on one host may serve the same SQLite file, each under its own replica id. Each row that
can be leased (events, outbox, unpaid_checks) carries `lease_owner` (the holder's token, '' when nobody holds it),
`leased_at` and `lease_until`; the `replicas` table keeps each replica id's latest start and heartbeat. A serving
process locks `<file>.replica-<id>.lock` for its lifetime, so a second process under the same replica id is refused
at start instead of stealing the first one's leases, and a process that starts finds the lock free only when the
earlier start of its replica id is gone: what that start held is released at once.

Every function here runs inside the store's group-commit transaction (`SqliteDb.call`); the lease columns and the
`replicas` table are the schema's fourth migration (`gateway.push.sqlite.schema`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from gateway.push.lease_book import LeaseBook, LeaseIds, Renewal, Taken
from gateway.push.records import EventOutcome, LeaseHolder, LeaseKind, ReplicaStatus, check_lease_id
from gateway.push.replica import ReplicaIdentity
from gateway.push.sqlite.db import SqliteDb
from gateway.push.store_base import LeaseLedgerBase

#: Per kind: the table, the condition "still pending work", and how one lease id selects its row.
_TABLES: dict[LeaseKind, tuple[str, str, str]] = {
    LeaseKind.EVENT: ("events", "status = 'pending'", "seq = ?"),
    LeaseKind.PUSH: ("outbox", "status = 'pending'", "id = ?"),
    LeaseKind.CHECK: ("unpaid_checks", "done = 0", "shop_key = ? AND order_id = ?"),
}


class ReplicaConflict(OSError):
    """Another live process serves this SQLite file under the same replica id."""


class ReplicaLock:
    """The lock that makes one process per replica id serve a SQLite file. The kernel drops it when the process dies
    (kill -9 included), so a free lock means the replica id's earlier start is gone."""

    def __init__(self, db_path: str, replica_id: str) -> None:
        self.path = Path(f"{db_path}.replica-{replica_id}.lock")
        self.replica_id = replica_id
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise ReplicaConflict(
                f"replica id {self.replica_id!r} already serves {self.path.name.split('.replica-')[0]} (process"
                f" {holder}); every gateway process sharing a SQLite file needs its own GATEWAY_REPLICA_ID"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def reclaim(c: sqlite3.Connection, identity: ReplicaIdentity) -> dict[LeaseKind, Taken]:
    """At a serving start: release what earlier starts of this replica id hold (the lock says they are gone), and the
    push and check leases of versions that wrote no owner. Records this start. Returns what was released, by kind and
    earlier owner."""
    token, prefix = identity.token, identity.replica_id + "/"
    released: dict[LeaseKind, Taken] = {}
    for kind, (table, pending, _) in _TABLES.items():
        mine = f"lease_owner != '' AND lease_owner != ? AND substr(lease_owner, 1, ?) = ? AND {pending}"
        args = (token, len(prefix), prefix)
        for owner, count in c.execute(f"SELECT lease_owner, COUNT(*) FROM {table} WHERE {mine} GROUP BY 1", args):
            released.setdefault(kind, {})[owner] = count
        c.execute(f"UPDATE {table} SET lease_until = 0, lease_owner = '' WHERE {mine}", args)
        if kind is not LeaseKind.EVENT:  # an event with no owner and a lease is deferred (a read hold), not held
            c.execute(f"UPDATE {table} SET lease_until = 0 WHERE lease_owner = '' AND lease_until > 0 AND {pending}")
    record_beat(c, identity, identity.started_at)
    return released


def record_beat(c: sqlite3.Connection, identity: ReplicaIdentity, now: float) -> None:
    c.execute(
        "INSERT INTO replicas (replica_id, nonce, started_at, beat_at) VALUES (?, ?, ?, ?) ON CONFLICT (replica_id)"
        " DO UPDATE SET nonce = excluded.nonce, started_at = excluded.started_at, beat_at = excluded.beat_at",
        (identity.replica_id, identity.nonce, identity.started_at, now),
    )


def renew(c: sqlite3.Connection, held: LeaseIds, lease_until: float, owner: str) -> Renewal:
    """Extend the leases `owner` still holds on pending work to `lease_until`; the others were taken by another owner
    or are gone (settled or purged meanwhile)."""
    renewal = Renewal({}, {})
    for kind, ids in held.items():
        table, pending, row = _TABLES[kind]
        sql = f"UPDATE {table} SET lease_until = ? WHERE {row} AND lease_owner = ? AND {pending}"
        for lease_id in ids:
            key = _key(kind, lease_id)
            if c.execute(sql, (lease_until, *key, owner)).rowcount == 1:
                continue
            found = c.execute(f"SELECT lease_owner FROM {table} WHERE {row} AND {pending}", key).fetchone()
            lost = renewal.taken if found is not None and found[0] not in ("", owner) else renewal.gone
            lost.setdefault(kind, []).append(lease_id)
    return renewal


def fenced(c: sqlite3.Connection, outcomes: Sequence[EventOutcome], owner: str) -> list[int]:
    """The indexes of the outcomes that must not be written: their event or one of their unpaid checks is stored and
    held by someone other than `owner` (or by nobody: it was released or never claimed)."""
    out = []
    for i, o in enumerate(outcomes):
        rows = [(LeaseKind.EVENT, str(o.event_seq))] if o.event_seq is not None else []
        rows += [(LeaseKind.CHECK, check_lease_id(*check)) for check in o.done_checks]
        for kind, lease_id in rows:
            table, _, row = _TABLES[kind]
            found = c.execute(f"SELECT lease_owner FROM {table} WHERE {row}", _key(kind, lease_id)).fetchone()
            if found is not None and found[0] != owner:
                out.append(i)
                break
    return out


def taken_from(owners: Sequence[str], owner: str) -> Taken:
    """A claim's previous owners (the rows' `lease_owner` before it), as other owner → count."""
    taken: Taken = {}
    for previous in owners:
        if previous and previous != owner:
            taken[previous] = taken.get(previous, 0) + 1
    return taken


def push_lease_holders(c: sqlite3.Connection, push_ids: Sequence[int]) -> dict[int, LeaseHolder]:
    out = {}
    for pid in push_ids:
        row = c.execute(
            "SELECT lease_owner, leased_at, lease_until FROM outbox WHERE id = ? AND status = 'pending'"
            " AND lease_owner != ''",
            (pid,),
        ).fetchone()
        if row is not None:
            out[pid] = LeaseHolder(row[0], row[1] or 0.0, row[2])
    return out


def replica_statuses(c: sqlite3.Connection) -> list[ReplicaStatus]:
    held: dict[str, dict[LeaseKind, int]] = {}
    oldest: dict[str, float] = {}
    for kind, (table, pending, _) in _TABLES.items():
        for rid, count, since in c.execute(
            f"SELECT substr(lease_owner, 1, instr(lease_owner, '/') - 1), COUNT(*), MIN(leased_at) FROM {table}"
            f" WHERE lease_owner != '' AND {pending} GROUP BY 1"
        ):
            held.setdefault(rid, {})[kind] = count
            if since is not None:
                oldest[rid] = min(since, oldest.get(rid, since))
    return [
        ReplicaStatus(
            rid, nonce, started, beat_at, {kind: held.get(rid, {}).get(kind, 0) for kind in LeaseKind}, oldest.get(rid)
        )
        for rid, nonce, started, beat_at in c.execute(
            "SELECT replica_id, nonce, started_at, beat_at FROM replicas ORDER BY replica_id"
        )
    ]


class SqliteLeaseLedger(LeaseLedgerBase):
    """`LeaseLedger` on the SQLite file: the rows' owners and the `replicas` table."""

    def __init__(self, db: SqliteDb, book: LeaseBook) -> None:
        super().__init__(book)
        self.db = db

    async def _renew_leases(
        self, held: LeaseIds, now: float, lease_until: float, owner: str, *, beat: bool = False
    ) -> Renewal:
        def op(c: sqlite3.Connection) -> Renewal:
            if beat:
                record_beat(c, self.identity, now)
            return renew(c, held, lease_until, owner)

        return await self.db.call(op)

    async def push_holders(self, push_ids: Sequence[int]) -> dict[int, LeaseHolder]:
        return await self.db.call(lambda c: push_lease_holders(c, push_ids))

    async def replicas(self) -> list[ReplicaStatus]:
        return await self.db.call(replica_statuses)


def _key(kind: LeaseKind, lease_id: str) -> tuple[object, ...]:
    if kind is LeaseKind.CHECK:
        shop_key, _, order_id = lease_id.partition("\n")
        return (shop_key, int(order_id))
    return (int(lease_id),)
