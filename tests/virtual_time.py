"""An asyncio event loop on virtual time: `asyncio.sleep`, `wait_for`/`timeout` and `loop.time()` run on a clock that
jumps straight to the next timer when nothing is ready, so hours of simulated traffic take milliseconds.

    result = run_virtual(main(), start=1000.0)

Why not `looptime` (on PyPI, does the same): it is a pytest plugin that patches the loop pytest-asyncio hands an async
test. The simulations here run many independent runs per test (hypothesis examples, and `async` tests cannot be
hypothesis tests), each needing a fresh loop and a fresh clock, driven synchronously; a 40-line loop whose only trick
is visible below does that without a dependency or any plugin interplay with pytest-aiohttp's asyncio mode.

How: `BaseEventLoop._run_once` asks the selector to wait `timeout` seconds (until the next timer) when no callback is
ready. The selector here polls the real one without blocking (so the loop's self-pipe still works) and, when nothing
came, moves the virtual clock forward by `timeout` instead of sleeping. A loop with nothing scheduled and nothing
ready would block forever: that is a deadlock in the simulation, raised as `VirtualDeadlock`. A timer due within the
loop's clock resolution is reached by moving the clock to it (`reach_due_timer`).
"""

from __future__ import annotations

import asyncio
import math
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["VirtualDeadlock", "VirtualTimeLoop", "run_virtual"]

T = TypeVar("T")


class VirtualDeadlock(RuntimeError):
    """The loop had no timer and nothing ready: a real loop would have hung."""


class _FastForwardSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if events:
            return events
        if timeout is None:
            raise VirtualDeadlock("nothing scheduled and nothing ready: the simulation would hang")
        if timeout > 0:
            self._loop.advance(timeout)
        else:
            self._loop.reach_due_timer()
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose `time()` is virtual (starts at `start`, moves only when the loop would wait)."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        super().__init__(selector=_FastForwardSelector(self))
        # the loop runs every timer due within `time() + _clock_resolution`: keep that exact on virtual time
        self._clock_resolution = 1e-9

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def reach_due_timer(self) -> None:
        """The loop is about to run a timer due within its clock resolution (not yet due on the virtual clock): move
        the clock to it, and on by at least one float step. Real time always moves while a loop turns; without this a
        coroutine that waits ever smaller remainders of a deadline (`wait_for(..., 1e-12)`) would spin forever."""
        scheduled = self._scheduled  # (the loop's timer heap)
        if scheduled:
            when = scheduled[0].when()
            if when <= self._now + self._clock_resolution:
                self._now = max(when, math.nextafter(self._now, math.inf))


def run_virtual(main: Coroutine[Any, Any, T], *, start: float = 1000.0) -> T:
    """Run `main` to completion on a fresh virtual-time loop (the clock starting at `start`), then close the loop."""
    loop = VirtualTimeLoop(start)
    try:
        return loop.run_until_complete(main)
    finally:
        try:
            # a run that failed halfway leaves tasks waiting: end them on the loop rather than at garbage collection
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
