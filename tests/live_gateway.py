"""The local store (the default shops, seeded) and a gateway app served from a thread with its own event loop, so
that hypothesis tests, which are not coroutines, probe it with plain blocking HTTP."""

from __future__ import annotations

import asyncio
import http.client
import threading
from collections.abc import Callable

from aiohttp import web

from gateway.app import create_app
from gateway.keys import SETTINGS
from gateway.server import start_site
from gateway.settings import Settings
from localstore import SandboxServer, SandboxShop
from tests.fixtures_push import free_port
from tests.fixtures_query import DEFAULT_DOMAINS, SANDBOX_CLIENT_SECRET, TOKENS


class LiveGateway:
    """`settings_for(store base URL)` configures the gateway; `started()` runs on the loop once both serve."""

    def __init__(self, settings_for: Callable[[str], Settings], *, ready_within: float = 60) -> None:
        self._settings_for = settings_for
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(ready_within):
            raise RuntimeError("the gateway did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self._ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        shops = [SandboxShop.seeded(domain=d, seed=42, orders=30, products=20, access_token=TOKENS[k],
                                    client_secret=SANDBOX_CLIENT_SECRET) for k, d in DEFAULT_DOMAINS.items()]
        self.store = SandboxServer(shops, host="127.0.0.1", port=0)
        await self.store.start()
        self.app: web.Application = create_app(self._settings_for(self.store.base_url))
        self.port = free_port()
        self.runner = await start_site(self.app, self.app[SETTINGS].server, "127.0.0.1", self.port)
        await self.started()

    async def started(self) -> None:
        """What a harness adds once the gateway serves (nothing here)."""

    def stop(self) -> None:
        async def stop() -> None:
            await self.runner.cleanup()
            await self.store.stop()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, list[tuple[str, str]]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read(), resp.getheaders()
        finally:
            conn.close()
