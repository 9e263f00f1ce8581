"""Bursts of `orders` lookups by email against `gateway serve` processes and one local store, judged against what
Shopify's bucket could have afforded at the costs the store reported. Shared by bench/bench_query_burst.py (the
standard plan, real time) and tests/test_query_budget_live.py (a scaled bucket); everything goes through HTTP (the
gateway's bot endpoint and /metrics, the store's admin surface), so it runs on any version of the gateway.

- `seed_customers`: customers with 1–20 orders each (mixed financial states, some closed or cancelled, 1–3 line items
  each, so no lookup needs a follow-up request), made through the store's admin API;
- `lookup_pool`: email lookups with mixed page sizes (2, 3, 5), filters and sorts; any window of 4 × customers
  consecutive lookups holds no two with the same email and filter (so no two share a search, nor a single flight);
- `Rig.calibrate`: each lookup's requested and actual cost, one at a time through a gateway of the tree under test
  (the store's query log, `GET /_sandbox/queries`);
- `affordable`: how many lookups of a burst a greedy in-order scheduler that knows those costs serves in time;
- `Rig.judge`: one burst at once, round-robin over the replicas: answered, affordable, THROTTLED per request, times.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.bench_query_hit import SECRET, bench_config
from gateway import signing
from tests.fixtures_push import free_port
from tests.fixtures_replicas import REDIS_URL, ROOT, ReplicaProcess, purge

LIMITS = (2, 3, 5)
FILTERS = (None, "open", "unpaid", "closed")
SORTS = (None, "created_at,asc", "updated_at,desc", "processed_at,asc", "processed_at,desc")
#: orders per customer, in turn: most shoppers have a few, some many (as in a real shop)
ORDER_COUNTS = (1, 2, 1, 3, 20, 1, 1, 5, 2, 1, 12, 1, 2, 1, 8, 1, 3, 15, 1, 2)
#: financial states of the seeded orders (PENDING / AUTHORIZED / PARTIALLY_PAID are "unpaid")
FINANCIAL = ("PAID", "PAID", "PENDING", "AUTHORIZED", "PARTIALLY_PAID", "REFUNDED")


# --- the bucket's side: what a scheduler that knows the true costs serves ------------------------------------------


def affordable(
    costs: Sequence[tuple[float, float]],
    *,
    size: float,
    restore_rate: float,
    latency: float,
    deadline: float,
    available: float | None = None,
) -> int:
    """How many of `costs` ((requested, actual) per lookup, in arrival order, all arriving at t = 0) a greedy in-order
    scheduler serves: a bucket of `size` points (`available` at t = 0, full by default) restoring `restore_rate` per
    second; each lookup starts as soon as the bucket holds its requested cost, no earlier than the one before it,
    holds that cost for `latency`, and gets requested − actual back at its end; one that cannot start by
    `deadline` − `latency` is skipped (not served, nothing taken) and the next one is tried."""
    now = 0.0
    level = size if available is None else min(size, available)
    refunds: list[tuple[float, float]] = []  # (when, points) of the lookups in flight
    served = 0
    last_start = deadline - latency

    def advance(to: float, level: float, pending: list[tuple[float, float]], now: float) -> float:
        """The level at `to`, folding in the refunds due by then (they leave `pending`)."""
        while pending and pending[0][0] <= to:
            when, points = heapq.heappop(pending)
            level = min(size, level + (when - now) * restore_rate + points)
            now = when
        return min(size, level + (to - now) * restore_rate)

    for requested, actual in costs:
        if requested > size:
            continue
        # the earliest time >= now at which the bucket holds `requested`: look ahead on a copy
        t, lvl, pending = now, level, list(refunds)
        while True:
            need = requested - lvl
            reach = t + (need / restore_rate if need > 0 and restore_rate > 0 else (0.0 if need <= 0 else float("inf")))
            if pending and pending[0][0] < reach:
                when = pending[0][0]
                lvl = advance(when, lvl, pending, t)
                t = when
                continue
            break
        if reach > last_start:
            continue  # skipped: the state stays as it was
        level = advance(reach, level, refunds, now) - requested
        now = reach
        heapq.heappush(refunds, (now + latency, max(0.0, requested - actual)))
        served += 1
    return served


# --- lookups ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lookup:
    email: str
    limit: int
    filter: str | None
    sort: str | None

    def body(self) -> bytes:
        params: dict[str, Any] = {"user_account": self.email}
        if self.filter:
            params["filter"] = self.filter
        if self.sort:
            params["order_type"] = self.sort
        return json.dumps({"method": "orders", "params": params, "pagination": {"page": 1, "limit": self.limit}}).encode()


def lookup_pool(emails: Sequence[str], count: int) -> list[Lookup]:
    """`count` lookups over `emails`: lookup j asks customer e = j mod E with filter (j div E + e) mod 4, so any 4 × E
    consecutive ones are distinct searches and every stretch mixes the filters; page sizes and sorts go round so
    every mix occurs."""
    out = []
    for j in range(count):
        e = j % len(emails)
        f = (j // len(emails) + e) % len(FILTERS)
        out.append(Lookup(emails[e], LIMITS[(j + f) % len(LIMITS)], FILTERS[f], SORTS[(j // 2) % len(SORTS)]))
    return out


async def seed_customers(session: aiohttp.ClientSession, store: str, domain: str, count: int, *,
                         tag: str = "budget", seed: int = 7) -> list[str]:
    """`count` customers (emails returned) with 1–20 orders each, made through the store's admin API."""
    rng = random.Random(seed)
    emails = [f"{tag}.{i}@customers.example.com" for i in range(count)]
    plans: list[tuple[str, int, str, str | None]] = []
    for i, email in enumerate(emails):
        orders = ORDER_COUNTS[i % len(ORDER_COUNTS)]
        for _ in range(orders):
            after = rng.choice([None, None, None, "close", "cancel"])
            plans.append((email, rng.randint(1, 3), rng.choice(FINANCIAL), after))

    async def create(email: str, lines: int, financial: str, after: str | None) -> None:
        body = {"email": email, "customer": {"first_name": "Budget", "last_name": email.split("@")[0], "email": email},
                "financial_status": financial,
                "line_items": [{"title": f"Item {n}", "quantity": 1 + n, "price": "12.50"} for n in range(lines)]}
        async with session.post(f"{store}/_sandbox/{domain}/orders", json=body) as resp:
            assert resp.status == 201, await resp.text()
            order = await resp.json()
        if after:
            async with session.post(f"{store}/_sandbox/{domain}/orders/{order['legacyResourceId']}/{after}") as resp:
                assert resp.status == 200, await resp.text()

    # the first order of a customer creates it: those go one at a time, the rest in parallel batches
    firsts = {}
    for p in plans:
        firsts.setdefault(p[0], p)
    for p in firsts.values():
        await create(*p)
    rest = [p for p in plans if firsts[p[0]] is not p]
    for start in range(0, len(rest), 32):
        await asyncio.gather(*(create(*p) for p in rest[start:start + 32]))
    return emails


# --- a burst ---------------------------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    answered: bool  # HTTP 200 with data
    seconds: float


async def ask(session: aiohttp.ClientSession, url: str, lookup: Lookup) -> Answer:
    raw = lookup.body()
    headers = {"Content-Type": "application/json", signing.JOINCHAT_HEADER: signing.sign_base64(SECRET, raw)}
    started = time.perf_counter()
    try:
        async with session.post(f"{url}/bot/bench", data=raw, headers=headers) as resp:
            body = await resp.read()
            status = resp.status
    except aiohttp.ClientError:
        return Answer(0, False, time.perf_counter() - started)
    seconds = time.perf_counter() - started
    answered = status == 200 and json.loads(body).get("success") is True
    return Answer(status, answered, seconds)


async def send_all(session: aiohttp.ClientSession, urls: Sequence[str], lookups: Sequence[Lookup]) -> list[Answer]:
    """Every lookup at once, round-robin over `urls`."""
    return list(await asyncio.gather(*(ask(session, urls[i % len(urls)], lk) for i, lk in enumerate(lookups))))


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


@dataclass
class Result:
    """One judged burst."""

    answered: int
    total: int
    affordable: int
    requests: float
    throttled: float
    p50: float
    p99: float
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def throttled_share(self) -> float:
        return self.throttled / self.requests if self.requests else 0.0

    def target_met(self) -> bool:
        """answered >= 95 % of affordable, and all of them when the bucket affords them all."""
        if self.affordable >= self.total:
            return self.answered == self.total
        return self.answered >= 0.95 * self.affordable

    def line(self) -> str:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        return (f"answered {self.answered}/{self.affordable} affordable ({self.answered}/{self.total} sent), "
                f"THROTTLED {self.throttled:.0f}/{self.requests:.0f} requests ({100 * self.throttled_share:.1f} %), "
                f"p50 {self.p50:.2f} s, p99 {self.p99:.2f} s  [HTTP {statuses}]")


@dataclass
class Timing:
    """A scenario's clock and bucket: the bench's real one by default; the tests scale it."""

    latency: float = 0.05  # per Shopify request
    deadline: float = 4.0  # the shop's deadline_seconds
    quiet: float = 21.0  # a standard bucket refills from empty in 20 s
    trickle_every: float = 0.5
    trickle_for: float = 10.0
    trickle_size: int = 5
    burst: int = 50
    rush: int = 100  # the rush's first wave, and the plan scenario's learning wave
    small: dict[str, Any] = field(default_factory=lambda: {"plan": "standard"})  # the judged bucket (full)
    large: dict[str, Any] = field(default_factory=lambda: {"plan": "plus"})  # the one the plan scenario learns


class Rig:
    """One local store (at `store`, shop `domain`, token `token`) and gateway processes of the checkout `tree`."""

    def __init__(self, session: aiohttp.ClientSession, store: str, domain: str, token: str, timing: Timing,
                 workdir: Path, tree: Path = ROOT) -> None:
        self.session, self.store, self.domain, self.token = session, store, domain, token
        self.timing, self.workdir, self.tree = timing, workdir, tree
        self.costs: dict[Lookup, tuple[float, float]] = {}
        self._started = 0

    async def settings(self, **body: Any) -> dict[str, Any]:
        """POST the shop's settings (an empty body only reads them: bucket_size, restore_rate, currently_available)."""
        async with self.session.post(f"{self.store}/_sandbox/{self.domain}/settings", json=body) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()  # type: ignore[no-any-return]

    async def latency(self, seconds: float) -> None:
        async with self.session.post(f"{self.store}/_sandbox/faults", json={"latency": seconds}) as resp:
            assert resp.status == 200, await resp.text()

    async def queries(self, after: int = 0) -> list[dict[str, Any]]:
        async with self.session.get(f"{self.store}/_sandbox/queries", params={"after": str(after)}) as resp:
            return await resp.json()  # type: ignore[no-any-return]

    @asynccontextmanager
    async def gateways(self, count: int = 1, *, redis: bool = False) -> AsyncIterator[list[ReplicaProcess]]:
        """`count` fresh gateway processes (cache off: every lookup a miss); on Redis they share one new prefix."""
        prefix = f"budget-{uuid.uuid4().hex[:10]}"
        replicas = []
        for i in range(count):
            self._started += 1
            config = bench_config(self.store, ttl=0, deadline=self.timing.deadline, domain=self.domain,
                                  token=self.token)
            config["server"]["port"] = free_port()
            if redis:
                config["storage"] = {"backend": "redis", "redis_url": REDIS_URL, "redis_prefix": prefix}
            replicas.append(ReplicaProcess(f"gw{self._started}-{i}", config, self.workdir, tree=self.tree))
        try:
            await asyncio.gather(*(r.start() for r in replicas))
            yield replicas
        finally:
            await asyncio.gather(*(r.stop() for r in replicas))
            if redis:
                await purge(prefix)

    async def calibrate(self, lookups: Sequence[Lookup]) -> None:
        """Each lookup's (requested, actual) cost, one at a time with no latency on a roomy bucket, through a gateway
        of the tree under test (its documents decide the costs)."""
        todo = [lk for lk in dict.fromkeys(lookups) if lk not in self.costs]
        if not todo:
            return
        await self.settings(plan="commerce_components")
        await self.latency(0)
        async with self.gateways(1) as [gateway]:
            for lookup in todo:
                before = await self.queries()
                seq = before[-1]["seq"] if before else 0
                answer = await ask(self.session, gateway.url, lookup)
                assert answer.answered, (lookup, answer)
                ran = [q for q in await self.queries(seq) if not q["throttled"]]
                assert len(ran) == 1, f"{lookup}: {len(ran)} Shopify requests (expected one)"
                self.costs[lookup] = (float(ran[0]["requested"]), float(ran[0]["actual"]))
        await self.latency(self.timing.latency)

    async def judge(self, replicas: Sequence[ReplicaProcess], lookups: Sequence[Lookup]) -> Result:
        """One burst of `lookups`, all at once, round-robin over `replicas`, judged against the bucket as it is now
        (their costs calibrated beforehand: `calibrate` spends from the shop's bucket)."""
        missing = [lk for lk in lookups if lk not in self.costs]
        assert not missing, f"{len(missing)} lookups were not calibrated"
        bucket = await self.settings()
        metrics = ("shopify_requests_total", "shopify_throttled_total")
        before = {m: sum([await r.metric(m) for r in replicas]) for m in metrics}
        answers = await send_all(self.session, [r.url for r in replicas], lookups)
        after = {m: sum([await r.metric(m) for r in replicas]) for m in metrics}
        statuses: dict[int, int] = {}
        for a in answers:
            statuses[a.status] = statuses.get(a.status, 0) + 1
        seconds = [a.seconds for a in answers]
        return Result(
            answered=sum(a.answered for a in answers), total=len(answers),
            affordable=affordable([self.costs[lk] for lk in lookups], size=bucket["bucket_size"],
                                  restore_rate=bucket["restore_rate"], latency=self.timing.latency,
                                  deadline=self.timing.deadline, available=bucket["currently_available"]),
            requests=after[metrics[0]] - before[metrics[0]], throttled=after[metrics[1]] - before[metrics[1]],
            p50=percentile(seconds, 50), p99=percentile(seconds, 99), statuses=statuses,
        )

    # --- the scenarios: each returns its judged burst -------------------------------------------------------------

    async def fresh(self, pool: Sequence[Lookup]) -> Result:
        """A fresh gateway, `burst` lookups at once on a full bucket."""
        t = self.timing
        await self.settings(**t.small)
        async with self.gateways(1) as replicas:
            return await self.judge(replicas, pool[:t.burst])

    async def trickle(self, pool: Sequence[Lookup]) -> Result:
        """`trickle_size` lookups every `trickle_every` s for `trickle_for` s, `quiet` s of quiet (the bucket is full
        again), then `burst` at once (only those are judged)."""
        t = self.timing
        await self.settings(**t.small)
        judged = pool[:t.burst]
        rounds = round(t.trickle_for / t.trickle_every)
        async with self.gateways(1) as replicas:
            url = replicas[0].url
            tasks = []
            for r in range(rounds):
                lookups = pool[t.burst + r * t.trickle_size:t.burst + (r + 1) * t.trickle_size]
                tasks += [asyncio.create_task(ask(self.session, url, lk)) for lk in lookups]
                await asyncio.sleep(t.trickle_every)
            await asyncio.gather(*tasks)
            await asyncio.sleep(t.quiet)
            return await self.judge(replicas, judged)

    async def rush(self, pool: Sequence[Lookup]) -> Result:
        """`rush` lookups at once with no upstream latency, `quiet` s, then `burst` at once with the normal latency."""
        t = self.timing
        await self.settings(**t.small)
        async with self.gateways(1) as replicas:
            await self.latency(0)
            try:
                await send_all(self.session, [replicas[0].url], pool[t.burst:t.burst + t.rush])
            finally:
                await self.latency(t.latency)
            await asyncio.sleep(t.quiet)
            return await self.judge(replicas, pool[:t.burst])

    async def plan(self, pool: Sequence[Lookup]) -> Result:
        """The gateway learns a large bucket (`rush` lookups at once on it), the shop's plan changes to the small one,
        `quiet` s, then `burst` at once."""
        t = self.timing
        await self.settings(**t.large)
        async with self.gateways(1) as replicas:
            await send_all(self.session, [replicas[0].url], pool[t.burst:t.burst + t.rush])
            await self.settings(**t.small)
            await asyncio.sleep(t.quiet)
            return await self.judge(replicas, pool[:t.burst])

    async def replicas(self, pool: Sequence[Lookup], count: int, sizes: Sequence[int]) -> list[Result]:
        """`count` gateways on Redis sharing one prefix; for each size, that many lookups at once on a full bucket,
        round-robin over them."""
        results = []
        await self.settings(**self.timing.small)  # a full bucket before the replicas start
        async with self.gateways(count, redis=True) as replicas:
            for i, size in enumerate(sizes):
                if i:  # the bucket fills again with time, as Shopify's does (a reset would not tell the gateways)
                    await asyncio.sleep(self.timing.quiet)
                results.append(await self.judge(replicas, pool[:size]))
        return results
