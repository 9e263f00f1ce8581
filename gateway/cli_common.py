"""What every `gateway` sub-command shares: the `--config` argument, loading the settings, waiting for a stop signal.

Kept apart from `gateway.cli` (the entry point that wires the sub-commands) so sub-command modules never import it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from gateway.settings import ConfigError, Settings, load_settings

DEFAULT_CONFIG = "config.yaml"


def add_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", default=DEFAULT_CONFIG, help="path to config.yaml (default: %(default)s)")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Load the config or exit with the message that names the bad field."""
    try:
        return load_settings(args.config)
    except ConfigError as err:
        print(f"gateway: {err}", file=sys.stderr)
        raise SystemExit(2) from None


async def until_stopped() -> None:
    """Return on SIGINT or SIGTERM (Ctrl-C, `kill`, a process manager's stop), so the caller's cleanup runs."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
