"""The lookup cache: per-entry TTL, bounded LRU (cachetools), single-flight, stale-if-error, tag invalidation.

One `LookupCache` serves every shop of the app (`app[LOOKUP_CACHE]`). Keys are tuples whose first element is the
shop key, e.g. `(shop_key, OrdersByNumber(...))`; each shop gets its own bounded partition so one busy shop cannot
evict another's entries (the entries, their partitions and tag index: `cache.entries`, gateway.cache_entries).

    result = await cache.get_or_load((shop_key, query), load, ttl=shop.cache.orders, tags=order_tags(number="1001"))

- A hit is a dict lookup plus an expiry check: no await, no copy. Callers must treat cached values as read-only.
- Concurrent identical misses share one loader call (single-flight); the load runs in the first caller's task, and if
  that caller is cancelled, each waiting caller loads again itself (a waiter cancelled does not cancel the load).
- If the loader raises one of `serve_stale_on` (the wiring passes Shopify's "unavailable" failures) and an expired
  value younger than the shop's `stale_if_error` exists, that value is served. Errors are never cached.
- `ttl == 0`: nothing is stored, but concurrent identical lookups are still shared.
- Invalidation (`invalidate(shop_key, tags)`, `invalidate_shop(shop_key, kind)`) removes entries outright: an entry
  the webhooks say is outdated is not served even as stale (and a compliance purge really purges). A load that was in
  flight when its shop was invalidated answers its callers but is not stored, so it cannot resurrect old data.
- `on_invalidate` callbacks see every local invalidation (gateway.cache_fanout publishes them to other replicas, which
  call `apply_remote_invalidation`, which does not call the callbacks again).

Tags follow gateway.cache_tags (`kind:<kind>` is added when `get_or_load(..., kind=...)` is given); tags written by
hand are canonicalised, and `invalidate(shop_key, ["*"])` evicts the whole shop. The push side evicts through the
`gateway.flows.LookupInvalidator` interface this cache implements.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from gateway.cache_entries import NOTHING, CacheEntries
from gateway.cache_tags import ALL_TAG, canonical_tag, kind_tag
from gateway.flows import LOOKUP_INVALIDATOR
from gateway.keys import SETTINGS
from gateway.ops import Metrics, get_metrics

log = logging.getLogger(__name__)

V = TypeVar("V")
Loader = Callable[[], Awaitable[V]]

DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_STALE_IF_ERROR = 3600.0


@dataclass(frozen=True, slots=True)
class Invalidation:
    """What was invalidated: `tags` None means the whole shop (restricted to `kind` when given)."""

    shop_key: str
    tags: tuple[str, ...] | None = None
    kind: str | None = None


InvalidationHook = Callable[[Invalidation], Awaitable[None] | None]


# --- the cache -----------------------------------------------------------------------------------------------------


class LookupCache:
    def __init__(
        self,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        *,
        stale_if_error: float = DEFAULT_STALE_IF_ERROR,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
        serve_stale_on: tuple[type[Exception], ...] = (),
    ) -> None:
        """`max_entries` / `stale_if_error` apply to shops not set up with `configure_shop`. `clock` is injectable
        so tests can move time without sleeping. `serve_stale_on`: the loader failures an expired entry may answer
        for (within `stale_if_error`); any other failure reaches the caller."""
        self.entries = CacheEntries(max_entries, stale_if_error, clock)
        self.serve_stale_on = serve_stale_on
        self._metrics = metrics
        self._inflight: dict[Hashable, asyncio.Future[Any]] = {}
        self.on_invalidate: list[InvalidationHook] = []
        self._hooks = _HookRunner(self.on_invalidate)
        # exported as counters by setup_cache
        self.hits = 0
        self.misses = 0
        self.shared = 0
        self.stale_served = 0
        self.loader_calls = 0

    def configure_shop(self, shop_key: str, *, max_entries: int, stale_if_error: float) -> None:
        self.entries.configure_shop(shop_key, max_entries=max_entries, stale_if_error=stale_if_error)

    # --- reading ---------------------------------------------------------------------------------------------------

    async def get_or_load(
        self,
        key: tuple[Any, ...],
        loader: Loader[V],
        *,
        ttl: float,
        tags: Iterable[str] = (),
        kind: str | None = None,
    ) -> V:
        """The cached value for `key` (a tuple starting with the shop key), else `await loader()`.
        Raises whatever the loader raises when no stale value can stand in."""
        value = self.fresh(key)
        if value is NOTHING:
            value = await self._load(key, loader, ttl, tags, kind)
        return value  # type: ignore[no-any-return]

    def fresh(self, key: tuple[Any, ...]) -> Any:
        """The fresh cached value for `key`, counted as a hit and refreshing its LRU position (as `get_or_load` does
        on a hit); `NOTHING` when there is none. For callers that can answer a hit without setting up a load."""
        value = self.entries.fresh(key)
        if value is not NOTHING:
            self.hits += 1
        return value

    def put(self, key: tuple[Any, ...], value: Any, *, ttl: float, tags: Iterable[str] = ()) -> None:
        """Store a value we already have (no loader, no task): what `get_or_load` with a loader returning `value`
        stores, except that it replaces a fresh entry instead of keeping it. `ttl <= 0` stores nothing."""
        if ttl > 0:
            self.entries.store(key, value, ttl, tuple(canonical_tag(t) for t in tags))

    def peek(self, key: tuple[Any, ...]) -> Any | None:
        """The fresh cached value or None, without loading (and without touching LRU order)."""
        return self.entries.peek(key)

    def __contains__(self, key: tuple[Any, ...]) -> bool:
        return self.entries.peek(key) is not None

    async def _load(
        self, key: tuple[Any, ...], loader: Loader[V], ttl: float, tags: Iterable[str], kind: str | None
    ) -> V:
        """A miss: join the load of `key` in flight, or run it in the calling task.

        Callers of the same key that come meanwhile wait on `done`. If this caller is cancelled (shutdown: aiohttp
        does not cancel a handler whose client went away), `done` is cancelled and each waiting caller loads again
        itself."""
        inflight = self._inflight
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            shared = inflight.setdefault(key, done)
            if shared is not done:
                self.shared += 1
                value = await self._join(key, shared)
                if value is not NOTHING:
                    return value  # type: ignore[no-any-return]
                inflight[key] = done  # the load it waited for was cancelled and none other is in flight: load here
            shop_key = key[0]
            # the shop's invalidation generation as of now: if it moves before the load ends, the result is not stored
            generation = self.entries.generation(shop_key)
            self.misses += 1
            part = self.entries.partition(shop_key)
            if part is not None:
                part.misses += 1
            try:
                self.loader_calls += 1
                value = await loader()
                if ttl > 0 and self.entries.generation(shop_key) == generation:
                    # tags are materialised only now: a lazy iterable (hashing an email) costs nothing on hits
                    stored_tags = tuple(canonical_tag(t) for t in tags)
                    if kind is not None:
                        stored_tags = (*stored_tags, kind_tag(kind))
                    self.entries.store(key, value, ttl, stored_tags)
            except asyncio.CancelledError:
                done.cancel()
                raise
            except Exception as exc:
                done.set_exception(exc)
                done.exception()  # mark retrieved: nobody may be waiting for a shared failure
                raise
            finally:
                # put back whatever other load of the key is in flight (one started after a cancelled wait)
                current = inflight.pop(key, None)
                if current is not None and current is not done:
                    inflight[key] = current
            done.set_result(value)
            return value
        except self.serve_stale_on:
            stale = self.entries.stale(key)
            if stale is NOTHING:
                raise
            self.stale_served += 1
            if self._metrics is not None:
                self._metrics.inc("lookup_cache_stale_served_total", shop=str(key[0]))
            return stale  # type: ignore[no-any-return]

    async def _join(self, key: tuple[Any, ...], shared: asyncio.Future[Any]) -> Any:
        """Wait for the load another caller runs: its value, or `NOTHING` when that caller was cancelled (not this
        one) and no other load of `key` is in flight (this caller then loads here)."""
        while True:
            try:
                # shield: this caller cancelled mid-wait must not cancel the load the others wait for
                return await asyncio.shield(shared)
            except asyncio.CancelledError:
                me = asyncio.current_task()
                if not shared.cancelled() or (me is not None and me.cancelling()):
                    raise
            again = self._inflight.get(key)
            if again is None:
                return NOTHING
            shared = again

    # --- invalidation ----------------------------------------------------------------------------------------------

    def invalidate(self, shop_key: str, tags: Iterable[str]) -> int:
        """Evict the shop's entries registered with any of `tags` (`"*"`: all of them); tell the `on_invalidate` hooks.
        Returns how many entries went."""
        wanted = tuple(canonical_tag(t) for t in tags)
        event = Invalidation(shop_key, None if ALL_TAG in wanted else wanted)
        removed = self._apply(event)
        self._hooks.notify(event)
        return removed

    def invalidate_shop(self, shop_key: str, kind: str | None = None) -> int:
        """Evict every entry of the shop, or only those stored with `kind=kind`."""
        event = Invalidation(shop_key, None, kind)
        removed = self._apply(event)
        self._hooks.notify(event)
        return removed

    def apply_remote_invalidation(self, event: Invalidation) -> int:
        """An invalidation another replica made: apply it here without broadcasting it again. Its tags came over the
        wire, so they are canonicalised here (local ones were, by `invalidate`)."""
        if event.tags is not None:
            event = Invalidation(event.shop_key, tuple(canonical_tag(t) for t in event.tags), event.kind)
        return self._apply(event)

    def _apply(self, event: Invalidation) -> int:
        return self.entries.remove(event.shop_key, event.tags, event.kind)

    async def close(self) -> None:
        """Wait for hook tasks still running (e.g. a Redis publish)."""
        await self._hooks.close()


class _HookRunner:
    """Tells the `on_invalidate` hooks of each local invalidation; an awaitable hook runs in the background."""

    def __init__(self, hooks: list[InvalidationHook]) -> None:
        self.hooks = hooks
        self._background: set[asyncio.Future[Any]] = set()

    def notify(self, event: Invalidation) -> None:
        for hook in self.hooks:
            try:
                result = hook(event)
                if inspect.isawaitable(result):
                    fut = asyncio.ensure_future(result)
                    self._background.add(fut)
                    fut.add_done_callback(self._done)
            except Exception:  # one broken hook must not stop local invalidation or the others
                log.exception("cache invalidation hook failed")

    def _done(self, fut: asyncio.Future[Any]) -> None:
        self._background.discard(fut)
        if not fut.cancelled() and fut.exception() is not None:
            log.error("cache invalidation hook failed: %r", fut.exception())

    async def close(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


# --- app wiring ----------------------------------------------------------------------------------------------------

LOOKUP_CACHE = web.AppKey("lookup_cache", LookupCache)


def build_cache(
    shops: Mapping[str, Any], *, serve_stale_on: tuple[type[Exception], ...], metrics: Metrics | None = None
) -> LookupCache:
    """A cache with one partition per configured shop (`ShopSettings.cache.max_entries` / `.stale_if_error`)."""
    cache = LookupCache(metrics=metrics, serve_stale_on=serve_stale_on)
    for shop_key, shop in shops.items():
        cache.configure_shop(shop_key, max_entries=shop.cache.max_entries, stale_if_error=shop.cache.stale_if_error)
    return cache


def export_shop_counts(metrics: Metrics, cache: LookupCache, shop_key: str) -> None:
    """The shop's hits and loads in /metrics (at start for config shops, on first use for shops connected later)."""
    metrics.gauge("lookup_cache_shop_hits_total", functools.partial(lambda k: cache.entries.shop_counts(k)[0], shop_key),
                  shop=shop_key)  # fmt: skip
    metrics.gauge("lookup_cache_shop_misses_total", functools.partial(lambda k: cache.entries.shop_counts(k)[1], shop_key),
                  shop=shop_key)  # fmt: skip


def setup_cache(app: web.Application, *, serve_stale_on: tuple[type[Exception], ...]) -> LookupCache:
    """Create `app[LOOKUP_CACHE]` (idempotent), offer it to the push side as `app[LOOKUP_INVALIDATOR]`, and export its
    counters in /metrics."""
    if LOOKUP_CACHE in app:
        return app[LOOKUP_CACHE]
    metrics = get_metrics(app)
    cache = build_cache(app[SETTINGS].shops, serve_stale_on=serve_stale_on, metrics=metrics)
    app[LOOKUP_CACHE] = cache
    app[LOOKUP_INVALIDATOR] = cache
    counters: tuple[tuple[str, Callable[[], float], str], ...] = (
        ("lookup_cache_hits_total", lambda: cache.hits, "Lookups answered from a fresh cache entry."),
        ("lookup_cache_misses_total", lambda: cache.misses, "Lookups that started a load."),
        ("lookup_cache_shared_total", lambda: cache.shared, "Lookups that joined a load already in flight."),
        ("lookup_cache_loads_total", lambda: cache.loader_calls, "Loader calls (upstream lookups)."),
        ("lookup_cache_evictions_total", lambda: cache.entries.evictions, "Entries evicted by the size bound."),
    )
    for name, read, help_text in counters:
        metrics.gauge(name, read)
        metrics.describe(name, help_text, "counter")
    metrics.gauge("lookup_cache_entries", lambda: len(cache.entries), "Entries currently cached (all shops).")
    for shop_key in app[SETTINGS].shops:
        export_shop_counts(metrics, cache, shop_key)
    metrics.describe("lookup_cache_shop_hits_total", "Lookups answered from a fresh cache entry, per shop.")
    metrics.describe("lookup_cache_shop_misses_total", "Lookups that started a load, per shop.")

    async def close_cache(app: web.Application) -> None:
        await cache.close()

    app.on_cleanup.append(close_cache)
    return cache
