"""Metrics: counters add up per (name, labels), whatever the labels' order, and render in Prometheus text format
(prometheus_client's exposition)."""

from __future__ import annotations

from gateway.ops import Metrics


def test_counters_add_per_labels_and_render() -> None:
    metrics = Metrics()
    metrics.describe("shopify_requests_total", "Requests sent to Shopify.")
    metrics.inc("shopify_requests_total", shop="a")
    metrics.inc("shopify_requests_total", shop="a")
    metrics.inc("shopify_requests_total", 2.5, shop="b")
    metrics.inc("webhooks_total", shop="a", topic="orders/create")
    metrics.inc("webhooks_total", topic="orders/create", shop="a")  # the same sample, labels in another order
    metrics.inc("plain_total")
    metrics.gauge("entries", lambda: 7.0, "Entries.")
    assert metrics.value("shopify_requests_total", shop="a") == 2.0
    assert metrics.value("webhooks_total", topic="orders/create", shop="a") == 2.0
    assert metrics.value("missing_total") == 0.0
    assert metrics.total("shopify_requests_total") == 4.5
    assert metrics.render() == (
        "# HELP entries Entries.\n"
        "# TYPE entries gauge\n"
        "entries 7.0\n"
        "# HELP plain_total \n"
        "# TYPE plain_total counter\n"
        "plain_total 1.0\n"
        "# HELP shopify_requests_total Requests sent to Shopify.\n"
        "# TYPE shopify_requests_total counter\n"
        'shopify_requests_total{shop="a"} 2.0\n'
        'shopify_requests_total{shop="b"} 2.5\n'
        "# HELP webhooks_total \n"
        "# TYPE webhooks_total counter\n"
        'webhooks_total{shop="a",topic="orders/create"} 2.0\n'
    )


def test_counter_cell_adds_to_the_sample_inc_updates() -> None:
    metrics = Metrics()
    cell = metrics.counter("shopify_requests_total", shop="a")
    assert metrics.render() == ""  # not in the scrape before its first add
    cell.add()
    metrics.inc("shopify_requests_total", shop="a")
    cell.add(2.5)
    metrics.counter("webhooks_total", topic="orders/create", shop="a").add()
    metrics.inc("webhooks_total", shop="a", topic="orders/create")
    assert metrics.value("shopify_requests_total", shop="a") == 4.5
    assert metrics.value("webhooks_total", shop="a", topic="orders/create") == 2.0
    assert metrics.render() == (
        "# HELP shopify_requests_total \n"
        "# TYPE shopify_requests_total counter\n"
        'shopify_requests_total{shop="a"} 4.5\n'
        "# HELP webhooks_total \n"
        "# TYPE webhooks_total counter\n"
        'webhooks_total{shop="a",topic="orders/create"} 2.0\n'
    )


def test_label_values_are_escaped_and_a_broken_gauge_is_left_out() -> None:
    metrics = Metrics()
    metrics.inc("odd_total", where='a"b\\c\nd')
    metrics.gauge("broken", lambda: 1 / 0)
    metrics.gauge("cache_hits_total", lambda: 3)
    metrics.describe("cache_hits_total", "Hits.", "counter")  # a counter read from its owner at scrape time
    text = metrics.render()
    assert 'odd_total{where="a\\"b\\\\c\\nd"} 1.0' in text
    assert "broken" not in text
    assert "# TYPE cache_hits_total counter\ncache_hits_total 3.0\n" in text
    assert metrics.total("cache_hits_total") == 3
