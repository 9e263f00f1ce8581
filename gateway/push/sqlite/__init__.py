"""The push store on one SQLite file: `store.SqlitePushStore`, one class per role of the contract over `db.SqliteDb`."""
