"""The push store's SQLite schema: ordered migrations, recorded in `schema_version`.

Add a new entry to `MIGRATIONS` to change the schema, never edit one: files written by every earlier version must
open (tests/test_push_store.py opens files of each earlier schema).
"""

from __future__ import annotations

import sqlite3

#: Ordered schema migrations; entry i brings the schema from version i to i + 1.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            shop_key TEXT NOT NULL,
            event_id TEXT NOT NULL,
            topic TEXT NOT NULL,
            webhook_id TEXT NOT NULL DEFAULT '',
            triggered_at TEXT NOT NULL DEFAULT '',
            api_version TEXT NOT NULL DEFAULT '',
            body BLOB NOT NULL,
            received_at REAL NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            error TEXT NOT NULL DEFAULT '',
            lease_until REAL NOT NULL DEFAULT 0,
            order_id INTEGER,
            customer_id INTEGER,
            UNIQUE (shop_key, event_id)
        )""",
        "CREATE INDEX events_pending ON events (seq) WHERE status = 'pending'",
        "CREATE INDEX events_order ON events (shop_key, order_id)",
        """CREATE TABLE orders (
            shop_key TEXT NOT NULL,
            order_id INTEGER NOT NULL,
            order_name TEXT NOT NULL,
            updated_at REAL NOT NULL,
            financial_status TEXT NOT NULL DEFAULT '',
            cancelled INTEGER NOT NULL DEFAULT 0,
            customer_id INTEGER,
            recipient TEXT,
            recipient_name TEXT NOT NULL DEFAULT '',
            receipt BLOB NOT NULL DEFAULT x'',
            PRIMARY KEY (shop_key, order_id)
        )""",
        "CREATE INDEX orders_customer ON orders (shop_key, customer_id)",
        """CREATE TABLE fulfillments (
            shop_key TEXT NOT NULL,
            fulfillment_id INTEGER NOT NULL,
            order_id INTEGER NOT NULL,
            updated_at REAL NOT NULL,
            status TEXT NOT NULL,
            name TEXT NOT NULL DEFAULT '',
            tracking_number TEXT NOT NULL DEFAULT '',
            tracking_url TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (shop_key, fulfillment_id)
        )""",
        "CREATE INDEX fulfillments_order ON fulfillments (shop_key, order_id)",
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            shop_key TEXT NOT NULL,
            dedupe_key TEXT NOT NULL,
            idempotency_key TEXT NOT NULL,
            order_id INTEGER NOT NULL,
            topic TEXT NOT NULL,
            body BLOB NOT NULL,
            status TEXT NOT NULL,
            created_at REAL NOT NULL,
            due_at REAL NOT NULL,
            lease_until REAL NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT NOT NULL DEFAULT '',
            delivered_at REAL,
            fulfillment_id INTEGER,
            customer_id INTEGER,
            UNIQUE (shop_key, dedupe_key)
        )""",
        "CREATE INDEX outbox_pending ON outbox (due_at) WHERE status = 'pending'",
        "CREATE INDEX outbox_order ON outbox (shop_key, order_id, id)",
        """CREATE TABLE tracking (
            shop_key TEXT NOT NULL,
            tracking_number TEXT NOT NULL,
            order_id INTEGER NOT NULL,
            order_name TEXT NOT NULL,
            customer_id INTEGER,
            PRIMARY KEY (shop_key, tracking_number)
        )""",
        "CREATE INDEX tracking_order ON tracking (shop_key, order_id)",
        """CREATE TABLE unpaid_checks (
            shop_key TEXT NOT NULL,
            order_id INTEGER NOT NULL,
            due_at REAL NOT NULL,
            lease_until REAL NOT NULL DEFAULT 0,
            done INTEGER NOT NULL DEFAULT 0,
            customer_id INTEGER,
            PRIMARY KEY (shop_key, order_id)
        )""",
        "CREATE INDEX unpaid_due ON unpaid_checks (due_at) WHERE done = 0",
        "CREATE TABLE watermarks (shop_key TEXT PRIMARY KEY, watermark TEXT NOT NULL)",
        "CREATE TABLE shops (shop_key TEXT PRIMARY KEY, installed INTEGER NOT NULL)",
    ],
    [
        # The delivery attempts of each push (operator console), and the shop's latest webhook by arrival.
        """CREATE TABLE push_attempts (
            push_id INTEGER NOT NULL,
            at REAL NOT NULL,
            http_status INTEGER,
            answer TEXT NOT NULL DEFAULT '',
            outcome TEXT NOT NULL
        )""",
        "CREATE INDEX push_attempts_push ON push_attempts (push_id)",
        "CREATE INDEX events_shop_received ON events (shop_key, received_at)",
    ],
    [
        # Whether an order's receipt was decided is a plain flag. Rows written before kept it as the `receipt` blob
        # starting "receipt:" (and, earlier still, the receipt's JSON for every order, which says nothing about it);
        # the shopper's address fields were never read since pushes read the order from Shopify.
        "ALTER TABLE orders ADD COLUMN receipt_decided INTEGER NOT NULL DEFAULT 0",
        "UPDATE orders SET receipt_decided = 1 WHERE CAST(substr(receipt, 1, 8) AS TEXT) = 'receipt:'",
        "ALTER TABLE orders DROP COLUMN receipt",
        "ALTER TABLE orders DROP COLUMN recipient",
        "ALTER TABLE orders DROP COLUMN recipient_name",
        # Shops whose push read failed, held for every process that opens the file (gateway.push.holds).
        "CREATE TABLE shop_holds (shop_key TEXT PRIMARY KEY, until REAL NOT NULL, failures INTEGER NOT NULL)",
    ],
    [
        # Leases with owners (gateway.push.sqlite.leases): who holds each leased row since when, and each replica's
        # latest start and heartbeat.
        "ALTER TABLE events ADD COLUMN lease_owner TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE events ADD COLUMN leased_at REAL",
        "ALTER TABLE outbox ADD COLUMN lease_owner TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE outbox ADD COLUMN leased_at REAL",
        "ALTER TABLE unpaid_checks ADD COLUMN lease_owner TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE unpaid_checks ADD COLUMN leased_at REAL",
        "CREATE INDEX events_owner ON events (lease_owner) WHERE lease_owner != ''",
        "CREATE INDEX outbox_owner ON outbox (lease_owner) WHERE lease_owner != ''",
        "CREATE INDEX unpaid_checks_owner ON unpaid_checks (lease_owner) WHERE lease_owner != ''",
        """CREATE TABLE replicas (
            replica_id TEXT PRIMARY KEY,
            nonce TEXT NOT NULL,
            started_at REAL NOT NULL,
            beat_at REAL NOT NULL
        )""",
    ],
]


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the file's schema to the newest version, in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (0)")
            version = 0
        else:
            version = int(row[0])
        if version > len(MIGRATIONS):
            raise RuntimeError(f"push store schema version {version} is newer than this gateway knows")
        for i in range(version, len(MIGRATIONS)):
            for statement in MIGRATIONS[i]:
                conn.execute(statement)
            conn.execute("UPDATE schema_version SET version = ?", (i + 1,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
