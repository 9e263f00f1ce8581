"""The shop store's contract on both backends (SQLite, Redis): records sealed at rest, optimistic saves, token
writes that never overwrite a newer pair, the refresh lock, and change notices that reach another replica."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.shops.crypto import SealedValueError, Sealer
from gateway.shops.redis.store import RedisShopStore
from gateway.shops.sqlite.store import SqliteShopStore
from gateway.shops.store import KEEP, ShopStatus, ShopStore, StoredSecret, StoredShop, TokenSet
from tests.fixtures_push import eventually, open_redis_or_skip, purge_redis_prefix
from tests.fixtures_shops import TOKEN_KEY

SECRET = "bot-secret-0123456789-abcdefghij"
TOKENS = TokenSet("shpat_access_one", "read_orders", 1000.0, 4600.0, "shprt_refresh_one", 1000.0 + 90 * 86400)


def shop(key: str = "shop4", domain: str = "shop4.myshopify.com") -> StoredShop:
    return StoredShop(key=key, domain=domain, settings={"dialect": "meetbot"}, bot_secrets=(StoredSecret(SECRET, 1.0),),
                      installed_at=1000.0, created_at=1000.0)  # fmt: skip


@pytest.fixture(params=["sqlite", "redis"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Callable[[], Any]]:
    """`await stores()` → a new opened store on the same data (a second replica each call)."""
    opened: list[Any] = []
    prefix = f"test-shopstore-{os.getpid()}-{id(request)}"

    async def make() -> ShopStore:
        store: Any
        if request.param == "sqlite":
            store = SqliteShopStore(tmp_path / "shops.sqlite3", Sealer(TOKEN_KEY), poll_seconds=0.05)
            await store.open()
        else:
            store = RedisShopStore("redis://127.0.0.1:6379/0", Sealer(TOKEN_KEY), prefix=prefix)
            await open_redis_or_skip(store)
        opened.append(store)
        return store  # type: ignore[no-any-return]

    try:
        yield make
    finally:
        for store in opened:
            if isinstance(store, RedisShopStore) and store.db.is_open:
                await purge_redis_prefix(store)  # type: ignore[arg-type]
            await store.close()


async def test_a_shop_round_trips_and_its_key_and_domain_are_unique(stores: Any) -> None:
    store = await stores()
    assert await store.records.create(shop(), TOKENS)
    assert not await store.records.create(shop(), None)  # the key is taken
    assert not await store.records.create(shop(key="other"), None)  # the domain is taken
    loaded = await store.records.load("shop4")
    assert loaded == shop().with_changes(version=1)
    assert await store.records.key_for_domain("shop4.myshopify.com") == "shop4"
    assert await store.tokens.load_tokens("shop4") == TOKENS
    assert [s.key for s in await store.records.load_all()] == ["shop4"]
    assert await store.records.delete("shop4") and await store.records.load("shop4") is None and not await store.records.delete("shop4")
    assert await store.records.key_for_domain("shop4.myshopify.com") is None


async def test_saves_are_optimistic_and_tokens_are_dropped_or_kept_with_them(stores: Any) -> None:
    store = await stores()
    await store.records.create(shop(), TOKENS)
    paused = shop().with_changes(paused=True, status=ShopStatus.UNINSTALLED)
    assert await store.records.save(paused, expected_version=1, tokens=None)
    assert not await store.records.save(paused, expected_version=1)  # someone saved in between: refused
    loaded = await store.records.load("shop4")
    assert loaded is not None and loaded.paused and loaded.version == 2 and loaded.status is ShopStatus.UNINSTALLED
    assert await store.tokens.load_tokens("shop4") is None
    assert await store.records.save(loaded, expected_version=2, tokens=TOKENS)
    assert await store.records.save(loaded, expected_version=3, tokens=KEEP)
    assert await store.tokens.load_tokens("shop4") == TOKENS


async def test_a_token_write_never_replaces_a_pair_it_did_not_read(stores: Any) -> None:
    store = await stores()
    await store.records.create(shop(), TOKENS)
    newer = TokenSet("shpat_access_two", "read_orders", 4000.0, 7600.0, "shprt_refresh_two", 9e9, "shprt_refresh_one")
    assert await store.tokens.save_tokens("shop4", newer, replacing=TOKENS)
    late = TokenSet("shpat_access_late", "read_orders", 4000.0, 7600.0, "shprt_late", 9e9)
    assert not await store.tokens.save_tokens("shop4", late, replacing=TOKENS)  # a slower refresh of the old pair
    assert await store.tokens.load_tokens("shop4") == newer
    loaded = await store.records.load("shop4")
    assert loaded is not None
    await store.records.save(loaded, expected_version=loaded.version, tokens=None)  # uninstalled meanwhile
    assert not await store.tokens.save_tokens("shop4", late, replacing=newer)
    assert await store.tokens.load_tokens("shop4") is None


async def test_the_refresh_lock_has_one_holder_across_replicas(stores: Any) -> None:
    one, two = await stores(), await stores()
    await one.records.create(shop(), TOKENS)
    assert await one.tokens.try_lock("shop4", "replica-1", 30)
    assert not await two.tokens.try_lock("shop4", "replica-2", 30)
    await two.tokens.unlock("shop4", "replica-2")  # not the holder: nothing happens
    assert not await two.tokens.try_lock("shop4", "replica-2", 30)
    await one.tokens.unlock("shop4", "replica-1")
    assert await two.tokens.try_lock("shop4", "replica-2", 30)


async def test_a_restarted_replica_takes_back_its_own_refresh_locks_and_no_one_elses(tmp_path: Path) -> None:
    """Several serving gateways may share one SQLite file (each its own replica id): a start of replica A frees the
    refresh locks an earlier start of A left (killed mid-refresh), while B's lock, still held, stays B's."""
    path = tmp_path / "shops.sqlite3"
    a = SqliteShopStore(path, Sealer(TOKEN_KEY), replica_id="a")
    b = SqliteShopStore(path, Sealer(TOKEN_KEY), replica_id="a_b")  # '_' is no wildcard in the owner match
    await a.open()
    await b.open()
    try:
        await a.records.create(shop(), TOKENS)
        await a.records.create(shop("shop5", "shop5.myshopify.com"), TOKENS)
        assert await a.tokens.try_lock("shop4", "refresher-1", 30)
        assert await b.tokens.try_lock("shop5", "refresher-2", 30)
        await a.close()  # killed: its lock on shop4 stays until it expires or A starts again
        a = SqliteShopStore(path, Sealer(TOKEN_KEY), replica_id="a")
        await a.open()
        assert await a.tokens.try_lock("shop4", "refresher-3", 30)  # taken back at once
        assert not await a.tokens.try_lock("shop5", "refresher-3", 30)  # B's is still B's
    finally:
        await a.close()
        await b.close()


async def test_another_replica_hears_of_every_change(stores: Any) -> None:
    one, two = await stores(), await stores()
    heard: list[str] = []
    two.records.on_change(heard.append)
    await one.records.create(shop(), None)
    await eventually(lambda: heard, within=10, what="the change notice")
    heard.clear()
    await one.records.delete("shop4")
    await eventually(lambda: heard, within=10, what="the delete notice")


async def test_sync_states_are_kept_per_shop(stores: Any) -> None:
    store = await stores()
    await store.sync.set_sync_state("demo", "abc")
    await store.sync.set_sync_state("shop4", "def")
    await store.sync.set_sync_state("shop4", None)
    assert await store.sync.sync_states() == {"demo": "abc"}


def _bytes_on_disk(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.glob("shops.sqlite3*"))  # the file and any WAL left


async def test_secrets_and_tokens_are_sealed_at_rest(tmp_path: Path) -> None:
    store = SqliteShopStore(tmp_path / "shops.sqlite3", Sealer(TOKEN_KEY))
    await store.open()
    try:
        await store.records.create(shop(), TOKENS)
    finally:
        await store.close()
    raw = _bytes_on_disk(tmp_path)
    for clear in (SECRET, TOKENS.access_token, TOKENS.refresh_token or "", "meetbot"):
        assert clear.encode() not in raw
    with sqlite3.connect(tmp_path / "shops.sqlite3") as conn:
        config, tokens = conn.execute("SELECT config, tokens FROM connected_shops").fetchone()
    other = Sealer("A" * 43 + "=")
    with pytest.raises(SealedValueError):
        other.open(config, shop_key="shop4", purpose="shop")
    with pytest.raises(SealedValueError):  # moved onto another shop: refused too
        Sealer(TOKEN_KEY).open(tokens, shop_key="shop5", purpose="tokens")
    old_and_new = Sealer("B" * 43 + "=", previous=[TOKEN_KEY])  # a new key, the old one kept to read
    assert b"shpat_access_one" in old_and_new.open(tokens, shop_key="shop4", purpose="tokens")
