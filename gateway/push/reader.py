"""The push read: what a push says comes from Shopify, read in batches (PROTOCOL §8).

Webhooks decide whether, when and to whom; the order as Shopify has it *now* supplies what the push says (a webhook
has no card details, no line-item images, and a fulfillment event not even a tracking number). Every caller — the
rules on a batch of webhook events, the Order/Unpaid re-check, reconciliation, `gateway replay` — reads through
`PushReader.read`, with one document (push_orders.graphql) and one shop's `ShopifyAdminClient` (cost pacing,
deadline, token refresh).

Batching: one request per call and shop, carrying every order the batch pushes about, split only to keep a
request's requested cost within Shopify's 1000 points (`nodes(ids:)` costs grow with the ids); the first part goes
alone, the others at most CONCURRENT_REQUESTS at a time, paced by the client's cost bucket. A receipt whose line
items do not fit the first page (`RECEIPT_LINE_ITEMS`) is read again alone with up to `MAX_LINE_ITEMS`, so a push
never lists fewer elements than the order has (up to that cap). Likewise a package order lists its first
`PACKAGE_FULFILLMENTS` fulfillments (`Order.fulfillments` is a plain list, with no pageInfo): when it lists that many
and a fulfillment a push is about is not among them, that fulfillment is read again by id (push_fulfillments.graphql,
the same fields), so an order shipped in many parts gets a complete package/update rather than none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.ops import Metrics
from gateway.shopify.errors import ShopifyError
from gateway.shopify.queries import load_query
from mappings.nodes import Node, nodes, numeric_id

if TYPE_CHECKING:
    from gateway.shopify.client import ShopifyAdminClient

#: A single Shopify query may cost at most 1000 points.
MAX_REQUEST_COST = 1000
#: Requests of one read in flight at once (after the first): two fill a standard plan's 2000-point bucket.
CONCURRENT_REQUESTS = 2
#: How long a push read may wait for query points and answers (nobody is waiting on it, unlike a lookup: under a
#: burst it waits for the bucket to refill rather than fail and be retried later).
READ_DEADLINE_SECONDS = 30.0
#: Line items read with each receipt: most orders have fewer, so a batch of receipts stays cheap.
RECEIPT_LINE_ITEMS = 3
#: The second read of a receipt with more line items: one order, as many as fit in 1000 points.
MAX_LINE_ITEMS = 96
#: Fulfillments read with each package order: most orders ship in fewer parts (the rest are read by id).
PACKAGE_FULFILLMENTS = 5
# Requested cost of one id in each list, by the local store's model of Shopify's rules (localstore/cost.py;
# tests/test_push_read.py checks these): a receipt is the node, GatewayOrder and the recipient's custom attributes
# (32) plus 10 per line item; a package is the node, PushRecipient and PushFulfillments (50); a fulfillment read by id
# is PushFulfillment and its order (10).
RECEIPT_BASE_COST = 32
LINE_ITEM_COST = 10
PACKAGE_COST = 50
FULFILLMENT_COST = 10

_T = TypeVar("_T")
#: One answered id of a request: (order id, its node or None, whether the receipt has more line items).
_Answer = tuple[int, Node | None, bool]


def receipt_cost(line_items: int) -> int:
    return RECEIPT_BASE_COST + LINE_ITEM_COST * max(1, line_items)


class ReadFailed(Exception):
    """Shopify could not answer the push read; `reason` is safe to log and to keep with a dead letter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def order_gid(order_id: int) -> str:
    return f"gid://shopify/Order/{order_id}"


def fulfillment_gid(fulfillment_id: int) -> str:
    return f"gid://shopify/Fulfillment/{fulfillment_id}"


def _merged(a: Node, b: Node) -> Node:
    """Two selections of the same order (receipt and package) as one node: objects merged field by field."""
    out = dict(a)
    for key, value in b.items():
        known = out.get(key)
        out[key] = _merged(known, value) if isinstance(known, dict) and isinstance(value, dict) else value
    return out


def _merge(into: dict[int, Node | None], order_id: int, node: Node | None) -> None:
    """Record one answered id (None: Shopify has no such order)."""
    if node is None:
        into.setdefault(order_id, None)
        return
    known = into.get(order_id)
    into[order_id] = node if known is None else _merged(known, node)


class PushReader:
    """Batched, cost-aware order reads for the push pipeline, through the shops' ShopifyAdminClients."""

    def __init__(self, clients: dict[str, ShopifyAdminClient], metrics: Metrics | None = None) -> None:
        #: shop key → client; the app's dict is filled at start-up, so it is looked up at read time.
        self.clients = clients
        self.metrics = metrics or Metrics()

    async def read(
        self,
        shop_key: str,
        receipts: Collection[int] = (),
        packages: Mapping[int, Collection[int]] | None = None,
    ) -> dict[int, Node | None]:
        """order id → the order node (receipt fields for `receipts`, fulfillments for `packages` — order id → the
        fulfillment ids its pushes are about, each listed in the node when Shopify has it —, the recipient for
        both), or None when Shopify has no such order (deleted, or outside what the app may read).
        Raises ReadFailed when Shopify cannot answer."""
        client = self.clients.get(shop_key)
        if client is None:
            raise ReadFailed(f"no Shopify client for shop {shop_key}")
        packages = packages or {}
        receipt_ids = sorted(set(receipts))
        package_ids = sorted(packages)
        found: dict[int, Node | None] = {}
        requests = [
            partial(self._request, client, r, p, RECEIPT_LINE_ITEMS)
            for r, p in _chunks(receipt_ids, package_ids, RECEIPT_LINE_ITEMS)
        ]
        long_receipts = []
        for answer in await self._send(requests):
            for order_id, node, truncated in answer:
                _merge(found, order_id, node)
                if truncated:
                    long_receipts.append(order_id)
        for answer in await self._send(
            [partial(self._request, client, [o], [], MAX_LINE_ITEMS) for o in long_receipts]
        ):
            for order_id, node, _ in answer:
                _merge(found, order_id, node)
        unlisted = _unlisted_fulfillments(found, packages)
        per_request = MAX_REQUEST_COST // FULFILLMENT_COST
        batches = [unlisted[i : i + per_request] for i in range(0, len(unlisted), per_request)]
        for read_again in await self._send([partial(self._request_fulfillments, client, ids) for ids in batches]):
            for order_id, fulfillment in read_again:
                node = found.get(order_id)
                if node is not None:
                    found[order_id] = {**node, "fulfillments": [*nodes(node.get("fulfillments")), fulfillment]}
        return found

    async def _send(self, requests: Sequence[Callable[[], Awaitable[_T]]]) -> list[_T]:
        """The requests, the first alone (it teaches the client what the document costs, so it paces the rest),
        then at most CONCURRENT_REQUESTS at once: each may hold up to 1000 points of the shop's bucket while it
        runs (2000 on a standard plan, shared with the lookups)."""
        if not requests:
            return []
        first = await requests[0]()
        slots = asyncio.Semaphore(CONCURRENT_REQUESTS)

        async def one(request: Callable[[], Awaitable[_T]]) -> _T:
            async with slots:
                return await request()

        return [first, *await asyncio.gather(*(one(r) for r in requests[1:]))]

    async def _execute(self, client: ShopifyAdminClient, document: str, variables: dict[str, Any]) -> Node:
        """One push-read request: behind every lookup on the shop's query points (a shopper is waiting for those),
        within READ_DEADLINE_SECONDS; Shopify's failures become ReadFailed."""
        try:
            deadline = asyncio.get_running_loop().time() + READ_DEADLINE_SECONDS
            return await client.execute(load_query(document), variables, deadline=deadline, background=True)
        except ShopifyError as exc:
            raise ReadFailed(f"{type(exc).__name__}: {exc}") from None

    async def _request(
        self, client: ShopifyAdminClient, receipt_ids: list[int], package_ids: list[int], line_items: int
    ) -> list[_Answer]:
        variables = {
            "receiptIds": [order_gid(i) for i in receipt_ids],
            "packageIds": [order_gid(i) for i in package_ids],
            "lineItems": line_items,
            "fulfillments": PACKAGE_FULFILLMENTS,
        }
        data = await self._execute(client, "push_orders", variables)
        out: list[_Answer] = []
        for key, ids in (("receipts", receipt_ids), ("packages", package_ids)):
            for order_id, node in zip(ids, _answered(data, key, len(ids)), strict=True):
                page = ((node or {}).get("lineItems") or {}).get("pageInfo") or {}
                out.append((order_id, node, key == "receipts" and bool(page.get("hasNextPage"))))
        return out

    async def _request_fulfillments(
        self, client: ShopifyAdminClient, wanted: list[tuple[int, int]]
    ) -> list[tuple[int, Node]]:
        """(order id, fulfillment node) of each wanted (order id, fulfillment id) that Shopify has, of that order."""
        self.metrics.inc("gateway_push_fulfillments_read_again_total", len(wanted), shop=client.shop_key)
        data = await self._execute(client, "push_fulfillments", {"ids": [fulfillment_gid(f) for _, f in wanted]})
        out = []
        for (order_id, _), node in zip(wanted, _answered(data, "fulfillments", len(wanted)), strict=True):
            if node is not None and numeric_id((node.get("order") or {}).get("legacyResourceId")) == order_id:
                out.append((order_id, node))
        return out


def _answered(data: Node, key: str, count: int) -> list[Node | None]:
    """The `nodes(ids:)` list under `key`, one entry per id asked (None: Shopify has no such node)."""
    answered = data.get(key)
    if not isinstance(answered, list) or len(answered) != count:
        raise ReadFailed(f"Shopify's answer has no {key} list of {count}")
    return [node if isinstance(node, dict) and node else None for node in answered]


def _unlisted_fulfillments(
    found: Mapping[int, Node | None], packages: Mapping[int, Collection[int]]
) -> list[tuple[int, int]]:
    """(order id, fulfillment id) of the wanted fulfillments an order did not list because it listed a full page
    (an order listing fewer has no other fulfillment: one it does not list is not Shopify's)."""
    unlisted = []
    for order_id, fulfillment_ids in sorted(packages.items()):
        node = found.get(order_id)
        listed = nodes(node.get("fulfillments")) if node is not None else []
        if len(listed) < PACKAGE_FULFILLMENTS:
            continue
        known = {numeric_id(f.get("legacyResourceId")) for f in listed}
        unlisted += [(order_id, f) for f in sorted(set(fulfillment_ids)) if f not in known]
    return unlisted


def _chunks(receipt_ids: list[int], package_ids: list[int], line_items: int) -> list[tuple[list[int], list[int]]]:
    """Split the ids into requests of at most MAX_REQUEST_COST requested points each (receipts first)."""
    per_receipt = receipt_cost(line_items)
    chunks: list[tuple[list[int], list[int]]] = []
    receipts: list[int] = []
    packages: list[int] = []
    cost = 0
    for ids, per_id, target in ((receipt_ids, per_receipt, "r"), (package_ids, PACKAGE_COST, "p")):
        for order_id in ids:
            if cost + per_id > MAX_REQUEST_COST and (receipts or packages):
                chunks.append((receipts, packages))
                receipts, packages, cost = [], [], 0
            (receipts if target == "r" else packages).append(order_id)
            cost += per_id
    if receipts or packages:
        chunks.append((receipts, packages))
    return chunks
