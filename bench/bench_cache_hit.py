"""Hits per second of `LookupCache.get_or_load` (the hot path of every cached bot query), next to a bare dict lookup.

    .venv/bin/python bench/bench_cache_hit.py [--entries 10000] [--seconds 2]

Prints hits/s and ns per hit for: a plain dict `get` (the floor), `get_or_load` on a fresh entry, and (for scale) a
cold miss + store with a loader that returns at once.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass

from gateway.cache import LookupCache
from gateway.cache_tags import order_tags


@dataclass(frozen=True, slots=True)
class Query:  # stands in for gateway.lookups.types.OrdersByNumber: a frozen, hashable dataclass
    order_number: str
    page: int = 1
    limit: int = 3


async def _value() -> dict[str, object]:
    return {"orders": [], "has_next_page": False}


def _report(label: str, count: int, elapsed: float) -> None:
    print(f"{label:<34} {count / elapsed:>12,.0f} /s  {elapsed / count * 1e9:>8.0f} ns each")


async def main(entries: int, seconds: float) -> None:
    cache = LookupCache(max_entries=entries * 2)
    keys = [("demo", Query(str(1000 + i))) for i in range(entries)]
    for i, key in enumerate(keys):
        await cache.get_or_load(key, _value, ttl=3600, tags=order_tags(number=str(1000 + i)))
    plain = {key: object() for key in keys}

    def run_plain() -> int:
        n, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            for key in keys[:1000]:
                plain.get(key)
            n += 1000
        return n

    async def run_hits() -> int:
        n, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            for key in keys[:1000]:
                await cache.get_or_load(key, _value, ttl=3600)
            n += 1000
        return n

    started = time.perf_counter()
    n = run_plain()
    _report("dict.get (floor)", n, time.perf_counter() - started)
    started = time.perf_counter()
    n = await run_hits()
    _report("get_or_load hit", n, time.perf_counter() - started)

    misses = LookupCache(max_entries=entries)
    started = time.perf_counter()
    for i in range(entries):
        await misses.get_or_load(("demo", Query(f"m{i}")), _value, ttl=3600, tags=order_tags(number=f"m{i}"))
    _report("miss + store (instant loader)", entries, time.perf_counter() - started)
    print(f"hits={cache.hits} misses={cache.misses} entries={len(cache.entries)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    asyncio.run(main(args.entries, args.seconds))
