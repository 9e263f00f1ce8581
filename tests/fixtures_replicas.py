"""Gateway replicas as real processes sharing one Redis prefix, and the parts around them that a test steers: a bot
platform that can hold its answers, a door in front of the local store that can hold the push reads, a load balancer
that re-sends a failed webhook to the next replica. Used by tests/test_push_replicas.py and
bench/bench_push_failover.py."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from gateway.push.redis.store import RedisPushStore
from tests.fixtures_push import (
    BotReceiver,
    eventually,
    free_port,
    purge_redis_prefix,
    push_config,
    signed_webhook_headers,
)

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def purge(prefix: str) -> None:
    """Delete every key the replicas kept under `prefix` (each test or bench run uses its own)."""
    janitor = RedisPushStore(REDIS_URL, prefix=prefix)
    await janitor.open()
    try:
        await purge_redis_prefix(janitor)
    finally:
        await janitor.close()


def replica_config(
    *,
    port: int,
    receiver_url: str,
    admin_api_base: str,
    prefix: str = "",
    sqlite_path: Path | None = None,
    lease_seconds: float | None = None,
    heartbeat_seconds: float | None = None,
    push: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One replica's config: shop `demo` read from `admin_api_base`, pushing to `receiver_url`, stored in Redis under
    `prefix` (or in the SQLite file `sqlite_path` the replicas share). Without lease settings the config is one a
    gateway from before leases also accepts (the benchmark runs the branch point too)."""
    raw = push_config(receiver_url, "unused.sqlite3", push=push, admin_api_base=admin_api_base, server={"port": port})
    if sqlite_path is not None:
        raw["storage"] = {"backend": "sqlite", "sqlite_path": str(sqlite_path)}
    else:
        raw["storage"] = {"backend": "redis", "redis_url": REDIS_URL, "redis_prefix": prefix}
    if lease_seconds is not None:
        raw["storage"]["lease_seconds"] = lease_seconds
    if heartbeat_seconds is not None:
        raw["storage"]["heartbeat_seconds"] = heartbeat_seconds
    return raw


@dataclass
class ReplicaProcess:
    """`gateway serve` in a subprocess under GATEWAY_REPLICA_ID=`name`; its log goes to `log` (appended to by every
    start, so a restart's lines follow the first start's). `tree`: the checkout whose `gateway` package runs."""

    name: str
    config: dict[str, Any]
    workdir: Path
    tree: Path = ROOT
    proc: asyncio.subprocess.Process | None = None
    starts: int = 0

    @property
    def port(self) -> int:
        return int(self.config["server"]["port"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.log"

    async def start(self) -> None:
        """Start it and return once /readyz answers 200 (by then its store is open: it has taken back its leases)."""
        config = self.workdir / f"{self.name}.yaml"
        config.write_text(yaml.safe_dump(self.config))
        env = {**os.environ, "GATEWAY_REPLICA_ID": self.name, "PYTHONPATH": str(self.tree)}
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway.cli", "serve", "--config", str(config),
                cwd=self.tree, env=env, stdout=log, stderr=log,
            )  # fmt: skip
        self.starts += 1
        try:
            await eventually(self._ready, within=60, what=f"replica {self.name} ready")
        except BaseException:
            await self.kill()  # never leave a process behind a failed start
            raise

    async def _ready(self) -> bool:
        if self.proc is None or self.proc.returncode is not None:
            raise AssertionError(f"replica {self.name} exited at start:\n{self.log_text()[-3000:]}")
        try:
            async with aiohttp.ClientSession() as session, session.get(f"{self.url}/readyz") as resp:
                return resp.status == 200
        except aiohttp.ClientError:
            return False

    async def kill(self) -> None:
        """SIGKILL (a crash: nothing is flushed, nothing released) and reap it."""
        if self.proc is not None and self.proc.returncode is None:
            self.signal(signal.SIGCONT)  # a paused process dies too, but only once it may run
            self.signal(signal.SIGKILL)
            await self.proc.wait()

    def signal(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.returncode is None:
            os.kill(self.proc.pid, sig)

    async def stop(self) -> None:
        """SIGTERM, as a process manager stops it; SIGKILL if it does not exit within 30 s."""
        if self.proc is None or self.proc.returncode is not None:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            await self.kill()

    async def metrics(self) -> list[tuple[str, dict[str, str], float]]:
        async with aiohttp.ClientSession() as session, session.get(f"{self.url}/metrics") as resp:
            text = await resp.text()
        samples = []
        for line in text.splitlines():
            match = _SAMPLE.match(line)
            if match:
                labels = dict(_LABEL.findall(match.group(2) or ""))
                samples.append((match.group(1), labels, float(match.group(3))))
        return samples

    async def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of `name` whose labels include `labels`."""
        wanted = set(labels.items())
        return sum(v for n, lbl, v in await self.metrics() if n == name and wanted <= set(lbl.items()))

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class HeldReceiver(BotReceiver):
    """A bot platform that records each push on arrival and, while `hold` is set, keeps its answer back: the pushes
    are then in flight (the platform has them; the sending replica has not heard so). `release()` answers them."""

    def __init__(self) -> None:
        super().__init__()
        self._open = asyncio.Event()
        self._open.set()

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    async def handle(self, request: web.Request) -> web.Response:
        response = await super().handle(request)
        await self._open.wait()
        return response


class Door:
    """A proxy in front of the local store for one replica's push reads: while closed, requests wait at the door (a
    replica's claimed events then stay claimed, mid-read); opened, they go through."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = free_port()
        self.waiting = 0
        self._open = asyncio.Event()
        self._open.set()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._open.clear()

    def open(self) -> None:
        self._open.set()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._session = aiohttp.ClientSession()
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        self.open()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.Response:
        self.waiting += 1
        try:
            await self._open.wait()
        finally:
            self.waiting -= 1
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=await request.read(), headers=headers
        ) as upstream:
            body = await upstream.read()
            kept = {k: v for k, v in upstream.headers.items() if k.lower() in ("content-type",)}
            return web.Response(status=upstream.status, body=body, headers=kept)


@dataclass
class LoadBalancer:
    """Posts each webhook to the replicas in turn; a send that fails (the replica is down, or answers 5xx) goes to the
    next replica, as a load balancer retries. `acked` holds the order ids some replica acknowledged."""

    replicas: Sequence[ReplicaProcess]
    acked: set[int] = field(default_factory=set)
    #: What the failed sends got (an HTTP status or an exception name), for a test's failure message.
    failures: list[str] = field(default_factory=list)
    _turn: int = 0

    async def send(self, session: aiohttp.ClientSession, order_id: int, body: bytes, event_id: str) -> bool:
        first = self._turn
        self._turn += 1
        for attempt in range(2 * len(self.replicas)):  # each replica, twice, starting at this webhook's turn
            replica = self.replicas[(first + attempt) % len(self.replicas)]
            headers = signed_webhook_headers("orders/paid", body, event_id=event_id)
            try:
                async with session.post(f"{replica.url}/webhooks/shopify", data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status == 200:
                        self.acked.add(order_id)
                        return True
                    self.failures.append(f"{replica.name}: HTTP {resp.status}")
            except (aiohttp.ClientError, ConnectionError) as exc:
                self.failures.append(f"{replica.name}: {type(exc).__name__}")
        return False


def receipt_orders(receiver: BotReceiver) -> list[int]:
    """The order numbers of the Order/Receipt pushes a receiver accepted, in arrival order (duplicates kept)."""
    return [int(r.body["params"]["order_number"]) for r in receiver.delivered("Order/Receipt")]
