"""The connected shops in the embedded SQLite file: `store.SqliteShopStore`, one class per role over `db.ShopsDb`."""
