"""Webhook deliveries of the local store, signed and retried like Shopify's, with knobs to misbehave on purpose.

`server.webhooks` (a `WebhookDispatcher`) sends every change a shop emits to the subscriptions created through
`webhookSubscriptionCreate`. Knobs (plain attributes, also settable through `POST /_sandbox/webhooks`):

- `paused` — hold deliveries in `pending`; `resume()` releases them, `release()` sends them without unpausing;
- `release_order` — "fifo" (default), "reverse" or "shuffle": the order in which held deliveries are released
  (out-of-order delivery);
- `duplicates` — send every delivery this many times (same Webhook-Id and Event-Id, as Shopify's duplicates are);
- `delay` — seconds before each first attempt (late delivery);
- `drop_next` — drop the next N deliveries entirely (a lost webhook);
- `retry_schedule` — seconds between attempts after a non-2xx or a connection error; default Shopify's
  8 retries over ~4 h; tests use e.g. [0.05, 0.1, 0.2];
- `timeout` — per attempt (Shopify waits 5 s).

`log` lists every attempt (`DeliveryAttempt`: topic, ids, attempt number, status code or error); `await drain()`
waits until nothing is in flight (held deliveries stay held). One aiohttp ClientSession serves every delivery.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp

from gateway.signing import SHOPIFY_HEADER, sign_base64

if TYPE_CHECKING:
    from localstore.data import SandboxShop
    from localstore.records import Record

SHOPIFY_RETRY_SCHEDULE = [60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 3840.0, 7680.0]  # 8 retries, ~4 h in all


@dataclass
class Delivery:
    shop_domain: str
    topic: str
    uri: str
    body: bytes
    headers: dict[str, str]
    webhook_id: str
    event_id: str
    attempts: int = 0
    status: int | None = None
    outcome: str = "pending"  # pending | delivered | gave_up | dropped

    @property
    def payload(self) -> Any:
        return json.loads(self.body)


@dataclass
class DeliveryAttempt:
    topic: str
    uri: str
    webhook_id: str
    event_id: str
    attempt: int
    status: int | None
    error: str | None
    at: float = field(default_factory=lambda: datetime.now(UTC).timestamp())


class WebhookDispatcher:
    def __init__(self, api_version: str = "2026-10", retry_schedule: list[float] | None = None, seed: int = 0,
                 clock: Callable[[], float] = time.time) -> None:
        self.api_version = api_version
        self.clock = clock  # X-Shopify-Triggered-At
        self.retry_schedule: list[float] = list(SHOPIFY_RETRY_SCHEDULE if retry_schedule is None else retry_schedule)
        self.timeout = 5.0
        self._default_knobs()
        self.pending: list[Delivery] = []
        self.deliveries: list[Delivery] = []
        self.log: list[DeliveryAttempt] = []
        self._rng = random.Random(seed)
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------------------------------ knobs

    def configure(self, **settings: Any) -> None:
        for key, value in settings.items():
            if key not in ("paused", "release_order", "duplicates", "delay", "drop_next", "retry_schedule", "timeout"):
                raise KeyError(f"unknown webhook setting {key!r}")
            if key == "paused":
                self.resume() if not value else self.pause()
                continue
            setattr(self, key, list(value) if key == "retry_schedule" else value)

    def settings(self) -> dict[str, Any]:
        return {"paused": self.paused, "release_order": self.release_order, "duplicates": self.duplicates,
                "delay": self.delay, "drop_next": self.drop_next, "retry_schedule": self.retry_schedule,
                "timeout": self.timeout, "pending": len(self.pending), "in_flight": len(self._tasks)}

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self.release()

    def release(self) -> None:
        """Send every held delivery now (in `release_order`), paused or not."""
        held, self.pending = self.pending, []
        if self.release_order == "reverse":
            held.reverse()
        elif self.release_order == "shuffle":
            self._rng.shuffle(held)
        for delivery in held:
            self._launch(delivery, delay=0.0)

    def reset(self) -> None:
        self.pending.clear()
        self.deliveries.clear()
        self.log.clear()
        self._default_knobs()

    def _default_knobs(self) -> None:
        """The misbehaviour knobs at their defaults: deliver at once, in order, once each (schedule and timeout stay)."""
        self.paused = False
        self.release_order = "fifo"
        self.duplicates = 1
        self.delay = 0.0
        self.drop_next = 0

    async def drain(self, max_wait: float = 30.0) -> None:
        """Wait until every delivery in flight was answered with 2xx or gave up (held deliveries stay held)."""
        async with asyncio.timeout(max_wait):
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # ------------------------------------------------------------------------------------------ emission

    def emit(self, shop: SandboxShop, topic: str, payload: Record) -> None:
        """Called by the shop on every change: one delivery per matching subscription."""
        enum_topic = topic.upper().replace("/", "_")
        body = json.dumps(payload, separators=(",", ":")).encode()
        triggered = datetime.fromtimestamp(self.clock(), UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        event_id = str(uuid.uuid4())
        for sub in list(shop.webhook_subscriptions):
            if sub["topic"] != enum_topic:
                continue
            webhook_id = str(uuid.uuid4())
            headers = {
                "Content-Type": "application/json",
                "X-Shopify-Topic": topic,
                "X-Shopify-Shop-Domain": shop.domain,
                "X-Shopify-API-Version": self.api_version,
                "X-Shopify-Webhook-Id": webhook_id,
                "X-Shopify-Event-Id": event_id,
                "X-Shopify-Triggered-At": triggered,
                SHOPIFY_HEADER: sign_base64(shop.client_secret or "", body),
            }
            for _ in range(max(1, self.duplicates)):
                delivery = Delivery(shop.domain, topic, sub["uri"], body, dict(headers), webhook_id, event_id)
                self.deliveries.append(delivery)
                if self.drop_next > 0:
                    self.drop_next -= 1
                    delivery.outcome = "dropped"
                    continue
                if self.paused:
                    self.pending.append(delivery)
                else:
                    self._launch(delivery, delay=self.delay)

    def _launch(self, delivery: Delivery, delay: float) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(delivery, delay))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, delivery: Delivery, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        await self.start()
        assert self._session is not None
        schedule = list(self.retry_schedule)
        while True:
            delivery.attempts += 1
            status: int | None = None
            error: str | None = None
            try:
                async with self._session.post(delivery.uri, data=delivery.body, headers=delivery.headers,
                                              timeout=aiohttp.ClientTimeout(total=self.timeout)) as response:
                    status = response.status
                    await response.read()
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                error = type(exc).__name__
            delivery.status = status
            self.log.append(DeliveryAttempt(delivery.topic, delivery.uri, delivery.webhook_id, delivery.event_id,
                                            delivery.attempts, status, error))
            if status is not None and 200 <= status < 300:
                delivery.outcome = "delivered"
                return
            if not schedule:
                delivery.outcome = "gave_up"
                return
            await asyncio.sleep(schedule.pop(0))

    # ------------------------------------------------------------------------------------------ inspection

    def attempts_for(self, topic: str | None = None) -> list[DeliveryAttempt]:
        return [a for a in self.log if topic is None or a.topic == topic]

    def delivered(self, topic: str | None = None) -> list[Delivery]:
        return [d for d in self.deliveries if d.outcome == "delivered" and (topic is None or d.topic == topic)]
