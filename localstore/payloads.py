"""REST-shaped webhook bodies built from the sandbox's GraphQL-shaped records, in Shopify's shapes and no kinder.

Every key a body carries is a key of Shopify's example body for its topic (copied into tests/data/shopify/webhooks/;
`tests/test_sandbox_webhook_shapes.py` walks each emitted body against it). Where an example has an empty list or a
null (no discounts, no fulfillments, no image), the element shape is the one of Shopify's REST example of the same
resource (tests/data/shopify/rest/). What a 2026 delivery does not carry, these bodies do not carry either: order
topics have no `payment_details` and no line-item images (card and images come from GraphQL); `fulfillments/*` have no
order attributes (no note_attributes, so no PSID); `fulfillment_events/create` has no order or line-item data.

Ids are exact integers (never floats), timestamps ISO 8601 with offset, money as decimal strings, as Shopify sends them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from localstore.records import Record, gid_number


class PayloadShop(Protocol):
    """What a webhook body reads of its shop (localstore.data.SandboxShop)."""

    domain: str
    name: str
    currency: str
    timezone: str
    shop_id: int

    @property
    def plan(self) -> str: ...

    def now(self) -> datetime: ...

    def customer(self, ref: int | str) -> Record | None: ...


def _ts(value: str | None) -> str | None:
    return value.replace("Z", "+00:00") if value else None


def _set(bag: Record) -> Record:
    return {"shop_money": {"amount": bag["shopMoney"]["amount"], "currency_code": bag["shopMoney"]["currencyCode"]},
            "presentment_money": {"amount": bag["presentmentMoney"]["amount"],
                                  "currency_code": bag["presentmentMoney"]["currencyCode"]}}


def _address(address: Record | None) -> Record | None:
    if address is None:
        return None
    return {"first_name": address.get("firstName"), "last_name": address.get("lastName"), "name": address.get("name"),
            "address1": address.get("address1"), "address2": address.get("address2"), "city": address.get("city"),
            "zip": address.get("zip"), "province": address.get("province"), "province_code": address.get("provinceCode"),
            "country": address.get("country"), "country_code": address.get("countryCodeV2"), "phone": address.get("phone"),
            "company": address.get("company"), "latitude": None, "longitude": None}


def _customer(shop: PayloadShop, order: Record) -> Record | None:
    # Shopify's order webhooks carry the customer without `tags` (the REST order resource has them).
    customer = shop.customer(order["_customerId"]) if order.get("_customerId") else None
    if customer is None:
        return None
    return {"id": int(customer["legacyResourceId"]), "admin_graphql_api_id": customer["id"], "email": customer.get("email"),
            "phone": customer.get("phone"), "first_name": customer["firstName"], "last_name": customer["lastName"],
            "created_at": _ts(customer["createdAt"]), "updated_at": _ts(customer["updatedAt"]), "state": "enabled",
            "currency": shop.currency, "verified_email": customer["verifiedEmail"], "note": None, "tax_exempt": False, "default_address": None}


def _line_item(item: Record, quantity: int | None = None) -> Record:
    """A line item as fulfillments/* carry it (`quantity` = the fulfilled quantity); order topics add `current_quantity`."""
    return {
        "id": gid_number(item["id"]), "admin_graphql_api_id": item["id"], "title": item["title"], "name": item["name"],
        "variant_title": item.get("variantTitle"), "quantity": item["quantity"] if quantity is None else quantity,
        "fulfillable_quantity": item.get("fulfillableQuantity", item["quantity"]), "sku": item.get("sku"),
        "vendor": item.get("vendor"), "product_id": item.get("_productId"), "variant_id": item.get("_variantId"),
        "price": item["originalUnitPriceSet"]["shopMoney"]["amount"], "price_set": _set(item["originalUnitPriceSet"]),
        "total_discount": item["totalDiscountSet"]["shopMoney"]["amount"], "total_discount_set": _set(item["totalDiscountSet"]),
        "fulfillment_status": item.get("fulfillmentStatus"), "requires_shipping": item["requiresShipping"],
        "taxable": True, "gift_card": False, "grams": 200, "properties": [], "tax_lines": [], "duties": [],
        "fulfillment_service": "manual", "product_exists": item.get("_productId") is not None,
        "discount_allocations": [
            {"amount": a["allocatedAmountSet"]["shopMoney"]["amount"], "amount_set": _set(a["allocatedAmountSet"]),
             "discount_application_index": a["discountApplication"]["index"]} for a in item["discountAllocations"]
        ],
    }


def _fulfillment(order: Record, fulfillment: Record) -> Record:
    tracking = fulfillment["trackingInfo"]
    shipment = fulfillment.get("displayStatus")
    return {
        "id": gid_number(fulfillment["id"]), "admin_graphql_api_id": fulfillment["id"], "order_id": int(order["legacyResourceId"]),
        "name": fulfillment["name"], "status": fulfillment["status"].lower(),
        "shipment_status": shipment.lower() if shipment in _SHIPMENT_STATUSES else None,
        "created_at": _ts(fulfillment["createdAt"]), "updated_at": _ts(fulfillment["updatedAt"]),
        "tracking_company": tracking[0]["company"] if tracking else None,
        "tracking_number": tracking[0]["number"] if tracking else None,
        "tracking_numbers": [t["number"] for t in tracking],
        "tracking_url": tracking[0]["url"] if tracking else None, "tracking_urls": [t["url"] for t in tracking],
        "service": "manual", "location_id": 655441491, "origin_address": None, "receipt": {},
        "line_items": [_line_item(fli["lineItem"], fli["quantity"]) for fli in fulfillment["fulfillmentLineItems"]],
    }


#: REST `shipment_status` values (lower case of the GraphQL event statuses).
_SHIPMENT_STATUSES = {"LABEL_PRINTED", "LABEL_PURCHASED", "ATTEMPTED_DELIVERY", "READY_FOR_PICKUP", "CONFIRMED",
                      "IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED", "FAILURE", "CARRIER_PICKED_UP", "DELAYED"}


def order_payload(shop: PayloadShop, order: Record) -> Record:
    legacy = int(order["legacyResourceId"])
    fulfillment_status = {"FULFILLED": "fulfilled", "PARTIALLY_FULFILLED": "partial"}.get(order["displayFulfillmentStatus"])
    applications = []
    for app in order["discountApplications"]:
        value = app["value"]
        kind = {"DiscountCodeApplication": "discount_code", "AutomaticDiscountApplication": "automatic",
                "ManualDiscountApplication": "manual", "ScriptDiscountApplication": "script"}[app["__typename"]]
        applications.append({
            "type": kind, "value": value.get("amount") or str(value.get("percentage")),
            "value_type": "fixed_amount" if "amount" in value else "percentage",
            "allocation_method": app["allocationMethod"].lower(), "target_selection": app["targetSelection"].lower(),
            "target_type": app["targetType"].lower(),
            # Shopify's reference: a code application names its `code`; the others carry a `title` (and manual and
            # script ones a `description`) instead.
            **({"code": app["code"]} if kind == "discount_code" else
               {"title": app.get("title"), **({"description": app.get("description")} if kind != "automatic" else {})}),
        })
    return {
        "id": legacy, "admin_graphql_api_id": order["id"], "name": order["name"], "number": order["number"],
        "order_number": int(order["name"].lstrip("#")) if order["name"].lstrip("#").isdigit() else legacy,
        "email": order.get("email"), "contact_email": order.get("email"), "phone": order.get("phone"),
        "created_at": _ts(order["createdAt"]), "updated_at": _ts(order["updatedAt"]), "processed_at": _ts(order["processedAt"]),
        "closed_at": _ts(order.get("closedAt")), "cancelled_at": _ts(order.get("cancelledAt")),
        "cancel_reason": order["cancelReason"].lower() if order.get("cancelReason") else None,
        "financial_status": order["displayFinancialStatus"].lower(), "fulfillment_status": fulfillment_status,
        "currency": order["currencyCode"], "presentment_currency": order["presentmentCurrencyCode"],
        "customer_locale": order.get("customerLocale"),
        "subtotal_price": order["subtotalPriceSet"]["shopMoney"]["amount"], "subtotal_price_set": _set(order["subtotalPriceSet"]),
        "total_price": order["totalPriceSet"]["shopMoney"]["amount"], "total_price_set": _set(order["totalPriceSet"]),
        "current_total_price": order["currentTotalPriceSet"]["shopMoney"]["amount"],
        "current_total_price_set": _set(order["currentTotalPriceSet"]),
        "total_tax": order["totalTaxSet"]["shopMoney"]["amount"], "total_tax_set": _set(order["totalTaxSet"]),
        "total_discounts": order["totalDiscountsSet"]["shopMoney"]["amount"], "total_discounts_set": _set(order["totalDiscountsSet"]),
        "total_shipping_price_set": _set(order["totalShippingPriceSet"]),
        "total_outstanding": order["totalOutstandingSet"]["shopMoney"]["amount"],
        "order_status_url": order["statusPageUrl"], "test": order["test"], "confirmed": True,
        "tags": ", ".join(order["tags"]), "note": order.get("note"),
        "note_attributes": [{"name": a["key"], "value": a["value"]} for a in order["customAttributes"]],
        "payment_gateway_names": list(order["paymentGatewayNames"]), "source_name": "web",
        "discount_codes": [{"code": a["code"], "amount": order["totalDiscountsSet"]["shopMoney"]["amount"],
                            "type": "fixed_amount" if "amount" in a["value"] else "percentage"}
                           for a in order["discountApplications"] if a.get("code")],
        "discount_applications": applications,
        "customer": _customer(shop, order),
        "shipping_address": _address(order.get("shippingAddress")), "billing_address": _address(order.get("billingAddress")),
        "line_items": [{**_line_item(li), "current_quantity": li["currentQuantity"]} for li in order["lineItems"]],
        "fulfillments": [_fulfillment(order, f) for f in order["fulfillments"]],
        "refunds": [{"id": gid_number(r["id"]), "admin_graphql_api_id": r["id"], "order_id": legacy, "created_at": _ts(r["createdAt"]),
                     "note": r.get("note"), "transactions": [], "refund_line_items": []} for r in order["refunds"]],
        "shipping_lines": [{"id": gid_number(s["id"]), "title": s["title"], "code": s["code"], "source": s["source"],
                            "price": s["originalPriceSet"]["shopMoney"]["amount"], "price_set": _set(s["originalPriceSet"]),
                            "discount_allocations": []} for s in order["shippingLines"]],
        "tax_lines": [], "taxes_included": False, "tax_exempt": False, "returns": [], "line_item_groups": [],
    }


def fulfillment_payload(shop: PayloadShop, order: Record, fulfillment: Record) -> Record:
    # The topic's body is the order's fulfillment plus the shopper's email and destination; no order attributes.
    return {**_fulfillment(order, fulfillment), "email": order.get("email"),
            "destination": _address(order.get("shippingAddress"))}


def fulfillment_event_payload(shop: PayloadShop, order: Record, fulfillment: Record, event: Record) -> Record:
    return {
        "id": event["_legacyId"], "admin_graphql_api_id": event["id"], "fulfillment_id": gid_number(fulfillment["id"]),
        "order_id": int(order["legacyResourceId"]), "shop_id": shop.shop_id, "status": event["status"].lower(),
        "message": event.get("message"), "happened_at": _ts(event["happenedAt"]), "created_at": _ts(event["createdAt"]),
        "updated_at": _ts(event["createdAt"]), "estimated_delivery_at": _ts(event.get("estimatedDeliveryAt")),
        "city": None, "province": None, "country": None, "zip": None, "address1": None, "latitude": None, "longitude": None,
    }


def product_payload(shop: PayloadShop, product: Record) -> Record:
    legacy = int(product["legacyResourceId"])
    image = product.get("featuredImage")
    images: list[dict[str, Any]] = [
        {"id": gid_number(i["id"]), "product_id": legacy, "src": i["url"], "alt": i.get("altText"), "position": n + 1,
         "width": i.get("width"), "height": i.get("height"), "variant_ids": []}
        for n, i in enumerate(product.get("images", []))
    ]
    return {
        "id": legacy, "admin_graphql_api_id": product["id"], "title": product["title"], "handle": product["handle"],
        "body_html": product["descriptionHtml"], "vendor": product["vendor"], "product_type": product["productType"],
        "status": product["status"].lower(), "tags": ", ".join(product["tags"]),
        "created_at": _ts(product["createdAt"]), "updated_at": _ts(product["updatedAt"]),
        "published_at": _ts(product.get("publishedAt")), "published_scope": "web", "template_suffix": None,
        "variants": [{"id": int(v["legacyResourceId"]), "admin_graphql_api_id": v["id"], "product_id": legacy,
                      "title": v["title"], "price": v["price"], "compare_at_price": v["compareAtPrice"], "sku": v["sku"],
                      "position": v["position"], "inventory_quantity": v["inventoryQuantity"],
                      "created_at": _ts(v["createdAt"]), "updated_at": _ts(v["updatedAt"])} for v in product["variants"]],
        "variant_gids": [{"admin_graphql_api_id": v["id"], "updated_at": _ts(product["updatedAt"])} for v in product["variants"]],
        "options": [], "images": images, "image": images[0] if image else None, "media": [],
        "has_variants_that_requires_components": False, "category": None,
    }


def shop_payload(shop: PayloadShop) -> Record:
    """The Shop resource as `app/uninstalled` carries it (a subset of Shopify's example body: nothing it lacks)."""
    now = shop.now().isoformat(timespec="seconds")
    return {
        "id": shop.shop_id, "name": shop.name, "domain": shop.domain, "myshopify_domain": shop.domain,
        "currency": shop.currency, "iana_timezone": shop.timezone, "plan_name": shop.plan, "created_at": now,
        "updated_at": now,
    }
