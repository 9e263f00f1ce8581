"""kill -9 between the refresh and the write: the gateway (a real subprocess in app mode, SQLite) asks the local
store (in this process) for a new pair, the store issues it and the gateway is killed before the answer arrives, so
the new pair is never written. Restarted, the gateway still holds the old pair: its access token is dead, its
refresh token is not (its replacement was never used: Shopify's grace rule), so the shop is still connected."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.shops.crypto import Sealer
from gateway.shops.sqlite.store import SqliteShopStore
from gateway.shops.store import ShopStatus
from localstore import SandboxServer
from tests.fixtures_push import free_port
from tests.fixtures_shops import TOKEN_KEY, AppGateway, Merchant, app_config, register_app
from tests.test_push_crash import start_gateway

DOMAIN = "shop4.myshopify.com"


async def stored(path: Path, key: str = "shop4") -> Any:
    store = SqliteShopStore(path, Sealer(TOKEN_KEY))
    await store.open()
    try:
        return await store.records.load(key), await store.tokens.load_tokens(key)
    finally:
        await store.close()


@pytest.mark.slow
async def test_kill_9_between_the_refresh_and_the_write_leaves_the_shop_connected(
    merchant: Merchant, tmp_path: Path
) -> None:
    store = SandboxServer([], host="127.0.0.1", port=0)
    store.new_shop_orders, store.new_shop_products = 10, 5
    await store.start()
    port = free_port()
    db = tmp_path / "gateway.sqlite3"
    raw = app_config(store.base_url, port, {"backend": "sqlite", "sqlite_path": str(db)})
    raw["server"]["host"] = "127.0.0.1"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    register_app(store, f"http://127.0.0.1:{port}")
    proc = await start_gateway(config, port)
    gw = AppGateway(f"http://127.0.0.1:{port}", None, None, store, store.clock)  # type: ignore[arg-type]
    try:
        status, _, _ = await merchant.install(gw, DOMAIN)
        assert status == 200
        shop, before = await stored(db)
        secret = shop.bot_secrets[0].value
        assert (await gw.ask("shop4", secret=secret))[0] == 200

        # the access token stops working; the next lookup refreshes; the store issues the pair, then the
        # gateway dies before it can read the answer, let alone write it
        store.revoke_tokens(DOMAIN)
        store.oauth.on_grant = lambda grant: os.kill(proc.pid, signal.SIGKILL) if grant == "refresh_token" else None
        try:
            await gw.ask("shop4", "1002", secret=secret)
        except Exception:
            pass  # the connection died with the process
        assert await proc.wait() == -signal.SIGKILL
        assert store.oauth.grants["refresh_token"] == 1
        assert (await stored(db))[1] == before  # the new pair was never written

        store.oauth.on_grant = None
        proc = await start_gateway(config, port)
        status, reply = await gw.ask("shop4", "1003", secret=secret)
        assert status == 200, reply
        assert store.oauth.grants["refresh_token"] == 2  # the old refresh token, accepted again
        shop, after = await stored(db)
        assert shop.status is ShopStatus.CONNECTED and after.access_token != before.access_token
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await store.stop()

