"""The push store on Redis: `store.RedisPushStore`, one class per role of the contract over `db.RedisDb` (the Lua
scripts in `lua/`)."""
