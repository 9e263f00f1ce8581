"""`gateway sandbox`: run the local Shopify store on its own and print how to reach it.

    gateway sandbox --port 8765 --orders 200 --seed 42

It is the test double and demo store (see localstore/README.md); its credentials are public demo values.
"""

from __future__ import annotations

import argparse
import asyncio

from gateway.cli_common import until_stopped

DEFAULT_DOMAIN = "demo.myshopify.com"
DEFAULT_TOKEN = "shpat_sandbox_demo"
DEFAULT_CLIENT_ID = "sandbox-client-id"
DEFAULT_CLIENT_SECRET = "sandbox-client-secret"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("sandbox", help="run the local Shopify store (test double and demo store)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port (default: %(default)s)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--orders", type=int, default=60)
    p.add_argument("--products", type=int, default=30)
    p.add_argument("--domain", action="append", default=None,
                   help=f"shop domain; repeat for several shops (default: {DEFAULT_DOMAIN})")
    p.add_argument("--access-token", default=DEFAULT_TOKEN)
    p.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    p.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    p.add_argument("--webhook-retries", default=None,
                   help="comma-separated seconds between webhook retries (default: Shopify's 8 retries over ~4 h)")
    p.add_argument("--plan", default="standard", choices=["standard", "advanced", "plus", "commerce_components"],
                   help="the shops' cost bucket: Shopify's figures for that plan (default: %(default)s)")
    p.add_argument("--response-cache", type=int, default=0, metavar="N",
                   help="answer up to N repeated queries from memory until the shop changes (benchmarks; default off)")
    p.set_defaults(func=cmd_sandbox)


def cmd_sandbox(args: argparse.Namespace) -> int:
    asyncio.run(_run(args))
    return 0


async def _run(args: argparse.Namespace) -> None:
    from localstore import SandboxServer, SandboxShop

    domains = args.domain or [DEFAULT_DOMAIN]
    shops = [
        SandboxShop.seeded(domain=domain, seed=args.seed + index, orders=args.orders, products=args.products,
                           access_token=args.access_token, client_id=args.client_id, client_secret=args.client_secret)
        for index, domain in enumerate(domains)
    ]
    for shop in shops:
        shop.plan = args.plan
    retries = [float(x) for x in args.webhook_retries.split(",")] if args.webhook_retries else None
    server = SandboxServer(shops, host=args.host, port=args.port, webhook_retry_schedule=retries,
                           response_cache_size=args.response_cache)
    await server.start()
    print(f"local Shopify store (sandbox) at {server.base_url}", flush=True)
    for shop in shops:
        print(f"  shop {shop.domain}: {len(shop.orders)} orders, {len(shop.products)} products, "
              f"{len(shop.customers)} customers", flush=True)
    print(f"  GraphQL:        POST {server.graphql_url()}", flush=True)
    print(f"  access token:   {args.access_token}   (header X-Shopify-Access-Token)", flush=True)
    print(f"  client id:      {args.client_id}", flush=True)
    print(f"  client secret:  {args.client_secret}   (client credentials grant and webhook HMAC)", flush=True)
    print(f"  token grant:    POST {server.base_url}/admin/oauth/access_token", flush=True)
    print(f"  admin surface:  {server.base_url}/_sandbox/shops   (see localstore/README.md)", flush=True)
    try:
        await until_stopped()
    finally:
        await server.stop()
