"""What the push store keeps per shop, on Redis: the reconciliation watermark and the install flag (`ShopLedger`), and
the hold of a shop whose push read fails (`ShopHoldStore`), which every replica sees alike."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.push.records import ShopHold
from gateway.push.redis.db import RedisDb, shielded
from gateway.push.redis.rows import num, text


class RedisShopLedger:
    """`ShopLedger` on Redis: the watermark `P:s:<shop>:wm` and the install flags `P:installed`."""

    def __init__(self, db: RedisDb) -> None:
        self.db = db

    @shielded
    async def get_watermark(self, shop_key: str) -> str | None:
        value = await self.db.redis.get(self.db.shop(shop_key, "wm"))
        return text(value) if value is not None else None

    @shielded
    async def set_watermark(self, shop_key: str, watermark: str) -> None:
        await self.db.redis.set(self.db.shop(shop_key, "wm"), watermark)

    @shielded
    async def set_shop_installed(self, shop_key: str, installed: bool) -> None:
        await self.db.redis.hset(self.db.k("installed"), shop_key, "1" if installed else "0")

    @shielded
    async def shop_installed(self, shop_key: str) -> bool:
        return await self.db.redis.hget(self.db.k("installed"), shop_key) != b"0"


class RedisShopHolds:
    """`ShopHoldStore` on Redis: the hash `P:s:<shop>:hold` (until, failures) while the shop's reads fail."""

    def __init__(self, db: RedisDb) -> None:
        self.db = db

    @shielded
    async def shop_holds(self, shop_keys: Sequence[str]) -> dict[str, ShopHold]:
        keys = list(dict.fromkeys(shop_keys))
        async with self.db.redis.pipeline(transaction=False) as pipe:
            for shop_key in keys:
                pipe.hmget(self.db.shop(shop_key, "hold"), ["until", "failures"])
            rows = await pipe.execute() if keys else []
        return {
            shop_key: ShopHold(float(until), int(failures))
            for shop_key, (until, failures) in zip(keys, rows, strict=True)
            if until is not None and failures is not None
        }

    @shielded
    async def hold_shop(self, shop_key: str, hold: ShopHold) -> None:
        await self.db.redis.hset(
            self.db.shop(shop_key, "hold"), mapping={"until": num(hold.until), "failures": hold.failures}
        )

    @shielded
    async def release_shop(self, shop_key: str) -> None:
        await self.db.redis.delete(self.db.shop(shop_key, "hold"))
