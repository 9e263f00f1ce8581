"""How long the push pipeline waits before trying again: a failed delivery (gateway.push.sender) and a failed push
read (gateway.push.holds) back off the same way, by the shop's `push.backoff_base_seconds` / `backoff_max_seconds`."""

from __future__ import annotations

import random


def backoff_delay(base: float, ceiling: float, earlier_failures: int) -> float:
    """Seconds to wait after a failure that followed `earlier_failures` others in a row: `base` doubled with each,
    capped at `ceiling`, with jitter (between half and all of it) so that what failed together does not come back
    together."""
    top = min(ceiling, base * 2 ** min(earlier_failures, 30))
    return random.uniform(top / 2, top)
