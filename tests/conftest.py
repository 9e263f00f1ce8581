"""Shared pytest wiring. Each flow keeps its fixtures in its own plugin module."""

pytest_plugins = [
    "tests.fixtures_sandbox",  # the local Shopify store (SandboxServer, seeded shops)
    "tests.fixtures_query",  # a running gateway for bot queries
    "tests.fixtures_push",  # the bot-platform receiver, push stores (SQLite, Redis)
    "tests.fixtures_console",  # the shipped demo running for real, an operator signing in to the console
    "tests.fixtures_shops",  # a gateway in app mode on the local store, a merchant's browser, a clock to move
]
