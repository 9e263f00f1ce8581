"""The connected shops in the embedded SQLite file (`storage.sqlite_path`, beside the push flow's tables).

One connection of its own, used from a worker thread (writes are rare: an install, an operator's edit, a token
refresh per shop and hour), so the event loop never waits for the file. Each operation is one transaction;
`synchronous=FULL` as for the push store: an install whose callback answered survives a power cut.

The refresh lock is a lease row (`lease_owner`, `lease_until`), taken by a conditional UPDATE: processes that share
the file (the CLI) take turns, and a lease left by a process killed mid-refresh expires, or is taken back at once
by the next start of the same replica (`replica_id`: a serving gateway writes its locks under its replica id and at
open takes back those an earlier start of that replica left; other replicas sharing the file keep theirs).
Other processes' changes are noticed by polling a change counter (`shops_meta.version`) every `POLL_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from gateway.shops.crypto import Sealer
from gateway.shops.store import KEEP, ChangeListener, StoredShop, TokenSet, open_tokens, seal_tokens, token_id

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How often other processes' changes are looked for.
POLL_SECONDS = 2.0

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
_COLUMNS = "key, domain, config, status, problem, scope, paused, installed_at, uninstalled_at, created_at, version"


class SqliteShopStore:
    def __init__(
        self, path: str | Path, sealer: Sealer | None, *, clock: Callable[[], float] = time.time,
        replica_id: str | None = None, poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.path = Path(path)
        self._poll_seconds = poll_seconds
        #: A serving gateway's replica id: its refresh locks are written as `<replica id>/<owner>`, so at open it can
        #: take back the ones an earlier start of the same replica left (killed mid-refresh) and no one else's.
        self._replica_id = replica_id
        self._sealer = sealer
        self._clock = clock
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._listeners: list[ChangeListener] = []
        self._seen_version = 0
        self._poller: asyncio.Task[None] | None = None

    def sealer(self) -> Sealer:
        """The cipher of connected shops' records (app.token_key); without app mode the store keeps only the
        webhook subscription states."""
        if self._sealer is None:
            raise RuntimeError("connected shops are sealed with app.token_key: configure app: to read them")
        return self._sealer

    # --- lifecycle -------------------------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._conn is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10.0)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        self._conn = conn
        await self._run(self._create_schema)
        if self._replica_id is not None:
            mine = self._lock_owner("")
            await self._run(
                lambda c: c.execute(
                    "UPDATE connected_shops SET lease_owner = '', lease_until = 0 WHERE substr(lease_owner, 1, ?) = ?",
                    (len(mine), mine),
                )
            )
        self._seen_version = await self._run(self._meta_version)
        self._poller = asyncio.create_task(self._poll(), name="shops-change-poller")

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    def on_change(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    # --- shops -----------------------------------------------------------------------------------------------------

    async def load_all(self) -> list[StoredShop]:
        rows = await self._run(lambda c: c.execute(f"SELECT {_COLUMNS} FROM connected_shops ORDER BY key").fetchall())
        return [StoredShop.from_row(dict(r), self.sealer()) for r in rows]

    async def load(self, key: str) -> StoredShop | None:
        row = await self._run(
            lambda c: c.execute(f"SELECT {_COLUMNS} FROM connected_shops WHERE key = ?", (key,)).fetchone()
        )
        return StoredShop.from_row(dict(row), self.sealer()) if row is not None else None

    async def key_for_domain(self, domain: str) -> str | None:
        row = await self._run(lambda c: c.execute("SELECT key FROM connected_shops WHERE domain = ?", (domain,)).fetchone())
        return str(row[0]) if row is not None else None

    async def create(self, shop: StoredShop, tokens: TokenSet | None) -> bool:
        row = shop.with_changes(version=1).row(self.sealer())
        row["tokens"] = seal_tokens(self.sealer(), shop.key, tokens) if tokens is not None else None
        row["tokens_id"] = token_id(tokens)

        def insert(c: sqlite3.Connection) -> bool:
            try:
                c.execute(
                    f"INSERT INTO connected_shops ({_COLUMNS}, tokens, tokens_id) VALUES "
                    "(:key, :domain, :config, :status, :problem, :scope, :paused, :installed_at, :uninstalled_at,"
                    " :created_at, :version, :tokens, :tokens_id)",
                    row,
                )
            except sqlite3.IntegrityError:
                return False
            self._bump(c)
            return True

        return await self._write(shop.key, insert)

    async def save(self, shop: StoredShop, *, tokens: Any = KEEP, expected_version: int) -> bool:
        row = shop.with_changes(version=expected_version + 1).row(self.sealer())
        row["expected"] = expected_version
        sets = "config = :config, status = :status, problem = :problem, scope = :scope, paused = :paused, " \
               "installed_at = :installed_at, uninstalled_at = :uninstalled_at, version = :version"  # fmt: skip
        if tokens is not KEEP:
            sets += ", tokens = :tokens, tokens_id = :tokens_id"
            row["tokens"] = seal_tokens(self.sealer(), shop.key, tokens) if tokens is not None else None
            row["tokens_id"] = token_id(tokens)

        def update(c: sqlite3.Connection) -> bool:
            done = c.execute(f"UPDATE connected_shops SET {sets} WHERE key = :key AND version = :expected", row)
            if done.rowcount != 1:
                return False
            self._bump(c)
            return True

        return await self._write(shop.key, update)

    async def delete(self, key: str) -> bool:
        def remove(c: sqlite3.Connection) -> bool:
            if c.execute("DELETE FROM connected_shops WHERE key = ?", (key,)).rowcount != 1:
                return False
            c.execute("DELETE FROM webhook_sync WHERE shop_key = ?", (key,))
            self._bump(c)
            return True

        return await self._write(key, remove)

    # --- tokens ----------------------------------------------------------------------------------------------------

    async def load_tokens(self, key: str) -> TokenSet | None:
        row = await self._run(lambda c: c.execute("SELECT tokens FROM connected_shops WHERE key = ?", (key,)).fetchone())
        if row is None or row[0] is None:
            return None
        return open_tokens(self.sealer(), key, row[0])

    async def save_tokens(self, key: str, tokens: TokenSet, *, replacing: TokenSet) -> bool:
        sealed = seal_tokens(self.sealer(), key, tokens)

        def update(c: sqlite3.Connection) -> bool:
            done = c.execute(
                "UPDATE connected_shops SET tokens = ?, tokens_id = ? WHERE key = ? AND tokens_id = ?",
                (sealed, token_id(tokens), key, token_id(replacing)),
            )
            return done.rowcount == 1

        # Tokens are nobody else's business: no change event (each replica re-reads them when its own expire).
        return await self._run(lambda c: self._transaction(c, update))

    def _lock_owner(self, owner: str) -> str:
        return owner if self._replica_id is None else f"{self._replica_id}/{owner}"

    async def try_lock(self, key: str, owner: str, seconds: float) -> bool:
        now = self._clock()
        owner = self._lock_owner(owner)

        def take(c: sqlite3.Connection) -> bool:
            done = c.execute(
                "UPDATE connected_shops SET lease_owner = ?, lease_until = ?"
                " WHERE key = ? AND (lease_until <= ? OR lease_owner = ?)",
                (owner, now + seconds, key, now, owner),
            )
            return done.rowcount == 1

        return await self._run(lambda c: self._transaction(c, take))

    async def unlock(self, key: str, owner: str) -> None:
        owner = self._lock_owner(owner)
        await self._run(
            lambda c: c.execute(
                "UPDATE connected_shops SET lease_owner = '', lease_until = 0 WHERE key = ? AND lease_owner = ?",
                (key, owner),
            )
        )

    # --- webhook subscription state --------------------------------------------------------------------------------

    async def sync_states(self) -> dict[str, str]:
        rows = await self._run(lambda c: c.execute("SELECT shop_key, fingerprint FROM webhook_sync").fetchall())
        return {str(k): str(f) for k, f in rows}

    async def set_sync_state(self, key: str, fingerprint: str | None) -> None:
        if fingerprint is None:
            await self._run(lambda c: c.execute("DELETE FROM webhook_sync WHERE shop_key = ?", (key,)))
        else:
            await self._run(
                lambda c: c.execute(
                    "INSERT INTO webhook_sync (shop_key, fingerprint) VALUES (?, ?)"
                    " ON CONFLICT (shop_key) DO UPDATE SET fingerprint = excluded.fingerprint",
                    (key, fingerprint),
                )
            )

    # --- plumbing --------------------------------------------------------------------------------------------------

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            with self._lock:
                if self._conn is None:
                    raise RuntimeError("the shop store is closed")
                return fn(self._conn)

        return await asyncio.to_thread(call)

    @staticmethod
    def _transaction(c: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
        c.execute("BEGIN IMMEDIATE")
        try:
            result = fn(c)
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")
        return result

    async def _write(self, key: str, fn: Callable[[sqlite3.Connection], bool]) -> bool:
        done = await self._run(lambda c: self._transaction(c, fn))
        if done:
            self._seen_version += 1  # our own bump: the poller need not reload for it
            self._tell(key)
        return done

    def _bump(self, c: sqlite3.Connection) -> None:
        c.execute("UPDATE shops_meta SET version = version + 1 WHERE id = 1")

    @staticmethod
    def _create_schema(c: sqlite3.Connection) -> None:
        for statement in _SCHEMA:
            c.execute(statement)

    @staticmethod
    def _meta_version(c: sqlite3.Connection) -> int:
        return int(c.execute("SELECT version FROM shops_meta WHERE id = 1").fetchone()[0])

    def _tell(self, key: str) -> None:
        for listener in self._listeners:
            try:
                listener(key)
            except Exception:  # one broken listener must not hide the change from the others
                log.exception("shop store: a change listener failed")

    async def _poll(self) -> None:
        """Another process wrote: "*" asks the listeners to reload every shop (a shop deleted elsewhere is in no
        listing, so naming the changed ones would need a log of deletions; a change from elsewhere is rare)."""
        while True:
            await asyncio.sleep(self._poll_seconds)
            try:
                version = await self._run(self._meta_version)
            except (sqlite3.Error, RuntimeError) as exc:
                log.warning("shop store: change poll failed (%s)", type(exc).__name__)
                continue
            if version != self._seen_version:
                self._seen_version = version
                self._tell("*")
