"""The local Shopify store ("sandbox"): a test double and demo store that answers Admin GraphQL 2026-10 for real.

    from localstore import SandboxShop, SandboxServer

    shop = SandboxShop.seeded(domain="demo.myshopify.com", seed=42, orders=60, products=30)
    server = SandboxServer([shop], host="127.0.0.1", port=0)
    await server.start()            # server.base_url → the shop's admin_api_base

See localstore/README.md. Imported by tests, the demo and benchmarks only — never by the query or push code.
"""

from localstore.data import SandboxShop
from localstore.server import SandboxServer

__all__ = ["SandboxShop", "SandboxServer"]
