"""Shopify's example bodies (tests/data/shopify/, copied from ../shared/shopify/) and the walk that checks a webhook
body carries no key Shopify's example for its topic lacks.

The reference shape of a topic is its webhook example (`webhooks/*.json`, API 2026-07). Where that example has an
empty list or a null (the orders/* examples have no discounts, fulfillments, refunds or note attributes; the product
example has no image), the element shape comes from Shopify's REST example of the same resource (`rest/*.json`),
which is the documented shape of those elements; nothing else is taken from REST. A body may carry fewer keys than
the example and nulls anywhere (values may be null where Shopify's may be), never more keys.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data" / "shopify"

#: topic → (webhook example, (REST example, its root key) filling the webhook example's empty lists and nulls)
TOPIC_EXAMPLES: dict[str, tuple[str, tuple[str, str]]] = {
    "orders/create": ("orders_create", ("order_get", "order")),
    "orders/updated": ("orders_updated", ("order_get", "order")),
    "orders/paid": ("orders_paid", ("order_get", "order")),
    "orders/cancelled": ("orders_cancelled", ("order_get", "order")),
    # Shopify documents orders/fulfilled and orders/partially_fulfilled with the same order body as the four above.
    "orders/fulfilled": ("orders_updated", ("order_get", "order")),
    "orders/partially_fulfilled": ("orders_updated", ("order_get", "order")),
    "fulfillments/create": ("fulfillments_create", ("fulfillment_get", "fulfillment")),
    "fulfillments/update": ("fulfillments_update", ("fulfillment_get", "fulfillment")),
    "fulfillment_events/create": ("fulfillment_events_create", ("fulfillment_event_get", "fulfillment_event")),
    "products/update": ("products_update", ("product_get", "product")),
}


#: Keys Shopify's Order reference documents for list elements its examples show in one variant only: a discount
#: application shows `code` (discount codes) in the example, `title` (automatic, manual, script) and `description`
#: (manual, script) in the reference.
DOCUMENTED_ORDER_KEYS: dict[str, set[str]] = {"discount_applications": {"title", "description"}}


def example(topic: str) -> Any:
    """Shopify's example webhook body for `topic`, ids parsed as exact integers."""
    name, _ = TOPIC_EXAMPLES[topic]
    return json.loads((DATA / "webhooks" / f"{name}.json").read_text())


@cache
def reference_shape(topic: str) -> Any:
    _, (rest_name, root) = TOPIC_EXAMPLES[topic]
    rest = json.loads((DATA / "rest" / f"{rest_name}.json").read_text())[root]
    shape = _filled(example(topic), rest)
    if root == "order":
        for key, documented in DOCUMENTED_ORDER_KEYS.items():
            shape[key][0].update(dict.fromkeys(documented))
    return shape


def extra_keys(body: Any, shape: Any, path: str = "$") -> list[str]:
    """Paths in `body` that `shape` has no room for: a key it lacks, an object or a list where it has a scalar (or the
    reverse), list elements where neither example has any. Dicts are compared by key, lists by their element shape;
    a null fits anywhere."""
    if isinstance(body, dict):
        if not isinstance(shape, dict):
            return [f"{path} (an object where Shopify's example has {_kind(shape)})"]
        found: list[str] = []
        for key, value in body.items():
            if key not in shape:
                found.append(f"{path}.{key}")
            else:
                found.extend(extra_keys(value, shape[key], f"{path}.{key}"))
        return found
    if isinstance(body, list):
        if not isinstance(shape, list):
            return [f"{path} (a list where Shopify's example has {_kind(shape)})"]
        if body and not shape:
            return [f"{path}[] (elements where Shopify's examples have none)"]
        return sorted({p for item in body for p in extra_keys(item, shape[0], f"{path}[]")})
    if body is not None and isinstance(shape, dict | list):
        return [f"{path} (a {type(body).__name__} where Shopify's example has {_kind(shape)})"]
    return []


def _kind(shape: Any) -> str:
    return "null" if shape is None else type(shape).__name__


def _union(a: Any, b: Any) -> Any:
    """One shape covering both: dicts by key, lists by the union of their elements, a value over a null."""
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: _union(a.get(k), b.get(k)) if k in a and k in b else a.get(k, b.get(k)) for k in {**a, **b}}
    if isinstance(a, list) and isinstance(b, list):
        return _elements(a + b)
    return b if a is None or a == [] else a


def _elements(items: list[Any]) -> list[Any]:
    """A list shape: [] or the one element shape covering all of `items`."""
    if not items:
        return []
    merged = items[0]
    for item in items[1:]:
        merged = _union(merged, item)
    return [merged]


def _filled(shape: Any, rest: Any) -> Any:
    """`shape` with its empty lists and nulls replaced by the REST example's shape at the same place."""
    if isinstance(shape, dict):
        rest_dict = rest if isinstance(rest, dict) else {}
        return {k: _filled(v, rest_dict.get(k)) for k, v in shape.items()}
    if isinstance(shape, list):
        rest_items = _elements(rest) if isinstance(rest, list) else []
        if not shape:
            return rest_items
        return [_filled(_elements(shape)[0], rest_items[0] if rest_items else None)]
    if shape is None and isinstance(rest, dict | list) and rest:
        return _filled(rest, None)
    return shape
