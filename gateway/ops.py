"""Operator endpoints: liveness, readiness and Prometheus metrics.

Each flow registers its readiness probes (`add_readiness_check`) and counts what it does in the app's `Metrics`.
`/metrics` is rendered by prometheus_client from the app's own registry, with the process's figures (open file
descriptors, memory, CPU) beside the gateway's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

ReadinessCheck = Callable[[], Awaitable[str | None]]  # returns None when fine, else a short reason
#: What /readyz reports beside its verdict without failing it (e.g. one shop of many needs its owner): a name and a
#: function returning a JSON-able value, or None / empty to say nothing.
ReadinessDetail = Callable[[], Any]
_Key = tuple[str, tuple[tuple[str, str], ...]]  # (name, sorted labels)


class Metrics:
    """The app's counters and gauges, named and labelled freely at the call site (`inc("x_total", shop=k)`), and
    exposed through prometheus_client, which renders them (`render`, the `/metrics` body).

    Values stay plain floats in a dict, so counting is a dict update on the hot path; a gauge is a function read at
    scrape time (the lookup cache's counters are such functions, declared of kind "counter" by `describe`)."""

    def __init__(self) -> None:
        self._counters: dict[_Key, list[float]] = {}  # a one-item list: `Counter` cells add to it in place
        self._gauges: dict[_Key, Callable[[], float]] = {}
        self._help: dict[str, tuple[str, str]] = {}  # name -> (kind, help text)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Families(self))

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        self._cell((name, tuple(sorted(labels.items()))))[0] += value

    def counter(self, name: str, **labels: str) -> Counter:
        """The counter `inc(name, ..., **labels)` adds to, as a cell to keep (the Shopify client counts the same
        sample on every request)."""
        return Counter(self, (name, tuple(sorted(labels.items()))))

    def _cell(self, key: _Key) -> list[float]:
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
        return sum(v for (n, lbl), v in self._samples() if n == name and wanted <= set(lbl))

    def _samples(self) -> Iterator[tuple[_Key, float]]:
        for key, (value,) in self._counters.items():
            yield key, value
        for key, read in self._gauges.items():
            try:
                yield key, float(read())
            except Exception:  # a broken gauge must not break the scrape: it reads as absent
                continue

    def families(self) -> Iterator[Metric]:
        """Every sample, grouped in metric families (what the registry exposes)."""
        families: dict[str, Metric] = {}
        for (name, labels), value in sorted(self._samples()):
            family = families.get(name)
            if family is None:
                kind, help_text = self._help.get(name, ("counter", ""))
                if kind == "counter" and not name.endswith("_total"):
                    kind = "unknown"  # Prometheus names every counter *_total; anything else is exposed untyped
                # a counter family is named without its _total suffix, which its samples carry
                family = families[name] = Metric(name.removesuffix("_total") if kind == "counter" else name,
                                                 help_text, kind)  # fmt: skip
            family.add_sample(name, dict(labels), value)
        yield from families.values()

    def render(self) -> str:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry).decode()


class _Families(Collector):
    """The registry's view of a `Metrics` (not the Metrics itself: a collector's `describe` means something else)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics.families()


class Counter:
    """One counter sample of a `Metrics` (`Metrics.counter`). It is registered on its first `add`, as `inc` does, so a
    counter nothing has counted yet stays out of the scrape."""

    __slots__ = ("_metrics", "_key", "_value")

    def __init__(self, metrics: Metrics, key: _Key) -> None:
        self._metrics = metrics
        self._key = key
        self._value: list[float] | None = None  # the Metrics' own cell, once registered

    def add(self, value: float = 1.0) -> None:
        if self._value is None:
            self._value = self._metrics._cell(self._key)
        self._value[0] += value


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
    body = generate_latest(get_metrics(request.app).registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup_ops(app: web.Application) -> None:
    ProcessCollector(registry=get_metrics(app).registry)  # process_open_fds, process_max_fds, memory, CPU
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
