"""Failed console sign-ins: a limit per client address and one over all addresses, with growing waits (issue 21.3).

A pause per wrong guess does not slow a guesser who sends sixty guesses at once; a count does. Each address may fail
`failures_per_address` times; from then on each further failure makes it wait, `first_delay_seconds` and doubling
up to `max_delay_seconds`, and while it waits its attempts are refused without looking at the token. The same rule
over every address together (`failures_overall`) slows a guesser spread over many addresses; it can also make the
operator wait, which is the price of not letting the guessing go on. Failures are forgotten after
`forget_after_seconds` without one, and an address that signs in is forgiven.

Pure logic on an injectable clock: the console's handler asks `refusal` before checking a token, reports `failed` or
`succeeded` after, and logs a refusal only when `Refusal.first` (one line per refused burst).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from gateway.settings import SignInLimits

#: Addresses remembered at most (the oldest is forgotten first): a flood of addresses cannot grow memory.
MAX_ADDRESSES = 10_000
OVERALL = "all addresses"


@dataclass
class _Failures:
    count: int = 0
    last_at: float = float("-inf")
    wait_until: float = float("-inf")
    refusal_logged: bool = False


@dataclass(frozen=True, slots=True)
class Refusal:
    scope: str  # "address" or "overall"
    retry_after: float  # seconds
    failures: int  # failures counted in that scope
    first: bool  # the first refusal of this wait: the one to log


class SignInLimiter:
    def __init__(self, limits: SignInLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self._limits = limits
        self._clock = clock
        self._by_address: OrderedDict[str, _Failures] = OrderedDict()
        self._overall = _Failures()

    def refusal(self, address: str) -> Refusal | None:
        """Why `address` may not try now (None: it may)."""
        now = self._clock()
        for scope, failures in (("address", self._by_address.get(address)), ("overall", self._overall)):
            if failures is not None and now < failures.wait_until:
                first = not failures.refusal_logged
                failures.refusal_logged = True
                return Refusal(scope, failures.wait_until - now, failures.count, first)
        return None

    def failed(self, address: str) -> None:
        now = self._clock()
        failures = self._by_address.pop(address, None) or _Failures()
        self._by_address[address] = failures  # now the most recent
        if len(self._by_address) > MAX_ADDRESSES:
            self._by_address.popitem(last=False)
        self._count(failures, self._limits.failures_per_address, now)
        self._count(self._overall, self._limits.failures_overall, now)

    def succeeded(self, address: str) -> None:
        self._by_address.pop(address, None)

    def _count(self, failures: _Failures, free: int, now: float) -> None:
        if now - failures.last_at > self._limits.forget_after_seconds:
            failures.count = 0
        failures.count += 1
        failures.last_at = now
        if failures.count >= free:
            limits = self._limits
            wait = min(limits.max_delay_seconds, limits.first_delay_seconds * 2 ** min(failures.count - free, 32))
            failures.wait_until = now + wait
            failures.refusal_logged = False
