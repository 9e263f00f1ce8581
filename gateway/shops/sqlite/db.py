"""The connected shops' SQLite file (`storage.sqlite_path`, beside the push flow's tables).

One connection of its own, used from a worker thread (writes are rare: an install, an operator's edit, a token
refresh per shop and hour), so the event loop never waits for the file. Each operation is one transaction;
`synchronous=FULL` as for the push store: an install whose callback answered survives a power cut.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS connected_shops (
        key TEXT PRIMARY KEY,
        domain TEXT NOT NULL UNIQUE,
        config TEXT NOT NULL,
        tokens TEXT,
        tokens_id TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL,
        problem TEXT NOT NULL DEFAULT '',
        scope TEXT NOT NULL DEFAULT '',
        paused INTEGER NOT NULL DEFAULT 0,
        installed_at REAL,
        uninstalled_at REAL,
        created_at REAL NOT NULL,
        version INTEGER NOT NULL,
        lease_owner TEXT NOT NULL DEFAULT '',
        lease_until REAL NOT NULL DEFAULT 0
    )""",
    "CREATE TABLE IF NOT EXISTS shops_meta (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO shops_meta (id, version) VALUES (1, 0)",
    "CREATE TABLE IF NOT EXISTS webhook_sync (shop_key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL)",
)


class ShopsDb:
    """The file, its schema, and `run`: one operation at a time in a worker thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10.0)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        self._conn = conn
        await self.run(_create_schema)

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            with self._lock:
                if self._conn is None:
                    raise RuntimeError("the shop store is closed")
                return fn(self._conn)

        return await asyncio.to_thread(call)

    async def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn` in a transaction of its own (BEGIN IMMEDIATE: it waits for another process's writer)."""
        return await self.run(lambda c: _in_transaction(c, fn))


def _in_transaction(c: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    c.execute("BEGIN IMMEDIATE")
    try:
        result = fn(c)
    except BaseException:
        c.execute("ROLLBACK")
        raise
    c.execute("COMMIT")
    return result


def _create_schema(c: sqlite3.Connection) -> None:
    for statement in _SCHEMA:
        c.execute(statement)
