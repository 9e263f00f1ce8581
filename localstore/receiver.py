"""A stand-in bot platform for pushes (PROTOCOL §8): `gateway receiver`.

It verifies each push's signature the way the platform does (`X-Joinchat-Signature`, or `X-Hub-Signature` for a
meetbot shop), answers `{"success": true, "recipient_id": ...}`, and prints one line per push. Store owners use it to
watch what the gateway would send before pointing `push.url` at the real platform; the tests use the same class
(`PushReceiver`) as their receiving end, with its failure switches.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway import signing
from gateway.cli_common import add_config_arg, settings_from_args, until_stopped


@dataclass
class ReceivedPush:
    body: dict[str, Any]
    raw: bytes
    headers: dict[str, str]
    at: float  # time.time() on arrival
    status: int  # what the receiver answered


def recipient_value(body: dict[str, Any]) -> str:
    recipient = body.get("recipient") or {}
    return str(next(iter(recipient.values()), "")) if isinstance(recipient, dict) else ""


@dataclass
class PushReceiver:
    """Verifies, records and answers pushes on `POST /push`.

    Failure switches (for tests and for trying the gateway's retries by hand):
    - `fail_next(n, status)` answers the next n pushes with that HTTP status (e.g. 503);
    - `reject_recipients` maps a recipient value (psid/email/phone) to a `success:false` error code (e.g. 10010).
    """

    secrets: list[str]
    dialect: str = "joinchat"
    host: str = "127.0.0.1"
    port: int = 8090
    received: list[ReceivedPush] = field(default_factory=list)
    failures_left: int = 0
    failure_status: int = 503
    reject_recipients: dict[str, int] = field(default_factory=dict)
    bad_signatures: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/push"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/push", self.handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def fail_next(self, n: int, status: int = 503) -> None:
        self.failures_left, self.failure_status = n, status

    def on_push(self, push: ReceivedPush) -> None:
        """Called after every push that passed the signature check; override to react."""

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        header = signing.MEETBOT_HEADER if self.dialect == "meetbot" else signing.JOINCHAT_HEADER
        if not signing.verify(request.headers.get(header), raw, self.secrets):
            self.bad_signatures += 1
            return web.json_response({"success": False, "errors": {"code": 401, "msg": "bad signature"}}, status=401)
        try:
            body = json.loads(raw)
        except ValueError:
            return web.json_response({"success": False, "errors": {"code": 400, "msg": "not JSON"}}, status=400)
        if self.failures_left > 0:
            self.failures_left -= 1
            status, reply = self.failure_status, {"success": False, "errors": {"code": 500, "msg": "down"}}
        else:
            value = recipient_value(body)
            code = self.reject_recipients.get(value)
            if code is not None:
                status, reply = 200, {"success": False, "errors": {"code": code, "msg": "Recipient not found"}}
            else:
                status, reply = 200, {"success": True, "recipient_id": value}
        push = ReceivedPush(body, raw, dict(request.headers), time.time(), status)
        self.received.append(push)
        self.on_push(push)
        return web.json_response(reply, status=status)

    def delivered(self, topic: str | None = None) -> list[ReceivedPush]:
        """Pushes this receiver accepted (HTTP 200 and success:true), optionally of one topic."""
        return [
            r
            for r in self.received
            if r.status == 200
            and recipient_value(r.body) not in self.reject_recipients
            and (topic is None or r.body.get("request", {}).get("topic") == topic)
        ]


def _mask(value: str) -> str:
    """Enough to tell recipients apart on a console, not enough to read an email or phone off it."""
    return value[:2] + "…" + value[-2:] if len(value) > 6 else "…"


def describe(push: ReceivedPush) -> str:
    body = push.body
    params = body.get("params") or {}
    recipient = body.get("recipient") or {}
    kind = next(iter(recipient), "?") if isinstance(recipient, dict) else "?"
    what = params.get("tracking_status") or params.get("status") or ""
    order = params.get("order_number") or params.get("tracking_number") or ""
    return (
        f"{time.strftime('%H:%M:%S', time.localtime(push.at))}  {body.get('request', {}).get('topic', '?'):<15} "
        f"order/tracking {order:<22} {what:<18} to {kind} {_mask(recipient_value(body))}  "
        f"Idempotency-Key {push.headers.get('Idempotency-Key', '-')}"
    )


class PrintingReceiver(PushReceiver):
    def on_push(self, push: ReceivedPush) -> None:
        print(describe(push), flush=True)


def cmd_receiver(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    key = args.shop or next((k for k, s in settings.shops.items() if s.push is not None), None)
    shop = settings.shops.get(key) if key else None
    if shop is None or shop.push is None:
        print("gateway receiver: no shop with a push section (use --shop)", file=sys.stderr)
        return 2
    receiver = PrintingReceiver(
        secrets=[s.get_secret_value() for s in shop.push.secrets], dialect=shop.dialect, host=args.host, port=args.port
    )

    async def run() -> None:
        await receiver.start()
        print(f"receiving pushes for shop {key} at {receiver.url} (set push.url to it); Ctrl-C stops", flush=True)
        try:
            await until_stopped()
        finally:
            await receiver.stop()

    try:
        asyncio.run(run())
    except OSError as err:
        print(f"gateway receiver: cannot listen: {err.strerror or err}", file=sys.stderr)
        return 1
    print(f"{len(receiver.delivered())} pushes accepted, {receiver.bad_signatures} with a bad signature")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]

    p = sub.add_parser("receiver", help="a stand-in bot platform: verify, print and accept the gateway's pushes")
    add_config_arg(p)
    p.add_argument("--shop", default=None, help="shop key whose push secrets to verify with (default: the first with push)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    p.set_defaults(func=cmd_receiver)
