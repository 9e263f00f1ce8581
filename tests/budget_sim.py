"""A simulated Shopify driving `QueryBudget` on virtual time, and a judge that knows the true costs.

- `SimShopify`: the shop's bucket with the local store's rules (`localstore.cost.Bucket` itself, on the loop's virtual
  clock): the requested cost is taken when a query starts (THROTTLED, nothing taken, when the bucket lacks it), held
  for the query's latency, requested − actual refunded at the end; every answer's `throttleStatus` is the balance after
  that refund, `currentlyAvailable` rounded down to a whole point as the local store (and Shopify) report it. A plan
  change sets the size and restore rate the way the local store's `bucket_size` / `restore_rate` setters do (what was
  restored so far counts at the old rate; what is available is capped at the new size).
- `run(scenario)`: every arrival books, sends and settles the way `ShopifyAdminClient._send` / `execute` do: acquire →
  Shopify starts it or answers THROTTLED → (latency) → answer → `settle(booking, cost, outcome)`; after THROTTLED the
  client's `_wait_after_throttled` (the pause `settle` advised, refused when it passes the deadline), then acquire
  again; an answer that never comes is settled "unknown" with no cost at the deadline (the client's HTTP timeout is
  the time left). Our replicas are QueryBudgets over one shared `LocalBucket` (as replicas on Redis); a foreign
  spender (another app, or a replica that keeps its own copy) is a QueryBudget over its own LocalBucket.
- `oracle(...)`: greedy FIFO on the true bucket: each of a replica's lookups, in arrival order, starts as soon as the
  bucket holds its requested cost (never before the previous one started), or is skipped when that is later than its
  deadline − MIN_START_SECONDS. Everything else Shopify started (our background reads, the other replicas', the
  foreign spender's queries) is replayed at the very times it started, charged even when the oracle's own lookups
  left too little (the bucket may then go below zero: the oracle pays for its head start, it never gets points the
  real run did not have).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.shopify.bucket import LocalBucket
from gateway.shopify.budget import MIN_START_SECONDS, QueryBudget
from gateway.shopify.errors import ShopifyThrottled
from localstore.cost import Bucket

__all__ = [
    "FOREIGN",
    "Arrival",
    "OracleResult",
    "PlanChange",
    "QueryRecord",
    "RunResult",
    "Scenario",
    "SimShopify",
    "Start",
    "judge",
    "local_oracle",
    "oracle",
    "run",
]

#: the replica number of the foreign spender (its own bucket copy)
FOREIGN = -1


@dataclass(frozen=True, slots=True)
class Arrival:
    at: float  # seconds after the run starts
    shape: str  # the query's shape: Shopify's requestedQueryCost is fixed by it
    requested: int
    actual: int  # ≤ requested
    lookup: bool = True  # False: a background read (push re-read, reconciliation)
    deadline: float = 4.0  # seconds after arrival
    replica: int = 0  # which of our replicas takes it; FOREIGN: the foreign spender
    lost: bool = False  # its first answer that ran never comes back


@dataclass(frozen=True, slots=True)
class PlanChange:
    at: float
    size: float
    restore_rate: float


@dataclass
class Scenario:
    arrivals: list[Arrival]
    plan_changes: list[PlanChange] = field(default_factory=list)
    latency: float = 0.05
    size: float = 2000.0
    restore_rate: float = 100.0
    replicas: int = 1  # our QueryBudgets, sharing one LocalBucket


@dataclass
class QueryRecord:
    index: int
    arrival: Arrival
    arrived_at: float = 0.0
    arrived_seq: int = 0
    outcome: Literal["answered", "refused", "lost", "pending"] = "pending"
    refused_by: Literal["budget", "throttled", ""] = ""
    ended_at: float = 0.0
    ended_seq: int = 0
    started_seq: int | None = None  # when the booking that Shopify started was granted
    #: Shopify's true bucket when it arrived: (size, restore rate, available)
    truth: tuple[float, float, float] = (0.0, 0.0, 0.0)
    #: (seq, time) of each booking granted, and of each THROTTLED answer
    booked: list[tuple[int, float]] = field(default_factory=list)
    throttled: list[tuple[int, float]] = field(default_factory=list)
    #: (seq from, seq to) spans it spent in `acquire`, and pausing after THROTTLED
    queued: list[tuple[int, int]] = field(default_factory=list)
    paused: list[tuple[int, int]] = field(default_factory=list)


@dataclass(slots=True)
class Start:
    """A query Shopify started: charged `requested` at `at`, refunded requested − actual at `at + latency`."""

    at: float
    requested: float
    actual: float
    record: int  # QueryRecord.index
    #: when (the run's sequence) Shopify charged it and refunded it: at one virtual instant, arrivals, charges and
    #: refunds run in no promised order, so a snapshot of the bucket is placed among them by sequence, not by time
    charged_seq: int = -1
    refunded_seq: int | None = None


@dataclass
class RunResult:
    scenario: Scenario
    t0: float
    records: list[QueryRecord]
    starts: list[Start]
    #: (record index, seq) of every THROTTLED answer
    throttled: list[tuple[int, int]]
    requests: dict[int, int]  # requests sent to Shopify, per replica
    elapsed: float = 0.0

    def of(self, replica: int) -> list[QueryRecord]:
        return [r for r in self.records if r.arrival.replica == replica]

    def throttled_of(self, replicas: set[int]) -> int:
        return sum(1 for i, _ in self.throttled if self.records[i].arrival.replica in replicas)


class _ClockedBucket(Bucket):
    """`localstore.cost.Bucket` on an injected clock (it reads `time.monotonic()` when not told the time)."""

    def __init__(self, clock: Callable[[], float], size: float, restore_rate: float) -> None:
        super().__init__(size=size, restore_rate=restore_rate, available=size, updated=clock())
        self.clock = clock

    def refill(self, now: float | None = None) -> float:
        return super().refill(self.clock() if now is None else now)


class SimShopify:
    """One shop's Shopify bucket, charged at start and refunded at the end (`localstore.executor` does the same)."""

    def __init__(self, clock: Callable[[], float], size: float, restore_rate: float) -> None:
        self.bucket = _ClockedBucket(clock, size, restore_rate)

    def start(self, requested: float) -> bool:
        return self.bucket.try_take(requested)

    def finish(self, requested: float, actual: float) -> dict[str, Any]:
        self.bucket.give_back(requested - actual)
        return {"requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": self.bucket.status()}

    def throttled(self, requested: float) -> dict[str, Any]:
        return {"requestedQueryCost": requested, "actualQueryCost": None, "throttleStatus": self.bucket.status()}

    def change_plan(self, size: float, restore_rate: float) -> None:
        # as localstore.data.SandboxShop's bucket_size and restore_rate setters
        self.bucket.refill()
        self.bucket.size = size
        self.bucket.available = min(self.bucket.available, size)
        self.bucket.refill()
        self.bucket.restore_rate = restore_rate


BudgetFactory = Callable[[Callable[[], float]], QueryBudget]


async def _run(scenario: Scenario, prepare: Callable[[dict[int, QueryBudget]], Awaitable[None]] | None) -> RunResult:
    loop = asyncio.get_running_loop()
    clock = loop.time
    t0 = clock()
    shop = SimShopify(clock, scenario.size, scenario.restore_rate)
    shared = LocalBucket(clock=clock)
    budgets: dict[int, QueryBudget] = {r: QueryBudget(shared, shop_key=f"r{r}") for r in range(scenario.replicas)}
    budgets[FOREIGN] = QueryBudget(LocalBucket(clock=clock), shop_key="foreign")
    if prepare is not None:
        await prepare(budgets)
    seq = itertools.count()
    records = [QueryRecord(i, a) for i, a in enumerate(scenario.arrivals)]
    starts: list[Start] = []
    throttled: list[tuple[int, int]] = []
    requests: dict[int, int] = dict.fromkeys(budgets, 0)
    latency = scenario.latency

    async def query(rec: QueryRecord) -> None:
        a = rec.arrival
        budget = budgets[a.replica]
        rec.arrived_at = clock()
        rec.arrived_seq = next(seq)
        rec.truth = (shop.bucket.size, shop.bucket.restore_rate, shop.bucket.refill())
        deadline = rec.arrived_at + a.deadline
        lost = a.lost
        while True:
            entered = next(seq)
            try:
                booking = await budget.acquire(a.shape, deadline, background=not a.lookup)
            except ShopifyThrottled:
                rec.queued.append((entered, next(seq)))
                rec.outcome, rec.refused_by, rec.ended_at, rec.ended_seq = "refused", "budget", clock(), next(seq)
                return
            booked = next(seq)
            rec.queued.append((entered, booked))
            rec.booked.append((booked, clock()))
            requests[a.replica] += 1
            sent = clock()
            if not shop.start(a.requested):
                cost = shop.throttled(a.requested)
                await asyncio.sleep(latency)
                pause = await budget.settle(booking, cost, "throttled")
                mark = next(seq)
                rec.throttled.append((mark, clock()))
                throttled.append((rec.index, mark))
                # the client's _wait_after_throttled (every simulated THROTTLED answer tells the balance)
                assert pause is not None
                if pause:
                    if clock() + pause + MIN_START_SECONDS >= deadline:
                        rec.outcome, rec.refused_by, rec.ended_at, rec.ended_seq = "refused", "throttled", clock(), next(seq)
                        return
                    await asyncio.sleep(pause)
                    rec.paused.append((mark, next(seq)))
                continue
            start = Start(sent, a.requested, a.actual, rec.index, charged_seq=booked)
            starts.append(start)
            rec.started_seq = booked

            def finish(start: Start = start) -> dict[str, Any]:
                start.refunded_seq = next(seq)
                return shop.finish(start.requested, start.actual)

            if lost:
                # Shopify runs it and refunds; the answer never reaches the gateway, whose timeout is the time left
                loop.call_at(sent + latency, finish)
                await asyncio.sleep(max(deadline - clock(), 0.0))
                await budget.settle(booking, None, "unknown")
                rec.outcome, rec.ended_at = "lost", clock()
                return
            await asyncio.sleep(latency)
            cost = finish()
            await budget.settle(booking, cost, "answered")
            rec.outcome, rec.ended_at = "answered", clock()
            return

    tasks: list[asyncio.Task[None]] = []
    for rec in records:
        loop.call_at(t0 + rec.arrival.at, lambda rec=rec: tasks.append(loop.create_task(query(rec))))
    for change in scenario.plan_changes:
        loop.call_at(t0 + change.at, shop.change_plan, change.size, change.restore_rate)
    end = t0 + max([a.at for a in scenario.arrivals] + [c.at for c in scenario.plan_changes] + [0.0])
    await asyncio.sleep(max(end - clock(), 0.0))
    # (arrivals due at the end instant may not have run yet: timers due together run in no promised order)
    while len(tasks) < len(records) or any(not t.done() for t in tasks):
        await asyncio.gather(*tasks, asyncio.sleep(0))
    return RunResult(scenario, t0, records, starts, throttled, requests)


def run(
    scenario: Scenario, *, prepare: Callable[[dict[int, QueryBudget]], Awaitable[None]] | None = None
) -> RunResult:
    """Run the scenario on a fresh virtual-time loop; `prepare` may touch the budgets before the first arrival."""
    from tests.virtual_time import run_virtual

    return run_virtual(_run(scenario, prepare))


# --- the judge ---------------------------------------------------------------------------------------------------


@dataclass
class OracleResult:
    #: record index → the time the oracle started that lookup (None: it could not start it in time)
    start: dict[int, float | None]
    #: record index → seconds to spare between that start and the last moment it could start
    slack: dict[int, float]

    def served(self) -> int:
        return sum(1 for s in self.start.values() if s is not None)


# event kinds at one instant: plan changes and refunds before charges (Shopify refunds a query's points as it ends)
_PLAN, _REFUND, _CHARGE = 0, 1, 2

_State = tuple[float, float, float, float]  # size, restore rate, available, as of


def _refill(state: _State, at: float) -> _State:
    size, rate, available, now = state
    if at > now:
        if available < size:
            available = min(size, available + (at - now) * rate)
        now = at
    return size, rate, available, now


def _step(state: _State, event: tuple[float, int, Any]) -> _State:
    size, rate, available, now = _refill(state, event[0])
    kind, what = event[1], event[2]
    if kind == _PLAN:
        size, rate = what
        available = min(available, size)
    elif kind == _REFUND:
        available = min(size, available + max(0.0, what))
    else:
        available -= what  # a replayed start is charged whatever the oracle left (below zero: debt)
    return size, rate, available, now


def _greedy(
    state: _State, events: list[tuple[float, int, Any]], lookups: Sequence[QueryRecord], t0: float, latency: float,
    stop_after: int | None = None,
) -> OracleResult:
    """Greedy FIFO of `lookups` from `state`, with `events` (sorted, all later than or at the state's time) replayed.
    `stop_after`: the record index after whose decision to stop."""
    events = list(events)
    start: dict[int, float | None] = {}
    slack: dict[int, float] = {}
    head = 0  # events before this index are applied to `state`
    last_start = state[3]
    for rec in lookups:
        arrived = t0 + rec.arrival.at
        latest = arrived + rec.arrival.deadline - MIN_START_SECONDS
        requested = rec.arrival.requested
        # Shopify tells the balance rounded down to a whole point, so any scheduler that goes by what it tells may
        # be up to a point short: the oracle starts a lookup when the bucket holds its cost and that point
        need = requested + TOLERANCE_POINTS
        earliest = max(arrived, last_start)
        # search, without committing, for the first moment ≥ earliest the bucket holds `need`
        probe, i = state, head
        while i < len(events) and events[i][0] <= earliest:
            probe = _step(probe, events[i])
            i += 1
        probe = _refill(probe, earliest)
        found: float | None = None
        while probe[3] <= latest:
            p_size, p_rate, p_avail, p_now = probe
            if p_avail >= need:
                found = p_now
                break
            horizon = events[i][0] if i < len(events) else float("inf")
            if need <= p_size and p_rate > 0:
                t_need = p_now + (need - p_avail) / p_rate
                if t_need <= horizon:
                    found = t_need
                    break
            if i == len(events):
                break
            probe = _step(probe, events[i])
            i += 1
        if found is not None and found > latest:
            found = None
        start[rec.index] = found
        if found is not None:
            slack[rec.index] = latest - found
            # commit: apply every event up to the start, charge, and schedule the refund
            while head < len(events) and events[head][0] <= found:
                state = _step(state, events[head])
                head += 1
            s_size, s_rate, s_avail, s_now = _refill(state, found)
            state = (s_size, s_rate, s_avail - requested, s_now)
            refund = (found + latency, _REFUND, requested - rec.arrival.actual)
            pos = bisect.bisect_right(events, refund[:2], lo=head, key=lambda e: (e[0], e[1]))
            events.insert(pos, refund)
            last_start = found
        if rec.index == stop_after:
            break
    return OracleResult(start, slack)


def _events(
    result: RunResult, replaced: set[int], since: float = float("-inf"), until: float = float("inf"),
    snapshot: int | None = None,
) -> list[tuple[float, int, Any]]:
    """Every start Shopify saw (charge, and refund a latency later) but those of `replaced`, and the plan changes;
    only what happens within [since, until]. `snapshot`: the sequence number of a look at the bucket at `since`:
    what Shopify charged or refunded at that instant before the look is in it already, and left out here."""
    sc = result.scenario
    events: list[tuple[float, int, Any]] = []
    starts = result.starts  # in the order Shopify saw them: by time
    lo = bisect.bisect_left(starts, since - sc.latency - 1e-9, key=lambda s: s.at)
    hi = bisect.bisect_right(starts, until, key=lambda s: s.at)
    for s in starts[lo:hi]:
        if snapshot is None:
            charged_after, refunded_after = s.at >= since, s.at + sc.latency >= since
        else:
            charged_after = s.charged_seq > snapshot
            refunded_after = s.refunded_seq is None or s.refunded_seq > snapshot
        if charged_after and s.record not in replaced:
            events.append((s.at, _CHARGE, s.requested))
        if refunded_after and (not charged_after or s.record not in replaced):
            events.append((s.at + sc.latency, _REFUND, s.requested - s.actual))
    for c in sc.plan_changes:
        if since <= result.t0 + c.at <= until:
            events.append((result.t0 + c.at, _PLAN, (c.size, c.restore_rate)))
    events.sort(key=lambda e: (e[0], e[1]))
    return events


def oracle(result: RunResult, replica: int | None = 0) -> OracleResult:
    """Greedy FIFO over all of `replica`'s lookups (None: all our replicas' as one queue) from the start of the run
    (the global oracle)."""
    sc = result.scenario
    ours = range(sc.replicas) if replica is None else (replica,)
    # in the order they reached the budget (timers due at one instant run in no promised order)
    lookups = sorted((r for r in result.records if r.arrival.replica in ours and r.arrival.lookup),
                     key=lambda r: r.arrived_seq)
    state = (sc.size, sc.restore_rate, sc.size, result.t0)
    return _greedy(state, _events(result, {r.index for r in lookups}), lookups, result.t0, sc.latency)


def local_oracle(result: RunResult, rec: QueryRecord, lookups_by_arrival: list[QueryRecord] | None = None) -> OracleResult:
    """Could `rec` have started in time, from the true bucket as it was when `rec` arrived, behind the lookups of its
    replica that were waiting then (kept in their order), with everything else Shopify started replayed as it was?

    `lookups_by_arrival`: the replica's lookups sorted by arrival (computed when not given)."""
    sc = result.scenario
    if lookups_by_arrival is None:
        lookups_by_arrival = sorted((r for r in result.records if r.arrival.replica == rec.arrival.replica
                                     and r.arrival.lookup), key=lambda r: r.arrived_seq)
    at = bisect.bisect_left(lookups_by_arrival, rec.arrived_seq, key=lambda r: r.arrived_seq)
    oldest = rec.arrived_at - max(r.arrival.deadline for r in lookups_by_arrival)
    first = bisect.bisect_left(lookups_by_arrival, oldest, lo=0, hi=at, key=lambda r: r.arrived_at)
    ahead = [
        r for r in lookups_by_arrival[first:at]
        if not (r.started_seq is not None and r.started_seq < rec.arrived_seq)
        and not (r.outcome == "refused" and r.ended_seq < rec.arrived_seq)
    ]
    lookups = [*ahead, rec]
    size, rate, available = rec.truth
    events = _events(result, {r.index for r in lookups}, since=rec.arrived_at,
                     until=rec.arrived_at + rec.arrival.deadline + sc.latency, snapshot=rec.arrived_seq)
    return _greedy((size, rate, available, rec.arrived_at), events, lookups, result.t0, sc.latency, stop_after=rec.index)


@dataclass
class Verdict:
    wrongly_refused: list[QueryRecord]
    background_delays: list[tuple[QueryRecord, QueryRecord]]  # (lookup, background read admitted while it waited)
    throttled: int
    requests: int
    oracle_served: int
    answered: int


#: Shopify reports whole points (rounded down) and the budget wakes to the millisecond: a refusal counts as wrong only
#: when the oracle had more than this many points (as seconds of restore) to spare.
TOLERANCE_POINTS = 1.0


def judge(result: RunResult, replicas: Sequence[int] | None = None) -> Verdict:
    """Every check on one run, for our replicas (all of them by default; each judged against its own oracle)."""
    ours = list(range(result.scenario.replicas)) if replicas is None else list(replicas)
    wrong: list[QueryRecord] = []
    served = 0
    for replica in ours:
        served += oracle(result, replica).served()
        by_arrival = sorted((r for r in result.of(replica) if r.arrival.lookup), key=lambda r: r.arrived_seq)
        for rec in by_arrival:
            if rec.outcome != "refused":
                continue
            o = local_oracle(result, rec, by_arrival)
            begun = o.start.get(rec.index)
            if begun is None:
                continue
            rate = _rate_at(result.scenario, begun - result.t0)
            if o.slack[rec.index] <= TOLERANCE_POINTS / rate:
                continue
            if any(rec.ended_at <= result.t0 + c.at <= begun for c in result.scenario.plan_changes):
                continue  # the oracle knows the plan will change; the budget, deciding before, could not
            # The oracle re-schedules this lookup and those waiting ahead of it. Near a deadline the real run may
            # serve one of them where the oracle serves another (which one fits is a matter of their actual costs):
            # the refusal is wrong only when the oracle serves more of them than the real run did.
            group = [i for i in o.start if i != rec.index]
            real = sum(result.records[i].started_seq is not None for i in group)
            if sum(o.start[i] is not None for i in group) + 1 > real:
                wrong.append(rec)
    # a background read booked (by any of our replicas: they share the bucket) while a lookup waited for points
    ours_set = set(ours)
    background = sorted(
        (seq, rec) for rec in result.records if rec.arrival.replica in ours_set and not rec.arrival.lookup
        for seq, _ in rec.booked
    )
    keys = [seq for seq, _ in background]
    delays: list[tuple[QueryRecord, QueryRecord]] = []
    for rec in result.records:
        if rec.arrival.replica not in ours_set or not rec.arrival.lookup:
            continue
        for lo, hi in rec.queued + rec.paused:
            for k in range(bisect.bisect_right(keys, lo), bisect.bisect_left(keys, hi)):
                delays.append((rec, background[k][1]))
    return Verdict(
        wrongly_refused=wrong,
        background_delays=delays,
        throttled=result.throttled_of(ours_set),
        requests=sum(result.requests[r] for r in ours),
        oracle_served=served,
        answered=sum(1 for r in result.records if r.arrival.replica in ours_set and r.arrival.lookup
                     and r.outcome == "answered"),
    )


def _rate_at(scenario: Scenario, offset: float) -> float:
    rate = scenario.restore_rate
    for c in sorted(scenario.plan_changes, key=lambda c: c.at):
        if c.at <= offset:
            rate = c.restore_rate
    return rate
