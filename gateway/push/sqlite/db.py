"""The push store's SQLite file: one connection, written by one dedicated thread with group commit. Every role of the
SQLite backend (gateway.push.sqlite.*) runs its statements through `SqliteDb.call`.

Durability: `journal_mode=WAL` with `synchronous=FULL`. In WAL mode FULL fsyncs the log on every commit, so a webhook
whose `record_event` returned survives a process crash *and* a power loss; NORMAL would only survive a process crash
(commits since the last checkpoint can roll back when the machine loses power), which is not "stored before the 2xx".
The price of FULL is one fsync per commit; group commit pays it once per batch instead of once per webhook.

Group commit: every operation (reads included, so they see their own writes in order) is a small function queued in
arrival order. The queued operations run in ONE transaction; the COMMIT (the fsync) runs in the writer thread, and only
after it returns are the callers' futures resolved. If one operation raises, the batch is rolled back and its
operations are redone one transaction each (in the thread), so only the failing one reports an error.
Requests that arrive while a commit is fsyncing form the next batch, so the batch size adapts to the load without a
fixed delay.

Where the statements run: on the event loop that opened the store, between `BEGIN IMMEDIATE` and the hand-off of the
COMMIT to the thread, so the thread needs the GIL about twice per batch, not once per statement (why that matters:
docs/benchmarks.md, `bench_push_intake.py`). The loop never waits for a lock or a disk: `BEGIN IMMEDIATE` runs with
`busy_timeout=0` there, and a batch that finds the file locked by another process (the CLI) runs wholly in the thread,
which waits for the lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from gateway.push.sqlite.schema import migrate

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How many queued operations one transaction may take (bounds the latency of the last one in a batch).
MAX_BATCH = 1024


class _Op:
    __slots__ = ("fn", "future", "loop")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any], future: asyncio.Future[Any]) -> None:
        self.fn = fn
        self.future = future
        self.loop = future.get_loop()


_STOP = object()


class _Commit:
    """A batch whose statements already ran on the loop: the thread commits it and reports."""

    __slots__ = ("results",)

    def __init__(self, results: list[tuple[_Op, Any, BaseException | None]]) -> None:
        self.results = results


class _Whole:
    """A batch the thread runs from BEGIN to COMMIT (the file was locked, or an operation failed on the loop)."""

    __slots__ = ("batch",)

    def __init__(self, batch: list[_Op]) -> None:
        self.batch = batch


class SqliteDb:
    """One SQLite file of the push store, its schema brought up to date at `open`, and the group commit that every
    operation goes through (`call`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Operations waiting for the next batch (appended from any loop; the owning loop takes them).
        self._pending: list[_Op] = []
        self._pending_lock = threading.Lock()
        #: A batch is running (statements on the loop, or its COMMIT in the thread): the next one waits for it.
        self._busy = False
        self._scheduled = False

    async def open(self, prepare: Callable[[sqlite3.Connection], None] | None = None) -> None:
        """Start the writer thread on the file, migrated; `prepare` runs once in the thread, in a transaction of its
        own, before any operation (the leases a serving start takes back)."""
        if self._thread is not None:
            return
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._loop = ready.get_loop()
        self._thread = threading.Thread(target=self._run, args=(ready, prepare), name="push-sqlite-writer", daemon=True)
        self._thread.start()
        try:
            await ready
        except BaseException:
            self._thread = None
            raise

    async def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(_STOP)
        await asyncio.to_thread(thread.join)
        with self._pending_lock:
            left, self._pending = self._pending, []
        for op in left:
            op.loop.call_soon_threadsafe(_settle, op.future, None, RuntimeError("push store closed"))
        self._conn = None

    async def ping(self) -> str | None:
        if self._thread is None or not self._thread.is_alive():
            return "push store not open"
        try:
            await asyncio.wait_for(self.call(lambda c: c.execute("SELECT 1").fetchone()), 2.0)
        except Exception as exc:  # readiness reports, never raises
            return f"push store: {type(exc).__name__}"
        return None

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in the next batch's transaction; its result once that transaction is committed."""
        if self._thread is None:
            raise RuntimeError("push store is not open")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        op = _Op(fn, future)
        with self._pending_lock:
            self._pending.append(op)
        if op.loop is self._loop:
            self._kick()
        elif self._loop is not None:
            self._loop.call_soon_threadsafe(self._kick)
        return await future

    # the writer thread ---------------------------------------------------------------------------------------------

    def _connect(self, prepare: Callable[[sqlite3.Connection], None] | None) -> sqlite3.Connection:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=10000")
        migrate(conn)
        if prepare is not None:
            conn.execute("BEGIN IMMEDIATE")
            prepare(conn)
            conn.execute("COMMIT")
        conn.execute("PRAGMA busy_timeout=0")  # the loop never waits for a lock; see _Whole for who does
        return conn

    def _run(self, ready: asyncio.Future[None], prepare: Callable[[sqlite3.Connection], None] | None) -> None:
        loop = ready.get_loop()
        try:
            conn = self._connect(prepare)
        except Exception as exc:
            loop.call_soon_threadsafe(_settle, ready, None, exc)
            return
        self._conn = conn
        loop.call_soon_threadsafe(_settle, ready, None, None)
        try:
            while True:
                job = self._queue.get()
                if job is _STOP:
                    return
                if isinstance(job, _Commit):
                    results = self._commit(conn, job.results)
                else:
                    results = self._run_batch(conn, job.batch)
                self._report(loop, results)
        finally:
            conn.close()

    def _commit(
        self, conn: sqlite3.Connection, results: list[tuple[_Op, Any, BaseException | None]]
    ) -> list[tuple[_Op, Any, BaseException | None]]:
        try:
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            log.error("push store commit failed: %s", type(exc).__name__)
            return [(op, None, exc) for op, _, _ in results]
        return results

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Op]) -> list[tuple[_Op, Any, BaseException | None]]:
        conn.execute("PRAGMA busy_timeout=10000")  # in the thread, waiting for another process's lock is fine
        try:
            results = self._transaction(conn, batch)
            if results is None:
                # One operation of several failed (rare: a constraint, a bug): redo each alone so only that one
                # reports the error. A single-operation batch never yields None, so every future is settled.
                results = []
                for op in batch:
                    results += self._transaction(conn, [op]) or []
        finally:
            conn.execute("PRAGMA busy_timeout=0")
        return results

    def _report(self, loop: asyncio.AbstractEventLoop, results: list[tuple[_Op, Any, BaseException | None]]) -> None:
        """Resolve the batch's futures (only ever after its COMMIT: a caller that hears "stored" may rely on it
        surviving a crash) and let the owning loop start the next batch: one hand-off to that loop per batch."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}
        for op, value, error in results:
            by_loop.setdefault(op.loop, []).append((op.future, value, error))
        own = by_loop.pop(loop, [])
        for other, items in by_loop.items():
            try:
                other.call_soon_threadsafe(_settle_all, items)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                pass
        try:
            loop.call_soon_threadsafe(self._batch_done, own)
        except RuntimeError:
            pass

    def _batch_done(self, items: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
        _settle_all(items)
        self._busy = False
        self._flush()

    def _kick(self) -> None:
        if not self._scheduled and not self._busy:
            self._scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """On the owning loop: run the queued operations' statements in one transaction, hand the COMMIT over."""
        self._scheduled = False
        conn = self._conn
        if self._busy or not self._pending or conn is None or self._thread is None:
            return
        with self._pending_lock:
            batch = self._pending[:MAX_BATCH]
            del self._pending[:MAX_BATCH]
        self._busy = True
        try:
            conn.execute("BEGIN IMMEDIATE")
        except Exception:  # locked by another process: the thread waits for it, not the loop
            self._queue.put(_Whole(batch))
            return
        results: list[tuple[_Op, Any, BaseException | None]] = []
        try:
            for op in batch:
                results.append((op, op.fn(conn), None))
        except Exception:
            with contextlib.suppress(Exception):
                conn.execute("ROLLBACK")
            self._queue.put(_Whole(batch))  # redone in the thread, each failing operation alone
            return
        self._queue.put(_Commit(results))

    def _transaction(
        self, conn: sqlite3.Connection, batch: list[_Op]
    ) -> list[tuple[_Op, Any, BaseException | None]] | None:
        """Run the batch in one transaction. None when an operation raised and the batch had several (all rolled
        back, to be retried one by one); otherwise the results (errors included) of every operation."""
        results: list[tuple[_Op, Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in batch:
                results.append((op, op.fn(conn), None))
            conn.execute("COMMIT")
            return results
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if len(batch) > 1 and len(results) < len(batch):
                return None
            log.error("push store transaction failed: %s", type(exc).__name__)
            return [(op, None, exc) for op in batch]


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


def _settle_all(items: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, error in items:
        _settle(future, value, error)
