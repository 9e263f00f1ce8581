"""The local store's GraphQL: validation like Shopify, connections, sorting, references, auth."""

from __future__ import annotations

from typing import Any

import aiohttp

from localstore import SandboxServer, SandboxShop
from tests.fixtures_sandbox import SANDBOX_TOKEN


async def gql(server: SandboxServer, query: str, variables: dict[str, Any] | None = None,
              token: str = SANDBOX_TOKEN) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        async with session.post(server.graphql_url(), json={"query": query, "variables": variables or {}},
                                headers={"X-Shopify-Access-Token": token}) as response:
            return response.status, await response.json()


async def test_misspelled_field_is_rejected_like_shopify(sandbox: SandboxServer) -> None:
    status, body = await gql(sandbox, "{ orders(first: 1) { nodes { id nmae } } }")
    assert status == 200
    assert "data" not in body
    assert body["errors"][0]["message"].startswith("Cannot query field 'nmae' on type 'Order'")
    assert body["errors"][0]["locations"] == [{"line": 1, "column": 33}]
    assert body["errors"][0]["extensions"]["code"] == "undefinedField"


async def test_wrong_argument_type_is_rejected(sandbox: SandboxServer) -> None:
    status, body = await gql(sandbox, '{ orders(first: "three") { nodes { id } } }')
    assert status == 200 and body["errors"] and "data" not in body


async def test_first_over_250_is_rejected(sandbox: SandboxServer) -> None:
    status, body = await gql(sandbox, "{ orders(first: 251) { nodes { id } } }")
    assert status == 200
    assert body["data"] is None
    assert "250" in body["errors"][0]["message"]


async def test_order_fields_resolve(sandbox: SandboxServer, sandbox_shop: SandboxShop) -> None:
    order = sandbox_shop.order_by_name("#1001")
    assert order is not None
    status, body = await gql(sandbox, """
      query($id: ID!) { order(id: $id) {
        name email legacyResourceId displayFinancialStatus displayFulfillmentStatus presentmentCurrencyCode
        customer { displayName defaultEmailAddress { emailAddress } defaultPhoneNumber { phoneNumber } }
        customAttributes { key value }
        discountApplications(first: 5) { nodes { __typename ... on DiscountCodeApplication { code }
          value { ... on MoneyV2 { amount currencyCode } } } }
        lineItems(first: 10) { nodes { title quantity product { legacyResourceId } variant { title }
          discountAllocations { allocatedAmountSet { shopMoney { amount } } discountApplication { index } } } }
        transactions(first: 5) { kind status gateway paymentDetails { ... on CardPaymentDetails { company number } } }
        fulfillments(first: 5) { name displayStatus trackingInfo(first: 5) { company number url }
          fulfillmentLineItems(first: 5) { nodes { quantity lineItem { title } } } }
      } }""", {"id": order["id"]})
    assert status == 200 and "errors" not in body, body
    got = body["data"]["order"]
    assert got["name"] == "#1001" and got["email"] == "bob.norman@mail.example.com"
    assert got["customer"]["defaultPhoneNumber"]["phoneNumber"] == "+16136120707"
    assert {"key": "joinchat_psid", "value": "psid-bob-1001"} in got["customAttributes"]
    assert got["discountApplications"]["nodes"][0]["code"] == "TENOFF"
    assert sum(float(li["discountAllocations"][0]["allocatedAmountSet"]["shopMoney"]["amount"])
               for li in got["lineItems"]["nodes"]) == 10.0
    assert got["transactions"][0]["paymentDetails"] == {"company": "Visa", "number": "•••• •••• •••• 4242"}
    assert [f["name"] for f in got["fulfillments"]] == ["#1001.1", "#1001.2"]
    assert [f["displayStatus"] for f in got["fulfillments"]] == ["DELIVERED", "IN_TRANSIT"]
    assert got["fulfillments"][0]["trackingInfo"][0]["number"] == "1Z1234512345123456"


async def test_wrong_token_is_401(sandbox: SandboxServer) -> None:
    status, body = await gql(sandbox, "{ shop { name } }", token="shpat_wrong")
    assert status == 401
    assert body == {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}


async def test_request_counter(sandbox: SandboxServer) -> None:
    await gql(sandbox, "{ shop { name } }")
    await gql(sandbox, "{ shop { name } }")
    assert sandbox.graphql_requests("demo.myshopify.com") == 2
    sandbox.reset_counters()
    assert sandbox.graphql_requests("demo.myshopify.com") == 0
