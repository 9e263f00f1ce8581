"""Shopify's search grammar as the local store evaluates it (localstore/search.py)."""

from __future__ import annotations

from typing import Any

import pytest

from localstore import SandboxShop
from localstore.resolvers import customer_resource, order_resource, product_resource
from localstore.search import And, Matcher, Not, Or, Term, index_terms, parse

RECORDS: list[dict[str, Any]] = [
    {"title": "Classic T-Shirt", "vendor": "JACK & JONES", "kind": "T-Shirt", "n": 1},
    {"title": "Graphic T-Shirt", "vendor": "Urban Threads", "kind": "T-Shirt", "n": 2},
    {"title": "Slim Fit Jeans", "vendor": "JACK & JONES", "kind": "Jeans", "n": 3},
    {"title": "Wool (Winter) Hat: \"Cosy\"", "vendor": "Nordic Wool Co", "kind": "Cap", "n": 4},
]


def _resource() -> Any:
    from localstore.search import FieldSpec, Resource

    return Resource(
        {"title": FieldSpec("text", lambda r: r["title"]), "vendor": FieldSpec("exact", lambda r: r["vendor"]),
         "product_type": FieldSpec("exact", lambda r: r["kind"]), "n": FieldSpec("number", lambda r: r["n"])},
        lambda r: f"{r['title']} {r['vendor']}",
    )


def titles(query: str) -> list[str]:
    matcher = Matcher(_resource())
    tree = parse(query)
    return [r["title"] for r in RECORDS if matcher.matches(tree, r)]


def test_parse_shapes() -> None:
    assert parse("") is None and parse("   ") is None
    assert parse("a b") == And((Term(None, "a"), Term(None, "b")))
    assert parse("a OR b AND c") == Or((Term(None, "a"), And((Term(None, "b"), Term(None, "c")))))
    assert parse("-status:closed") == Not(Term("status", "closed"))
    assert parse("NOT (a OR b)") == Not(Or((Term(None, "a"), Term(None, "b"))))
    assert parse('title:"big hat"') == Term("title", "big hat", phrase=True)
    assert parse("title:clas*") == Term("title", "clas", prefix=True)
    assert parse("updated_at:>=2026-01-01") == Term("updated_at", "2026-01-01", op=">=")
    assert parse(r"email:a\:b@x.com") == Term("email", "a:b@x.com")
    assert parse(r'title:"say \"hi\""') == Term("title", 'say "hi"', phrase=True)


def test_free_text_and_implicit_and() -> None:
    assert titles("t-shirt") == ["Classic T-Shirt", "Graphic T-Shirt"]
    assert titles("classic shirt") == ["Classic T-Shirt"]
    assert titles("classic AND jeans") == []


def test_or_and_precedence() -> None:
    assert titles("title:classic OR title:jeans") == ["Classic T-Shirt", "Slim Fit Jeans"]
    assert titles("vendor:\"JACK & JONES\" AND title:jeans OR title:graphic") == ["Graphic T-Shirt", "Slim Fit Jeans"]


def test_negation_both_forms() -> None:
    assert titles("-title:classic") == ["Graphic T-Shirt", "Slim Fit Jeans", 'Wool (Winter) Hat: "Cosy"']
    assert titles("NOT title:classic AND product_type:T-Shirt") == ["Graphic T-Shirt"]
    assert titles("-(product_type:T-Shirt OR product_type:Jeans)") == ['Wool (Winter) Hat: "Cosy"']


def test_quoted_phrase_needs_consecutive_words() -> None:
    assert titles('title:"slim fit"') == ["Slim Fit Jeans"]
    assert titles('title:"fit slim"') == []
    assert titles('vendor:"nordic wool co"') == ['Wool (Winter) Hat: "Cosy"']
    assert titles('vendor:"nordic wool"') == []  # exact field: the whole value


def test_prefix() -> None:
    assert titles("title:clas*") == ["Classic T-Shirt"]
    assert titles("title:t* AND title:shirt*") == ["Classic T-Shirt", "Graphic T-Shirt"]
    assert titles("vendor:jack*") == ["Classic T-Shirt", "Slim Fit Jeans"]
    assert titles("title:clas") == []  # no star: whole words only


def test_parentheses_and_comparators() -> None:
    assert titles("(title:classic OR title:graphic) AND -vendor:\"Urban Threads\"") == ["Classic T-Shirt"]
    assert titles("n:>2") == ["Slim Fit Jeans", 'Wool (Winter) Hat: "Cosy"']
    assert titles("n:<=2 AND n:>=2") == ["Graphic T-Shirt"]


def test_comma_lists() -> None:
    assert titles("product_type:Jeans,Cap") == ["Slim Fit Jeans", 'Wool (Winter) Hat: "Cosy"']


def test_unknown_field_is_ignored_and_reported() -> None:
    matcher = Matcher(_resource())
    tree = parse("colour:red AND title:classic")
    matcher.check_fields(tree)
    assert [r["title"] for r in RECORDS if matcher.matches(tree, r)] == ["Classic T-Shirt"]
    assert matcher.warnings == [{"field": "colour", "message": "Invalid search field for this query."}]


@pytest.mark.parametrize("query", ["(", ")", "((a", "a)) OR", "OR", "AND AND", "-", "NOT", '"', 'title:"open', "\\",
                                   "title:", ":", "*", "a:b:c", "title:>", "(()))(", "-(-(-a))", "a OR OR b"])
def test_malformed_queries_never_crash(query: str) -> None:
    matcher = Matcher(_resource())
    tree = parse(query)
    matcher.check_fields(tree)
    for record in RECORDS:
        matcher.matches(tree, record)


def test_index_terms() -> None:
    assert index_terms(parse('email:"a@b.c" AND status:open'), ("email",)) == [Term("email", "a@b.c", phrase=True)]
    assert index_terms(parse("(customer_id:1 OR customer_id:2) AND status:open"), ("customer_id",)) == [
        Term("customer_id", "1"), Term("customer_id", "2")]
    assert index_terms(parse("customer_id:1 OR status:open"), ("customer_id",)) is None
    assert index_terms(parse("-email:a@b.c"), ("email",)) is None


# --------------------------------------------------------------------------------------------- the shop's resources


@pytest.fixture(scope="module")
def shop() -> SandboxShop:
    return SandboxShop.seeded(seed=7, orders=80, products=30)


def _orders(shop: SandboxShop, query: str) -> list[str]:
    matcher = Matcher(order_resource(shop))
    tree = parse(query)
    return [o["name"] for o in shop.orders if matcher.matches(tree, o)]


def test_order_email_is_exact(shop: SandboxShop) -> None:
    assert _orders(shop, "email:bob.norman@mail.example.com") == ["#1001", "#1002", "#1003", "#1004"]
    assert _orders(shop, 'email:"BOB.NORMAN@mail.example.com"') == ["#1001", "#1002", "#1003", "#1004"]
    assert _orders(shop, "email:bob.norman@mail.example") == []
    assert _orders(shop, 'email:"bob.norman@mail.example.com OR status:any"') == []  # an injection stays a phrase


def test_order_name_with_or_without_hash(shop: SandboxShop) -> None:
    assert _orders(shop, "name:1001") == ["#1001"]
    assert _orders(shop, "name:#1001") == ["#1001"]
    assert _orders(shop, 'name:"#1002"') == ["#1002"]


def test_order_status_filters(shop: SandboxShop) -> None:
    bob = "email:bob.norman@mail.example.com"
    assert _orders(shop, f"{bob} AND status:open") == ["#1001", "#1002"]
    assert _orders(shop, f"{bob} AND status:closed") == ["#1003", "#1004"]
    assert _orders(shop, f"{bob} AND status:cancelled") == ["#1003"]
    assert _orders(shop, f"{bob} AND status:open AND -status:cancelled AND financial_status:pending") == ["#1002"]
    assert _orders(shop, f"{bob} AND status:any") == ["#1001", "#1002", "#1003", "#1004"]
    assert _orders(shop, f"{bob} AND fulfillment_status:shipped") == ["#1001", "#1004"]
    assert _orders(shop, f"{bob} AND fulfillment_status:unfulfilled") == ["#1002", "#1003"]


def test_order_customer_and_dates(shop: SandboxShop) -> None:
    bob = shop.customer_by_email("bob.norman@mail.example.com")
    assert bob is not None
    assert _orders(shop, f"customer_id:{bob['legacyResourceId']}") == ["#1001", "#1002", "#1003", "#1004"]
    o1 = shop.order_by_name("#1001")
    o2 = shop.order_by_name("#1002")
    assert o1 is not None and o2 is not None
    assert "#1001" not in _orders(shop, f"created_at:>{o1['createdAt']}")
    assert "#1002" in _orders(shop, f"created_at:>={o2['createdAt']}")
    assert _orders(shop, f"created_at:<{o2['createdAt']}") == ["#1001"]
    assert _orders(shop, f"id:{o1['legacyResourceId']}") == ["#1001"]
    assert len(_orders(shop, "updated_at:>2000-01-01")) == len(shop.orders)


def _customers(shop: SandboxShop, query: str) -> list[str]:
    matcher = Matcher(customer_resource(shop))
    tree = parse(query)
    return [c["displayName"] for c in shop.customers if matcher.matches(tree, c)]


def test_customer_filters(shop: SandboxShop) -> None:
    assert _customers(shop, 'phone:"+16136120707"') == ["Bob Norman"]
    assert _customers(shop, "phone:+447700900123") == ["Jane Phoneonly"]
    assert _customers(shop, 'email:"bob.norman@mail.example.com"') == ["Bob Norman"]
    assert "Bob Norman" in _customers(shop, "email:example.com")  # customers' email is tokenized
    assert "Jane Phoneonly" not in _customers(shop, "email:*")
    assert _customers(shop, "first_name:chloé AND last_name:Durand") == ["Chloé Durand"]


def _products(shop: SandboxShop, query: str) -> list[str]:
    matcher = Matcher(product_resource(shop))
    tree = parse(query)
    return [p["title"] for p in shop.products if matcher.matches(tree, p)]


def test_product_visibility_filters(shop: SandboxShop) -> None:
    visible = _products(shop, "status:active AND published_status:published")
    for hidden in ("Draft Hoodie", "Archived Jeans", "Unlisted Cap"):
        assert hidden not in visible
    assert "Classic T-Shirt" in visible
    assert _products(shop, "status:draft AND title:hoodie") == ["Draft Hoodie"]
    assert "Archived Jeans" in _products(shop, "status:archived,draft")
    assert "Unlisted Cap" in _products(shop, "published_status:unpublished")
    assert "Unlisted Cap" not in _products(shop, "published_status:published")
    assert "Classic T-Shirt" in _products(shop, "title:t* AND title:shirt*")
    assert _products(shop, 'vendor:"JACK & JONES" AND title:classic') == ["Classic T-Shirt"]
