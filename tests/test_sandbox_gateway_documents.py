"""Every GraphQL document the gateway ships (gateway/shopify/queries/) runs on the local store without errors."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest

from gateway.shopify.queries import document_names, load_query
from localstore import SandboxServer, SandboxShop
from tests.fixtures_sandbox import SANDBOX_TOKEN

_VARIABLE = re.compile(r"\$(\w+)\s*:\s*([\w!\[\]]+)")


def sample_variables(document: str, shop: SandboxShop) -> dict[str, Any]:
    """A plausible value for each declared variable (small page sizes, Bob Norman's data)."""
    header = document.split("{", 1)[0]
    values: dict[str, Any] = {}
    order = shop.order_by_name("#1001")
    assert order is not None
    for name, kind in _VARIABLE.findall(header):
        base = kind.strip("!")
        if base == "Int":
            values[name] = 2
        elif base == "Boolean":
            values[name] = False
        elif base == "ID":
            values[name] = order["id"]
        elif base == "OrderSortKeys":
            values[name] = "CREATED_AT"
        elif base == "ProductSortKeys":
            values[name] = "TITLE"
        elif base == "WebhookSubscriptionTopic":
            values[name] = "ORDERS_CREATE"
        elif name in ("uri", "callbackUrl"):
            values[name] = "https://gateway.example.com/webhooks/shopify"
        elif base == "String" and "query" in name.lower():
            values[name] = 'email:"bob.norman@mail.example.com"'
        elif kind.endswith("!"):
            values[name] = "x"
    return values


@pytest.mark.parametrize("name", document_names())
async def test_document_runs(name: str, sandbox: SandboxServer, sandbox_shop: SandboxShop) -> None:
    document = load_query(name)
    variables = sample_variables(document, sandbox_shop)
    async with aiohttp.ClientSession() as session:
        if variables.get("after") == "x":  # a required cursor: a real one, after the first line item of #1001
            first = "query($id: ID!) { order(id: $id) { lineItems(first: 1) { pageInfo { endCursor } } } }"
            async with session.post(sandbox.graphql_url(), json={"query": first, "variables": {"id": variables["id"]}},
                                    headers={"X-Shopify-Access-Token": SANDBOX_TOKEN}) as response:
                variables["after"] = (await response.json())["data"]["order"]["lineItems"]["pageInfo"]["endCursor"]
        async with session.post(sandbox.graphql_url(), json={"query": document, "variables": variables},
                                headers={"X-Shopify-Access-Token": SANDBOX_TOKEN}) as response:
            body = await response.json()
    assert response.status == 200
    assert "errors" not in body, body["errors"]
    assert body["data"] and body["extensions"]["cost"]["requestedQueryCost"] <= 1000
