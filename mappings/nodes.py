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


def numeric_id(value: Any) -> int | None:
    """`gid://shopify/Order/123` or "123" or 123 → 123."""
    if value is None:
        return None
    text = str(value).rsplit("/", 1)[-1].split("?", 1)[0]
    return int(text) if text.isascii() and text.isdigit() else None


def strip_hash(name: str | None) -> str:
    """Order / fulfillment name without its leading '#' ("#1001.1" → "1001.1")."""
    return (name or "").strip().removeprefix("#")


def parse_time(value: str | None) -> datetime | None:
    """Shopify DateTime (ISO 8601, 'Z' or offset) → aware datetime; None when absent or unreadable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso_utc(value: str | None) -> str:
    """ISO 8601 in UTC with a 'Z' ("2024-04-26T10:00:00Z"), or "" when absent."""
    parsed = parse_time(value)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if parsed else ""


def utc_date(value: str | None) -> str:
    """YYYY-MM-DD of a Shopify DateTime in UTC, or ""."""
    parsed = parse_time(value)
    return parsed.astimezone(UTC).strftime("%Y-%m-%d") if parsed else ""
