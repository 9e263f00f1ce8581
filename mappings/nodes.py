"""Small readers for GraphQL-shaped Shopify nodes (dicts with camelCase keys), shared by the mapping modules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

Node = dict[str, Any]


def dig(node: Any, *keys: str) -> Any:
    """node[k1][k2]... or None as soon as a level is missing or null."""
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def nodes(connection: Any) -> list[Node]:
    """The items of a connection (`{nodes: [...]}` or `{edges: [{node}]}`) or of a plain list field."""
    if connection is None:
        return []
    if isinstance(connection, list):
        return connection
    if "nodes" in connection:
        return connection["nodes"] or []
    return [edge["node"] for edge in connection.get("edges") or []]


#: Shopify ids are 64-bit integers; every one Shopify issues fits in 63 bits, which is what the push store keeps.
MAX_ID = 2**63 - 1


def numeric_id(value: Any) -> int | None:
    """A Shopify id as an int: a JSON integer, a digit string or a gid (`gid://shopify/Order/123`); None for anything
    else (absent, a bool or float, other digits than 0-9, zero, or past MAX_ID)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        tail = value.rsplit("/", 1)[-1].split("?", 1)[0]
        if not (tail.isascii() and tail.isdigit()):
            return None
        number = int(tail)
    else:
        return None
    return number if 0 < number <= MAX_ID else None


def strip_hash(name: Any) -> str:
    """An order or fulfillment name without its one leading '#' ("#1001.1" → "1001.1", "##1001" → "#1001"): the
    number PROTOCOL §5/§6 answer with. "" when the name is not text."""
    return name.strip().removeprefix("#") if isinstance(name, str) else ""


def parse_time(value: Any) -> datetime | None:
    """Shopify DateTime (ISO 8601, 'Z' or an offset; without one, UTC) → aware datetime; None when absent or
    unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def epoch_seconds(value: Any) -> float | None:
    """A Shopify DateTime as Unix seconds; None when absent or unreadable."""
    parsed = parse_time(value)
    return parsed.timestamp() if parsed is not None else None


def iso_utc(value: str | None) -> str:
    """ISO 8601 in UTC with a 'Z' ("2024-04-26T10:00:00Z"), or "" when absent."""
    parsed = parse_time(value)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if parsed else ""


def utc_date(value: str | None) -> str:
    """YYYY-MM-DD of a Shopify DateTime in UTC, or ""."""
    parsed = parse_time(value)
    return parsed.astimezone(UTC).strftime("%Y-%m-%d") if parsed else ""
