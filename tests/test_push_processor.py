"""The processing worker on its own (gateway.push.processor): a claimed batch in, what it produced committed, on both
store backends. The end-to-end behaviour (real webhooks, reads and pushes) is in test_push_delivery / test_push_read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway.cache import LookupCache
from gateway.cache_tags import canonical_tag, order_tags
from gateway.push.processor import build_processor
from gateway.push.store import EventStatus, PushStore, WebhookMeta
from tests.fixtures_push import SHOP_KEY, push_settings, rest_order


async def _process(store: PushStore, processor: Any, events: list[tuple[str, dict[str, Any]]]) -> None:
    """Store the webhooks (topic, payload) and process them as one claimed batch."""
    for n, (topic, payload) in enumerate(events):
        await store.record_event(SHOP_KEY, f"evt-{n}", WebhookMeta(topic), json.dumps(payload).encode())
    claimed = await store.claim_events(100, 30.0)
    assert len(claimed) == len(events)
    await processor.process(claimed)


async def test_an_order_named_with_two_hashes_evicts_only_its_own_lookups(push_store: PushStore, tmp_path: Path) -> None:
    """Order "##1001" has the number "#1001" (one leading '#' stripped, PROTOCOL §5), not "1001": its webhook evicts
    the lookups of its own number and leaves those of order "#1001" (whose number is "1001") cached."""
    assert canonical_tag("order:##1001") == order_tags(number="#1001")[0] != order_tags(number="1001")[0]
    cache = LookupCache()

    async def load() -> str:
        return "cached"

    for number in ("1001", "#1001"):
        await cache.get_or_load((SHOP_KEY, number), load, ttl=60, tags=order_tags(number=number))
    processor = build_processor(push_settings("http://127.0.0.1:9/push", tmp_path / "unused"), push_store,
                                invalidator=cache)  # fmt: skip
    # not paid: nothing to push, so no Shopify read is needed (this processor has none)
    await _process(push_store, processor, [("orders/updated", rest_order(7, name="##1001", financial_status="pending"))])
    assert cache.peek((SHOP_KEY, "#1001")) is None
    assert cache.peek((SHOP_KEY, "1001")) == "cached"
    assert (await push_store.get_event(SHOP_KEY, "evt-0")).status == EventStatus.DONE  # type: ignore[union-attr]
