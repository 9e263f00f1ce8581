"""Which shops' webhook subscriptions were last found complete, on SQLite (`SyncStates`)."""

from __future__ import annotations

from gateway.shops.sqlite.db import ShopsDb


class SqliteSyncStates:
    def __init__(self, db: ShopsDb) -> None:
        self.db = db

    async def sync_states(self) -> dict[str, str]:
        rows = await self.db.run(lambda c: c.execute("SELECT shop_key, fingerprint FROM webhook_sync").fetchall())
        return {str(k): str(f) for k, f in rows}

    async def set_sync_state(self, key: str, fingerprint: str | None) -> None:
        if fingerprint is None:
            await self.db.run(lambda c: c.execute("DELETE FROM webhook_sync WHERE shop_key = ?", (key,)))
        else:
            await self.db.run(
                lambda c: c.execute(
                    "INSERT INTO webhook_sync (shop_key, fingerprint) VALUES (?, ?)"
                    " ON CONFLICT (shop_key) DO UPDATE SET fingerprint = excluded.fingerprint",
                    (key, fingerprint),
                )
            )
