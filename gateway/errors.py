"""The one error middleware: every failure leaves the gateway in the caller's dialect, never as a traceback.

- `/bot/{shop}…` → the shop's bot dialect (joinchat v1 when the shop is unknown), `/api/openapi/…` → the open-API shape,
  anything else (e.g. `/webhooks/shopify`) → plain `{"error": "..."}` JSON.
- Router misses and wrong HTTP methods are rendered the same way (404 / 405 in the dialect of the path).
- Business failures (`NotFound`) are HTTP 200; `StoreUnavailable` is 503 (Shopify failures become it in one place,
  `gateway.lookups.dispatch.store_unavailable`).
- An unexpected exception is a 500 with the dialect's generic body and one log line carrying a request id, the
  exception type and the code locations — never the exception's message, which may hold shopper data.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import traceback
import uuid

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from gateway.dialects.base import Codec, ErrorCodec, ErrorKind, GatewayError, classify
from gateway.dialects.joinchat import JoinChatCodec
from gateway.dialects.openapi import OpenApiCodec
from gateway.lookups.types import LookupFailure
from gateway.ops import get_metrics

log = logging.getLogger("gateway.errors")

BOT_PREFIX = "/bot/"
OPENAPI_PREFIX = "/api/openapi/"
REQUEST_ID_HEADER = "X-Request-Id"
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

#: Set by gateway.query: shop key → that shop's bot codec (so errors of /bot/{shop} speak the shop's dialect).
BOT_CODECS = web.AppKey("bot_codecs", dict[str, Codec])

_DEFAULT_BOT_CODEC = JoinChatCodec(1)
_OPENAPI_CODEC = OpenApiCodec()

_HTTP_KINDS = {
    400: ErrorKind.INVALID,
    401: ErrorKind.BAD_SIGNATURE,
    403: ErrorKind.FORBIDDEN,
    404: ErrorKind.NO_ROUTE,
    405: ErrorKind.METHOD_NOT_ALLOWED,
    413: ErrorKind.TOO_LARGE,
    503: ErrorKind.UNAVAILABLE,
}


def codec_for_path(request: web.Request) -> ErrorCodec | None:
    """The dialect a path speaks; None for paths that answer plain JSON."""
    path = request.path
    if path.startswith(BOT_PREFIX):
        shop_key = path[len(BOT_PREFIX) :].split("/", 1)[0]
        codecs = request.app.get(BOT_CODECS, {})
        return codecs.get(shop_key, _DEFAULT_BOT_CODEC)
    if path.startswith(OPENAPI_PREFIX):
        return _OPENAPI_CODEC
    return None


def request_id(request: web.Request) -> str:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    return given if _SAFE_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex[:16]


def render_error(request: web.Request, err: GatewayError, headers: dict[str, str] | None = None) -> web.Response:
    codec = codec_for_path(request)
    body = codec.error(err) if codec is not None else json.dumps({"error": err.message}).encode()
    resp = web.Response(body=body, status=err.status, content_type="application/json", headers=headers)
    if err.kind is ErrorKind.UNAVAILABLE:
        resp.headers.setdefault("Retry-After", "1")
    return resp


def _http_error(exc: web.HTTPException) -> GatewayError:
    kind = _HTTP_KINDS.get(exc.status)
    if kind is None:
        kind = ErrorKind.INTERNAL if exc.status >= 500 else ErrorKind.INVALID
    return GatewayError(kind, (exc.reason or "").lower())


def _where(exc: BaseException) -> str:
    """Code locations of a traceback, without the exception's message (which may carry shopper data)."""
    frames = traceback.extract_tb(exc.__traceback__)[-4:]
    return " <- ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in reversed(frames))


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GatewayError as err:
        return render_error(request, err)
    except LookupFailure as failure:
        return render_error(request, classify(failure))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and the like pass through
        http_err = _http_error(exc)
        extra = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        resp = render_error(request, http_err, headers=extra)
        if exc.status not in _HTTP_KINDS:
            resp.set_status(exc.status)  # keep statuses we have no kind for (e.g. 415) rather than folding them
        return resp
    except asyncio.CancelledError:
        raise
    except (web.RequestPayloadError, HttpProcessingError):
        # A body aiohttp could not decode (compressed garbage, a broken chunked encoding): the caller's mistake,
        # refused before any signature check could run.
        return render_error(request, GatewayError(ErrorKind.INVALID, "the request body could not be decoded"))
    except (ConnectionResetError, asyncio.IncompleteReadError):
        # The client went away mid-body; there is no one left to answer.
        return render_error(request, GatewayError(ErrorKind.INVALID, "incomplete request"))
    except Exception as exc:
        rid = request_id(request)
        get_metrics(request.app).inc("gateway_unhandled_errors_total")
        log.error(
            "unhandled %s on %s %s request_id=%s at %s",
            type(exc).__name__,
            request.method,
            request.rel_url.path,
            rid,
            _where(exc),
        )
        return render_error(request, GatewayError(ErrorKind.INTERNAL), headers={REQUEST_ID_HEADER: rid})
