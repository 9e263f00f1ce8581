"""Fault injection for the local store's Admin API (`server.faults`), switchable at run time.

Every knob applies to `POST /admin/api/{version}/graphql.json` only (the OAuth and admin endpoints stay healthy so
tests can always reach them). Set them from Python (`server.faults.latency = 0.05`) or over HTTP
(`POST /_sandbox/faults {"latency": 0.05}`; `DELETE /_sandbox/faults` clears everything).

- `latency` — fixed seconds added before answering; `latency_range` = [low, high] adds a random delay instead;
- `error_rate` — probability (0..1) of answering `error_status` (default 503); `fail_next` — the next N requests do;
  `fail_after` — the next N requests are answered, every one after them fails (-1, the default: off);
- `hang_next` / `hang` — the next N requests (or every request while `hang` is true) never get an answer (the server
  sleeps `hang_seconds`, default 3600): the client's timeout is what ends them;
- `reset_next` / `reset_rate` — close the connection without an answer (the client sees a disconnect);
- `throttle_next` — the next N requests answer THROTTLED whatever the bucket holds.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

Fault = Literal["ok", "error", "hang", "reset", "throttle"]


@dataclass
class Faults:
    latency: float = 0.0
    latency_range: list[float] | None = None
    error_rate: float = 0.0
    error_status: int = 503
    fail_next: int = 0
    fail_after: int = -1
    hang: bool = False
    hang_next: int = 0
    hang_seconds: float = 3600.0
    reset_rate: float = 0.0
    reset_next: int = 0
    throttle_next: int = 0
    seed: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        self._rng.seed(self.seed)

    def set(self, **settings: Any) -> None:
        known = {f.name for f in fields(self) if not f.name.startswith("_")}
        for key, value in settings.items():
            if key not in known:
                raise KeyError(f"unknown fault {key!r} (known: {', '.join(sorted(known))})")
            setattr(self, key, value)
        if "seed" in settings:
            self._rng.seed(self.seed)

    def clear(self) -> None:
        for f in fields(self):
            if not f.name.startswith("_") and f.name != "seed":
                setattr(self, f.name, f.default)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}

    def delay(self) -> float:
        if self.latency_range:
            low, high = self.latency_range
            return self._rng.uniform(low, high)
        return self.latency

    def next_fault(self) -> Fault:
        """What the next request suffers (consumes one of the `*_next` counters)."""
        if self.hang or self.hang_next > 0:
            self.hang_next = max(0, self.hang_next - 1)
            return "hang"
        if self.reset_next > 0:
            self.reset_next -= 1
            return "reset"
        if self.fail_next > 0:
            self.fail_next -= 1
            return "error"
        if self.fail_after == 0:
            return "error"
        if self.fail_after > 0:
            self.fail_after -= 1
        if self.throttle_next > 0:
            self.throttle_next -= 1
            return "throttle"
        if self.reset_rate and self._rng.random() < self.reset_rate:
            return "reset"
        if self.error_rate and self._rng.random() < self.error_rate:
            return "error"
        return "ok"
