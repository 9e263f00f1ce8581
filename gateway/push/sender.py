"""Delivers outbox pushes to the bot platform (PROTOCOL §8): signed, idempotent, retried, ordered per order.

One dispatcher claims due pushes from the store and runs up to `concurrency` deliveries at once. Per-order ordering
comes from the store: it only hands out the oldest pending push of each order, so a later push of an order waits while
an earlier one is in flight or waiting for its retry; distinct orders go out in parallel.

Outcomes:
- 2xx, body not `{"success": false, ...}` → delivered.
- `{"success": false}` (e.g. code 10010 "Recipient not found") with a 2xx or 4xx, or any 4xx other than 408/429 →
  dead letter with the reason (retrying would not change the answer).
- 5xx, 408, 429, timeouts and connection errors → retried with exponential backoff and jitter (full jitter between
  half and all of `backoff_base_seconds * 2**attempts`, capped at `backoff_max_seconds`) until the push is older than
  `push.max_age_seconds`, then dead letter.

Leases (docs/replicas.md): a push is claimed for `storage.lease_seconds`, which the replica's heartbeat renews while
the delivery runs (up to `push.timeout_seconds`). Right before the request goes out the sender makes sure the lease
has at least half its length left: claimed less than that ago, or else renewed then, atomically; the push is not sent
when another replica has taken it meanwhile (this one was paused or cut off past its lease). Recording the outcome is
fenced: it applies only while this replica still holds the push. Only a push whose request was already on the wire when its
replica died can reach the platform twice, under the same Idempotency-Key.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from gateway import jsoncodec, signing
from gateway.ops import Metrics
from gateway.push.backoff import backoff_delay
from gateway.push.records import MAX_ANSWER_CHARS, LeaseKind, Push, PushAttempt
from gateway.push.store import PushStore
from gateway.settings import Settings, ShopSettings

log = logging.getLogger(__name__)

#: How often the pushes of a paused shop look again whether it was resumed.
PAUSED_RECHECK_SECONDS = 30.0

#: Minimum sleep of an idle dispatcher (it is woken at once by new work anyway).
IDLE_FLOOR_SECONDS = 0.05
IDLE_CEILING_SECONDS = 1.0


def push_headers(shop: ShopSettings, body: bytes, idempotency_key: str) -> dict[str, str]:
    """The headers of PROTOCOL §8, signed with the shop's first push secret."""
    assert shop.push is not None
    secret = shop.push.secrets[0].get_secret_value()
    headers = {
        "Content-Type": "application/json",
        "X-Shop-Domain": shop.domain,
        "Idempotency-Key": idempotency_key,
    }
    if shop.dialect == "meetbot":
        headers[signing.MEETBOT_HEADER] = signing.sign_hub(secret, body)
    else:
        headers[signing.JOINCHAT_HEADER] = signing.sign_base64(secret, body)
    return headers


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: str  # "delivered" | "retry" | "dead"
    reason: str = ""


def judge(status: int, body: bytes) -> Verdict:
    """Classify the bot platform's answer."""
    try:
        data = jsoncodec.loads(body) if body else None
    except ValueError:
        data = None
    rejected = isinstance(data, dict) and data.get("success") is False
    detail = ""
    if rejected:
        assert isinstance(data, dict)
        err = data.get("errors") or data.get("error") or {}
        if isinstance(err, dict):
            code, msg = err.get("code"), err.get("msg") or err.get("message") or ""
            detail = f"code {code} {msg}".strip() if code is not None else str(msg)
        else:
            detail = str(err)[:200]
    if status >= 500 or status in (408, 429):
        return Verdict("retry", f"HTTP {status}" + (f": {detail}" if detail else ""))
    if 200 <= status < 300:
        return Verdict("dead", f"rejected: {detail or 'success false'}") if rejected else Verdict("delivered")
    return Verdict("dead", f"HTTP {status}" + (f": {detail}" if detail else ""))


@functools.lru_cache(maxsize=64)
def _timeout(seconds: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=seconds)  # immutable: one per distinct setting, not one per push


class PushSender:
    def __init__(
        self,
        settings: Settings,
        store: PushStore,
        session: aiohttp.ClientSession,
        metrics: Metrics | None = None,
        *,
        concurrency: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.store = store
        self.session = session
        self.metrics = metrics or Metrics()
        self.concurrency = concurrency
        #: A claim's lease: short, because the heartbeat renews it while the delivery runs.
        self.lease_seconds = settings.storage.lease_seconds
        self._clock = clock
        self._installed: dict[str, tuple[bool, float]] = {}

    async def run(self) -> None:
        """Dispatch forever (cancel to stop; in-flight deliveries are cancelled and their leases expire, or are
        taken back at once when this replica starts again)."""
        inflight: set[asyncio.Task[None]] = set()
        slot_freed = asyncio.Event()

        def finished(task: asyncio.Task[None]) -> None:
            inflight.discard(task)
            slot_freed.set()

        try:
            while True:
                free = self.concurrency - len(inflight)
                if free <= 0:
                    # An event set by each finishing delivery, not asyncio.wait(inflight): that re-registers a
                    # callback on every in-flight task each time one slot frees up.
                    slot_freed.clear()
                    await slot_freed.wait()
                    continue
                try:
                    claimed_at = self._clock()  # the leases run from at least here
                    pushes = await self.store.delivery.claim_pushes(free, self.lease_seconds)
                except Exception:
                    log.exception("push sender: claim failed")
                    await asyncio.sleep(1)
                    continue
                for push in pushes:
                    task = asyncio.create_task(self._deliver(push, claimed_at))
                    inflight.add(task)
                    task.add_done_callback(finished)
                if len(pushes) == free:
                    continue  # there may be more due right now
                # Fewer than asked: nothing else is claimable now. Sleep until the next retry is due or the store
                # reports new work (a push enqueued, or a delivery unblocking its order's next push).
                due = await self.store.delivery.next_due()
                wait = IDLE_CEILING_SECONDS if due is None else due - time.time()
                await self.store.wait_for_work(min(max(wait, IDLE_FLOOR_SECONDS), IDLE_CEILING_SECONDS))
        finally:
            for task in inflight:
                task.cancel()
            if inflight:
                await asyncio.gather(*inflight, return_exceptions=True)

    async def _shop_installed(self, shop_key: str) -> bool:
        cached = self._installed.get(shop_key)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        installed = await self.store.shops.shop_installed(shop_key)
        self._installed[shop_key] = (installed, now + 5.0)
        return installed

    async def _deliver(self, push: Push, claimed_at: float) -> None:
        try:
            await self._deliver_once(push, claimed_at)
        except asyncio.CancelledError:
            raise
        except Exception:  # never lose the dispatcher to one bad row; the lease brings it back
            log.exception("push %s: delivery crashed", push.id)
        finally:  # settled: no longer held; crashed: its lease expires unrenewed and the push comes back
            self.store.leases.forget_leases(LeaseKind.PUSH, [str(push.id)])

    async def _still_held(self, push: Push, confirmed_at: float) -> bool:
        """Whether this replica may send the push now: it holds a lease with at least half its length left. A lease
        confirmed (claimed) less than half a lease ago by this process's clock is; otherwise (the process was paused,
        or the push waited) the lease is renewed first, atomically, and False means another replica holds the push
        now: this one must not send it. A renewal that itself took half a lease is asked again."""
        while self._clock() - confirmed_at >= self.lease_seconds / 2:
            confirmed_at = self._clock()
            if not await self.store.leases.hold_push(push.id, self.lease_seconds):
                return False
        return True

    async def _deliver_once(self, push: Push, claimed_at: float) -> None:
        shop = self.settings.shops.get(push.shop_key)
        if shop is None or shop.push is None:
            await self._dead(push, "shop or its push settings are no longer configured")
            return
        if not shop.push.enabled:
            await self._dead(push, "pushes are disabled for this shop")
            return
        if shop.paused:  # the operator paused the shop (console): its pushes wait, up to push.max_age_seconds
            if time.time() - push.created_at > shop.push.max_age_seconds:
                await self._dead(push, "the shop stayed paused longer than push.max_age_seconds")
            else:
                await self.store.delivery.schedule_retry(push.id, time.time() + PAUSED_RECHECK_SECONDS, "shop paused")
            return
        if not await self._shop_installed(push.shop_key):
            await self._dead(push, "app uninstalled")
            return
        headers = push_headers(shop, push.body, push.idempotency_key)
        if not await self._still_held(push, claimed_at):
            return  # taken over while this replica could not renew: the replica that holds it now sends it
        started = time.monotonic()
        http_status: int | None = None
        answer = ""
        try:
            async with self.session.post(
                shop.push.url,
                data=push.body,
                headers=headers,
                timeout=_timeout(shop.push.timeout_seconds),
            ) as resp:
                http_status = resp.status
                raw = await resp.read()
                verdict = judge(resp.status, raw)
                answer = raw[: MAX_ANSWER_CHARS * 4].decode("utf-8", "replace")
        except (aiohttp.ClientError, TimeoutError) as exc:
            verdict = Verdict("retry", f"{type(exc).__name__}")
            answer = verdict.reason
        self.metrics.inc("gateway_push_attempts_total", shop=push.shop_key, outcome=verdict.outcome)
        self.metrics.inc("gateway_push_attempt_seconds_total", time.monotonic() - started)
        outcome, delay = verdict.outcome, 0.0
        if outcome == "retry":
            delay = backoff_delay(shop.push.backoff_base_seconds, shop.push.backoff_max_seconds, push.attempts)
            if time.time() + delay - push.created_at > shop.push.max_age_seconds:
                outcome = "dead"  # too old to retry: this attempt was the last
        # The attempt log of `gateway outbox show` and the console: when, the HTTP status, the platform's answer.
        await self.store.delivery.record_attempt(push.id, PushAttempt(time.time(), http_status, answer, outcome))
        if outcome == "delivered":
            await self.store.delivery.mark_delivered(push.id)
            self.metrics.inc("gateway_pushes_delivered_total", shop=push.shop_key, topic=push.topic)
        elif outcome == "retry":
            await self.store.delivery.schedule_retry(push.id, time.time() + delay, verdict.reason)
            self.metrics.inc("gateway_push_retries_total", shop=push.shop_key)
        elif verdict.outcome == "retry":
            await self._dead(push, f"gave up after {push.attempts + 1} attempts: {verdict.reason}")
        else:
            await self._dead(push, verdict.reason)

    async def _dead(self, push: Push, reason: str) -> None:
        log.warning("push %s (%s, shop %s) dead-lettered: %s", push.id, push.topic, push.shop_key, reason)
        await self.store.delivery.dead_letter(push.id, reason)
        self.metrics.inc("gateway_pushes_dead_total", shop=push.shop_key, topic=push.topic)
