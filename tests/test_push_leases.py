"""Leases between replicas, on both backends, in virtual time (every claim and renewal gets its `now`).

Two replicas are two stores on the same SQLite file or the same Redis prefix, each with its own identity. What is
checked: a heartbeat keeps work leased past its first expiry; a replica that stops beating loses its work to the
other within one lease, and the takeover names it; a replica that lost a lease can neither send (hold_push), settle
nor commit that work; a restarted replica takes back at once what its earlier start held; who holds what is visible.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from gateway.push.leases import Heartbeat
from gateway.push.records import EventOutcome, EventStatus, LeaseKind, NewPush, PushStatus, UnpaidCheck, WebhookMeta
from gateway.push.replica import ReplicaIdentity
from gateway.push.sender import PushSender
from gateway.push.store import PushStore
from gateway.settings import ConfigError
from tests.fixtures_push import BotReceiver, open_redis_or_skip, purge_redis_prefix, push_settings

META = WebhookMeta(topic="orders/paid")
LEASE = 6.0
T0 = 1_900_000_000.0  # virtual time: far from the wall clock, so nothing here depends on it


class Recorder:
    """A LeaseListener that remembers what it was told."""

    def __init__(self) -> None:
        self.taken: list[tuple[LeaseKind, str, int, str]] = []
        self.losses: list[tuple[LeaseKind, int]] = []

    def took_over(self, kind: LeaseKind, from_owner: str, count: int, reason: str) -> None:
        self.taken.append((kind, from_owner, count, reason))

    def lost(self, kind: LeaseKind, count: int) -> None:
        self.losses.append((kind, count))

    def lost_count(self, kind: LeaseKind) -> int:
        return sum(n for k, n in self.losses if k is kind)


Replica = Callable[..., Awaitable[PushStore]]


@pytest.fixture(params=["sqlite", "redis"])
async def replica(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Replica]:
    """`await replica("a")` → an opened store on the shared backend under replica id "a" (a new start each call);
    `reclaim=True` opens it as a serving gateway does; `listener` hears its lease changes from the start."""
    stores: list[PushStore] = []
    prefix = f"test-leases-{uuid.uuid4().hex[:12]}"

    async def make(replica_id: str, *, reclaim: bool = False, listener: Recorder | None = None) -> PushStore:
        identity = ReplicaIdentity(replica_id, uuid.uuid4().hex[:8], time.time())
        store: PushStore
        if request.param == "sqlite":
            from gateway.push.sqlite.store import SqlitePushStore

            store = SqlitePushStore(tmp_path / "shared.sqlite3", identity=identity, reclaim_leases=reclaim)
        else:
            from gateway.push.redis.store import RedisPushStore

            store = RedisPushStore(prefix=prefix, identity=identity, reclaim=reclaim)
        if listener is not None:
            store.leases.watch_leases(listener)  # before open: what a serving store takes back at open is reported
        if request.param == "sqlite":
            await store.open()
        else:
            await open_redis_or_skip(store)
        stores.append(store)
        return store

    try:
        yield make
    finally:
        for store in reversed(stores):
            if request.param == "redis" and store is stores[0]:
                await purge_redis_prefix(store)  # type: ignore[arg-type]
            await store.close()


def new_push(order_id: int, key: str) -> NewPush:
    return NewPush("shop", key, order_id, "Order/Receipt", b'{"k": 1}', due_at=T0)


async def test_heartbeats_keep_work_that_a_silent_replica_then_loses_within_one_lease(replica: Replica) -> None:
    seen = Recorder()
    a, b = await replica("a"), await replica("b", listener=seen)
    await a.states.commit([EventOutcome(pushes=[new_push(1, "receipt:1")])])
    await a.events.record_event("shop", "e1", META, b"{}")
    [push] = await a.delivery.claim_pushes(10, LEASE, now=T0)
    [event] = await a.events.claim_events(10, LEASE, now=T0)
    for beat in (2.0, 4.0, 6.0, 8.0):  # a live replica renews; its work outlives the first lease
        assert await a.leases.renew_leases(LEASE, now=T0 + beat) == {}
        assert await b.delivery.claim_pushes(10, LEASE, now=T0 + beat + 1) == []
        assert await b.events.claim_events(10, LEASE, now=T0 + beat + 1) == []
    assert a.leases.held_leases() == {LeaseKind.EVENT: 1, LeaseKind.PUSH: 1, LeaseKind.CHECK: 0}
    # a stops beating (died at T0 + 9): its last renewal ran to T0 + 14; b takes the work over then, not before
    assert await b.delivery.claim_pushes(10, LEASE, now=T0 + 13.9) == []
    [taken_push] = await b.delivery.claim_pushes(10, LEASE, now=T0 + 14.01)
    [taken_event] = await b.events.claim_events(10, LEASE, now=T0 + 14.01)
    assert (taken_push.id, taken_event.seq) == (push.id, event.seq)
    assert taken_push.idempotency_key == push.idempotency_key  # a re-send is recognisable by the platform
    assert sorted(seen.taken) == [
        (LeaseKind.EVENT, a.leases.identity.token, 1, "expired"),
        (LeaseKind.PUSH, a.leases.identity.token, 1, "expired"),
    ]
    holders = await b.leases.push_holders([push.id])
    assert holders[push.id].owner == b.leases.identity.token and holders[push.id].since == T0 + 14.01


async def test_a_replica_that_lost_its_leases_neither_sends_nor_settles_nor_commits(replica: Replica) -> None:
    lost = Recorder()
    a, b = await replica("a", listener=lost), await replica("b")
    await a.states.commit([EventOutcome(pushes=[new_push(1, "receipt:1"), new_push(2, "receipt:2"), new_push(3, "r:3")])])
    await a.events.record_event("shop", "e1", META, b"{}")
    await a.states.commit([EventOutcome(unpaid_checks=[UnpaidCheck("shop", 9, T0)])])
    pushes = await a.delivery.claim_pushes(10, LEASE, now=T0)
    [event] = await a.events.claim_events(10, LEASE, now=T0)
    [check] = await a.states.claim_unpaid_checks(10, LEASE, now=T0)
    # a is paused past its lease; b takes everything over
    later = T0 + LEASE + 1
    assert len(await b.delivery.claim_pushes(10, LEASE, now=later)) == 3
    assert len(await b.events.claim_events(10, LEASE, now=later)) == 1
    assert len(await b.states.claim_unpaid_checks(10, LEASE, now=later)) == 1
    # a resumes: it must not send, record or commit any of it
    assert await a.leases.hold_push(pushes[0].id, LEASE, now=later + 1) is False
    assert await a.delivery.mark_delivered(pushes[1].id) is False
    assert await a.delivery.schedule_retry(pushes[2].id, later + 60, "HTTP 503") is False
    assert await a.delivery.dead_letter(pushes[2].id, "HTTP 400") is False
    outcome = EventOutcome(event_seq=event.seq, pushes=[new_push(4, "receipt:4")])
    check_outcome = EventOutcome(done_checks=[(check.shop_key, check.order_id)], pushes=[new_push(9, "unpaid:9")])
    await a.states.commit([outcome, check_outcome])
    assert {p.dedupe_key for p in await a.outbox.list_pushes()} == {"receipt:1", "receipt:2", "r:3"}  # nothing enqueued
    stored = await a.events.get_event("shop", "e1")
    assert stored is not None and stored.status == EventStatus.PENDING
    assert all(p.status == PushStatus.PENDING and p.attempts == 0 for p in await a.outbox.list_pushes())
    assert a.leases.held_leases() == {LeaseKind.EVENT: 0, LeaseKind.PUSH: 0, LeaseKind.CHECK: 0}  # nothing left to renew
    assert (lost.lost_count(LeaseKind.PUSH), lost.lost_count(LeaseKind.EVENT), lost.lost_count(LeaseKind.CHECK)) == (
        4,
        1,
        1,
    )
    # b, which holds them, settles and commits normally
    assert await b.leases.hold_push(pushes[0].id, LEASE, now=later + 1)
    assert await b.delivery.mark_delivered(pushes[0].id)
    await b.states.commit([outcome])
    done = await b.events.get_event("shop", "e1")
    assert done is not None and done.status == EventStatus.DONE
    assert "receipt:4" in {p.dedupe_key for p in await b.outbox.list_pushes()}


async def test_renewal_reports_what_another_replica_took_and_not_what_was_settled(replica: Replica) -> None:
    losses = Recorder()
    a, b = await replica("a", listener=losses), await replica("b")
    pushes = [new_push(o, f"receipt:{o}") for o in (1, 2, 3)]
    await a.states.commit([EventOutcome(pushes=pushes)])
    await a.events.record_event("shop", "e1", META, b"{}")
    first, _, third = await a.delivery.claim_pushes(10, LEASE, now=T0)
    await a.events.claim_events(10, LEASE, now=T0)
    await b.delivery.claim_pushes(1, LEASE, now=T0 + LEASE + 1)  # the first: b takes it
    assert await a.outbox.drop_push(third.id)  # an operator drops the third: settled, nobody holds it, nothing was lost
    assert await a.leases.renew_leases(LEASE, now=T0 + LEASE + 2) == {LeaseKind.PUSH: 1}  # the event was not taken: kept
    assert losses.losses == [(LeaseKind.PUSH, 1)]
    assert a.leases.held_leases() == {LeaseKind.EVENT: 1, LeaseKind.PUSH: 1, LeaseKind.CHECK: 0}
    assert await b.events.claim_events(10, LEASE, now=T0 + LEASE + 3) == []  # renewed again at T0 + 8
    assert (await a.leases.push_holders([first.id]))[first.id].replica_id == "b"


async def test_a_restarted_replica_takes_back_at_once_what_its_earlier_start_held(replica: Replica) -> None:
    first, other = await replica("r1"), await replica("r2")
    await first.states.commit([EventOutcome(pushes=[new_push(1, "receipt:1")])])
    await first.states.commit([EventOutcome(unpaid_checks=[UnpaidCheck("shop", 5, T0)])])
    await first.events.record_event("shop", "e1", META, b"{}")
    now = T0
    [push] = await first.delivery.claim_pushes(10, 3600, now=now)
    await first.events.claim_events(10, 3600, now=now)
    await first.states.claim_unpaid_checks(10, 3600, now=now)
    assert await other.delivery.claim_pushes(10, LEASE, now=now + 1) == []  # leased for an hour

    cli = Recorder()
    await replica("r1", listener=cli)  # a CLI command under the same replica id takes nothing back
    assert await other.delivery.claim_pushes(10, LEASE, now=now + 1) == []
    seen = Recorder()
    serving = await replica("r1", reclaim=True, listener=seen)
    assert [p.id for p in await serving.delivery.claim_pushes(10, LEASE, now=now + 1)] == [push.id]  # at once
    assert len(await serving.events.claim_events(10, LEASE, now=now + 1)) == 1
    assert len(await serving.states.claim_unpaid_checks(10, LEASE, now=now + 1)) == 1
    assert sorted(seen.taken) == [
        (LeaseKind.CHECK, first.leases.identity.token, 1, "restart"),
        (LeaseKind.EVENT, first.leases.identity.token, 1, "restart"),
        (LeaseKind.PUSH, first.leases.identity.token, 1, "restart"),
    ]
    assert cli.taken == []
    # the earlier start (had it been only paused) cannot settle what was taken back
    assert await first.delivery.mark_delivered(push.id) is False
    status = {r.replica_id: r for r in await serving.leases.replicas()}
    assert status["r1"].nonce == serving.leases.identity.nonce and status["r1"].held[LeaseKind.PUSH] == 1


async def test_deferred_events_are_not_held_and_are_not_a_takeover_when_claimed_again(replica: Replica) -> None:
    seen = Recorder()
    a, b = await replica("a"), await replica("b", listener=seen)
    await a.events.record_event("shop", "e1", META, b"{}")
    [event] = await a.events.claim_events(10, LEASE, now=T0)
    await a.events.defer_events([event.seq], T0 + 100)
    assert a.leases.held_leases()[LeaseKind.EVENT] == 0
    assert await b.events.claim_events(10, LEASE, now=T0 + 50) == []  # the deferral holds past the lease
    [again] = await b.events.claim_events(10, LEASE, now=T0 + 101)
    assert again.seq == event.seq and seen.taken == []


async def test_who_holds_what_is_visible(replica: Replica) -> None:
    a, b = await replica("a"), await replica("b")
    await a.states.commit([EventOutcome(pushes=[new_push(o, f"receipt:{o}") for o in range(1, 4)])])
    for i in range(2):
        await a.events.record_event("shop", f"e{i}", META, b"{}")
    pushes = await a.delivery.claim_pushes(2, LEASE, now=T0)
    await a.events.claim_events(10, LEASE, now=T0 + 1)
    [third] = await b.delivery.claim_pushes(10, LEASE, now=T0 + 2)
    await a.leases.renew_leases(LEASE, now=T0 + 3)
    await b.leases.renew_leases(LEASE, now=T0 + 4)
    holders = await a.leases.push_holders([p.id for p in pushes] + [third.id])
    assert {pid: h.replica_id for pid, h in holders.items()} == {pushes[0].id: "a", pushes[1].id: "a", third.id: "b"}
    assert holders[pushes[0].id].since == T0 and holders[pushes[0].id].until == T0 + 3 + LEASE
    status = {r.replica_id: r for r in await b.leases.replicas()}
    assert status["a"].held == {LeaseKind.EVENT: 2, LeaseKind.PUSH: 2, LeaseKind.CHECK: 0}
    assert status["a"].beat_at == T0 + 3 and status["a"].oldest_since == T0 and status["a"].nonce == a.leases.identity.nonce
    assert status["b"].held[LeaseKind.PUSH] == 1 and status["b"].beat_at == T0 + 4
    await a.delivery.mark_delivered(pushes[0].id)
    assert pushes[0].id not in await a.leases.push_holders([pushes[0].id])


async def test_the_heartbeat_renews_on_its_cadence_in_virtual_time(replica: Replica) -> None:
    a, b = await replica("a"), await replica("b")
    await a.states.commit([EventOutcome(pushes=[new_push(1, "receipt:1")])])
    await a.delivery.claim_pushes(10, LEASE, now=T0)
    clock = [T0]
    beats: list[float] = []

    async def sleep(seconds: float) -> None:
        beats.append(clock[0])
        if len(beats) == 5:
            raise asyncio.CancelledError  # stop the loop after five beats
        clock[0] += seconds

    with pytest.raises(asyncio.CancelledError):
        await Heartbeat(a.leases, LEASE, 2.0, clock=lambda: clock[0], sleep=sleep).run()
    assert beats == [T0, T0 + 2, T0 + 4, T0 + 6, T0 + 8]
    assert await b.delivery.claim_pushes(10, LEASE, now=T0 + 8 + LEASE - 0.1) == []  # the last beat's lease still holds
    assert len(await b.delivery.claim_pushes(10, LEASE, now=T0 + 8 + LEASE + 0.1)) == 1


async def test_sqlite_serves_one_process_per_replica_id(tmp_path: Path) -> None:
    """Several gateway processes may serve one SQLite file, each under its own replica id; a second one under the same
    id is refused (it would take the first one's leases as an earlier start's)."""
    from gateway.push.sqlite.leases import ReplicaConflict
    from gateway.push.sqlite.store import SqlitePushStore

    path = tmp_path / "shared.sqlite3"

    def serving(replica_id: str) -> SqlitePushStore:
        return SqlitePushStore(
            path, identity=ReplicaIdentity(replica_id, uuid.uuid4().hex[:8], T0), reclaim_leases=True
        )

    first = serving("r1")
    await first.open()
    try:
        with pytest.raises(ReplicaConflict, match="GATEWAY_REPLICA_ID"):
            await serving("r1").open()
        other = serving("r2")
        await other.open()
        await other.close()
    finally:
        await first.close()
    again = serving("r1")  # the lock went with the first store (with its process, when it is killed)
    await again.open()
    await again.close()


async def test_redis_says_when_two_live_processes_share_a_replica_id(caplog: pytest.LogCaptureFixture) -> None:
    from gateway.push.redis.store import RedisPushStore

    prefix = f"test-twins-{uuid.uuid4().hex[:12]}"
    one = RedisPushStore(prefix=prefix, identity=ReplicaIdentity("same", "n1", T0), reclaim=True)
    two = RedisPushStore(prefix=prefix, identity=ReplicaIdentity("same", "n2", T0 + 1), reclaim=True)
    await open_redis_or_skip(one)
    try:
        await two.open()
        await two.leases.renew_leases(LEASE, now=T0 + 2)
        assert "another process" not in caplog.text  # its own start's entry
        await one.leases.renew_leases(LEASE, now=T0 + 3)
        assert "replica id same: another process (start n2) beats under the same id" in caplog.text
    finally:
        await purge_redis_prefix(one)
        await one.close()
        await two.close()


def test_replica_identity_is_the_configured_or_env_name_with_a_new_nonce_per_start() -> None:
    first = ReplicaIdentity.start("", {"GATEWAY_REPLICA_ID": "gw-1"})
    second = ReplicaIdentity.start("", {"GATEWAY_REPLICA_ID": "gw-1"})
    assert first.replica_id == second.replica_id == "gw-1" and first.nonce != second.nonce
    assert first.token == f"gw-1/{first.nonce}"
    assert ReplicaIdentity.start("from-config", {"GATEWAY_REPLICA_ID": "gw-1"}).replica_id == "from-config"
    assert ReplicaIdentity.start("", {}).replica_id  # the host name
    with pytest.raises(ConfigError, match="GATEWAY_REPLICA_ID"):
        ReplicaIdentity.start("", {"GATEWAY_REPLICA_ID": "has/slash"})


async def test_a_sender_paused_between_claim_and_send_sends_only_what_it_still_holds(
    replica: Replica, bot_receiver: BotReceiver, tmp_path: Path
) -> None:
    """A claim covers the send for half a lease by the sender's clock; past that (the process was paused) the push's
    lease is renewed before it goes out, and the push is not sent at all when another replica took it meanwhile."""
    a, b = await replica("a"), await replica("b")
    settings = push_settings(bot_receiver.url, tmp_path / "unused.sqlite3")
    lease = settings.storage.lease_seconds
    clock = [100.0]
    pushes = [NewPush("demo", f"receipt:{o}", o, "Order/Receipt", b'{"params": {}}', due_at=T0) for o in (1, 2, 3)]
    await a.states.commit([EventOutcome(pushes=pushes)])
    fresh, taken, kept = await a.delivery.claim_pushes(10, lease, now=T0)
    claimed_at = clock[0]
    async with aiohttp.ClientSession() as session:
        sender = PushSender(settings, a, session, clock=lambda: clock[0])
        clock[0] += lease / 2 - 0.1  # sent promptly: its claim covers it
        await sender._deliver(fresh, claimed_at)
        # a is paused past its leases; b takes one of the two it still holds
        clock[0] += 2 * lease
        [took] = await b.delivery.claim_pushes(1, lease, now=T0 + lease + 1)
        assert took.id == taken.id
        await sender._deliver(taken, claimed_at)
        await sender._deliver(kept, claimed_at)  # nobody took it: renewed, then sent
    sent = [r.headers["Idempotency-Key"] for r in bot_receiver.received]
    assert sent == [fresh.idempotency_key, kept.idempotency_key]  # not `taken`: b holds it
    delivered = {p.id for p in await a.outbox.list_pushes(statuses=[PushStatus.DELIVERED])}
    assert delivered == {fresh.id, kept.id}
