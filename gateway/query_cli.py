"""`gateway ask` and `gateway sign`: the store owner's stand-in for the bot platform's "test" button.

    gateway ask jc1 orders --param order_number=1001              # signed exactly as the shop's platform signs
    gateway ask jc1 orders --param user_account=bob@example.com --page 2 --limit 5
    gateway ask jc1 orders --param order_number:=1001              # k:=v sends v as JSON (a number here)
    gateway ask --openapi 1001 --machine 12345678 [SHOP]           # the open-API order query (Appid/AppSecret/payload)
    gateway sign jc1 --file body.json                              # prints the signature header line ('-' = stdin)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import time
import uuid
from typing import Any

import aiohttp

from gateway import signing
from gateway.cli_common import add_config_arg, settings_from_args
from gateway.settings import Settings, ShopSettings
from gateway.shops.backends import with_connected_shops


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """`k=v` → string value; `k:=v` → v parsed as JSON (numbers, booleans, null)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        if ":=" in pair and pair.index(":=") + 1 == pair.index("="):
            key, raw = pair.split(":=", 1)
            try:
                params[key] = json.loads(raw)
            except ValueError:
                raise SystemExit(f"gateway ask: --param {key}:= needs a JSON value") from None
        elif "=" in pair:
            key, value = pair.split("=", 1)
            params[key] = value
        else:
            raise SystemExit(f"gateway ask: --param wants key=value, got {pair!r}")
    return params


def bot_body(shop: ShopSettings, method: str, params: dict[str, Any], page: int | None, limit: int | None) -> bytes:
    """The query body as the shop's platform sends it."""
    body: dict[str, Any]
    if shop.dialect == "meetbot":
        request = {"category": "ecommerce", "method": method, "id": f"cli_{uuid.uuid4().hex[:8]}", "page_id": "",
                   "meta": ""}
        body = {"request": request, "params": params}
    else:
        body = {"method": method, "params": params}
    if page is not None or limit is not None:
        body["pagination"] = {k: v for k, v in (("page", page), ("limit", limit)) if v is not None}
    return json.dumps(body, ensure_ascii=False).encode()


def signature_header(shop: ShopSettings, body: bytes) -> tuple[str, str]:
    """(header, value) the shop's platform would send, with the shop's first secret."""
    secret = shop.secrets[0].get_secret_value()
    if shop.dialect == "meetbot":
        return signing.MEETBOT_HEADER, signing.sign_hub(secret, body)
    return signing.JOINCHAT_HEADER, signing.sign_base64(secret, body)


def openapi_request(shop: ShopSettings, machine: str, now: float | None = None) -> tuple[dict[str, str], bytes]:
    assert shop.openapi is not None
    inner = json.dumps({"machine_no": machine, "timestamp": str(int(time.time() if now is None else now))})
    body = json.dumps({"payload": base64.b64encode(inner.encode()).decode()}).encode()
    headers = {"Appid": shop.openapi.app_id, "AppSecret": shop.openapi.app_secret.get_secret_value()}
    return headers, body


def _pick_shop(settings: Settings, key: str | None, need_openapi: bool) -> tuple[str, ShopSettings]:
    if key is None:
        candidates = [(k, s) for k, s in settings.shops.items() if s.openapi or not need_openapi]
        if len(candidates) != 1:
            raise SystemExit("gateway: name the shop (several shops are configured)")
        return candidates[0]
    if key not in settings.shops:
        raise SystemExit(f"gateway: no shop {key!r} (shops: {', '.join(settings.shops)})")
    shop = settings.shops[key]
    if need_openapi and shop.openapi is None:
        raise SystemExit(f"gateway: shop {key!r} has no openapi section")
    return key, shop


async def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.post(url, data=body, headers={"Content-Type": "application/json", **headers}) as resp:
            return resp.status, await resp.text()


def _shops_settings(args: argparse.Namespace) -> Settings:
    """The config, with the shops connected from the browser (app mode) read from the store."""
    settings = settings_from_args(args)
    try:
        return with_connected_shops(settings)
    except OSError as err:
        print(f"gateway: connected shops not read ({err}); config shops only", file=sys.stderr)
        return settings


def cmd_ask(args: argparse.Namespace) -> int:
    settings = _shops_settings(args)
    base = (args.url or f"http://{settings.server.host}:{settings.server.port}").rstrip("/")
    if args.openapi is not None:
        key, shop = _pick_shop(settings, args.shop, need_openapi=True)
        headers, body = openapi_request(shop, args.machine)
        url = f"{base}/api/openapi/v1/orders/{args.openapi}"
    else:
        if args.shop is None or args.method is None:
            raise SystemExit("gateway ask: give SHOP and METHOD (or --openapi ORDER_ID)")
        key, shop = _pick_shop(settings, args.shop, need_openapi=False)
        body = bot_body(shop, args.method, parse_params(args.param), args.page, args.limit)
        header, value = signature_header(shop, body)
        headers = {header: value}
        url = f"{base}/bot/{key}"
    try:
        status, text = asyncio.run(_post(url, body, headers))
    except aiohttp.ClientError as err:
        print(f"gateway ask: cannot reach {url}: {err}", file=sys.stderr)
        return 1
    try:
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        pass
    print(f"HTTP {status}", file=sys.stderr)
    print(text)
    return 0 if status < 400 else 1


def cmd_sign(args: argparse.Namespace) -> int:
    settings = _shops_settings(args)
    _, shop = _pick_shop(settings, args.shop, need_openapi=False)
    if args.file == "-":
        body = sys.stdin.buffer.read()
    else:
        with open(args.file, "rb") as fh:
            body = fh.read()
    header, value = signature_header(shop, body)
    print(f"{header}: {value}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("ask", help="send a signed query as the shop's bot platform would, print the reply")
    add_config_arg(p)
    p.add_argument("shop", nargs="?", help="shop key in the config")
    p.add_argument("method", nargs="?", help="test | orders | packages | products | property")
    p.add_argument("--param", "-p", action="append", default=[], metavar="K=V",
                   help="a query parameter (repeatable); K:=V sends V as JSON")
    p.add_argument("--page", type=int, default=None)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--url", default=None, help="gateway base URL (default: server.host/port of the config)")
    p.add_argument("--openapi", metavar="ORDER_ID", default=None, help="send the open-API order query instead")
    p.add_argument("--machine", default="00000000", help="8-digit machine number for --openapi")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("sign", help="print the signature header the shop's platform would send for a body")
    add_config_arg(p)
    p.add_argument("shop", help="shop key in the config")
    p.add_argument("--file", "-f", default="-", help="the body file ('-' = stdin, the default)")
    p.set_defaults(func=cmd_sign)
