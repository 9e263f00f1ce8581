"""The lookup cache: TTL, bound, single-flight, stale-if-error, invalidation. Time is a fake clock: nothing sleeps."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

from gateway.cache import LOOKUP_CACHE, Invalidation, LookupCache, setup_cache
from gateway.cache_entries import NOTHING
from gateway.cache_tags import canonical_tag, email_tag, order_tags, product_tags
from gateway.flows import LOOKUP_INVALIDATOR
from gateway.keys import SETTINGS
from gateway.ops import get_metrics
from gateway.settings import parse_settings
from gateway.shopify.client import ShopifyQueryError, ShopifyThrottled, ShopifyUnavailable


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingLoader:
    """An async loader that counts its calls and can be held open, or made to fail."""

    def __init__(self, value: Any = "v") -> None:
        self.value = value
        self.calls = 0
        self.gate: asyncio.Event | None = None
        self.error: Exception | None = None

    async def __call__(self) -> Any:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return self.value


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(clock: FakeClock) -> LookupCache:
    c = LookupCache(clock=clock, serve_stale_on=(ShopifyUnavailable,))
    c.configure_shop("demo", max_entries=100, stale_if_error=600)
    c.configure_shop("other", max_entries=100, stale_if_error=600)
    return c


async def test_hit_returns_the_same_object_without_calling_the_loader(cache: LookupCache) -> None:
    value = {"orders": [1, 2, 3]}
    load = CountingLoader(value)
    first = await cache.get_or_load(("demo", "q"), load, ttl=60)
    second = await cache.get_or_load(("demo", "q"), load, ttl=60)
    assert first is value and second is value  # no copy on the hit path
    assert (cache.hits, cache.misses) == (1, 1)  # the second was a hit
    assert load.calls == 1


async def test_keys_are_per_shop(cache: LookupCache) -> None:
    a, b = CountingLoader("a"), CountingLoader("b")
    assert await cache.get_or_load(("demo", "q"), a, ttl=60) == "a"
    assert await cache.get_or_load(("other", "q"), b, ttl=60) == "b"
    assert (a.calls, b.calls) == (1, 1)


async def test_single_flight_100_concurrent_identical_misses_call_the_loader_once(cache: LookupCache) -> None:
    load = CountingLoader("shared")
    load.gate = asyncio.Event()
    waiters = [asyncio.ensure_future(cache.get_or_load(("demo", "q"), load, ttl=60)) for _ in range(100)]
    await asyncio.sleep(0)
    load.gate.set()
    results = await asyncio.gather(*waiters)
    assert load.calls == 1
    assert all(value == "shared" for value in results)
    assert (cache.misses, cache.shared, cache.hits) == (1, 99, 0)  # one ran the load, 99 joined it


async def test_shared_failure_reaches_every_waiter_and_is_not_cached(cache: LookupCache) -> None:
    load = CountingLoader()
    load.gate = asyncio.Event()
    load.error = ShopifyQueryError("bad document")
    waiters = [asyncio.ensure_future(cache.get_or_load(("demo", "q"), load, ttl=60)) for _ in range(5)]
    await asyncio.sleep(0)
    load.gate.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert load.calls == 1
    assert all(isinstance(r, ShopifyQueryError) for r in results)
    load.error = None
    assert await cache.get_or_load(("demo", "q"), load, ttl=60) == "v"  # errors are never cached
    assert load.calls == 2


async def test_a_cancelled_caller_does_not_cancel_the_shared_load(cache: LookupCache) -> None:
    load = CountingLoader("done")
    load.gate = asyncio.Event()
    quitter = asyncio.ensure_future(cache.get_or_load(("demo", "q"), load, ttl=60))
    stayer = asyncio.ensure_future(cache.get_or_load(("demo", "q"), load, ttl=60))
    await asyncio.sleep(0)
    quitter.cancel()
    await asyncio.sleep(0)
    load.gate.set()
    assert await stayer == "done"
    assert quitter.cancelled()
    assert cache.peek(("demo", "q")) == "done"


async def test_a_cancelled_waiter_does_not_cancel_the_load_it_shares(cache: LookupCache) -> None:
    load = CountingLoader("done")
    load.gate = asyncio.Event()
    loader = asyncio.ensure_future(cache.get_or_load(("demo", "q"), load, ttl=60))
    quitter = asyncio.ensure_future(cache.get_or_load(("demo", "q"), load, ttl=60))
    await asyncio.sleep(0)
    quitter.cancel()
    await asyncio.sleep(0)
    load.gate.set()
    assert await loader == "done" and quitter.cancelled()
    assert load.calls == 1


async def test_when_the_loading_caller_is_cancelled_each_waiter_is_still_answered(cache: LookupCache) -> None:
    """The first caller runs the load itself; cancelled (a shutdown), the callers waiting on it load again — one of
    them, the others wait for that one — instead of failing."""
    load = CountingLoader("done")
    load.gate = asyncio.Event()
    first = asyncio.ensure_future(cache.get_or_load(("demo", "q"), load, ttl=60))
    waiters = [asyncio.ensure_future(cache.get_or_load(("demo", "q"), load, ttl=60)) for _ in range(3)]
    await asyncio.sleep(0)
    assert (cache.misses, cache.shared) == (1, 3)  # the first caller's load, and the three that joined it
    first.cancel()
    for _ in range(3):  # the cancellation reaches the waiters; one of them starts the load again
        await asyncio.sleep(0)
    load.gate.set()
    results = await asyncio.gather(*waiters)
    assert first.cancelled()
    assert results == ["done"] * 3
    # one of the three waiters loaded again; the other two, counted as sharing already, waited for its load
    assert (cache.misses, cache.shared) == (1 + 1, 3)
    assert load.calls == 2  # the cancelled load, and one more for the three that waited


async def test_ttl_expiry(cache: LookupCache, clock: FakeClock) -> None:
    load = CountingLoader()
    await cache.get_or_load(("demo", "q"), load, ttl=60)
    clock.now += 59.9
    await cache.get_or_load(("demo", "q"), load, ttl=60)
    assert load.calls == 1
    clock.now += 0.2
    misses = cache.misses
    await cache.get_or_load(("demo", "q"), load, ttl=60)
    assert cache.misses == misses + 1 and load.calls == 2


async def test_ttl_zero_stores_nothing_but_still_shares_concurrent_loads(cache: LookupCache) -> None:
    load = CountingLoader()
    load.gate = asyncio.Event()
    waiters = [asyncio.ensure_future(cache.get_or_load(("demo", "q"), load, ttl=0)) for _ in range(10)]
    await asyncio.sleep(0)
    load.gate.set()
    await asyncio.gather(*waiters)
    assert load.calls == 1
    await cache.get_or_load(("demo", "q"), load, ttl=0)
    assert load.calls == 2
    assert len(cache.entries) == 0


@pytest.mark.parametrize("failure", [ShopifyUnavailable("down"), ShopifyThrottled("bucket empty")])
async def test_stale_if_error_serves_an_expired_value_within_the_window(
    cache: LookupCache, clock: FakeClock, failure: Exception
) -> None:
    load = CountingLoader("old")
    await cache.get_or_load(("demo", "q"), load, ttl=60)
    clock.now += 300  # expired, but younger than stale_if_error (600 s)
    load.error = failure
    assert await cache.get_or_load(("demo", "q"), load, ttl=60) == "old"
    assert cache.stale_served == 1
    clock.now += 400  # now 700 s old: too old to stand in
    with pytest.raises(type(failure)):
        await cache.get_or_load(("demo", "q"), load, ttl=60)


async def test_other_errors_are_not_hidden_by_stale_values(cache: LookupCache, clock: FakeClock) -> None:
    load = CountingLoader("old")
    await cache.get_or_load(("demo", "q"), load, ttl=60)
    clock.now += 61
    load.error = ShopifyQueryError("bad document")
    with pytest.raises(ShopifyQueryError):
        await cache.get_or_load(("demo", "q"), load, ttl=60)


async def test_stale_after_success_refreshes_the_entry(cache: LookupCache, clock: FakeClock) -> None:
    load = CountingLoader("old")
    await cache.get_or_load(("demo", "q"), load, ttl=60)
    clock.now += 61
    load.value = "new"
    assert await cache.get_or_load(("demo", "q"), load, ttl=60) == "new"
    clock.now += 61
    load.error = ShopifyUnavailable("down")
    assert await cache.get_or_load(("demo", "q"), load, ttl=60) == "new"


async def test_invalidation_by_tag_is_scoped_to_the_shop(cache: LookupCache) -> None:
    load = CountingLoader()
    by_number = ("demo", "orders #1001")
    by_email = ("demo", "orders of ann@example.com")
    unrelated = ("demo", "orders #1002")
    other_shop = ("other", "orders #1001")
    await cache.get_or_load(by_number, load, ttl=60, tags=order_tags(number="1001"))
    await cache.get_or_load(by_email, load, ttl=60, tags=order_tags(email="Ann@Example.com"))
    await cache.get_or_load(unrelated, load, ttl=60, tags=order_tags(number="1002"))
    await cache.get_or_load(other_shop, load, ttl=60, tags=order_tags(number="1001"))

    # what the orders/updated webhook of #1001 (owned by ann@example.com) would evict
    removed = cache.invalidate("demo", order_tags(number="1001", email="ann@example.com", customer_id=7, order_id=99))
    assert removed == 2
    assert cache.peek(by_number) is None and cache.peek(by_email) is None
    assert cache.peek(unrelated) == "v" and cache.peek(other_shop) == "v"


def test_tags_normalise_names_ids_and_hide_pii() -> None:
    assert canonical_tag("order:#1001") == canonical_tag("order:1001") == order_tags(number=" 1001 ")[0]
    assert canonical_tag(order_tags(number="1001")[0]) == order_tags(number="1001")[0]  # canonical stays so
    assert order_tags(order_id="gid://shopify/Order/99") == order_tags(order_id=99)
    assert order_tags(customer_id="gid://shopify/Customer/7") == ("customer:7",)
    assert "ann" not in email_tag("ann@example.com")
    assert email_tag("Ann@Example.com ") == email_tag("ann@example.com")
    assert product_tags(5) == ("products", "product:5")


async def test_invalidate_shop_whole_or_by_kind(cache: LookupCache) -> None:
    load = CountingLoader()
    await cache.get_or_load(("demo", "o1"), load, ttl=60, kind="orders")
    await cache.get_or_load(("demo", "p1"), load, ttl=60, kind="products", tags=product_tags())
    await cache.get_or_load(("other", "p1"), load, ttl=60, kind="products")
    assert cache.invalidate_shop("demo", kind="products") == 1
    assert cache.peek(("demo", "o1")) == "v" and cache.peek(("demo", "p1")) is None
    assert cache.invalidate_shop("demo") == 1
    assert cache.peek(("demo", "o1")) is None and cache.peek(("other", "p1")) == "v"
    assert not any(shop == "demo" for shop, _ in cache.entries._tag_index)


async def test_invalidated_entries_are_not_served_as_stale(cache: LookupCache) -> None:
    load = CountingLoader("old")
    await cache.get_or_load(("demo", "q"), load, ttl=60, tags=("order:1001",))
    cache.invalidate("demo", ["order:1001"])
    load.error = ShopifyUnavailable("down")
    with pytest.raises(ShopifyUnavailable):
        await cache.get_or_load(("demo", "q"), load, ttl=60)


async def test_a_load_in_flight_during_invalidation_answers_but_is_not_stored(cache: LookupCache) -> None:
    load = CountingLoader("read before the change")
    load.gate = asyncio.Event()
    pending = asyncio.ensure_future(cache.get_or_load(("demo", "q"), load, ttl=60, tags=("order:1001",)))
    await asyncio.sleep(0)
    cache.invalidate("demo", ["order:1001"])
    load.gate.set()
    assert await pending == "read before the change"
    assert cache.peek(("demo", "q")) is None


async def test_hooks_see_local_invalidations_but_not_remote_ones(cache: LookupCache) -> None:
    seen: list[Invalidation] = []
    published: list[Invalidation] = []

    async def publish(event: Invalidation) -> None:  # what a Redis fan-out would do
        published.append(event)

    cache.on_invalidate.append(seen.append)
    cache.on_invalidate.append(publish)
    cache.invalidate("demo", order_tags(number="1001"))
    cache.invalidate_shop("demo", kind="products")
    await cache.close()
    expected = [Invalidation("demo", ("order:#1001",)), Invalidation("demo", None, "products")]
    assert seen == expected and published == expected

    load = CountingLoader()
    await cache.get_or_load(("demo", "q"), load, ttl=60, tags=("order:1001",))
    assert cache.apply_remote_invalidation(Invalidation("demo", ("order:1001",))) == 1
    assert cache.peek(("demo", "q")) is None
    assert len(seen) == 2  # not re-broadcast
    # tags from the wire are canonicalised like local ones
    await cache.get_or_load(("demo", "q"), load, ttl=60, tags=order_tags(number="1001"))
    assert cache.apply_remote_invalidation(Invalidation("demo", ("order:#1001",))) == 1
    assert cache.peek(("demo", "q")) is None


async def test_a_broken_hook_does_not_stop_invalidation(cache: LookupCache) -> None:
    def broken(event: Invalidation) -> None:
        raise RuntimeError("redis down")

    cache.on_invalidate.append(broken)
    load = CountingLoader()
    await cache.get_or_load(("demo", "q"), load, ttl=60, tags=("products",))
    assert cache.invalidate("demo", ["products"]) == 1


async def test_size_bound_evicts_least_recently_used_and_cleans_the_tag_index(clock: FakeClock) -> None:
    cache = LookupCache(clock=clock)
    cache.configure_shop("demo", max_entries=3, stale_if_error=0)
    load = CountingLoader()
    for i in range(3):
        await cache.get_or_load(("demo", i), load, ttl=60, tags=(f"order:{i}",))
    await cache.get_or_load(("demo", 0), load, ttl=60)  # 0 is now the most recently used
    await cache.get_or_load(("demo", 3), load, ttl=60, tags=("order:3",))
    assert len(cache.entries) == 3 and cache.entries.evictions == 1
    assert cache.peek(("demo", 1)) is None  # the least recently used went
    assert cache.peek(("demo", 0)) == "v"
    assert ("demo", canonical_tag("order:1")) not in cache.entries._tag_index
    for i in range(100):
        await cache.get_or_load(("demo", f"k{i}"), load, ttl=60, tags=(f"order:k{i}",))
    assert len(cache.entries) == 3
    assert len(cache.entries._tag_index) == 3  # evicted keys don't linger in the index


async def test_unconfigured_shops_get_the_default_bound(clock: FakeClock) -> None:
    cache = LookupCache(max_entries=2, clock=clock)
    load = CountingLoader()
    for i in range(5):
        await cache.get_or_load(("new-shop", i), load, ttl=60)
    assert len(cache.entries) == 2


async def test_setup_cache_configures_every_shop_and_exports_counters() -> None:
    settings = parse_settings(
        {
            "shops": {
                "demo": {
                    "domain": "demo.myshopify.com",
                    "auth": {"mode": "token", "access_token": "shpat_x"},
                    "secrets": ["test-bot-secret"],
                    "cache": {"max_entries": 5, "stale_if_error": 30},
                }
            }
        }
    )
    app = web.Application()
    app[SETTINGS] = settings
    cache = setup_cache(app, serve_stale_on=(ShopifyUnavailable,))
    assert app[LOOKUP_CACHE] is cache and setup_cache(app, serve_stale_on=()) is cache
    assert app[LOOKUP_INVALIDATOR] is cache  # what the push side evicts through
    assert cache.serve_stale_on == (ShopifyUnavailable,)
    assert cache.entries.partition("demo").maxsize == 5 and cache.entries.partition("demo").stale_if_error == 30
    await cache.get_or_load(("demo", "q"), CountingLoader(), ttl=60)
    await cache.get_or_load(("demo", "q"), CountingLoader(), ttl=60)
    text = get_metrics(app).render()
    assert "lookup_cache_hits_total 1" in text and "lookup_cache_entries 1" in text


async def test_hand_written_tags_match_the_helpers_and_star_clears_the_shop(cache: LookupCache) -> None:
    load = CountingLoader()
    await cache.get_or_load(("demo", "by email"), load, ttl=60, tags=order_tags(email="ann@example.com"))
    await cache.get_or_load(("demo", "by number"), load, ttl=60, tags=order_tags(number="1001"))
    await cache.get_or_load(("demo", "products"), load, ttl=60, tags=product_tags())
    # the webhook side may write tags by hand (raw email, order name with '#')
    assert cache.invalidate("demo", ["email:Ann@Example.com", "order:#1001"]) == 2
    published: list[Invalidation] = []
    cache.on_invalidate.append(published.append)
    assert cache.invalidate("demo", ["*"]) == 1
    assert published == [Invalidation("demo", None)]
    assert len(cache.entries) == 0
    # the invalidation events carry no raw email
    cache.invalidate("demo", ["email:ann@example.com"])
    assert "ann" not in repr(published[-1])


async def test_lazy_tags_are_only_materialised_when_storing(cache: LookupCache) -> None:
    made = 0

    def make() -> tuple[str, ...]:
        nonlocal made
        made += 1
        return order_tags(email="ann@example.com")

    class Lazy:
        def __iter__(self):  # type: ignore[no-untyped-def]
            return iter(make())

    load = CountingLoader()
    await cache.get_or_load(("demo", "q"), load, ttl=60, tags=Lazy())
    await cache.get_or_load(("demo", "q"), load, ttl=60, tags=Lazy())
    assert made == 1
    assert cache.invalidate("demo", order_tags(email="ann@example.com")) == 1


async def test_a_load_after_fresh_found_nothing_counts_once_and_still_single_flights(cache: LookupCache) -> None:
    """`get_or_load` for a caller that `fresh` just told there is nothing: the same miss, single flight and store as
    without the look (no hit or miss counted twice)."""
    key = ("demo", "q")
    load = CountingLoader("v")
    load.gate = asyncio.Event()
    assert cache.fresh(key) is NOTHING
    first = asyncio.ensure_future(cache.get_or_load(key, load, ttl=60))
    others = [asyncio.ensure_future(cache.get_or_load(key, load, ttl=60)) for _ in range(9)]
    await asyncio.sleep(0)
    load.gate.set()
    assert await asyncio.gather(first, *others) == ["v"] * 10
    assert (load.calls, cache.misses, cache.shared, cache.hits, cache.loader_calls) == (1, 1, 9, 0, 1)
    assert cache.entries.shop_counts("demo") == (0, 1)
    assert cache.fresh(key) == "v" and cache.hits == 1  # stored as get_or_load stores
