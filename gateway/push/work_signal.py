"""The wake-up behind `PushStore.wait_for_work`."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any


class WorkSignal:
    """The wake-up behind `PushStore.wait_for_work` (held by the store): `notify()` after committing new work.

    Every waiting task wakes. Each task's last-seen generation is remembered, so a notification that came between a
    task's previous wait and this one (say, while it was claiming) makes the wait return at once instead of being lost.
    """

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None
        self._generation = 0
        self._seen: weakref.WeakKeyDictionary[asyncio.Task[Any], int] = weakref.WeakKeyDictionary()

    def notify(self) -> None:
        self._generation += 1
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait(self, max_wait_seconds: float) -> None:
        task = asyncio.current_task()
        seen = self._seen.get(task) if task is not None else None
        if task is not None:
            self._seen[task] = self._generation
        if seen is not None and seen != self._generation:
            return  # notified since this task last waited: its claim may have raced the notification
        if self._event is None:
            self._event = asyncio.Event()
        event = self._event
        # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that arrives just as the event is
        # set, and the cancelled worker then runs on, so the app never finishes shutting down (seen as a teardown
        # hang in the tests and a `gateway serve` that ignores SIGTERM).
        try:
            async with asyncio.timeout(max_wait_seconds):
                await event.wait()
        except TimeoutError:
            pass
        if task is not None:
            self._seen[task] = self._generation
