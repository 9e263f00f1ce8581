"""Shops: where a shop comes from and how the gateway holds its Shopify access.

- `registry` — the live `settings.shops`: the shops of config.yaml plus the shops connected from the browser and
  kept in the store, updated in place on every replica when one changes;
- `store`, `sqlite_store`, `redis_store` — the stored shops (settings, sealed secrets and tokens) in the same
  backends as the push flow;
- `crypto` — AES-GCM sealing of tokens and secrets at rest;
- `oauth` + `install` — Shopify's install flow (`GET /shopify/install`, `GET /shopify/callback`);
- `tokens` — expiring offline tokens, refreshed under a lock the replicas share;
- `lifecycle` — install, app/uninstalled, shop/redact; `setup` wires it all into the app.

This package's `__init__` imports nothing, so `gateway.settings` may use `gateway.shops.crypto` without a cycle.
"""
