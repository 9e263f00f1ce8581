"""Every GraphQL document the gateway sends is valid against the pinned Admin API schema and uses nothing deprecated.

Covers every `*.graphql` file in gateway/shopify/queries/ (a glob, so documents added by other parts of the gateway,
e.g. the push pipeline's `push_*.graphql`, are checked too). Fragment files (`_*.graphql`) are checked through the
documents that use them, and each fragment must be used by at least one document.
"""

from __future__ import annotations

import functools

import pytest
from graphql import (
    GraphQLSchema,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    build_schema,
    get_named_type,
    parse,
    validate,
    visit,
)
from graphql.language import ArgumentNode, EnumValueNode, FieldNode

from gateway.shopify.queries import QUERIES_DIR, SCHEMA_PATH, _fragments, document_names, load_query


@functools.cache
def admin_schema() -> GraphQLSchema:
    return build_schema(SCHEMA_PATH.read_text(encoding="utf-8"))


class _DeprecationCollector(Visitor):
    def __init__(self, type_info: TypeInfo) -> None:
        super().__init__()
        self.type_info = type_info
        self.found: list[str] = []

    def enter_field(self, node: FieldNode, *_: object) -> None:
        field = self.type_info.get_field_def()
        parent = self.type_info.get_parent_type()
        if field is not None and field.deprecation_reason is not None:
            self.found.append(f"field {parent}.{node.name.value}")

    def enter_argument(self, node: ArgumentNode, *_: object) -> None:
        arg = self.type_info.get_argument()
        if arg is not None and arg.deprecation_reason is not None:
            self.found.append(f"argument {node.name.value}")

    def enter_enum_value(self, node: EnumValueNode, *_: object) -> None:
        enum = get_named_type(self.type_info.get_input_type())
        values = getattr(enum, "values", None)
        if values and node.value in values and values[node.value].deprecation_reason is not None:
            self.found.append(f"enum value {enum}.{node.value}")


def test_there_are_documents() -> None:
    assert {"orders_search", "order_by_id", "customers_by_phone", "products_search", "shop_info"} <= set(document_names())


@pytest.mark.parametrize("name", document_names())
def test_document_is_valid_and_not_deprecated(name: str) -> None:
    schema = admin_schema()
    document = parse(load_query(name))
    errors = validate(schema, document)
    assert not errors, f"{name}.graphql: " + "; ".join(e.message for e in errors)
    type_info = TypeInfo(schema)
    collector = _DeprecationCollector(type_info)
    visit(document, TypeInfoVisitor(type_info, collector))
    assert not collector.found, f"{name}.graphql uses deprecated {collector.found}"


def test_every_fragment_is_used() -> None:
    used = {frag for name in document_names() for frag in _fragments() if f"fragment {frag} on" in load_query(name)}
    assert used == set(_fragments()), f"unused fragments: {set(_fragments()) - used}"


def test_first_never_exceeds_250() -> None:
    for path in QUERIES_DIR.glob("*.graphql"):
        for token in path.read_text(encoding="utf-8").split("first:")[1:]:
            literal = token.strip().split(")")[0].split(",")[0].strip()
            if literal.isdigit():
                assert int(literal) <= 250, f"{path.name}: first: {literal}"


def test_unknown_document_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        load_query("../secrets")
