"""What one store object knows of this replica's leases without a round trip (`LeaseBook`), shared by every role that
claims or settles leased work, and the shapes in which a backend reports what changed hands (docs/replicas.md)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

from gateway.push.records import LeaseKind
from gateway.push.replica import ReplicaIdentity, replica_of
from gateway.push.store import LeaseListener

log = logging.getLogger("gateway.push.leases")

#: Who took leases from whom, as a backend reports it: owner token → how many.
Taken = dict[str, int]
#: Lease ids by kind (events: seq, pushes: id, checks: `records.check_lease_id`).
LeaseIds = Mapping[LeaseKind, Sequence[str]]

Row = TypeVar("Row")


@dataclasses.dataclass(frozen=True, slots=True)
class Renewal:
    """The leases a renewal could not extend, by kind: `taken` by another owner (this replica was paused or cut off
    past them), or `gone`: nobody holds them any more (settled or purged meanwhile, by this replica's own settle in
    flight as well as by another's)."""

    taken: dict[LeaseKind, list[str]]
    gone: dict[LeaseKind, list[str]]


class LeaseBook:
    """This replica's leases as the store knows them without a round trip: which it holds (claimed and not yet
    settled), so the heartbeat renews exactly those; and the one place where leases changing hands are logged and told
    to the listener. Every role that claims or settles leased work (events, pushes, unpaid checks) writes here."""

    def __init__(self, identity: ReplicaIdentity) -> None:
        #: Whose leases this store takes and settles: this process (a new nonce on every start).
        self.identity = identity
        self._held: dict[LeaseKind, dict[str, None]] = {kind: {} for kind in LeaseKind}
        self._listener: LeaseListener | None = None

    def watch(self, listener: LeaseListener) -> None:
        self._listener = listener

    def counts(self) -> dict[LeaseKind, int]:
        return {kind: len(ids) for kind, ids in self._held.items()}

    def held(self) -> dict[LeaseKind, list[str]]:
        """The lease ids held now, by kind (kinds with none left out)."""
        return {kind: list(ids) for kind, ids in self._held.items() if ids}

    def claimed(self, kind: LeaseKind, rows: list[Row], ids: Sequence[str], taken: Taken) -> list[Row]:
        """A claim returned `rows` (lease ids `ids`), some `taken` from other owners: hold them, report the takeovers."""
        held = self._held[kind]
        for lease_id in ids:
            held[lease_id] = None
        self.report_taken(kind, taken, "expired")
        return rows

    def release(self, kind: LeaseKind, ids: Iterable[str]) -> None:
        held = self._held[kind]
        for lease_id in ids:
            held.pop(lease_id, None)

    def settled(self, push_id: int, done: bool, what: str) -> None:
        """A push's settle ran: it is held no more; `done` False means another replica had taken it."""
        self.release(LeaseKind.PUSH, [str(push_id)])
        if not done:
            self.report_lost(LeaseKind.PUSH, 1, f"push {push_id} not recorded as {what}")

    def report_taken(self, kind: LeaseKind, taken: Taken, reason: str) -> None:
        """Log and count leases this replica took from another owner (another replica, or an earlier start)."""
        for owner, count in taken.items():
            if owner == self.identity.token or count <= 0:
                continue
            if reason == "restart":
                log.warning(
                    "replica %s (start %s) took back %d %s lease(s) its earlier start %s held",
                    self.identity.replica_id, self.identity.nonce, count, kind, owner,
                )  # fmt: skip
            else:
                log.warning(
                    "replica %s took over %d %s lease(s) from replica %s (start %s): its lease expired",
                    self.identity.replica_id, count, kind, replica_of(owner), owner.rpartition("/")[2],
                )  # fmt: skip
            if self._listener is not None:
                self._listener.took_over(kind, owner, count, reason)

    def report_lost(self, kind: LeaseKind, count: int, what: str) -> None:
        log.warning(
            "replica %s lost %d %s lease(s) (%s): it was paused or cut off past its lease",
            self.identity.token, count, kind, what,
        )  # fmt: skip
        if self._listener is not None:
            self._listener.lost(kind, count)
