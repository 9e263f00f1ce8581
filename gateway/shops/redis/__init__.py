"""The connected shops in Redis: `store.RedisShopStore`, one class per role over `db.ShopsRedis`."""
