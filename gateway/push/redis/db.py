"""The push store's Redis connection: the client, the key names, the Lua scripts and the pipelining every role of
the Redis backend (gateway.push.redis.*) runs its commands through.

Each state change that must be atomic is one Lua script (`lua/<name>.lua`, run after `lua/prelude.lua`, its shared
helpers), so two replicas can never both claim one event or one push. The scripts build key names themselves (from
the prefix passed as their first argument), so the backend needs a single Redis (or Sentinel), not Redis Cluster.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.resources
import logging
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.push.redis.rows import EVENT_FIELDS, PUSH_FIELDS

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def shielded(method: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
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


class RedisUnavailable(OSError):
    """Redis cannot be reached at open(): an OSError, like any other refused connection."""


# The field lists the claim scripts read are spliced in from the tuples of gateway.push.redis.rows, so script and
# reader name the same fields.
_LUA_DIR = importlib.resources.files("gateway.push.redis") / "lua"
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
    event_fields = ", ".join(f"'{f}'" for f in EVENT_FIELDS)
    push_fields = ", ".join(f"'{f}'" for f in PUSH_FIELDS)
    return {
        name: prelude + _lua(name).replace("$EVENT_FIELDS", event_fields).replace("$PUSH_FIELDS", push_fields)
        for name in _SCRIPT_NAMES
    }


_SCRIPTS = _load_lua()


class RedisDb:
    """One Redis (URL and key prefix) of the push store: its client, its key names and its scripts."""

    def __init__(self, url: str, *, prefix: str, max_connections: int = 64) -> None:
        self.url = url
        self.prefix = prefix
        self.max_connections = max_connections
        self._redis: aioredis.Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self._batch: list[tuple[str, tuple[Any, ...], asyncio.Future[Any]]] = []
        self._batch_in_flight = False
        self._background: set[asyncio.Task[Any]] = set()

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

    @property
    def is_open(self) -> bool:
        return self._redis is not None

    async def close(self) -> None:
        if self._redis is None:
            return
        if self._background:  # pending sends
            await asyncio.gather(*self._background, return_exceptions=True)
        client, self._redis = self._redis, None
        await client.aclose()

    @shielded
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

    def k(self, *parts: object) -> str:
        """The key `P:<part>:<part>...` (P: the prefix)."""
        return ":".join((self.prefix, *map(str, parts)))

    def shop(self, shop_key: str, *parts: object) -> str:
        """A key of the shop's own: `P:s:<shop>:<part>...`."""
        return self.k("s", shop_key, *parts)

    def script(self, name: str) -> AsyncScript:
        return self._scripts[name]

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run `coro` in the background; `close` waits for it."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def run(self, name: str, *args: Any) -> Any:
        return await self._scripts[name](args=[self.prefix, *args], client=self.redis)

    def run_batched(self, name: str, *args: Any) -> asyncio.Future[Any]:
        """Auto-pipelining for the hot single-row scripts (intake, delivery outcomes), like SQLite's group commit:
        calls queue up while the previous pipeline is in flight and then go to Redis together, one round trip on
        one connection. Each script stays atomic; the pipeline is not a transaction. The send runs in its own
        task, so a caller's cancellation never interrupts a round trip (see `shielded`)."""
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
        self.spawn(self._send_batch(batch))

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
