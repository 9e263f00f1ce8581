"""Console sign-in limits (issue 21.3) and the preview of text that is no order id (21.9).

The limit's arithmetic runs in virtual time (`SignInLimiter` on a fake clock); the HTTP tests send real parallel
attempts to the shipped demo.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from gateway.console.signin_limit import SignInLimiter
from gateway.ops import get_metrics
from gateway.settings import SignInLimits
from tests.fixtures_console import CONSOLE_TOKEN, ConsoleDemo, Operator

LIMITS = SignInLimits(
    failures_per_address=3, failures_overall=10, first_delay_seconds=2, max_delay_seconds=30, forget_after_seconds=600
)


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def test_waits_grow_per_address_and_are_capped() -> None:
    clock = Clock()
    limiter = SignInLimiter(LIMITS, clock)
    for _ in range(2):
        assert limiter.refusal("10.0.0.1") is None
        limiter.failed("10.0.0.1")
    assert limiter.refusal("10.0.0.1") is None  # two failures are free
    waits = []
    for _ in range(6):
        limiter.failed("10.0.0.1")
        refusal = limiter.refusal("10.0.0.1")
        assert refusal is not None and refusal.scope == "address" and refusal.first
        assert not limiter.refusal("10.0.0.1").first  # type: ignore[union-attr]  # the same wait: logged once
        waits.append(refusal.retry_after)
        clock.now += refusal.retry_after  # wait it out, then fail again
        assert limiter.refusal("10.0.0.1") is None
    assert waits == [2, 4, 8, 16, 30, 30]
    assert limiter.refusal("10.0.0.2") is None  # another address is not held


def test_failures_are_forgotten_after_a_quiet_period_and_a_success_forgives() -> None:
    clock = Clock()
    limiter = SignInLimiter(LIMITS, clock)
    limiter.failed("a")
    limiter.failed("a")
    clock.now += 601
    limiter.failed("a")  # counted from one again
    assert limiter.refusal("a") is None
    limiter.failed("a")
    limiter.succeeded("a")
    limiter.failed("a")
    assert limiter.refusal("a") is None


def test_the_overall_limit_holds_a_guesser_spread_over_addresses() -> None:
    clock = Clock()
    limiter = SignInLimiter(LIMITS, clock)
    for i in range(10):
        assert limiter.refusal(f"10.0.1.{i}") is None
        limiter.failed(f"10.0.1.{i}")  # one failure per address: never the per-address limit
    refusal = limiter.refusal("10.0.9.9")  # a fresh address waits too
    assert refusal is not None and refusal.scope == "overall" and refusal.retry_after == 2 and refusal.first
    clock.now += 2
    assert limiter.refusal("10.0.9.9") is None
    limiter.failed("10.0.9.9")
    assert limiter.refusal("10.0.9.8").retry_after == 4  # type: ignore[union-attr]


async def test_parallel_guesses_are_refused_unread_and_the_burst_is_logged_once(
    console_demo: Any, operator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    demo: ConsoleDemo = await console_demo()
    op: Operator = operator(demo.base_url)
    csrf = await op.csrf("/console/login")  # one login form's CSRF pair for every guess, as the probe did
    caplog.set_level(logging.INFO)
    guesses = [f"guess-{i:04d}-wrong-token" for i in range(60)]
    replies = await asyncio.gather(*(op.post("/console/login", {"csrf": csrf, "token": g}) for g in guesses))
    statuses = sorted(status for status, _, _ in replies)
    free = demo.settings.console.signin.failures_per_address
    assert statuses == [401] * free + [429] * (60 - free)
    refused = next(resp for status, _, resp in replies if status == 429)
    assert int(refused.headers["Retry-After"]) >= 1
    assert any("Too many failed sign-ins" in html for status, html, _ in replies if status == 429)
    metrics = get_metrics(demo.app)
    assert metrics.total("gateway_console_signin_failures_total") == free
    assert metrics.total("gateway_console_signin_refused_total", scope="address") == 60 - free
    refusals = [r for r in caplog.records if "refused for" in r.getMessage()]
    assert len(refusals) == 1 and "127.0.0.1" in refusals[0].getMessage()
    assert not any(g in caplog.text for g in guesses)
    # while the address waits, even the right token is not looked at
    status, _, _ = await op.sign_in(CONSOLE_TOKEN)
    assert status == 429 and op.cookie("console_session") is None
    text = await (await op.session.get(demo.base_url + "/metrics")).text()
    assert 'gateway_console_signin_refused_total{scope="address"} 56' in text


async def test_preview_of_text_that_is_no_order_id_renders_the_page(console_demo: Any, operator: Any) -> None:
    demo: ConsoleDemo = await console_demo()
    op: Operator = operator(demo.base_url)
    status, _, _ = await op.sign_in()
    assert status == 303
    status, html, resp = await op.get("/console/preview?shop=demo&order=a%20b")
    assert status == 200 and resp.content_type == "text/html"
    assert "order_number is not a valid number" in html  # the shop's own dialect says why
    assert "order_id is not valid" in html and "40002" in html  # and the open API's answer is shown, not raised
