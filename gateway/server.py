"""The HTTP server around the app, with the limits a public listener needs (issue 21.6).

aiohttp's defaults keep a silent socket open for an hour and accept every connection the kernel hands over, so a
few thousand slow sockets exhaust the process's file descriptors. `GatewayRunner` serves the app with:
- a header timeout: a connection that has not sent a complete request head within `header_timeout_seconds` of
  opening is closed (sending a byte now and then does not extend it);
- a body timeout: a request whose body has not fully arrived `body_timeout_seconds` after its head is cut off
  (a slow body holds a handler as long as it trickles);
- a keep-alive timeout: a connection idle (or stuck in a request head) for `keepalive_timeout_seconds` after a
  response is closed (aiohttp's own timer, set from the config);
- a cap on open connections: past `max_connections`, a new connection is closed at once, so descriptors stay
  bounded whatever the peers do.
Each refusal is counted in the metrics, never logged per connection (a flood would fill the log).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from gateway.ops import Metrics, get_metrics
from gateway.settings import ServerSettings


class GuardedServer(web.Server):
    """aiohttp's low-level server, plus the connection cap and the header timeout."""

    def __init__(self, handler: Any, *, limits: ServerSettings, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._max_connections = limits.max_connections
        self._header_timeout = limits.header_timeout_seconds
        self._body_timeout = limits.body_timeout_seconds
        self._metrics = metrics
        #: connections still waiting for their first request head → the timer that closes them
        self._head_timers: dict[RequestHandler, asyncio.TimerHandle] = {}
        make_request = self.request_factory

        def request_started(message: Any, payload: Any, protocol: RequestHandler, writer: Any, task: Any) -> Any:
            timer = self._head_timers.pop(protocol, None)
            if timer is not None:
                timer.cancel()
            if not payload.is_eof() and protocol.transport is not None:  # the body is still on its way
                asyncio.get_running_loop().call_later(self._body_timeout, self._body_overdue, payload, protocol.transport)
            return make_request(message, payload, protocol, writer, task)

        self.request_factory = request_started
        metrics.gauge("gateway_open_connections", lambda: len(self._connections), "Open HTTP connections.")
        metrics.describe("gateway_connections_refused_total", "Connections closed at once: max_connections reached.")
        metrics.describe(
            "gateway_connections_timed_out_total", "Connections closed for a request head or body not sent in time."
        )

    def __call__(self) -> asyncio.Protocol:  # type: ignore[override]
        """The protocol of a new connection: aiohttp's handler, or past the cap one that closes it at once."""
        if len(self._connections) >= self._max_connections:
            self._metrics.inc("gateway_connections_refused_total")
            return _Refused()
        return super().__call__()

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self._head_timers[handler] = asyncio.get_running_loop().call_later(
            self._header_timeout, self._head_overdue, handler, transport
        )

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        timer = self._head_timers.pop(handler, None)
        if timer is not None:
            timer.cancel()
        super().connection_lost(handler, exc)

    def _head_overdue(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        if self._head_timers.pop(handler, None) is not None:
            self._metrics.inc("gateway_connections_timed_out_total", phase="head")
            transport.abort()

    def _body_overdue(self, payload: Any, transport: asyncio.BaseTransport) -> None:
        # done by now (complete, failed, or answered without reading it: aiohttp then marks it failed): nothing to do
        if not payload.is_eof() and payload.exception() is None and not transport.is_closing():
            self._metrics.inc("gateway_connections_timed_out_total", phase="body")
            transport.abort()  # type: ignore[attr-defined]


class _Refused(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.abort()  # type: ignore[attr-defined]


class GatewayRunner(web.AppRunner):
    """An AppRunner whose server applies `server.keepalive_timeout_seconds`, `header_timeout_seconds` and
    `max_connections`. No access log: requests carry shopper data in their paths and bodies."""

    def __init__(self, app: web.Application, limits: ServerSettings, **kwargs: Any) -> None:
        super().__init__(app, access_log=None, keepalive_timeout=limits.keepalive_timeout_seconds, **kwargs)
        self._limits = limits

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # starts the app; the server it builds is only read for its wiring
        return GuardedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            limits=self._limits,
            metrics=get_metrics(self.app),
            **plain._kwargs,
        )


async def start_site(app: web.Application, limits: ServerSettings, host: str, port: int) -> GatewayRunner:
    """Serve `app` at host:port with the server limits; the caller awaits `runner.cleanup()` to stop."""
    runner = GatewayRunner(app, limits)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
