"""Redis pub/sub as the gateway uses it (redis.asyncio): the push store's wake-ups and the cache fan-out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import redis.asyncio as aioredis

log = logging.getLogger(__name__)


class Subscription:
    """One channel, its messages' data handed to `on_message` by a task of its own until `close()`.

    `open` returns once Redis confirmed the subscription (at most ~5 s): from then on no message is missed. The
    listener survives Redis going away (redis-py reconnects and resubscribes) and bad messages; `who` names it in
    the logs."""

    def __init__(self, client: aioredis.Redis, channel: str, on_message: Callable[[bytes], None], who: str) -> None:
        self.channel = channel
        self._pubsub = client.pubsub()
        self._on_message = on_message
        self._who = who
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls, client: aioredis.Redis, channel: str, on_message: Callable[[bytes], None], who: str
    ) -> Subscription:
        self = cls(client, channel, on_message, who)
        await self._pubsub.subscribe(channel)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            msg = await self._pubsub.get_message(timeout=1.0)
            if msg is not None and msg.get("type") == "subscribe":
                break
        self._task = asyncio.create_task(self._listen(), name=f"{who} listener".replace(" ", "-"))
        return self

    async def close(self) -> None:
        if self._task is not None:
            self._stopping = True  # a flag as well as cancel(): redis-py may swallow the cancellation
            self._task.cancel()
            await asyncio.wait([self._task], timeout=2.0)
            self._task = None
        await self._pubsub.aclose()

    async def _listen(self) -> None:
        while not self._stopping:
            try:
                msg = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis went away: redis-py reconnects and resubscribes on the next read
                log.warning("%s: pub/sub read failed (%s); retrying", self._who, type(exc).__name__)
                await asyncio.sleep(0.5)
                continue
            if msg is None or msg.get("type") != "message":
                continue
            try:
                self._on_message(msg["data"])
            except Exception:  # one bad message must not stop the listener
                log.exception("%s: bad pub/sub message on %s", self._who, self.channel)
