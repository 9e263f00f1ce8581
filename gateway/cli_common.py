"""What every `gateway` sub-command shares: the `--config` argument, loading the settings, waiting for a stop signal,
freezing start-up objects once serving.

Kept apart from `gateway.cli` (the entry point that wires the sub-commands) so sub-command modules never import it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
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


#: Young collections after this many net allocations instead of CPython's 700: the requests in flight keep thousands
#: of young objects alive at once, and with the default each young collection walks all of them again.
YOUNG_GC_THRESHOLD = 10_000


def freeze_startup_objects() -> None:
    """Once the server is up: move what start-up allocated (modules, pydantic schemas, settings, the sandbox's seed:
    tens of thousands of long-lived objects) out of the garbage collector's reach. Every full collection would walk
    them again, and under a burst of cache misses collections come often (profiled: about a tenth of the gateway's
    CPU per miss). Then raise the young generation's threshold above what the requests in flight keep alive
    (YOUNG_GC_THRESHOLD). Only for a process that serves until it stops; tests, which build many apps, don't."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, older, oldest)
