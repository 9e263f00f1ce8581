"""The push store on Redis, for several gateway replicas behind a load balancer (redis.asyncio, redis-py ≥ 5).

Every replica opens a `RedisPushStore` on the same Redis and the same `storage.redis_prefix`; they then share the
webhook dedupe, the stored events, the outbox and its leases, the order/fulfillment states, the tracking index, the
reconciliation watermarks and the install flags. Every state change that must be atomic runs in a Lua script (one
per operation, in `redis_lua/`; or in one MULTI/EXEC of scripts, for `commit`), so two replicas can never both claim
one event or one push.

Key layout (P = the prefix; shop keys are `[A-Za-z0-9_-]+`, checked by the settings):

    P:seq:ev, P:seq:push              counters: event seq, push id
    P:ev:<seq>                        hash: one stored webhook (shop, eid, topic, ..., body, status, error, oid, cid)
    P:evid:<event id>                 hash: shop → seq (the dedupe of X-Shopify-Event-Id, shared by every replica)
    P:ev:ready                        zset: pending events not leased, score = seq (claimed oldest first)
    P:ev:leased                       zset: pending events being processed, score = lease expiry
    P:push:<id>                       hash: one outbox row
    P:push:<id>:att                   list: its delivery attempts (JSON, newest MAX_ATTEMPTS_KEPT), deleted with it
    P:due                             zset: the head (oldest pending push) of each order, score = max(due, lease expiry)
    P:pst:<status>                    zset: push ids by status (dead letters, backlog, listings), score = id
    P:checks                          zset: open unpaid checks "<shop>\\n<order id>", score = max(due, lease expiry)
    P:installed                       hash: shop → 0/1
    P:s:<shop>:ev / :push             zsets: every event seq / push id of the shop (purges, listings)
    P:s:<shop>:pk                     hash: dedupe key → push id (enqueueing is idempotent)
    P:s:<shop>:ord:<oid>              hash: order state;  P:s:<shop>:ful:<fid>: fulfillment state
    P:s:<shop>:trk:<tracking number>  hash: the tracking index (oid, name, cid)
    P:s:<shop>:chk:<oid>              hash: the unpaid check of an order (kept when done: once per order)
    P:s:<shop>:wm                     the reconciliation watermark
    P:s:<shop>:hold                   hash: the shop's push-read hold (until, failures), while its reads fail
    P:s:<shop>:o:<oid>:q              zset: the order's pending pushes by id (only the lowest is in P:due: ordering)
    P:s:<shop>:o:<oid>:ev/:push/:ful/:trk   what is stored about the order (compliance purges)
    P:s:<shop>:c:<cid>:o / :ev        sets: the customer's order ids / customer-only events (compliance purges)
    P:held:<replica id>               set: what the replica's starts hold ("e:<seq>", "p:<id>", "c:<shop>\\n<oid>")
    P:replicas                        hash: replica id → "<nonce>\\t<started>\\t<last heartbeat>"

Leases (docs/replicas.md): a claim writes the claiming replica's owner token in the row ('own', with 'lsince') and
re-scores the row in its queue (P:ev:leased, P:due, P:checks) to its lease expiry; the replica's heartbeat pushes the
expiry on while the work runs. A replica that dies loses nothing: its rows become claimable again, by any replica,
when their leases expire (one lease after its last heartbeat), and a replica that restarts under the same replica id
releases at once what its earlier start held (P:held). Settling is fenced: mark_delivered, schedule_retry and
dead_letter check the owner in their script, and `commit` WATCHes the events and checks it finishes, so a replica
that lost a lease writes nothing for that work. Per-order ordering: only an order's head is in P:due; delivering,
dead-lettering or dropping it puts the next one there.

Wake-ups travel over Redis pub/sub: `P:work` (new work, so idle workers on other replicas wake at once). The
lookup-cache invalidations have a channel of their own, `P:inval`, kept by gateway.cache_fanout.

Times are the replicas' `time.time()` (passed to the scripts), so replica clocks should be NTP-synchronised; a skew
only shifts when a lease or a retry falls due.

Durability: a webhook is acknowledged once Redis has applied the write. Whether it survives a Redis restart depends
on the server's persistence: run Redis with `appendonly yes` and `appendfsync always` (or `everysec`, accepting up to
a second of acknowledged webhooks lost on a power cut), and a replica (Sentinel) for failover. The Redis on the
development machines keeps nothing on disk (no AOF/RDB), so durability across a Redis restart is not tested here.
The scripts build key names themselves, so this backend needs a single Redis (or Sentinel), not Redis Cluster.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.resources
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway import jsoncodec
from gateway.push.records import (
    EventOutcome,
    EventStatus,
    FulfillmentState,
    LeaseHolder,
    LeaseKind,
    OrderState,
    Push,
    PushAttempt,
    PushStatus,
    RecordResult,
    ReplicaStatus,
    ShopHold,
    StoredCounts,
    StoredEvent,
    UnpaidCheck,
    WebhookMeta,
)
from gateway.push.replica import ReplicaIdentity
from gateway.push.store_base import LeaseIds, PushStoreBase, Renewal, Taken
from gateway.redis_pubsub import Subscription

log = logging.getLogger(__name__)


P = ParamSpec("P")
R = TypeVar("R")


def _shielded(method: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Run the store operation in its own task and shield it from the caller's cancellation.

    redis-py (8.1 here; see redis/redis-py#2028 and #2551) sometimes swallows a cancellation that arrives while a
    command is in flight; a worker cancelled at shutdown then runs on and the app never finishes stopping. Shielded,
    the caller gets its CancelledError at once and the round trip completes (or fails) on its own, which is harmless:
    every operation is one atomic script or MULTI/EXEC, or a read."""

    @functools.wraps(method)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        task = asyncio.ensure_future(method(*args, **kwargs))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(_retrieve)
            raise

    return run


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("push store: an operation abandoned by its caller failed: %r", task.exception())


#: How long a replica gathers its work notifications into one message to the other replicas (their wake-up latency
#: for work another replica made; a replica's own workers are woken at once).
WAKE_COALESCE_SECONDS = 0.05


class RedisUnavailable(OSError):
    """Redis cannot be reached at open(): an OSError, like any other refused connection."""


# --- Lua -----------------------------------------------------------------------------------------------------------

_PUSH_FIELDS = ("shop", "dkey", "ikey", "oid", "topic", "body", "status", "created", "due", "attempts", "err",
                "delivered", "fid")  # fmt: skip
_LUA_PUSH_FIELDS = ", ".join(f"'{f}'" for f in _PUSH_FIELDS)
_EVENT_FIELDS = ("shop", "eid", "topic", "wid", "trig", "apiv", "body", "recv", "status", "error")
_LUA_EVENT_FIELDS = ", ".join(f"'{f}'" for f in _EVENT_FIELDS)

# One script per operation in redis_lua/<name>.lua, each run after redis_lua/prelude.lua (its shared helpers).
# The field lists the claim scripts read are spliced in from the tuples above, so script and reader name the same fields.
_LUA_DIR = importlib.resources.files("gateway.push") / "redis_lua"
_SCRIPT_NAMES = ("record_event", "claim_events", "requeue_event", "upsert_order", "upsert_fulfillment", "enqueue_push",
                 "add_tracking", "schedule_check", "done_check", "finish_event", "claim_checks", "claim_pushes",
                 "mark_delivered", "schedule_retry", "dead_letter", "record_attempt", "retry_push", "drop_push",
                 "customer_data", "renew_leases", "defer_events", "reclaim_leases", "leases_held",
                 "lease_owners")  # fmt: skip


def _lua(name: str) -> str:
    return (_LUA_DIR / f"{name}.lua").read_text(encoding="utf-8")


def _load_lua() -> dict[str, str]:
    """Each operation's whole script (prelude + body), by name."""
    prelude = _lua("prelude")
    return {
        name: prelude
        + _lua(name).replace("$EVENT_FIELDS", _LUA_EVENT_FIELDS).replace("$PUSH_FIELDS", _LUA_PUSH_FIELDS)
        for name in _SCRIPT_NAMES
    }


_SCRIPTS = _load_lua()


def _s(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def _ints(values: Any) -> list[int]:
    """Members of a sorted set (redis-py types them loosely) as ints."""
    return [int(v) for v in values]


def _opt_int(value: bytes | str | None) -> int | None:
    return int(value) if value not in (None, b"", "") else None  # type: ignore[arg-type]


def _num(value: float) -> str:
    return repr(float(value))


def _opt(value: object) -> str:
    return "" if value is None else str(value)


def _commit_calls(o: EventOutcome, now: str) -> list[tuple[str, tuple[Any, ...]]]:
    """The scripts (name, arguments) that write what one outcome produced, in `commit`'s order."""
    calls: list[tuple[str, tuple[Any, ...]]] = []
    for s in o.order_states:
        calls.append(
            (
                "upsert_order",
                (
                    s.shop_key,
                    s.order_id,
                    s.order_name,
                    _num(s.updated_at),
                    s.financial_status,
                    int(s.cancelled),
                    _opt(s.customer_id),
                    int(s.receipt_decided),
                ),
            )
        )
    for f in o.fulfillment_states:
        calls.append(
            (
                "upsert_fulfillment",
                (
                    f.shop_key,
                    f.fulfillment_id,
                    f.order_id,
                    _num(f.updated_at),
                    f.status,
                    f.name,
                    f.tracking_number,
                    f.tracking_url,
                ),
            )
        )
    for p in o.pushes:
        calls.append(
            (
                "enqueue_push",
                (
                    p.shop_key,
                    p.dedupe_key,
                    p.idempotency_key,
                    p.order_id,
                    p.topic,
                    p.body,
                    str(p.status),
                    now,
                    _num(p.due_at),
                    p.reason,
                    _opt(p.fulfillment_id),
                    _opt(p.customer_id),
                ),
            )
        )
    for t in o.tracking:
        calls.append(
            ("add_tracking", (t.shop_key, t.tracking_number, t.order_id, t.order_name, _opt(t.customer_id)))
        )
    for u in o.unpaid_checks:
        calls.append(("schedule_check", (u.shop_key, u.order_id, _num(u.due_at), _opt(u.customer_id))))
    for shop_key, order_id in o.done_checks:
        calls.append(("done_check", (shop_key, order_id)))
    if o.event_seq is not None:
        calls.append(("finish_event", (o.event_seq, o.event_error, _opt(o.order_id), _opt(o.customer_id))))
    return calls


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _push(row: Sequence[Any]) -> Push:
    (pid, shop, dkey, ikey, oid, topic, body, status, created, due, attempts, err, delivered, fid) = row
    return Push(
        id=int(pid),
        shop_key=_s(shop),
        dedupe_key=_s(dkey),
        idempotency_key=_s(ikey),
        order_id=int(oid),
        topic=_s(topic),
        body=bytes(body),
        status=PushStatus(_s(status)),
        created_at=float(created),
        due_at=float(due),
        attempts=int(attempts),
        last_error=_s(err),
        delivered_at=float(delivered) if delivered else None,
        fulfillment_id=_opt_int(fid),
    )


def _event(row: Sequence[Any]) -> StoredEvent:
    (seq, shop, eid, topic, wid, trig, apiv, body, recv, status, error) = row
    return StoredEvent(
        seq=int(seq),
        shop_key=_s(shop),
        event_id=_s(eid),
        meta=WebhookMeta(topic=_s(topic), webhook_id=_s(wid), triggered_at=_s(trig), api_version=_s(apiv)),
        body=bytes(body),
        received_at=float(recv),
        status=EventStatus(_s(status)),
        error=_s(error),
    )


class RedisPushStore(PushStoreBase):
    """`PushStore` on Redis, shared by every replica that uses the same URL and prefix: `PushStoreBase`'s primitives
    as Lua scripts and pipelines."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "gw",
        max_connections: int = 64,
        identity: ReplicaIdentity | None = None,
        reclaim: bool = False,
    ) -> None:
        super().__init__(identity)
        self.url = url
        self.prefix = prefix
        self.max_connections = max_connections
        #: The serving gateway: at open, take back at once what earlier starts of this replica id held.
        self.reclaim = reclaim
        self._other_starts: set[str] = set()
        self._redis: aioredis.Redis | None = None
        self._work_subscription: Subscription | None = None
        self._work_channel = f"{prefix}:work"
        self._publish_pending = False
        self._background: set[asyncio.Task[Any]] = set()
        self._batch: list[tuple[str, tuple[Any, ...], asyncio.Future[Any]]] = []
        self._batch_in_flight = False
        self._scripts: dict[str, AsyncScript] = {}

    # lifecycle ----------------------------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._redis is not None:
            return
        # A blocking pool: when every connection is busy (a burst of webhooks, 64 deliveries in flight) a command
        # waits for one instead of failing with MaxConnectionsError. One connection stays with the pub/sub listener.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url, max_connections=self.max_connections, timeout=30, health_check_interval=30
        )
        client = aioredis.Redis(connection_pool=pool, decode_responses=False)
        try:
            await client.ping()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            await client.aclose()
            raise RedisUnavailable(f"push store: cannot reach Redis ({type(exc).__name__}: {exc})") from exc
        self._redis = client
        for name, body in _SCRIPTS.items():
            self._scripts[name] = client.register_script(body)
        await self._load_scripts()
        if self.reclaim:
            await self._reclaim_leases()
        self._work_subscription = await Subscription.open(client, self._work_channel, self._on_work, "push store")

    async def close(self) -> None:
        if self._redis is None:
            return
        if self._background:  # pending publishes
            await asyncio.gather(*self._background, return_exceptions=True)
        client, self._redis = self._redis, None
        if self._work_subscription is not None:
            await self._work_subscription.close()
            self._work_subscription = None
        await client.aclose()

    @_shielded
    async def ping(self) -> str | None:
        if self._redis is None:
            return "push store not open"
        try:
            await asyncio.wait_for(self._redis.ping(), 2.0)
        except Exception as exc:  # readiness reports, never raises
            return f"push store: Redis {type(exc).__name__}"
        return None

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("push store is not open")
        return self._redis

    def _k(self, *parts: object) -> str:
        return ":".join((self.prefix, *map(str, parts)))

    def _shop(self, shop_key: str, *parts: object) -> str:
        return self._k("s", shop_key, *parts)

    async def _run(self, name: str, *args: Any) -> Any:
        return await self._scripts[name](args=[self.prefix, *args], client=self.redis)

    def _run_batched(self, name: str, *args: Any) -> asyncio.Future[Any]:
        """Auto-pipelining for the hot single-row scripts (intake, delivery outcomes), like SQLite's group commit:
        calls queue up while the previous pipeline is in flight and then go to Redis together, one round trip on
        one connection. Each script stays atomic; the pipeline is not a transaction. The send runs in its own
        task, so a caller's cancellation never interrupts a round trip (see `_shielded`)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._batch.append((name, args, future))
        if len(self._batch) == 1 and not self._batch_in_flight:
            asyncio.get_running_loop().call_soon(self._flush_batch)
        return future

    def _flush_batch(self) -> None:
        if self._batch_in_flight or not self._batch:
            return
        batch, self._batch = self._batch, []
        self._batch_in_flight = True
        self._spawn(self._send_batch(batch))

    async def _send_batch(self, batch: list[tuple[str, tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        try:
            results = await self._pipeline_scripts([(name, args) for name, args, _ in batch])
        except Exception as exc:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        finally:
            self._batch_in_flight = False
            if self._batch:
                self._flush_batch()
        for (_, _, future), result in zip(batch, results, strict=True):
            if future.done():  # the caller went away
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _pipeline_scripts(self, calls: list[tuple[str, tuple[Any, ...]]]) -> list[Any]:
        """EVALSHA each call in one non-transactional pipeline. Scripts are loaded at open(); if Redis lost them
        (restart, SCRIPT FLUSH) the calls that got NOSCRIPT did not run, so they are retried once after a reload."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for name, args in calls:
                pipe.evalsha(self._scripts[name].sha, 0, self.prefix, *args)
            results: list[Any] = await pipe.execute(raise_on_error=False)
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:
            await self._load_scripts()
            retried = await self._pipeline_scripts([calls[i] for i in missing])
            for i, result in zip(missing, retried, strict=True):
                results[i] = result
        return results

    async def _load_scripts(self) -> None:
        for script in self._scripts.values():
            await self.redis.script_load(script.script)

    # notifications (local and across replicas) ---------------------------------------------------------------------

    def _wake_local(self) -> None:
        super()._notify()

    def _notify(self) -> None:
        """Wake local workers now (the base's wake-up), and other replicas' with one PUBLISH per burst."""
        self._wake_local()
        if self._publish_pending or self._redis is None:
            return
        self._publish_pending = True
        self._spawn(self._publish_work())

    async def _publish_work(self) -> None:
        # One message per burst: the commits of the next WAKE_COALESCE_SECONDS share it. Each message makes every
        # other replica's workers claim (mostly finding nothing: each replica works off what it accepted itself),
        # so one per commit would cost the other replicas as much CPU as the work.
        await asyncio.sleep(WAKE_COALESCE_SECONDS)
        self._publish_pending = False
        try:
            await self.redis.publish(self._work_channel, self.identity.token)
        except (RedisError, RuntimeError) as exc:  # other replicas still poll: a lost wake-up only delays them
            log.warning("push store: work notification not published (%s)", type(exc).__name__)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _on_work(self, data: bytes) -> None:
        if _s(data) != self.identity.token:  # another replica's work: its own wake-up was local already
            self._wake_local()

    # intake -------------------------------------------------------------------------------------------------------

    async def _record_event(
        self, shop_key: str, event_id: str, meta: WebhookMeta, body: bytes, received_at: float
    ) -> RecordResult:
        seq = await self._run_batched(
            "record_event",
            shop_key,
            event_id,
            meta.topic,
            meta.webhook_id,
            meta.triggered_at,
            meta.api_version,
            body,
            _num(received_at),
        )
        return "duplicate" if int(seq) == 0 else "new"

    @_shielded
    async def _claim_events(
        self, limit: int, now: float, lease_until: float, owner: str
    ) -> tuple[list[StoredEvent], Taken]:
        rows, taken = await self._run("claim_events", _num(now), _num(lease_until), limit, owner)
        return [_event(r) for r in rows], _taken(taken)

    @_shielded
    async def _defer_events(self, seqs: Sequence[int], until: float, owner: str) -> None:
        # still in P:ev:leased (so no replica claims them), until `until`; claim_events moves them back to ready then
        await self._run("defer_events", _num(until), owner, *seqs)

    @_shielded
    async def get_event(self, shop_key: str | None, event_id: str) -> StoredEvent | None:
        index: dict[Any, Any] = await self.redis.hgetall(self._k("evid", event_id))
        if shop_key is not None:
            seqs = [index[shop_key.encode()]] if shop_key.encode() in index else []
        else:
            seqs = sorted(index.values(), key=int)[:1]
        if not seqs:
            return None
        seq = int(seqs[0])
        row = await self.redis.hmget(self._k("ev", seq), list(_EVENT_FIELDS))
        return _event([seq, *row]) if row[0] is not None else None

    @_shielded
    async def _requeue_event(self, seq: int) -> bool:
        return bool(await self._run("requeue_event", seq))

    # rules --------------------------------------------------------------------------------------------------------

    @_shielded
    async def _load_order_states(self, shop_key: str, ids: Sequence[int]) -> dict[int, OrderState]:
        fields = ["name", "updated", "fin", "cancelled", "cid", "decided", "receipt"]
        async with self.redis.pipeline(transaction=False) as pipe:
            for oid in ids:
                pipe.hmget(self._shop(shop_key, "ord", oid), fields)
            rows = await pipe.execute()
        out: dict[int, OrderState] = {}
        for oid, (name, updated, fin, cancelled, cid, decided, receipt) in zip(ids, rows, strict=True):
            if updated is None:
                continue
            out[oid] = OrderState(
                shop_key=shop_key,
                order_id=oid,
                order_name=_s(name),
                updated_at=float(updated),
                financial_status=_s(fin),
                cancelled=cancelled == b"1",
                customer_id=_opt_int(cid),
                # `receipt`: how rows written before said it (upsert_order.lua removes it when it rewrites a row)
                receipt_decided=decided == b"1" or bytes(receipt or b"").startswith(b"receipt:"),
            )
        return out

    @_shielded
    async def _load_fulfillment_states(self, shop_key: str, ids: Sequence[int]) -> dict[int, FulfillmentState]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for fid in ids:
                pipe.hmget(self._shop(shop_key, "ful", fid), ["oid", "updated", "status", "name", "tn", "turl"])
            rows = await pipe.execute()
        out: dict[int, FulfillmentState] = {}
        for fid, (oid, updated, status, name, tn, turl) in zip(ids, rows, strict=True):
            if updated is None:
                continue
            out[fid] = FulfillmentState(shop_key, fid, int(oid), float(updated), _s(status), _s(name), _s(tn), _s(turl))
        return out

    @_shielded
    async def _commit_outcomes(
        self, outcomes: Sequence[EventOutcome], now: float, owner: str
    ) -> tuple[bool, list[int]]:
        """One MULTI/EXEC of small scripts: Redis applies all of it or (connection lost before EXEC) none of it.

        Fencing: the stored events and unpaid checks the outcomes finish are WATCHed, their owners read, and the
        outcomes of rows another owner holds left out; a claim that changes an owner before EXEC makes Redis refuse
        the transaction, and it is built again from fresh owners. (Heartbeats do not write those rows' hashes, so
        they never cause a retry.)"""
        fenced_rows = {i: _fenced_keys(self, o) for i, o in enumerate(outcomes)}
        watched = [key for keys in fenced_rows.values() for key in keys]
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                fenced: list[int] = []
                if watched:
                    await pipe.watch(*watched)
                    owners = await self._owners(watched)
                    fenced = [i for i, keys in fenced_rows.items() if any(owners[k] not in (None, owner) for k in keys)]
                calls: list[tuple[str, tuple[Any, ...]]] = []
                for i, o in enumerate(outcomes):
                    if i not in fenced:
                        calls += _commit_calls(o, _num(now))
                if not calls:
                    await pipe.reset()
                    return False, fenced
                pipe.multi()
                for name, args in calls:
                    await self._scripts[name](args=[self.prefix, *args], client=pipe)
                try:
                    results = await pipe.execute()
                except WatchError:
                    continue  # an owner changed meanwhile: decide the fencing again
                wake = any(int(r) == 1 for (name, _), r in zip(calls, results, strict=True) if name in _WAKING)
                return wake, fenced

    async def _owners(self, keys: Sequence[str]) -> dict[str, str | None]:
        """The lease owner of each row (None when the row is gone: a purge took it, nobody holds it)."""
        owners = await self._run("lease_owners", *keys)
        return {key: None if own is None else _s(own) for key, own in zip(keys, owners, strict=True)}

    @_shielded
    async def _claim_unpaid_checks(
        self, limit: int, now: float, lease_until: float, owner: str
    ) -> tuple[list[UnpaidCheck], Taken]:
        rows, taken = await self._run("claim_checks", _num(now), _num(lease_until), limit, owner)
        checks = [UnpaidCheck(_s(shop), int(oid), float(due), _opt_int(cid)) for shop, oid, due, cid in rows]
        return checks, _taken(taken)

    # delivery -----------------------------------------------------------------------------------------------------

    @_shielded
    async def _claim_pushes(self, limit: int, now: float, lease_until: float, owner: str) -> tuple[list[Push], Taken]:
        rows, taken = await self._run("claim_pushes", _num(now), _num(lease_until), limit, owner)
        return [_push(r) for r in rows], _taken(taken)

    @_shielded
    async def next_due(self) -> float | None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrange(self._k("due"), 0, 0, withscores=True)
            pipe.zrange(self._k("checks"), 0, 0, withscores=True)
            pushes, checks = await pipe.execute()
        values = [score for _, score in (*pushes, *checks)]
        return min(values) if values else None

    @_shielded
    async def backlog(self) -> dict[str, int]:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zcard(self._k("ev", "ready"))
            pipe.zcard(self._k("ev", "leased"))
            pipe.zcard(self._k("pst", PushStatus.PENDING))
            pipe.zcard(self._k("pst", PushStatus.DEAD))
            pipe.zcard(self._k("checks"))
            ready, leased, pending, dead, checks = await pipe.execute()
        return {"events": ready + leased, "pushes": pending, "dead": dead, "checks": checks}

    async def _mark_delivered(self, push_id: int, now: float, owner: str) -> bool:
        return int(await self._run_batched("mark_delivered", push_id, _num(now), owner)) == 1

    async def _schedule_retry(self, push_id: int, due_at: float, error: str, owner: str) -> bool:
        return int(await self._run_batched("schedule_retry", push_id, _num(due_at), error, owner)) == 1

    async def _dead_letter(self, push_id: int, reason: str, owner: str) -> bool:
        return int(await self._run_batched("dead_letter", push_id, reason, owner)) == 1

    # leases -------------------------------------------------------------------------------------------------------

    async def _renew_leases(
        self, held: LeaseIds, now: float, lease_until: float, owner: str, *, beat: bool = False
    ) -> Renewal:
        members = [f"{_MEMBER[kind]}:{lease_id}" for kind, ids in held.items() for lease_id in ids]
        entry = self._replica_entry(now) if beat else ""
        if not members and not entry:
            return Renewal({}, {})
        taken, gone, other = await self._run_batched("renew_leases", _num(lease_until), owner, entry, *members)
        if other:
            self._warn_shared_id(_s(other))
        return Renewal(_by_kind(taken), _by_kind(gone))

    def _warn_shared_id(self, other: str) -> None:
        """Another start of this replica id wrote the heartbeat since this one did: unless that start is dead (then
        this process is the stale one: paused past its leases), two live processes share the id and take each other's
        work at every restart. Said once per other start."""
        nonce = other.split("\t", 1)[0]
        if nonce in self._other_starts:
            return
        self._other_starts.add(nonce)
        log.error(
            "replica id %s: another process (start %s) beats under the same id as this one (start %s); give every"
            " gateway replica its own GATEWAY_REPLICA_ID",
            self.identity.replica_id, nonce, self.identity.nonce,
        )  # fmt: skip

    def _replica_entry(self, beat_at: float) -> str:
        return f"{self.identity.nonce}\t{_num(self.identity.started_at)}\t{_num(beat_at)}"

    async def _reclaim_leases(self) -> None:
        found = await self._run("reclaim_leases", self.identity.token, self._replica_entry(self.identity.started_at))
        by_kind: dict[LeaseKind, Taken] = {}
        for i in range(0, len(found), 3):
            kind, owner, count = _KIND[_s(found[i])], _s(found[i + 1]), int(found[i + 2])
            by_kind.setdefault(kind, {})[owner] = count
        for kind, taken in by_kind.items():
            self._report_taken(kind, taken, "restart")

    @_shielded
    async def push_holders(self, push_ids: Sequence[int]) -> dict[int, LeaseHolder]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for pid in push_ids:
                pipe.hmget(self._k("push", pid), ["own", "lsince", "lease", "status"])
            rows = await pipe.execute()
        return {
            pid: LeaseHolder(_s(own), float(since or 0), float(lease or 0))
            for pid, (own, since, lease, status) in zip(push_ids, rows, strict=True)
            if own and status == b"pending"
        }

    @_shielded
    async def replicas(self) -> list[ReplicaStatus]:
        out = []
        for rid, entry, events, pushes, checks, oldest in await self._run("leases_held"):
            nonce, started, beat = _s(entry).split("\t")
            held = {LeaseKind.EVENT: int(events), LeaseKind.PUSH: int(pushes), LeaseKind.CHECK: int(checks)}
            since = float(oldest) if oldest else None
            out.append(ReplicaStatus(_s(rid), nonce, float(started), float(beat), held, since))
        return sorted(out, key=lambda r: r.replica_id)

    async def _record_attempt(self, push_id: int, attempt: PushAttempt, keep: int) -> None:
        entry = jsoncodec.dumps(
            {"at": attempt.at, "status": attempt.http_status, "answer": attempt.answer, "outcome": attempt.outcome}
        )
        await self._run_batched("record_attempt", push_id, entry, keep)

    @_shielded
    async def push_attempts(self, push_id: int) -> list[PushAttempt]:
        out = []
        for raw in await self.redis.lrange(self._k("push", push_id, "att"), 0, -1):
            d = jsoncodec.loads(raw)
            out.append(PushAttempt(float(d["at"]), d.get("status"), str(d.get("answer", "")), str(d["outcome"])))
        return out

    # operator CLI -------------------------------------------------------------------------------------------------

    async def _fetch_pushes(self, ids: Sequence[int]) -> list[Push]:
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for pid in ids:
                pipe.hmget(self._k("push", pid), list(_PUSH_FIELDS))
            rows = await pipe.execute()
        return [_push([pid, *row]) for pid, row in zip(ids, rows, strict=True) if row[0] is not None]

    @_shielded
    async def list_pushes(
        self, shop_key: str | None = None, statuses: Sequence[PushStatus] = (), limit: int = 50
    ) -> list[Push]:
        wanted = {PushStatus(s) for s in statuses} or set(PushStatus)
        if shop_key is None:
            # Newest first across the status sets: the newest `limit` of each, merged.
            ids: set[int] = set()
            for status in wanted:
                ids.update(_ints(await self.redis.zrevrange(self._k("pst", status), 0, limit - 1)))
            return await self._fetch_pushes(sorted(ids, reverse=True)[:limit])
        out: list[Push] = []
        page, start = max(limit, 100), 0
        while len(out) < limit:
            chunk = _ints(await self.redis.zrevrange(self._shop(shop_key, "push"), start, start + page - 1))
            if not chunk:
                break
            out += [p for p in await self._fetch_pushes(chunk) if p.status in wanted]
            start += page
        return out[:limit]

    @_shielded
    async def get_push(self, push_id: int) -> Push | None:
        found = await self._fetch_pushes([push_id])
        return found[0] if found else None

    @_shielded
    async def _retry_push(self, push_id: int, now: float, from_statuses: Sequence[PushStatus]) -> bool:
        return bool(await self._run("retry_push", push_id, _num(now), *map(str, from_statuses)))

    @_shielded
    async def _drop_push(self, push_id: int, from_statuses: Sequence[PushStatus]) -> bool:
        return bool(await self._run("drop_push", push_id, *map(str, from_statuses)))

    # PushStateReader ----------------------------------------------------------------------------------------------

    @_shielded
    async def _order_name_for_tracking(self, shop_key: str, tracking_number: str) -> str | None:
        name = await self.redis.hget(self._shop(shop_key, "trk", tracking_number), "name")
        return _s(name) if name is not None else None

    @_shielded
    async def delivered_package_pushes(self, shop_key: str, order_id: int) -> dict[str, int]:
        ids = _ints(await self.redis.zrange(self._shop(shop_key, "o", order_id, "push"), 0, -1))
        counts: dict[str, int] = {}
        for p in await self._fetch_pushes(ids):
            if p.topic == "package/update" and p.status == PushStatus.DELIVERED and p.fulfillment_id is not None:
                counts[str(p.fulfillment_id)] = counts.get(str(p.fulfillment_id), 0) + 1
        return counts

    # reconciliation and shop lifecycle ----------------------------------------------------------------------------

    @_shielded
    async def last_event_at(self, shop_key: str) -> float | None:
        # seqs grow in arrival order, so the shop's highest seq is its latest webhook
        newest = _ints(await self.redis.zrevrange(self._shop(shop_key, "ev"), 0, 0))
        if not newest:
            return None
        received = await self.redis.hget(self._k("ev", newest[0]), "recv")
        return float(received) if received is not None else None

    @_shielded
    async def get_watermark(self, shop_key: str) -> str | None:
        value = await self.redis.get(self._shop(shop_key, "wm"))
        return _s(value) if value is not None else None

    @_shielded
    async def set_watermark(self, shop_key: str, watermark: str) -> None:
        await self.redis.set(self._shop(shop_key, "wm"), watermark)

    @_shielded
    async def set_shop_installed(self, shop_key: str, installed: bool) -> None:
        await self.redis.hset(self._k("installed"), shop_key, "1" if installed else "0")

    @_shielded
    async def shop_installed(self, shop_key: str) -> bool:
        return await self.redis.hget(self._k("installed"), shop_key) != b"0"

    # shop holds ---------------------------------------------------------------------------------------------------

    @_shielded
    async def shop_holds(self, shop_keys: Sequence[str]) -> dict[str, ShopHold]:
        keys = list(dict.fromkeys(shop_keys))
        async with self.redis.pipeline(transaction=False) as pipe:
            for shop_key in keys:
                pipe.hmget(self._shop(shop_key, "hold"), ["until", "failures"])
            rows = await pipe.execute() if keys else []
        return {
            shop_key: ShopHold(float(until), int(failures))
            for shop_key, (until, failures) in zip(keys, rows, strict=True)
            if until is not None and failures is not None
        }

    @_shielded
    async def hold_shop(self, shop_key: str, hold: ShopHold) -> None:
        await self.redis.hset(self._shop(shop_key, "hold"), mapping={"until": _num(hold.until), "failures": hold.failures})

    @_shielded
    async def release_shop(self, shop_key: str) -> None:
        await self.redis.delete(self._shop(shop_key, "hold"))

    # compliance ---------------------------------------------------------------------------------------------------

    @_shielded
    async def _customer_data(
        self, shop_key: str, customer_id: int | None, order_ids: Sequence[int], *, delete: bool
    ) -> StoredCounts:
        """One script: a purge is atomic (no replica sees half of it)."""
        n = await self._run("customer_data", shop_key, _opt(customer_id), "1" if delete else "0", *order_ids)
        events, orders, fulfillments, pushes, tracking, checks = (int(x) for x in n)
        return StoredCounts(events, orders, fulfillments, pushes, tracking, checks)

    @_shielded
    async def purge_shop(self, shop_key: str) -> StoredCounts:
        """Not one script (a big shop would block Redis). Pushes leave the shared queues first, then every key under
        `P:s:<shop>:` is unlinked (SCAN), and the shop's events go last: the shop/redact event being processed
        right now stays in the backlog until the purge is complete. The install flag stays."""
        r = self.redis
        events = pushes = 0
        event_batches = await self._batches(self._shop(shop_key, "ev"))
        for ids in await self._batches(self._shop(shop_key, "push")):
            async with r.pipeline(transaction=False) as pipe:
                for pid in ids:
                    pipe.hget(self._k("push", pid), "status")
                found = await pipe.execute()
            async with r.pipeline(transaction=True) as pipe:
                for pid, status in zip(ids, found, strict=True):
                    pipe.zrem(self._shop(shop_key, "push"), pid)
                    if status is None:
                        continue
                    pushes += 1
                    pipe.zrem(self._k("pst", _s(status)), pid)
                    pipe.zrem(self._k("due"), pid)
                    pipe.unlink(self._k("push", pid), self._k("push", pid, "att"))
                await pipe.execute()
        counted = {"ord": 0, "ful": 0, "trk": 0, "chk": 0}
        base = _glob_escape(self._shop(shop_key)) + ":"
        check_members: list[str] = []
        for kind in counted:
            async for key in r.scan_iter(match=base + kind + ":*", count=500):
                counted[kind] += 1
                if kind == "chk":
                    check_members.append(f"{shop_key}\n{_s(key).rsplit(':', 1)[1]}")
        if check_members:
            await r.zrem(self._k("checks"), *check_members)
        batch: list[bytes] = []
        async for key in r.scan_iter(match=base + "*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                await r.unlink(*batch)
                batch.clear()
        if batch:
            await r.unlink(*batch)
        for seqs in event_batches:
            async with r.pipeline(transaction=False) as pipe:
                for seq in seqs:
                    pipe.hget(self._k("ev", seq), "eid")
                eids = await pipe.execute()
            async with r.pipeline(transaction=True) as pipe:
                for seq, eid in zip(seqs, eids, strict=True):
                    if eid is None:
                        continue
                    events += 1
                    pipe.hdel(self._k("evid", _s(eid)), shop_key)
                    pipe.unlink(self._k("ev", seq))
                    pipe.zrem(self._k("ev", "ready"), seq)
                    pipe.zrem(self._k("ev", "leased"), seq)
                await pipe.execute()
        return StoredCounts(
            events=events,
            orders=counted["ord"],
            fulfillments=counted["ful"],
            pushes=pushes,
            tracking_numbers=counted["trk"],
            unpaid_checks=counted["chk"],
        )

    async def _batches(self, zset_key: str, size: int = 500) -> list[list[int]]:
        members = _ints(await self.redis.zrange(zset_key, 0, -1))
        return [members[i : i + size] for i in range(0, len(members), size)]


#: Commit steps whose result 1 means new work for some worker.
_WAKING = frozenset({"enqueue_push", "schedule_check"})

#: How a lease is named in the held sets and the renewal script: "<letter>:<lease id>".
_MEMBER = {LeaseKind.EVENT: "e", LeaseKind.PUSH: "p", LeaseKind.CHECK: "c"}
_KIND = {letter: kind for kind, letter in _MEMBER.items()} | {kind.value: kind for kind in LeaseKind}


def _by_kind(members: Sequence[Any]) -> dict[LeaseKind, list[str]]:
    out: dict[LeaseKind, list[str]] = {}
    for member in map(_s, members):
        out.setdefault(_KIND[member[0]], []).append(member[2:])
    return out


def _taken(flat: Sequence[Any]) -> Taken:
    """A claim script's {owner, count, ...} as owner → count."""
    return {_s(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}


def _fenced_keys(store: RedisPushStore, o: EventOutcome) -> list[str]:
    """The rows whose lease decides whether the outcome may be written: its event and its unpaid checks."""
    keys = [store._k("ev", o.event_seq)] if o.event_seq is not None else []
    return keys + [store._shop(shop_key, "chk", order_id) for shop_key, order_id in o.done_checks]


__all__ = ["RedisPushStore", "RedisUnavailable"]
