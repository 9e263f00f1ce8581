"""A query's request body: read within the shop's size cap, and decoded when the client compressed it.

The app takes bodies as sent (gateway.app turns aiohttp's decoding off), so this is the one place a body is decoded:
`gzip` and `deflate` (zlib-wrapped as HTTP specifies, or raw as some clients send it) are accepted, at most `cap` bytes
on the wire and at most `cap` once decoded (413, so a small bomb cannot grow past the cap); a body that does not decode
(400) or an encoding the gateway does not speak (400) is the caller's mistake, answered in its dialect.
"""

from __future__ import annotations

import zlib

from aiohttp import web

from gateway.dialects.base import ErrorKind, GatewayError

_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


async def read_body(request: web.Request, cap: int) -> bytes:
    """The body, decoded; refusing (413) anything over `cap` bytes without buffering more than that."""
    return decode(await _read_capped(request, cap), request.headers.get("Content-Encoding", ""), cap)


async def _read_capped(request: web.Request, cap: int) -> bytes:
    length = request.content_length
    if length is not None:
        if length > cap:
            raise GatewayError(ErrorKind.TOO_LARGE)
        return await request.read()
    # Chunked upload: read at most cap + 1 bytes.
    buf = bytearray()
    while True:
        chunk = await request.content.read(cap + 1 - len(buf))
        if not chunk:
            return bytes(buf)
        buf += chunk
        if len(buf) > cap:
            raise GatewayError(ErrorKind.TOO_LARGE)


def decode(raw: bytes, content_encoding: str, cap: int) -> bytes:
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding not in _WBITS:
        raise GatewayError(ErrorKind.INVALID, "unsupported Content-Encoding (use gzip, deflate or none)")
    attempts = [_WBITS[encoding]] + ([-zlib.MAX_WBITS] if encoding == "deflate" else [])
    for wbits in attempts:
        decoder = zlib.decompressobj(wbits)
        try:
            decoded = decoder.decompress(raw, cap + 1)
        except zlib.error:
            continue
        if len(decoded) > cap:
            raise GatewayError(ErrorKind.TOO_LARGE)
        if decoder.eof and not decoder.unused_data:
            return decoded
    raise GatewayError(ErrorKind.INVALID, "the request body could not be decoded")
