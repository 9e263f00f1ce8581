"""Search strings built from user input, and the code-side re-checks (no Shopify needed)."""

from __future__ import annotations

import pytest

from gateway.lookups.orders import (
    FOLLOW_UP_FULFILLMENTS,
    FULFILLMENT_COST,
    FULFILLMENTS_COST,
    FULFILLMENTS_PAGE,
    LINE_ITEM_COST,
    MAX_QUERY_COST,
    MIN_LINE_ITEMS,
    ORDER_BASE_COST,
    QUERY_COST_BUDGET,
    QUERY_OVERHEAD,
    RECEIPTS_COST_BUDGET,
    line_items_per_order,
    matches_filter,
    name_matches,
    sort_variables,
)
from gateway.lookups.products import effective_sort, product_matches, search_string, title_matches
from gateway.lookups.search import order_filter_terms, search_term, title_prefix_terms
from gateway.lookups.types import InvalidRequest, OrderFilter, ProductsQuery, Sort, SortField
from tests.fixtures_query import document_cost


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a@b.com", 'email:"a@b.com"'),
        ("a@b.com OR status:any", 'email:"a@b.com OR status:any"'),
        ('a"@b.com) OR (x', 'email:"a\\"@b.com) OR (x"'),
        ("a\\@b.com", 'email:"a\\\\@b.com"'),
        ('\\"', 'email:"\\\\\\""'),
        ("*", 'email:"*"'),
    ],
)
def test_search_term_quotes_and_escapes(value: str, expected: str) -> None:
    assert search_term("email", value) == expected


def test_search_term_rejects_control_characters_and_odd_fields() -> None:
    with pytest.raises(InvalidRequest):
        search_term("email", "a@b.com\nstatus:any")
    with pytest.raises(InvalidRequest):
        search_term("email", "x" * 300)
    with pytest.raises(ValueError):
        search_term("email OR x", "a")


def test_title_prefix_terms_drop_search_syntax() -> None:
    assert title_prefix_terms("T_shirt") == "(title:t* AND title:shirt*)"
    assert (
        title_prefix_terms('clas* OR "x" (status:draft)')
        == "(title:clas* AND title:or* AND title:x* AND title:statusdraft*)"
    )
    assert title_prefix_terms("*** ()") is None


def test_title_rule() -> None:
    assert title_matches("T_shirt", "Classic T-Shirt")
    assert title_matches("clas tee", "Classic Tee")
    assert not title_matches("shirt classic x", "Classic T-Shirt")
    assert not title_matches("hirt", "Classic T-Shirt")


def visible(**over: object) -> dict[str, object]:
    node: dict[str, object] = {
        "status": "ACTIVE",
        "onlineStoreUrl": "https://x/p",
        "title": "Classic T-Shirt",
        "productType": "T-Shirt",
        "vendor": "JACK & JONES",
    }
    node.update(over)
    return node


def test_product_recheck() -> None:
    by_vendor = ProductsQuery(vendor="jack & jones")
    assert product_matches(visible(), by_vendor)
    assert not product_matches(visible(status="DRAFT"), by_vendor)
    assert not product_matches(visible(status="ARCHIVED"), by_vendor)
    assert not product_matches(visible(onlineStoreUrl=None), by_vendor)
    assert not product_matches(visible(vendor="JACK"), by_vendor)
    assert product_matches(visible(), ProductsQuery(title="nothing", product_type="t-shirt"))
    assert not product_matches(visible(), ProductsQuery(title="nothing", product_type="shirt"))


def test_product_search_string_is_always_restricted_to_visible() -> None:
    text = search_string(ProductsQuery(title="T_shirt", vendor='x" OR status:draft'))
    assert text.startswith("status:active AND published_status:published AND (")
    assert 'vendor:"x\\" OR status:draft"' in text
    with pytest.raises(InvalidRequest):
        search_string(ProductsQuery(title="  "))


def test_product_default_sort() -> None:
    assert effective_sort(ProductsQuery(title="x")) == Sort(SortField.RELEVANCE, False)
    assert effective_sort(ProductsQuery(vendor="x")) == Sort(SortField.TITLE, False)


def test_order_rechecks() -> None:
    assert name_matches({"name": "#1001"}, "1001") and name_matches({"name": "1001"}, "#1001")
    assert name_matches({"name": "#AB-1001"}, "ab-1001") and not name_matches({"name": "#10011"}, "1001")
    cancelled = {"cancelledAt": "2024-01-01T00:00:00Z", "closed": True}
    pending = {"displayFinancialStatus": "PENDING"}
    assert matches_filter(cancelled, OrderFilter.CLOSED) and not matches_filter(cancelled, OrderFilter.OPEN)
    assert matches_filter(pending, OrderFilter.UNPAID) and matches_filter(pending, OrderFilter.OPEN)
    assert not matches_filter({"displayFinancialStatus": "PAID"}, OrderFilter.UNPAID)
    assert "status:open" in order_filter_terms(OrderFilter.OPEN) and order_filter_terms(OrderFilter.ALL) == ""


def test_orders_sort_variables() -> None:
    assert sort_variables(Sort(SortField.UPDATED_AT, False)) == {"sortKey": "UPDATED_AT", "reverse": False}
    with pytest.raises(InvalidRequest):
        sort_variables(Sort(SortField.TITLE, False))


def test_line_item_budget() -> None:
    assert line_items_per_order(1) <= 100
    assert 1 <= line_items_per_order(10) <= line_items_per_order(3) < line_items_per_order(1) <= 100
    # a list of receipts requests little (a burst holds it at once); longer orders get the follow-up request
    for limit in (1, 2, 3):
        first_request = QUERY_OVERHEAD + limit * (ORDER_BASE_COST + line_items_per_order(limit) * LINE_ITEM_COST)
        assert first_request <= RECEIPTS_COST_BUDGET
    single = ORDER_BASE_COST + FULFILLMENTS_COST + line_items_per_order(1, with_fulfillments=True) * LINE_ITEM_COST
    assert QUERY_OVERHEAD + single <= QUERY_COST_BUDGET
    assert line_items_per_order(250) == MIN_LINE_ITEMS


def test_fulfillment_cost_figures_are_the_stores() -> None:
    # orders_packages: the orders connection 2, each order 1, its fulfillmentsCount 1 and GatewayFulfillments
    # (FULFILLMENTS_PAGE of them)
    assert FULFILLMENTS_COST == FULFILLMENTS_PAGE * FULFILLMENT_COST
    for orders in (1, 3):
        cost = document_cost("orders_packages", {"query": "x", "first": orders})
        assert cost == 2 + orders * (1 + 1 + FULFILLMENTS_COST)
    # the packages follow-up: the order 1 plus its fulfillments, as many as fit within Shopify's 1000 points
    follow_up = document_cost("order_fulfillments", {"id": "gid://shopify/Order/1", "first": FOLLOW_UP_FULFILLMENTS})
    assert follow_up == 1 + FOLLOW_UP_FULFILLMENTS * FULFILLMENT_COST == 993
    assert follow_up <= MAX_QUERY_COST < follow_up + FULFILLMENT_COST
