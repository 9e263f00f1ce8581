"""Shops: where a shop comes from and how the gateway holds its Shopify access.

- `registry` — the live `settings.shops`: the shops of config.yaml plus the shops connected from the browser and
  kept in the store, updated in place on every replica when one changes;
- `store` (the contract: records, tokens, subscription states), `sqlite/`, `redis/` (chosen by `backends`) — the
  connected shops (settings, sealed secrets and tokens) in the same backends as the push flow;
- `crypto` — AES-GCM sealing of tokens and secrets at rest;
- `install` — Shopify's install flow (`GET /shopify/install`, `GET /shopify/callback`);
- `tokens` — expiring offline tokens: obtained, refreshed under a lock the replicas share, migrated;
- `lifecycle` — installed, uninstalled, redacted, refused, edited; `setup` wires it all into the app.
The console's pages of a shop are gateway.console.shops; the local store's side of the flow is localstore.oauth.

This package's `__init__` imports nothing, so `gateway.settings` may use `gateway.shops.crypto` without a cycle.
"""
