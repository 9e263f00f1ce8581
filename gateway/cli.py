"""The `gateway` command: serve | check-config | ask | sign | sandbox | webhooks ... | outbox ... | replay.

Each flow registers its own subcommands (`register(subparsers)`); this module only wires them and runs `serve`.
What the sub-commands share (`--config`, loading settings, waiting for a stop signal) is in `gateway.cli_common`,
so no sub-command imports this entry point.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable

from gateway import query_cli
from gateway.cli_common import add_config_arg, freeze_startup_objects, settings_from_args, until_stopped
from gateway.logs import configure_logging
from gateway.push import cli as push_cli
from gateway.settings import ConfigError, Settings
from localstore import cli as localstore_cli
from localstore import receiver


async def _serve(settings: Settings, host: str, port: int) -> None:
    from gateway.app import create_app
    from gateway.server import start_site

    sandbox = None
    if settings.sandbox.enabled:
        # The demo: the local Shopify store runs in the same process, seeded, answering the shops configured for it.
        from localstore.server import SandboxServer

        sandbox = SandboxServer.for_settings(settings)
        await sandbox.start()
        logging.getLogger("gateway").info("local Shopify store (sandbox) at %s", sandbox.base_url)

    runner = await start_site(create_app(settings), settings.server, host, port)
    logging.getLogger("gateway").info(
        "gateway listening on http://%s:%s (shops: %s)", host, port, ", ".join(settings.shops)
    )
    print(f"gateway: serving on http://{host}:{port}  shops: {', '.join(settings.shops)}", flush=True)
    if settings.console.enabled:
        # the address only, never the token: the operator knows it (config.yaml's demo default, or the env)
        print(f"gateway: operator console at http://{host}:{port}/console", flush=True)
    freeze_startup_objects()
    try:
        await until_stopped()
    finally:
        await runner.cleanup()
        if sandbox is not None:
            await sandbox.stop()


def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    configure_logging(settings.server.log_level)
    host = args.host or settings.server.host
    port = settings.server.port if args.port is None else args.port
    server = settings.server
    if server.public_url.rstrip("/") == f"http://{server.host}:{server.port}" and (host, port) != (server.host, server.port):
        # The public URL only mirrored the listen address (the local demo): it moves with --host/--port, so the
        # webhook subscriptions point at where the gateway really listens.
        moved = server.model_copy(update={"host": host, "port": port, "public_url": f"http://{host}:{port}"})
        settings = settings.model_copy(update={"server": moved})
    try:
        asyncio.run(_serve(settings, host, port))
    except OSError as err:  # most often: the port is taken (another gateway or demo store is running)
        print(f"gateway: cannot serve: {err.strerror or err}", file=sys.stderr)
        return 1
    except ConfigError as err:  # found while starting: a GATEWAY_REPLICA_ID that is no replica id
        print(f"gateway: {err}", file=sys.stderr)
        return 2
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    for key, shop in settings.shops.items():
        extras = []
        if shop.openapi:
            extras.append("openapi")
        if shop.push and shop.push.enabled:
            extras.append("push → " + ", ".join(shop.push.topics))
        dialect = f"joinchat v{shop.joinchat_version}" if shop.dialect == "joinchat" else shop.dialect
        print(f"{key}: {shop.domain} via {shop.admin_base_url} (API {shop.api_version}, {shop.auth.mode}), "
              f"{dialect}" + (f"; {'; '.join(extras)}" if extras else ""))
    if settings.app is not None:
        app = settings.app
        print(f"app mode: client id {app.client_id}, scopes {','.join(app.scopes)}; shops connected from the browser "
              f"are kept in the {settings.storage.backend} store (App URL {settings.server.public_url}/shopify/install)")
    print(f"config OK: {len(settings.shops)} shop(s), storage {settings.storage.backend}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the gateway (and the demo store when the config enables it)")
    add_config_arg(p)
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("check-config", help="validate config.yaml and summarise it")
    add_config_arg(p)
    p.set_defaults(func=cmd_check_config)

    registrars: list[Callable[[argparse._SubParsersAction], None]] = [  # type: ignore[type-arg]
        query_cli.register, localstore_cli.register, push_cli.register, receiver.register
    ]
    for register in registrars:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
