"""Operator endpoints: liveness, readiness and Prometheus metrics.

Each flow registers its readiness probes (`add_readiness_check`) and counts what it does in the app's `Metrics`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

ReadinessCheck = Callable[[], Awaitable[str | None]]  # returns None when fine, else a short reason
#: What /readyz reports beside its verdict without failing it (e.g. one shop of many needs its owner): a name and a
#: function returning a JSON-able value, or None / empty to say nothing.
ReadinessDetail = Callable[[], Any]


class Metrics:
    """Counters and gauges rendered in Prometheus text format. Cheap enough for the hot path (a dict add)."""

    def __init__(self) -> None:
        # (name, labels) -> [value]: a one-item list, so adding to a counter is one dict lookup, not a lookup and a
        # store
        self._counters: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = {}
        self._gauges: dict[tuple[str, tuple[tuple[str, str], ...]], Callable[[], float]] = {}
        self._help: dict[str, tuple[str, str]] = {}

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        # most counters carry one label (the shop): nothing to sort
        key = (name, tuple(labels.items()) if len(labels) < 2 else tuple(sorted(labels.items())))
        cell = self._counters.get(key)
        if cell is None:
            cell = self._counters[key] = [0.0]
        cell[0] += value

    def counter(self, name: str, **labels: str) -> Counter:
        """The counter `inc(name, ..., **labels)` adds to, as a cell to keep: a hot path that counts the same sample
        on every request (the Shopify client, per shop) adds to it without building the label key each time."""
        return Counter(self, (name, tuple(sorted(labels.items()))))

    def _cell(self, key: tuple[str, tuple[tuple[str, str], ...]]) -> list[float]:
        cell = self._counters.get(key)
        if cell is None:
            cell = self._counters[key] = [0.0]
        return cell

    def gauge(self, name: str, read: Callable[[], float], help_text: str = "", **labels: str) -> None:
        self._gauges[(name, tuple(sorted(labels.items())))] = read
        if help_text:
            self._help[name] = ("gauge", help_text)

    def describe(self, name: str, help_text: str, kind: str = "counter") -> None:
        self._help[name] = (kind, help_text)

    def value(self, name: str, **labels: str) -> float:
        cell = self._counters.get((name, tuple(sorted(labels.items()))))
        return cell[0] if cell is not None else 0.0

    def total(self, name: str, **labels: str) -> float:
        """The sum of every sample of `name` (counters and gauges) whose labels include `labels`."""
        wanted = set(labels.items())
        found = sum(v for (n, lbl), (v,) in self._counters.items() if n == name and wanted <= set(lbl))
        for (n, lbl), read in self._gauges.items():
            if n == name and wanted <= set(lbl):
                try:
                    found += float(read())
                except Exception:  # a broken gauge reads as nothing, as in the scrape
                    continue
        return found

    def render(self) -> str:
        lines: list[str] = []
        seen: set[str] = set()
        samples: list[tuple[str, tuple[tuple[str, str], ...], float]] = [
            (n, lbl, v) for (n, lbl), (v,) in self._counters.items()
        ]
        for (n, lbl), read in self._gauges.items():
            try:
                samples.append((n, lbl, float(read())))
            except Exception:  # a broken gauge must not break the scrape
                continue
        for name, labels, val in sorted(samples, key=lambda s: (s[0], s[1])):
            if name not in seen:
                seen.add(name)
                kind, help_text = self._help.get(name, ("counter", ""))
                if help_text:
                    lines.append(f"# HELP {name} {help_text}")
                lines.append(f"# TYPE {name} {kind}")
            rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            lines.append(f"{name}{{{rendered}}} {val:g}" if rendered else f"{name} {val:g}")
        return "\n".join(lines) + "\n"


class Counter:
    """One counter sample of a `Metrics` (`Metrics.counter`). It is registered on its first `add`, as `inc` does, so a
    counter nothing has counted yet stays out of the scrape."""

    __slots__ = ("_metrics", "_key", "_value")

    def __init__(self, metrics: Metrics, key: tuple[str, tuple[tuple[str, str], ...]]) -> None:
        self._metrics = metrics
        self._key = key
        self._value: list[float] | None = None  # the Metrics' own cell, once registered

    def add(self, value: float = 1.0) -> None:
        cell = self._value
        if cell is None:
            cell = self._value = self._metrics._cell(self._key)
        cell[0] += value


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


METRICS = web.AppKey("metrics", Metrics)
READINESS = web.AppKey("readiness_checks", list[ReadinessCheck])
READINESS_DETAILS = web.AppKey("readiness_details", dict[str, ReadinessDetail])


def get_metrics(app: web.Application) -> Metrics:
    if METRICS not in app:
        app[METRICS] = Metrics()
    return app[METRICS]


def add_readiness_check(app: web.Application, check: ReadinessCheck) -> None:
    if READINESS not in app:
        app[READINESS] = []
    app[READINESS].append(check)


def add_readiness_detail(app: web.Application, name: str, detail: ReadinessDetail) -> None:
    if READINESS_DETAILS not in app:
        app[READINESS_DETAILS] = {}
    app[READINESS_DETAILS][name] = detail


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    problems = {}
    for check in request.app.get(READINESS, []):
        try:
            reason = await check()
        except Exception as exc:  # a probe that raises is a failed probe, not a 500
            reason = type(exc).__name__
        if reason:
            problems[getattr(check, "__name__", "check")] = reason
    body: dict[str, Any] = {"status": "not ready", "problems": problems} if problems else {"status": "ready"}
    for name, detail in request.app.get(READINESS_DETAILS, {}).items():
        try:
            value = detail()
        except Exception as exc:  # a broken detail must not break the probe
            value = type(exc).__name__
        if value:
            body[name] = value
    return web.json_response(body, status=503 if problems else 200)


async def metrics(request: web.Request) -> web.Response:
    return web.Response(text=get_metrics(request.app).render(), content_type="text/plain", charset="utf-8")


def setup_ops(app: web.Application) -> None:
    get_metrics(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
