"""Console sign-in: the operator token, a signed session cookie, a CSRF token on every form, and a limit on failed
attempts.

- The session cookie is the session's nonce and expiry signed by itsdangerous with a key derived from
  `console.token` (HMAC-SHA256), so it needs no server-side state: it survives restarts and works on every replica;
  changing the token signs everyone out. It is HttpOnly, SameSite=Strict, scoped to /console, and Secure when the
  console is reached over HTTPS.
- Sessions end after `console.session_minutes`; an expired (or signed-out) cookie is refused like no cookie.
- Every POST carries `csrf`, a signature of the session's nonce. The login form carries one too, bound to a
  short-lived pre-login cookie (so a third-party page cannot sign the operator into a session of its choosing).
- Failed sign-ins are limited per client address and overall (gateway.console.signin_limit); a refused burst is
  logged once, and counted in metrics.
- Neither the token nor the cookies are ever logged or rendered.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web
from itsdangerous import BadData, Signer, URLSafeSerializer

from gateway.console.signin_limit import SignInLimiter
from gateway.keys import SETTINGS
from gateway.ops import get_metrics

log = logging.getLogger(__name__)

SESSION_COOKIE = "console_session"
LOGIN_COOKIE = "console_login"
COOKIE_PATH = "/console"
LOGIN_COOKIE_SECONDS = 3600
_DIGEST = hashlib.sha256


def same(given: str, expected: str) -> bool:
    """Constant-time comparison of what a client sent (any characters: bytes, since compare_digest refuses non-ASCII
    str) with what we expect."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


@dataclass(frozen=True, slots=True)
class Session:
    nonce: str
    expires_at: float
    csrf: str


class SessionExpired(Exception):
    """A genuine session cookie whose time is up."""


class Sessions:
    """Issues and checks session cookies and CSRF tokens for one console token."""

    def __init__(self, token: str, lifetime_seconds: float, *, clock: Callable[[], float] = time.time) -> None:
        self._token = token.encode()
        # One salt per use, so a CSRF token can never pass for a session cookie or a login CSRF token
        self._cookies = URLSafeSerializer(token, salt="console-session", signer_kwargs={"digest_method": _DIGEST})
        self._csrf = Signer(token, salt="console-csrf", digest_method=_DIGEST)
        self._login_csrf = Signer(token, salt="console-login", digest_method=_DIGEST)
        self.lifetime = lifetime_seconds
        self._clock = clock
        #: Signed-out nonces → their expiry (this process only; the cookie is cleared in the browser as well).
        self._revoked: dict[str, float] = {}

    def token_matches(self, given: str) -> bool:
        return hmac.compare_digest(given.encode("utf-8", "replace"), self._token)

    def _session(self, nonce: str, expires_at: float) -> Session:
        return Session(nonce, expires_at, self._csrf.get_signature(nonce).decode())

    def issue(self) -> tuple[str, Session]:
        session = self._session(secrets.token_urlsafe(18), self._clock() + self.lifetime)
        return self._cookies.dumps([session.nonce, session.expires_at]), session

    def check(self, cookie: str | None) -> Session | None:
        """The session of a cookie; None when absent or forged; raises SessionExpired when its time is up."""
        if not cookie:
            return None
        try:
            nonce, expires_at = self._cookies.loads(cookie)
        except (BadData, ValueError, TypeError):  # forged, or a signed value of another shape
            return None
        if expires_at <= self._clock() or nonce in self._revoked:
            raise SessionExpired()
        return self._session(nonce, expires_at)

    def revoke(self, session: Session) -> None:
        now = self._clock()
        self._revoked = {n: e for n, e in self._revoked.items() if e > now}
        self._revoked[session.nonce] = session.expires_at

    def login_csrf(self, login_nonce: str) -> str:
        return self._login_csrf.get_signature(login_nonce).decode()


SESSIONS = web.AppKey("console_sessions", Sessions)
SIGNIN_LIMITER = web.AppKey("console_signin_limiter", SignInLimiter)
#: The signed-in session of the request being handled (set by `operator_only`); a RequestKey where aiohttp has them.
REQUEST_SESSION: Any = web.RequestKey("console_session", Session) if hasattr(web, "RequestKey") else "console_session"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def set_cookie(
    request: web.Request, response: web.StreamResponse, name: str, value: str, max_age: int | None
) -> None:
    """`max_age` None: a browser-session cookie (the session's own expiry is enforced here, not by the browser, so an
    operator whose session ran out is told so)."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        # Secure whenever the console is reached over HTTPS (directly, behind a proxy, or by its public URL)
        secure=request.secure
        or request.headers.get("X-Forwarded-Proto", "") == "https"
        or request.app[SETTINGS].server.public_url.startswith("https://"),
    )


def see_other(location: str) -> web.Response:
    """A 303 to a console path (a Response, not a raised HTTPException, so cookies set on it are kept)."""
    return web.Response(status=303, headers={"Location": location})


def console_path(value: object, default: str = "/console") -> str:
    """A path inside the console, or `default`: a form or query field must never send the operator elsewhere."""
    if isinstance(value, str) and (value == "/console" or value.startswith(("/console/", "/console?", "/console#"))):
        if "//" not in value and "\\" not in value and not value.startswith("/console/login"):
            return value
    return default


def _to_login(request: web.Request, expired: bool) -> web.Response:
    query = {"expired": "1"} if expired else {}
    if request.method == "GET" and request.path_qs != "/console":
        query["next"] = request.path_qs  # back there after signing in
    return see_other("/console/login" + ("?" + urlencode(query) if query else ""))


def operator_only(handler: Handler) -> Handler:
    """Signed-in operators only: anyone else is sent to the login page (GET) or refused (POST). Every POST must carry
    the session's CSRF token, else 403 and nothing is done."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        sessions = request.app[SESSIONS]
        try:
            session = sessions.check(request.cookies.get(SESSION_COOKIE))
        except SessionExpired:
            return _to_login(request, expired=True)
        if session is None:
            return _to_login(request, expired=False)
        if request.method == "POST":
            form = await request.post()
            given = form.get("csrf")
            if not isinstance(given, str) or not same(given, session.csrf):
                return forbidden(request)
        request[REQUEST_SESSION] = session
        return await handler(request)

    return guarded


def forbidden(request: web.Request) -> web.Response:
    return aiohttp_jinja2.render_template(
        "error.html",
        request,
        {"title": "Form refused", "message": "This form was stale or did not come from the console. "
         "Go back, reload the page and try again."},
        status=403,
    )  # fmt: skip


async def login_page(request: web.Request, *, status: int = 200, problem: str = "") -> web.StreamResponse:
    sessions = request.app[SESSIONS]
    nonce = secrets.token_urlsafe(18)
    expired = request.query.get("expired") == "1"
    response = aiohttp_jinja2.render_template(
        "login.html",
        request,
        {
            "title": "Sign in",
            "csrf": sessions.login_csrf(nonce),
            "problem": problem or ("Your session expired. Sign in again." if expired else ""),
            "signed_out": request.query.get("signed_out") == "1",
            "next": console_path(request.query.get("next")),
        },
        status=status,
    )
    set_cookie(request, response, LOGIN_COOKIE, nonce, LOGIN_COOKIE_SECONDS)
    return response


async def login_get(request: web.Request) -> web.StreamResponse:
    return await login_page(request)


async def login_post(request: web.Request) -> web.StreamResponse:
    sessions = request.app[SESSIONS]
    limiter = request.app[SIGNIN_LIMITER]
    metrics = get_metrics(request.app)
    address = request.remote or "?"
    refusal = limiter.refusal(address)
    if refusal is not None:
        metrics.inc("gateway_console_signin_refused_total", scope=refusal.scope)
        if refusal.first:  # one line per refused burst, never the tried tokens
            where = address if refusal.scope == "address" else "every address"
            log.warning("console: sign-ins from %s refused for %.0f s after %d failed attempts",
                        where, refusal.retry_after, refusal.failures)  # fmt: skip
        wait = max(1, round(refusal.retry_after))
        response = await login_page(request, status=429, problem=f"Too many failed sign-ins. Try again in {wait} s.")
        response.headers["Retry-After"] = str(wait)
        return response
    form = await request.post()
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    given_csrf = form.get("csrf")
    if not nonce or not isinstance(given_csrf, str) or not same(given_csrf, sessions.login_csrf(nonce)):
        return forbidden(request)
    token = form.get("token")
    if not isinstance(token, str) or not sessions.token_matches(token):
        limiter.failed(address)
        metrics.inc("gateway_console_signin_failures_total")
        log.warning("console: a sign-in with a wrong token from %s", address)  # never the token itself
        return await login_page(request, status=401, problem="That token is not right.")
    limiter.succeeded(address)
    cookie, _ = sessions.issue()
    response = see_other(console_path(form.get("next")))
    set_cookie(request, response, SESSION_COOKIE, cookie, None)
    response.del_cookie(LOGIN_COOKIE, path=COOKIE_PATH)
    log.info("console: operator signed in from %s", address)
    return response


@operator_only
async def logout(request: web.Request) -> web.StreamResponse:
    request.app[SESSIONS].revoke(request[REQUEST_SESSION])
    response = see_other("/console/login?signed_out=1")
    response.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response
