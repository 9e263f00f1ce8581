"""What the lookup cache holds (`CacheEntries`): each shop's bounded LRU partition of entries (cachetools), the tag
index kept in step with it, and each shop's invalidation generation. No loading and no waiting here: that is
gateway.cache.LookupCache's job."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from cachetools import Cache, LRUCache

from gateway.cache_tags import kind_tag

#: "No value" (compare with `is`; a cached value may be None or falsy).
NOTHING: Any = object()


@dataclass(slots=True)
class _Entry:
    value: Any
    fresh_until: float
    stale_until: float
    tags: tuple[str, ...]


class _Partition(LRUCache[Hashable, _Entry]):
    """One shop's bounded LRU; keeps the tag index in step when cachetools evicts."""

    def __init__(self, maxsize: int, stale_if_error: float, on_evict: Callable[[Hashable, _Entry], None]) -> None:
        super().__init__(maxsize)
        self.stale_if_error = stale_if_error
        self._on_evict = on_evict
        #: This shop's fresh hits and started loads (the operator console's hit ratio, per shop in /metrics).
        self.hits = 0
        self.misses = 0

    def popitem(self) -> tuple[Hashable, _Entry]:
        key, entry = super().popitem()
        self._on_evict(key, entry)
        return key, entry

    def peek(self, key: Hashable) -> _Entry | None:
        """The entry without refreshing its LRU position."""
        return Cache.__getitem__(self, key) if key in self else None  # type: ignore[no-any-return]

    def remove(self, key: Hashable) -> _Entry | None:
        """Delete without counting as an eviction; the removed entry, or None."""
        entry = self.peek(key)
        if entry is not None:
            del self[key]
        return entry


class CacheEntries:
    """Every shop's entries. A shop not set up with `configure_shop` gets a partition of the defaults."""

    def __init__(self, max_entries: int, stale_if_error: float, clock: Callable[[], float]) -> None:
        self.default_max_entries = max_entries
        self.default_stale_if_error = stale_if_error
        self._clock = clock
        self._partitions: dict[str, _Partition] = {}
        # (shop_key, tag) -> keys registered with that tag
        self._tag_index: dict[tuple[str, str], set[Hashable]] = {}
        # bumped by every invalidation of a shop; a load that saw it change does not store its result
        self._generation: dict[str, int] = {}
        #: Entries evicted by the size bound.
        self.evictions = 0

    def configure_shop(self, shop_key: str, *, max_entries: int, stale_if_error: float) -> None:
        part = self._partitions.get(shop_key)
        if part is not None and part.maxsize == max_entries:
            part.stale_if_error = stale_if_error
            return
        if part is not None:
            for key, entry in list(part.items()):
                self._unindex(key, entry)
        self._partitions[shop_key] = _Partition(max_entries, stale_if_error, self._evicted)

    def partition(self, shop_key: str) -> _Partition | None:
        return self._partitions.get(shop_key)

    def generation(self, shop_key: str) -> int:
        """The shop's invalidation generation: it moves with every invalidation of the shop."""
        return self._generation.get(shop_key, 0)

    def fresh(self, key: tuple[Any, ...]) -> Any:
        """The fresh value of `key`, its LRU position refreshed and counted as the shop's hit; `NOTHING` if none."""
        part = self._partitions.get(key[0])
        if part is not None and key in part:  # asked first: indexing a missing key raises
            entry = part[key]  # refreshes the LRU position
            if entry.fresh_until > self._clock():
                part.hits += 1
                return entry.value
        return NOTHING

    def peek(self, key: tuple[Any, ...]) -> Any | None:
        """The fresh value or None, without touching LRU order."""
        part = self._partitions.get(key[0])
        entry = part.peek(key) if part is not None else None
        if entry is None or entry.fresh_until <= self._clock():
            return None
        return entry.value

    def stale(self, key: tuple[Any, ...]) -> Any:
        """The value of `key` while it may still stand in for a failed load (its `stale_if_error`); else `NOTHING`."""
        part = self._partitions.get(key[0])
        entry = part.peek(key) if part is not None else None
        if entry is None or entry.stale_until <= self._clock():
            return NOTHING
        return entry.value

    def store(self, key: tuple[Any, ...], value: Any, ttl: float, tags: tuple[str, ...]) -> None:
        shop_key = key[0]
        part = self._partitions.get(shop_key)
        if part is None:
            part = self._partitions[shop_key] = _Partition(
                self.default_max_entries, self.default_stale_if_error, self._evicted
            )
        old = part.remove(key)
        if old is not None:
            self._unindex(key, old)
        now = self._clock()
        fresh_until = now + ttl
        part[key] = _Entry(value, fresh_until, max(fresh_until, now + part.stale_if_error), tags)
        for tag in tags:
            self._tag_index.setdefault((shop_key, tag), set()).add(key)

    def remove(self, shop_key: str, tags: tuple[str, ...] | None, kind: str | None) -> int:
        """Remove the shop's entries registered with any of `tags` (canonical), or with `kind`, or all of them (both
        None); the shop's generation moves on. Returns how many went."""
        self._generation[shop_key] = self._generation.get(shop_key, 0) + 1
        part = self._partitions.get(shop_key)
        if part is None:
            return 0
        if tags is None and kind is None:
            removed = len(part)
            for key, entry in list(part.items()):
                self._unindex(key, entry)
            part.clear()
            return removed
        keys: set[Hashable] = set()
        for tag in tags if tags is not None else (kind_tag(kind or ""),):
            keys |= self._tag_index.get((shop_key, tag), set())
        removed = 0
        for key in keys:
            gone = part.remove(key)
            if gone is not None:
                self._unindex(key, gone)
                removed += 1
        return removed

    def __len__(self) -> int:
        return sum(len(p) for p in self._partitions.values())

    def shop_counts(self, shop_key: str) -> tuple[int, int]:
        """(fresh hits, started loads) of one shop."""
        part = self._partitions.get(shop_key)
        return (part.hits, part.misses) if part is not None else (0, 0)

    def _evicted(self, key: Hashable, entry: _Entry) -> None:
        self.evictions += 1
        self._unindex(key, entry)

    def _unindex(self, key: Hashable, entry: _Entry) -> None:
        shop_key = key[0]  # type: ignore[index]
        for tag in entry.tags:
            keys = self._tag_index.get((shop_key, tag))
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tag_index[(shop_key, tag)]
