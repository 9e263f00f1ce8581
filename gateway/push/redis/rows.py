"""Redis values of the push store as records, and the small conversions every role uses (redis-py returns bytes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.push.lease_book import Taken
from gateway.push.records import EventStatus, LeaseKind, Push, PushStatus, StoredEvent, WebhookMeta

#: The fields of a push hash (P:push:<id>) and of an event hash (P:ev:<seq>) that `push_from_row` and
#: `event_from_row` read, in their order; the claim scripts return the same fields (spliced into the Lua).
PUSH_FIELDS = ("shop", "dkey", "ikey", "oid", "topic", "body", "status", "created", "due", "attempts", "err",
                "delivered", "fid")  # fmt: skip
EVENT_FIELDS = ("shop", "eid", "topic", "wid", "trig", "apiv", "body", "recv", "status", "error")


def text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def ints(values: Any) -> list[int]:
    """Members of a sorted set (redis-py types them loosely) as ints."""
    return [int(v) for v in values]


def opt_int(value: bytes | str | None) -> int | None:
    return int(value) if value not in (None, b"", "") else None  # type: ignore[arg-type]


def num(value: float) -> str:
    return repr(float(value))


def opt(value: object) -> str:
    return "" if value is None else str(value)


def glob_escape(value: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in value)


def push_from_row(row: Sequence[Any]) -> Push:
    (pid, shop, dkey, ikey, oid, topic, body, status, created, due, attempts, err, delivered, fid) = row
    return Push(
        id=int(pid),
        shop_key=text(shop),
        dedupe_key=text(dkey),
        idempotency_key=text(ikey),
        order_id=int(oid),
        topic=text(topic),
        body=bytes(body),
        status=PushStatus(text(status)),
        created_at=float(created),
        due_at=float(due),
        attempts=int(attempts),
        last_error=text(err),
        delivered_at=float(delivered) if delivered else None,
        fulfillment_id=opt_int(fid),
    )


def event_from_row(row: Sequence[Any]) -> StoredEvent:
    (seq, shop, eid, topic, wid, trig, apiv, body, recv, status, error) = row
    return StoredEvent(
        seq=int(seq),
        shop_key=text(shop),
        event_id=text(eid),
        meta=WebhookMeta(topic=text(topic), webhook_id=text(wid), triggered_at=text(trig), api_version=text(apiv)),
        body=bytes(body),
        received_at=float(recv),
        status=EventStatus(text(status)),
        error=text(error),
    )


#: How a lease is named in the held sets and the renewal script: "<letter>:<lease id>".
LEASE_LETTER = {LeaseKind.EVENT: "e", LeaseKind.PUSH: "p", LeaseKind.CHECK: "c"}
LEASE_KINDS = {letter: kind for kind, letter in LEASE_LETTER.items()} | {kind.value: kind for kind in LeaseKind}


def by_kind(members: Sequence[Any]) -> dict[LeaseKind, list[str]]:
    out: dict[LeaseKind, list[str]] = {}
    for member in map(text, members):
        out.setdefault(LEASE_KINDS[member[0]], []).append(member[2:])
    return out


def taken_from(flat: Sequence[Any]) -> Taken:
    """A claim script's {owner, count, ...} as owner → count."""
    return {text(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}
