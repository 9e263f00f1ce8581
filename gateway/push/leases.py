"""Keeping a replica's leases alive, and making lease changes visible (docs/replicas.md).

Every claimed event, push and unpaid check is leased for `storage.lease_seconds` under this replica's owner token.
The heartbeat renews every lease the replica holds each `storage.heartbeat_seconds`, so a long piece of work (a slow
push read, a delivery waiting up to `push.timeout_seconds`) keeps its lease without needing a long one, and a replica
that dies or stalls loses its leases one lease after its last beat, when another replica takes the work over.

/metrics: `gateway_push_lease_takeovers_total{kind, reason}` (leases this replica took: "expired" from another
replica, "restart" from its own earlier start), `gateway_push_leases_lost_total{kind}` (leases it found taken: work
it then did not send or commit), and the gauge `gateway_push_leases_held{kind, replica}`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from gateway.ops import Metrics
from gateway.push.records import LeaseKind
from gateway.push.store import LeaseLedger
from gateway.settings import StorageSettings

log = logging.getLogger(__name__)

TAKEOVERS = "gateway_push_lease_takeovers_total"
LOST = "gateway_push_leases_lost_total"
HELD = "gateway_push_leases_held"


class LeaseCounter:
    """The store's `LeaseListener` that counts in the app's metrics."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def took_over(self, kind: LeaseKind, from_owner: str, count: int, reason: str) -> None:
        self.metrics.inc(TAKEOVERS, count, kind=str(kind), reason=reason)

    def lost(self, kind: LeaseKind, count: int) -> None:
        self.metrics.inc(LOST, count, kind=str(kind))


def count_leases(ledger: LeaseLedger, metrics: Metrics) -> None:
    """Count the store's lease changes and show what this replica holds, in /metrics."""
    ledger.watch_leases(LeaseCounter(metrics))
    metrics.describe(TAKEOVERS, "Leases this replica took over: from a replica whose lease expired, or at restart.")
    metrics.describe(LOST, "Leases this replica found taken by another: that work was not sent or committed by it.")
    replica = ledger.identity.replica_id
    for kind in LeaseKind:
        metrics.gauge(
            HELD,
            lambda kind=kind: ledger.held_leases()[kind],  # type: ignore[misc]
            "Events, pushes and unpaid checks this replica holds a lease on now.",
            kind=str(kind),
            replica=replica,
        )


class Heartbeat:
    """Renews the replica's leases every `interval_seconds` for `lease_seconds`. The clock and the sleep are
    injectable, so the cadence is tested in virtual time."""

    def __init__(
        self,
        ledger: LeaseLedger,
        lease_seconds: float,
        interval_seconds: float,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.ledger = ledger
        self.lease_seconds = lease_seconds
        self._every = interval_seconds
        self._clock = clock
        self._sleep = sleep

    async def beat(self) -> dict[LeaseKind, int]:
        """One renewal; returns how many leases, by kind, were found taken (the store logs and counts them)."""
        return await self.ledger.renew_leases(self.lease_seconds, now=self._clock())

    async def run(self) -> None:
        while True:
            try:
                await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store is unreachable: retry at the next beat; leases may lapse meanwhile
                log.warning("lease heartbeat failed (%s); next beat in %.1f s", type(exc).__name__, self._every)
            await self._sleep(self._every)


def start_heartbeat(storage: StorageSettings, ledger: LeaseLedger) -> asyncio.Task[None]:
    heartbeat = Heartbeat(ledger, storage.lease_seconds, storage.heartbeat_seconds)
    return asyncio.create_task(heartbeat.run(), name="push-lease-heartbeat")
