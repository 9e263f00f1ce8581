"""The query budget shared by replicas in Redis (`RedisBucket`): the Lua scripts do `BucketModel`'s arithmetic on Redis
time, replicas book from one copy, a dead replica's hold expires and gives its points back, and a Redis outage falls
back to the replica's own copy. Real Redis at 127.0.0.1:6379 (CI fails without it; elsewhere the tests skip)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from gateway.shopify.bucket import BucketModel, BucketStatus
from gateway.shopify.bucket_redis import RedisBuckets
from gateway.shopify.budget import QueryBudget
from gateway.shopify.errors import ShopifyThrottled
from tests.fixtures_replicas import REDIS_URL

DOMAIN = "budget.myshopify.com"


def cost(requested: float, actual: float, available: float, maximum: float = 2000, rate: float = 100) -> dict:
    return {
        "requestedQueryCost": requested,
        "actualQueryCost": actual,
        "throttleStatus": {"maximumAvailable": maximum, "currentlyAvailable": available, "restoreRate": rate},
    }


@pytest.fixture
async def buckets() -> AsyncIterator[RedisBuckets]:
    shared = RedisBuckets(REDIS_URL, f"test-budget-{uuid.uuid4().hex[:12]}", hold_margin=0.0)
    try:
        await shared.client.ping()
    except OSError as exc:
        await shared.close()
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Redis reachable ({exc}); with CI set this fails instead")
    try:
        yield shared
    finally:
        keys = [k async for k in shared.client.scan_iter(match=f"{shared.prefix}:*")]
        if keys:
            await shared.client.unlink(*keys)
        await shared.close()


async def test_the_scripts_do_the_models_arithmetic(buckets: RedisBuckets) -> None:
    """The same operations on the Lua copy and on BucketModel give the same balances (Redis's clock moves a little
    between calls: the restore rate is 0 here so time does not matter)."""
    shared = buckets.bucket(DOMAIN)
    model = BucketModel(maximum=2000, restore_rate=100, available=2000)
    status = BucketStatus(maximum=1000, available=900, restore_rate=0)
    await shared.give_back("none", 0, status)  # first answer: a 1000-point bucket with no restore
    model.give_back("none", 0, status, now=0)
    for hold, points, keep_free in (("a", 300, 0), ("b", 500, 0), ("c", 200, 0), ("d", 50, 100)):
        taken, view = await shared.take(hold, points, keep_free, ttl=30)
        expected = model.take(hold, points, keep_free, now=0)
        assert taken is (expected is not None), hold
        assert view.available == pytest.approx(model.view(0).available + (points if taken else 0))
    # b answers (500 requested, 120 spent): the copy credits 380 back, 480; Shopify's 300 less nothing booked after b
    # is lower: it proves nothing while a is out (the copy is the better bound)
    after = BucketStatus(maximum=1000, available=300, restore_rate=0)
    await shared.give_back("b", 380, after)
    model.give_back("b", 380, after, now=0)
    view = await shared.view()
    assert view.available == pytest.approx(model.view(0).available) and view.available == pytest.approx(480)
    assert view.held == pytest.approx(300) and view.fresh  # a is still out
    # e is booked (380 left); a probe's balance counts neither a nor e for sure: 900 - 400 = 500 beats the copy
    assert (await shared.take("e", 100, 0, ttl=30))[0] and model.take("e", 100, 0, now=0) is not None
    probe = BucketStatus(maximum=1000, available=900, restore_rate=0)
    await shared.give_back("", 0, probe)
    model.give_back("", 0, probe, now=0)
    view = await shared.view()
    assert view.available == pytest.approx(model.view(0).available) and view.available == pytest.approx(500)
    # a is THROTTLED with a balance of 200 (someone else spends): that proves the copy too high; e is still out
    throttled = BucketStatus(maximum=1000, available=200, restore_rate=0)
    await shared.give_back("a", 300, throttled, throttled=True)
    model.give_back("a", 300, throttled, now=0, throttled=True)
    view = await shared.view()
    assert view.available == pytest.approx(model.view(0).available) and view.available == pytest.approx(100)
    # e's answer never came: its hold is given back with the spend it is assumed to have made, no balance
    await shared.give_back("e", 60, None)
    model.give_back("e", 60, None, now=0)
    assert (await shared.view()).available == pytest.approx(model.view(0).available) == pytest.approx(160)


async def test_replicas_book_from_one_budget(buckets: RedisBuckets) -> None:
    """Two replicas' budgets over one Redis copy: together they never hold more than the bucket."""
    first = QueryBudget(buckets.bucket(DOMAIN))
    second = QueryBudget(RedisBuckets(REDIS_URL, buckets.prefix).bucket(DOMAIN))
    # both learn the shape's price and a fresh 1000-point bucket with a slow restore
    for budget in (first, second):
        booking = await budget.acquire(("q",), deadline=asyncio.get_running_loop().time() + 4)
        await budget.settle(booking, cost(400, 10, 1000, maximum=1000, rate=1))
    loop = asyncio.get_running_loop()
    held = [await first.acquire(("q",), deadline=loop.time() + 4), await second.acquire(("q",), deadline=loop.time() + 4)]
    # 200 points left (plus ~nothing restored): a third booking of 400 cannot come before a short deadline
    with pytest.raises(ShopifyThrottled):
        await first.acquire(("q",), deadline=loop.time() + 0.3)
    # one replica's refund lets the other's waiter in
    waiting = asyncio.create_task(second.acquire(("q",), deadline=loop.time() + 4))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await first.settle(held[0], cost(400, 10, 590, maximum=1000, rate=1))
    booking = await asyncio.wait_for(waiting, 2)
    assert booking.requested == 400
    await second.settle(held[1], None, "not_run")
    await second.settle(booking, None, "not_run")


async def test_a_dead_replicas_hold_expires_and_gives_its_points_back(buckets: RedisBuckets) -> None:
    shared = buckets.bucket(DOMAIN)
    await shared.give_back("none", 0, BucketStatus(maximum=1000, available=1000, restore_rate=0))
    taken, _ = await shared.take("dead", 800, 0, ttl=0.2)  # the replica dies with this hold
    assert taken
    assert (await shared.view()).available == pytest.approx(200)
    await asyncio.sleep(0.3)
    view = await shared.view()
    assert view.available == pytest.approx(1000) and view.held == 0


async def test_without_a_recent_balance_one_booking_goes_alone(buckets: RedisBuckets) -> None:
    """A fresh copy (or one Shopify has not told for a while) lets one booking through; its answer tells the truth
    before others follow."""
    shared = buckets.bucket(DOMAIN)
    first, view = await shared.take("first", 100, 0, ttl=30)
    assert first and not view.fresh
    second, _ = await shared.take("second", 100, 0, ttl=30)
    assert not second
    await shared.give_back("first", 90, BucketStatus(maximum=2000, available=1990, restore_rate=100))
    second, view = await shared.take("second", 100, 0, ttl=30)
    assert second and view.fresh


async def test_an_unreachable_redis_falls_back_to_the_replicas_own_copy(caplog: pytest.LogCaptureFixture) -> None:
    closed = RedisBuckets("redis://127.0.0.1:1/0", "unreachable")
    try:
        budget = QueryBudget(closed.bucket(DOMAIN))
        booking = await budget.acquire(("q",), deadline=asyncio.get_running_loop().time() + 2)
        await budget.settle(booking, cost(10, 5, 1995))
        assert (await budget.view()).available == pytest.approx(1995, abs=1)
    finally:
        await closed.close()
    assert sum("unreachable" in r.getMessage() for r in caplog.records) == 1


async def test_a_price_one_replica_learnt_is_every_replicas(buckets: RedisBuckets) -> None:
    """A replica that has never sent a query shape books it at the price another replica learnt, not at the
    single-query maximum (a fresh replica in a burst would otherwise hold 1000 points per unknown shape)."""
    first = QueryBudget(buckets.bucket(DOMAIN))
    second = QueryBudget(RedisBuckets(REDIS_URL, buckets.prefix).bucket(DOMAIN))
    loop = asyncio.get_running_loop()
    booking = await first.acquire(("orders", "first", 5), deadline=loop.time() + 4)
    assert booking.requested == 1000  # nobody knows the shape yet
    await first.settle(booking, cost(212, 40, 1960))
    assert second.price(("orders", "first", 5)) is None
    booking = await second.acquire(("orders", "first", 5), deadline=loop.time() + 4)
    assert booking.requested == 212
    await second.settle(booking, cost(212, 40, 1920))
