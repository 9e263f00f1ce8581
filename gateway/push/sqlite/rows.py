"""Rows of the SQLite push store as records, and the small SQL helpers every role uses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.push.records import EventStatus, Push, PushStatus, StoredEvent, WebhookMeta

#: The outbox columns `push_from_row` reads, in its order.
OUTBOX_COLUMNS = (
    "id, shop_key, dedupe_key, idempotency_key, order_id, topic, body, status, created_at, due_at, attempts, "
    "last_error, delivered_at, fulfillment_id"
)
#: The events columns `event_from_row` reads, in its order.
EVENT_COLUMNS = (
    "seq, shop_key, event_id, topic, webhook_id, triggered_at, api_version, body, received_at, status, error"
)


def placeholders(values: Sequence[Any]) -> str:
    """The placeholders of an `IN (...)` over `values`."""
    return ",".join("?" * len(values))


def chunks(values: Sequence[int], size: int = 500) -> list[Sequence[int]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def event_from_row(r: Sequence[Any]) -> StoredEvent:
    return StoredEvent(
        seq=r[0],
        shop_key=r[1],
        event_id=r[2],
        meta=WebhookMeta(topic=r[3], webhook_id=r[4], triggered_at=r[5], api_version=r[6]),
        body=bytes(r[7]),
        received_at=r[8],
        status=EventStatus(r[9]),
        error=r[10],
    )


def push_from_row(r: Sequence[Any]) -> Push:
    return Push(
        id=r[0],
        shop_key=r[1],
        dedupe_key=r[2],
        idempotency_key=r[3],
        order_id=r[4],
        topic=r[5],
        body=bytes(r[6]),
        status=PushStatus(r[7]),
        created_at=r[8],
        due_at=r[9],
        attempts=r[10],
        last_error=r[11],
        delivered_at=r[12],
        fulfillment_id=r[13],
    )
