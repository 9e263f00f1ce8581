"""What the gateway's log may hold: one line per record, and no traceback for a stranger's malformed request.

- `EscapingFormatter` escapes control characters (CR, LF, NUL, ESC, …) in every formatted record, so a value a
  client controls (a path with `%0A`, a header) can never start a forged line or drive a terminal. Only the
  traceback of a genuine bug, which the formatter appends after the message, keeps its line breaks.
- `MalformedRequestFilter` sits on aiohttp's server logger, where the HTTP parser's refusals (duplicate
  Content-Length, Transfer-Encoding with Content-Length, obs-fold, NUL in a header, an unsupported
  Content-Encoding, a body that does not decompress, …) arrive as ERROR records with a traceback quoting header
  bytes. It turns each into one WARNING
  line that names the error's class and the peer only, and lets at most one such line through per interval, saying
  how many it held back: a flood of junk cannot fill the disk.
- `configure_logging` installs both; `gateway serve` calls it.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable
from typing import IO

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import RequestPayloadError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: aiohttp's low-level server logs the parser's refusals here.
SERVER_LOGGER = "aiohttp.server"
#: At most one "malformed request" line per this many seconds.
MALFORMED_LOG_INTERVAL_SECONDS = 10.0

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators (some log viewers break lines on them).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_controls(text: str) -> str:
    """`text` with every control character written as an escape (`\\n`, `\\r`, `\\x00`, `\\u2028`)."""

    def escaped(m: re.Match[str]) -> str:
        c = m.group()
        return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")

    return _CONTROL.sub(escaped, text)


class EscapingFormatter(logging.Formatter):
    """A Formatter whose message part (everything but an appended traceback) is always one printable line."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        return escape_controls(super().formatMessage(record))


class MalformedRequestFilter(logging.Filter):
    """Rewrites aiohttp's "Error handling request" records for HTTP parse errors: one WARNING line, no traceback, no
    header content, rate-limited. Records of any other exception (a bug) pass unchanged."""

    def __init__(
        self, interval: float = MALFORMED_LOG_INTERVAL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._interval = interval
        self._clock = clock
        self._next_line_at = float("-inf")
        self._held_back = 0

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        # RequestPayloadError: aiohttp draining a body it could not decode, after the gateway answered 400
        if not isinstance(exc, HttpProcessingError | RequestPayloadError):
            return True
        now = self._clock()
        if now < self._next_line_at:
            self._held_back += 1
            return False
        peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg = "refused a malformed HTTP request from %s (%s)%s"
        held = f"; {self._held_back} more since the last such line" if self._held_back else ""
        record.args = (peer, type(exc).__name__, held)
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        self._next_line_at = now + self._interval
        self._held_back = 0
        return True


class _Installed:
    """What `configure_logging` put in place, so calling it again replaces rather than stacks."""

    handler: logging.Handler | None = None
    log_filter: MalformedRequestFilter | None = None


def install_malformed_request_filter(log_filter: MalformedRequestFilter | None = None) -> MalformedRequestFilter:
    """Put one `MalformedRequestFilter` on aiohttp's server logger (replacing the one installed before)."""
    server_log = logging.getLogger(SERVER_LOGGER)
    if _Installed.log_filter is not None:
        server_log.removeFilter(_Installed.log_filter)
    _Installed.log_filter = log_filter or MalformedRequestFilter()
    server_log.addFilter(_Installed.log_filter)
    return _Installed.log_filter


def configure_logging(level: str | int = "INFO", stream: IO[str] | None = None) -> logging.Handler:
    """The gateway's logging: one root handler with the escaping formatter, and the malformed-request filter."""
    root = logging.getLogger()
    if _Installed.handler is not None:
        root.removeHandler(_Installed.handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(EscapingFormatter(LOG_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    _Installed.handler = handler
    install_malformed_request_filter()
    return handler
