"""The listener in front of the app, over raw sockets (issue 21 items 4, 5, 6 and 8).

Each test serves the real app with `gateway.server.start_site` (what `gateway serve` runs) and the real logging set-up
(`gateway.logs.configure_logging`, writing to a buffer the test reads).
"""

from __future__ import annotations

import asyncio
import gzip
import io
import logging
import resource
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from aiohttp import web

from gateway.app import create_app
from gateway.logs import MalformedRequestFilter, configure_logging, escape_controls, install_malformed_request_filter
from gateway.ops import get_metrics
from gateway.server import GatewayRunner, start_site
from gateway.settings import ServerSettings, Settings
from tests.fixtures_push import eventually, free_port
from tests.fixtures_query import APP_ID, APP_SECRET, query_settings, sign_for


@dataclass
class Served:
    app: web.Application
    runner: GatewayRunner
    port: int
    log: io.StringIO

    async def exchange(self, raw: bytes) -> bytes:
        """Send raw bytes, read until the server closes (every probe here ends the connection)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(raw)
        await writer.drain()
        try:
            return await reader.read()
        finally:
            writer.close()

    def metric(self, name: str, **labels: str) -> float:
        return get_metrics(self.app).total(name, **labels)


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    level = logging.getLogger().level
    handler = configure_logging("INFO", buffer)
    yield buffer
    logging.getLogger().removeHandler(handler)
    logging.getLogger().setLevel(level)
    install_malformed_request_filter()  # a fresh filter: the next test's first line is not held back


async def serve(settings: Settings, log: io.StringIO, limits: ServerSettings | None = None, app=None) -> Served:
    app = app if app is not None else create_app(settings)
    port = free_port()
    runner = await start_site(app, limits or settings.server, "127.0.0.1", port)
    return Served(app, runner, port, log)


@pytest.fixture
async def served(logged: io.StringIO) -> AsyncIterator[Served]:
    s = await serve(query_settings(), logged)
    yield s
    await s.runner.cleanup()


def post(path: str, headers: dict[str, str], body: bytes) -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"POST {path} HTTP/1.1\r\nHost: gw\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


def status_and_body(reply: bytes) -> tuple[int, bytes]:
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


# --- 4: compressed garbage is a 400 in the caller's dialect ----------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_compressed_garbage_is_a_400_in_the_dialect(served: Served, encoding: str) -> None:
    garbage = b"this is not " + encoding.encode()
    for path, headers, expected in [
        ("/bot/jc1", {"Content-Encoding": encoding, "Connection": "close"}, b'{"success":false,"errors":{"message":'),
        ("/bot/mb", {"Content-Encoding": encoding, "Connection": "close"}, b'{"success":false,"error":{"code":19001'),
        ("/api/openapi/v1/orders/1001", {"Appid": APP_ID, "AppSecret": APP_SECRET, "Content-Encoding": encoding,
                                          "Connection": "close"}, b'{"code":40002'),
    ]:  # fmt: skip
        status, body = status_and_body(await served.exchange(post(path, headers, garbage)))
        assert (status, body[: len(expected)]) == (400, expected), path
    # a webhook is never compressed: the bytes as sent do not match a signature
    headers = {"Content-Encoding": encoding, "Connection": "close", "X-Shopify-Shop-Domain": "demo.myshopify.com"}
    status, body = status_and_body(await served.exchange(post("/webhooks/shopify", headers, garbage)))
    assert (status, body) == (401, b"invalid webhook signature")
    # a body that is valid gzip or deflate (zlib-wrapped or raw) still works: the refusal is about garbage
    body = b'{"method":"test","params":{"token":"t"}}'
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    for encoding, compressed in [("deflate", zlib.compress(body)), ("gzip", gzip.compress(body)),
                                 ("deflate", raw_deflate.compress(body) + raw_deflate.flush())]:  # fmt: skip
        headers = {**sign_for("jc1", body), "Content-Encoding": encoding, "Connection": "close"}
        status, reply = status_and_body(await served.exchange(post("/bot/jc1", headers, compressed)))
        assert (status, reply) == (200, b'{"success":true,"token":"t"}'), encoding
    assert served.metric("gateway_unhandled_errors_total") == 0
    assert "Traceback" not in served.log.getvalue()


async def test_an_encoding_the_gateway_does_not_speak_is_a_400_in_the_dialect(served: Served) -> None:
    """Content-Encoding br (which aiohttp refused as a parse error, with a traceback in the log)."""
    headers = {**sign_for("mb", b"{}"), "Content-Encoding": "br", "Connection": "close"}
    status, body = status_and_body(await served.exchange(post("/bot/mb", headers, b"{}")))
    assert (status, body) == (400, b'{"success":false,"error":{"code":19001,'
                                   b'"message":"unsupported Content-Encoding (use gzip, deflate or none)"}}')
    assert served.log.getvalue() == ""


async def test_a_compressed_body_arriving_after_its_head_is_answered(served: Served) -> None:
    """aiohttp's own decoder left this handler waiting forever: a head, then two bytes that are not deflate."""
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(b"POST /bot/jc1 HTTP/1.1\r\nHost: gw\r\nContent-Encoding: deflate\r\nContent-Length: 2\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.05)  # let the server handle the head alone (the order matters, not the time)
    writer.write(b"{}")
    head = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    assert head.startswith(b"HTTP/1.1 400 ")


async def test_a_bomb_is_refused_at_the_shops_body_cap(served: Served) -> None:
    bomb = gzip.compress(b"{" + b" " * (10 * 1024 * 1024) + b"}")  # 10 KB on the wire, 10 MB decoded
    headers = {**sign_for("jc1", bomb), "Content-Encoding": "gzip", "Connection": "close"}
    status, body = status_and_body(await served.exchange(post("/bot/jc1", headers, bomb)))
    assert status == 413 and body.startswith(b'{"success":false')


# --- 5: HTTP parse errors: one WARNING line, rate-limited, no traceback, no header content ---------------------------

MARKER = "hdr-content-marker"
MALFORMED = {
    "duplicate Content-Length": b"POST /bot/jc1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n"
    b"X-M: " + MARKER.encode() + b"\r\n\r\n{}",
    "TE and CL": b"POST /bot/jc1 HTTP/1.1\r\nHost: x\r\nX-M: " + MARKER.encode() + b"\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "obs-fold": b"POST /bot/jc1 HTTP/1.1\r\nHost: x\r\nX-M: a\r\n " + MARKER.encode() + b"\r\nContent-Length: 2\r\n\r\n{}",
    "NUL in a header": b"POST /bot/jc1 HTTP/1.1\r\nHost: x\r\nX-M: a\x00" + MARKER.encode() + b"\r\n"
    b"Content-Length: 2\r\n\r\n{}",
}


async def test_http_parse_errors_log_one_warning_line_without_header_content(served: Served) -> None:
    for name, raw in MALFORMED.items():
        status, _ = status_and_body(await served.exchange(raw))
        assert status == 400, name
    log = served.log.getvalue()
    lines = log.splitlines()
    assert lines == [line for line in lines if "WARNING aiohttp.server: refused a malformed HTTP request" in line]
    assert len(lines) == 1  # four refusals within the interval: one line
    assert "(BadHttpMessage)" in lines[0] or "Error" in lines[0]
    assert MARKER not in log and "Traceback" not in log and "ERROR" not in log


def test_malformed_request_lines_are_rate_limited_in_virtual_time() -> None:
    now = [1000.0]
    log_filter = MalformedRequestFilter(interval=10, clock=lambda: now[0])
    from aiohttp.http_exceptions import BadHttpMessage

    def record() -> logging.LogRecord:
        exc = BadHttpMessage("bad header: " + MARKER)
        return logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "Error handling request from %s",
                                 ("10.0.0.9",), (BadHttpMessage, exc, None))  # fmt: skip

    first = record()
    assert log_filter.filter(first) and first.levelno == logging.WARNING and first.exc_info is None
    assert first.getMessage() == "refused a malformed HTTP request from 10.0.0.9 (BadHttpMessage)"
    now[0] += 9.9
    assert not log_filter.filter(record()) and not log_filter.filter(record())
    now[0] += 0.1
    third = record()
    assert log_filter.filter(third)
    assert third.getMessage().endswith("(BadHttpMessage); 2 more since the last such line")
    bug = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "Unhandled exception", (),
                            (KeyError, KeyError("x"), None))  # fmt: skip
    assert log_filter.filter(bug) and bug.levelno == logging.ERROR and bug.exc_info is not None  # bugs keep theirs


# --- 8: control characters in logged values are escaped -------------------------------------------------------------


def test_escape_controls() -> None:
    assert escape_controls("a\r\nb\x00\x1b[31m\u2028\t") == "a\\r\\nb\\x00\\x1b[31m\\u2028\\t"
    assert escape_controls("plain Ünïcode") == "plain Ünïcode"


async def test_a_line_break_in_the_open_api_path_cannot_forge_a_log_line(logged: io.StringIO) -> None:
    app = create_app(query_settings())

    async def fails(request: web.Request) -> web.Response:
        raise RuntimeError("a bug")  # reaches the error middleware's one "unhandled" line, which names the path

    app.router.add_post("/api/openapi/v1/probe/{rest}", fails)
    s = await serve(query_settings(), logged, app=app)
    try:
        path = "/api/openapi/v1/probe/1%0D%0A2026-01-01%2000:00:00,000%20ERROR%20gateway:%20FORGED"
        status, _ = status_and_body(await s.exchange(post(path, {"Connection": "close"}, b"{}")))
        assert status == 500
    finally:
        await s.runner.cleanup()
    lines = logged.getvalue().splitlines()
    [line] = [x for x in lines if "unhandled RuntimeError" in x]
    assert "/probe/1\\r\\n2026-01-01 00:00:00,000 ERROR gateway: FORGED" in line
    assert not any(x.startswith("2026-01-01") for x in lines)


# --- 6: header and keep-alive timeouts, a cap on open connections ---------------------------------------------------

LIMITS = ServerSettings(header_timeout_seconds=0.5, keepalive_timeout_seconds=0.5, max_connections=50)
SLOW_SOCKETS = 2000


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    try:
        return await reader.read() == b""
    except ConnectionResetError:
        return True


async def test_two_thousand_silent_sockets_cannot_exhaust_descriptors(logged: io.StringIO) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < SLOW_SOCKETS + 500:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, SLOW_SOCKETS + 1000), hard))
    # timeouts far beyond the test's length: only the cap decides here
    s = await serve(query_settings(), logged, LIMITS.model_copy(update={"header_timeout_seconds": 600, "keepalive_timeout_seconds": 600}))
    server = s.runner.server
    assert server is not None
    sockets: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        most_open = 0
        for _ in range(SLOW_SOCKETS):
            sockets.append(await asyncio.open_connection("127.0.0.1", s.port))  # connects, then says nothing
            await asyncio.sleep(0)  # let the server accept it
            most_open = max(most_open, len(server.connections))
        assert most_open == LIMITS.max_connections
        closed = await asyncio.gather(*(closed_by_server(r) for r, _ in sockets[LIMITS.max_connections:]))
        assert all(closed)  # past the cap: closed at once
        assert s.metric("gateway_connections_refused_total") == SLOW_SOCKETS - LIMITS.max_connections
        refused = await s.exchange(b"GET /healthz HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
        assert refused == b""  # still full: a newcomer is refused too
        for _, writer in sockets[: LIMITS.max_connections]:
            writer.close()
        await eventually(lambda: not server.connections, what="the server to let go of them")
        status, _ = status_and_body(await s.exchange(b"GET /healthz HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"))
        assert status == 200  # and the gateway serves again once they are gone
    finally:
        for _, writer in sockets:
            writer.close()
        await s.runner.cleanup()
    assert "Traceback" not in logged.getvalue()


async def test_a_trickled_request_head_is_cut_at_the_header_timeout(logged: io.StringIO) -> None:
    s = await serve(query_settings(), logged, LIMITS)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        writer.write(b"POST /bot/jc1 HTTP/1.1\r\nHost: gw\r\n")
        # a header line a byte at a time, far longer than the timeout allows (bounded: 2,000 bytes)
        for _ in range(2000):
            if reader.at_eof() or writer.is_closing():
                break
            try:
                writer.write(b"X")
                await writer.drain()
            except ConnectionError:
                break
            await asyncio.sleep(0.01)
        assert await closed_by_server(reader)
        writer.close()
        assert s.metric("gateway_connections_timed_out_total", phase="head") == 1
    finally:
        await s.runner.cleanup()


async def test_a_trickled_body_is_cut_at_the_body_timeout(logged: io.StringIO) -> None:
    s = await serve(query_settings(), logged, LIMITS.model_copy(update={"body_timeout_seconds": 0.5}))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        writer.write(b"POST /bot/jc1 HTTP/1.1\r\nHost: gw\r\nContent-Length: 5000\r\n\r\n{")
        for _ in range(2000):  # a byte at a time, far longer than the timeout allows (bounded)
            if reader.at_eof() or writer.is_closing():
                break
            try:
                writer.write(b" ")
                await writer.drain()
            except ConnectionError:
                break
            await asyncio.sleep(0.01)
        assert await closed_by_server(reader)
        writer.close()
        assert s.metric("gateway_connections_timed_out_total", phase="body") == 1
    finally:
        await s.runner.cleanup()


async def test_an_idle_kept_alive_connection_is_closed(logged: io.StringIO) -> None:
    s = await serve(query_settings(), logged, LIMITS)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        assert await closed_by_server(reader)  # nothing more sent: the keep-alive timeout closes it
        writer.close()
        assert s.metric("gateway_connections_timed_out_total") == 0  # the head came in time
    finally:
        await s.runner.cleanup()
