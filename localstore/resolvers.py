"""Resolvers of the sandbox's GraphQL execution: root queries, connections, references, mutations.

Records are GraphQL-shaped dicts, so `resolve_field` reads most fields straight off them. What needs code is listed
in `RESOLVERS` by (type name, field name): root fields, references kept as ids (`Order.customer`), connections with
search/sort/pagination, computed fields. A list stored under a connection-typed field becomes a Relay connection.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError, GraphQLResolveInfo, get_named_type, is_list_type, is_non_null_type
from graphql.type import GraphQLEnumType, GraphQLScalarType

from localstore import search
from localstore.records import Record, gid, legacy_id_of

if TYPE_CHECKING:
    from localstore.data import SandboxShop

MAX_PAGE = 250


@dataclass
class RequestContext:
    shop: SandboxShop
    api_version: str
    #: search warnings per root field, reported in `extensions.search` like Shopify
    search_notes: list[dict[str, Any]] = field(default_factory=list)


Resolver = Callable[..., Any]
RESOLVERS: dict[tuple[str, str], Resolver] = {}


def resolver(type_name: str, field_name: str) -> Callable[[Resolver], Resolver]:
    def register(fn: Resolver) -> Resolver:
        RESOLVERS[(type_name, field_name)] = fn
        return fn

    return register


_SCALAR_DEFAULTS = {"Boolean": False, "Int": 0, "Float": 0.0, "String": "", "Decimal": "0.0", "UnsignedInt64": "0",
                    "Money": "0.00", "URL": "", "HTML": "", "FormattedString": ""}


def resolve_field(source: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
    special = RESOLVERS.get((info.parent_type.name, info.field_name))
    if special is not None:
        return special(source, info, **args)
    value = source.get(info.field_name) if isinstance(source, dict) else getattr(source, info.field_name, None)
    return_type = info.return_type
    if isinstance(value, list):
        named = get_named_type(return_type)
        if named.name.endswith("Connection"):
            return connection(value, args)
        if "first" in args and args["first"] is not None:
            check_page_size(args["first"], "first")
            return value[: args["first"]]
        return value
    if value is None and is_non_null_type(return_type):
        return _default_for(return_type)
    return value


def _default_for(return_type: Any) -> Any:
    """Fields the sandbox does not model still answer something type-correct where Shopify never says null."""
    inner = return_type.of_type
    if is_list_type(inner):
        return []
    if isinstance(inner, GraphQLScalarType):
        return _SCALAR_DEFAULTS.get(inner.name)
    if isinstance(inner, GraphQLEnumType):
        return next(iter(inner.values))
    return None


def resolve_type(value: Any, info: GraphQLResolveInfo, abstract_type: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("__typename")
    return None


# ------------------------------------------------------------------------------------------------ connections


def check_page_size(value: int | None, name: str) -> None:
    if value is not None and value > MAX_PAGE:
        raise GraphQLError(f"The '{name}' argument may not be more than {MAX_PAGE} (got {value}).",
                           extensions={"code": "BAD_USER_INPUT"})
    if value is not None and value < 0:
        raise GraphQLError(f"The '{name}' argument may not be negative.", extensions={"code": "BAD_USER_INPUT"})


def encode_cursor(item: Any, index: int) -> str:
    key = item.get("id") if isinstance(item, dict) else item
    return base64.urlsafe_b64encode(json.dumps([index, key]).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, items: list[Any]) -> int:
    """Position of the cursor's item in the current list (by its key; the index is only a fast path)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        index, key = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, TypeError):
        raise GraphQLError("Invalid cursor for current pagination sort.", extensions={"code": "BAD_USER_INPUT"}) from None

    def key_of(item: Any) -> Any:
        return item.get("id") if isinstance(item, dict) else item

    if isinstance(index, int) and 0 <= index < len(items) and key_of(items[index]) == key:
        return index
    for i, item in enumerate(items):
        if key_of(item) == key:
            return i
    return min(index, len(items)) if isinstance(index, int) else 0


def connection(items: list[Any], args: dict[str, Any], require_bound: bool = True) -> Record:
    first, last = args.get("first"), args.get("last")
    check_page_size(first, "first")
    check_page_size(last, "last")
    if require_bound and first is None and last is None:
        raise GraphQLError("you must provide one of first or last", extensions={"code": "BAD_USER_INPUT"})
    if args.get("reverse"):
        items = list(reversed(items))
    start, end = 0, len(items)
    if args.get("after"):
        start = _decode_cursor(args["after"], items) + 1
    if args.get("before"):
        end = _decode_cursor(args["before"], items)
    window_start, window_end = start, max(start, end)
    if first is not None:
        window_end = min(window_end, window_start + first)
    if last is not None:
        window_start = max(window_start, window_end - last)
    page = items[window_start:window_end]
    edges = [{"cursor": encode_cursor(item, window_start + i), "node": item} for i, item in enumerate(page)]
    return {
        "edges": edges,
        "nodes": page,
        "pageInfo": {
            "hasNextPage": window_end < len(items),
            "hasPreviousPage": window_start > 0,
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
    }


# ------------------------------------------------------------------------------------------------ search resources


def _status_of(order: Record) -> list[str]:
    if order.get("cancelledAt"):
        return ["cancelled", "closed"]
    return ["closed"] if order.get("closed") else ["open", "not_closed"]


_FULFILLMENT_ALIASES = {
    "shipped": ("FULFILLED",), "fulfilled": ("FULFILLED",), "partial": ("PARTIALLY_FULFILLED",),
    "partially_fulfilled": ("PARTIALLY_FULFILLED",), "unshipped": ("UNFULFILLED",), "unfulfilled": ("UNFULFILLED",),
    "scheduled": ("SCHEDULED",), "on_hold": ("ON_HOLD",), "request_declined": ("REQUEST_DECLINED",),
}


def _one_of(allowed: tuple[str, ...]) -> Callable[[Any], bool]:
    return lambda value: value in allowed


def order_resource(shop: SandboxShop) -> search.Resource:
    def customer_name(order: Record) -> str:
        customer = shop.customer(order["_customerId"]) if order.get("_customerId") else None
        return customer["displayName"] if customer else ""

    fields = {
        "email": search.FieldSpec("exact", lambda o: o.get("email")),
        "name": search.FieldSpec("name", lambda o: o["name"]),
        "customer_id": search.FieldSpec("id", lambda o: o.get("_customerId")),
        "id": search.FieldSpec("id", lambda o: o["legacyResourceId"]),
        "status": search.FieldSpec("keyword", _status_of, {"any": lambda v: True}),
        "financial_status": search.FieldSpec("keyword", lambda o: o["displayFinancialStatus"], {"any": lambda v: True}),
        "fulfillment_status": search.FieldSpec(
            "keyword", lambda o: o["displayFulfillmentStatus"],
            {"any": lambda v: True, **{k: _one_of(ok) for k, ok in _FULFILLMENT_ALIASES.items()}},
        ),
        "created_at": search.FieldSpec("date", lambda o: o["createdAt"]),
        "updated_at": search.FieldSpec("date", lambda o: o["updatedAt"]),
        "processed_at": search.FieldSpec("date", lambda o: o["processedAt"]),
        "tag": search.FieldSpec("exact", lambda o: o["tags"]),
        "test": search.FieldSpec("bool", lambda o: o["test"]),
        "sku": search.FieldSpec("exact", lambda o: [li.get("sku") for li in o["lineItems"]]),
        "gateway": search.FieldSpec("exact", lambda o: o["paymentGatewayNames"]),
        "customer_name": search.FieldSpec("text", customer_name),
    }
    return search.Resource(fields, lambda o: " ".join(
        [o["name"], o["name"].lstrip("#"), o.get("email") or "", customer_name(o)]))


def customer_resource(shop: SandboxShop) -> search.Resource:
    fields = {
        "email": search.FieldSpec("tokens", lambda c: c.get("email")),
        "phone": search.FieldSpec("phone", lambda c: c.get("phone")),
        "first_name": search.FieldSpec("exact", lambda c: c.get("firstName")),
        "last_name": search.FieldSpec("exact", lambda c: c.get("lastName")),
        "id": search.FieldSpec("id", lambda c: c["legacyResourceId"]),
        "created_at": search.FieldSpec("date", lambda c: c["createdAt"]),
        "updated_at": search.FieldSpec("date", lambda c: c["updatedAt"]),
        "tag": search.FieldSpec("exact", lambda c: c["tags"]),
    }
    return search.Resource(fields, lambda c: " ".join(
        x for x in (c.get("firstName"), c.get("lastName"), c.get("email"), c.get("phone")) if x))


def product_resource(shop: SandboxShop) -> search.Resource:
    fields = {
        "title": search.FieldSpec("text", lambda p: p["title"]),
        "product_type": search.FieldSpec("exact", lambda p: p["productType"]),
        "vendor": search.FieldSpec("exact", lambda p: p["vendor"]),
        "status": search.FieldSpec("keyword", lambda p: p["status"]),
        "published_status": search.FieldSpec("keyword", lambda p: p["_published"], {
            "published": lambda v: bool(v), "visible": lambda v: bool(v), "unpublished": lambda v: not v,
            "any": lambda v: True, "online_store_channel": lambda v: True,
            "online_store:published": lambda v: bool(v), "online_store:unpublished": lambda v: not v,
        }),
        "id": search.FieldSpec("id", lambda p: p["legacyResourceId"]),
        "handle": search.FieldSpec("exact", lambda p: p["handle"]),
        "tag": search.FieldSpec("exact", lambda p: p["tags"]),
        "sku": search.FieldSpec("exact", lambda p: [v.get("sku") for v in p["variants"]]),
        "created_at": search.FieldSpec("date", lambda p: p["createdAt"]),
        "updated_at": search.FieldSpec("date", lambda p: p["updatedAt"]),
        "published_at": search.FieldSpec("date", lambda p: p.get("publishedAt")),
        "inventory_total": search.FieldSpec("number", lambda p: p["totalInventory"]),
        "gift_card": search.FieldSpec("bool", lambda p: p["isGiftCard"]),
    }
    return search.Resource(fields, lambda p: " ".join([p["title"], p["vendor"], p["productType"], *p["tags"]]))


def run_search(
    info: GraphQLResolveInfo, items: list[Record], resource: search.Resource, query: str | None,
    candidates: Callable[[search.Node | None], list[Record] | None] | None = None,
) -> list[Record]:
    """Filter `items` by the query; an index lookup (`candidates`) narrows the scan when the query allows."""
    tree = search.parse(query)
    matcher = search.Matcher(resource)
    matcher.check_fields(tree)
    if query:
        ctx: RequestContext = info.context
        ctx.search_notes.append({"path": list(info.path.as_list()), "query": query, "warnings": matcher.warnings})
    if tree is None:
        return list(items)
    pool = candidates(tree) if candidates else None
    return [item for item in (items if pool is None else pool) if matcher.matches(tree, item)]


def _sort(items: list[Record], keys: dict[str, Callable[[Record], Any]], sort_key: str | None, default: str) -> list[Record]:
    name = sort_key if sort_key in keys else default
    if name == "ID" and (len(items) < 2 or _ascending_ids(items)):
        return items  # records are appended with increasing ids: the usual case needs no sort
    return sorted(items, key=keys[name])


def _ascending_ids(items: list[Record]) -> bool:
    previous = -1
    for item in items:
        current = int(item["legacyResourceId"])
        if current <= previous:
            return False
        previous = current
    return True


def _money_key(path: str) -> Callable[[Record], Any]:
    return lambda r: (Decimal(r[path]["shopMoney"]["amount"]), int(r["legacyResourceId"]))


ORDER_SORT: dict[str, Callable[[Record], Any]] = {
    "ID": lambda o: int(o["legacyResourceId"]),
    "CREATED_AT": lambda o: (o["createdAt"], int(o["legacyResourceId"])),
    "UPDATED_AT": lambda o: (o["updatedAt"], int(o["legacyResourceId"])),
    "PROCESSED_AT": lambda o: (o["processedAt"], int(o["legacyResourceId"])),
    "ORDER_NUMBER": lambda o: (int(o["name"].lstrip("#")) if o["name"].lstrip("#").isdigit() else 0, int(o["legacyResourceId"])),
    "TOTAL_PRICE": _money_key("totalPriceSet"),
    "CURRENT_TOTAL_PRICE": _money_key("currentTotalPriceSet"),
    "FINANCIAL_STATUS": lambda o: (o["displayFinancialStatus"], int(o["legacyResourceId"])),
    "FULFILLMENT_STATUS": lambda o: (o["displayFulfillmentStatus"], int(o["legacyResourceId"])),
    "TOTAL_ITEMS_QUANTITY": lambda o: (o["subtotalLineItemsQuantity"], int(o["legacyResourceId"])),
    "CUSTOMER_NAME": lambda o: (o["billingAddress"] or {}).get("name") or "",
}
PRODUCT_SORT: dict[str, Callable[[Record], Any]] = {
    "ID": lambda p: int(p["legacyResourceId"]),
    "TITLE": lambda p: (p["title"].lower(), int(p["legacyResourceId"])),
    "CREATED_AT": lambda p: (p["createdAt"], int(p["legacyResourceId"])),
    "UPDATED_AT": lambda p: (p["updatedAt"], int(p["legacyResourceId"])),
    "PUBLISHED_AT": lambda p: (p.get("publishedAt") or "", int(p["legacyResourceId"])),
    "PRODUCT_TYPE": lambda p: (p["productType"].lower(), int(p["legacyResourceId"])),
    "VENDOR": lambda p: (p["vendor"].lower(), int(p["legacyResourceId"])),
    "INVENTORY_TOTAL": lambda p: (p["totalInventory"], int(p["legacyResourceId"])),
}
CUSTOMER_SORT: dict[str, Callable[[Record], Any]] = {
    "ID": lambda c: int(c["legacyResourceId"]),
    "NAME": lambda c: (c["displayName"].lower(), int(c["legacyResourceId"])),
    "CREATED_AT": lambda c: (c["createdAt"], int(c["legacyResourceId"])),
    "UPDATED_AT": lambda c: (c["updatedAt"], int(c["legacyResourceId"])),
}


def _relevance(items: list[Record], query: str | None, text: Callable[[Record], str]) -> list[Record]:
    """RELEVANCE: records matching more of the query's free words first, then by id (stable)."""
    wanted = set(search.words(query or ""))
    if not wanted:
        return sorted(items, key=lambda r: int(r["legacyResourceId"]))
    return sorted(items, key=lambda r: (-len(wanted & set(search.words(text(r)))), int(r["legacyResourceId"])))


def _order_candidates(shop: SandboxShop) -> Callable[[search.Node | None], list[Record] | None]:
    """Index lookups for email / name / customer_id terms, so a search in a 10k-order shop stays fast."""

    def lookup(term: search.Term) -> list[Record]:
        if term.field == "email":
            return shop.orders_by_email(term.value)
        if term.field == "name":
            return shop.orders_by_name(term.value)
        customer = legacy_id_of(term.value)
        return shop.orders_of_customer(customer) if customer is not None else []

    def candidates(tree: search.Node | None) -> list[Record] | None:
        terms = search.index_terms(tree, ("email", "name", "customer_id"))
        if terms is None:
            return None
        if len(terms) == 1:
            return lookup(terms[0])
        seen: dict[int, Record] = {}
        for term in terms:
            for order in lookup(term):
                seen.setdefault(id(order), order)
        return list(seen.values())

    return candidates


def _customer_candidates(shop: SandboxShop) -> Callable[[search.Node | None], list[Record] | None]:
    """Index lookups for `phone:` and quoted `email:"..."` terms (unquoted email is tokenized: no index)."""

    def candidates(tree: search.Node | None) -> list[Record] | None:
        terms = search.index_terms(tree, ("phone", "email"))
        if terms is None or any(t.field == "email" and not t.phrase for t in terms):
            return None
        seen: dict[int, Record] = {}
        for term in terms:
            rows = shop.customers_by_phone(term.value) if term.field == "phone" else shop.customers_by_email(term.value)
            for customer in rows:
                seen.setdefault(id(customer), customer)
        return list(seen.values())

    return candidates


def _searched_connection(
    info: GraphQLResolveInfo, items: list[Record], resource: search.Resource, args: dict[str, Any],
    sort_keys: dict[str, Callable[[Record], Any]], relevance_text: Callable[[Record], str],
    candidates: Callable[[search.Node | None], list[Record] | None] | None = None,
) -> Record:
    """A connection over `items` as `orders`/`customers`/`products` answer: page sizes checked before anything runs,
    then the `query:` search, `sortKey` (default ID; RELEVANCE ranks by `relevance_text`), then the page."""
    _bounds(args)
    found = run_search(info, items, resource, args.get("query"), candidates)
    sort_key = args.get("sortKey") or "ID"
    if sort_key == "RELEVANCE":
        found = _relevance(found, args.get("query"), relevance_text)
    else:
        found = _sort(found, sort_keys, sort_key, "ID")
    return connection(found, args)


def list_orders(info: GraphQLResolveInfo, items: list[Record], args: dict[str, Any],
                candidates: Callable[[search.Node | None], list[Record] | None] | None) -> Record:
    resource = order_resource(info.context.shop)
    return _searched_connection(info, items, resource, args, ORDER_SORT,
                                lambda o: f"{o['name']} {o.get('email') or ''}", candidates)


def _count(found: list[Record], limit: int | None = None) -> Record:
    """A `Count`: exact, or `limit` AT_LEAST when more were found."""
    if limit is not None and len(found) > limit:
        return {"count": limit, "precision": "AT_LEAST"}
    return {"count": len(found), "precision": "EXACT"}


def _bounds(args: dict[str, Any]) -> None:
    check_page_size(args.get("first"), "first")
    check_page_size(args.get("last"), "last")


# ------------------------------------------------------------------------------------------------ QueryRoot


@resolver("QueryRoot", "orders")
def _orders(_: Any, info: GraphQLResolveInfo, **args: Any) -> Record:
    shop: SandboxShop = info.context.shop
    return list_orders(info, shop.orders, args, _order_candidates(shop))


@resolver("QueryRoot", "order")
def _order(_: Any, info: GraphQLResolveInfo, id: str) -> Record | None:
    return info.context.shop.order(id) if id.startswith("gid://shopify/Order/") else None


@resolver("QueryRoot", "ordersCount")
def _orders_count(_: Any, info: GraphQLResolveInfo, query: str | None = None, limit: int | None = 10000, **__: Any) -> Record:
    shop: SandboxShop = info.context.shop
    return _count(run_search(info, shop.orders, order_resource(shop), query, _order_candidates(shop)), limit)


@resolver("QueryRoot", "customers")
def _customers(_: Any, info: GraphQLResolveInfo, **args: Any) -> Record:
    shop: SandboxShop = info.context.shop
    return _searched_connection(info, shop.customers, customer_resource(shop), args, CUSTOMER_SORT,
                                lambda c: c["displayName"], _customer_candidates(shop))


@resolver("QueryRoot", "customer")
def _customer(_: Any, info: GraphQLResolveInfo, id: str) -> Record | None:
    return info.context.shop.customer(id) if id.startswith("gid://shopify/Customer/") else None


@resolver("QueryRoot", "customersCount")
def _customers_count(_: Any, info: GraphQLResolveInfo, query: str | None = None, **__: Any) -> Record:
    shop: SandboxShop = info.context.shop
    return _count(run_search(info, shop.customers, customer_resource(shop), query))


@resolver("QueryRoot", "products")
def _products(_: Any, info: GraphQLResolveInfo, **args: Any) -> Record:
    shop: SandboxShop = info.context.shop
    return _searched_connection(info, shop.products, product_resource(shop), args, PRODUCT_SORT, lambda p: p["title"])


@resolver("QueryRoot", "product")
def _product(_: Any, info: GraphQLResolveInfo, id: str) -> Record | None:
    return info.context.shop.product(id) if id.startswith("gid://shopify/Product/") else None


@resolver("QueryRoot", "productsCount")
def _products_count(_: Any, info: GraphQLResolveInfo, query: str | None = None, limit: int | None = 10000, **__: Any) -> Record:
    shop: SandboxShop = info.context.shop
    return _count(run_search(info, shop.products, product_resource(shop), query), limit)


def _distinct(values: list[str]) -> list[str]:
    return sorted({v for v in values if v}, key=lambda v: (v.lower(), v))


@resolver("QueryRoot", "productTypes")
def _product_types(_: Any, info: GraphQLResolveInfo, **args: Any) -> Record:
    return connection(_distinct([p["productType"] for p in info.context.shop.products]), args)


@resolver("QueryRoot", "productVendors")
def _product_vendors(_: Any, info: GraphQLResolveInfo, **args: Any) -> Record:
    return connection(_distinct([p["vendor"] for p in info.context.shop.products]), args)


@resolver("QueryRoot", "productVariant")
def _product_variant(_: Any, info: GraphQLResolveInfo, id: str) -> Record | None:
    return info.context.shop.variant(id) if id.startswith("gid://shopify/ProductVariant/") else None


@resolver("QueryRoot", "fulfillment")
def _fulfillment(_: Any, info: GraphQLResolveInfo, id: str) -> Record | None:
    found = info.context.shop.fulfillment(id) if id.startswith("gid://shopify/Fulfillment/") else None
    return found[0] if found else None


@resolver("QueryRoot", "node")
def _node(_: Any, info: GraphQLResolveInfo, id: str) -> Record | None:
    return info.context.shop.node(id)


@resolver("QueryRoot", "nodes")
def _nodes(_: Any, info: GraphQLResolveInfo, ids: list[str]) -> list[Record | None]:
    if len(ids) > MAX_PAGE:
        raise GraphQLError(f"The 'ids' argument may not hold more than {MAX_PAGE} ids.", extensions={"code": "BAD_USER_INPUT"})
    return [info.context.shop.node(i) for i in ids]


@resolver("QueryRoot", "shop")
def _shop(_: Any, info: GraphQLResolveInfo) -> Record:
    shop: SandboxShop = info.context.shop
    return {
        "id": gid("Shop", shop.shop_id), "name": shop.name, "myshopifyDomain": shop.domain, "email": f"owner@{shop.domain}",
        "contactEmail": f"owner@{shop.domain}", "currencyCode": shop.currency, "ianaTimezone": shop.timezone,
        "timezoneAbbreviation": "EST", "timezoneOffset": "-0500", "timezoneOffsetMinutes": -300,
        "primaryDomain": {"id": gid("Domain", shop.shop_id), "url": f"https://{shop.domain}", "host": shop.domain, "sslEnabled": True},
        "url": f"https://{shop.domain}", "enabledPresentmentCurrencies": ["USD", "EUR", "CAD", "GBP"],
        "orderNumberFormatPrefix": "#", "orderNumberFormatSuffix": "", "taxesIncluded": False, "weightUnit": "KILOGRAMS",
        "createdAt": "2020-01-01T00:00:00Z", "updatedAt": "2020-01-01T00:00:00Z",
    }


@resolver("QueryRoot", "currentAppInstallation")
def _current_app_installation(_: Any, info: GraphQLResolveInfo) -> Record:
    shop: SandboxShop = info.context.shop
    return {
        "id": gid("AppInstallation", shop.shop_id), "launchUrl": f"https://{shop.domain}/admin/apps/gateway",
        "accessScopes": [{"handle": h, "description": ""} for h in shop.access_scopes],
    }


#: `ShopLocale.name` of the locales the store is usually given (any other answers its code).
_LOCALE_NAMES = {"en": "English", "fr": "French", "de": "German", "es": "Spanish", "ja": "Japanese",
                 "zh-CN": "Chinese (Simplified)", "zh-TW": "Chinese (Traditional)", "pt-BR": "Portuguese (Brazil)",
                 "it": "Italian", "nl": "Dutch", "is": "Icelandic", "sw": "Swahili"}  # fmt: skip


@resolver("QueryRoot", "shopLocales")
def _shop_locales(_: Any, info: GraphQLResolveInfo, published: bool = False) -> list[Record]:
    """The shop's languages, the primary first. Shopify refuses the field to an app without `read_locales` (every
    language the store has is published here, so `published` filters nothing)."""
    shop: SandboxShop = info.context.shop
    if not {"read_locales", "write_locales"} & set(shop.access_scopes):
        raise GraphQLError("Access denied for shopLocales field. Required access: `read_locales` access scope.",
                           extensions={"code": "ACCESS_DENIED", "documentation": "https://shopify.dev/api/usage/access-scopes",
                                       "requiredAccess": "`read_locales` access scope."})
    codes = [shop.primary_locale, *(code for code in shop.locales if code != shop.primary_locale)]
    return [{"locale": code, "name": _LOCALE_NAMES.get(code, code), "primary": code == shop.primary_locale,
             "published": True, "marketWebPresences": []} for code in codes]


@resolver("QueryRoot", "webhookSubscriptions")
def _webhook_subscriptions(_: Any, info: GraphQLResolveInfo, **args: Any) -> Record:
    subs = list(info.context.shop.webhook_subscriptions)
    if args.get("topics"):
        subs = [s for s in subs if s["topic"] in args["topics"]]
    if args.get("uri") or args.get("callbackUrl"):
        subs = [s for s in subs if s["uri"] == (args.get("uri") or args.get("callbackUrl"))]
    if args.get("format"):
        subs = [s for s in subs if s["format"] == args["format"]]
    return connection(subs, args)


@resolver("QueryRoot", "webhookSubscription")
def _webhook_subscription(_: Any, info: GraphQLResolveInfo, id: str) -> Record | None:
    return next((s for s in info.context.shop.webhook_subscriptions if s["id"] == id), None)


@resolver("QueryRoot", "webhookSubscriptionsCount")
def _webhook_subscriptions_count(_: Any, info: GraphQLResolveInfo, **__: Any) -> Record:
    return {"count": len(info.context.shop.webhook_subscriptions), "precision": "EXACT"}


# ------------------------------------------------------------------------------------------------ object fields


@resolver("Order", "customer")
def _order_customer(order: Record, info: GraphQLResolveInfo) -> Record | None:
    cid = order.get("_customerId")
    return info.context.shop.customer(cid) if cid is not None else None


#: `Order.fulfillments(query:)` filters "by timestamps" only (the schema's description of the argument).
FULFILLMENT_RESOURCE = search.Resource(
    {
        "created_at": search.FieldSpec("date", lambda f: f["createdAt"]),
        "updated_at": search.FieldSpec("date", lambda f: f["updatedAt"]),
    },
    lambda f: "",
)


@resolver("Order", "fulfillments")
def _order_fulfillments(order: Record, info: GraphQLResolveInfo, first: int | None = None, query: str | None = None) -> list[Record]:
    check_page_size(first, "first")
    items = run_search(info, order["fulfillments"], FULFILLMENT_RESOURCE, query) if query else order["fulfillments"]
    return items[:first] if first is not None else items


@resolver("Order", "transactions")
def _order_transactions(order: Record, info: GraphQLResolveInfo, first: int | None = None, **_: Any) -> list[Record]:
    check_page_size(first, "first")
    items = order["transactions"]
    return items[:first] if first is not None else items


@resolver("Order", "statusPageUrl")
def _status_page_url(order: Record, info: GraphQLResolveInfo, **_: Any) -> str:
    return str(order["statusPageUrl"])


@resolver("Order", "fulfillmentsCount")
def _fulfillments_count(order: Record, info: GraphQLResolveInfo, **_: Any) -> Record:
    return {"count": len(order["fulfillments"]), "precision": "EXACT"}


@resolver("Fulfillment", "order")
def _fulfillment_order(fulfillment: Record, info: GraphQLResolveInfo) -> Record | None:
    return info.context.shop.order(fulfillment["_orderId"])


@resolver("Fulfillment", "events")
def _fulfillment_events(fulfillment: Record, info: GraphQLResolveInfo, **args: Any) -> Record:
    events = fulfillment["events"]
    if args.get("sortKey") == "HAPPENED_AT":
        events = sorted(events, key=lambda e: e["happenedAt"])
    return connection(events, args)


@resolver("LineItem", "product")
def _line_item_product(item: Record, info: GraphQLResolveInfo) -> Record | None:
    pid = item.get("_productId")
    return info.context.shop.product(pid) if pid is not None else None


@resolver("LineItem", "variant")
def _line_item_variant(item: Record, info: GraphQLResolveInfo) -> Record | None:
    vid = item.get("_variantId")
    return info.context.shop.variant(vid) if vid is not None else None


@resolver("ProductVariant", "product")
def _variant_product(variant: Record, info: GraphQLResolveInfo) -> Record | None:
    return info.context.shop.product(variant["_productId"])


@resolver("Customer", "orders")
def _customer_orders(customer: Record, info: GraphQLResolveInfo, **args: Any) -> Record:
    shop: SandboxShop = info.context.shop
    mine = shop.orders_of_customer(int(customer["legacyResourceId"]))
    return list_orders(info, mine, {"sortKey": "ID", **args}, None)


@resolver("Customer", "numberOfOrders")
def _number_of_orders(customer: Record, info: GraphQLResolveInfo) -> str:
    return str(len(info.context.shop.orders_of_customer(int(customer["legacyResourceId"]))))


@resolver("Customer", "lastOrder")
def _last_order(customer: Record, info: GraphQLResolveInfo) -> Record | None:
    mine = info.context.shop.orders_of_customer(int(customer["legacyResourceId"]))
    return max(mine, key=lambda o: o["createdAt"]) if mine else None


@resolver("Customer", "amountSpent")
def _amount_spent(customer: Record, info: GraphQLResolveInfo) -> Record:
    mine = info.context.shop.orders_of_customer(int(customer["legacyResourceId"]))
    total = sum((Decimal(o["totalPriceSet"]["shopMoney"]["amount"]) for o in mine
                 if o["displayFinancialStatus"] in ("PAID", "PARTIALLY_REFUNDED")), Decimal(0))
    return {"amount": str(total.quantize(Decimal("0.01"))), "currencyCode": info.context.shop.currency}


@resolver("Product", "description")
def _description(product: Record, info: GraphQLResolveInfo, truncateAt: int | None = None) -> str:
    text: str = product["description"]
    if truncateAt is not None and len(text) > truncateAt:
        return text[: max(0, truncateAt - 3)].rstrip() + "..."
    return text


@resolver("Product", "variants")
def _variants(product: Record, info: GraphQLResolveInfo, **args: Any) -> Record:
    variants = product["variants"]
    if args.get("sortKey") in ("ID", "POSITION", None):
        variants = sorted(variants, key=lambda v: v["position"])
    return connection(variants, args)


@resolver("Product", "variantsCount")
def _variants_count(product: Record, info: GraphQLResolveInfo) -> Record:
    return {"count": len(product["variants"]), "precision": "EXACT"}


# ------------------------------------------------------------------------------------------------ mutations


def _user_error(field_path: list[str], message: str, code: str | None = None) -> Record:
    return {"field": field_path, "message": message, "code": code}


@resolver("Mutation", "webhookSubscriptionCreate")
def _webhook_create(_: Any, info: GraphQLResolveInfo, topic: str, webhookSubscription: dict[str, Any]) -> Record:
    ctx: RequestContext = info.context
    shop = ctx.shop
    uri = webhookSubscription.get("uri") or webhookSubscription.get("callbackUrl")
    if not uri:
        return {"webhookSubscription": None, "userErrors": [_user_error(["webhookSubscription", "uri"], "Address can't be blank")]}
    if not (str(uri).startswith("https://") or str(uri).startswith("http://")):
        return {"webhookSubscription": None,
                "userErrors": [_user_error(["webhookSubscription", "uri"], "Address protocol is not supported")]}
    for existing in shop.webhook_subscriptions:
        if existing["topic"] == topic and existing["uri"] == uri:
            return {"webhookSubscription": None,
                    "userErrors": [_user_error(["webhookSubscription", "callbackUrl"], "Address for this topic has already been taken")]}
    legacy = shop.next_id("WebhookSubscription")
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    sub = {
        "__typename": "WebhookSubscription", "id": gid("WebhookSubscription", legacy), "legacyResourceId": str(legacy),
        "topic": topic, "uri": uri, "callbackUrl": uri if str(uri).startswith("http") else None,
        "format": webhookSubscription.get("format") or "JSON", "includeFields": webhookSubscription.get("includeFields") or [],
        "metafieldNamespaces": webhookSubscription.get("metafieldNamespaces") or [], "filter": webhookSubscription.get("filter"),
        "name": webhookSubscription.get("name"), "createdAt": stamp, "updatedAt": stamp,
        "apiVersion": {"handle": ctx.api_version, "displayName": ctx.api_version, "supported": True},
        "endpoint": {"__typename": "WebhookHttpEndpoint", "callbackUrl": uri},
    }
    shop.webhook_subscriptions.append(sub)
    shop.touch()
    return {"webhookSubscription": sub, "userErrors": []}


@resolver("Mutation", "webhookSubscriptionDelete")
def _webhook_delete(_: Any, info: GraphQLResolveInfo, id: str) -> Record:
    shop: SandboxShop = info.context.shop
    for sub in shop.webhook_subscriptions:
        if sub["id"] == id:
            shop.webhook_subscriptions.remove(sub)
            shop.touch()
            return {"deletedWebhookSubscriptionId": id, "userErrors": []}
    return {"deletedWebhookSubscriptionId": None, "userErrors": [_user_error(["id"], "Webhook subscription does not exist")]}


@resolver("Mutation", "webhookSubscriptionUpdate")
def _webhook_update(_: Any, info: GraphQLResolveInfo, id: str, webhookSubscription: dict[str, Any]) -> Record:
    shop: SandboxShop = info.context.shop
    for sub in shop.webhook_subscriptions:
        if sub["id"] == id:
            uri = webhookSubscription.get("uri") or webhookSubscription.get("callbackUrl")
            if uri:
                sub["uri"] = uri
                sub["callbackUrl"] = uri
                sub["endpoint"] = {"__typename": "WebhookHttpEndpoint", "callbackUrl": uri}
                shop.touch()
            return {"webhookSubscription": sub, "userErrors": []}
    return {"webhookSubscription": None, "userErrors": [_user_error(["id"], "Webhook subscription does not exist")]}
